"""Rootless builds: ``binfmtctl run -- podman build --platform linux/arm64`` as an unprivileged
user (uid 65534) with subordinate id ranges builds an image whose RUN steps execute arm64
binaries. No step runs as root: the test (root) only prepares a home directory and gives the
user its /etc/subuid and /etc/subgid lines, by bind-mounting copies in a private mount
namespace, so the host's files are never changed."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import NOBODY, User

pytestmark = [pytest.mark.fleet, pytest.mark.sandbox, pytest.mark.qemu]

PODMAN = ["podman", "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs"]
PODMAN += ["--events-backend", "file"]
CONTAINERFILE = """\
FROM scratch
ADD rootfs.tar /
RUN echo "RUN step on $(uname -m), $(dpkg --print-architecture) userland, as uid $(id -u)"
RUN ["/usr/bin/sh", "-c", "uname -m > /built-on"]
"""


def _as_user(
    user: User, home: Path, argv: Sequence[str], subids: Path | None
) -> subprocess.CompletedProcess[str]:
    """``argv`` as uid 65534 with HOME/XDG_RUNTIME_DIR of its own; with ``subids``, in a mount
    namespace where /etc/subuid and /etc/subgid are that file."""
    binds = (
        f'mount --bind "{subids}" /etc/subuid && mount --bind "{subids}" /etc/subgid && '
        if subids
        else ""
    )
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", binds + 'exec "$@"']
    return subprocess.run(
        [*wrapper, "sh", *user.drop, *argv],
        cwd=home,
        env={
            **user.env,
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "TMPDIR": str(home / "tmp"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def home(user: User) -> Path:
    assert user.drop, "these tests start as root, to give uid 65534 a home and subordinate ids"
    h = Path(user.workdir())
    for d in ("run", "tmp", "ctx"):
        (h / d).mkdir(mode=0o700)
        os.chown(h / d, NOBODY, NOBODY)
    yield h
    # the image store holds files of the subordinate ids: root removes it
    shutil.rmtree(h, ignore_errors=True)


def test_rootless_podman_build_runs_arm64_steps_without_root(
    user: User, home: Path, arm64_rootfs: Path, tmp_path: Path
) -> None:
    subids = tmp_path / "subid"
    subids.write_text(f"nobody:{200000}:65536\n")
    subids.chmod(0o644)
    ctx = home / "ctx"
    shutil.copy(arm64_rootfs, ctx / "rootfs.tar")
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    for f in ctx.iterdir():
        os.chown(f, NOBODY, NOBODY)
    script = (
        f"{' '.join(PODMAN)} build --isolation chroot --platform linux/arm64 -t rootless-arm64 ctx"
        f" && {' '.join(PODMAN)} image inspect --format 'ARCH={{{{.Architecture}}}}' rootless-arm64"
        f" && {' '.join(PODMAN)} image rm -f rootless-arm64 >/dev/null"
    )
    p = _as_user(
        user,
        home,
        [user.python, "-m", "binfmtctl", "run", "-v", "-t", "arm64", "--", "sh", "-c", script],
        subids,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    dry = _as_user(user, home, [user.python, "-m", "binfmtctl", "run", "--dry-run"], subids)
    assert "container engines: your subordinate ids are mapped" in dry.stdout, dry.stdout
    # the RUN steps ran arm64 programs (dash, coreutils, dpkg) through QEMU, as the user's root
    assert "RUN step on aarch64, arm64 userland, as uid 0" in out, out[-3000:]
    assert "ARCH=arm64" in p.stdout
    assert "mapping your subordinate ids too" in p.stderr
    # nothing ran as root on the host: every file the build left is the user's or a sub-id's
    owners = {st.st_uid for st in (f.lstat() for f in home.rglob("*"))}
    assert owners <= {NOBODY, *range(200000, 200000 + 65536)}, owners


def test_without_subordinate_ids_run_says_why_podman_will_fail_and_the_fix(
    user: User, home: Path
) -> None:
    with open("/etc/subuid") as f:
        assert not any(ln.startswith(("nobody:", f"{NOBODY}:")) for ln in f), "host gives ids"
    p = _as_user(
        user,
        home,
        [user.python, "-m", "binfmtctl", "run", "-t", "arm64", "--", *PODMAN, "info"],
        None,
    )
    assert (
        "warning: podman needs subordinate ids inside `binfmtctl run` (image layers have files "
        "of many owners), and they cannot be mapped: nobody has no subordinate ids in "
        "/etc/subuid and /etc/subgid; fix: as root: usermod --add-subuids 100000-165535 "
        "--add-subgids 100000-165535 nobody" in p.stderr.replace("\n", " ")
    ), p.stderr
    dry = _as_user(user, home, [user.python, "-m", "binfmtctl", "run", "--dry-run"], None)
    assert "container engines: only you are mapped: nobody has no subordinate ids" in dry.stdout, (
        dry.stdout
    )
