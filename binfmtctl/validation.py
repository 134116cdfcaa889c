"""`validate`'s use case: would the kernel accept each register string, and if not, why.

:func:`judge` returns a :class:`ValidateReport` (one :class:`~binfmtctl.rules.Verdict` per
input, in order) and prints nothing; :mod:`binfmtctl.validate_text` has its text, which
the click command and the fast path both print.
Validity stays the kernel's verdict: what register would refuse for the host's safety is
added as warnings only.
"""

from __future__ import annotations

from binfmtctl.record import dataclass, field, replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: ``binfmtctl validate ENTRY`` imports no typing
    from collections.abc import Callable, Sequence
    from typing import Any

    from binfmtctl.errors import Problem
    from binfmtctl.kernelprofile import KernelProfile


@dataclass(frozen=True)
class ValidateReport:
    """The verdicts on ``inputs`` (the register strings as given, without the newline)."""

    inputs: tuple[bytes, ...] = field(metadata={"json": False})
    verdicts: tuple[Any, ...]

    def to_json(self) -> list[Any]:
        return [v.to_json() for v in self.verdicts]

    @property
    def exit_code(self) -> int:
        return 0 if all(v.valid for v in self.verdicts) else 1


def check(inputs: Sequence[bytes], profile: KernelProfile, mount: str | None) -> ValidateReport:
    """``binfmtctl validate``: judge ``inputs`` against ``profile`` and the live table at
    ``mount`` (read without side effects: a same name is EEXIST), with F's open check on
    this host. What the click command and the fast path both call."""
    from binfmtctl.mountstate import mount_path, open_exec_errno

    return judge(inputs, profile, live_names(mount_path(mount)), open_exec_errno)


def judge(
    inputs: Sequence[bytes],
    profile: Any,
    existing: Sequence[str] = (),
    exec_check: Callable[[str], Any] | None = None,
) -> ValidateReport:
    """Judge every input as ``echo INPUT > register`` would write it, against ``profile``;
    ``existing``: the live names (a same name is EEXIST)."""
    from binfmtctl.inputs import as_written
    from binfmtctl.rules import validate_contained

    verdicts = [
        validate_contained(as_written(raw), profile, existing_names=existing, exec_check=exec_check)
        for raw in inputs
    ]
    add_safety_warnings(verdicts)
    return ValidateReport(tuple(inputs), tuple(verdicts))


def add_safety_warnings(verdicts: list[Any]) -> None:
    """What register would refuse or warn about for the host's safety (the kernel accepts
    it): as warnings, so validity stays the kernel's verdict."""
    from binfmtctl.safety import judge as judge_safety

    entries = [v.entry for v in verdicts if v.valid and v.entry is not None]
    if not entries:
        return
    found: dict[int, list[Problem]] = {}
    for e, p in judge_safety(entries):
        if p.is_error:
            p = replace(
                p,
                severity="warning",
                message=p.message
                + " (register, install, import and apply refuse it without --force)",
            )
        found.setdefault(id(e), []).append(p)
    for v in verdicts:
        if v.valid and v.entry is not None:
            v.problems.extend(found.get(id(v.entry), []))


def live_names(path: str) -> list[str]:
    """Names in the live table at ``path`` if it can be read without side effects (else none)."""
    from binfmtctl.mountstate import entry_names, read_mount_state

    try:
        if read_mount_state(path).state != "mounted":
            return []
        return entry_names(path)
    except OSError:
        return []
