"""The one way binfmtctl runs a short-lived command and waits for it.

:func:`run` captures both streams as bytes, never raises for a non-zero exit, gives
the child no terminal input unless ``input`` is given, and turns a timeout into
:class:`TimedOut` (so callers need not import :mod:`subprocess`). An ``OSError``
(no such program, not executable) propagates: each caller explains it in its own
terms. ``subprocess`` itself is imported on the first call, not at import time:
the boot-time ``apply`` usually starts no process at all.

Long-lived children (the sandbox's namespace holder, ``binfmtctl run``'s command)
are not "run and wait": they stay with :mod:`binfmtctl.sandbox`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from binfmtctl.record import dataclass


class TimedOut(Exception):
    """The command did not finish within ``timeout`` seconds (it was killed)."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        super().__init__(f"{argv[0] if argv else '?'}: no answer within {timeout:g}s")


@dataclass(frozen=True)
class Ran:
    """A finished command: its exit status and what it wrote."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def args(self) -> list[str]:
        """``argv``, under the name :class:`subprocess.CompletedProcess` gives it."""
        return list(self.argv)

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    input: bytes | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Ran:
    """Run ``argv`` to completion; see the module doc for what it guarantees."""
    import subprocess

    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            cwd=cwd,
            env=None if env is None else dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TimedOut(argv, timeout or 0) from None
    return Ran(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
