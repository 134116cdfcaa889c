"""Fixtures for the fleet tests: the container image, built for real with podman.

Everything runs as root of a user namespace that maps ids 0-65535 (``userns.py``), with a
private binfmt_misc mounted there, so the host's table is never read or written. The base
image is made here (no registry can be pulled on these machines): ``debootstrap --variant=
minbase bookworm`` from the Debian mirror apt is configured with, cached as a tarball under
/var/cache/binfmtctl-tests (env BINFMTCTL_TEST_CACHE) so reruns take seconds, then
``podman import``. The image is built once per session, from wheels built on the host
(``pip wheel``), offline inside the build.

Left out of the README's test command (pyproject: ``-m 'not fleet'``); run them with
``pytest -m fleet tests/fleet``, as .ci/run does (as root, after ``pip install -e '.[fleet]'``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USERNS = Path(__file__).resolve().parent / "userns.py"
CACHE = Path(os.environ.get("BINFMTCTL_TEST_CACHE", "/var/cache/binfmtctl-tests"))
SUITE = "bookworm"
#: in the base so the image build needs no network (Debian's own packages, as the image uses)
BASE_PACKAGES = ("python3", "python3-venv", "qemu-user-static")
IMAGE = "localhost/binfmtctl:fleet-test"
#: bump when cached_debootstrap's output changes, so stale caches are not reused
CACHE_VERSION = 2
MNT = "/proc/sys/fs/binfmt_misc"
#: what podman needs as root of a 0-65535 user namespace on these machines. The kernel's
#: overlayfs works in a user namespace (Linux >= 5.11): ten times faster than vfs, which copies
#: every layer whole (a 700 MB base per layer and per container)
PODMAN_GLOBAL = (
    "--storage-driver",
    "overlay",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "file",
)
RUN_FLAGS = (
    "--runtime",
    "runc",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
)


def debian_mirror(sources: Sequence[tuple[str, str]]) -> str:
    """The Debian archive URI apt uses, from (file name, text) of sources.list(.d) files."""
    for name, text in sources:
        for line in text.splitlines():
            words = line.split()
            uris: list[str] = []
            if name.endswith(".sources") and words[:1] == ["URIs:"]:
                uris = words[1:]
            elif name.endswith(".list") and words[:1] == ["deb"]:
                uris = [w for w in words[1:] if "://" in w][:1]
            for uri in uris:
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return "http://deb.debian.org/debian"


def _apt_sources() -> list[tuple[str, str]]:
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    out = []
    for f in files:
        if f.suffix in (".list", ".sources") and f.is_file():
            out.append((f.name, f.read_text(errors="replace")))
    return out


def fail_needs(what: str, fix: str) -> None:
    pytest.fail(f"fleet tests need {what} (fix: {fix}); see .ci/run", pytrace=False)


@pytest.fixture(scope="session")
def fleet_ready() -> None:
    if os.geteuid() != 0:
        fail_needs(
            "real root (to map 65536 ids for podman)",
            "run the fleet tests as root, as .ci/run does",
        )
    for cmd, pkg in (("podman", "podman"), ("runc", "runc"), ("debootstrap", "debootstrap")):
        if shutil.which(cmd) is None:
            fail_needs(cmd, f"apt-get install -y {pkg}")


def cached_debootstrap(name: str, *options: str) -> Path:
    """``debootstrap --variant=minbase OPTIONS bookworm`` as a tar under CACHE, made once."""
    tar = CACHE / f"{SUITE}-minbase-{name}-v{CACHE_VERSION}.tar"
    if tar.is_file():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=CACHE))
    try:
        rootfs = work / "root"
        p = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                *options,
                SUITE,
                str(rootfs),
                debian_mirror(_apt_sources()),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert p.returncode == 0, f"debootstrap failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        # an image's /proc, /sys and /dev are the engine's: plain empty directories (the first
        # stage leaves /proc a symlink to the host's, which runc refuses to mount over)
        for d in ("proc", "sys", "dev"):
            target = rootfs / d
            if target.is_symlink() or target.is_file():
                target.unlink()
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(mode=0o755)
        part = work / "base.tar"
        # like the Debian images on registries: no package lists, no downloaded .debs
        tar_argv = ["tar", "--numeric-owner", "--exclude=./debootstrap", "-C", str(rootfs)]
        tar_argv += ["--exclude=./var/lib/apt/lists/*", "--exclude=./var/cache/apt/archives/*.deb"]
        subprocess.run([*tar_argv, "-cf", str(part), "."], check=True)
        part.rename(tar)  # atomic: a half-written tarball is never taken for the cache
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tar


@pytest.fixture(scope="session")
def base_tarball(fleet_ready: None) -> Path:
    """The image's base: a minbase bookworm root with Python and QEMU, as a tar."""
    return cached_debootstrap("-".join(BASE_PACKAGES), f"--include={','.join(BASE_PACKAGES)}")


@pytest.fixture(scope="session")
def arm64_rootfs(fleet_ready: None) -> Path:
    """An arm64 bookworm root (debootstrap's first stage: unpacked, not configured, which
    needs no emulation) to build a foreign image from."""
    return cached_debootstrap("arm64-foreign", "--foreign", "--arch=arm64")


@dataclass(frozen=True)
class Podman:
    """podman with a private store, run as root of a 0-65535 user namespace whose
    binfmt_misc is private (mounted fresh by each :meth:`session`)."""

    store: Path

    def argv(self, *args: str) -> list[str]:
        return [
            "podman",
            "--root",
            str(self.store / "root"),
            "--runroot",
            str(self.store / "run"),
            "--tmpdir",
            str(self.store / "tmp"),
            *PODMAN_GLOBAL,
            *args,
        ]

    def session(self, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """Run ``script`` (sh) in a new namespace with an empty private binfmt_misc at MNT;
        ``$PODMAN`` is this podman. Everything registered vanishes when it exits."""
        prologue = (
            "set -eu\n"
            "mount --make-rprivate /\n"
            f"mount -t binfmt_misc binfmt_misc {MNT}\n"
            f"test ! -e {MNT}/qemu-aarch64\n"
        )
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.store),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.store / "tmp"),
            "XDG_RUNTIME_DIR": str(self.store / "xdg"),
            "PODMAN": " ".join(self.argv()),
            "PYTHON": sys.executable,
            "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        return subprocess.run(
            [sys.executable, str(USERNS), "sh", "-c", prologue + script],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="session")
def podman(fleet_ready: None) -> Iterator[Podman]:
    """A podman store kept under CACHE (the imported base image is reused by reruns), locked
    for this session; images left dangling by rebuilds are pruned at the end."""
    store = CACHE / "podman"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "podman.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for d in ("root", "run", "tmp", "xdg"):
            (store / d).mkdir(mode=0o700, parents=True, exist_ok=True)
        pm = Podman(store)
        try:
            yield pm
        finally:
            pm.session("$PODMAN container rm -af >/dev/null; $PODMAN image prune -f >/dev/null")


def build_context(dest: Path) -> Path:
    """The build context a user has at the repository root, plus ``wheels/`` from pip wheel."""
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("binfmtctl", "launcher", "data", "systemd", "deploy"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    p = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(dest / "wheels"), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, f"pip wheel failed: {p.stderr[-2000:]}"
    return dest


@pytest.fixture(scope="session")
def image(podman: Podman, base_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project's image, built from deploy/Containerfile on the debootstrapped base."""
    ctx = build_context(tmp_path_factory.mktemp("context"))
    base = f"localhost/binfmtctl-test-base:{base_tarball.stem}"
    p = podman.session(
        f"$PODMAN image exists {base} || $PODMAN import {base_tarball} {base} >/dev/null\n"
        f"$PODMAN build --isolation chroot -f {ctx}/deploy/Containerfile "
        f"--build-arg BASE={base} --build-arg WHEELS=wheels -t {IMAGE} {ctx}\n"
    )
    assert p.returncode == 0, f"image build failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return IMAGE
