"""The desired-state config (default ``/etc/binfmt.d/zz-binfmtctl.conf``): one register
string per line in binfmt.d(5) syntax, the single source of truth for what binfmtctl
registers at boot. It lives in ``/etc/binfmt.d`` so systemd-binfmt loads it too, and its
name sorts after distro files, so binfmtctl's version of a same-named entry wins.

Parsing and editing (:func:`parse_config`, :func:`config_with`, :func:`config_without`)
are pure and keep the person's comments and lines; the file functions write atomically
(temp file, fsync, rename), root-owned, mode 0644, under a lock on the directory.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from binfmtctl.entry import (
    Entry,
    EntryParseError,
    binfmt_d_rule,
    iter_binfmt_d_lines,
    parse_register,
    render_register,
)
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.persist.paths import CONFIG_HEADER, DIR_MODE, FILE_MODE
from binfmtctl.record import dataclass, field
from binfmtctl.rootfs import read_regular, write_whole
from binfmtctl.rules import KernelProfile, validate


# -- the config: pure --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigProblem:
    """One line of a config or import file that cannot be used, and how to fix it."""

    source: str
    line: int
    message: str
    fix: str
    name: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "name": self.name,
            "message": self.message,
            "fix": self.fix,
        }


def rule_name(rule: bytes) -> str | None:
    """The entry name of a register string, read as the kernel does (first delimiter to
    the next), without validating the rest; None if there is none."""
    if len(rule) < 2:
        return None
    name, sep, _ = rule[1:].partition(rule[:1])
    return os.fsdecode(name) if sep and name else None


def parse_rule(
    rule: bytes, source: str, lineno: int, profile: KernelProfile
) -> tuple[Entry | None, ConfigProblem | None]:
    """One binfmt.d rule, judged by the kernel grammar (no file system checks)."""
    verdict = validate(rule + b"\n", profile)
    errors = [p for p in verdict.problems if p.is_error]
    if verdict.entry is not None and not errors:
        return verdict.entry, None
    p = errors[0] if errors else None
    msg = f"{p.field}: {p.message}" if p else "not a register string"
    return None, ConfigProblem(
        source,
        lineno,
        f"invalid rule ({p.errno if p else 'EINVAL'}): {msg}",
        p.fix if p else "write :name:type:offset:magic:mask:interpreter:flags",
        rule_name(rule),
    )


def parse_config(
    text: bytes, source: str, profile: KernelProfile | None = None
) -> tuple[list[Entry], list[ConfigProblem]]:
    """Entries of a binfmt.d-syntax config, and the lines that cannot be used.

    A name defined twice is a problem; the later definition is kept, as systemd-binfmt
    (which registers both, the second replacing the first) would leave it.
    """
    prof = profile or KernelProfile.current_default()
    by_name: dict[str, tuple[int, Entry]] = {}
    problems: list[ConfigProblem] = []
    for lineno, rule in iter_binfmt_d_lines(text):
        entry, problem = parse_rule(rule, source, lineno, prof)
        if problem is not None:
            problems.append(problem)
            continue
        assert entry is not None
        if entry.name in by_name:
            first = by_name.pop(entry.name)[0]
            problems.append(
                ConfigProblem(
                    source,
                    lineno,
                    f"{entry.name!r} is also defined on line {first}; this later line wins",
                    f"delete one of the two lines (binfmtctl persist remove {entry.name} drops both)",
                    entry.name,
                )
            )
        by_name[entry.name] = (lineno, entry)
    return [e for _, e in sorted(by_name.values(), key=lambda t: t[0])], problems


@dataclass
class ConfigChange:
    """What an edit of the config did, by entry name."""

    path: str
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # asked to remove, not in the config

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed)

    def to_json(self) -> dict[str, object]:
        return {
            "config": self.path,
            "added": self.added,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "missing": self.missing,
        }

    def describe(self) -> list[str]:
        out = []
        for verb, names in (
            ("added", self.added),
            ("replaced", self.replaced),
            ("kept (identical)", self.unchanged),
            ("removed", self.removed),
        ):
            if names:
                out.append(f"config {self.path}: {verb} {', '.join(names)}")
        if not out:
            out.append(f"config {self.path}: no change")
        return out


def header_bytes() -> bytes:
    return b"".join(b"# " + line.encode() + b"\n" for line in CONFIG_HEADER.splitlines())


def _config_lines(text: bytes) -> list[bytes]:
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _line_entry(line: bytes) -> Entry | None:
    rule = binfmt_d_rule(line)
    if rule is None:
        return None
    try:
        return parse_register(rule, KernelProfile.current_default())
    except (EntryParseError, ValueError):
        return None


def _line_name(line: bytes) -> str | None:
    rule = binfmt_d_rule(line)
    return None if rule is None else rule_name(rule)


def config_with(
    text: bytes, entries: Sequence[Entry], path: str = ""
) -> tuple[bytes, ConfigChange]:
    """The config text with ``entries`` added or replaced (pure).

    An identical line is left as the person wrote it; a differing definition of the same
    name is replaced in place (further definitions of it dropped); new entries are
    appended in order. Comments and other lines are kept.
    """
    change = ConfigChange(path)
    lines = _config_lines(text) if text.strip() else _config_lines(header_bytes())
    where: dict[str, list[int]] = {}  # name -> its lines, so the whole merge is linear
    for i, line in enumerate(lines):
        n = _line_name(line)
        if n is not None:
            where.setdefault(n, []).append(i)
    dropped: set[int] = set()
    for e in entries:
        rendered = render_register(e)
        hits = where.get(e.name)
        if not hits:
            lines.append(rendered)
            where[e.name] = [len(lines) - 1]
            change.added.append(e.name)
            continue
        current = _line_entry(lines[hits[-1]])
        if len(hits) == 1 and current is not None and current.same_registration(e):
            change.unchanged.append(e.name)
            continue
        lines[hits[0]] = rendered
        dropped.update(hits[1:])
        where[e.name] = hits[:1]
        change.replaced.append(e.name)
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    return b"\n".join(kept) + b"\n", change


def config_without(text: bytes, names: Iterable[str], path: str = "") -> tuple[bytes, ConfigChange]:
    """The config text without any line defining ``names`` (pure, linear); comments are kept."""
    change = ConfigChange(path)
    wanted = dict.fromkeys(names)
    found: set[str] = set()
    lines = []
    for line in _config_lines(text):
        n = _line_name(line)
        if n is not None and n in wanted:
            found.add(n)
        else:
            lines.append(line)
    for n in wanted:
        (change.removed if n in found else change.missing).append(n)
    return (b"\n".join(lines) + b"\n") if lines else header_bytes(), change


# -- the config: files --------------------------------------------------------------------------------
def os_error(e: OSError, what: str, path: Path | str) -> BinfmtctlError:
    if e.errno in (errno_mod.EACCES, errno_mod.EPERM):
        fix = "run as root (sudo binfmtctl ...)"
    elif e.errno == errno_mod.EROFS:
        fix = f"{path} is on a read-only file system: remount it read-write, or use --config"
    elif e.errno == errno_mod.ENOSPC:
        fix = "free some space on that file system"
    else:
        fix = "check the path and its permissions"
    return BinfmtctlError(f"cannot {what} {path}: {e.strerror}", fix=fix)


def is_masked(path: Path) -> bool:
    """A symlink to /dev/null (how binfmt.d files are masked)."""
    try:
        return path.is_symlink() and os.path.realpath(path) == os.devnull
    except OSError:
        return False


def read_config_text(path: Path) -> bytes:
    """The config's bytes; empty if it does not exist. Edge."""
    try:
        if path.is_dir():
            raise IsADirectoryError
        if is_masked(path):
            return b""  # a /dev/null mask reads as empty
        return read_regular(path)  # a FIFO must not hang the boot unit
    except FileNotFoundError:
        return b""
    except IsADirectoryError:
        raise UsageError(
            f"{path} is a directory, not a config file",
            fix="give --config a file path (default /etc/binfmt.d/zz-binfmtctl.conf)",
        ) from None
    except OSError as e:
        raise os_error(e, "read", path) from None


def read_config(path: str | os.PathLike[str], profile: KernelProfile | None = None) -> list[Entry]:
    """Entries of the config at ``path`` ([] if it does not exist). Raises
    :class:`BinfmtctlError` naming ``file:line`` for an invalid or duplicated line."""
    p = Path(path)
    entries, problems = parse_config(read_config_text(p), str(p), profile)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BinfmtctlError(f"{problems[0]}{more}", fix=problems[0].fix)
    return entries


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory, fsync,
    rename over, fsync the directory. Root-owned when run as root; ``mode`` exactly."""
    if is_masked(path):
        raise BinfmtctlError(
            f"{path} is a symlink to /dev/null (masked); refusing to replace the mask",
            fix=f"remove the mask (rm {path}) if binfmtctl should manage it, or use --config",
        )
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            write_whole(fd, data, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise os_error(e, "write", path) from None


def write_config(path: str | os.PathLike[str], entries: Sequence[Entry]) -> None:
    """Replace the config with exactly ``entries`` (header comment, one line each), atomically."""
    text, _ = config_with(b"", entries)
    atomic_write(Path(path), text)


@contextlib.contextmanager
def config_lock(path: Path) -> Iterator[None]:
    """Serialise edits of the config: an exclusive flock on its directory (no lock file
    is left next to the config)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise os_error(e, "create the directory of", path) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add_entries(path: str | os.PathLike[str], entries: Sequence[Entry]) -> ConfigChange:
    """Add or replace ``entries`` in the config (created if missing). Edge."""
    p = Path(path)
    with config_lock(p):
        new, change = config_with(read_config_text(p), entries, str(p))
        if change.changed or not p.exists():
            atomic_write(p, new)
    return change


def remove_names(path: str | os.PathLike[str], names: Iterable[str]) -> ConfigChange:
    """Drop every line defining ``names`` from the config (a missing config is left so). Edge."""
    p = Path(path)
    with config_lock(p):
        text = read_config_text(p)
        new, change = config_without(text, names, str(p))
        if change.changed:
            atomic_write(p, new)
    return change


def config_names(path: str | os.PathLike[str]) -> list[str]:
    """Names of the config's rule lines, valid or not, in order (for remove). Edge."""
    text = read_config_text(Path(path))
    return [n for line in _config_lines(text) if (n := _line_name(line)) is not None]


def ensure_config(path: Path) -> bool:
    """Create an empty config (the header comment) if there is none; True if created."""
    with config_lock(path):
        if path.exists() or path.is_symlink():
            return False
        atomic_write(path, header_bytes())
        return True


def uninstall_config_names(
    args: Sequence[str], removed: Iterable[str], config_entries: Sequence[Entry]
) -> list[str]:
    """Config entries ``binfmtctl uninstall ARGS`` drops: every entry it removed from the live
    table, plus what it names that is only in the config: an entry name, ``qemu-TARGET``
    for a target or alias, and for ``all`` every QEMU entry. Not on the boot path."""
    from binfmtctl import install as inst
    from binfmtctl import table

    names = {e.name for e in config_entries}
    out = [n for n in removed if n in names]
    for raw in args:
        if raw.strip().lower() == inst.ALL:
            out += [e.name for e in config_entries if inst.is_qemu_entry(e)]
        elif raw in names:
            out.append(raw)
        else:
            try:
                t = table.get_target(raw)
            except (UsageError, KeyError):
                continue
            if f"qemu-{t.name}" in names:
                out.append(f"qemu-{t.name}")
    return list(dict.fromkeys(out))
