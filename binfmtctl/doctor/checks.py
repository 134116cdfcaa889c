"""All of doctor's checks in order, and running them. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from binfmtctl.doctor.checks_entries import check_entries, check_overlap
from binfmtctl.doctor.checks_host import (
    check_context,
    check_kernel,
    check_mount,
    check_probes,
    check_register_file,
    check_rootless,
    check_targets,
    check_usage,
)
from binfmtctl.doctor.checks_persistence import check_persistence
from binfmtctl.doctor.facts import RANK, Finding, HostFacts

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
    return sorted(found, key=lambda f: RANK[f.severity])


def has_problems(findings: Iterable[Finding]) -> bool:
    return any(f.is_problem for f in findings)


def to_json(findings: Sequence[Finding]) -> dict[str, object]:
    return {"findings": [f.to_json() for f in findings]}
