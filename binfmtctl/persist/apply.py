"""``apply``: make the live table match the config (:func:`plan_apply`, :func:`preflight`,
:func:`apply_config` and its :class:`ApplyReport`).

Missing entries are registered, differing entries of the config's names replaced, every
other entry left alone; each entry is validated first and applied on its own, so one that
cannot be applied (its interpreter is on a file system not yet mounted, its QEMU package
was removed) is reported and the rest still applied. This is the boot path
(binfmtctl.service runs it through :mod:`binfmtctl.fastpath`): it imports only
:mod:`entry`, :mod:`rules`, :mod:`plan` and :mod:`binfmt_misc` and their helpers, never
typing, subprocess, click, pyelftools, psutil or PyYAML.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from binfmtctl import hijack, safety, trust
from binfmtctl.binfmt_misc import BinfmtMisc, NotMounted, open_exec_errno
from binfmtctl.entry import (
    Entry,
    render_register,
)
from binfmtctl.errors import BinfmtctlError
from binfmtctl.persist.config import ConfigProblem, parse_config, read_config_text
from binfmtctl.plan import Action, plan_register
from binfmtctl.record import dataclass, field, replace


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
    table_path: str = ""  # the live table applied to (text output names it; not in JSON)

    @property
    def failed(self) -> list[ApplyItem]:
        return [i for i in self.items if not i.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

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


# -- apply: the runner (edge) ----------------------------------------------------------------------------
class HostFacts:
    """Where :func:`apply_config` reads the host. The boot plan's recorder
    (:class:`binfmtctl.persist.recording.Recorder`) is one that writes down what it read."""

    def exec_check(self, path: str) -> str | None:
        return open_exec_errno(path)

    def trust(self, path: str) -> trust.Verdict:
        return trust.check(path)

    def native(self, entries: Sequence[Entry]) -> hijack.NativeSamples:
        return hijack.gather(entries)

    def late_mount(self) -> Callable[[str], str | None]:
        return _late_mount_checker()

    def table_seen(self, mount: str) -> None:
        """Called under the writers' lock, before the live table is read."""


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
    host: HostFacts | None = None,
) -> ApplyReport:
    """Make the live table of ``bm`` match the config at ``path``. Edge.

    Every entry is planned and checked before anything is written; then each change is
    applied on its own (a failure is recorded and the rest still applied; a failed replace
    puts the old entry back). Entries of the config that are live and identical are
    recorded as binfmtctl's. ``plan_only`` changes nothing (and does not mount).
    """
    host = host or HostFacts()
    report = ApplyReport(str(path), plan_only, path.exists(), table_path=bm.path)
    entries, report.problems = parse_config(read_config_text(path), str(path), bm.profile)
    if not report.config_exists:
        report.notes.append(f"no config at {path}: nothing to apply")
    else:
        _refuse_untrusted(path, force, host.trust)
    mounted = _mount(bm, report, bool(entries))
    lock = bm.locked() if not plan_only and mounted else contextlib.nullcontext()
    with lock:
        host.table_seen(bm.path)
        live = bm.entries() if mounted else []
        if mounted and not bm.enabled():
            report.notes.append(
                "binfmt_misc is globally disabled (status: disabled): no entry is used until `echo 1 > status`"
            )
        actions = plan_apply(entries, live)
        blocked, warnings = preflight(
            entries,
            exec_check=host.exec_check,
            # nothing to write, nothing to judge: a boot with an unchanged table reads no PATH
            native=host.native(entries)
            if any(a.changes for a in actions)
            else hijack.NativeSamples(),
            trust_of=host.trust,
            late_mount=host.late_mount(),
            force=force,
        )
        report.items, todo = triage(actions, blocked, warnings, plan_only)
        report.items += _write(bm, todo)
        order = {a.entry.name: i for i, a in enumerate(actions)}
        report.items.sort(key=lambda item: order.get(item.name, len(order)))
        claimed = [a.entry for a in actions if a.kind == "keep"]
        if claimed and not plan_only and mounted:
            # systemd-binfmt may have registered them from the config before this unit ran
            bm.claim(claimed)
    return report


def _refuse_untrusted(
    path: Path, force: bool, check: Callable[[str], trust.Verdict] = trust.check
) -> None:
    """Root applies no config a non-root user can change (unless ``force``)."""
    verdict = check(str(path.absolute()))
    if not verdict.trusted and os.geteuid() == 0 and not force:
        raise BinfmtctlError(
            f"{path} can be changed by a non-root user ({verdict.reason}): its entries would "
            "run their interpreters for every matching program, as root registers them; "
            "refusing to apply it",
            fix=f"{verdict.fix}  (or apply --force)",
        )


def _mount(bm: BinfmtMisc, report: ApplyReport, has_entries: bool) -> bool:
    """Mount binfmt_misc when there is something to apply (a plan never mounts, but
    triggers an automount); record the mount state in ``report``. True if mounted."""
    plan_only = report.plan_only
    state = bm.mount_state()
    if state.state != "mounted" and (state.state == "automount" or (has_entries and not plan_only)):
        try:
            state = bm.require_mounted() if plan_only else bm.mount_for_write()
        except NotMounted:
            if not plan_only:
                raise
            state = bm.mount_state()
    report.mount = state.to_json()
    mounted = state.state == "mounted"
    if not mounted and has_entries:
        report.notes.append(
            f"binfmt_misc is not mounted at {bm.path}: planned against an empty table (apply mounts it)"
        )
    return mounted


def triage(
    actions: Sequence[Action],
    blocked: Mapping[str, Blocked],
    warnings: Mapping[str, Sequence[str]],
    plan_only: bool,
) -> tuple[list[ApplyItem], list[tuple[Action, tuple[str, ...]]]]:
    """(the outcomes known without writing: blocked, kept, or planned; the changes to
    write, each with its warnings). Pure."""
    items: list[ApplyItem] = []
    todo: list[tuple[Action, tuple[str, ...]]] = []
    for a in actions:
        warn = tuple(warnings.get(a.entry.name, ()))
        b = blocked.get(a.entry.name)
        if b is not None and a.kind != "keep":
            kept = " (the live entry was left as it is)" if a.old is not None else ""
            message = b.message + kept
            items.append(
                ApplyItem(a.entry.name, a.kind, a.entry, a.old, False, False, message, b.fix, warn)
            )
        elif a.kind == "keep" or plan_only:
            items.append(
                ApplyItem(a.entry.name, a.kind, a.entry, a.old, True, False, a.note, "", warn)
            )
        else:
            todo.append((a, warn))
    return items, todo


def _write(bm: BinfmtMisc, todo: Sequence[tuple[Action, tuple[str, ...]]]) -> list[ApplyItem]:
    """Apply each change on its own: one item per change, failed (the error's cause and
    fix, kept apart) or done."""
    items: list[ApplyItem] = []
    warn_of = {id(a): w for a, w in todo}
    for a, err in bm.apply_each([a for a, _ in todo]) if todo else []:
        warn = warn_of[id(a)]
        if err is not None:
            items.append(
                ApplyItem(
                    a.entry.name,
                    a.kind,
                    a.entry,
                    a.old,
                    False,
                    False,
                    "; ".join((err.summary, *err.warnings)),  # and what was not undone
                    err.fix or "",
                    warn,
                )
            )
        else:
            items.append(
                ApplyItem(a.entry.name, a.kind, a.entry, a.old, True, True, a.note, "", warn)
            )
    return items
