"""Per-entry checks (:data:`ENTRY_CHECKS`, also the health word of ``status``) and
overlaps between entries. Pure functions of :class:`HostFacts`."""

from __future__ import annotations

from collections.abc import Callable

from binfmtctl import table
from binfmtctl.doctor.facts import Finding, HostFacts
from binfmtctl.doctor.hints import is_emulator, qemu_target, register_cmd, reinstall_fix
from binfmtctl.entry import Entry, render_register
from binfmtctl.errors import BinfmtctlError
from binfmtctl.grammar import is_bare_hex
from binfmtctl.hijack import hijack_problem
from binfmtctl.interpreters import expects_preserve_argv0, host_arches
from binfmtctl.record import replace
from binfmtctl.rules import validate
from binfmtctl.trust import interpreter_problem

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
            reinstall_fix(e, "points it at an interpreter that exists"),
        )
    return Finding(
        "interpreter-missing",
        "error",
        e.name,
        f"{e.interpreter} does not exist and {e.name} has no F: the kernel opens that path at every exec, so every matching binary fails with 'No such file or directory' (inside containers and chroots too)",
        reinstall_fix(e, "a static interpreter, registered with F"),
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
            f"chmod 755 {e.interpreter}, or {reinstall_fix(e, 'another interpreter')}",
        )
    return Finding(
        "interpreter-not-executable",
        "error",
        e.name,
        f"{e.interpreter} is {why}: every binary {e.name} matches fails with 'Permission denied'",
        f"chmod 755 {e.interpreter} (and mount its filesystem without noexec), or {reinstall_fix(e, 'another interpreter')}",
    )


def check_interpreter_dynamic(e: Entry, facts: HostFacts) -> Finding | None:
    i = facts.interp(e)
    if i is None or i.file.linkage != "dynamic" or not is_emulator(e):
        return None
    loader = i.file.loader or "its loader"
    if "F" in e.flags:
        msg = f"{e.interpreter} is dynamically linked ({loader}): F pins the file, but its loader and libraries are still loaded inside each container or chroot, where they are usually missing: foreign binaries fail there with 'No such file or directory'"
    else:
        msg = f"{e.interpreter} is dynamically linked ({loader}): it only works where {loader} and its libraries exist, not inside foreign containers or chroots"
    t = qemu_target(e)
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
        reinstall_fix(e, f"an interpreter built for {facts.uname_m}"),
    )


def check_missing_f(e: Entry, facts: HostFacts) -> Finding | None:
    if "F" in e.flags or not facts.profile.at_least(4, 8) or not is_emulator(e):
        return None
    i = facts.interp(e)
    if i is None or not i.file.exists:
        return None  # interpreter-missing says more
    return Finding(
        "missing-f-flag",
        "warning",
        e.name,
        f"{e.name} has no F: the kernel looks {e.interpreter} up at every exec, inside the container or chroot doing the exec; it works on the host, but foreign binaries in containers fail with 'no such file or directory'",
        reinstall_fix(e, "adds F, so the kernel opens the interpreter once, on the host"),
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
    t = qemu_target(e)
    also = " (and the mask too)" if e.mask is not None and is_bare_hex(e.mask) else ""
    fix = (
        f"binfmtctl remove {e.name} && binfmtctl install {t}  (QEMU's full magic and mask)"
        if t is not None
        else f"binfmtctl remove {e.name} && {register_cmd(meant).replace(' --replace', '')}"
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
    t = qemu_target(e)
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
            register_cmd(replace(e, flags=e.flags + "P", enabled=True)),
        )
    if (
        "P" in e.flags
        and not expects_preserve_argv0(e.interpreter)
        and not facts.profile.preserve_argv0_auxv
        and qemu_target(e) is not None
    ):
        return Finding(
            "preserve-argv0-mismatch",
            "warning",
            e.name,
            f"{e.name} has P, but on Linux {facts.profile.label} (< 5.12) QEMU cannot learn that P was used (no AT_FLAGS): programs see a shifted argv ('applet not found')",
            register_cmd(replace(e, flags=e.flags.replace("P", ""), enabled=True))
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
    t = qemu_target(e)
    if t is None or hijack_problem(e, facts.native) is not None:
        return None
    try:
        host = table.host_target(facts.uname_m)
    except BinfmtctlError:
        return None
    target = table.find_target(t)  # None for a legacy target (cris): not the host's family
    if target is None or target.family != host.family or target.name == host.name:
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
