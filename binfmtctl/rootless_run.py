"""`run`'s use case: what rootless emulation would register for COMMAND, and whether it may.

:func:`plan` gathers the facts (kernel, user namespaces, the installed QEMUs) and returns a
:class:`RunReport`, printing nothing: ``binfmtctl.cli.render.run`` shows the plan (on stdout
for a dry run, else on stderr: stdout belongs to COMMAND) and the command then execs
COMMAND in the private namespace (:func:`inner_argv`). The mechanics live in
:mod:`binfmtctl.rootless`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from binfmtctl.record import dataclass, field

_HIDE = {"json": False}


@dataclass(frozen=True)
class RunReport:
    """The plan of one `run`. JSON (``--dry-run --json``): availability, command and the
    plan's own fields; exit 125 unless emulation is available and the plan ok."""

    availability: Any
    command: tuple[str, ...]
    plan: Any = field(metadata=_HIDE)  # rootless.RunPlan
    dry_run: bool = field(default=False, metadata=_HIDE)
    verbose: bool = field(default=False, metadata=_HIDE)
    #: the safety check of the entries (no trust check: the table is the caller's own);
    #: None when the run is refused before it
    safety: Any = field(default=None, metadata=_HIDE)
    #: how the namespace maps ids (idmap.IdMap: the caller only, or its subordinate ids
    #: too, for container engines); None when the run is refused
    ids: Any = field(default=None, metadata=_HIDE)
    #: COMMAND looks like a container engine that the id map leaves without its ids
    engine_warning: str | None = field(default=None, metadata=_HIDE)

    def to_json(self) -> dict[str, Any]:
        return {
            "availability": self.availability.to_json(),
            "command": list(self.command),
            **self.plan.to_json(),
        }

    @property
    def exit_code(self) -> int:
        from binfmtctl.rootless import EXIT_REFUSED

        return 0 if self.availability.available and self.plan.ok else EXIT_REFUSED

    def refusal(self) -> Exception | None:
        """Why nothing may run (exit 125), with its fix; None when COMMAND may run."""
        from binfmtctl.rootless import RunRefused

        avail, refusals = self.availability, self.plan.refusals
        if not avail.available:
            return RunRefused(f"rootless emulation is not available: {avail.reason}", fix=avail.fix)
        if len(refusals) == 1:
            r = refusals[0]
            return RunRefused(
                f"refused{' ' + r.target if r.target else ''}: {r.reason}; nothing ran", fix=r.fix
            )
        if refusals:
            return RunRefused(
                f"refused for the {len(refusals)} reasons above; nothing ran", fix=refusals[0].fix
            )
        if self.safety is not None and (refused := self.safety.error()) is not None:
            return RunRefused(refused[0])
        return None


def plan(
    targets: Sequence[str],
    command: Sequence[str],
    *,
    qemu_path: str | None = None,
    qemu_suffix: str | None = None,
    allow_dynamic: bool = False,
    dry_run: bool = False,
    verbose: bool = False,
) -> RunReport:
    """The run of ``command`` emulating ``targets`` (none: every installed target). An unknown
    target name is a usage error, raised before any work."""
    from binfmtctl import idmap, rootless
    from binfmtctl.admission import judge_safety

    requested = list(targets) or ["all"]
    rootless.named_targets(requested)
    avail = rootless.availability(rootless.gather_facts(unprivileged=False))
    rp = rootless.prepare_run(
        requested, qemu_path=qemu_path, qemu_suffix=qemu_suffix, allow_dynamic=allow_dynamic
    )
    report = RunReport(avail, tuple(command), rp, dry_run, verbose)
    if report.refusal() is not None:
        return report
    safety = judge_safety(rp.entries, False, private=True)
    if safety.error() is not None:
        return RunReport(avail, tuple(command), rp, dry_run, verbose, safety)
    ids = idmap.plan_idmap(idmap.gather())
    warning = None if dry_run else idmap.engine_warning(command, ids)
    return RunReport(avail, tuple(command), rp, dry_run, verbose, safety, ids, warning)


def inner_argv(report: RunReport) -> list[str]:
    """The command line that sets up the private namespace and execs COMMAND in it."""
    from binfmtctl import rootless
    from binfmtctl import sandbox as sb

    return rootless.inner_argv(sb.self_command(), report.plan.entries, report.command)
