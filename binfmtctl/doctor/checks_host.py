"""Host-wide checks: kernel, mount, register file, who runs doctor, requested targets,
rootless emulation, probes, what runs now. Pure functions of :class:`HostFacts`."""

from __future__ import annotations

from binfmtctl import table
from binfmtctl.binfmt_misc import filesystems_has_binfmt
from binfmtctl.doctor.facts import Finding, HostFacts
from binfmtctl.doctor.hints import mount_fix
from binfmtctl.entry import Entry, render_register
from binfmtctl.rules import KernelProfile, validate
from binfmtctl.wording import article


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
        if key not in seen:
            seen.add(key)
            out.extend(_kernel_refuses(e, where, p))
    return out


def _kernel_refuses(e: Entry, where: str, p: KernelProfile) -> list[Finding]:
    """The judged kernel's verdict on one entry: a flag it does not know, or another refusal."""
    unknown = [f for f in e.flags if f not in p.known_flags]
    if unknown:
        return [
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
        ]
    verdict = validate(render_register(e) + b"\n", p)
    errors = [x for x in verdict.problems if x.is_error]
    if errors:
        x = errors[0]
        return [
            Finding(
                "kernel-rejects-entry",
                "error",
                e.name,
                f"Linux {p.label} would refuse the {where} entry {e.name} ({x.errno}): {x.field}: {x.message}",
                x.fix,
            )
        ]
    return []


def _check_mount_state(facts: HostFacts) -> list[Finding]:
    """Absent, not mounted, or an automount nobody triggered."""
    st = facts.mount
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
                mount_fix(facts),
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
    return out


def _check_read_only(facts: HostFacts) -> list[Finding]:
    """A read-only mount, or a read-only /proc/sys where binfmt_misc must still be mounted."""
    st = facts.mount
    ctx = facts.context
    out: list[Finding] = []
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
    return out


def _check_status(facts: HostFacts) -> list[Finding]:
    """The global status file: disabled, or unreadable."""
    st = facts.mount
    if st.state != "mounted" or facts.status_enabled is True:
        return []
    if facts.status_enabled is False:
        return [
            Finding(
                "status-disabled",
                "error",
                None,
                f"binfmt_misc is disabled globally ({st.path}/status says disabled): no entry is used, every foreign binary fails with 'exec format error'",
                f"echo 1 > {st.path}/status  (as root; hardened hosts set 0 on purpose: check why first)",
            )
        ]
    return [
        Finding(
            "status-unreadable",
            "warning",
            None,
            f"cannot read {st.path}/status: {facts.status_error or 'unknown error'}",
            f"check the mount: findmnt {st.path}; remount it (mount -t binfmt_misc binfmt_misc {st.path})",
        )
    ]


def check_mount(facts: HostFacts) -> list[Finding]:
    """Mount state (absent, untriggered automount, mounted, read-only) and the global status."""
    return _check_mount_state(facts) + _check_read_only(facts) + _check_status(facts)


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
