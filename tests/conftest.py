"""Shared fixtures: a private binfmt_misc (user namespace, Linux >= 6.7).

Tests that need the real kernel use ``sandbox``. They skip only where the
kernel truly cannot give a private instance, with the reason; ``.ci/run``
fails the build if any of them skipped on a machine that should run them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from binfmtctl import sandbox as sb

ROOT = Path(__file__).resolve().parent.parent

#: boot plans (binfmtctl.bootplan) that tests compile go here, never to the host's
#: /var/cache/binfmtctl; a test that wants its own sets BINFMTCTL_CACHE_DIR itself
HOST_CACHE = "/var/cache/binfmtctl"
_TEST_CACHE = tempfile.mkdtemp(prefix="binfmtctl-test-cache-")
os.environ["BINFMTCTL_CACHE_DIR"] = _TEST_CACHE


@pytest.fixture(scope="session", autouse=True)
def host_cache_untouched() -> Iterator[None]:
    before = os.path.lexists(HOST_CACHE)
    yield
    shutil.rmtree(_TEST_CACHE, ignore_errors=True)
    assert os.path.lexists(HOST_CACHE) == before, f"the tests created {HOST_CACHE}"


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


def host_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI outside any sandbox (for --root work and pure reads: no live table
    involved), without the caller's BINFMTCTL_CONFIG."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    e.pop("BINFMTCTL_CONFIG", None)
    e.update(env or {})
    # the timeout only guards the suite against a hang; nothing is asserted about time
    return subprocess.run(
        binfmtctl_argv(*args), capture_output=True, text=True, env=e, timeout=120, check=False
    )


@contextlib.contextmanager
def shared_tmpdir(prefix: str, mode: int = 0o755) -> Iterator[Path]:
    """A temporary directory with ``mode`` (pytest's tmp_path is root's, 0700, which uid
    65534 and the sandbox's root cannot enter), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(mode)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


#: QEMU's aarch64 entry as Debian registers it, and two more of the messy-table kind
AARCH64 = (
    r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
    r":\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
    r":/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF"
)
S390X_GONE = (
    r":qemu-s390x:M::\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16"
    r":\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff"
    r":/opt/gone/qemu-s390x-static:F"
)
WSL = ":WSLInterop:M::MZ::/init:P"


def host_table() -> tuple[str, list[tuple[str, bytes]]]:
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
    before = host_table()
    yield
    after = host_table()
    assert after == before, f"this test changed the HOST's binfmt_misc: {before} -> {after}"


# -- an unprivileged user, for real ---------------------------------------------------------------
NOBODY = 65534
DEPENDENCIES = ("click", "elftools", "yaml", "_yaml", "psutil")


@dataclass(frozen=True)
class User:
    """How to run things as the unprivileged user, with binfmtctl importable."""

    drop: tuple[str, ...]  # setpriv prefix, empty when the suite already runs unprivileged
    uid: int
    python: str
    env: Mapping[str, str]
    base: Path  # world-readable scratch directory: probes, scripts, the package copy

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.drop, *argv],
            cwd=str(cwd or self.base),
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def binfmtctl(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return self.run([self.python, "-m", "binfmtctl", *args], cwd=cwd, env=env, input=input)

    def workdir(self) -> Path:
        """A fresh directory the user owns."""
        d = Path(tempfile.mkdtemp(prefix="work-", dir=self.base))
        if os.geteuid() == 0:
            os.chown(d, self.uid, self.uid)
        return d


def _exec_ok_base() -> str:
    for c in (tempfile.gettempdir(), "/var/tmp", "/dev/shm"):
        try:
            if os.access(c, os.W_OK | os.X_OK) and not os.statvfs(c).f_flag & os.ST_NOEXEC:
                return c
        except OSError:
            continue
    return tempfile.gettempdir()


def _copy_runtime(site: Path) -> None:
    """binfmtctl (with its data) and its dependencies, as world-readable copies."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "binfmtctl", site / "binfmtctl", ignore=ignore)
    shutil.copytree(ROOT / "data", site / "data", ignore=ignore)
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue  # optional (_yaml)
        if spec.submodule_search_locations:
            src = Path(next(iter(spec.submodule_search_locations)))
            shutil.copytree(src, site / src.name, ignore=ignore)
        else:
            shutil.copy2(spec.origin, site / Path(spec.origin).name)


@pytest.fixture(scope="session")
def user() -> Iterator[User]:
    """The unprivileged user the live tests run as (never skipped for lack of a Python)."""
    base = Path(tempfile.mkdtemp(prefix="binfmtctl-rootless-", dir=_exec_ok_base()))
    try:
        base.chmod(0o755)
        site = base / "site"
        _copy_runtime(site)
        for dirpath, dirnames, filenames in os.walk(base):
            for n in dirnames:
                os.chmod(os.path.join(dirpath, n), 0o755)
            for n in filenames:
                p = os.path.join(dirpath, n)
                os.chmod(p, os.stat(p).st_mode | 0o444)
        drop: tuple[str, ...] = ()
        uid = os.geteuid()
        if uid == 0:
            setpriv = shutil.which("setpriv")
            assert setpriv, "setpriv (util-linux) is needed to drop to uid 65534"
            drop = (setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--")
            uid = NOBODY
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(base),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(site),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TMPDIR": tempfile.gettempdir(),  # where run's namespace keeps its records
        }
        candidates = [sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]
        check = (
            "import sys, binfmtctl.cli, click, elftools, yaml; assert sys.version_info >= (3, 10)"
        )
        tried = []
        for py in dict.fromkeys(c for c in candidates if c):
            # through sh, so the exec itself happens with the user's credentials
            p = subprocess.run(
                [*drop, "sh", "-c", 'exec "$0" -c "$1"', py, check],
                cwd=base,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if p.returncode == 0:
                yield User(drop, uid, py, env, base)
                return
            tried.append(f"{py}: {p.stderr.strip().splitlines()[-1:] or p.returncode}")
        pytest.fail(f"no Python that uid {uid} can run with binfmtctl's dependencies: {tried}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- reading and seeding a sandbox's table behind binfmtctl's back ---------------------------------
MNT = "/proc/sys/fs/binfmt_misc"


def snapshot(box: sb.Sandbox) -> list[tuple[str, str]]:
    """(name, entry file text) in kernel match order: the whole observable table."""
    script = f'for f in $(ls -f {MNT}); do case $f in .|..|register|status) ;; *) printf "%s\\n" "$f"; cat {MNT}/"$f"; printf "\\036\\n";; esac; done'
    out = box.run(["sh", "-c", script]).stdout.decode()
    items = []
    for block in out.split("\x1e\n"):
        if block.strip():
            name, _, text = block.partition("\n")
            items.append((name, text))
    return items


def register_raw(box: sb.Sandbox, line: str) -> None:
    """Register behind binfmtctl's back, as another tool (or a person with echo) would."""
    p = box.run(["sh", "-c", f"printf '%s\\n' '{line}' > {MNT}/register"])
    assert p.returncode == 0, p.stderr
