"""The ownership store against another user, for real (issue 13, item 5): uid 65534
edits the records under umask 000, owns the state directory, sprays temporary-file and
lock symlinks; and a corrupt or deeply nested record file. Each attack is carried out,
then binfmtctl (root of a sandbox) runs and the harm is checked not to have happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from binfmtctl.ownership import Records, dir_problem, parse_records, reconcile
from binfmtctl.sandbox import Sandbox
from tests.conftest import MNT, NOBODY, ROOT, User, register_raw, run_cli, snapshot

ENTRY = ":mine:M::BMX1::/bin/true:"
FOREIGN = ":WSLInterop:M::MZ::/bin/true:PF"


def cli_with_umask(box: Sandbox, umask: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["sh", "-c", f'umask {umask}; exec "$@"', "sh", sys.executable, "-m", "binfmtctl"]
    p = box.run([*argv, *args], env={"PYTHONPATH": str(ROOT)})
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())


def record_file(box: Sandbox) -> Path:
    (f,) = Path(box.state_dir).glob("owned-*.json")
    return f


def test_umask_000_records_stay_private_and_nobody_cannot_claim_for_root(
    sandbox: Sandbox, user: User
) -> None:
    p = cli_with_umask(sandbox, "000", "register", ENTRY)
    assert p.returncode == 0, p.stderr
    rec = record_file(sandbox)
    assert os.stat(rec).st_mode & 0o777 == 0o600
    assert os.stat(sandbox.state_dir).st_mode & 0o777 == 0o700
    # the attack: nobody adds another tool's entry to root's records
    register_raw(sandbox, FOREIGN)
    forged = rec.read_text().replace('"entries": {', '"entries": {"WSLInterop": "x",', 1)
    os.chmod(Path(sandbox.state_dir).parent, 0o755)
    attack = user.run(["sh", "-c", 'printf "%s" "$1" > "$2"', "sh", forged, str(rec)], cwd="/")
    assert attack.returncode != 0 and "ermission denied" in attack.stderr
    attack = user.run(["ls", str(sandbox.state_dir)], cwd="/")
    assert attack.returncode != 0
    p = run_cli(sandbox, "remove", "--owned")
    assert p.returncode == 0, p.stderr
    assert [n for n, _ in snapshot(sandbox)] == ["WSLInterop"]


def spray(box: Sandbox, state: Path, user: User, victim: Path, created: Path) -> None:
    """As nobody: every temporary name root could pick (pids from the current one on)
    and the lock are symlinks to root's files, in a state directory nobody owns."""
    dev = int(box.run(["stat", "-c", "%d", MNT]).stdout)
    last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    script = (
        "import os, sys\n"
        "d, dev, last, victim, created = sys.argv[1:]\n"
        "for pid in range(int(last), int(last) + 5000):\n"
        "    os.symlink(victim, f'{d}/owned-{int(dev):x}.json.{pid}.tmp')\n"
        "os.symlink(created, f'{d}/lock')\n"
    )
    p = user.run(
        [user.python, "-c", script, str(state), str(dev), str(last), str(victim), str(created)],
        cwd="/",
    )
    assert p.returncode == 0, p.stderr


def test_state_dir_owned_by_nobody_is_refused_and_its_symlinks_never_followed(
    sandbox: Sandbox, user: User, tmp_path: Path
) -> None:
    os.chmod(tmp_path, 0o755)
    work = user.workdir()
    work.chmod(0o755)
    state = work / "state"
    assert user.run(["mkdir", "-m", "0755", str(state)], cwd="/").returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    created = tmp_path / "created-by-root"
    spray(sandbox, state, user, victim, created)
    env = {"BINFMTCTL_STATE_DIR": str(state)}
    p = run_cli(sandbox, "register", ENTRY, env=env)
    assert p.returncode == 1, p.stderr
    assert f"owned by uid {NOBODY}" in p.stderr and "fix:" in p.stderr
    assert "internal error" not in p.stderr
    assert snapshot(sandbox) == []  # nothing it could not record was written
    assert victim.read_text() == "root's file\n" and not created.exists()
    st = run_cli(sandbox, "status", env=env)  # reading still works, and says why
    assert st.returncode == 0 and "ignoring ownership records" in st.stderr
    p = run_cli(sandbox, "install", "--no-test", "aarch64", env=env)
    assert p.returncode == 1 and snapshot(sandbox) == []
    assert victim.read_text() == "root's file\n" and not created.exists()


def test_symlinks_planted_in_roots_state_dir_are_not_followed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A root-owned 0700 directory that still holds planted links (it was someone
    else's once): the tmp links are removed under the lock, the lock link refused."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    assert (
        run_cli(sandbox, "register", ENTRY, env={"BINFMTCTL_STATE_DIR": str(state)}).returncode == 0
    )
    (rec,) = state.glob("owned-*.json")
    for pid in range(1, 500):
        os.symlink(victim, state / f"{rec.name}.{pid}.tmp")
    p = run_cli(
        sandbox, "register", ":two:M::BMX2::/bin/true:", env={"BINFMTCTL_STATE_DIR": str(state)}
    )
    assert p.returncode == 0, p.stderr
    assert victim.read_text() == "root's file\n"
    assert not [x for x in state.iterdir() if x.name.endswith(".tmp")]
    assert not rec.is_symlink() and "two" in rec.read_text()
    (state / "lock").unlink()
    created = tmp_path / "created-by-root"
    os.symlink(created, state / "lock")
    p = run_cli(
        sandbox, "register", ":three:M::BMX3::/bin/true:", env={"BINFMTCTL_STATE_DIR": str(state)}
    )
    assert p.returncode == 1 and "lock" in p.stderr and "fix:" in p.stderr
    assert not created.exists() and "three" not in {n for n, _ in snapshot(sandbox)}


def test_world_writable_state_dir_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    p = run_cli(sandbox, "register", ENTRY, env={"BINFMTCTL_STATE_DIR": str(state)})
    assert p.returncode == 1 and "writable by group or others" in p.stderr
    assert snapshot(sandbox) == []


def test_corrupt_and_deeply_nested_records_are_ignored_not_fatal(sandbox: Sandbox) -> None:
    assert run_cli(sandbox, "register", ENTRY).returncode == 0
    rec = record_file(sandbox)
    for bad in (b"[" * 200_000 + b"]" * 200_000, b"\xff\xfe garbage", b'{"entries": [1]}'):
        rec.write_bytes(bad)
        st = run_cli(sandbox, "status", "--json")
        assert st.returncode == 0, st.stderr
        assert "ignoring ownership records" in st.stderr and "internal error" not in st.stderr
        p = run_cli(sandbox, "register", ":two:M::BMX2::/bin/true:")
        assert p.returncode == 0, p.stderr
        assert "two" in rec.read_text()  # rewritten as a valid file
        assert run_cli(sandbox, "remove", "two").returncode == 0


def test_failed_ownership_save_is_reported_and_nothing_is_written(sandbox: Sandbox) -> None:
    p = run_cli(sandbox, "register", ENTRY, env={"BINFMTCTL_STATE_DIR": "/dev/null/state"})
    assert p.returncode == 1 and "state directory" in p.stderr and "fix:" in p.stderr
    assert "internal error" not in p.stderr
    assert snapshot(sandbox) == []


# -- the pure parts ----------------------------------------------------------------------------------
def test_reconcile_claims_live_intents_and_drops_the_rest() -> None:
    rec = Records({"a": "A", "gone": "G", "changed": "C"}, {"b": "B", "never": "N"})
    live = {"a": "A", "b": "B", "changed": "C2", "other": "O"}
    assert reconcile(rec, live) == {"a": "A", "b": "B"}


def test_parse_records_rejects_hostile_input_with_a_reason() -> None:
    for data, why in (
        (b"[" * 100_000, "nested too deeply"),
        (b"\xff", "not UTF-8"),
        (b"{" + b" " * (2 << 20) + b"}", "larger than"),
        (b'{"entries": {"a": 1}}', "not a map"),
        (b"[]", "not a JSON object"),
        (b'"\\ud800"', "not a JSON object"),
    ):
        try:
            parse_records(data)
        except ValueError as e:
            assert why in str(e)
        else:
            raise AssertionError(data[:20])


def test_dir_problem_names_the_reason() -> None:
    st = os.stat("/")
    assert dir_problem(st, 0) is None
    assert "owned by uid 0" in (dir_problem(st, 1000) or "")
