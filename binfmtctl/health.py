"""One source of health: the word ``status`` and ``show`` give each entry is the verdict of
doctor's own per-entry checks (:data:`binfmtctl.doctor.ENTRY_CHECKS`), never a second,
weaker judgement.

:func:`health_of` is pure (findings in, one word out); :func:`entry_findings` gathers the
facts those checks need (each interpreter, samples of what the host runs natively) and runs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from binfmtctl.doctor.checks_entries import check_entries
from binfmtctl.doctor.facts import Finding, HostFacts
from binfmtctl.doctor.gather_entry import gather_interpreter
from binfmtctl.entry import Entry
from binfmtctl.rules import KernelProfile

#: doctor codes whose word in ``status`` predates this module (kept for scripts); every
#: other word is doctor's code itself (``interpreter-gone-pinned``, one name everywhere)
_WORDS = {"entry-disabled": "disabled"}
_RANK = {"error": 0, "warning": 1}


def health_of(findings: Sequence[Finding]) -> str:
    """``ok`` when no error or warning concerns the entry; else the code of the most severe
    finding (the first of equal severity, in doctor's check order)."""
    problems = [f for f in findings if f.severity in _RANK]
    if not problems:
        return "ok"
    worst = min(problems, key=lambda f: _RANK[f.severity])
    return _WORDS.get(worst.code, worst.code)


def entry_findings(
    entries: Sequence[Entry], profile: KernelProfile | None = None
) -> Mapping[str, list[Finding]]:
    """Doctor's per-entry findings for each live entry, by name. Edge: reads each
    interpreter and samples what the host runs natively (hijack.gather)."""
    from binfmtctl.hijack import gather as native_samples

    running = KernelProfile.current_default()
    facts = HostFacts(
        profile=profile or running,
        running=running,
        uname_m=os.uname().machine,
        entries=tuple(entries),
        interpreters={e.interpreter: gather_interpreter(e.interpreter) for e in entries},
        native=native_samples(entries),
    )
    out: dict[str, list[Finding]] = {e.name: [] for e in entries}
    for f in check_entries(facts):
        if f.entry is not None and f.entry in out:
            out[f.entry].append(f)
    return out
