"""Rootless emulation (``binfmtctl run``): foreign binaries without root, host table untouched.

Since Linux 6.7 every user namespace may mount its own binfmt_misc (see :mod:`sandbox`), so
any user allowed to create a user namespace can register QEMU there and run foreign programs:
``binfmtctl run -- COMMAND`` enters a new user + mount namespace (the user is root only
inside), mounts a private binfmt_misc, registers QEMU entries chosen exactly as ``install``
chooses them, and execs COMMAND. COMMAND and everything it starts (a shell, make, a container
engine that does not mount its own binfmt_misc) use those entries; the host's table is
neither read nor written, and the entries vanish when COMMAND exits.

Functional core (pure, unit-tested):

- :func:`availability`: can rootless emulation work here, and if not why and what to do, from
  :class:`Facts` (kernel release, the sysctls that forbid user namespaces, a trial run).
  ``doctor`` calls ``availability(gather_facts())``.
- :func:`plan_run`: the targets to register, what is skipped, and the refusals (no interpreter
  for a named target, a dynamically linked interpreter, the host's own family).
- :func:`explain_exec_failure`: COMMAND could not be executed: 127 not found, 126 otherwise,
  with the reason (e.g. a foreign program whose target was not registered) and the fix.

Shell (I/O): :func:`gather_facts`, :func:`prepare_run`, :func:`exec_failure`.

Exit statuses of ``run``, for scripts (as ``env``, ``nohup`` and ``docker run`` use them):
COMMAND's own status when it ran; :data:`EXIT_REFUSED` (125) when binfmtctl refused or failed
(nothing ran); :data:`EXIT_CANNOT_EXECUTE` (126) when COMMAND exists but cannot be executed;
:data:`EXIT_NOT_FOUND` (127) when COMMAND was not found.
"""

from __future__ import annotations

import errno as errno_mod
import os
import shutil
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from binfmtctl import table
from binfmtctl.entry import Entry, render_register
from binfmtctl.errors import BinfmtctlError, CommandNotFound
from binfmtctl.install import ALL, Skipped, TargetPlan, is_pattern, split_target_list
from binfmtctl.interpreters import InterpreterInfo
from binfmtctl.record import dataclass, field
from binfmtctl.sandbox import (
    MIN_KERNEL,
    TRIAL_TIMEOUT,
    Trial,
    explain_userns_failure,
    in_initial_user_namespace,
    kernel_version,
    read_sysctls,
    try_private_table,
)
from binfmtctl.wording import article

#: binfmtctl itself refused or failed: nothing was run
EXIT_REFUSED = 125
#: COMMAND exists but could not be executed
EXIT_CANNOT_EXECUTE = 126
#: COMMAND was not found
EXIT_NOT_FOUND = 127

#: the unprivileged user ``doctor`` tries as when it runs as root
NOBODY = 65534


class RunRefused(BinfmtctlError):
    """``run`` refused, or could not set up the namespace: nothing ran (exit 125)."""

    exit_code = EXIT_REFUSED


class CannotExecute(BinfmtctlError):
    """COMMAND exists but could not be executed (exit 126, as a shell)."""

    exit_code = EXIT_CANNOT_EXECUTE


# -- availability ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """What decides whether rootless emulation works here (gathered by :func:`gather_facts`).

    ``euid``/``user``: who the answer is for (the user who tried, or would). ``trial``: None
    when it was not tried (old kernel, no unshare, or no way to try as that user). ``nested``:
    this process already runs in a user namespace other than the initial one (a container).
    """

    kernel_release: str
    euid: int
    user: str
    sysctls: Mapping[str, str] = field(default_factory=dict)
    unshare: bool = True
    trial: Trial | None = None
    nested: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "kernel_release": self.kernel_release,
            "euid": self.euid,
            "user": self.user,
            "sysctls": dict(self.sysctls),
            "unshare": self.unshare,
            "trial": None
            if self.trial is None
            else {"returncode": self.trial.returncode, "stderr": self.trial.stderr},
            "nested": self.nested,
        }


class Availability(NamedTuple):
    """``(available, reason, fix)``: unpacks as a tuple. ``fix`` names what to do; when
    available, it is the command to use."""

    available: bool
    reason: str
    fix: str

    def to_json(self) -> dict[str, object]:
        return {"available": self.available, "reason": self.reason, "fix": self.fix}


USE_IT = "binfmtctl run --target arm64 -- COMMAND  (as any user; see binfmtctl run --help)"
FIX_OLD_KERNEL = (
    "upgrade to Linux 6.7 or later; or have an administrator register emulation for every "
    "user once: sudo binfmtctl install arm64 riscv64 (the targets you need)"
)


def _userns_blocker(facts: Facts) -> bool:
    """Do the sysctls alone say this user cannot create a user namespace?"""
    s = facts.sysctls
    if s.get("user.max_user_namespaces") == "0":
        return True
    if facts.euid == 0:
        return False
    return (
        s.get("kernel.unprivileged_userns_clone") == "0"
        or s.get("kernel.apparmor_restrict_unprivileged_userns") == "1"
    )


def _userns_refusal(facts: Facts, stderr: str) -> Availability:
    reason, fix = explain_userns_failure(stderr, facts.sysctls, facts.euid)
    if facts.nested and facts.sysctls.get("user.max_user_namespaces") == "0":
        fix = (
            "this process already runs in a user namespace (a container?) whose "
            "user.max_user_namespaces is 0: raise it where that namespace is set up "
            "(or run on the host), e.g. as its root: sysctl -w user.max_user_namespaces=15000"
        )
    return Availability(False, f"{reason} (checked as {facts.user})", fix)


def availability(facts: Facts) -> Availability:
    """Whether rootless emulation (``binfmtctl run``) works for ``facts.user``, why, what to do.

    Pure. A trial, when there is one, is the ground truth; the sysctls explain a failed one,
    or decide when nothing could be tried.
    """
    ver = kernel_version(facts.kernel_release)
    if ver < MIN_KERNEL:
        return Availability(
            False,
            f"Linux {ver[0]}.{ver[1]} has one binfmt_misc table for the whole machine, which "
            "only root may change; the private table per user namespace that rootless "
            "emulation needs came in Linux 6.7",
            FIX_OLD_KERNEL,
        )
    if not facts.unshare:
        return Availability(
            False,
            "util-linux's unshare is not installed (binfmtctl run creates the namespace with it)",
            "install util-linux (apt-get install util-linux, dnf install util-linux)",
        )
    trial = facts.trial
    if trial is None:
        if _userns_blocker(facts):
            return _userns_refusal(facts, "")
        return Availability(
            True,
            f"Linux {ver[0]}.{ver[1]} gives every user namespace its own binfmt_misc, and no "
            f"sysctl forbids user namespaces for {facts.user} (not tried)",
            USE_IT,
        )
    if trial.ok:
        return Availability(
            True,
            f"Linux {ver[0]}.{ver[1]} gives every user namespace its own binfmt_misc, and "
            f"{facts.user} could create one and mount it (tried)",
            USE_IT,
        )
    err = trial.stderr
    if "unshare failed" in err or "write failed" in err or "cannot open /proc/self" in err:
        return _userns_refusal(facts, err)
    detail = err.strip().splitlines()[-1] if err.strip() else f"exit status {trial.returncode}"
    if "unknown filesystem type" in err:
        return Availability(
            False,
            f"this kernel has no binfmt_misc ({detail})",
            "as root: modprobe binfmt_misc (or use a kernel built with CONFIG_BINFMT_MISC)",
        )
    if facts.euid != 0 and facts.sysctls.get("kernel.apparmor_restrict_unprivileged_userns") == "1":
        return _userns_refusal(facts, err)
    return Availability(
        False,
        f"{facts.user} can create a user namespace, but mounting binfmt_misc in it failed: {detail}",
        "a security module (AppArmor, SELinux) or a container's seccomp profile blocks the "
        "mount: allow it, or run on the host",
    )


# -- the run plan --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """Why ``run`` will not start (``target`` empty: not about one target)."""

    target: str
    reason: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"target": self.target, "reason": self.reason, "fix": self.fix}


@dataclass(frozen=True)
class RunPlan:
    """What ``run`` registers in the private table, what it leaves out, what stops it."""

    entries: tuple[Entry, ...]
    plans: tuple[TargetPlan, ...]
    skipped: tuple[Skipped, ...]
    refusals: tuple[Refusal, ...]

    @property
    def ok(self) -> bool:
        return not self.refusals and bool(self.entries)

    @property
    def targets(self) -> list[str]:
        names = {e.name for e in self.entries}
        return [p.target.name for p in self.plans if p.entry is not None and p.entry.name in names]

    def to_json(self) -> dict[str, object]:
        names = {e.name for e in self.entries}
        return {
            "ok": self.ok,
            "register": [os.fsdecode(render_register(e)) for e in self.entries],
            "targets": [
                {**p.to_json(), "registered": p.entry is not None and p.entry.name in names}
                for p in self.plans
            ],
            "skipped": [s.to_json() for s in self.skipped],
            "refusals": [r.to_json() for r in self.refusals],
        }


def dynamic_message(info: InterpreterInfo) -> tuple[str, str]:
    """(reason, fix) for a dynamically linked interpreter: what F does and does not do."""
    loader = info.loader or "its dynamic loader"
    return (
        f"the QEMU for {info.target}, {info.path}, is dynamically linked (loader {loader}). "
        "binfmtctl registers it with F, so the kernel keeps the file open, but the kernel still "
        f"loads {loader} and QEMU's shared libraries from the root directory of each program "
        "being run: programs COMMAND runs from this filesystem would work, but foreign programs "
        "in a container or chroot started from COMMAND fail with 'No such file or directory', "
        "because that root lacks them",
        "install a statically linked QEMU (apt-get install qemu-user-static, or point "
        "--qemu-path at one); or pass --allow-dynamic if COMMAND only runs programs from this "
        "filesystem",
    )


def named_targets(requested: Sequence[str]) -> set[str]:
    """Target names the user named explicitly (``all`` is not a name)."""
    return {
        table.get_target(n).name
        for n in split_target_list(requested)
        if n.lower() != ALL and not is_pattern(n)
    }


def plan_run(
    requested: Sequence[str],
    plans: Sequence[TargetPlan],
    skipped: Sequence[Skipped],
    *,
    allow_dynamic: bool = False,
    install_hint: str = "install qemu-user-static",
    qemu_path: str | None = None,
) -> RunPlan:
    """Decide what ``run`` registers (pure).

    ``plans``/``skipped`` come from :func:`install.plan_targets` and
    :func:`install.resolve_targets` for ``requested`` (target names, aliases, ``all``), so
    names, families and flags follow ``install``. A target the user named must work: a missing
    or unusable interpreter, or a dynamically linked one (unless ``allow_dynamic``), refuses the
    whole run. Under ``all`` such targets are skipped, with the reason. The host's own family
    is refused when named, skipped under ``all``. Nothing usable at all refuses too.
    """
    named = named_targets(requested)
    refusals = [
        Refusal(s.name, s.reason, f"drop --target {s.name}: this host runs it natively")
        for s in skipped
        if s.refused
    ]
    left_out = [s for s in skipped if not s.refused]
    entries: list[Entry] = []
    for p in plans:
        name = p.target.name
        if not p.ok or p.entry is None:
            reason = p.error or f"no entry could be built for {name}"
            fix = p.fix or install_hint
            if name in named:
                refusals.append(Refusal(name, reason, fix))
            else:
                left_out.append(Skipped(name, reason, fix=fix))
            continue
        if p.interpreter.static is False and not allow_dynamic:
            reason, fix = dynamic_message(p.interpreter)
            if name in named:
                refusals.append(Refusal(name, reason, fix))
            else:
                left_out.append(Skipped(name, reason, fix=fix))
            continue
        entries.append(p.entry)
    if not entries and not refusals:
        where = f" in {qemu_path}" if qemu_path is not None else ""
        refusals.append(
            Refusal(
                "",
                f"no usable QEMU interpreter found{where}: nothing to emulate",
                install_hint
                + (
                    ", or point --qemu-path at a directory holding qemu-TARGET-static"
                    if where
                    else ""
                ),
            )
        )
    return RunPlan(tuple(entries), tuple(plans), tuple(left_out), tuple(refusals))


def inner_argv(
    self_command: Sequence[str], entries: Sequence[Entry], command: Sequence[str]
) -> list[str]:
    """The command run inside the new namespace: mount, register ``entries``, exec COMMAND."""
    argv = [*self_command, "_sandbox-init", "--rootless"]
    for e in entries:
        argv += ["--entry-hex", render_register(e).hex()]
    return [*argv, "--", *command]


# -- COMMAND could not be executed ---------------------------------------------------------------
def explain_exec_failure(
    command: str,
    err: int,
    *,
    exists: bool,
    foreign: str | None = None,
    registered: Collection[str] = (),
    strerror: str = "",
) -> tuple[int, str, str]:
    """(exit status, message, fix) for an ``execvp(COMMAND)`` that failed with ``err``.

    ``exists``: the file was found (then ENOENT means its loader or ``#!`` interpreter is
    missing). ``foreign``: the QEMU target of the file's header, when it is a foreign program.
    """
    what = strerror or os.strerror(err)
    if err == errno_mod.ENOENT:
        if not exists:
            if "/" in command:
                return EXIT_NOT_FOUND, f"{command}: no such file", "check the path"
            return (
                EXIT_NOT_FOUND,
                f"{command}: command not found",
                "check the name, or give its path (COMMAND is looked up in your PATH)",
            )
        return (
            EXIT_NOT_FOUND,
            f"cannot run {command}: its ELF loader or #! interpreter does not exist ({what})",
            "a dynamically linked program needs its loader and libraries (for a foreign one: "
            "those of its architecture, e.g. in a chroot or container of that architecture); "
            "or use a statically linked build",
        )
    if err == errno_mod.ENOEXEC:
        if foreign is not None and foreign not in registered:
            return (
                EXIT_CANNOT_EXECUTE,
                f"cannot run {command}: exec format error: it is {article(foreign)} program and this "
                f"run did not register {foreign}",
                f"binfmtctl run --target {foreign} ... (install its QEMU first if it is missing)",
            )
        return (
            EXIT_CANNOT_EXECUTE,
            f"cannot run {command}: exec format error: neither this kernel nor the registered "
            "emulators know this file format (a script needs a #! line)",
            f"binfmtctl which {command} explains what it is and what could run it",
        )
    if err in (errno_mod.EACCES, errno_mod.EPERM):
        return (
            EXIT_CANNOT_EXECUTE,
            f"cannot run {command}: permission denied (not executable, or on a noexec mount)",
            "make it executable (chmod +x), and run it from a filesystem not mounted noexec",
        )
    return EXIT_CANNOT_EXECUTE, f"cannot run {command}: {what}", "check the file"


# -- the shell (I/O) -----------------------------------------------------------------------------
def gather_facts(*, unprivileged: bool = True, timeout: float = TRIAL_TIMEOUT) -> Facts:
    """Facts for :func:`availability`, by trying it (one short-lived ``unshare`` process).

    ``unprivileged`` (doctor's question, "can a normal user do it?"): when this process is
    root, the trial runs as uid 65534 through ``setpriv``, since root may create namespaces
    where users may not. Otherwise (``run``) it runs as this process.
    """
    release = os.uname().release
    euid = os.geteuid()
    sysctls = read_sysctls()
    nested = not in_initial_user_namespace()
    unshare = shutil.which("unshare")
    prefix: list[str] = []
    user = f"you (uid {euid})"
    if euid == 0:
        user = "you (root of a user namespace, not of the host)" if nested else "you (root)"
    can_try = True
    if unprivileged and euid == 0:
        euid = NOBODY
        user = "an unprivileged user (uid 65534)"
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            can_try = False
        else:
            prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    trial: Trial | None = None
    if unshare is not None and can_try and kernel_version(release) >= MIN_KERNEL:
        trial = try_private_table(prefix, unshare=unshare, timeout=timeout)
        if prefix and not trial.ok and trial.stderr.lstrip().startswith("setpriv:"):
            # uid 65534 is not mapped in this (nested) namespace: answer for this user
            euid = os.geteuid()
            user = "you (root of a user namespace, not of the host)" if nested else "you (root)"
            trial = try_private_table(unshare=unshare, timeout=timeout)
    return Facts(release, euid, user, sysctls, unshare is not None, trial, nested)


def prepare_run(
    requested: Sequence[str],
    *,
    qemu_path: str | None = None,
    qemu_suffix: str | None = None,
    allow_dynamic: bool = False,
) -> RunPlan:
    """Find the interpreters and plan the run as ``install`` would (flags, names, checks)."""
    from binfmtctl import install as inst
    from binfmtctl import interpreters
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.rules import KernelProfile

    uname_m = os.uname().machine
    found: dict[str, InterpreterInfo] = {}

    def find(t: table.Target) -> InterpreterInfo:
        if t.name not in found:
            found[t.name] = interpreters.find_interpreter(
                t, qemu_path=qemu_path, qemu_suffix=qemu_suffix, uname_m=uname_m
            )
        return found[t.name]

    chosen, skipped = inst.resolve_targets(
        list(requested), uname_m, available=lambda t: find(t).found
    )
    plans = inst.plan_targets(
        chosen,
        {t.name: find(t) for t in chosen},
        KernelProfile.current_default(),
        exec_check=open_exec_errno,
    )
    hint = interpreters.package_hint("aarch64", interpreters.host_distro())[1]
    return plan_run(
        requested,
        plans,
        skipped,
        allow_dynamic=allow_dynamic,
        install_hint=hint,
        qemu_path=qemu_path,
    )


def exec_failure(
    command: str, error: OSError, path: str | None, registered: Collection[str]
) -> BinfmtctlError:
    """The error to exit with when ``execvpe(command)`` raised ``error`` (``path``: COMMAND's PATH)."""
    err = error.errno or errno_mod.ENOENT
    resolved = command if "/" in command else shutil.which(command, path=path)
    exists = resolved is not None and os.path.exists(resolved)
    if resolved is None and err in (errno_mod.EACCES, errno_mod.EPERM):
        # execvp remembers EACCES from a PATH directory it cannot search; found nowhere,
        # the command is not found (status 127), as a shell says
        err = errno_mod.ENOENT
    foreign: str | None = None
    if exists and resolved is not None and err == errno_mod.ENOEXEC:
        try:
            with open(resolved, "rb") as f:
                t = table.target_for_header(f.read(256))
            foreign = t.name if t is not None else None
        except OSError:
            foreign = None
    status, message, fix = explain_exec_failure(
        command,
        err,
        exists=exists,
        foreign=foreign,
        registered=registered,
        strerror=error.strerror or "",
    )
    if status == EXIT_NOT_FOUND:
        return CommandNotFound(message, fix=fix)
    return CannotExecute(message, fix=fix)
