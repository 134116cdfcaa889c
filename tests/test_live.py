"""The live-table commands against the real kernel, in a private binfmt_misc.

Every test gets a fresh, empty instance (the ``sandbox`` fixture) and drives the
real CLI inside it. Nothing here touches the host's table.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from binfmtctl.entry import iter_binfmt_d_lines, parse_register, parse_update_binfmts
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.sandbox import Sandbox
from tests.conftest import ROOT, register_raw, run_cli, snapshot

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

pytestmark = pytest.mark.sandbox
MNT = "/proc/sys/fs/binfmt_misc"
FOREIGN = [
    ":WSLInterop:M::MZ::/init:P",
    r":python3.11:M::\xa7\x0d\x0d\x0a::/usr/bin/python3.11:",
]


@pytest.fixture
def busy_interpreter(tmp_path: Path) -> Iterator[str]:
    """An executable held open for writing: F registration fails with ETXTBSY at the
    kernel, after validation passed (a package upgrade in progress)."""
    path = tmp_path / "busy-interp"
    path.write_bytes(b"#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    with open(path, "ab"):
        yield str(path)


def test_register_status_show_roundtrip(sandbox: Sandbox) -> None:
    p = run_cli(
        sandbox,
        "register",
        ":t1:M:2:BMX\\x00:\\xff\\xff\\xff\\x00:/bin/true:PC",
        ":t2:E::foo::/bin/true:",
    )
    assert p.returncode == 0, p.stderr
    st = json.loads(run_cli(sandbox, "status", "--json").stdout)
    assert st["enabled"] is True and st["mount"]["state"] == "mounted"
    by_name = {e["name"]: e for e in st["entries"]}
    assert [e["name"] for e in st["entries"]] == ["t2", "t1"]  # newest first
    assert by_name["t1"] == {
        **by_name["t1"],
        "flags": "POC",
        "offset": 2,
        "magic": "424d5800",
        "mask": "ffffff00",
        "owner": "binfmtctl",
        "health": "ok",
    }
    assert by_name["t2"]["extension"] == "foo" and by_name["t2"]["type"] == "E"
    show = run_cli(sandbox, "show", "t1")
    assert (
        show.returncode == 0
        and "magic 424d5800" in show.stdout
        and ":t1:M:2:BMX\\x00" in show.stdout
    )


def test_identical_register_is_noop_and_different_is_refused(sandbox: Sandbox) -> None:
    register_raw(sandbox, ":t:M::BMX1::/bin/true:")  # someone else's
    before = snapshot(sandbox)
    p = run_cli(sandbox, "register", ":t:M::BMX1::/bin/true:")
    assert p.returncode == 0 and "unchanged" in p.stdout
    p = run_cli(sandbox, "register", ":t:M::BMX2::/bin/true:")
    assert p.returncode == 1
    assert (
        "CONFLICT" in p.stdout and "424d5831" in p.stdout and "424d5832" in p.stdout
    )  # both versions shown
    assert snapshot(sandbox) == before
    p = run_cli(sandbox, "register", "--replace", ":t:M::BMX2::/bin/true:")
    assert p.returncode == 0, p.stderr
    assert snapshot(sandbox) == [
        ("t", "enabled\ninterpreter /bin/true\nflags: \noffset 0\nmagic 424d5832\n")
    ]


def test_register_refuses_to_replace_its_own_differing_entry_without_replace(
    sandbox: Sandbox,
) -> None:
    """binfmtctl registered ``zz`` itself (it owns it): a differing ``zz`` is still refused
    unless --replace, as --help, the README and design.md say."""
    assert run_cli(sandbox, "register", ":zz:E::zz::/bin/cat:").returncode == 0
    before = snapshot(sandbox)
    p = run_cli(sandbox, "register", ":zz:E::zz::/bin/more:")
    assert p.returncode == 1, p.stdout
    assert "CONFLICT" in p.stdout and "--replace" in p.stderr
    assert snapshot(sandbox) == before
    p = run_cli(sandbox, "register", ":zz:E::zz::/bin/cat:")
    assert p.returncode == 0 and "unchanged" in p.stdout
    p = run_cli(sandbox, "register", "--replace", ":zz:E::zz::/bin/more:")
    assert p.returncode == 0, p.stderr
    assert snapshot(sandbox) == [("zz", "enabled\ninterpreter /bin/more\nflags: \nextension .zz\n")]


def test_replace_restores_old_entry_when_new_one_fails(
    sandbox: Sandbox, busy_interpreter: str
) -> None:
    register_raw(sandbox, ":t:M::BMX1::/bin/true:")
    before = snapshot(sandbox)
    p = run_cli(sandbox, "register", "--replace", f":t:M::BMX2::{busy_interpreter}:F")
    assert p.returncode == 1
    assert "ETXTBSY" in p.stderr
    assert "Traceback" not in p.stderr
    assert snapshot(sandbox) == before


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_batch_failing_at_k_leaves_table_identical(
    sandbox: Sandbox, busy_interpreter: str, k: int
) -> None:
    for line in FOREIGN:
        register_raw(sandbox, line)
    run_cli(sandbox, "register", ":mine:M::BMXmine::/bin/true:")
    before = snapshot(sandbox)
    batch = [f":b{i}:M::BMXb{i}::/bin/true:" for i in range(4)]
    batch[k] = f":b{k}:M::BMXb{k}::{busy_interpreter}:F"
    p = run_cli(sandbox, "register", *batch)
    assert p.returncode == 1, p.stdout
    assert "ETXTBSY" in p.stderr and "Traceback" not in p.stderr
    assert snapshot(sandbox) == before


def test_invalid_entry_in_batch_writes_nothing(sandbox: Sandbox) -> None:
    p = run_cli(sandbox, "register", ":ok:M::BMXok::/bin/true:", ":bad:M::BMX\\x7g::/bin/true:")
    assert p.returncode == 1
    assert "nothing was written" in p.stderr and "magic" in p.stderr
    assert snapshot(sandbox) == []


def test_errno_paths_are_explained(sandbox: Sandbox, tmp_path: Path) -> None:
    # ENOENT for F: the validator catches it before the kernel sees it
    p = run_cli(sandbox, "register", ":f:M::BMXf::/no/such/qemu:F")
    assert p.returncode == 1 and "ENOENT" in p.stderr and "interpreter" in p.stderr
    # EACCES for F: not executable
    notexec = tmp_path / "notexec"
    notexec.write_bytes(b"x")
    notexec.chmod(0o644)
    os.chmod(tmp_path, 0o755)
    p = run_cli(sandbox, "register", f":f:M::BMXf::{notexec}:F")
    assert p.returncode == 1 and "EACCES" in p.stderr
    # EEXIST via a reserved name
    p = run_cli(sandbox, "register", ":status:M::BMXs::/bin/true:")
    assert p.returncode == 1 and "EEXIST" in p.stderr
    # EINVAL with the field named
    p = run_cli(sandbox, "register", ":t:M:-1:BMX::/bin/true:")
    assert p.returncode == 1 and "offset" in p.stderr and "negative" in p.stderr
    assert snapshot(sandbox) == []


def test_unmounted_path_is_mounted_by_a_write_not_a_read(sandbox: Sandbox, tmp_path: Path) -> None:
    """As (namespace) root, a read of an unmounted empty directory says it is not mounted; a
    write mounts binfmt_misc there; every mount in one user namespace shares its instance."""
    second = tmp_path / "second"
    second.mkdir()
    os.chmod(tmp_path, 0o755)
    run_cli(sandbox, "register", ":t:M::BMX1::/bin/true:")
    p = run_cli(sandbox, "--mount", str(second), "status", "--json")
    assert p.returncode == 1 and json.loads(p.stdout)["mount"]["state"] == "not-mounted"
    p = run_cli(sandbox, "--mount", str(second), "register", ":t:M::BMX1::/bin/true:")
    assert p.returncode == 0 and "unchanged" in p.stdout, p.stderr  # the same instance
    p = run_cli(sandbox, "--mount", str(second), "status", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["mount"]["state"] == "mounted"
    assert [e["name"] for e in data["entries"]] == ["t"]


def test_enable_disable_remove_and_unknown_names(sandbox: Sandbox) -> None:
    run_cli(sandbox, "register", ":t:M::BMX1::/bin/true:")
    assert run_cli(sandbox, "disable", "t").returncode == 0
    assert snapshot(sandbox)[0][1].startswith("disabled\n")
    assert run_cli(sandbox, "enable", "t").returncode == 0
    assert snapshot(sandbox)[0][1].startswith("enabled\n")
    p = run_cli(sandbox, "disable", "nope")
    assert p.returncode == 1 and "no entry named 'nope'" in p.stderr
    p = run_cli(sandbox, "remove", "status")
    assert p.returncode == 2
    assert run_cli(sandbox, "remove", "t").returncode == 0
    assert snapshot(sandbox) == []


def test_foreign_entries_survive_everything_but_explicit_remove(sandbox: Sandbox) -> None:
    for line in FOREIGN:
        register_raw(sandbox, line)
    foreign = snapshot(sandbox)
    run_cli(sandbox, "register", ":mine:M::BMXmine::/bin/true:", ":mine2:E::xyz::/bin/true:")
    run_cli(sandbox, "register", "--replace", ":mine:M::BMXmin2::/bin/true:")
    run_cli(sandbox, "disable", "mine")
    run_cli(sandbox, "enable", "mine")
    p = run_cli(sandbox, "remove", "--owned")
    assert p.returncode == 0, p.stderr
    assert snapshot(sandbox) == foreign
    st = json.loads(run_cli(sandbox, "status", "--json").stdout)
    assert all(e["owner"] is None for e in st["entries"])
    assert run_cli(sandbox, "remove", "WSLInterop").returncode == 0
    assert [n for n, _ in snapshot(sandbox)] == ["python3.11"]


def test_concurrent_registers_end_as_one(sandbox: Sandbox, tmp_path: Path) -> None:
    batch = tmp_path / "batch.conf"
    batch.write_text("".join(f":c{i}:M::BMXc{i}::/bin/true:\n" for i in range(12)))
    os.chmod(tmp_path, 0o755)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: run_cli(sandbox, "register", "-f", str(batch)), range(8)))
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    concurrent_table = snapshot(sandbox)
    run_cli(sandbox, "remove", "--owned")
    assert snapshot(sandbox) == []
    assert run_cli(sandbox, "register", "-f", str(batch)).returncode == 0
    assert snapshot(sandbox) == concurrent_table


def _real_entry_lines() -> list[tuple[str, bytes]]:
    out = []
    d = Path("/usr/lib/binfmt.d")
    for f in sorted(d.glob("*.conf")) if d.is_dir() else []:
        out += [(f"{f}:{n}", rule) for n, rule in iter_binfmt_d_lines(f.read_bytes())]
    return out


def test_status_reads_back_every_real_binfmt_d_entry(sandbox: Sandbox, tmp_path: Path) -> None:
    lines = _real_entry_lines()
    if not lines:
        pytest.skip("no /usr/lib/binfmt.d files on this machine (install qemu-user-static)")
    conf = tmp_path / "all.conf"
    conf.write_bytes(b"\n".join(rule for _, rule in lines) + b"\n")
    os.chmod(tmp_path, 0o755)
    p = run_cli(sandbox, "register", "-f", str(conf))
    assert p.returncode == 0, p.stderr
    st = json.loads(run_cli(sandbox, "status", "--json").stdout)
    got = {e["name"]: e for e in st["entries"]}
    assert len(got) == len(lines)
    for where, rule in lines:
        want = parse_register(rule, HOST).to_json()
        row = got[want["name"]]
        for key, value in want.items():
            assert row[key] == value, (where, key)


def test_status_reads_back_update_binfmts_files(sandbox: Sandbox, tmp_path: Path) -> None:
    d = Path("/usr/share/binfmts")
    files = sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []
    if not files:
        pytest.skip("no /usr/share/binfmts files on this machine")
    entries = [parse_update_binfmts(f.name, f.read_bytes(), HOST) for f in files]
    from binfmtctl.entry import render_binfmt_d

    conf = tmp_path / "ub.conf"
    conf.write_bytes(render_binfmt_d(entries))
    os.chmod(tmp_path, 0o755)
    p = run_cli(sandbox, "register", "-f", str(conf))
    assert p.returncode == 0, p.stderr
    st = json.loads(run_cli(sandbox, "status", "--json").stdout)
    got = {e["name"]: e for e in st["entries"]}
    for e in entries:
        row = got[e.name]
        for key, value in e.to_json().items():
            assert row[key] == value, (e.name, key)


def test_status_without_root_reads(sandbox: Sandbox) -> None:
    """A non-root user (nobody) can read the table of an instance it can see."""
    run_cli(sandbox, "register", ":t:M::BMX1::/bin/true:")
    p = sandbox.run(["sh", "-c", f"cat {MNT}/t"])
    assert p.returncode == 0 and b"magic 424d5831" in p.stdout
    mode = sandbox.run(["stat", "-c", "%a", f"{MNT}/register"]).stdout.decode().strip()
    assert stat.S_IMODE(int(mode, 8)) == 0o200


def test_mount_hidden_under_a_parent_mount_is_not_mounted(sandbox: Sandbox, tmp_path: Path) -> None:
    """mountinfo still lists a binfmt_misc mount that a later mount of /proc/sys/fs
    hides; binfmtctl must not take the hidden one for a usable table."""
    fs = tmp_path / "fs"
    (fs / "binfmt_misc").mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    code = "from binfmtctl.binfmt_misc import BinfmtMisc; print(BinfmtMisc().mount_state().state)"
    script = f"mount --bind {fs} /proc/sys/fs && {sys.executable} -c '{code}'"
    p = sandbox.run(["unshare", "--mount", "--", "sh", "-c", script], env={"PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == "not-mounted"


def test_register_file_is_explained_not_an_unknown_entry(sandbox: Sandbox) -> None:
    """`cat register` gives 'Invalid argument' (it is write-only): show, status and doctor
    say so when asked about it, instead of "no entry named 'register'"."""
    p = sandbox.run(["cat", f"{MNT}/register"])
    assert p.returncode != 0 and b"Invalid argument" in p.stderr  # the kernel's fact
    run_cli(sandbox, "register", ":t:M::BMX1::/bin/true:")
    p = run_cli(sandbox, "show", "register")
    assert p.returncode == 0, p.stderr
    assert "write-only" in p.stdout and "Invalid argument" in p.stdout
    assert "no entry" not in p.stdout + p.stderr and "binfmtctl status" in p.stdout
    data = json.loads(run_cli(sandbox, "show", "register", "--json").stdout)
    assert data["control_file"] is True and "EINVAL" in data["message"]
    p = run_cli(sandbox, "status", "register", "t", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert [e["name"] for e in data["entries"]] == ["t"]
    assert [c["name"] for c in data["control_files"]] == ["register"]
    p = run_cli(sandbox, "status", "register")
    assert p.returncode == 0 and "write-only" in p.stdout and "no entries" not in p.stdout
    p = run_cli(sandbox, "show", "status")
    assert p.returncode == 0 and "global switch" in p.stdout
    findings = json.loads(run_cli(sandbox, "doctor", "--json").stdout)["findings"]
    [f] = [f for f in findings if f["code"] == "register-write-only"]
    assert f["severity"] == "info" and "Invalid argument" in f["message"]
