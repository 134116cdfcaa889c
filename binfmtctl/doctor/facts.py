"""Doctor's records: the facts it gathers once (:class:`HostFacts`) and what it finds
(:class:`Finding`). Pure data, no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from binfmtctl.binfmt_misc import CAP_SYS_ADMIN, DEFAULT_MOUNT, MountState
from binfmtctl.entry import Entry
from binfmtctl.hijack import NativeSamples
from binfmtctl.record import dataclass, field
from binfmtctl.rules import KernelProfile
from binfmtctl.systemd_paths import SYSTEMD_BINFMT

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: status reads these records without importing install
    from binfmtctl.install import ProbeResult
    from binfmtctl.interpreters import FileFacts
    from binfmtctl.trust import Verdict
    from binfmtctl.usage import Snapshot

SEVERITIES = ("error", "warning", "info")
RANK = {s: i for i, s in enumerate(SEVERITIES)}
FULL_UID_MAP = "0 0 4294967295"

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
        if self.severity not in RANK:
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
    #: why binfmtctl's own unit could not be looked at (None: it was)
    binfmtctl_unit_error: str | None = None

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
    """What would register entries at boot. ``checked`` False: the boot-time sources could
    not be listed (``error`` says why) and the persistence checks are skipped."""

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
