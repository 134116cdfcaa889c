"""Registrations that survive reboot: the desired-state config, ``apply``, the unit.

* **The config** (:func:`config_path`, default ``/etc/binfmt.d/zz-binfmtctl.conf``): one
  register string per line in binfmt.d(5) syntax, the single source of truth for what
  binfmtctl registers at boot. It lives in ``/etc/binfmt.d`` so systemd-binfmt loads it
  too, and its name sorts after distro files (``qemu-aarch64.conf``, ``python3.11.conf``):
  systemd-binfmt applies files in lexicographic order of file name and replaces a
  same-named entry, so binfmtctl's version of ``qemu-aarch64`` wins. Edits keep the
  person's comments and lines; writes are atomic (temp file, fsync, rename), root-owned,
  mode 0644.
* **apply** (:func:`plan_apply`, :func:`apply_config`): make the live table match the
  config. Missing entries are registered, differing entries of the config's names
  replaced, every other entry left alone; each entry is validated first and applied on
  its own, so one that cannot be applied (its interpreter is on a file system not yet
  mounted, its QEMU package was removed) is reported and the rest still applied. This is
  the boot path: it imports only :mod:`entry`, :mod:`rules`, :mod:`plan` and
  :mod:`binfmt_misc` (never pyelftools, psutil or PyYAML).
* **The unit** (:data:`UNIT_NAME`, :func:`enable`, :func:`disable`): a oneshot service
  ordered after the binfmt_misc mount, local file systems and systemd-binfmt (and
  ``PartOf=`` it, so a restart of systemd-binfmt, which flushes every entry, re-applies
  binfmtctl's), before container engines. ``--root DIR`` works on an offline image root,
  as ``systemctl --root`` does; only a live system runs ``systemctl``, through
  :func:`systemctl`, the one place binfmtctl starts it.
* **Export / import** (:func:`export_entries`, :func:`render_export`,
  :func:`read_import`): binfmt.d, Debian update-binfmts format (import files and the
  admin database) and JSON.
* **Where else entries come from at boot** (:func:`persistent_sources`): binfmt.d
  directories with systemd's override and masking rules, update-binfmts' database and
  import directory, and binfmtctl's config.

Pure functions take and return plain data; the functions that touch files, the live
table or systemctl say so.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fcntl
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from binfmtctl import hijack, safety, trust
from binfmtctl.binfmt_misc import BinfmtMisc, NotMounted, open_exec_errno
from binfmtctl.entry import (
    Entry,
    EntryParseError,
    iter_binfmt_d_lines,
    parse_register,
    parse_update_binfmts,
    render_register,
    render_update_binfmts,
)
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.plan import Action, plan_register
from binfmtctl.rootfs import Root, read_regular
from binfmtctl.rules import KernelProfile, validate

#: typing and subprocess are not imported at run time: the boot-time apply does not need them
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any

UNIT_NAME = "binfmtctl.service"
#: the target whose ``.wants/`` holds the enablement link (the unit's ``WantedBy=``)
WANTED_BY = "sysinit.target"
UNIT_DIR = "/etc/systemd/system"
CONFIG_ENV = "BINFMTCTL_CONFIG"
DEFAULT_CONFIG = "/etc/binfmt.d/zz-binfmtctl.conf"
#: binfmt.d directories, highest priority first (systemd's ``CONF_PATHS("binfmt.d")``)
BINFMT_D_DIRS = (
    "/etc/binfmt.d",
    "/run/binfmt.d",
    "/usr/local/lib/binfmt.d",
    "/usr/lib/binfmt.d",
    "/lib/binfmt.d",
)
BINFMTS_ADMIN_DIR = "/var/lib/binfmts"  # update-binfmts' database: what binfmt-support enables
BINFMTS_IMPORT_DIR = "/usr/share/binfmts"  # packages' format files, imported into the database
FILE_MODE = 0o644
DIR_MODE = 0o755
CONFIG_HEADER = (
    "binfmtctl's desired state: binfmt_misc entries registered at boot.\n"
    "One register string per line, binfmt.d(5) syntax (:name:type:offset:magic:mask:interpreter:flags).\n"
    "systemd-binfmt loads this file; binfmtctl.service (`binfmtctl apply`) re-applies it\n"
    "without touching other entries. Maintained by `binfmtctl install --persist`,\n"
    "`binfmtctl persist add/remove`, `binfmtctl import` and `binfmtctl uninstall`;\n"
    "hand edits and comments are kept. Check it with `binfmtctl apply --plan`."
)
_IGNORED_SUFFIXES = (
    "~",
    ".bak",
    ".orig",
    ".swp",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".rpmnew",
    ".rpmsave",
)
UPDATE_BINFMTS_KEYS = frozenset(
    {
        "package",
        "interpreter",
        "magic",
        "offset",
        "mask",
        "extension",
        "detector",
        "credentials",
        "preserve",
        "fix_binary",
    }
)
RUN_DETECTORS = "/usr/lib/binfmt-support/run-detectors"


# -- paths ------------------------------------------------------------------------------------------
def _root(root: str | os.PathLike[str] | None) -> Path:
    return Path(os.path.abspath(root or "/"))


def in_root(root: str | os.PathLike[str] | None, path: str | os.PathLike[str]) -> Path:
    """``path`` as seen by the system at ``root`` (``systemctl --root`` style).

    An absolute path is placed under ``root``; one already under ``root`` is kept, so
    ``--root /mnt/img --config /mnt/img/etc/x.conf`` and ``--config /etc/x.conf`` agree.
    """
    r = _root(root)
    p = Path(os.path.abspath(path))
    if r == Path("/") or p == r or r in p.parents:
        return p
    return r / p.relative_to("/")


def inside_path(root: str | os.PathLike[str] | None, path: Path) -> str:
    """The path the booted system sees for an on-disk ``path`` under ``root``."""
    r = _root(root)
    if r == Path("/"):
        return str(path)
    try:
        return "/" + str(path.relative_to(r))
    except ValueError:
        return str(path)


def config_path(root: str = "/", override: str | None = None) -> Path:
    """binfmtctl's config: ``override`` (``--config``), else ``$BINFMTCTL_CONFIG``, else
    ``/etc/binfmt.d/zz-binfmtctl.conf``; placed under ``root`` (see :func:`in_root`)."""
    return in_root(root, override or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def unit_path(root: str = "/") -> Path:
    return in_root(root, f"{UNIT_DIR}/{UNIT_NAME}")


def wants_link(root: str = "/") -> Path:
    """The enablement symlink ``systemctl enable`` creates from the unit's ``WantedBy=``."""
    return in_root(root, f"{UNIT_DIR}/{WANTED_BY}.wants/{UNIT_NAME}")


def resolve_in_root(root: str | os.PathLike[str] | None, path: str) -> Path:
    """Follow symlinks in ``path`` component by component, keeping absolute link targets
    inside ``root`` (as a booted system at ``root`` would see them). Edge helper."""
    r = _root(root)
    parts = [p for p in path.split("/") if p]
    current = r
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if current != r:
                current = current.parent
            continue
        candidate = current / part
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink (or missing): take it literally
            current = candidate
            continue
        hops += 1
        if hops > 40:
            return candidate
        link_parts = [p for p in target.split("/") if p]
        if target.startswith("/"):
            current = r
        parts = link_parts + parts
    return current


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


def _header_bytes() -> bytes:
    return b"".join(b"# " + line.encode() + b"\n" for line in CONFIG_HEADER.splitlines())


def _config_lines(text: bytes) -> list[bytes]:
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _line_entry(line: bytes) -> Entry | None:
    rule = line.strip(b" \t\r\n")
    try:
        return parse_register(rule)
    except (EntryParseError, ValueError):
        return None


def _line_name(line: bytes) -> str | None:
    rule = line.strip(b" \t\r\n")
    if not rule or rule[:1] in (b"#", b";"):
        return None
    return rule_name(rule)


def config_with(
    text: bytes, entries: Sequence[Entry], path: str = ""
) -> tuple[bytes, ConfigChange]:
    """The config text with ``entries`` added or replaced (pure).

    An identical line is left as the person wrote it; a differing definition of the same
    name is replaced in place (further definitions of it dropped); new entries are
    appended in order. Comments and other lines are kept.
    """
    change = ConfigChange(path)
    lines = _config_lines(text) if text.strip() else _config_lines(_header_bytes())
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
    return (b"\n".join(lines) + b"\n") if lines else _header_bytes(), change


# -- the config: files --------------------------------------------------------------------------------
def _os_error(e: OSError, what: str, path: Path | str) -> BinfmtctlError:
    if e.errno in (errno_mod.EACCES, errno_mod.EPERM):
        fix = "run as root (sudo binfmtctl ...)"
    elif e.errno == errno_mod.EROFS:
        fix = f"{path} is on a read-only file system: remount it read-write, or use --config"
    elif e.errno == errno_mod.ENOSPC:
        fix = "free some space on that file system"
    else:
        fix = "check the path and its permissions"
    return BinfmtctlError(f"cannot {what} {path}: {e.strerror}", fix=fix)


def _is_masked(path: Path) -> bool:
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
        if _is_masked(path):
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
        raise _os_error(e, "read", path) from None


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
    if _is_masked(path):
        raise BinfmtctlError(
            f"{path} is a symlink to /dev/null (masked); refusing to replace the mask",
            fix=f"remove the mask (rm {path}) if binfmtctl should manage it, or use --config",
        )
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fchmod(fd, mode)
            if os.geteuid() == 0:
                os.fchown(fd, 0, 0)
            os.fsync(fd)
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
        raise _os_error(e, "write", path) from None


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
        raise _os_error(e, "create the directory of", path) from None
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
        atomic_write(path, _header_bytes())
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


# -- apply: pure ---------------------------------------------------------------------------------------
def plan_apply(config_entries: Sequence[Entry], live_entries: Sequence[Entry]) -> list[Action]:
    """What ``apply`` does: for each config entry, ``add`` it if no entry has its name,
    ``keep`` an identical one, ``replace`` a differing one. Live entries of other names
    get no action (they are left alone). Pure."""
    actions = plan_register(config_entries, live_entries, replace=True)
    return [
        replace(a, note="differs from the config; replacing it") if a.kind == "replace" else a
        for a in actions
    ]


def pending_mount(path: str, fstab: str, mountinfo: str) -> str | None:
    """The fstab mount point that would hold ``path`` but is not mounted now (the
    interpreter's file system is mounted later in boot), or None. Pure."""
    mounted = set()
    for line in mountinfo.splitlines():
        parts = line.split(" ")
        if len(parts) > 4:
            mounted.add(parts[4].replace("\\040", " "))
    best = None
    for line in fstab.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith("#"):
            continue
        mp = fields[1].replace("\\040", " ")
        if not mp.startswith("/") or mp == "/" or fields[2:3] == ["swap"]:
            continue
        inside = path == mp or path.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) > len(best)):
            best = mp
    return best if best is not None and best not in mounted else None


def missing_interpreter_fix(entry: Entry, late_mount: str | None) -> str:
    """How to fix an interpreter that is not there."""
    drop = f"or stop persisting it: binfmtctl persist remove {entry.name}"
    if late_mount is not None:
        return (
            f"{entry.interpreter} is on {late_mount}, which is not mounted yet: move the "
            f"interpreter to the root file system, or order the unit after that mount "
            f"(systemctl edit binfmtctl.service: [Unit] RequiresMountsFor={late_mount}), {drop}"
        )
    if entry.name.startswith("qemu-") or "qemu" in entry.interpreter:
        pkg = "install QEMU's static user-mode emulators again (Debian/Ubuntu: apt install qemu-user-static; Fedora: dnf install qemu-user-static; Arch: pacman -S qemu-user-static-binfmt)"
    else:
        pkg = f"install the package that provides {entry.interpreter} again"
    return (
        f"{pkg}, or fix the interpreter path in the config (binfmtctl install --persist, "
        f"binfmtctl persist add); if it is on a file system mounted late, add "
        f"RequiresMountsFor= to the unit; {drop}"
    )


@dataclass(frozen=True)
class Blocked:
    """Why an entry of the config is not applied (it would fail, or is unsafe)."""

    message: str
    fix: str


def preflight(
    entries: Sequence[Entry],
    *,
    exec_check: Callable[[str], str | None],
    native: hijack.NativeSamples,
    trust_of: Callable[[str], trust.Verdict],
    late_mount: Callable[[str], str | None],
    force: bool = False,
) -> tuple[dict[str, Blocked], dict[str, list[str]]]:
    """Per entry: why it must not be applied, and warnings for what still works. Pure
    (facts come in as values and functions). An F entry needs its interpreter now (the kernel opens
    it at registration); without F it is only warned about, since the kernel looks the
    path up at every exec and a file system mounted later makes it work."""
    blocked: dict[str, Blocked] = {}
    warnings: dict[str, list[str]] = {}
    for e in entries:
        err = exec_check(e.interpreter)
        if err is not None:
            fix = missing_interpreter_fix(e, late_mount(e.interpreter))
            what = "missing" if err in ("ENOENT", "ENOTDIR") else f"not executable ({err})"
            if "F" in e.flags:
                blocked[e.name] = Blocked(
                    f"interpreter {e.interpreter} is {what} ({err}); with the F flag the kernel opens it at registration",
                    fix,
                )
                continue
            warnings.setdefault(e.name, []).append(
                f"interpreter {e.interpreter} is {what} ({err}): registered anyway, but matching programs fail until it exists; fix: {fix}"
            )
        for problem in safety.entry_problems(e, native, trust_of(e.interpreter)):
            if not problem.is_error:
                warnings.setdefault(e.name, []).append(f"{problem.message}; fix: {problem.fix}")
            elif not force and e.name not in blocked:
                blocked[e.name] = Blocked(
                    f"refused for the host's safety: {problem.message}",
                    f"{problem.fix} (binfmtctl apply --force applies it anyway)",
                )
    return blocked, warnings


@dataclass(frozen=True)
class ApplyItem:
    """One config entry's outcome: ``action`` is add / replace / keep; ``ok`` False means
    it could not be applied (``message`` and ``fix`` say why); ``done`` True means the live
    table was changed."""

    name: str
    action: str
    entry: Entry
    old: Entry | None
    ok: bool
    done: bool
    message: str = ""
    fix: str = ""
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "action": self.action,
            "ok": self.ok,
            "done": self.done,
            "interpreter": self.entry.interpreter,
            "register": os.fsdecode(render_register(self.entry)),
            "old": self.old.to_json() if self.old else None,
            "message": self.message,
            "fix": self.fix,
            "warnings": list(self.warnings),
        }


@dataclass
class ApplyReport:
    config: str
    plan_only: bool
    config_exists: bool
    items: list[ApplyItem] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mount: dict[str, object] | None = None

    @property
    def failed(self) -> list[ApplyItem]:
        return [i for i in self.items if not i.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def count(self, action: str) -> int:
        return sum(1 for i in self.items if i.ok and i.action == action)

    def to_json(self) -> dict[str, object]:
        return {
            "config": self.config,
            "plan": self.plan_only,
            "config_exists": self.config_exists,
            "ok": self.ok,
            "mount": self.mount,
            "changes": sum(1 for i in self.items if i.done),
            "entries": [i.to_json() for i in self.items],
            "problems": [p.to_json() for p in self.problems],
            "failed": [i.name for i in self.failed] + [p.where for p in self.problems],
            "notes": self.notes,
        }


def _split_error(e: BinfmtctlError) -> tuple[str, str]:
    text = e.format_message()
    msg, _, fix = text.partition("\n  fix: ")
    return msg, e.fix or fix


# -- apply: the runner (edge) ----------------------------------------------------------------------------
def _late_mount_checker() -> Callable[[str], str | None]:
    try:
        fstab = Path("/etc/fstab").read_text(errors="replace")
    except OSError:
        fstab = ""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text(errors="replace")
    except OSError:
        mountinfo = ""
    return lambda p: pending_mount(p, fstab, mountinfo)


def apply_config(
    bm: BinfmtMisc,
    path: Path,
    *,
    plan_only: bool = False,
    force: bool = False,
) -> ApplyReport:
    """Make the live table of ``bm`` match the config at ``path``. Edge.

    Every entry is planned and checked before anything is written; then each change is
    applied on its own (a failure is recorded and the rest still applied; a failed replace
    puts the old entry back). Entries of the config that are live and identical are
    recorded as binfmtctl's. ``plan_only`` changes nothing (and does not mount).
    """
    report = ApplyReport(str(path), plan_only, path.exists())
    entries, report.problems = parse_config(read_config_text(path), str(path), bm.profile)
    if not report.config_exists:
        report.notes.append(f"no config at {path}: nothing to apply")
    verdict = trust.check(str(path.absolute())) if report.config_exists else None
    if verdict is not None and not verdict.trusted and os.geteuid() == 0 and not force:
        raise BinfmtctlError(
            f"{path} can be changed by a non-root user ({verdict.reason}): its entries would "
            "run their interpreters for every matching program, as root registers them; "
            "refusing to apply it",
            fix=f"{verdict.fix}  (or apply --force)",
        )
    state = bm.mount_state()
    if state.state != "mounted" and (state.state == "automount" or (entries and not plan_only)):
        try:
            state = bm.require_mounted() if plan_only else bm.mount_for_write()
        except NotMounted:
            if not plan_only:
                raise
            state = bm.mount_state()
    report.mount = state.to_json()
    mounted = state.state == "mounted"
    if not mounted and entries:
        report.notes.append(
            f"binfmt_misc is not mounted at {bm.path}: planned against an empty table (apply mounts it)"
        )
    lock = bm.locked() if not plan_only and mounted else contextlib.nullcontext()
    with lock:
        live = bm.entries() if mounted else []
        if mounted and not bm.enabled():
            report.notes.append(
                "binfmt_misc is globally disabled (status: disabled): no entry is used until `echo 1 > status`"
            )
        actions = plan_apply(entries, live)
        blocked, warnings = preflight(
            entries,
            exec_check=open_exec_errno,
            # nothing to write, nothing to judge: a boot with an unchanged table reads no PATH
            native=hijack.gather() if any(a.changes for a in actions) else hijack.NativeSamples(),
            trust_of=trust.check,
            late_mount=_late_mount_checker(),
            force=force,
        )
        claimed: list[Entry] = []
        todo: list[tuple[Action, tuple[str, ...]]] = []
        for a in actions:
            warn = tuple(warnings.get(a.entry.name, ()))
            b = blocked.get(a.entry.name)
            if b is not None and a.kind != "keep":
                kept = " (the live entry was left as it is)" if a.old is not None else ""
                report.items.append(
                    ApplyItem(
                        a.entry.name,
                        a.kind,
                        a.entry,
                        a.old,
                        False,
                        False,
                        b.message + kept,
                        b.fix,
                        warn,
                    )
                )
                continue
            if a.kind == "keep" or plan_only:
                if a.kind == "keep":
                    claimed.append(a.entry)
                report.items.append(
                    ApplyItem(a.entry.name, a.kind, a.entry, a.old, True, False, a.note, "", warn)
                )
                continue
            todo.append((a, warn))
        warn_of = {id(a): w for a, w in todo}
        for a, err in bm.apply_each([a for a, _ in todo]) if todo else []:
            warn = warn_of[id(a)]
            if err is not None:
                msg, fix = _split_error(err)
                report.items.append(
                    ApplyItem(a.entry.name, a.kind, a.entry, a.old, False, False, msg, fix, warn)
                )
            else:
                report.items.append(
                    ApplyItem(a.entry.name, a.kind, a.entry, a.old, True, True, a.note, "", warn)
                )
        order = {a.entry.name: i for i, a in enumerate(actions)}
        report.items.sort(key=lambda item: order.get(item.name, len(order)))
        if claimed and not plan_only and mounted:
            _claim(bm, claimed)
    return report


def _claim(bm: BinfmtMisc, entries: Sequence[Entry]) -> None:
    """Record config entries found live and identical as binfmtctl's (systemd-binfmt may
    have registered them from the config before this unit ran)."""
    bm.claim(entries)


# -- export ---------------------------------------------------------------------------------------------
EXPORT_FORMATS = ("binfmt.d", "update-binfmts", "json")


def export_entries(
    live: Sequence[Entry], owned: Iterable[str], include_all: bool = False
) -> list[Entry]:
    """The live entries to export, oldest first: loading them in this order gives the same
    match order (the kernel tries the newest first). Default: binfmtctl's own. Pure."""
    keep = set(owned)
    return [e for e in reversed(list(live)) if include_all or e.name in keep]


def render_export(entries: Sequence[Entry], fmt: str, source: str = "") -> dict[str, bytes]:
    """Exported text per output file name (``""`` for one stream). binfmt.d and JSON are
    one stream; update-binfmts is one format file per entry, named after it. Pure."""
    if fmt == "binfmt.d":
        lines = [f"# exported by binfmtctl from {source or 'the live table'}"]
        lines.append("# load with: systemd-binfmt FILE, or binfmtctl import FILE")
        out = b"".join(line.encode() + b"\n" for line in lines)
        for e in entries:
            if not e.enabled:
                out += f"# {e.name} is disabled in the live table; this line registers it enabled\n".encode()
            out += render_register(e) + b"\n"
        return {"": out}
    if fmt == "update-binfmts":
        return {e.name: render_update_binfmts(e) for e in entries}
    if fmt == "json":
        data = {
            "source": source,
            "entries": [
                {**e.to_json(), "register": os.fsdecode(render_register(e))} for e in entries
            ],
        }
        return {"": (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()}
    raise UsageError(
        f"unknown export format {fmt!r}", fix=f"use one of {', '.join(EXPORT_FORMATS)}"
    )


# -- import -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Imported:
    entry: Entry
    source: str  # file or file:line


def parse_binfmts_admin(name: str, text: bytes) -> Entry:
    """An update-binfmts admin database file (``/var/lib/binfmts/NAME``): ten positional
    lines: package, type (magic/extension), offset, magic, mask, interpreter, detector,
    credentials, preserve, fix_binary (the last four may be missing). Pure."""
    lines = [line.strip(b" \t\r") for line in text.split(b"\n")]
    lines += [b""] * (10 - len(lines))
    _pkg, kind, offset, magic, mask, interp, detector, cred, preserve, fix = lines[:10]
    if kind not in (b"magic", b"extension"):
        raise EntryParseError(
            f"{name}: not an update-binfmts database file (line 2 is {kind[:20]!r}, not magic or extension)"
        )
    if detector:
        interp = RUN_DETECTORS.encode()
    flags = b""
    flags += b"P" if preserve == b"yes" else b""
    flags += b"C" if cred == b"yes" else b""
    flags += b"F" if fix == b"yes" else b""
    n = os.fsencode(name)
    if kind == b"extension":
        line = b":" + n + b":E::" + magic + b"::" + interp + b":" + flags
    else:
        off = b"" if offset in (b"", b"0") else offset
        line = b":" + n + b":M:" + off + b":" + magic + b":" + mask + b":" + interp + b":" + flags
    return parse_register(line)


def detect_format(data: bytes, filename: str = "") -> str:
    """binfmt.d, update-binfmts (a package's format file), binfmts-admin (update-binfmts'
    database) or json (``binfmtctl export --format json``). Pure."""
    if data.lstrip()[:1] in (b"{", b"["):
        return "json"
    lines = [line.strip() for line in data.split(b"\n")]
    if len(lines) > 1 and lines[1] in (b"magic", b"extension") and b" " not in lines[0]:
        return "binfmts-admin"
    for _, rule in iter_binfmt_d_lines(data):
        words = rule.split(None, 1)  # empty for a rule of only \v or \f
        key = words[0].decode("ascii", "replace").lower() if words else ""
        if rule[:1].isalnum() and key in UPDATE_BINFMTS_KEYS:
            return "update-binfmts"
        break
    return "binfmt.d"


def parse_import(
    data: bytes, source: str, profile: KernelProfile | None = None
) -> tuple[list[Imported], list[ConfigProblem], list[str]]:
    """Entries of one import file (any supported format), its problems, and warnings. Pure."""
    prof = profile or KernelProfile.current_default()
    name = os.path.basename(source)
    warnings: list[str] = []
    if b"\0" in data[:8192]:
        return (
            [],
            [
                ConfigProblem(
                    source,
                    0,
                    "binary data, not a binfmt.d, update-binfmts or JSON file",
                    "give a text file: one register string per line, or 'key value' lines",
                )
            ],
            warnings,
        )
    fmt = detect_format(data, name)
    if fmt == "binfmt.d":
        out, problems = [], []
        for lineno, rule in iter_binfmt_d_lines(data):
            entry, problem = parse_rule(rule, source, lineno, prof)
            if problem is not None:
                problems.append(problem)
            elif entry is not None:
                out.append(Imported(entry, f"{source}:{lineno}"))
        return out, problems, warnings
    if fmt == "json":
        from binfmtctl.inputs import load_json  # not on the boot path: it needs typing

        doc = load_json(data, source)
        try:
            rows = doc["entries"] if isinstance(doc, dict) else doc
            regs = [str(r["register"]) for r in rows]
        except (ValueError, KeyError, TypeError):
            return (
                [],
                [
                    ConfigProblem(
                        source,
                        0,
                        "JSON without an 'entries' list of objects with a 'register' string",
                        "import a file written by `binfmtctl export --format json`",
                    )
                ],
                warnings,
            )
        out, problems = [], []
        for i, reg in enumerate(regs, start=1):
            entry, problem = parse_rule(os.fsencode(reg), f"{source} entries[{i - 1}]", 0, prof)
            if problem is not None:
                problems.append(problem)
            elif entry is not None:
                out.append(Imported(entry, f"{source} entries[{i - 1}]"))
        return out, problems, warnings
    try:
        if fmt == "binfmts-admin":
            entry = parse_binfmts_admin(name, data)
        else:
            entry = parse_update_binfmts(name, data)
            if any(line.strip().lower().startswith(b"detector ") for line in data.split(b"\n")):
                warnings.append(
                    f"{source}: has a userspace detector, which the kernel cannot run; imported with its interpreter"
                )
    except (EntryParseError, ValueError, UnicodeDecodeError) as e:
        msg = e.format_message() if isinstance(e, BinfmtctlError) else str(e)
        return (
            [],
            [
                ConfigProblem(
                    source,
                    0,
                    f"invalid {fmt} file: {msg}",
                    "fix the file (update-binfmts format: 'key value' lines with interpreter and magic or extension)",
                    name,
                )
            ],
            warnings,
        )
    return [Imported(entry, source)], [], warnings


def import_files(path: str) -> list[Path]:
    """The files ``import PATH`` reads: PATH itself, or a directory's files in name order.
    In a directory with ``*.conf`` files only those are read (binfmt.d semantics); other
    directories (update-binfmts, ``qemu-binfmt-conf.sh --debian``) give every regular file.
    Hidden files, backups and /dev/null masks are skipped. Edge."""
    p = Path(path)
    if not p.exists():
        raise UsageError(
            f"{path}: no such file or directory",
            fix="give a binfmt.d file, an update-binfmts format file, or a directory of them",
        )
    if not p.is_dir():
        return [p]
    try:
        names = sorted(os.listdir(p))
    except OSError as e:
        raise UsageError(f"cannot list {path}: {e.strerror}") from None
    files = [
        p / n
        for n in names
        if not n.startswith(".")
        and not n.endswith(_IGNORED_SUFFIXES)
        and (p / n).is_file()
        and not _is_masked(p / n)
    ]
    confs = [f for f in files if f.name.endswith(".conf")]
    return confs or files


def read_import(
    paths: Sequence[str], profile: KernelProfile | None = None
) -> tuple[list[Imported], list[ConfigProblem], list[str]]:
    """Every entry of the files or directories ``paths``, deduplicated; problems include
    unreadable lines and a name defined differently by two sources. Edge (reads files)."""
    found: list[Imported] = []
    problems: list[ConfigProblem] = []
    warnings: list[str] = []
    files = [f for p in paths for f in import_files(p)]
    if not files:
        raise UsageError(
            f"nothing to import in {', '.join(paths)}",
            fix="give a binfmt.d file, an update-binfmts format file, or a directory of them",
        )
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read {f}: {e.strerror}") from None
        got, bad, warn = parse_import(data, str(f), profile)
        found += got
        problems += bad
        warnings += warn
    by_name: dict[str, Imported] = {}
    for imp in found:
        first = by_name.get(imp.entry.name)
        if first is None:
            by_name[imp.entry.name] = imp
        elif not first.entry.same_registration(imp.entry):
            problems.append(
                ConfigProblem(
                    imp.source,
                    0,
                    f"{imp.entry.name!r} is also defined, differently, by {first.source} "
                    f"({entry_differences(first.entry, imp.entry)})",
                    "import these sources in separate runs (the later run wins, as in binfmt.d), or import only the one you want",
                    imp.entry.name,
                )
            )
    if not by_name and not problems:
        raise UsageError(
            f"no entries in {', '.join(paths)}",
            fix="give a binfmt.d file, an update-binfmts format file, or a directory of them",
        )
    return list(by_name.values()), problems, warnings


def _show_field(name: str, value: object) -> str:
    if isinstance(value, bytes):
        return value.hex() or "-"
    return "-" if value in (None, "") else str(value)


def entry_differences(a: Entry, b: Entry) -> str:
    """The fields in which two registrations differ, ``field X vs Y`` each. Pure."""
    out = []
    for name in ("type", "offset", "magic", "mask", "extension", "interpreter", "flags"):
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            out.append(f"{name} {_show_field(name, x)} vs {_show_field(name, y)}")
    return ", ".join(out) or "same registration"


def safety_problems(entries: Sequence[Entry]) -> list[tuple[str, str, str]]:
    """(name, message, fix) for entries refused without --force. Edge (reads host files)."""
    return [(e.name, p.message, p.fix) for e, p in safety.judge(entries) if p.is_error]


def interpreter_warnings(entries: Sequence[Entry]) -> list[str]:
    """Entries whose interpreter is not there now (added anyway: apply reports them), or
    is controlled by a non-root user (warned about; with C/O it is refused instead)."""
    out = []
    for e in entries:
        err = open_exec_errno(e.interpreter)
        if err is not None:
            out.append(
                f"{e.name}: interpreter {e.interpreter} is not usable now ({err})"
                + ("; `binfmtctl apply` will fail for it until it is" if "F" in e.flags else "")
            )
    seen: dict[str, trust.Verdict] = {}
    for e in entries:
        v = seen.setdefault(e.interpreter, trust.check(e.interpreter))
        p = trust.interpreter_problem(e, v)
        if p is not None and not p.is_error:
            out.append(f"{p.message}; fix: {p.fix}")
    return out


# -- where else entries come from at boot -------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    name: str
    path: str  # on disk (under root)
    line: int  # 0 for one-entry-per-file formats
    kind: str  # binfmtctl | binfmt.d | update-binfmts | update-binfmts-import

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path, "line": self.line, "kind": self.kind}


def _masks(root: str, directory: str, name: str) -> bool:
    """systemd's ``null_or_empty``: a link to /dev/null or an empty file masks a name."""
    listed = resolve_in_root(root, directory) / name
    with contextlib.suppress(OSError):
        if os.readlink(listed) == os.devnull:
            return True
    try:
        st = resolve_in_root(root, f"{directory}/{name}").stat()
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0)


def effective_binfmt_d(
    listing: Sequence[tuple[str, Sequence[str]]], masked: Callable[[str, str], bool]
) -> list[tuple[str, str]]:
    """(directory, file name) of the binfmt.d files systemd-binfmt applies, in its order.
    ``listing``: each directory (highest priority first) and its ``*.conf`` names. A name
    in a higher directory hides the same name below; a masked one hides it and is not
    applied. Files are applied in lexicographic order of name, whatever the directory. Pure."""
    chosen: dict[str, str | None] = {}
    for d, names in listing:
        for n in names:
            if n.endswith(".conf") and n not in chosen:
                chosen[n] = None if masked(d, n) else d
    return [(d, n) for n, d in sorted(chosen.items()) if d is not None]


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def boot_sources(root: str = "/", config: Path | None = None) -> list[Source]:
    """Every (entry name, file) that would register an entry at boot on the system at
    ``root``, in the order each manager applies them. Edge (reads files)."""
    cfg = config if config is not None else config_path(root)
    cfg_real = os.path.realpath(cfg)
    out: list[Source] = []
    listing = [(d, _listdir(resolve_in_root(root, d))) for d in BINFMT_D_DIRS]
    files = effective_binfmt_d(listing, lambda d, n: _masks(root, d, n))
    seen_cfg = False
    for d, n in files:
        disk = in_root(root, f"{d}/{n}")
        try:
            data = read_regular(resolve_in_root(root, f"{d}/{n}"))
        except (OSError, BinfmtctlError):
            continue
        kind = "binfmtctl" if os.path.realpath(disk) == cfg_real else "binfmt.d"
        seen_cfg = seen_cfg or kind == "binfmtctl"
        for lineno, rule in iter_binfmt_d_lines(data):
            try:
                e = parse_register(rule)
            except (EntryParseError, ValueError):
                continue  # systemd-binfmt refuses it: it registers nothing
            out.append(Source(e.name, str(disk), lineno, kind))
    if not seen_cfg:
        try:
            entries, _ = parse_config(read_regular(cfg), str(cfg))
        except (OSError, BinfmtctlError):
            entries = []
        out += [Source(e.name, str(cfg), 0, "binfmtctl") for e in entries]
    for d, kind, parse in (
        (BINFMTS_ADMIN_DIR, "update-binfmts", parse_binfmts_admin),
        (BINFMTS_IMPORT_DIR, "update-binfmts-import", parse_update_binfmts),
    ):
        real = resolve_in_root(root, d)
        for n in _listdir(real):
            if n.startswith(".") or n.endswith(_IGNORED_SUFFIXES):
                continue
            try:
                parse(n, read_regular(resolve_in_root(root, f"{d}/{n}")))
            except (OSError, BinfmtctlError, ValueError):
                continue
            out.append(Source(n, str(in_root(root, f"{d}/{n}")), 0, kind))
    return out


def persistent_sources(root: str = "/") -> dict[str, list[str]]:
    """For every entry name something would register at boot, the files that provide it
    (in the order they are applied: within binfmt.d, the last one wins). Sources:
    binfmt.d directories (/etc, /run, /usr/local/lib, /usr/lib, /lib, with systemd's
    same-file-name override and /dev/null or empty-file masks), update-binfmts' database
    /var/lib/binfmts and import directory /usr/share/binfmts, and binfmtctl's config.
    Paths are on disk (under ``root``). Edge (reads files)."""
    out: dict[str, list[str]] = {}
    for s in boot_sources(root):
        paths = out.setdefault(s.name, [])
        if s.path not in paths:
            paths.append(s.path)
    return dict(sorted(out.items()))


# -- the unit -----------------------------------------------------------------------------------------
def locate_unit_template(package_dir: Any = None, checkout_dir: Path | None = None) -> Any:
    """The shipped unit: ``<package>/data/binfmtctl.service`` (the wheel) first, then
    ``<checkout>/systemd/binfmtctl.service``. Both roots can be given for tests."""
    from binfmtctl import resources

    found, packaged, source = resources.locate(UNIT_NAME, "systemd", package_dir, checkout_dir)
    if found is not None:
        return found
    raise BinfmtctlError(
        f"{UNIT_NAME} not found in the package ({packaged}) nor the source tree ({source})",
        fix="reinstall binfmtctl; the wheel ships binfmtctl/data/binfmtctl.service",
    )


def unit_template() -> str:
    text: str = locate_unit_template().read_text(encoding="utf-8")
    return text


def systemd_quote(word: str) -> str:
    """One word of a systemd command line: specifiers (%) and variables ($) escaped,
    double-quoted when it has whitespace, quotes or backslashes."""
    w = word.replace("%", "%%").replace("$", "$$")
    if w and not any(c in w for c in " \t\n\"'\\;"):
        return w
    return '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_exec_line(value: str) -> list[str]:
    """Words of an ``ExecStart=`` value as rendered by :func:`systemd_quote`."""
    import shlex

    words = shlex.split(value.lstrip("@-:+!"), posix=True)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


def unit_settings(text: str, key: str) -> list[str]:
    """Values of ``key=`` lines in a unit file (in order)."""
    out = []
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == key:
            out.append(v.strip())
    return out


def unit_exec(text: str) -> tuple[list[str], dict[str, str]]:
    """(ExecStart argv, Environment) of a rendered unit: what systemd runs. A line that
    cannot be split (unbalanced quotes in a hand edit) reads as empty."""
    import shlex

    execs = unit_settings(text, "ExecStart")
    try:
        argv = parse_exec_line(execs[-1]) if execs else []
    except ValueError:
        argv = []
    env: dict[str, str] = {}
    for value in unit_settings(text, "Environment"):
        try:
            assignments = shlex.split(value)
        except ValueError:
            continue
        for assignment in assignments:
            k, _, v = assignment.partition("=")
            env[k] = v.replace("%%", "%")
    return argv, env


def self_command() -> tuple[list[str], dict[str, str]]:
    """How the unit runs this binfmtctl: its console script when that is what is running,
    else this Python with ``-m binfmtctl`` (and PYTHONPATH when the package is not on that
    Python's default path, e.g. a source checkout). Edge."""
    argv0 = sys.argv[0] if sys.argv else ""
    if (
        os.path.basename(argv0) == "binfmtctl"
        and os.path.isfile(argv0)
        and os.access(argv0, os.X_OK)
    ):
        return [os.path.abspath(argv0)], {}
    parent = str(Path(__file__).resolve().parent.parent)
    import site

    default = {os.path.realpath(p) for p in site.getsitepackages()}
    env = {} if os.path.realpath(parent) in default else {"PYTHONPATH": parent}
    return [sys.executable, "-m", "binfmtctl"], env


def render_unit(
    template: str,
    command: Sequence[str],
    *,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    mount: str | None = None,
) -> str:
    """The unit to install: the template with ``ExecStart=COMMAND apply [--config CONFIG]``
    and ``Environment=`` lines for ``env``. Pure."""
    argv = [*command]
    if mount:
        argv += ["--mount", mount]
    argv.append("apply")
    if config:
        argv += ["--config", config]
    exec_line = "ExecStart=" + " ".join(systemd_quote(w) for w in argv)
    env_lines = [
        "Environment=" + systemd_quote(f"{k}={v}").replace("$$", "$")
        for k, v in (env or {}).items()
    ]
    out: list[str] = []
    replaced = False
    for line in template.splitlines():
        if line.strip().startswith("ExecStart=") and not replaced:
            out += [*env_lines, exec_line]
            replaced = True
        elif line.strip().startswith("ExecStart="):
            continue
        else:
            out.append(line)
    if not replaced:
        raise BinfmtctlError("the unit template has no ExecStart= line", fix="reinstall binfmtctl")
    head = [
        f"# Installed by `binfmtctl persist enable`: ExecStart= runs {command[0]}.",
        "# If that binfmtctl moves, run `binfmtctl persist enable` again.",
    ]
    return "\n".join(head + out) + "\n"


def systemd_booted(root: str = "/") -> bool:
    """Is systemd the running manager (``sd_booted()``: /run/systemd/system exists)?"""
    return in_root(root, "/run/systemd/system").is_dir()


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    """The one place binfmtctl runs ``systemctl`` (tests fake exactly these command lines)."""
    import subprocess

    try:
        return subprocess.run(
            ["systemctl", *args], capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise BinfmtctlError(
            "systemctl is not installed", fix="install systemd, or use --root DIR for an image"
        ) from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BinfmtctlError(f"systemctl {' '.join(args)} failed: {e}") from None


def _systemctl_checked(*args: str) -> str:
    proc = systemctl(*args)
    if proc.returncode != 0:
        raise BinfmtctlError(
            f"systemctl {' '.join(args)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}",
            fix="see journalctl -u binfmtctl.service; the unit and config are installed",
        )
    return f"ran systemctl {' '.join(args)}"


@dataclass
class UnitReport:
    root: str
    unit: str
    link: str
    config: str
    exec_start: list[str]
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "root": self.root,
            "unit": self.unit,
            "link": self.link,
            "config": self.config,
            "exec_start": self.exec_start,
            "steps": self.steps,
            "notes": self.notes,
        }


def _not_booted_note() -> str:
    return (
        "systemd is not the running init here (no /run/systemd/system; PID 1 is not systemd), "
        "so `systemctl daemon-reload` and `systemctl enable --now` were skipped: the unit runs at "
        "the next boot; run `binfmtctl apply` to apply the config now"
    )


def _wsl_note(root: str) -> str | None:
    if _root(root) != Path("/"):
        return None
    try:
        version = Path("/proc/version").read_text().lower()
    except OSError:
        return None
    if "microsoft" in version or "wsl" in version:
        return (
            "WSL: systemd-binfmt is often disabled there (ConditionVirtualization=!wsl), so "
            "binfmtctl.service is what re-applies the config; it needs systemd enabled in "
            "/etc/wsl.conf ([boot] systemd=true), else run `binfmtctl apply` from [boot] command="
        )
    return None


def _enable_files(
    fs: Root,
    root: str,
    report: UnitReport,
    text: str,
    upath: Path,
    link: Path,
    cfg: Path,
    command: Sequence[str],
) -> None:
    """The unit, its wants-link and the config, each opened inside ``fs`` (never through
    a link out of an image)."""
    if _root(root) != Path("/") and not fs.executable(in_root(root, command[0])):
        report.notes.append(
            f"ExecStart= runs {command[0]}, which is not in {_root(root)}: install binfmtctl "
            "in the image at that path, or pass --binfmtctl with the path it has in the image"
        )
    try:
        current: str | None = fs.read_bytes(upath).decode("utf-8")
    except (OSError, BinfmtctlError, UnicodeDecodeError):
        current = None
    try:
        if current != text:
            if fs.readlink(upath) == os.devnull:
                raise BinfmtctlError(
                    f"{upath} is a symlink to /dev/null (masked); refusing to replace the mask",
                    fix=f"remove the mask (rm {upath}) if binfmtctl should manage it",
                )
            fs.write_atomic(upath, text.encode(), FILE_MODE)
            report.steps.append(f"{'updated' if current is not None else 'wrote'} {upath}")
    except OSError as e:
        raise _os_error(e, "write", upath) from None
    target = f"{UNIT_DIR}/{UNIT_NAME}"
    try:
        if fs.readlink(link) != target:
            fs.symlink(target, link)
            report.steps.append(f"linked {link} -> {target}")
    except OSError as e:
        raise _os_error(e, "create the enablement link", link) from None
    try:
        with fs.parent(cfg, create=True) as (dfd, _):
            fcntl.flock(dfd, fcntl.LOCK_EX)  # as config_lock: edits of the config serialise
            if fs.lstat(cfg) is None:
                fs.write_atomic(cfg, _header_bytes(), FILE_MODE)
                report.steps.append(
                    f"created {cfg} (empty; add entries with install --persist, persist add or import)"
                )
    except OSError as e:
        raise _os_error(e, "create", cfg) from None


def enable(
    root: str = "/",
    *,
    config: Path | None = None,
    live: bool | None = None,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    mount: str | None = None,
    template: str | None = None,
) -> UnitReport:
    """Install the unit (rendered for this binfmtctl), its ``WantedBy=`` link as
    ``systemctl enable`` makes it, and the config (empty if there is none). On a live
    system (``live``: default when ``root`` is /) whose init is systemd, also run
    ``systemctl daemon-reload`` and ``systemctl enable --now``. Edge."""
    is_live = _root(root) == Path("/") if live is None else live
    cfg = config if config is not None else config_path(root)
    if command is None:
        command, found_env = self_command()
        env = {**found_env, **(env or {})}
    inside_cfg = inside_path(root, cfg)
    text = render_unit(
        template if template is not None else unit_template(),
        command,
        config=None if inside_cfg == DEFAULT_CONFIG else inside_cfg,
        env=env,
        mount=mount,
    )
    upath, link = unit_path(root), wants_link(root)
    report = UnitReport(str(_root(root)), str(upath), str(link), str(cfg), [*command])
    report.exec_start = unit_exec(text)[0]
    with Root(_root(root)) as fs:
        _enable_files(fs, root, report, text, upath, link, cfg, command)
    if not report.steps:
        report.notes.append(
            f"ExecStart= runs {command[0]}, which is not in {_root(root)}: install binfmtctl "
            "in the image at that path, or pass --binfmtctl with the path it has in the image"
        )
    if not report.steps:
        report.steps.append("already enabled: unit, link and config are in place")
    if is_live:
        if systemd_booted(root):
            report.steps.append(_systemctl_checked("daemon-reload"))
            report.steps.append(_systemctl_checked("enable", "--now", UNIT_NAME))
        else:
            report.notes.append(_not_booted_note())
    wsl = _wsl_note(root)
    if wsl:
        report.notes.append(wsl)
    return report


def disable(
    root: str = "/", *, config: Path | None = None, purge: bool = False, live: bool | None = None
) -> UnitReport:
    """Remove the unit and its enablement link (and the config with ``purge``). Live
    entries stay registered; on a live systemd system the unit is stopped first (it has
    no ExecStop: nothing is unregistered) and systemd reloaded after. Edge."""
    is_live = _root(root) == Path("/") if live is None else live
    cfg = config if config is not None else config_path(root)
    upath, link = unit_path(root), wants_link(root)
    report = UnitReport(str(_root(root)), str(upath), str(link), str(cfg), [])
    booted = is_live and systemd_booted(root)
    with Root(_root(root)) as fs:
        if booted and (fs.lstat(upath) is not None or fs.lstat(link) is not None):
            report.steps.append(_systemctl_checked("stop", UNIT_NAME))
        for p in (link, upath, *((cfg,) if purge else ())):
            try:
                if fs.unlink(p):
                    report.steps.append(f"removed {p}")
            except OSError as e:
                raise _os_error(e, "remove", p) from None
        cfg_exists = fs.lstat(cfg) is not None
    if not purge and cfg_exists:
        report.notes.append(
            f"kept the config {cfg}"
            + (
                ": it is a binfmt.d file, so systemd-binfmt still registers its entries at boot; "
                "`binfmtctl persist disable --purge` removes it"
                if inside_path(root, cfg).startswith("/etc/binfmt.d/")
                else " (`--purge` removes it)"
            )
        )
    if not report.steps:
        report.steps.append("nothing to remove: not enabled")
    if booted:
        report.steps.append(_systemctl_checked("daemon-reload"))
    elif is_live:
        report.notes.append(
            "systemd is not the running init here: `systemctl daemon-reload` skipped"
        )
    report.notes.append(
        "live entries were left registered; `binfmtctl uninstall all` removes binfmtctl's"
    )
    return report


def _reason(e: BaseException) -> str:
    return e.message if isinstance(e, BinfmtctlError) else (getattr(e, "strerror", None) or str(e))


def _fix(e: BaseException, p: Path) -> str:
    return (e.fix if isinstance(e, BinfmtctlError) else None) or f"check {p} (ls -l {p})"


def _file_facts(fs: Root, p: Path) -> dict[str, object]:
    st = fs.lstat(p)
    if st is None:
        return {"path": str(p), "exists": False}
    return {
        "path": str(p),
        "exists": True,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
    }


def status(
    root: str = "/", *, config: Path | None = None, bm: BinfmtMisc | None = None
) -> dict[str, Any]:
    """What is set up for boot, what is out of order, and (for a live root) how the live
    table compares with the config. ``problems`` are things to fix (exit 1). Edge."""
    cfg = config if config is not None else config_path(root)
    upath, link = unit_path(root), wants_link(root)
    with Root(_root(root)) as fs:
        return _status(fs, root, cfg, upath, link, bm)


def _status(
    fs: Root, root: str, cfg: Path, upath: Path, link: Path, bm: BinfmtMisc | None
) -> dict[str, Any]:
    problems: list[dict[str, str]] = []
    notes: list[str] = []
    try:
        cfg_text = fs.read_bytes(cfg)
    except FileNotFoundError:
        cfg_text = b""
    except (OSError, BinfmtctlError) as e:
        cfg_text = b""
        problems.append({"message": f"cannot read {cfg}: {_reason(e)}", "fix": _fix(e, cfg)})
    entries, cfg_problems = parse_config(cfg_text, str(cfg))
    problems += [{"message": str(p), "fix": p.fix} for p in cfg_problems]
    cfg_facts = _file_facts(fs, cfg)
    if (
        cfg_facts["exists"]
        and os.geteuid() == 0
        and (cfg_facts["uid"] != 0 or cfg_facts["mode"] != "0644")
    ):
        problems.append(
            {
                "message": f"{cfg} is owned by uid {cfg_facts['uid']} with mode {cfg_facts['mode']}",
                "fix": f"chown root:root {cfg} && chmod 0644 {cfg}",
            }
        )
    unit_text = None
    try:
        unit_text = fs.read_bytes(upath).decode("utf-8", "replace")
    except FileNotFoundError:
        pass
    except (OSError, BinfmtctlError) as e:
        problems.append({"message": f"cannot read {upath}: {_reason(e)}", "fix": _fix(e, upath)})
    exec_argv: list[str] = []
    if unit_text is None:
        problems.append(
            {
                "message": f"{UNIT_NAME} is not installed ({upath})",
                "fix": "binfmtctl persist enable",
            }
        )
    else:
        exec_argv = unit_exec(unit_text)[0]
        binary = in_root(root, exec_argv[0]) if exec_argv else None
        if binary is None or not fs.executable(binary):
            problems.append(
                {
                    "message": f"the unit's ExecStart= program {exec_argv[0] if exec_argv else '(none)'} is missing",
                    "fix": "run `binfmtctl persist enable` again with the binfmtctl that should run at boot (for an image: --binfmtctl PATH-IN-IMAGE)",
                }
            )
    linked = fs.readlink(link) == f"{UNIT_DIR}/{UNIT_NAME}"
    if unit_text is not None and not linked:
        problems.append(
            {
                "message": f"{UNIT_NAME} is installed but not enabled ({link} missing)",
                "fix": "binfmtctl persist enable",
            }
        )
    result: dict[str, Any] = {
        "root": str(_root(root)),
        "config": {**cfg_facts, "entries": [e.name for e in entries]},
        "unit": {**_file_facts(fs, upath), "exec_start": exec_argv},
        "enabled": linked,
        "systemd_running": systemd_booted(root),
        "systemctl": None,
        "live": None,
    }
    if _root(root) == Path("/"):
        if systemd_booted(root):
            proc = systemctl("is-active", UNIT_NAME)
            result["systemctl"] = {"is_active": proc.stdout.strip()}
        else:
            notes.append("systemd is not the running init here: unit state not queried")
        table = bm or BinfmtMisc()
        st = table.mount_state()
        if st.state == "mounted":
            actions = plan_apply(entries, table.entries())
            pending = [a.entry.name for a in actions if a.kind != "keep"]
            result["live"] = {
                "mount": table.path,
                "in_sync": [a.entry.name for a in actions if a.kind == "keep"],
                "pending": pending,
            }
            if pending:
                problems.append(
                    {
                        "message": f"the live table differs from the config for {', '.join(pending)}",
                        "fix": "binfmtctl apply  (binfmtctl apply --plan shows what it does)",
                    }
                )
        else:
            notes.append(f"binfmt_misc is not mounted at {table.path}: live table not compared")
    wsl = _wsl_note(root)
    if wsl:
        notes.append(wsl)
    result["problems"] = problems
    result["notes"] = notes
    result["ok"] = not problems
    return result


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "UNIT_NAME",
    "ApplyItem",
    "ApplyReport",
    "ConfigChange",
    "ConfigProblem",
    "Imported",
    "add_entries",
    "apply_config",
    "config_path",
    "disable",
    "enable",
    "export_entries",
    "persistent_sources",
    "plan_apply",
    "read_config",
    "read_import",
    "remove_names",
    "render_export",
    "render_unit",
    "status",
    "unit_path",
    "write_config",
]
