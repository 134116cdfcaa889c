"""The emulation use cases: `install`, `uninstall`, `test`, each returning a report.

The decisions are :mod:`binfmtctl.install`'s (pure); this module strings them together
with the live table (a :class:`~binfmtctl.binfmt_misc.BinfmtMisc`), the probes and the
config, and says what happened as frozen dataclasses. It prints nothing: the CLI hands
the report to :mod:`binfmtctl.cli.render`. What needs the terminal (the in-use refusal,
the trust warnings) comes in as a callable, so the order of the checks stays here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from binfmtctl.entry import Entry
from binfmtctl.install import Note, ProbeResult

if TYPE_CHECKING:
    from binfmtctl.binfmt_misc import BinfmtMisc
    from binfmtctl.plan import Action

#: refuses (raises) or warns about live entries processes run through: (entries, dry_run)
InUseGuard = Callable[[Sequence[Entry], bool], None]


# -- test -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeMatrix:
    """``test``: one probe result per target (none: there was nothing to test)."""

    targets: tuple[ProbeResult, ...]

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.target for r in self.targets if not r.ok)

    @property
    def exit_code(self) -> int:
        return 1 if not self.targets or self.failed else 0


def probe_targets(bm: BinfmtMisc, args: Sequence[str]) -> ProbeMatrix:
    """Run the probe of each target named (default: every enabled live QEMU entry's)."""
    from binfmtctl import install as inst
    from binfmtctl import table

    for tok in inst.split_target_list(args):  # a mistyped target is a usage error, first
        if not inst.is_pattern(tok):
            table.get_target(tok)
    bm.require_mounted()  # a read: never mounts
    entries = bm.entries()
    names = inst.select_test_targets(args, inst.live_qemu_targets(entries))
    if not names:
        return ProbeMatrix(())
    return ProbeMatrix(tuple(inst.run_probes(list(dict.fromkeys(names)), entries, bm.enabled())))


# -- uninstall --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UninstallReport:
    """``uninstall``: the entries removed (or that would be), those dropped from the config."""

    dry_run: bool
    removed: tuple[str, ...]
    config_removed: tuple[str, ...]
    notes: tuple[Note, ...]


def uninstall(
    bm: BinfmtMisc,
    args: Sequence[str],
    *,
    dry_run: bool,
    config: str | None,
    in_use: InUseGuard,
) -> UninstallReport:
    """Remove the QEMU entries ``args`` select (see :func:`install.uninstall_selection`),
    as one transaction under the table's lock, then drop them from binfmtctl's config."""
    from binfmtctl import install as inst
    from binfmtctl.errors import UsageError
    from binfmtctl.plan import plan_remove

    if not args:
        raise UsageError(
            "name the targets or entries to uninstall, or `all` (binfmtctl's own qemu entries)",
            fix="binfmtctl uninstall all",
        )
    if not dry_run:
        bm.mount_for_write()
    with bm.locked() if not dry_run else contextlib.nullcontext():
        live = bm.entries() if bm.mount_state().state == "mounted" else []
        names, notes = inst.uninstall_selection(list(args), live, bm.owned())
        actions = plan_remove(names, live)
        in_use([a.entry for a in actions], dry_run)
        if not dry_run and actions:
            bm.apply(actions)
    dropped = () if dry_run else tuple(forget_in_config(config, args, actions))
    return UninstallReport(dry_run, tuple(a.entry.name for a in actions), dropped, tuple(notes))


def forget_in_config(
    config: str | None, targets: Sequence[str], actions: Sequence[Action]
) -> list[str]:
    """Drop what uninstall removed (and what it names) from the config; the names dropped."""
    from binfmtctl import persist

    path = persist.config_path(override=config)
    if not path.exists():
        return []
    entries, _ = persist.parse_config(persist.read_config_text(path), str(path))
    names = persist.uninstall_config_names(targets, [a.entry.name for a in actions], entries)
    return persist.remove_names(path, names).removed if names else []
