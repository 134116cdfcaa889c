"""The ``doctor`` use case: gather, check, optionally fix and check again; a report.

Prints nothing and knows nothing of click: ``binfmtctl/cli/render/doctor.py`` renders the
:class:`DoctorReport` as text, and its JSON is :meth:`DoctorReport.to_json`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from binfmtctl.binfmt_misc import DEFAULT_MOUNT
from binfmtctl.doctor.checks import has_problems, run_checks
from binfmtctl.doctor.facts import Finding, HostFacts
from binfmtctl.doctor.fix import FixResult, apply_fixes
from binfmtctl.doctor.gather import gather
from binfmtctl.errors import ExitStatus, UsageError
from binfmtctl.fixscope import scope_fix
from binfmtctl.record import dataclass, replace
from binfmtctl.rootfs import Root
from binfmtctl.rules import KernelProfile


@dataclass(frozen=True)
class DoctorReport:
    """What ``doctor`` found (after ``--fix``, when it fixed anything) and what it fixed.
    ``fixes`` is None when ``--fix`` was not asked for."""

    kernel: str  # the judged kernel's label
    mount_path: str
    mount_state: str
    read_only: bool
    entries: int
    findings: tuple[Finding, ...]
    fixes: tuple[FixResult, ...] | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def healthy(self) -> bool:
        return not has_problems(self.findings)

    @property
    def exit_code(self) -> int:
        return int(ExitStatus.OK if self.healthy else ExitStatus.PROBLEMS)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"findings": [f.to_json() for f in self.findings]}
        if self.fixes is not None:
            data["fixes"] = [r.to_json() for r in self.fixes]
        return data


@dataclass(frozen=True)
class DoctorRequest:
    """``doctor``'s options, as plain values."""

    mount: str | None = None
    root: str = "/"
    proc: str = "/proc"
    kernel: str | None = None
    targets: tuple[str, ...] = ()
    probe: bool = False
    fix: bool = False


def _scoped(findings: Sequence[Finding], req: DoctorRequest, facts: HostFacts) -> list[Finding]:
    """Each fix carrying the options doctor ran under, so it runs as printed."""
    mount = req.mount
    if mount is not None and os.path.normpath(mount) == DEFAULT_MOUNT:
        mount = None
    root: str | None = req.root
    config = facts.persist.config_path
    if os.path.normpath(req.root) == "/":
        root = config = None
    return [
        replace(f, fix=scope_fix(f.fix, mount=mount, root=root, kernel=req.kernel, config=config))
        for f in findings
    ]


def _check(req: DoctorRequest) -> tuple[HostFacts, list[Finding]]:
    facts = gather(
        req.mount,
        root=req.root,
        proc=req.proc,
        kernel=req.kernel,
        targets=req.targets,
        probe=req.probe,
    )
    return facts, _scoped(run_checks(facts), req, facts)


def run_doctor(req: DoctorRequest) -> DoctorReport:
    """Check the host (and the system at ``req.root``); with ``req.fix``, apply the safe
    fixes and check again. Raises :class:`UsageError` for a bad ``--kernel`` or ``--root``."""
    if req.kernel is not None:
        try:
            KernelProfile.parse(req.kernel)
        except ValueError as e:
            raise UsageError(str(e), fix="--kernel 4.4, --kernel 5.10, ...") from None
    Root(req.root).close()  # a missing --root is an error, never an empty image
    facts, findings = _check(req)
    fixes: list[FixResult] | None = None
    if req.fix:
        fixes = apply_fixes(findings, facts, req.mount)
        if fixes:
            facts, findings = _check(req)
    return DoctorReport(
        kernel=facts.profile.label,
        mount_path=facts.mount.path,
        mount_state=facts.mount.state,
        read_only=facts.mount.read_only,
        entries=len(facts.entries),
        findings=tuple(findings),
        fixes=None if fixes is None else tuple(fixes),
    )
