"""Shared fixtures: a private binfmt_misc (user namespace, Linux >= 6.7).

Tests that need the real kernel use ``sandbox``. They skip only where the
kernel truly cannot give a private instance, with the reason; ``.ci/run``
fails the build if any of them skipped on a machine that should run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from binfmtctl import sandbox as sb

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sandbox_reason() -> tuple[str, str] | None:
    return sb.unavailable_reason()


@pytest.fixture
def sandbox(sandbox_reason: tuple[str, str] | None) -> Iterator[sb.Sandbox]:
    """A fresh, empty private binfmt_misc instance for one test."""
    require_sandbox(sandbox_reason)
    with sb.Sandbox() as box:
        yield box


def require_sandbox(reason: tuple[str, str] | None) -> None:
    """Skip where the kernel cannot give a private binfmt_misc, with the reason; in CI
    (BINFMTCTL_REQUIRE_SANDBOX=1) fail instead, since these machines must run them."""
    if reason is None:
        return
    msg = f"SANDBOX-UNAVAILABLE: {reason[0]} (fix: {reason[1]})"
    if os.environ.get("BINFMTCTL_REQUIRE_SANDBOX"):
        pytest.fail(msg)
    pytest.skip(msg)


def binfmtctl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "binfmtctl", *args]


def run_cli(
    box: sb.Sandbox, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI inside the sandbox; text output."""
    e = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    e.update(env or {})
    p = box.run(binfmtctl_argv(*args), input=input, env=e)
    return subprocess.CompletedProcess(
        p.args, p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    )
