"""The config edits behind ``persist add|save|remove`` and ``import``, as reports.

:class:`ConfigEdit` is what an edit did (its JSON is ``{"ok": true, "config": ...}``);
:class:`ImportReport` adds what ``import`` read (``dry_run``, ``problems``);
:class:`ExportReport` is what ``export`` wrote or prints. Edge: these
read and write the config (atomically, under its lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from binfmtctl.binfmt_misc import BinfmtMisc
from binfmtctl.entry import Entry
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.persist.config import (
    ConfigChange,
    ConfigProblem,
    add_entries,
    atomic_write,
    config_names,
    config_with,
    read_config_text,
    remove_names,
)
from binfmtctl.persist.formats import export_entries, render_export
from binfmtctl.persist.paths import config_path
from binfmtctl.record import dataclass, field


@dataclass(frozen=True)
class ConfigEdit:
    """What an edit of the config did; ``would`` marks a dry run in the text."""

    ok: bool
    config: ConfigChange
    would: bool = field(default=False, metadata={"json": False})


@dataclass(frozen=True)
class ImportReport:
    """``import``: the problems found in the input (nothing imported), or the edit."""

    dry_run: bool
    problems: tuple[ConfigProblem, ...]
    config: ConfigChange | None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, object]:
        if self.problems:
            return {"ok": False, "problems": [p.to_json() for p in self.problems], "config": None}
        cfg = self.config.to_json() if self.config is not None else None
        return {"ok": True, "dry_run": self.dry_run, "problems": [], "config": cfg}


def pick_live(
    bm: BinfmtMisc, names: Sequence[str], include_all: bool
) -> tuple[list[Entry], list[str]]:
    """(the live entries export and persist save act on, NAMEs that are not live): NAMEs,
    else binfmtctl's own, else with ``include_all`` every live entry."""
    live = bm.entries()
    unknown = [n for n in names if n not in {e.name for e in live}]
    return export_entries(live, names or bm.owned(), include_all and not names), unknown


def add_to_config(
    config: str | None, entries: Sequence[Entry], *, dry_run: bool = False
) -> ConfigEdit:
    """Add or replace ``entries`` in the config (``dry_run``: only say what would change)."""
    path = config_path(override=config)
    if dry_run:
        _, change = config_with(read_config_text(path), entries, str(path))
        return ConfigEdit(True, change, would=True)
    return ConfigEdit(True, add_entries(path, entries))


def remove_from_config(config: str | None, names: Sequence[str]) -> ConfigEdit:
    """Drop ``names`` from the config; every name must be in it (else nothing changes)."""
    path = config_path(override=config)
    present = config_names(path)
    unknown = [n for n in names if n not in present]
    if unknown:
        raise BinfmtctlError(
            f"{path} has no entry named {', '.join(repr(n) for n in unknown)}; nothing was changed",
            fix="binfmtctl persist status lists the config's entries",
        )
    return ConfigEdit(True, remove_names(path, names))


@dataclass(frozen=True)
class ExportReport:
    """``export``: the bytes for stdout (none when written to files), and what was written."""

    data: bytes
    wrote: tuple[str, ...]
    notes: tuple[str, ...]


def export(
    chosen: Sequence[Entry], fmt: str, source: str, output: str | None, *, include_all: bool
) -> ExportReport:
    """Render ``chosen`` in ``fmt``; write it to ``output`` (update-binfmts: a directory,
    one file per entry), else return it for stdout. Edge when ``output`` is given."""
    from binfmtctl.wording import plural  # difflib: not for the boot path

    files = render_export(chosen, fmt, source)
    if fmt == "update-binfmts" and output is None and len(files) > 1:
        raise UsageError(
            f"update-binfmts format is one file per entry ({plural(len(files), 'entry')})",
            fix="binfmtctl export --format update-binfmts -o DIR",
        )
    if fmt == "update-binfmts" and output is not None:
        for name, data in files.items():
            atomic_write(Path(output) / name, data)
        return ExportReport(b"", tuple(f"wrote {Path(output) / n}" for n in files), ())
    data = b"".join(files.values())
    if output is not None:
        atomic_write(Path(output), data)
        return ExportReport(b"", (f"wrote {plural(len(chosen), 'entry')} to {output}",), ())
    note = "no entry to export" + (
        "" if include_all else " (binfmtctl owns none; --all exports every live entry)"
    )
    return ExportReport(data, (), () if chosen else (note,))
