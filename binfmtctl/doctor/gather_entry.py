"""The edge of doctor's per-entry checks: what they need to know about one live entry's
interpreter, read from disk. ``status`` runs those checks on every entry
(:mod:`binfmtctl.health`), so this module imports only what reading an interpreter needs,
none of the host-wide gathering of :mod:`binfmtctl.doctor.gather`."""

from __future__ import annotations

from binfmtctl.binfmt_misc import open_exec_errno
from binfmtctl.doctor.facts import InterpreterFacts


def gather_interpreter(path: str) -> InterpreterFacts:
    """The file and ELF facts of ``path``, the errno ``open_exec`` would give, and who
    controls each component of it."""
    from binfmtctl.interpreters import gather_facts
    from binfmtctl.trust import check as trust_check

    return InterpreterFacts(gather_facts(path), open_exec_errno(path), trust_check(path))
