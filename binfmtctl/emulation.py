"""The emulation use cases: `install`, `uninstall`, `test`, each returning a report.

The decisions are :mod:`binfmtctl.install`'s (pure); this module strings them together
with the live table (a :class:`~binfmtctl.binfmt_misc.BinfmtMisc`), the probes and the
config, and says what happened as frozen dataclasses. It prints nothing: the CLI hands
the report to :mod:`binfmtctl.cli.render`. What needs the terminal (the in-use refusal,
the trust warnings) comes in as a callable, so the order of the checks stays here."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from binfmtctl.entry import Entry
from binfmtctl.install import Note, ProbeResult, Skipped, TargetPlan
from binfmtctl.record import dataclass, field, replace

if TYPE_CHECKING:
    from binfmtctl.binfmt_misc import BinfmtMisc
    from binfmtctl.interpreters import InterpreterInfo
    from binfmtctl.persist import ConfigChange
    from binfmtctl.plan import Action
    from binfmtctl.rules import KernelProfile
    from binfmtctl.table import Target

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


# -- install ----------------------------------------------------------------------------------------
def install_profile(kernel: str | None, dry_run: bool) -> KernelProfile:
    """The kernel an install plans for: the running one, or ``--kernel X.Y`` for a dry run."""
    from binfmtctl.errors import UsageError
    from binfmtctl.rules import KernelProfile

    if kernel is None:
        return KernelProfile.current_default()
    if not dry_run:
        raise UsageError(
            "--kernel only simulates a kernel for --dry-run; a real install uses the running kernel",
            fix="add --dry-run, or drop --kernel",
        )
    try:
        return KernelProfile.parse(kernel)
    except ValueError as e:
        raise UsageError(str(e)) from None


@dataclass(frozen=True)
class InstallOptions:
    """``install``'s choices, as the command line gives them."""

    flags: str | None = None  # exactly these flags, instead of the per-target defaults
    credentials: bool = False
    qemu_path: str | None = None
    qemu_suffix: str | None = None
    replace: bool = False  # replace a differing entry binfmtctl did not register
    dry_run: bool = False
    force: bool = False
    probe: bool = True  # run the probes afterwards
    persist: bool = False
    config: str | None = None


InstallOutcome = Literal["native", "refused", "no-target", "installed"]


@dataclass(frozen=True)
class InstallReport:
    """``install``: the plan per target, what was skipped, written, proven and persisted.

    ``outcome``: ``native`` (every platform named runs natively: nothing to do),
    ``refused``/``no-target`` (nothing was written), ``installed`` (or planned, dry run).
    ``message``/``fix``: why it failed, when ``ok`` is false."""

    dry_run: bool
    kernel: str
    ok: bool
    changes: int
    persisted: ConfigChange | None
    targets: tuple[TargetPlan, ...]
    skipped: tuple[Skipped, ...]
    test: ProbeMatrix | None
    outcome: InstallOutcome = field(default="installed", metadata={"json": False})
    host: str = field(default="", metadata={"json": False})
    message: str | None = field(default=None, metadata={"json": False})
    fix: str | None = field(default=None, metadata={"json": False})

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def install(
    bm: BinfmtMisc,
    args: Sequence[str],
    profile: KernelProfile,
    opts: InstallOptions,
    *,
    safety: Callable[[Sequence[Entry]], None],
    exec_check: Callable[[str], str | None] | None = None,
    uname_m: str | None = None,
) -> InstallReport:
    """Resolve the targets, plan their entries, write them as one transaction (unless a dry
    run), prove each with its probe, and add them to the config (``opts.persist``).
    ``safety`` refuses (raises) or warns about entries before anything is written;
    ``exec_check`` (default: opening it for exec) the errno of an interpreter, or None."""
    from binfmtctl import install as inst
    from binfmtctl.errors import UsageError

    if not args:
        raise UsageError(
            "name the targets to install, or `all`", fix="binfmtctl install arm64 riscv64"
        )
    host = uname_m or os.uname().machine
    plans, skipped = _plan(args, host, profile, opts, exec_check)
    base = InstallReport(
        opts.dry_run,
        profile.label,
        True,
        0,
        None,
        tuple(plans),
        tuple(skipped),
        None,
        "native",
        host,
    )
    stop = _nothing_to_install(base, opts)
    if stop is not None:
        return stop
    entries = inst.build_entries(plans)
    safety(entries)
    done = _register(bm, plans, entries, opts)
    results: tuple[ProbeResult, ...] = ()
    working = [p.target.name for p in plans if p.ok]
    if not opts.dry_run and opts.probe and working:
        results = tuple(inst.run_probes(working, bm.entries(), bm.enabled()))
    persisted = _persist(opts.config, plans) if opts.persist and not opts.dry_run else None
    test = None if opts.dry_run or not opts.probe else ProbeMatrix(results)
    return _outcome(replace(base, changes=done, persisted=persisted, test=test))


def _plan(
    args: Sequence[str],
    host: str,
    profile: KernelProfile,
    opts: InstallOptions,
    exec_check: Callable[[str], str | None] | None,
) -> tuple[list[TargetPlan], list[Skipped]]:
    """The targets named, each with its interpreter, entry and flags (or why not), and
    those left out. Each interpreter is looked up once."""
    from binfmtctl import install as inst
    from binfmtctl import interpreters
    from binfmtctl.binfmt_misc import open_exec_errno

    if opts.flags is not None:
        inst.check_flags(opts.flags, profile)
    found: dict[str, InterpreterInfo] = {}

    def find(t: Target) -> InterpreterInfo:
        if t.name not in found:
            found[t.name] = interpreters.find_interpreter(
                t, qemu_path=opts.qemu_path, qemu_suffix=opts.qemu_suffix, uname_m=host
            )
        return found[t.name]

    chosen, skipped = inst.resolve_targets(
        list(args), host, force=opts.force, available=lambda t: find(t).found, skip_native=True
    )
    plans = inst.plan_targets(
        chosen,
        {t.name: find(t) for t in chosen},
        profile,
        flags=opts.flags,
        credentials=opts.credentials,
        exec_check=exec_check or open_exec_errno,
    )
    return plans, skipped


def _nothing_to_install(base: InstallReport, opts: InstallOptions) -> InstallReport | None:
    """The report when nothing is to be written: every platform named runs natively here
    (ok), one was refused for the host's safety, or no target is left; else None."""
    from binfmtctl import interpreters

    refused = [s for s in base.skipped if s.refused]
    if not base.targets and not refused and base.skipped and all(s.native for s in base.skipped):
        return replace(base, targets=())  # linux/amd64 on x86_64: nothing to do
    if refused:
        names = ", ".join(s.name for s in refused)
        return replace(
            base,
            ok=False,
            outcome="refused",
            message=f"refused {names} for the host's safety; nothing was written",
            fix=refused[0].fix,
        )
    if not base.targets:
        where = f" (searched only {opts.qemu_path})" if opts.qemu_path is not None else ""
        return replace(
            base,
            ok=False,
            outcome="no-target",
            message=f"no target to install{where}",
            fix=interpreters.package_hint("aarch64", interpreters.host_distro())[1],
        )
    return None


def _outcome(report: InstallReport) -> InstallReport:
    """``report`` as installed: ok unless a target failed to plan, register or probe."""
    failed = [p.target.name for p in report.targets if not p.ok]
    probes = report.test.targets if report.test is not None else ()
    failed += [r.target for r in probes if not r.ok and r.target not in failed]
    if not failed:
        return replace(report, outcome="installed")
    n = len(report.targets)
    return replace(
        report,
        ok=False,
        outcome="installed",
        message=f"{len(failed)} of {n} target{'s' * (n != 1)} not working: {', '.join(failed)}",
        fix="see the FAILED lines above",
    )


def _register(
    bm: BinfmtMisc, plans: Sequence[TargetPlan], entries: Sequence[Entry], opts: InstallOptions
) -> int:
    """Plan against the live table and apply, under its lock (one transaction); the
    number of entries registered or replaced. Each plan learns its action."""
    from binfmtctl import install as inst
    from binfmtctl.plan import plan_register

    if not opts.dry_run and entries:
        bm.mount_for_write()
    with bm.locked() if not opts.dry_run else contextlib.nullcontext():  # plan and apply as one
        mounted = bm.mount_state().state == "mounted"
        live = bm.entries() if mounted else []
        owned = bm.owned() if mounted else {}
        actions = plan_register(entries, live, replace=opts.replace, owned=owned)
        inst.attach_actions(plans, actions)
        todo = [a for a in actions if a.kind in ("add", "replace")]
        if not opts.dry_run and todo:
            return len(bm.apply(todo))
    return 0


def _persist(config: str | None, plans: Sequence[TargetPlan]) -> ConfigChange | None:
    """install --persist: add the entries of the installed targets to the config."""
    from binfmtctl import persist

    entries = [p.entry for p in plans if p.ok and p.entry is not None]
    return persist.add_entries(persist.config_path(override=config), entries) if entries else None
