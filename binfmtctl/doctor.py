"""``binfmtctl doctor``: the host's binfmt_misc state turned into findings.

One edge function, :func:`gather`, reads everything once into a :class:`HostFacts`
snapshot (kernel, mount, the live table, every interpreter, the process's context,
persistence files, rootless availability, optional probe runs). Every check is a pure
function over that snapshot returning :class:`Finding` records
``(code, severity, entry, message, fix)``; :func:`run_checks` runs them all and sorts
the findings most severe first. :func:`apply_fixes` (``doctor --fix``) is the only
part that writes, and only the safe fixes named below.

Finding codes (stable; ``entry`` names the binfmt_misc entry concerned, or is null):

========================================  ==========================================================
code                                      meaning
========================================  ==========================================================
``kernel``                                info: kernel version and what it supports (F >= 4.8, P via AT_FLAGS >= 5.12, per-namespace instances >= 6.7)
``kernel-no-binfmt``                      error: binfmt_misc is not in /proc/filesystems (module not loaded or not built)
``kernel-flag-unsupported``               error: an entry uses a flag the judged kernel does not know (F before 4.8): EINVAL there
``kernel-rejects-entry``                  error: the judged kernel would refuse an entry for another reason (e.g. magic past 128 bytes before 5.1)
``mount-missing``                         error: the binfmt_misc directory does not exist (/proc not mounted, or hidden)
``not-mounted``                           error: binfmt_misc is not mounted: nothing is registered, nothing can be
``automount-untriggered``                 warning: a systemd automount that nobody triggered yet (a private mount in a container can then lose its entries)
``read-only``                             warning: the mount (or /proc/sys) is read-only: entries can be read and used but not changed here
``status-disabled``                       error: the global status is disabled: no entry is used
``status-unreadable``                     warning: the global status file cannot be read
``register-write-only``                   info: register is write-only; `cat register` gives 'Invalid argument' on every healthy host
``context``                               info: who runs doctor (root, CAP_SYS_ADMIN, container, user namespace, WSL, VM) and who sees the registrations
``entry-disabled``                        warning: an entry is registered but disabled
``interpreter-missing``                   error: no F and the interpreter does not exist: every matching exec fails
``interpreter-gone-pinned``               warning: F pinned an interpreter that is gone from the host: works until reboot, fails to register next boot
``interpreter-not-executable``            error (warning with F): the interpreter is not an executable regular file (or on a noexec mount)
``interpreter-dynamic``                   warning: an emulator interpreter is dynamically linked: fails in containers and chroots even with F
``interpreter-wrong-arch``                error: the interpreter is built for an architecture this host does not run
``missing-f-flag``                        warning: an emulator entry without F: the interpreter path is looked up inside every container/chroot
``magic-bare-hex``                        error: magic (or mask) written as bare hex digits without \\x: registers, matches nothing
``mask-elf-coverage``                     warning: an ELF magic/mask that leaves class, byte order or machine open
``interpreter-untrusted``                 error with C/O, else warning: a non-root user controls the interpreter path (a component, a symlink, or a missing file they can create)
``preserve-argv0-mismatch``               error/warning: P flag and interpreter disagree (Debian -binfmt-P without P; P on < 5.12 with a QEMU that cannot know)
``host-hijack``                           error: an entry (enabled or not) matches what the host runs natively (its ELF classes, i386 on x86_64, #! scripts, extensions of programs on PATH)
``host-family``                           warning: a QEMU entry for a CPU family the host runs natively, where it is no hijack (arm on some aarch64 hosts); i386 on x86_64 is ``host-hijack``
``overlap``                               warning (info if same interpreter): two entries match the same files; the newest enabled one wins
``target-not-registered``                 error: a --target has no enabled entry that matches its binaries
``not-persistent``                        warning: a live entry no boot-time source registers: lost at reboot
``config-not-live``                       warning: a configured entry (binfmt.d, update-binfmts, binfmtctl config) is not live, or differs
``boot-differs``                          warning: a live entry that a boot-time source (binfmt.d, update-binfmts) registers differently
``persistence-tools-conflict``            warning: several boot-time managers configure the same entries or are ordered so one undoes the other
``systemd-binfmt-flush``                  warning: systemd-binfmt is active and this live entry is in no binfmt.d file: any restart flushes it
``persistence-unchecked``                 info: the persistence checks could not run (binfmtctl.persist unavailable)
``rootless``                              info: whether ``binfmtctl run`` (rootless, private emulation) works here, and why not
``probe-ok``                              info (--probe): the targets whose probe program ran through the kernel
``probe-failed``                          error (--probe): a target's probe program did not run, and why
``in-use-interpreter-stale``              warning: processes run through an entry whose interpreter file is gone or was replaced on disk (they keep the old inode)
``container-engine``                      info: a container engine (dockerd, containerd, buildkitd, podman) runs: containers started before a registration see it only with F
========================================  ==========================================================

"Healthy" means: no error and no warning finding. Info findings never change the exit
status.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from binfmtctl import boot_view, proc, table
from binfmtctl.binfmt_misc import (
    CAP_SYS_ADMIN,
    DEFAULT_MOUNT,
    BinfmtMisc,
    MountState,
    cap_eff,
    filesystems_has_binfmt,
    is_standard_mount,
    mount_state,
    on_read_only_fs,
    open_exec_errno,
)
from binfmtctl.entry import Entry, iter_binfmt_d_lines, parse_register, render_register
from binfmtctl.errors import BinfmtctlError
from binfmtctl.grammar import is_bare_hex
from binfmtctl.hijack import NativeSamples, hijack_problem
from binfmtctl.hijack import gather as hijack_gather
from binfmtctl.install import ProbeResult
from binfmtctl.interpreters import FileFacts, expects_preserve_argv0, host_arches
from binfmtctl.rootfs import Root, read_regular
from binfmtctl.rules import KernelProfile, validate
from binfmtctl.trust import Verdict, interpreter_problem
from binfmtctl.usage import Snapshot
from binfmtctl.wording import article, plural

SEVERITIES = ("error", "warning", "info")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FULL_UID_MAP = "0 0 4294967295"
BINFMT_D_DIRS = (
    "etc/binfmt.d",
    "run/binfmt.d",
    "usr/local/lib/binfmt.d",
    "usr/lib/binfmt.d",
    "lib/binfmt.d",
)
UNIT_DIRS = (
    "etc/systemd/system",
    "run/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
)
SYSTEMD_BINFMT = "systemd-binfmt.service"
BINFMT_SUPPORT = "binfmt-support.service"

#: code -> one-line meaning (the module docstring's table; README lists the same)
CODES: Mapping[str, str] = {
    "kernel": "kernel version and the features it has",
    "kernel-no-binfmt": "binfmt_misc is not in /proc/filesystems",
    "kernel-flag-unsupported": "an entry uses a flag the judged kernel does not know",
    "kernel-rejects-entry": "the judged kernel would refuse an entry",
    "mount-missing": "the binfmt_misc directory does not exist",
    "not-mounted": "binfmt_misc is not mounted",
    "automount-untriggered": "an untriggered systemd automount",
    "read-only": "the mount or /proc/sys is read-only",
    "status-disabled": "the global status is disabled",
    "status-unreadable": "the global status file cannot be read",
    "register-write-only": "register is write-only: `cat register` gives Invalid argument",
    "context": "who runs doctor and who sees the registrations",
    "entry-disabled": "an entry is disabled",
    "interpreter-missing": "no F and the interpreter does not exist",
    "interpreter-gone-pinned": "F pinned an interpreter that is gone from the host",
    "interpreter-not-executable": "the interpreter is not executable",
    "interpreter-dynamic": "an emulator interpreter is dynamically linked",
    "interpreter-wrong-arch": "the interpreter is built for another architecture",
    "missing-f-flag": "an emulator entry without F",
    "magic-bare-hex": "magic written as hex digits without \\x",
    "mask-elf-coverage": "an ELF mask leaving class, byte order or machine open",
    "interpreter-untrusted": "a non-root user controls the interpreter path",
    "preserve-argv0-mismatch": "P flag and interpreter disagree",
    "host-hijack": "an entry matches what the host runs natively",
    "host-family": "a QEMU entry for a CPU the host runs natively",
    "overlap": "two entries match the same files",
    "target-not-registered": "a requested target has no enabled entry",
    "not-persistent": "a live entry nothing registers at boot",
    "config-not-live": "a configured entry is not live (or differs)",
    "boot-differs": "a live entry a boot-time source registers differently",
    "persistence-tools-conflict": "boot-time managers that undo each other",
    "systemd-binfmt-flush": "a live entry a systemd-binfmt restart would flush",
    "persistence-unchecked": "persistence could not be checked",
    "rootless": "whether rootless emulation (binfmtctl run) works here",
    "probe-ok": "probe programs that ran",
    "probe-failed": "a probe program that did not run",
    "in-use-interpreter-stale": "processes run an interpreter file that is gone or replaced on disk",
    "container-engine": "a container engine runs: containers started earlier see only F entries",
}


# -- the record ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One thing doctor found: a stable ``code``, ``severity`` (error, warning, info), the
    ``entry`` concerned (None for host-wide findings), what it means and the fix."""

    code: str
    severity: str
    entry: str | None
    message: str
    fix: str

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if not self.fix:
            raise ValueError(f"finding {self.code}: every finding names its fix")

    @property
    def is_problem(self) -> bool:
        return self.severity in ("error", "warning")

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "entry": self.entry,
            "message": self.message,
            "fix": self.fix,
        }


# -- facts -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InterpreterFacts:
    """An interpreter path as the host sees it: file and ELF facts, the errno ``open_exec``
    would give, and ownership/mode of the file and each parent directory."""

    file: FileFacts
    exec_errno: str | None = None
    trust: Verdict | None = None  # None: not checked


@dataclass(frozen=True)
class ContextFacts:
    """Who and where doctor runs."""

    euid: int = 0
    cap_eff: int | None = None
    uid_map: str | None = FULL_UID_MAP
    dockerenv: bool = False
    containerenv: str | None = None  # /run/.containerenv text ("" if empty), None if absent
    pid1_container: str | None = None  # container= from PID 1's environment
    pid1_cgroup: str | None = None
    detect_virt_container: str | None = None  # systemd-detect-virt -c (None: not run)
    detect_virt_vm: str | None = None  # systemd-detect-virt --vm
    proc_version: str = ""
    wsl_interop: bool = False
    proc_sys_writable: bool = True
    #: can this process write the mount's register file (None: there is none to write)
    register_writable: bool | None = True

    @property
    def has_sys_admin(self) -> bool:
        if self.cap_eff is None:
            return self.euid == 0
        return bool(self.cap_eff >> CAP_SYS_ADMIN & 1)

    @property
    def in_user_namespace(self) -> bool:
        if self.uid_map is None:
            return False
        return " ".join(self.uid_map.split()) != FULL_UID_MAP

    @property
    def container(self) -> str | None:
        """The container runtime, or None when not in a container (as far as we can tell)."""
        if self.detect_virt_container not in (None, "", "none"):
            return self.detect_virt_container
        if self.pid1_container:
            return self.pid1_container
        if self.containerenv is not None:
            return "podman" if "podman" in self.containerenv or not self.containerenv else "oci"
        if self.dockerenv:
            return "docker"
        cg = self.pid1_cgroup or ""
        for marker, name in (
            ("kubepods", "kubernetes"),
            ("docker", "docker"),
            ("libpod", "podman"),
            ("lxc", "lxc"),
            ("containerd", "containerd"),
        ):
            if marker in cg:
                return name
        return None

    @property
    def wsl(self) -> str | None:
        """``WSL1``, ``WSL2`` or None (WSL1 reports a 4.4.0-...-Microsoft kernel)."""
        v = self.proc_version.lower()
        if "microsoft" not in v and "wsl" not in v and not self.wsl_interop:
            return None
        if "4.4.0" in v and "microsoft" in v and "wsl2" not in v:
            return "WSL1"
        return "WSL2"

    @property
    def vm(self) -> str | None:
        v = self.proc_version.lower()
        if "linuxkit" in v:
            return "Docker Desktop's VM"
        if "orbstack" in v:
            return "OrbStack's VM"
        if self.detect_virt_vm not in (None, "", "none"):
            return f"a {self.detect_virt_vm} VM"
        return None


@dataclass(frozen=True)
class ManagerFacts:
    """Boot-time managers of binfmt_misc, detected from files under a root."""

    systemd_binfmt_unit: bool = False
    systemd_binfmt_wanted: bool = False
    systemd_binfmt_masked: bool = False
    systemd_binfmt_skipped_on_wsl: bool = False  # drop-in ConditionVirtualization=!wsl
    binfmt_d_nonempty: bool = False  # systemd-binfmt's ConditionDirectoryNotEmpty=|...
    binfmt_support_unit: bool = False
    binfmt_support_enabled: bool = False
    binfmt_support_sysv: bool = False  # /etc/init.d script linked into an rc?.d
    var_lib_binfmts: tuple[str, ...] = ()
    binfmtctl_unit: str | None = None  # the unit file path, when installed
    binfmtctl_enabled: bool = False
    binfmtctl_unit_text: str = ""

    @property
    def systemd_binfmt_active(self) -> bool:
        return (
            self.systemd_binfmt_unit
            and self.systemd_binfmt_wanted
            and not self.systemd_binfmt_masked
            and not self.systemd_binfmt_skipped_on_wsl
            and self.binfmt_d_nonempty
        )

    @property
    def binfmt_support_active(self) -> bool:
        return (
            self.binfmt_support_unit and self.binfmt_support_enabled
        ) or self.binfmt_support_sysv

    @property
    def binfmtctl_active(self) -> bool:
        return self.binfmtctl_unit is not None and self.binfmtctl_enabled

    @property
    def binfmtctl_after_systemd_binfmt(self) -> bool:
        return _unit_mentions(self.binfmtctl_unit_text, "After", SYSTEMD_BINFMT)

    @property
    def binfmtctl_partof_systemd_binfmt(self) -> bool:
        return any(
            _unit_mentions(self.binfmtctl_unit_text, key, SYSTEMD_BINFMT)
            for key in ("PartOf", "BindsTo")
        )


def _unit_mentions(text: str, key: str, unit: str) -> bool:
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == key and unit in v.split():
            return True
    return False


@dataclass(frozen=True)
class PersistFacts:
    """What would register entries at boot. ``checked`` False: binfmtctl.persist is not
    available (``error`` says why) and the persistence checks are skipped."""

    checked: bool = True
    error: str | None = None
    #: entry name -> files that would register it at boot
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    config_path: str | None = None
    config_entries: tuple[Entry, ...] = ()
    config_error: str | None = None
    #: entry name -> its registration in a binfmt.d file other than binfmtctl's config
    binfmt_d_entries: Mapping[str, Entry] = field(default_factory=dict)
    #: names some binfmt.d file registers (binfmtctl's config too when it lives there)
    binfmt_d_names: frozenset[str] = frozenset()
    managers: ManagerFacts = field(default_factory=ManagerFacts)
    #: entry name -> (file, registration) for each boot source other than binfmtctl's config
    boot_definitions: Mapping[str, tuple[tuple[str, Entry], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class HostFacts:
    """Everything the checks look at, gathered once by :func:`gather`."""

    profile: KernelProfile  # the kernel judged (--kernel), usually the running one
    running: KernelProfile
    uname_m: str = "x86_64"
    filesystems: str | None = "nodev\tbinfmt_misc\n"
    mount: MountState = field(default_factory=lambda: MountState("mounted", DEFAULT_MOUNT))
    status_enabled: bool | None = True
    status_error: str | None = None
    entries: tuple[Entry, ...] = ()  # newest first
    owned: frozenset[str] = frozenset()
    interpreters: Mapping[str, InterpreterFacts] = field(default_factory=dict)
    native: NativeSamples = field(default_factory=NativeSamples)
    context: ContextFacts = field(default_factory=ContextFacts)
    persist: PersistFacts = field(default_factory=PersistFacts)
    rootless: tuple[bool, str, str] | None = None
    targets: tuple[str, ...] = ()  # --target, as QEMU target names
    probes: tuple[ProbeResult, ...] | None = None
    usage: Snapshot | None = None  # processes running now (binfmtctl.usage)

    @property
    def readable(self) -> bool:
        return self.mount.state == "mounted"

    def interp(self, entry: Entry) -> InterpreterFacts | None:
        return self.interpreters.get(entry.interpreter)


# -- helpers for messages --------------------------------------------------------------------------
def _qemu_target(entry: Entry) -> str | None:
    found = table.qemu_target(entry)
    return None if found is None else found.target


def _is_emulator(entry: Entry) -> bool:
    """An entry that runs ELF binaries through an emulator (QEMU, box64, FEX, ...)."""
    return entry.type == "M" and (
        (entry.offset == 0 and entry.magic.startswith(b"\x7fELF"))
        or _qemu_target(entry) is not None
    )


def _reinstall_fix(entry: Entry, what: str) -> str:
    t = _qemu_target(entry)
    if t is not None:
        return f"binfmtctl install --replace {t}  ({what})"
    return (
        f"binfmtctl remove {entry.name}, then register it again with a working interpreter ({what})"
    )


def _register_cmd(entry: Entry) -> str:
    text = os.fsdecode(render_register(entry))
    return f"binfmtctl register --replace '{text}'"


# -- checks: kernel and mount ---------------------------------------------------------------------
def check_kernel(facts: HostFacts) -> list[Finding]:
    """Kernel support and version facts; entries the judged kernel would refuse."""
    p = facts.profile
    out: list[Finding] = []
    if (
        facts.filesystems is not None
        and not filesystems_has_binfmt(facts.filesystems)
        and facts.mount.state != "mounted"
    ):
        out.append(
            Finding(
                "kernel-no-binfmt",
                "error",
                None,
                "this kernel has no binfmt_misc: it is not in /proc/filesystems (the module is not loaded, or the kernel was built without CONFIG_BINFMT_MISC); mounting it fails with 'no such device'",
                "modprobe binfmt_misc (as root, on the host), or use a kernel built with CONFIG_BINFMT_MISC",
            )
        )
    judged = f"Linux {p.label}" + (
        f" (judged; running {facts.running.label})" if p.version != facts.running.version else ""
    )
    out.append(
        Finding(
            "kernel",
            "info",
            None,
            f"{judged}: F flag {'yes' if p.at_least(4, 8) else 'NO (needs 4.8)'}; "
            f"P visible to interpreters (AT_FLAGS) {'yes' if p.preserve_argv0_auxv else 'no (needs 5.12)'}; "
            f"per-user-namespace instances {'yes' if p.per_userns else 'no (needs 6.7): one table for the host and every container'}",
            "nothing to fix; to judge the entries for another kernel: binfmtctl doctor --kernel X.Y",
        )
    )
    seen: set[str] = set()
    judged_entries = [(e, "live") for e in facts.entries] + [
        (e, "configured") for e in facts.persist.config_entries
    ]
    for e, where in judged_entries:
        key = f"{e.name}\0{where}"
        if key in seen:
            continue
        seen.add(key)
        unknown = [f for f in e.flags if f not in p.known_flags]
        if unknown:
            out.append(
                Finding(
                    "kernel-flag-unsupported",
                    "error",
                    e.name,
                    f"the {where} entry {e.name} uses flag {''.join(unknown)}, which Linux {p.label} does not know"
                    + (" (F was added in 4.8)" if "F" in unknown else "")
                    + ": writing it to register fails with 'Invalid argument' (EINVAL) there",
                    f"on Linux {p.label} register it without {''.join(unknown)}"
                    + (
                        " (then the interpreter must exist inside every container and chroot: copy a static QEMU there)"
                        if "F" in unknown
                        else ""
                    )
                    + ", or upgrade the kernel to 4.8 or later; binfmtctl validate --kernel "
                    + p.label
                    + " shows every problem",
                )
            )
            continue
        verdict = validate(render_register(e) + b"\n", p)
        errors = [x for x in verdict.problems if x.is_error]
        if errors:
            x = errors[0]
            out.append(
                Finding(
                    "kernel-rejects-entry",
                    "error",
                    e.name,
                    f"Linux {p.label} would refuse the {where} entry {e.name} ({x.errno}): {x.field}: {x.message}",
                    x.fix,
                )
            )
    return out


def _mount_fix(facts: HostFacts) -> str:
    ctx = facts.context
    path = facts.mount.path
    if not is_standard_mount(path):  # --mount DIR: doctor --fix mounts only an empty DIR
        return f"mount -t binfmt_misc binfmt_misc {path}  (as root); binfmtctl --mount {path} doctor --fix mounts it there only if the directory is empty"
    if not ctx.proc_sys_writable:
        return "/proc/sys is read-only here (a container?): mount and register on the host, or run the container with --privileged"
    if ctx.euid != 0 or not ctx.has_sys_admin:
        return f"as root on the host: mount -t binfmt_misc binfmt_misc {path}  (or sudo binfmtctl doctor --fix); without root, binfmtctl run gives a private table (Linux >= 6.7)"
    return f"binfmtctl doctor --fix (mounts it), or mount -t binfmt_misc binfmt_misc {path}; at boot: systemctl enable proc-sys-fs-binfmt_misc.mount"


def check_mount(facts: HostFacts) -> list[Finding]:
    """Mount state (absent, untriggered automount, mounted, read-only) and the global status."""
    st = facts.mount
    ctx = facts.context
    out: list[Finding] = []
    configured = len(facts.persist.sources)
    lost = (
        f"; {configured} configured entr{'y is' if configured == 1 else 'ies are'} therefore not live"
        if configured
        else ""
    )
    if st.state == "missing":
        out.append(
            Finding(
                "mount-missing",
                "error",
                None,
                f"{st.path} does not exist: /proc is not mounted here, or /proc/sys is hidden (a container?)",
                "run doctor on the host, or mount /proc; inside a container binfmt_misc is managed by the host",
            )
        )
    elif st.state == "not-mounted":
        out.append(
            Finding(
                "not-mounted",
                "error",
                None,
                f"binfmt_misc is not mounted at {st.path}: nothing is registered and nothing can be; registering gives 'No such file or directory'{lost}",
                _mount_fix(facts),
            )
        )
    elif st.state == "automount":
        out.append(
            Finding(
                "automount-untriggered",
                "warning",
                None,
                f"{st.path} is a systemd automount nobody has triggered yet: a privileged container that mounts its own binfmt_misc there, registers and unmounts loses its entries ('installed OK' but exec format error)",
                f"trigger it on the host: ls {st.path}  (or binfmtctl doctor --fix); then register",
            )
        )
    if st.state == "mounted" and st.read_only:
        out.append(
            Finding(
                "read-only",
                "warning",
                None,
                f"binfmt_misc at {st.path} is mounted read-only: entries are used, but nothing can be registered, enabled or removed here ('Read-only file system')",
                "register from the host (or a --privileged container)"
                if ctx.container
                else f"mount -o remount,rw {st.path}",
            )
        )
    elif st.state in ("not-mounted", "automount") and not ctx.proc_sys_writable:
        out.append(
            Finding(
                "read-only",
                "warning",
                None,
                "/proc/sys is read-only here, so binfmt_misc cannot be mounted and nothing can be registered from this process",
                "register on the host (or in a --privileged container, where /proc/sys is writable)",
            )
        )
    if st.state == "mounted":
        if facts.status_enabled is False:
            out.append(
                Finding(
                    "status-disabled",
                    "error",
                    None,
                    f"binfmt_misc is disabled globally ({st.path}/status says disabled): no entry is used, every foreign binary fails with 'exec format error'",
                    f"echo 1 > {st.path}/status  (as root; hardened hosts set 0 on purpose: check why first)",
                )
            )
        elif facts.status_enabled is None:
            out.append(
                Finding(
                    "status-unreadable",
                    "warning",
                    None,
                    f"cannot read {st.path}/status: {facts.status_error or 'unknown error'}",
                    f"check the mount: findmnt {st.path}; remount it (mount -t binfmt_misc binfmt_misc {st.path})",
                )
            )
    return out


def check_register_file(facts: HostFacts) -> list[Finding]:
    """The classic question "cat register: Invalid argument" answered where it can be asked."""
    from binfmtctl.control_files import explain

    if facts.mount.state != "mounted":
        return []
    c = explain("register", facts.mount.path)
    assert c is not None
    return [Finding("register-write-only", "info", None, c.message, c.fix)]


# -- check: context -------------------------------------------------------------------------------
def scope(facts: HostFacts) -> str:
    """Who will see registrations made from here."""
    ctx = facts.context
    if ctx.wsl:
        return f"every {ctx.wsl} distro on this Windows machine (they share one kernel); Windows itself does not use them"
    if ctx.in_user_namespace and facts.profile.per_userns:
        return "only this user namespace (this container or sandbox) and its children: the host and other containers do not see them"
    if ctx.container:
        return (
            "the host and every container on this kernel: this container shares the host's table"
            + (
                ""
                if facts.profile.per_userns
                else f" (Linux {facts.profile.label} has one global table)"
            )
        )
    if ctx.vm:
        return f"only {ctx.vm}: the machine that runs the VM does not see them"
    return "this host: every process and container on this kernel that has no private binfmt_misc"


def check_context(facts: HostFacts) -> list[Finding]:
    """Root or not, CAP_SYS_ADMIN, container, user namespace, WSL, VM; and the scope."""
    ctx = facts.context
    parts = [
        f"running as {'root' if ctx.euid == 0 else f'uid {ctx.euid} (not root)'}",
        "with CAP_SYS_ADMIN" if ctx.has_sys_admin else "without CAP_SYS_ADMIN",
    ]
    if ctx.container:
        parts.append(f"inside {article(ctx.container)} container")
    if ctx.in_user_namespace:
        parts.append("in a user namespace (uid_map is not the full identity map)")
    if ctx.wsl:
        parts.append(f"on {ctx.wsl}")
    elif ctx.vm:
        parts.append(f"in {ctx.vm}")
    if ctx.register_writable is False or (
        ctx.register_writable is None and not ctx.proc_sys_writable
    ):
        parts.append(
            "binfmt_misc not writable here"
            if ctx.register_writable is False
            else "/proc/sys read-only"
        )
    can_write = (
        ctx.euid == 0
        and ctx.has_sys_admin
        and (ctx.register_writable if ctx.register_writable is not None else ctx.proc_sys_writable)
    )
    msg = ", ".join(parts) + f"; registrations made here are seen by {scope(facts)}"
    if can_write:
        fix = "nothing to fix; register where the builds run (binfmtctl install TARGET)"
    elif ctx.euid != 0:
        fix = "to change the table: sudo binfmtctl ...; without root: binfmtctl run (private, Linux >= 6.7)"
    else:
        fix = "to change the host's table, run on the host (or a --privileged container)"
    if ctx.wsl == "WSL1":
        fix += "; WSL1 emulates binfmt_misc only partly: use WSL2"
    return [Finding("context", "info", None, msg, fix)]


# -- checks: one entry each ------------------------------------------------------------------------
EntryCheck = Callable[[Entry, HostFacts], "Finding | None"]


def check_entry_disabled(e: Entry, facts: HostFacts) -> Finding | None:
    if e.enabled:
        return None
    return Finding(
        "entry-disabled",
        "warning",
        e.name,
        f"{e.name} is registered but disabled: the kernel skips it, matching binaries get 'exec format error' (or the next matching entry)",
        f"binfmtctl enable {e.name}  (or binfmtctl remove {e.name} if it is not wanted)",
    )


def check_interpreter_missing(e: Entry, facts: HostFacts) -> Finding | None:
    i = facts.interp(e)
    if i is None or i.file.exists:
        return None
    if "F" in e.flags:
        return Finding(
            "interpreter-gone-pinned",
            "warning",
            e.name,
            f"{e.name} has F: the kernel pinned {e.interpreter} at registration and still uses it, but the file is gone from the host; it works until reboot, then registering it fails with 'No such file or directory'",
            _reinstall_fix(e, "points it at an interpreter that exists"),
        )
    return Finding(
        "interpreter-missing",
        "error",
        e.name,
        f"{e.interpreter} does not exist and {e.name} has no F: the kernel opens that path at every exec, so every matching binary fails with 'No such file or directory' (inside containers and chroots too)",
        _reinstall_fix(e, "a static interpreter, registered with F"),
    )


def check_interpreter_not_executable(e: Entry, facts: HostFacts) -> Finding | None:
    i = facts.interp(e)
    if i is None or not i.file.exists or i.exec_errno in (None, "ENOENT", "ENOTDIR"):
        return None
    why = (
        "not a regular file"
        if not i.file.regular
        else "not executable"
        if not i.file.executable
        else f"not executable here ({i.exec_errno}: a noexec mount?)"
    )
    if "F" in e.flags:
        return Finding(
            "interpreter-not-executable",
            "warning",
            e.name,
            f"{e.interpreter} is {why}; {e.name} has F, so the file pinned at registration still works, but registering it again (at boot) fails with 'Permission denied'",
            f"chmod 755 {e.interpreter}, or {_reinstall_fix(e, 'another interpreter')}",
        )
    return Finding(
        "interpreter-not-executable",
        "error",
        e.name,
        f"{e.interpreter} is {why}: every binary {e.name} matches fails with 'Permission denied'",
        f"chmod 755 {e.interpreter} (and mount its filesystem without noexec), or {_reinstall_fix(e, 'another interpreter')}",
    )


def check_interpreter_dynamic(e: Entry, facts: HostFacts) -> Finding | None:
    i = facts.interp(e)
    if i is None or i.file.linkage != "dynamic" or not _is_emulator(e):
        return None
    loader = i.file.loader or "its loader"
    if "F" in e.flags:
        msg = f"{e.interpreter} is dynamically linked ({loader}): F pins the file, but its loader and libraries are still loaded inside each container or chroot, where they are usually missing: foreign binaries fail there with 'No such file or directory'"
    else:
        msg = f"{e.interpreter} is dynamically linked ({loader}): it only works where {loader} and its libraries exist, not inside foreign containers or chroots"
    t = _qemu_target(e)
    return Finding(
        "interpreter-dynamic",
        "warning",
        e.name,
        msg,
        "install a static build (apt-get install qemu-user-static), then "
        + (f"binfmtctl install --replace {t}" if t else f"re-register {e.name} with it"),
    )


def check_interpreter_wrong_arch(e: Entry, facts: HostFacts) -> Finding | None:
    i = facts.interp(e)
    if i is None or not i.file.exists or i.file.elf_error is not None:
        return None
    arch = i.file.elf_arch
    if arch is None and i.file.elf_machine is None:
        return None
    runnable = host_arches(facts.uname_m)
    if arch in runnable:
        return None
    what = arch or i.file.elf_machine
    return Finding(
        "interpreter-wrong-arch",
        "error",
        e.name,
        f"{e.interpreter} is built for {what}, but this host ({facts.uname_m}) runs {'/'.join(runnable)}: the kernel cannot start the interpreter, every binary {e.name} matches fails ('exec format error')",
        _reinstall_fix(e, f"an interpreter built for {facts.uname_m}"),
    )


def check_missing_f(e: Entry, facts: HostFacts) -> Finding | None:
    if "F" in e.flags or not facts.profile.at_least(4, 8) or not _is_emulator(e):
        return None
    i = facts.interp(e)
    if i is None or not i.file.exists:
        return None  # interpreter-missing says more
    return Finding(
        "missing-f-flag",
        "warning",
        e.name,
        f"{e.name} has no F: the kernel looks {e.interpreter} up at every exec, inside the container or chroot doing the exec; it works on the host, but foreign binaries in containers fail with 'no such file or directory'",
        _reinstall_fix(e, "adds F, so the kernel opens the interpreter once, on the host"),
    )


def check_magic_bare_hex(e: Entry, facts: HostFacts) -> Finding | None:
    if e.type != "M" or not is_bare_hex(e.magic):
        return None
    meant_magic = bytes.fromhex(e.magic.decode())
    meant_mask = (
        bytes.fromhex(e.mask.decode()) if e.mask is not None and is_bare_hex(e.mask) else e.mask
    )
    if meant_mask is not None and len(meant_mask) != len(meant_magic):
        meant_mask = None
    meant = replace(e, magic=meant_magic, mask=meant_mask, enabled=True)
    t = _qemu_target(e)
    also = " (and the mask too)" if e.mask is not None and is_bare_hex(e.mask) else ""
    fix = (
        f"binfmtctl remove {e.name} && binfmtctl install {t}  (QEMU's full magic and mask)"
        if t is not None
        else f"binfmtctl remove {e.name} && {_register_cmd(meant).replace(' --replace', '')}"
    )
    return Finding(
        "magic-bare-hex",
        "error",
        e.name,
        f"the magic of {e.name} is the ASCII text {e.magic.decode()!r}{also}, not the {len(meant_magic)} bytes it spells: it was written without \\x, so it registered but matches nothing you meant",
        fix,
    )


def check_mask_coverage(e: Entry, facts: HostFacts) -> Finding | None:
    if e.type != "M":
        return None
    verdict = validate(render_register(replace(e, enabled=True)) + b"\n", facts.running)
    hits = [p for p in verdict.problems if p.rule == "mask.elf-coverage"]
    if not hits:
        return None
    t = _qemu_target(e)
    return Finding(
        "mask-elf-coverage",
        "warning",
        e.name,
        f"{e.name}: {hits[0].message}",
        f"binfmtctl install --replace {t}  (QEMU's full magic and mask)" if t else hits[0].fix,
    )


def check_interpreter_trust(e: Entry, facts: HostFacts) -> Finding | None:
    i = facts.interp(e)
    if i is None or i.trust is None:
        return None
    p = interpreter_problem(e, i.trust)
    if p is None:
        return None
    return Finding("interpreter-untrusted", p.severity, e.name, p.message, p.fix)


def check_preserve_argv0(e: Entry, facts: HostFacts) -> Finding | None:
    if expects_preserve_argv0(e.interpreter) and "P" not in e.flags:
        return Finding(
            "preserve-argv0-mismatch",
            "error",
            e.name,
            f"{e.interpreter} is Debian's -binfmt-P QEMU, which requires the P flag; {e.name} lacks it, so QEMU refuses every program ('has to be run using kernel binfmt-misc subsystem')",
            _register_cmd(replace(e, flags=e.flags + "P", enabled=True)),
        )
    if (
        "P" in e.flags
        and not expects_preserve_argv0(e.interpreter)
        and not facts.profile.preserve_argv0_auxv
        and _qemu_target(e) is not None
    ):
        return Finding(
            "preserve-argv0-mismatch",
            "warning",
            e.name,
            f"{e.name} has P, but on Linux {facts.profile.label} (< 5.12) QEMU cannot learn that P was used (no AT_FLAGS): programs see a shifted argv ('applet not found')",
            _register_cmd(replace(e, flags=e.flags.replace("P", ""), enabled=True))
            + "  (or use Debian's -binfmt-P interpreter, which knows)",
        )
    return None


def check_host_hijack(e: Entry, facts: HostFacts) -> Finding | None:
    p = hijack_problem(e, facts.native)
    if p is None:
        return None
    state = (
        ""
        if e.enabled
        else " It is disabled now, but enabling it (or registering it again at boot) takes the host over."
    )
    return Finding(
        "host-hijack",
        "error",
        e.name,
        p.message + "." + state,
        f"binfmtctl remove {e.name}  (from a rescue shell if the host no longer runs programs)",
    )


def check_host_family(e: Entry, facts: HostFacts) -> Finding | None:
    t = _qemu_target(e)
    if t is None or hijack_problem(e, facts.native) is not None:
        return None
    try:
        host = table.host_target(facts.uname_m)
        target = table.get_target(t)
    except BinfmtctlError:
        return None
    if target.family != host.family or target.name == host.name:
        return None
    return Finding(
        "host-family",
        "warning",
        e.name,
        f"{e.name} routes {t} binaries through QEMU, but this {host.name} host runs the {host.family} family natively: they become slower and some break (32-bit games, tools that probe the CPU)",
        f"binfmtctl remove {e.name}  (keep it only if this CPU really cannot run {t} binaries)",
    )


ENTRY_CHECKS: tuple[EntryCheck, ...] = (
    check_entry_disabled,
    check_interpreter_missing,
    check_interpreter_not_executable,
    check_interpreter_wrong_arch,
    check_interpreter_dynamic,
    check_missing_f,
    check_magic_bare_hex,
    check_mask_coverage,
    check_interpreter_trust,
    check_preserve_argv0,
    check_host_hijack,
    check_host_family,
)


def check_entries(facts: HostFacts) -> list[Finding]:
    """Every per-entry check on every live entry, in match order."""
    out: list[Finding] = []
    for e in facts.entries:
        for check in ENTRY_CHECKS:
            f = check(e, facts)
            if f is not None:
                out.append(f)
    return out


# -- check: overlaps -------------------------------------------------------------------------------
def overlaps(a: Entry, b: Entry) -> bool:
    """Is there a file both entries match? (E: same extension; M: compatible on every byte
    both masks constrain.)"""
    if a.type != b.type:
        return False
    if a.type == "E":
        return a.extension == b.extension
    ma = a.mask if a.mask is not None else b"\xff" * len(a.magic)
    mb = b.mask if b.mask is not None else b"\xff" * len(b.magic)
    start = max(a.offset, b.offset)
    end = min(a.offset + len(a.magic), b.offset + len(b.magic))
    for pos in range(start, end):
        i, j = pos - a.offset, pos - b.offset
        if (a.magic[i] ^ b.magic[j]) & ma[i] & mb[j]:
            return False
    return True


def check_overlap(facts: HostFacts) -> list[Finding]:
    """Entries whose magic/mask overlap: the newest enabled one wins."""
    out: list[Finding] = []
    es = list(facts.entries)
    for i, newer in enumerate(es):
        for older in es[i + 1 :]:
            if not overlaps(newer, older):
                continue
            if newer.enabled:
                winner, loser, why = (
                    newer,
                    older,
                    "it was registered later: the kernel tries the newest entry first",
                )
            elif older.enabled:
                winner, loser, why = older, newer, f"{newer.name} is newer but disabled"
            else:
                winner, loser, why = (
                    newer,
                    older,
                    "neither is enabled now; enabled, the newer would win",
                )
            same = newer.interpreter == older.interpreter
            out.append(
                Finding(
                    "overlap",
                    "info" if same else "warning",
                    loser.name,
                    f"{newer.name} and {older.name} match the same files; {winner.name} ({winner.interpreter}) wins because {why}"
                    + (
                        "; both run the same interpreter"
                        if same
                        else f", so {loser.name} ({loser.interpreter}) is never used for them; the winner can change with registration order (reboot, package upgrade)"
                    ),
                    "nothing to fix (same interpreter); binfmtctl remove one of them to tidy up"
                    if same
                    else f"binfmtctl remove {loser.name} (or {winner.name}) so one handler is left; binfmtctl which FILE shows the winner for a file",
                )
            )
    return out


# -- check: requested targets ------------------------------------------------------------------
def check_targets(facts: HostFacts) -> list[Finding]:
    """Each --target needs an enabled entry that matches its binaries."""
    out: list[Finding] = []
    for name in facts.targets:
        t = table.get_target(name)
        header = t.sample_header()
        handled = facts.status_enabled is not False and any(
            e.enabled and e.matches_header(header) for e in facts.entries
        )
        if not handled:
            out.append(
                Finding(
                    "target-not-registered",
                    "error",
                    None,
                    f"no enabled entry matches {t.name} binaries ({t.description}): running them gives 'exec format error'",
                    f"binfmtctl install {t.name}",
                )
            )
    return out


# -- check: persistence ------------------------------------------------------------------------------
def _manager_of(path: str, p: PersistFacts) -> str:
    if p.config_path is not None and path == p.config_path:
        return "binfmtctl"
    parts = path.split(os.sep)
    if "binfmt.d" in parts:
        return "systemd-binfmt"
    if "binfmts" in parts:
        return "binfmt-support"
    return "other"


def _effective(files: Iterable[str], p: PersistFacts) -> tuple[str, ...]:
    """The sources that really register something at boot: update-binfmts files count
    only while binfmt-support is enabled (packages ship them whether it is installed or not)."""
    return tuple(
        f
        for f in files
        if _manager_of(f, p) != "binfmt-support" or p.managers.binfmt_support_active
    )


def _apply_fix_for(name: str, files: Sequence[str], p: PersistFacts) -> str:
    kinds = {_manager_of(f, p) for f in files}
    if "binfmtctl" in kinds:
        return "binfmtctl apply  (or binfmtctl doctor --fix)"
    if "systemd-binfmt" in kinds:
        f = next(f for f in files if _manager_of(f, p) == "systemd-binfmt")
        return f"/lib/systemd/systemd-binfmt {f}  (applies that file only; never restart systemd-binfmt: it flushes every entry)"
    if "binfmt-support" in kinds:
        imported = any("/var/lib/binfmts/" in f for f in files)
        return f"update-binfmts --enable {name}" + (
            "" if imported else f"  (after update-binfmts --import {name})"
        )
    return f"register it from {files[0]}"


def check_persistence(facts: HostFacts) -> list[Finding]:
    """Live entries nothing restores at boot; configured entries not live; managers that
    undo each other; entries a systemd-binfmt restart would flush."""
    p = facts.persist
    if not p.checked:
        unchecked = Finding(
            "persistence-unchecked",
            "info",
            None,
            f"whether live entries survive a reboot was not checked: {p.error or 'binfmtctl.persist is unavailable'}",
            "update binfmtctl (the persist module ships with it)",
        )
        return [unchecked, *_check_managers(facts)]
    out: list[Finding] = []
    if p.config_error:
        out.append(
            Finding(
                "config-not-live",
                "warning",
                None,
                f"binfmtctl's config {p.config_path} cannot be read: {p.config_error}",
                f"fix or remove {p.config_path}; binfmtctl validate -f {p.config_path} points at the bad line",
            )
        )
    live = {e.name: e for e in facts.entries}
    if facts.readable:
        for e in facts.entries:
            files = _effective(p.sources.get(e.name, ()), p)
            only_cfg = bool(files) and all(
                _manager_of(f, p) == "binfmtctl" and not _in_binfmt_d(f) for f in files
            )
            if not files:
                out.append(
                    Finding(
                        "not-persistent",
                        "warning",
                        e.name,
                        f"{e.name} is live, but no binfmt.d file, update-binfmts entry or binfmtctl config registers it at boot: it is lost at the next reboot",
                        f"binfmtctl persist save {e.name}  (adds it to binfmtctl's config, which systemd-binfmt and binfmtctl.service load at boot), or add it to /etc/binfmt.d/{e.name}.conf",
                    )
                )
            elif only_cfg and not p.managers.binfmtctl_active:
                out.append(
                    Finding(
                        "not-persistent",
                        "warning",
                        e.name,
                        f"{e.name} is only in binfmtctl's config ({files[0]}), which is outside binfmt.d, and binfmtctl.service is not enabled: nothing registers it at boot",
                        "binfmtctl persist enable",
                    )
                )
        desired = {c.name: c for c in p.config_entries}
        for name, all_files in sorted(p.sources.items()):
            files = _effective(all_files, p)
            if not files:
                continue
            le = live.get(name)
            want = desired.get(name)
            if le is None:
                out.append(
                    Finding(
                        "config-not-live",
                        "warning",
                        name,
                        f"{name} is configured ({', '.join(files)}) but not registered now: binaries it should run fail with 'exec format error' until it is applied",
                        _apply_fix_for(name, files, p),
                    )
                )
            elif want is not None and not want.same_registration(le):
                out.append(
                    Finding(
                        "config-not-live",
                        "warning",
                        name,
                        f"the live {name} differs from binfmtctl's config ({p.config_path}): the next boot registers the configured one",
                        "binfmtctl apply  (or binfmtctl doctor --fix) to make the live entry match the config",
                    )
                )
        out.extend(_check_boot_differs(facts, desired))
    for name, all_files in sorted(p.sources.items()):
        files = _effective(all_files, p)
        kinds = {_manager_of(f, p) for f in files} - {"other"}
        if len(kinds) < 2:
            continue
        how = "with different contents"
        if kinds == {"binfmtctl", "systemd-binfmt"}:
            mine = next((c for c in p.config_entries if c.name == name), None)
            theirs = p.binfmt_d_entries.get(name)
            if mine is not None and theirs is not None and mine.same_registration(theirs):
                continue
        else:
            how = "each with its own copy"
        out.append(
            Finding(
                "persistence-tools-conflict",
                "warning",
                name,
                f"{name} is configured by {' and '.join(sorted(kinds))} ({', '.join(files)}), {how}: whichever runs last at boot decides what is registered",
                f"keep one definition: remove {name} from all but one of {', '.join(files)}",
            )
        )
    return out + _check_managers(facts)


def _check_boot_differs(facts: HostFacts, desired: Mapping[str, Entry]) -> list[Finding]:
    """A live entry that a boot-time source registers differently: the next boot (or a
    systemd-binfmt restart) brings back the other one. binfmtctl's config is compared by
    config-not-live (it is applied last, so it wins over the others)."""
    p = facts.persist
    out: list[Finding] = []
    for e in facts.entries:
        if e.name in desired:
            continue
        effective = set(_effective([f for f, _ in p.boot_definitions.get(e.name, ())], p))
        for path, boot in p.boot_definitions.get(e.name, ()):
            if path not in effective or boot.same_registration(e):
                continue
            how = "; ".join(boot_view.differences(e, boot)) or "another registration"
            out.append(
                Finding(
                    "boot-differs",
                    "warning",
                    e.name,
                    f"the live {e.name} is not what {path} registers at boot ({how}): after the next reboot (or a restart of {_manager_of(path, p)}) {e.name} changes",
                    f"binfmtctl persist save {e.name}  (binfmtctl's config is applied after {path}, so the live registration is the one that comes back), or make the live entry match: {_register_cmd(replace(boot, enabled=True))}",
                )
            )
    return out


def _check_managers(facts: HostFacts) -> list[Finding]:
    """Boot-time managers undoing each other, and live entries a systemd-binfmt restart
    flushes (from the unit and binfmt.d files alone)."""
    p = facts.persist
    m = p.managers
    out: list[Finding] = []
    if m.systemd_binfmt_active and m.binfmt_support_active:
        out.append(
            Finding(
                "persistence-tools-conflict",
                "warning",
                None,
                "binfmt-support (update-binfmts, /var/lib/binfmts) and systemd-binfmt (binfmt.d) are both enabled: systemd-binfmt flushes every entry when it (re)starts, binfmt-support registers its own set; which entries survive depends on order and upgrades",
                "keep one manager: on systemd hosts systemctl disable binfmt-support and move its formats to /etc/binfmt.d (binfmtctl export)",
            )
        )
    if m.binfmtctl_active and m.systemd_binfmt_active and not m.binfmtctl_after_systemd_binfmt:
        out.append(
            Finding(
                "persistence-tools-conflict",
                "warning",
                None,
                f"binfmtctl's unit ({m.binfmtctl_unit}) is not ordered after systemd-binfmt.service: at boot systemd-binfmt may flush the entries binfmtctl just registered",
                "binfmtctl persist enable  (re-installs the unit, ordered After=systemd-binfmt.service)",
            )
        )
    if m.systemd_binfmt_active and facts.readable:
        configured = {c.name for c in p.config_entries}
        for e in facts.entries:
            if e.name in p.binfmt_d_names:
                continue
            restored = (
                e.name in configured and m.binfmtctl_active and m.binfmtctl_partof_systemd_binfmt
            )
            if restored:
                continue
            out.append(
                Finding(
                    "systemd-binfmt-flush",
                    "warning",
                    e.name,
                    f"systemd-binfmt is enabled and {e.name} is in no binfmt.d file: any restart of systemd-binfmt (package upgrades do it; so does a systemd container such as minikube or kind sharing this table) flushes it",
                    f"binfmtctl persist save {e.name}  (binfmtctl's config is in /etc/binfmt.d, so systemd-binfmt itself registers it again), or add it to /etc/binfmt.d/{e.name}.conf",
                )
            )
    return out


# -- checks: rootless and probes ------------------------------------------------------------------
def check_rootless(facts: HostFacts) -> list[Finding]:
    """Is rootless emulation (``binfmtctl run``) available here, and why not."""
    if facts.rootless is None:
        return []
    ok, reason, fix = facts.rootless
    if ok:
        return [
            Finding(
                "rootless",
                "info",
                None,
                "rootless emulation is available: binfmtctl run gives any user a private binfmt_misc"
                + (f" ({reason})" if reason else ""),
                fix or "binfmtctl run TARGET -- COMMAND",
            )
        ]
    return [
        Finding(
            "rootless",
            "info",
            None,
            f"rootless emulation (binfmtctl run) is not available here: {reason}",
            fix or "use the host's table (sudo binfmtctl install TARGET)",
        )
    ]


def check_probes(facts: HostFacts) -> list[Finding]:
    """With --probe: what really runs."""
    if facts.probes is None:
        return []
    out: list[Finding] = []
    ok = [r for r in facts.probes if r.ok]
    for r in facts.probes:
        if r.ok:
            continue
        out.append(
            Finding(
                "probe-failed",
                "error",
                r.handler,
                f"a tiny {r.target} program did not run"
                + (f" through {r.handler}" if r.handler else "")
                + f": {r.error or 'unknown failure'}",
                f"see the other findings for {r.handler}"
                if r.handler
                else f"binfmtctl install {r.target}",
            )
        )
    if ok:
        out.append(
            Finding(
                "probe-ok",
                "info",
                None,
                "ran: "
                + ", ".join(
                    f"{r.target} ({'natively' if r.native else 'via ' + str(r.handler)})"
                    for r in ok
                ),
                "nothing to fix; binfmtctl test TARGET re-runs a probe",
            )
        )
    return out


def check_usage(facts: HostFacts) -> list[Finding]:
    """What runs through the entries now (binfmtctl.usage): stale interpreters, engines."""
    if facts.usage is None:
        return []
    from binfmtctl import usage

    return [
        Finding(f.code, f.severity, f.entry, f.message, f.fix)
        for f in usage.findings(facts.entries, facts.usage)
    ]


HostCheck = Callable[[HostFacts], "list[Finding]"]

CHECKS: tuple[HostCheck, ...] = (
    check_kernel,
    check_mount,
    check_register_file,
    check_context,
    check_entries,
    check_overlap,
    check_targets,
    check_persistence,
    check_rootless,
    check_probes,
    check_usage,
)


def run_checks(facts: HostFacts, checks: Iterable[HostCheck] = CHECKS) -> list[Finding]:
    """Every check, findings sorted most severe first (check order kept within a severity)."""
    found: list[Finding] = []
    for check in checks:
        found.extend(check(facts))
    return sorted(found, key=lambda f: _RANK[f.severity])


def has_problems(findings: Iterable[Finding]) -> bool:
    return any(f.is_problem for f in findings)


def to_json(findings: Sequence[Finding]) -> dict[str, object]:
    return {"findings": [f.to_json() for f in findings]}


# -- the edge: gathering facts -------------------------------------------------------------------
def _read(path: str | Path, limit: int = 1 << 20) -> str | None:
    try:  # regular files only, never blocking (a FIFO under --root would hang doctor)
        return read_regular(path, limit).decode("utf-8", "replace")
    except (OSError, ValueError, BinfmtctlError):
        return None


def _read_in(root: str, path: str, limit: int = 1 << 20) -> str | None:
    """A regular file under ``root``, its links resolved inside ``root`` (an image's
    links never lead doctor to the host's files); None if it cannot be read."""
    try:
        with Root(root) as r:
            return r.read_bytes(path, limit).decode("utf-8", "replace")
    except (OSError, ValueError, BinfmtctlError):
        return None


def _under(root: str, rel: str) -> str:
    return os.path.join(root, rel.lstrip("/"))


def _pid1_container(environ: str | None) -> str | None:
    for item in (environ or "").split("\0"):
        if item.startswith("container="):
            return item.partition("=")[2] or None
    return None


def _detect_virt(arg: str) -> str | None:
    exe = shutil.which("systemd-detect-virt")
    if exe is None:
        return None
    try:
        ran = proc.run([exe, arg], timeout=5)
    except (OSError, proc.TimedOut):
        return None
    return ran.out.strip() or None


def gather_context(
    root: str = "/", proc: str = "/proc", mount: str = DEFAULT_MOUNT
) -> ContextFacts:
    """Who and where we run. Commands (systemd-detect-virt) only for the real root."""
    real = os.path.realpath(root) == "/" and proc == "/proc"
    register = os.path.join(mount, "register")
    containerenv = _read_in(root, _under(root, "run/.containerenv"))
    return ContextFacts(
        euid=os.geteuid(),
        cap_eff=cap_eff(_read(os.path.join(proc, "self/status"))),
        uid_map=_read(os.path.join(proc, "self/uid_map")),
        dockerenv=os.path.lexists(_under(root, ".dockerenv")),
        containerenv=containerenv,
        pid1_container=_pid1_container(_read(os.path.join(proc, "1/environ"))),
        pid1_cgroup=_read(os.path.join(proc, "1/cgroup")),
        detect_virt_container=_detect_virt("--container") if real else None,
        detect_virt_vm=_detect_virt("--vm") if real else None,
        proc_version=_read(os.path.join(proc, "version")) or "",
        wsl_interop=os.path.lexists(os.path.join(mount, "WSLInterop")),
        proc_sys_writable=not on_read_only_fs(os.path.join(proc, "sys", "fs")),
        register_writable=os.access(register, os.W_OK) if os.path.exists(register) else None,
    )


def gather_interpreter(path: str) -> InterpreterFacts:
    from binfmtctl.interpreters import gather_facts
    from binfmtctl.trust import check as trust_check

    return InterpreterFacts(gather_facts(path), open_exec_errno(path), trust_check(path))


def _unit_exists(root: str, name: str) -> str | None:
    for d in UNIT_DIRS:
        p = _under(root, f"{d}/{name}")
        if os.path.lexists(p):
            return p
    return None


def _unit_masked(root: str, name: str) -> bool:
    for d in ("etc/systemd/system", "run/systemd/system"):
        p = _under(root, f"{d}/{name}")
        with contextlib.suppress(OSError):
            if os.path.islink(p) and os.readlink(p) == "/dev/null":
                return True
    return False


def _unit_wanted(root: str, name: str) -> bool:
    for d in UNIT_DIRS:
        base = _under(root, d)
        try:
            subdirs = [s for s in os.listdir(base) if s.endswith((".wants", ".requires"))]
        except OSError:
            continue
        if any(os.path.lexists(os.path.join(base, s, name)) for s in subdirs):
            return True
    return False


def _sysv_enabled(root: str, name: str) -> bool:
    if not os.path.exists(_under(root, f"etc/init.d/{name}")):
        return False
    for d in ("rcS.d", "rc2.d", "rc3.d", "rc5.d"):
        try:
            links = os.listdir(_under(root, f"etc/{d}"))
        except OSError:
            continue
        if any(n.startswith("S") and n.lstrip("S0123456789") == name for n in links):
            return True
    return False


def _binfmt_d_nonempty(root: str) -> bool:
    for d in BINFMT_D_DIRS:
        try:
            if any(not n.startswith(".") for n in os.listdir(_under(root, d))):
                return True
        except OSError:
            continue
    return False


def _skipped_on_wsl(root: str) -> bool:
    for d in UNIT_DIRS:
        dropins = _under(root, f"{d}/{SYSTEMD_BINFMT}.d")
        try:
            names = os.listdir(dropins)
        except OSError:
            continue
        for n in names:
            text = _read_in(root, os.path.join(dropins, n)) or ""
            if "ConditionVirtualization=!wsl" in text.replace(" ", ""):
                return True
    return False


def gather_managers(root: str = "/", persist: ModuleType | None = None) -> ManagerFacts:
    """Which boot-time managers would touch binfmt_misc, from the files under ``root``."""
    unit_path: str | None = None
    enabled = False
    text = ""
    if persist is not None:
        with contextlib.suppress(Exception):
            up = str(persist.unit_path(root))
            if os.path.exists(up):
                unit_path = up
                text = _read_in(root, up) or ""
                name = str(persist.UNIT_NAME)
                enabled = os.path.islink(persist.wants_link(root)) and not _unit_masked(root, name)
    try:
        var_lib = tuple(sorted(os.listdir(_under(root, "var/lib/binfmts"))))
    except OSError:
        var_lib = ()
    return ManagerFacts(
        systemd_binfmt_unit=_unit_exists(root, SYSTEMD_BINFMT) is not None,
        systemd_binfmt_wanted=_unit_wanted(root, SYSTEMD_BINFMT),
        systemd_binfmt_masked=_unit_masked(root, SYSTEMD_BINFMT),
        systemd_binfmt_skipped_on_wsl=_skipped_on_wsl(root),
        binfmt_d_nonempty=_binfmt_d_nonempty(root),
        binfmt_support_unit=_unit_exists(root, BINFMT_SUPPORT) is not None,
        binfmt_support_enabled=_unit_wanted(root, BINFMT_SUPPORT)
        and not _unit_masked(root, BINFMT_SUPPORT),
        binfmt_support_sysv=_sysv_enabled(root, "binfmt-support"),
        var_lib_binfmts=var_lib,
        binfmtctl_unit=unit_path,
        binfmtctl_enabled=enabled,
        binfmtctl_unit_text=text,
    )


def optional_module(name: str) -> tuple[ModuleType | None, str | None]:
    """A sibling module written by another issue, if it exists yet: (module, why not)."""
    try:
        return importlib.import_module(f"binfmtctl.{name}"), None
    except ModuleNotFoundError as e:
        if e.name == f"binfmtctl.{name}":
            return None, f"binfmtctl.{name} is not installed"
        return None, f"binfmtctl.{name} cannot be imported: {e}"
    except Exception as e:  # a broken sibling must not break doctor
        return None, f"binfmtctl.{name} cannot be imported: {type(e).__name__}: {e}"


def _binfmt_d_entries(files: Iterable[str]) -> dict[str, Entry]:
    """name -> registration, the last file (lexicographic order) winning, as systemd-binfmt."""
    out: dict[str, Entry] = {}
    for path in files:
        try:
            data = read_regular(path)
        except (OSError, BinfmtctlError):
            continue
        for _, rule in iter_binfmt_d_lines(data):
            with contextlib.suppress(BinfmtctlError, ValueError):
                e = parse_register(rule, KernelProfile.current_default())
                out[e.name] = e
    return out


def _in_binfmt_d(path: str) -> bool:
    return "binfmt.d" in Path(path).parts[:-1]


def gather_persist(root: str = "/") -> PersistFacts:
    """Boot-time sources of entries (binfmtctl.persist reads them) and the managers."""
    persist, why = optional_module("persist")
    managers = gather_managers(root, persist)
    if persist is None:
        return PersistFacts(checked=False, error=why, managers=managers)
    try:
        raw_sources = persist.persistent_sources(root)
        sources = {str(k): tuple(str(f) for f in v) for k, v in dict(raw_sources).items()}
    except Exception as e:
        return PersistFacts(
            checked=False,
            error=f"cannot list the boot-time sources: {type(e).__name__}: {e}",
            managers=managers,
        )
    config_path: str | None = None
    entries: tuple[Entry, ...] = ()
    error: str | None = None
    try:
        config_path = str(persist.config_path(root))
        if os.path.exists(config_path):
            entries = tuple(persist.read_config(Path(config_path)))
    except BinfmtctlError as e:
        error = e.format_message()
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    in_d = {n: [f for f in fs if _in_binfmt_d(f)] for n, fs in sources.items()}
    others = sorted({f for fs in in_d.values() for f in fs if f != config_path})
    return PersistFacts(
        checked=True,
        sources=sources,
        config_path=config_path,
        config_entries=entries,
        config_error=error,
        binfmt_d_entries=_binfmt_d_entries(others),
        binfmt_d_names=frozenset(n for n, fs in in_d.items() if fs),
        managers=managers,
        boot_definitions=boot_view.definitions(sources, skip=[config_path] if config_path else []),
    )


def gather_rootless() -> tuple[bool, str, str] | None:
    """``rootless.availability(rootless.gather_facts())``, when binfmtctl.rootless exists."""
    mod, _ = optional_module("rootless")
    if mod is None:
        return None
    try:
        ok, reason, fix = mod.availability(mod.gather_facts())
    except Exception as e:
        return (False, f"cannot tell: {type(e).__name__}: {e}", "binfmtctl run --help")
    return bool(ok), str(reason or ""), str(fix or "")


def gather(
    mount: str | None = None,
    *,
    root: str = "/",
    proc: str = "/proc",
    kernel: str | None = None,
    targets: Sequence[str] = (),
    probe: bool = False,
    rootless: bool = True,
    uname_m: str | None = None,
) -> HostFacts:
    """Read the host once. Never raises for host state (missing mounts, unreadable files);
    ``kernel`` (X.Y) judges as another kernel; ``targets`` are QEMU names or aliases."""
    bm = BinfmtMisc(mount)
    path = bm.path
    running = KernelProfile.current_default()
    profile = KernelProfile.parse(kernel) if kernel else running
    filesystems = _read(os.path.join(proc, "filesystems"))
    if proc == "/proc":
        st = bm.mount_state()
    else:
        st = mount_state(
            path,
            _read(os.path.join(proc, "self/mountinfo")) or "",
            filesystems,
            os.path.isdir(path),
        )
    if st.state == "mounted" and not os.path.exists(os.path.join(path, "register")):
        # mountinfo lists a binfmt_misc mount at the path, but another mount over a parent
        # (a read-only bind of /proc/sys, say) hides it: nothing can be read or written there
        st = MountState("not-mounted", path, st.read_only, st.options)
    status_enabled: bool | None = None
    status_error: str | None = None
    entries: list[Entry] = []
    owned: frozenset[str] = frozenset()
    if st.state == "mounted":
        try:
            status_enabled = bm.enabled()
        except OSError as e:
            status_error = e.strerror or str(e)
        with contextlib.suppress(OSError):
            entries = bm.entries()
        with contextlib.suppress(OSError, BinfmtctlError):
            owned = frozenset(bm.owned())
    interps = {e.interpreter: gather_interpreter(e.interpreter) for e in entries}
    names = [table.get_target(t).name for t in targets]
    probes: tuple[ProbeResult, ...] | None = None
    if probe:
        from binfmtctl import install as inst

        wanted = list(dict.fromkeys(names + inst.live_qemu_targets(entries)))
        probes = tuple(inst.run_probes(wanted, entries, status_enabled is not False))
    return HostFacts(
        profile=profile,
        running=running,
        uname_m=uname_m or os.uname().machine,
        filesystems=filesystems,
        mount=st,
        status_enabled=status_enabled,
        status_error=status_error,
        entries=tuple(entries),
        owned=owned,
        interpreters=interps,
        native=hijack_gather(),
        context=gather_context(root, proc, path),
        persist=gather_persist(root),
        rootless=gather_rootless() if rootless else None,
        targets=tuple(dict.fromkeys(names)),
        probes=probes,
        usage=_gather_usage(entries),
    )


def _gather_usage(entries: Sequence[Entry]) -> Snapshot | None:
    from binfmtctl import usage

    try:
        return usage.snapshot({e.interpreter for e in entries})
    except Exception:  # psutil missing or /proc unreadable: the other checks still run
        return None


# -- the edge: --fix -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixResult:
    """One fix doctor tried: what, on which entry, whether it worked."""

    code: str
    entry: str | None
    action: str
    ok: bool
    message: str

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "entry": self.entry,
            "action": self.action,
            "ok": self.ok,
            "message": self.message,
        }


STALE_CODES = frozenset(
    {
        "interpreter-missing",
        "interpreter-gone-pinned",
        "interpreter-not-executable",
        "interpreter-wrong-arch",
        "interpreter-dynamic",
        "missing-f-flag",
        "preserve-argv0-mismatch",
    }
)


def plan_fixes(findings: Sequence[Finding], facts: HostFacts) -> list[tuple[str, str | None, str]]:
    """The safe fixes for these findings, in order: (code, entry, action). Pure.

    Actions: ``mount`` (mount or trigger the automount), ``apply-config`` (register
    binfmtctl's configured entries that are missing or differ), ``enable`` (an entry
    binfmtctl owns and configures, disabled), ``reinstall`` (replace a stale QEMU entry
    binfmtctl owns and does not configure with a freshly planned one). Nothing else is
    automatic: other tools' entries, the global status and the host-hijack removal are
    the user's call.
    """
    out: list[tuple[str, str | None, str]] = []
    codes = {f.code for f in findings}
    if codes & {"not-mounted", "automount-untriggered"}:
        code = "not-mounted" if "not-mounted" in codes else "automount-untriggered"
        out.append((code, None, "mount"))
    configured = {c.name: c for c in facts.persist.config_entries}
    live = {e.name: e for e in facts.entries}
    missing = any(f.code == "config-not-live" and f.entry in configured for f in findings)
    if configured and (missing or "not-mounted" in codes):
        out.append(("config-not-live", None, "apply-config"))
    for f in findings:
        if f.entry is None or f.entry not in facts.owned:
            continue
        if f.code == "entry-disabled" and f.entry in configured and configured[f.entry].enabled:
            out.append((f.code, f.entry, "enable"))
        elif (
            f.code in STALE_CODES
            and f.entry not in configured
            and f.entry in live
            and _qemu_target(live[f.entry]) is not None
            and not any(a == "reinstall" and n == f.entry for _, n, a in out)
        ):
            out.append((f.code, f.entry, "reinstall"))
    return out


def _apply_config(bm: BinfmtMisc, config_path: str | None) -> str:
    """``binfmtctl apply``: persist's runner makes the live table match the config."""
    persist, why = optional_module("persist")
    if persist is None or config_path is None:
        raise BinfmtctlError(f"cannot apply the config: {why}", fix="binfmtctl apply")
    report = persist.apply_config(bm, Path(config_path))
    changed = sum(1 for i in report.items if i.done)
    failed = list(report.failed)
    if failed:
        first = failed[0]
        raise BinfmtctlError(
            f"applied {config_path} ({plural(changed, 'change')}) but {', '.join(i.name for i in failed)} failed: {first.message}",
            fix=first.fix or "binfmtctl apply --plan",
        )
    return f"applied {config_path}: {changed} entr{'y' if changed == 1 else 'ies'} registered or replaced"


def _reinstall(bm: BinfmtMisc, entry: Entry, facts: HostFacts) -> str:
    from binfmtctl import install as inst
    from binfmtctl import interpreters
    from binfmtctl.plan import Action

    target = _qemu_target(entry)
    if target is None:
        raise BinfmtctlError(
            f"{entry.name} is not a QEMU entry", fix=f"binfmtctl remove {entry.name}"
        )
    t = table.get_target(target)
    info = interpreters.find_interpreter(t, uname_m=facts.uname_m)
    plan = inst.plan_targets([t], {t.name: info}, facts.running, exec_check=open_exec_errno)[0]
    if not plan.ok or plan.entry is None:
        raise BinfmtctlError(
            f"cannot build a working {entry.name}: {plan.error}",
            fix=plan.fix or "binfmtctl install --help",
        )
    new = replace(plan.entry, name=entry.name)
    if new.same_registration(entry):
        raise BinfmtctlError(
            f"{entry.name} is already what binfmtctl would register",
            fix=f"binfmtctl install --replace {t.name}",
        )
    with bm.locked():
        bm.apply([Action("replace", new, entry)])
    return f"replaced {entry.name}: {new.interpreter} flags {new.flags or '-'}"


def apply_fixes(
    findings: Sequence[Finding], facts: HostFacts, mount: str | None = None
) -> list[FixResult]:
    """Carry out :func:`plan_fixes`; every failure is reported, none raises."""
    bm = BinfmtMisc(mount, profile=facts.running)
    results: list[FixResult] = []
    by_name = {e.name: e for e in facts.entries}
    for code, name, action in plan_fixes(findings, facts):
        try:
            if action == "mount":
                st = bm.mount_for_write()
                if not os.path.exists(os.path.join(bm.path, "register")):
                    raise BinfmtctlError(
                        f"{bm.path} still has no register file: the binfmt_misc mount there is hidden by another mount over a parent directory (a read-only bind of /proc/sys?)",
                        fix=f"{_mount_fix(facts)}",
                    )
                msg = f"binfmt_misc is {st.state} at {st.path}"
            elif action == "apply-config":
                bm.mount_for_write()
                msg = _apply_config(bm, facts.persist.config_path)
            elif action == "enable" and name is not None:
                bm.set_enabled(name, True)
                msg = f"enabled {name}"
            elif action == "reinstall" and name is not None:
                msg = _reinstall(bm, by_name[name], facts)
            else:  # pragma: no cover - plan_fixes only yields the actions above
                continue
            results.append(FixResult(code, name, action, True, msg))
        except BinfmtctlError as e:
            results.append(FixResult(code, name, action, False, e.format_message()))
        except OSError as e:
            results.append(FixResult(code, name, action, False, f"{e.strerror or e}"))
    return results
