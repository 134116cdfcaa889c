"""Find the QEMU user-mode interpreter for each target on this host.

Search order (the first *usable* candidate wins; every path looked at is reported):

1. ``--qemu-path DIR`` (exclusive when given): ``DIR/qemu-<t><suffix>`` for the suffix given
   with ``--qemu-suffix``, else for ``-static`` then no suffix (QEMU's
   ``qemu-binfmt-conf.sh --qemu-path/--qemu-suffix`` convention).
2. Debian/Ubuntu: ``/usr/libexec/qemu-binfmt/<t>-binfmt-P``, a symlink to the static binary.
   Debian's patched QEMU learns from that name that the kernel used the ``P`` flag, so an
   entry pointing there *must* have ``P`` (without it QEMU refuses: "has to be run using
   kernel binfmt-misc subsystem").
3. ``/usr/bin/qemu-<t>-static``: Debian/Ubuntu ``qemu-user-static``, Fedora
   ``qemu-user-static-<arch>`` (flag ``F``), Arch ``qemu-user-static`` (flags ``FP``).
4. ``/usr/bin/qemu-<t>``: the dynamically linked builds (Debian ``qemu-user``, Fedora
   ``qemu-user``).
5. ``/usr/local/bin/qemu-<t>[-static]``: a source install (QEMU's default ``--qemu-path``).

For ``i486`` the binary is ``qemu-i386``. A candidate is usable when it is an executable
regular file whose ELF architecture the host runs natively.

Pure decisions (:func:`candidate_paths`, :func:`judge`, :func:`expects_preserve_argv0`,
:func:`parse_qemu_version`, :func:`detect_distro`, :func:`package_hint`) are separate from the
probing edge (:func:`gather_facts`, :func:`find_interpreter`, :func:`qemu_version`).
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence

from binfmtctl import proc, table
from binfmtctl.record import dataclass
from binfmtctl.table import Target

TYPE_CHECKING = False
if TYPE_CHECKING:  # elf (and pyelftools) is imported only where a file is read
    from binfmtctl.elf import ElfFacts, ElfInfo

DEBIAN_LIBEXEC = "/usr/libexec/qemu-binfmt"
USR_BIN = "/usr/bin"
USR_LOCAL_BIN = "/usr/local/bin"
DEFAULT_SUFFIXES: tuple[str, ...] = ("-static", "")
PRESERVE_SUFFIX = "-binfmt-P"
VERSION_TIMEOUT = 5.0

#: 32-bit personalities a 64-bit host runs natively (a qemu built for them runs here too)
_COMPAT: Mapping[str, tuple[str, ...]] = {
    "x86_64": ("i386", "i486"),
    "i386": ("i486",),
    "ppc64": ("ppc",),
    "sparc64": ("sparc", "sparc32plus"),
    "mips64": ("mips", "mipsn32"),
    "mips64el": ("mipsel", "mipsn32el"),
}


# -- model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileFacts:
    """What the filesystem says about one candidate path (gathered at the edge)."""

    path: str
    exists: bool
    regular: bool = False
    executable: bool = False
    real_path: str | None = None
    #: ELF facts of the resolved file; None if it is not ELF (then ``elf_error`` says why)
    elf_arch: str | None = None
    elf_machine: str | None = None
    linkage: str | None = None  # "static" | "static-pie" | "dynamic"
    loader: str | None = None  # PT_INTERP of a dynamic interpreter
    elf_error: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One path looked at, and the verdict."""

    path: str
    source: str  # "qemu-path" | "debian-binfmt-P" | "usr-bin-static" | "usr-bin" | "usr-local"
    status: str  # "ok" | "missing" | "not-a-file" | "not-executable" | "not-elf" | "wrong-arch"
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "source": self.source,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class InterpreterInfo:
    """The interpreter chosen for one target (``path`` None: none found)."""

    target: str
    path: str | None
    source: str | None
    real_path: str | None
    static: bool | None  # None: unknown (not found, or not ELF)
    linkage: str | None
    loader: str | None
    arch: str | None  # the ELF architecture of the interpreter binary itself
    expects_p: bool
    candidates: tuple[Candidate, ...]
    package: str  # what to install when it is missing
    install_hint: str  # e.g. "apt-get install qemu-user-static"
    searched_only: str | None = None  # the --qemu-path directory, when the search was limited

    @property
    def found(self) -> bool:
        return self.path is not None

    def version(self) -> str | None:
        """``qemu-<t> --version`` parsed (one process, on first call only; cached per path).

        Runs the resolved binary: Debian's ``-binfmt-P`` name refuses to run outside binfmt_misc.
        """
        path = self.real_path or self.path
        return None if path is None else qemu_version(path)

    def to_json(self, *, with_version: bool = False) -> dict[str, object]:
        d: dict[str, object] = {
            "target": self.target,
            "path": self.path,
            "source": self.source,
            "real_path": self.real_path,
            "static": self.static,
            "linkage": self.linkage,
            "loader": self.loader,
            "arch": self.arch,
            "expects_p": self.expects_p,
            "package": self.package,
            "candidates": [c.to_json() for c in self.candidates],
        }
        if with_version:
            d["version"] = self.version()
        return d


# -- pure decisions ------------------------------------------------------------------------------
def binary_name(target: Target | str) -> str:
    """``qemu-<t>`` for a target (i486 is run by ``qemu-i386``)."""
    if isinstance(target, str):
        target = table.get_target(target)
    return target.interpreter


def candidate_paths(
    target: Target | str,
    qemu_path: str | None = None,
    qemu_suffix: str | None = None,
) -> list[tuple[str, str]]:
    """(path, source) in search order. With ``qemu_path`` only that directory is searched."""
    base = binary_name(target)
    if qemu_path is not None:
        suffixes = (qemu_suffix,) if qemu_suffix is not None else DEFAULT_SUFFIXES
        return [(os.path.join(qemu_path, base + s), "qemu-path") for s in suffixes]
    short = base.removeprefix("qemu-")
    suffixes = (qemu_suffix,) if qemu_suffix is not None else DEFAULT_SUFFIXES
    out = [(f"{DEBIAN_LIBEXEC}/{short}{PRESERVE_SUFFIX}", "debian-binfmt-P")]
    for s in suffixes:
        out.append((f"{USR_BIN}/{base}{s}", "usr-bin-static" if s == "-static" else "usr-bin"))
    for s in suffixes:
        out.append((f"{USR_LOCAL_BIN}/{base}{s}", "usr-local"))
    return out


def expects_preserve_argv0(path: str) -> bool:
    """Debian's patched QEMU reads the ``-binfmt-P`` name: such an entry needs the P flag."""
    return os.path.basename(path).endswith(PRESERVE_SUFFIX)


def host_arches(uname_m: str) -> tuple[str, ...]:
    """QEMU target names whose binaries this host runs natively (x86_64 also runs i386)."""
    try:
        host = table.host_target(uname_m).name
    except table.UnknownTargetError:
        host = table.normalize_host_machine(uname_m)
    return (host, *_COMPAT.get(host, ()))


def judge(facts: FileFacts, uname_m: str) -> tuple[str, str]:
    """(status, reason) for one candidate; status ``ok`` means usable."""
    if not facts.exists:
        return "missing", "no such file"
    if not facts.regular:
        return "not-a-file", "not a regular file"
    if not facts.executable:
        return "not-executable", "not executable (chmod +x, or a noexec mount?)"
    if facts.elf_error is not None:
        return "not-elf", facts.elf_error
    runnable = host_arches(uname_m)
    if facts.elf_arch not in runnable:
        what = facts.elf_arch or facts.elf_machine or "an unknown machine"
        return (
            "wrong-arch",
            f"built for {what}, but this host ({uname_m}) runs {'/'.join(runnable)} natively",
        )
    return "ok", ""


_VERSION_RE = re.compile(r"qemu-\S*\s+version\s+(\d+(?:\.\d+)+)", re.IGNORECASE)


def parse_qemu_version(text: str) -> str | None:
    """``"qemu-aarch64 version 7.2.22 (Debian ...)"`` -> ``"7.2.22"``; None if absent."""
    m = _VERSION_RE.search(text)
    return m.group(1) if m else None


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip("\"'")
    return out


def detect_distro(os_release: Mapping[str, str]) -> str | None:
    """``debian`` (also Ubuntu and derivatives), ``fedora`` (also RHEL-likes), ``arch``, or None."""
    ids = [os_release.get("ID", "").lower(), *os_release.get("ID_LIKE", "").lower().split()]
    for name, family in (
        ("debian", "debian"),
        ("ubuntu", "debian"),
        ("fedora", "fedora"),
        ("rhel", "fedora"),
        ("centos", "fedora"),
        ("arch", "arch"),
        ("archlinux", "arch"),
    ):
        if name in ids:
            return family
    return None


def package_hint(target: Target | str, distro: str | None) -> tuple[str, str]:
    """(package names, install command) that provide the static interpreter for ``target``."""
    if isinstance(target, str):
        target = table.get_target(target)
    pk = target.packages
    debian = pk.debian or "qemu-user-static"
    fedora = pk.fedora or "qemu-user-static"
    arch = f"{pk.arch or 'qemu-user-static'} qemu-user-static-binfmt"
    if distro == "debian":
        return debian, f"apt-get install {debian}"
    if distro == "fedora":
        return fedora, f"dnf install {fedora}"
    if distro == "arch":
        return arch, f"pacman -S {arch}"
    return (
        debian,
        f"install {debian} (Debian/Ubuntu), {fedora} (Fedora), or {arch.replace(' ', ' + ')} (Arch)",
    )


def choose(
    target: Target,
    facts: Sequence[tuple[FileFacts, str]],
    uname_m: str,
    distro: str | None,
    qemu_path: str | None = None,
) -> InterpreterInfo:
    """Pick the first usable candidate (pure: facts gathered beforehand, in search order)."""
    cands: list[Candidate] = []
    chosen: tuple[FileFacts, str] | None = None
    for f, source in facts:
        status, reason = judge(f, uname_m)
        cands.append(Candidate(f.path, source, status, reason))
        if status == "ok" and chosen is None:
            chosen = (f, source)
    package, hint = package_hint(target, distro)
    if chosen is None:
        return InterpreterInfo(
            target=target.name,
            path=None,
            source=None,
            real_path=None,
            static=None,
            linkage=None,
            loader=None,
            arch=None,
            expects_p=False,
            candidates=tuple(cands),
            package=package,
            install_hint=hint,
            searched_only=qemu_path,
        )
    f, source = chosen
    return InterpreterInfo(
        target=target.name,
        path=f.path,
        source=source,
        real_path=f.real_path,
        static=None if f.linkage is None else f.linkage != "dynamic",
        linkage=f.linkage,
        loader=f.loader,
        arch=f.elf_arch,
        expects_p=expects_preserve_argv0(f.path),
        candidates=tuple(cands),
        package=package,
        install_hint=hint,
        searched_only=qemu_path,
    )


def missing_message(info: InterpreterInfo) -> tuple[str, str]:
    """(message, fix) for a target whose interpreter was not found."""
    looked = list(info.candidates)
    usable_but_bad = [c for c in looked if c.status not in ("missing", "ok")]
    where = f"in {info.searched_only}" if info.searched_only is not None else "on this host"
    msg = f"no usable QEMU interpreter for {info.target} {where}"
    if usable_but_bad:
        msg += " (" + "; ".join(f"{c.path}: {c.reason}" for c in usable_but_bad) + ")"
    else:
        msg += " (looked for " + ", ".join(c.path for c in looked) + ")"
    fix = f"{info.install_hint}"
    if info.searched_only is not None:
        fix += f", or point --qemu-path at a directory holding {os.path.basename(looked[0].path)}"
    return msg, fix


# -- edge ------------------------------------------------------------------------------------------
def gather_facts(path: str) -> FileFacts:
    """Stat and ELF-read one candidate (never raises)."""
    from binfmtctl.elf import NotElfError, read_elf, read_elf_facts

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return FileFacts(path, exists=False)
    if not stat.S_ISREG(st.st_mode):
        return FileFacts(path, exists=True, regular=False)
    executable = os.access(path, os.X_OK)
    real = os.path.realpath(path)
    # the common, well-formed case without pyelftools; read_elf answers the rest
    info: ElfFacts | ElfInfo | None = read_elf_facts(real)
    if info is None:
        try:
            info = read_elf(real)
        except NotElfError as e:
            return FileFacts(
                path, True, True, executable, real, elf_error=f"not an ELF executable: {e.reason}"
            )
    return FileFacts(
        path,
        True,
        True,
        executable,
        real,
        elf_arch=info.arch,
        elf_machine=info.machine,
        linkage=info.linkage,
        loader=info.interpreter,
    )


@functools.lru_cache(maxsize=8)
def _os_release() -> dict[str, str]:
    for p in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(p, encoding="utf-8", errors="replace") as f:
                return parse_os_release(f.read())
        except OSError:
            continue
    return {}


def host_distro() -> str | None:
    return detect_distro(_os_release())


def find_interpreter(
    target: Target | str,
    *,
    qemu_path: str | None = None,
    qemu_suffix: str | None = None,
    uname_m: str | None = None,
    distro: str | None = None,
    facts: Callable[[str], FileFacts] = gather_facts,
) -> InterpreterInfo:
    """The interpreter for ``target`` on this host (see the module docstring for the order)."""
    if isinstance(target, str):
        target = table.get_target(target)
    machine = uname_m if uname_m is not None else os.uname().machine
    found = [(facts(p), src) for p, src in candidate_paths(target, qemu_path, qemu_suffix)]
    return choose(
        target,
        found,
        machine,
        distro if distro is not None else host_distro(),
        qemu_path,
    )


def find_all(
    targets: Sequence[Target],
    *,
    qemu_path: str | None = None,
    qemu_suffix: str | None = None,
    uname_m: str | None = None,
) -> dict[str, InterpreterInfo]:
    """:func:`find_interpreter` for each target (files are stat'ed once each)."""
    cache: dict[str, FileFacts] = {}

    def cached(path: str) -> FileFacts:
        if path not in cache:
            cache[path] = gather_facts(path)
        return cache[path]

    return {
        t.name: find_interpreter(
            t, qemu_path=qemu_path, qemu_suffix=qemu_suffix, uname_m=uname_m, facts=cached
        )
        for t in targets
    }


@functools.lru_cache(maxsize=64)
def qemu_version(path: str, timeout: float = VERSION_TIMEOUT) -> str | None:
    """Run ``<path> --version`` (one short-lived process) and parse the version."""
    try:
        ran = proc.run([path, "--version"], timeout=timeout)
    except (OSError, proc.TimedOut):
        return None
    return parse_qemu_version(ran.out)
