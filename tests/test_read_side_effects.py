"""Reads never change the host: no read command mounts binfmt_misc, as root, anywhere.

Each test runs binfmtctl as root of a fresh user + mount namespace (``unshare --user
--map-root-user --mount``) where binfmt_misc is not mounted, and compares the namespace's
mount table (/proc/self/mountinfo) before and after every command. Only the commands that
write may mount, and only on the standard path or an empty directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from binfmtctl import binfmt_misc as bmm
from tests.conftest import ROOT, require_sandbox

MNT = "/proc/sys/fs/binfmt_misc"
ENTRY = ":t:M::BMX1::/bin/true:"
UNSHARE = ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private", "--")

#: runs as root of the new namespace: unmount binfmt_misc there, then run each command and
#: report its result and whether the mount table changed
DRIVER = textwrap.dedent(
    r"""
    import json, os, subprocess, sys

    MNT = "/proc/sys/fs/binfmt_misc"

    def mountinfo():
        with open("/proc/self/mountinfo") as f:
            return f.read()

    def binfmt_mounted_at(path):
        found = False
        for line in mountinfo().splitlines():
            parts = line.split(" ")
            if parts[4] == path:
                found = parts[parts.index("-") + 1] == "binfmt_misc"
        return found

    if binfmt_mounted_at(MNT):  # inherited from the host: hide it under an empty tmpfs
        if subprocess.run(["umount", MNT]).returncode != 0:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4k", "empty", MNT], check=True)
    assert not binfmt_mounted_at(MNT) and not os.path.exists(MNT + "/register")

    spec = json.load(sys.stdin)
    results = []
    for argv in spec["commands"]:
        before = mountinfo()
        p = subprocess.run(
            [sys.executable, "-m", "binfmtctl", *argv],
            capture_output=True, text=True, cwd=spec["cwd"],
        )
        after = mountinfo()
        results.append({
            "argv": argv, "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr,
            "mount_table_changed": before != after,
            "binfmt_at": [path for path in spec["watch"] if binfmt_mounted_at(path)],
            "listing": {path: sorted(os.listdir(path)) for path in spec["watch"]},
        })
    print(json.dumps(results))
    """
)


def run_unmounted(commands: list[list[str]], work: Path, watch: list[str]) -> list[dict[str, Any]]:
    """Run binfmtctl ``commands`` in order as root of a new user + mount namespace in which
    binfmt_misc is not mounted; one result per command."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BINFMTCTL_STATE_DIR": str(work / "state"),
        "BINFMTCTL_CONFIG": str(work / "binfmtctl.conf"),
    }
    env.pop("BINFMTCTL_MOUNT", None)
    p = subprocess.run(
        [*UNSHARE, sys.executable, "-c", DRIVER],
        input=json.dumps({"commands": commands, "cwd": str(work), "watch": [MNT, *watch]}),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    results: list[dict[str, Any]] = json.loads(p.stdout)
    for r in results:
        out = r["stdout"] + r["stderr"]
        assert "Traceback" not in out and "internal error" not in out, (r["argv"], out)
        assert r["rc"] in (0, 1, 2), (r["argv"], r["rc"], out)
    return results


def read_commands(work: Path, mount: list[str]) -> list[list[str]]:
    (work / "bins").mkdir(exist_ok=True)
    (work / "bins" / "ls").write_bytes(Path("/bin/ls").read_bytes()[:4096])
    return [
        [*mount, *argv]
        for argv in (
            ["status"],
            ["status", "--json"],
            ["status", "register"],
            ["show", "qemu-arm"],
            ["show", "qemu-arm", "--json"],
            ["show", "register"],
            ["show", "status", "--json"],
            ["test"],
            ["test", "arm65"],
            ["test", "linux/arm64,linux/arm/v7", "--json"],
            ["export"],
            ["export", "--format", "json"],
            ["persist", "save"],
            ["persist", "status", "--root", str(work / "image")],
            ["which", "/bin/ls"],
            ["which", "--json", "/bin/ls"],
            ["scan", str(work / "bins")],
            ["scan", "--json", str(work / "bins")],
            ["doctor"],
            ["doctor", "--json"],
            ["apply", "--plan"],
            ["register", "--dry-run", ENTRY],
            ["install", "--dry-run", "aarch64"],
            ["uninstall", "--dry-run", "all"],
            ["remove", "--dry-run", "t"],
        )
    ]


#: the reads that need the table: on an unmounted one they say so, and how to mount it
NEEDS_TABLE = {"status", "show", "test", "export", "save"}


def needs_table(argv: list[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")]
    word = words[1] if words[:1] == ["persist"] else words[0] if words else ""
    return word in NEEDS_TABLE and not ({"register", "status", "arm65"} & set(argv[1:]))


@pytest.fixture
def unmounted_ok(sandbox_reason: tuple[str, str] | None) -> None:
    require_sandbox(sandbox_reason)


def test_reads_never_mount_on_the_standard_path(unmounted_ok: None, tmp_path: Path) -> None:
    results = run_unmounted(read_commands(tmp_path, []), tmp_path, [])
    for r in results:
        argv, out = r["argv"], r["stdout"] + r["stderr"]
        assert not r["mount_table_changed"], (argv, out)
        assert r["binfmt_at"] == [], argv
        if needs_table(argv):
            assert r["rc"] == 1, (argv, out)
            assert "not mounted" in out, (argv, out)
            assert f"mount -t binfmt_misc binfmt_misc {MNT}" in out, (argv, out)
            assert "mount it themselves" in out, (argv, out)
    by = {" ".join(r["argv"]): r for r in results}
    assert by["test arm65"]["rc"] == 2 and "arm65" in by["test arm65"]["stderr"]
    assert json.loads(by["status --json"]["stdout"])["mount"]["state"] == "not-mounted"
    assert "not-mounted" in by["doctor"]["stdout"] and by["doctor"]["rc"] == 1
    assert "register is write-only" in by["show register"]["stdout"]


def test_reads_never_mount_over_a_non_empty_directory(unmounted_ok: None, tmp_path: Path) -> None:
    d = tmp_path / "not-empty"
    d.mkdir()
    (d / "precious").write_text("still here\n")
    results = run_unmounted(read_commands(tmp_path, ["--mount", str(d)]), tmp_path, [str(d)])
    for r in results:
        argv, out = r["argv"], r["stdout"] + r["stderr"]
        assert not r["mount_table_changed"], (argv, out)
        assert r["listing"][str(d)] == ["precious"], argv
        if needs_table(argv):
            assert r["rc"] == 1 and "not mounted" in out, (argv, out)
            assert f"mount -t binfmt_misc binfmt_misc {d}" in out, (argv, out)
            assert "never mounts over" in out, (argv, out)  # no promise a write cannot keep


def test_writes_mount_only_the_standard_path_or_an_empty_directory(
    unmounted_ok: None, tmp_path: Path
) -> None:
    full, empty = tmp_path / "full", tmp_path / "empty"
    full.mkdir()
    empty.mkdir()
    (full / "precious").write_text("x\n")
    (tmp_path / "binfmtctl.conf").write_text(ENTRY + "\n")  # something for apply to write
    results = run_unmounted(
        [
            ["--mount", str(full), "register", ENTRY],
            ["--mount", str(full), "install", "aarch64", "--no-test"],
            ["--mount", str(full), "apply"],
            ["--mount", str(empty), "register", ENTRY],
            ["--mount", str(empty), "status", "--json"],
            ["register", ENTRY],
            ["status", "--json"],
        ],
        tmp_path,
        [str(full), str(empty)],
    )
    for r in results[:3]:  # refused: the directory keeps its file, nothing is mounted
        out = r["stdout"] + r["stderr"]
        assert r["rc"] == 1 and not r["mount_table_changed"], (r["argv"], out)
        assert "refusing to mount binfmt_misc over" in out and "not empty" in out, out
        assert r["listing"][str(full)] == ["precious"]
    reg_empty, st_empty, reg_std, st_std = results[3:]
    assert reg_empty["rc"] == 0, reg_empty["stderr"]
    assert str(empty) in reg_empty["binfmt_at"] and MNT not in reg_empty["binfmt_at"]
    assert [e["name"] for e in json.loads(st_empty["stdout"])["entries"]] == ["t"]
    assert reg_std["rc"] == 0 and MNT in reg_std["binfmt_at"], reg_std["stderr"]
    assert [e["name"] for e in json.loads(st_std["stdout"])["entries"]] == ["t"]


def test_doctor_fix_mounts_plain_doctor_does_not(unmounted_ok: None, tmp_path: Path) -> None:
    plain, fix, after = run_unmounted(
        [["doctor", "--json"], ["doctor", "--fix", "--json"], ["status", "--json"]], tmp_path, []
    )
    assert not plain["mount_table_changed"] and plain["rc"] == 1
    assert "not-mounted" in {f["code"] for f in json.loads(plain["stdout"])["findings"]}
    assert fix["mount_table_changed"] and MNT in fix["binfmt_at"], fix["stdout"]
    assert any(x["action"] == "mount" and x["ok"] for x in json.loads(fix["stdout"])["fixes"])
    assert after["rc"] == 0 and json.loads(after["stdout"])["mount"]["state"] == "mounted"


# -- the pure policy ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "contents", "refused"),
    [
        (MNT, None, False),
        (MNT + "/", ["x"], False),  # the standard path is binfmt_misc's own mount point
        ("/run/bm", [], False),
        ("/run/bm", ["a"], True),
        ("/run/bm", None, True),  # not a readable directory
    ],
)
def test_mount_refusal(path: str, contents: list[str] | None, refused: bool) -> None:
    got = bmm.mount_refusal(path, contents)
    assert (got is not None) == refused
    if got is not None:
        message, fix = got
        assert path in message and "--mount" in fix


def test_not_mounted_fix_promises_only_what_writes_do() -> None:
    assert "mount it themselves" in bmm.not_mounted_fix(MNT, [])
    fix = bmm.not_mounted_fix("/srv/data", ["db"])
    assert "mount -t binfmt_misc binfmt_misc /srv/data" in fix
    assert "mount it themselves" not in fix and "never mounts over" in fix
