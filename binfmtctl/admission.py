"""What an entry must pass before binfmtctl writes it, or changes a live one: the checks the
write commands share, as pure-ish functions returning verdicts (nothing printed).

- :func:`parse_batch`: every input valid (all errors at once), each name given once;
- :func:`judge_safety`: no entry hijacking native programs, no C/O with an interpreter a
  non-root user controls (refused unless --force), other untrusted interpreters warned;
- :func:`in_use`: the live entries about to change that processes run through now.

Each verdict says what to print (``binfmtctl.cli.render.admission``) and, through
``error()``, the one-line refusal (message, fix) when the command must stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from binfmtctl.errors import Problem, UsageError
from binfmtctl.record import dataclass
from binfmtctl.wording import plural

Refusal = tuple[str, str | None]  # (message, fix)


@dataclass(frozen=True)
class Invalid:
    place: str  # "argument 2", "FILE:LINE"
    raw: bytes
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class Batch:
    """The entries of a batch of register strings, or why some are invalid."""

    entries: tuple[Any, ...]
    invalid: tuple[Invalid, ...]
    total: int

    def error(self) -> Refusal | None:
        n = len(self.invalid)
        if not n:
            return None
        verb = "is" if n == 1 else "are"
        return f"{n} of {plural(self.total, 'entry')} {verb} invalid; nothing was written", None


def parse_batch(raws: Sequence[bytes], profile: Any, where: Sequence[str] | None = None) -> Batch:
    """Validate every input before anything is written; a name given twice is a usage error."""
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.inputs import as_written
    from binfmtctl.rules import validate as do_validate

    entries = []
    bad = []
    places = (
        list(where) if where is not None else [f"argument {i}" for i in range(1, len(raws) + 1)]
    )
    first: dict[str, str] = {}
    for raw, place in zip(raws, places, strict=True):
        v = do_validate(as_written(raw), profile, exec_check=open_exec_errno)
        errors = tuple(p for p in v.problems if p.is_error)
        if errors or v.entry is None:
            bad.append(Invalid(place, raw, errors))
            continue
        if v.entry.name in first:
            raise UsageError(
                f"{place}: {v.entry.name!r} is also given at {first[v.entry.name]}; "
                "each entry name can be registered once",
                fix=f"drop one of the two (at {first[v.entry.name]} or {place})",
            )
        first[v.entry.name] = place
        entries.append(v.entry)
    return Batch(tuple(entries), tuple(bad), len(raws))


@dataclass(frozen=True)
class SafetyVerdict:
    warnings: tuple[Problem, ...]  # said, never refused
    refusals: tuple[Problem, ...]  # refused unless forced
    force: bool

    def error(self) -> Refusal | None:
        if self.refusals and not self.force:
            return (
                "refused for the host's safety; nothing was written",
                "fix the entries, or pass --force",
            )
        return None


def judge_safety(entries: Sequence[Any], force: bool, *, private: bool = False) -> SafetyVerdict:
    """``private``: a table only the caller's own processes use (``run``): no trust check,
    since no one else's exec goes through it."""
    from binfmtctl.safety import judge
    from binfmtctl.trust import check

    found = judge(entries, check=None if private else check)
    return SafetyVerdict(
        tuple(p for _, p in found if not p.is_error),
        tuple(p for _, p in found if p.is_error),
        force,
    )


@dataclass(frozen=True)
class Busy:
    entry: Any
    users: tuple[Any, ...]


@dataclass(frozen=True)
class InUse:
    """The entries about to be removed, disabled or replaced that processes run through."""

    busy: tuple[Busy, ...]
    force: bool
    dry_run: bool

    def error(self) -> Refusal | None:
        n = len(self.busy)
        if not n or self.force:
            return None
        return (
            f"{n} entr{'y is' if n == 1 else 'ies are'} in use; nothing was changed"
            + (" (dry run)" if self.dry_run else ""),
            "wait for those processes to end (or stop them), or pass --force: a running "
            "process keeps its interpreter, but its next exec of a foreign binary fails",
        )


def in_use(entries: Sequence[Any], force: bool, dry_run: bool = False) -> InUse:
    """``entries``: the live entries about to change (no entry, no process walk)."""
    if not entries:
        return InUse((), force, dry_run)
    from binfmtctl import usage

    snap = usage.snapshot({e.interpreter for e in entries})
    busy = (Busy(e, tuple(snap.users(e.interpreter))) for e in entries)
    return InUse(tuple(b for b in busy if b.users), force, dry_run)
