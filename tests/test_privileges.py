"""Writes that cannot happen say why, for real: not root, no CAP_SYS_ADMIN, a
read-only mount, and a table private to a user namespace. Reads work without root.

Every case runs either in a private namespace or against an empty directory given
with --mount; the host's table is never touched (conftest's guard checks it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from binfmtctl.sandbox import Sandbox
from tests.conftest import MNT, NOBODY, ROOT, User, run_cli

ENTRY = ":t:M::BMX1::/bin/true:"


def no_traceback(p: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


def test_not_root_cannot_mount_and_is_told_what_to_do(user: User) -> None:
    empty = user.workdir()
    p = no_traceback(user.binfmtctl("--mount", str(empty), "register", ENTRY))
    assert p.returncode == 1
    assert "run as root" in p.stderr and "binfmtctl run" in p.stderr
    p = no_traceback(user.binfmtctl("--mount", str(empty), "status"))
    assert p.returncode == 1 and "not mounted" in p.stderr


def test_root_without_cap_sys_admin_cannot_mount(sandbox: Sandbox, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    os.chmod(tmp_path, 0o755)
    argv = [
        "setpriv",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        sys.executable,
        "-m",
        "binfmtctl",
    ]
    p = sandbox.run(
        [*argv, "--mount", str(empty), "register", ENTRY], env={"PYTHONPATH": str(ROOT)}
    )
    err = p.stderr.decode()
    assert p.returncode == 1 and "Traceback" not in err
    assert "CAP_SYS_ADMIN" in err


def test_read_only_mount_is_explained(sandbox: Sandbox) -> None:
    assert sandbox.run(["mount", "-o", "remount,bind,ro", MNT]).returncode == 0
    p = no_traceback(run_cli(sandbox, "register", ENTRY))
    assert p.returncode == 1
    assert "read-only" in p.stderr and "fix:" in p.stderr
    st = no_traceback(run_cli(sandbox, "status", "--json"))
    assert st.returncode == 0 and json.loads(st.stdout)["mount"]["read_only"] is True


def test_private_table_is_said_plainly(sandbox: Sandbox) -> None:
    p = no_traceback(run_cli(sandbox, "register", ENTRY))
    assert p.returncode == 0
    assert "user namespace" in p.stderr and "host" in p.stderr


def subordinate_range(path: str, uid: int) -> int | None:
    """The first id of a subordinate range of at least 65535 ids ``uid`` owns in ``path``
    (/etc/subuid, /etc/subgid: ``name-or-id:start:count``), or None."""
    import pwd

    try:
        names = {str(uid), pwd.getpwuid(uid).pw_name}
    except KeyError:
        names = {str(uid)}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if (
            len(parts) == 3
            and parts[0] in names
            and parts[1].isdigit()
            and parts[2].isdigit()
            and int(parts[2]) >= 65535
        ):
            return int(parts[1])
    return None


def write_id_maps(pid: int) -> None:
    """Map uids/gids 0-65535 into ``pid``'s new user namespace: identically when the suite
    is root; else 0 -> us and 1-65535 -> our subordinate range (newuidmap, /etc/subuid), as
    rootless Podman does. Either way uid 65534 exists inside as an ordinary user."""
    if os.geteuid() == 0:
        for kind in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{kind}", "w") as f:
                f.write("0 0 65536\n")
        return
    uid, gid = os.geteuid(), os.getegid()
    sub_u = subordinate_range("/etc/subuid", uid)
    sub_g = subordinate_range("/etc/subgid", uid)
    if sub_u is None or sub_g is None:
        pytest.skip(
            f"uid {uid} has no subordinate id range of 65535 in /etc/subuid and /etc/subgid: a "
            "second, non-root uid in a user namespace needs one "
            f"(fix: usermod --add-subuids 100000-165534 --add-subgids 100000-165534 {uid})"
        )
    for tool, mine, sub in (("newuidmap", uid, sub_u), ("newgidmap", gid, sub_g)):
        p = subprocess.run(
            [tool, str(pid), "0", str(mine), "1", "1", str(sub), "65535"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert p.returncode == 0, f"{tool} (package uidmap): {p.stderr}"


def in_mapped_namespace(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as root of a new user+mount namespace that maps uids/gids 0-65535
    (:func:`write_id_maps`), with its own binfmt_misc mounted, so uid 65534 exists inside as
    an ordinary non-root user, whether the suite runs as root or not."""
    inner: Sequence[str] = [
        "sh",
        "-c",
        f"read _ && mount -t binfmt_misc binfmt_misc {MNT} && {script}",
    ]
    p = subprocess.Popen(
        ["unshare", "--user", "--mount", "--propagation", "private", "--", *inner],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    ours = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + 30
    while os.readlink(f"/proc/{p.pid}/ns/user") == ours:  # until unshare(2) has happened
        assert time.monotonic() < deadline, "unshare did not enter a new user namespace"
        time.sleep(0.01)
    try:
        write_id_maps(p.pid)
    except BaseException:
        p.kill()
        p.communicate(timeout=30)
        raise
    out, err = p.communicate("go\n", timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_non_root_reads_but_cannot_write(user: User) -> None:
    """uid 65534 of a namespace whose root registered an entry: reads it, cannot write."""
    py = f"{user.python} -m binfmtctl"
    drop = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --"
    script = (
        f"printf '%s\\n' '{ENTRY}' > {MNT}/register && "
        f"{drop} sh -c '{py} status --json > status.json'; echo status=$?; "
        f"{drop} {py} register ':u:M::BMX2::/bin/true:'; echo register=$?"
    )
    work = user.workdir()
    work.chmod(0o777)  # writable by uid 65534 of the namespace whatever it maps to outside
    env = {**user.env, "BINFMTCTL_STATE_DIR": str(work / "state")}
    cwd = os.getcwd()
    os.chdir(work)
    try:
        res = in_mapped_namespace(script, env)
    finally:
        os.chdir(cwd)
    assert "Traceback" not in res.stderr, res.stderr
    assert "status=0" in res.stdout and "register=1" in res.stdout, (res.stdout, res.stderr)
    data = json.loads((work / "status.json").read_text())
    assert [e["name"] for e in data["entries"]] == ["t"]
    assert "permission denied" in res.stderr and "run as root" in res.stderr


def test_sandbox_command_holds_just_the_given_entries(tmp_path: Path) -> None:
    """`binfmtctl sandbox`: a private table with exactly the given entries, COMMAND's exit
    status passed through, nothing left on the host (conftest's guard)."""
    conf = tmp_path / "one.conf"
    conf.write_text("# a comment\n:fromfile:E::xyz::/bin/true:\n")
    os.chmod(tmp_path, 0o755)
    argv = [sys.executable, "-m", "binfmtctl", "sandbox", "--entry", ENTRY, "-f", str(conf), "--"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [*argv, "sh", "-c", f"ls {MNT}; exit 7"], capture_output=True, text=True, env=env
    )
    assert p.returncode == 7, p.stderr
    assert sorted(p.stdout.split()) == ["fromfile", "register", "status", "t"]
    bad = subprocess.run(
        [*argv[:-1], "--entry", ":x:M:-1:BM::/bin/true:", "--", "true"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1 and "offset" in bad.stderr and "Traceback" not in bad.stderr
