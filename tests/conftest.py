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


def _host_table() -> tuple[str, list[tuple[str, bytes]]]:
    """The host's binfmt_misc as this (initial-namespace) process sees it, read-only."""
    with open("/proc/self/mountinfo") as f:
        mounted = any(line.split()[4] == "/proc/sys/fs/binfmt_misc" for line in f)
    entries: list[tuple[str, bytes]] = []
    if mounted:
        for name in sorted(os.listdir("/proc/sys/fs/binfmt_misc")):
            with open(os.path.join("/proc/sys/fs/binfmt_misc", name), "rb") as f:
                entries.append((name, f.read() if name != "register" else b""))
    return ("mounted" if mounted else "not-mounted", entries)


@pytest.fixture(autouse=True)
def host_table_untouched() -> Iterator[None]:
    """Every test leaves the host's binfmt_misc exactly as it found it: not mounted
    by us, no entry added, changed or removed."""
    before = _host_table()
    yield
    after = _host_table()
    assert after == before, f"this test changed the HOST's binfmt_misc: {before} -> {after}"
