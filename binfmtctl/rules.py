"""The kernel's registration rules, per kernel version.

:func:`scan` parses one register write as ``create_entry()`` in
``fs/binfmt_misc.c`` does (the grammar itself, field by field, is
:mod:`binfmtctl.grammar`; the per-version facts are :mod:`binfmtctl.kernelprofile`).
:func:`validate` adds what ``bm_register_write``
decides after parsing (the ``F`` open of the interpreter, the name lookup and
``EEXIST``), in the order the profiled kernel does it, plus warnings for what
the kernel accepts but is almost surely a mistake.

Pure: filesystem facts (existing entry names, whether the interpreter opens for
exec) are passed in.
"""

from __future__ import annotations

from binfmtctl.entry import Entry, entry_of, kernel_view
from binfmtctl.errors import Problem
from binfmtctl.grammar import scan_fields
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `binfmtctl validate` imports no collections, typing
    from collections.abc import Callable, Iterable

RESERVED_NAMES = frozenset({"register", "status"})
NAME_MAX = 255


@dataclass
class ScanResult:
    entry: Entry | None
    problems: list[Problem] = field(default_factory=list)
    #: byte spans of each field in the input, for diagnostics
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


def scan(raw: bytes, profile: KernelProfile) -> ScanResult:
    """Parse ``raw`` (exactly the bytes of one ``write()``) as ``create_entry()`` does
    (see :mod:`binfmtctl.grammar`)."""
    found = scan_fields(raw, profile)
    entry = None if found.fields is None else entry_of(found.fields)
    return ScanResult(entry, found.problems, found.spans)


# -- post-parse decisions ------------------------------------------------------------------------
if TYPE_CHECKING:
    ExecCheck = Callable[[str], "str | None"]


@dataclass
class Verdict:
    """Everything ``validate`` knows about one register string."""

    input: bytes
    entry: Entry | None
    problems: list[Problem]
    errno: str | None
    profile: KernelProfile
    #: set when binfmtctl itself failed to judge this input (a bug): not valid, no errno
    internal_error: str | None = None

    @property
    def valid(self) -> bool:
        return self.errno is None and self.internal_error is None

    @property
    def kernel_view(self) -> str | None:
        return kernel_view(self.entry) if self.entry is not None and self.valid else None

    def to_json(self) -> dict[str, object]:
        return {
            "input": (self.input[:-1] if self.input.endswith(b"\n") else self.input).decode(
                "utf-8", "backslashreplace"
            ),
            "valid": self.valid,
            "errno": self.errno,
            "problems": [p.to_json() for p in self.problems],
            "kernel_view": self.kernel_view,
            "kernel": self.profile.label,
        } | ({"internal_error": self.internal_error} if self.internal_error else {})


_FOPEN_FIX = {
    "ENOENT": "install the interpreter or fix the path (with F it must exist when you register)",
    "EACCES": "the interpreter must be an executable regular file on a filesystem mounted without noexec: chmod +x it or fix the path",
    "ENOTDIR": "a directory in the interpreter path is a file: fix the path",
    "ETXTBSY": "the interpreter is open for writing (being upgraded?); retry after the write finishes",
    "ELOOP": "the interpreter path has a symlink loop: fix the path",
    "ENAMETOOLONG": "shorten the interpreter path",
}


def validate_contained(
    raw: bytes,
    profile: KernelProfile,
    *,
    existing_names: Iterable[str] = (),
    exec_check: ExecCheck | None = None,
) -> Verdict:
    """:func:`validate`, but a failure of binfmtctl's own on this input becomes a verdict
    (not valid, ``internal_error`` set) instead of an exception: a batch still judges
    every other input."""
    try:
        return validate(raw, profile, existing_names=existing_names, exec_check=exec_check)
    except Exception as e:  # a bug of ours: contain it to this input
        why = f"{type(e).__name__}: {e}"
        problem = Problem(
            "input",
            f"binfmtctl could not judge this input (internal error {why})",
            "nothing to fix in the input on your side: please report it to binfmtctl with this input",
            errno=None,
            rule="internal",
        )
        return Verdict(raw, None, [problem], None, profile, internal_error=why)


def validate(
    raw: bytes,
    profile: KernelProfile,
    *,
    existing_names: Iterable[str] = (),
    exec_check: ExecCheck | None = None,
) -> Verdict:
    """Judge one ``write()`` to ``register``: would the kernel accept it, with which errno?

    ``exec_check(path)`` returns the errno name ``open_exec`` would give for the
    interpreter (or None); it is only consulted for ``F`` entries and only when
    given. ``existing_names`` are entries already registered in the target instance.
    """
    res = scan(raw, profile)
    problems = list(res.problems)
    entry = res.entry
    if entry is None:
        return Verdict(raw, None, problems, "EINVAL", profile)

    post: list[Problem] = []  # in the order the kernel decides them
    span_i = res.spans.get("interpreter")
    span_n = res.spans.get("name")
    fopen: Problem | None = None
    if "F" in entry.flags and exec_check is not None:
        e = exec_check(entry.interpreter)
        if e:
            fopen = Problem(
                "interpreter",
                f"with the F flag the kernel opens the interpreter {entry.interpreter!r} at registration, and that fails with {e}",
                _FOPEN_FIX.get(e, "fix the interpreter path"),
                errno=e,
                span=span_i,
                rule="interpreter.fopen",
            )
    lookup: list[Problem] = []
    if len(entry.name_bytes) > NAME_MAX:
        lookup.append(
            Problem(
                "name",
                f"the name is {len(entry.name_bytes)} bytes; entry names are file names of at most {NAME_MAX} bytes",
                "shorten the name",
                errno="ENAMETOOLONG",
                span=span_n,
                rule="name.length",
            )
        )
    elif entry.name in RESERVED_NAMES or entry.name in set(existing_names):
        reserved = entry.name in RESERVED_NAMES
        lookup.append(
            Problem(
                "name",
                f"the name {entry.name!r} is "
                + (
                    "reserved: the control files register and status have it"
                    if reserved
                    else "already registered"
                ),
                "choose another name"
                if reserved
                else f"the kernel never replaces an entry: remove it first (binfmtctl remove {entry.name}), or use binfmtctl register --replace",
                errno="EEXIST",
                span=span_n,
                rule="name.reserved" if reserved else "name.exists",
            )
        )
    if profile.fopen_before_lookup:
        post = ([fopen] if fopen else []) + lookup
    else:
        post = lookup + ([fopen] if fopen else [])
    if post and not profile.real_errno:
        post = [
            Problem(
                p.field,
                p.message + f" (Linux {profile.label} reports this as EINVAL)",
                p.fix,
                "EINVAL",
                p.span,
                p.severity,
                p.rule,
            )
            for p in post
        ]
    problems += post
    errno = post[0].errno if post else None

    # Accepted but risky: warnings that need the parsed entry.
    if entry.interpreter and not entry.interpreter.startswith("/"):
        problems.append(
            Problem(
                "interpreter",
                f"the interpreter {entry.interpreter!r} is a relative path: "
                + (
                    "with F it is resolved against the registering process's working directory"
                    if "F" in entry.flags
                    else "it is resolved against the working directory of every process that runs a matching file"
                ),
                "use an absolute path",
                errno=None,
                span=span_i,
                severity="warning",
                rule="interpreter.relative",
            )
        )
    return Verdict(raw, entry, problems, errno, profile)


__all__ = [
    "RESERVED_NAMES",
    "KernelProfile",
    "ScanResult",
    "Verdict",
    "scan",
    "validate",
]
