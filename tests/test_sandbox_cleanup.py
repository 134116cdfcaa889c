"""Smaller fixes of issue 13 item 7, for real: every sandbox removes its state directory,
`run -- missing` past an unreadable PATH directory is 127, parallel `remove --owned`
both succeed (planned under the lock)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from binfmtctl.sandbox import Sandbox
from tests.conftest import ROOT, User, run_cli, snapshot

ENTRY = ":t:M::BMX1::/bin/true:"


def test_every_sandbox_removes_its_state_directory(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    os.chmod(tmp_path, 0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}
    env.pop("BINFMTCTL_STATE_DIR", None)
    env.pop("BINFMTCTL_CONFIG", None)
    argv = [sys.executable, "-m", "binfmtctl", "sandbox", "--entry", ENTRY, "--"]
    inner = f"{sys.executable} -m binfmtctl register :u:M::BMX2::/bin/true: && ls $BINFMTCTL_STATE_DIR; exit 5"
    for cmd, status in (
        (["sh", "-c", inner], 5),
        (["no-such-command-here"], 127),
        (["sh", "-c", "kill -TERM $$"], -15),
    ):
        p = subprocess.run([*argv, *cmd], capture_output=True, text=True, env=env)
        assert p.returncode == status, p.stderr
        assert list(tmp.iterdir()) == [], cmd
    assert (
        "owned-"
        in subprocess.run(
            [*argv, "sh", "-c", inner], capture_output=True, text=True, env=env
        ).stdout
    )  # the records were there while COMMAND ran


def test_run_missing_command_past_an_unreadable_path_dir_is_127(user: User) -> None:
    work = user.workdir()
    work.chmod(0o755)
    locked = work / "locked"
    locked.mkdir(mode=0o700)  # root's: nobody cannot search it
    tmp = work / "tmp"
    assert user.run(["mkdir", str(tmp)]).returncode == 0
    env = {"PATH": f"{locked}:/usr/bin:/bin", "TMPDIR": str(tmp)}
    p = user.binfmtctl("run", "-t", "arm64", "--", "no-such-command-here", env=env)
    assert p.returncode == 127, p.stderr
    assert "command not found" in p.stderr
    assert list(tmp.iterdir()) == []


def test_parallel_remove_owned_both_succeed(sandbox: Sandbox) -> None:
    lines = [f":p{i}:M::BMP{i:02d}::/bin/true:" for i in range(12)]
    assert run_cli(sandbox, "register", *lines).returncode == 0
    argv = [sys.executable, "-m", "binfmtctl", "remove", "--owned"]
    env = {"PYTHONPATH": str(ROOT)}
    procs = [sandbox.popen(argv, stdout=subprocess.PIPE, env=env) for _ in range(3)]
    codes = [p.wait() for p in procs]
    for p in procs:
        assert p.stdout is not None
        p.stdout.close()
    assert codes == [0, 0, 0]
    assert snapshot(sandbox) == []
