"""The one exception root, exit statuses, and the Problem record.

Library code raises; only the CLI prints. Every user-facing failure is a
``BinfmtctlError``: the command line prints :func:`error_line` (``Error: <message>``,
then the fix line) on stderr and exits with the error's ``exit_code``. That mapping
lives in one place, ``binfmtctl.cli``; this module does not import click, so the
paths that never need click (``--version``, the boot-time ``apply``) do not pay for it.
"""

from __future__ import annotations

from binfmtctl.record import dataclass
from binfmtctl.record import field as dc_field


class ExitStatus:
    """The exit statuses, as plain ints (``enum`` costs 7 ms to import here: issue 15)."""

    OK = 0
    PROBLEMS = 1  # problems found / operation failed
    USAGE = 2  # bad invocation or unreadable input


class BinfmtctlError(Exception):
    """A failure a person can act on: the message names the cause and the fix."""

    exit_code = int(ExitStatus.PROBLEMS)
    #: what failed while cleaning up after this error, and was gone past (systemd's
    #: ", ignoring"): shown after the error, never dropped
    warnings: tuple[str, ...] = ()

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message  # the cause alone: ``message`` and ``fix`` stay two fields
        self.fix = fix
        super().__init__(self.format_message())

    @property
    def summary(self) -> str:
        """The cause without the fix (an older name of :attr:`message`)."""
        return self.message

    def format_message(self) -> str:
        """Both, as the renderers print them: the cause, then an indented ``fix:`` line."""
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"

    def __str__(self) -> str:
        return self.format_message()


class UsageError(BinfmtctlError):
    """Bad input given by the user (exit 2)."""

    exit_code = int(ExitStatus.USAGE)


class CommandNotFound(BinfmtctlError):
    """The command given to run (sandbox, run) could not be executed (exit 127, as a shell)."""

    exit_code = 127


def error_line(e: BinfmtctlError) -> str:
    """What the user sees on stderr for ``e`` (as click prints its own errors)."""
    return f"Error: {error_text(e)}"


def error_text(e: BinfmtctlError) -> str:
    """The error's message and fix, then a ``warning:`` line for each thing that failed
    while cleaning up after it."""
    return e.format_message() + "".join(f"\nwarning: {w}" for w in e.warnings)


@dataclass(frozen=True)
class Problem:
    """One reason the kernel would refuse (or silently mangle) a registration.

    ``span`` is a half-open byte range into the register string as written
    (the line plus its trailing newline), so a caller can point a caret at it.
    ``errno`` is the name the kernel would return (``EINVAL``, ``EEXIST``, ...);
    warnings (``severity == "warning"``) are accepted by the kernel and carry none.
    """

    field: str
    message: str
    fix: str
    errno: str | None = "EINVAL"
    span: tuple[int, int] | None = None
    severity: str = "error"  # "error" or "warning"
    rule: str = ""  # short stable identifier, e.g. "offset.range"
    extra: dict[str, object] = dc_field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {
            "field": self.field,
            "rule": self.rule,
            "severity": self.severity,
            "errno": self.errno,
            "message": self.message,
            "fix": self.fix,
            "span": list(self.span) if self.span else None,
        }
        d.update(self.extra)
        return d
