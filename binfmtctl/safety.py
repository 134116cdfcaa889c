"""The host-safety judgement of entries about to be registered: hijack and untrusted paths.

One place for every command that registers (``register``, ``install``, ``apply``,
``import``, ``persist add``) and for ``validate``: an entry that matches what the host runs
natively (:mod:`hijack`), and one whose interpreter a non-root user controls
(:mod:`trust`; an error with ``C``/``O``, a warning otherwise). Errors are refused without
``--force``; warnings are printed.
"""

from __future__ import annotations

from binfmtctl import hijack, trust
from binfmtctl.entry import Entry
from binfmtctl.errors import Problem

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `binfmtctl validate` imports no collections, typing
    from collections.abc import Callable, Sequence


def entry_problems(
    entry: Entry, native: hijack.NativeSamples, verdict: trust.Verdict
) -> list[Problem]:
    """Hijack (error) and interpreter trust (error with C/O, else warning). Pure."""
    found = [hijack.hijack_problem(entry, native), trust.interpreter_problem(entry, verdict)]
    return [p for p in found if p is not None]


def judge(
    entries: Sequence[Entry],
    *,
    native: hijack.NativeSamples | None = None,
    check: Callable[[str], trust.Verdict] | None = trust.check,
) -> list[tuple[Entry, Problem]]:
    """Every problem of every entry, in order. Edge: gathers the host's samples once.
    ``check=None`` skips the interpreter trust check (a table private to the caller)."""
    samples = native if native is not None else hijack.gather(entries)
    verdicts: dict[str, trust.Verdict] = {}
    out = []
    for e in entries:
        if e.interpreter not in verdicts:
            trusted = trust.Verdict(e.interpreter, e.interpreter)
            verdicts[e.interpreter] = trusted if check is None else check(e.interpreter)
        out += [(e, p) for p in entry_problems(e, samples, verdicts[e.interpreter])]
    return out
