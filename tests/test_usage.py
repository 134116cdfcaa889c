"""What runs through each entry now (binfmtctl.usage): pure matching, and for real a
foreign aarch64 process kept alive under QEMU in a sandbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from binfmtctl import probe, usage
from binfmtctl.entry import Entry
from binfmtctl.sandbox import Sandbox
from tests.conftest import ROOT, User, run_cli

QEMU = "/usr/bin/qemu-aarch64-static"
MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"


def aarch64_line(interpreter: str = QEMU, flags: str = "F") -> str:
    return f":qemu-aarch64:M::{MAGIC}:{MASK}:{interpreter}:{flags}"


# -- pure ------------------------------------------------------------------------------------------
def proc(pid: int, exe: str, fid: tuple[int, int], deleted: bool = False) -> usage.ProcessFacts:
    return usage.ProcessFacts(pid, exe, fid, deleted, name=f"p{pid}", cmdline=(exe, "x"))


INTERP = usage.InterpreterFile("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", QEMU, (1, 10))


def test_users_are_matched_by_inode_and_by_the_path_the_kernel_reports() -> None:
    procs = [
        proc(1, QEMU, (1, 10)),  # the file at the path now
        proc(2, "/elsewhere/hardlink", (1, 10)),  # same inode, other name: still a user
        proc(3, QEMU, (1, 9), deleted=True),  # started before the file was replaced
        proc(4, "/usr/bin/qemu-arm-static", (1, 11)),  # another emulator
        proc(5, "/opt/qemu-aarch64-static", (2, 10)),  # same name elsewhere: not a user
    ]
    users = usage.users_of(INTERP, procs)
    assert [p.pid for p in users] == [1, 2, 3]
    assert [p.pid for p in usage.stale_users(INTERP, users)] == [3]
    gone = usage.InterpreterFile(QEMU, QEMU, None)
    assert [p.pid for p in usage.stale_users(gone, usage.users_of(gone, procs))] == [1, 3]


def test_in_use_message_names_the_processes() -> None:
    users = [proc(i, QEMU, (1, 10)) for i in range(1, 8)]
    msg = usage.in_use_message("qemu-aarch64", users)
    assert msg.startswith("qemu-aarch64 is in use by 7 processes: pid 1 (p1: ")
    assert "pid 5" in msg and "pid 6" not in msg and msg.endswith("and 2 more")
    assert "1 process:" in usage.in_use_message("x", users[:1])


def test_hidden_note_says_why_and_what_to_do() -> None:
    assert usage.hidden_note(0, root=False, initial_userns=True) is None
    note = usage.hidden_note(3, root=False, initial_userns=True)
    assert note is not None and "3 processes not visible" in note and "run as root" in note
    ns = usage.hidden_note(1, root=True, initial_userns=False)
    assert ns is not None and "user namespace" in ns and "1 process not" in ns


def entry(name: str, interpreter: str, flags: str) -> Entry:
    return Entry(name=name, type="M", offset=0, magic=b"\x7fELF", mask=None,
                 interpreter=interpreter, flags=flags)  # fmt: skip


def test_findings_for_stale_interpreters_differ_with_and_without_f() -> None:
    procs = (proc(3, QEMU, (1, 9), deleted=True), proc(4, QEMU, (1, 10)))
    snap = usage.Snapshot(procs, 0, (), {QEMU: usage.InterpreterFile(QEMU, QEMU, (1, 10))})
    with_f = usage.findings([entry("qemu-aarch64", QEMU, "F")], snap)
    assert [(f.code, f.severity, f.entry) for f in with_f] == [
        ("in-use-interpreter-stale", "warning", "qemu-aarch64")
    ]
    assert "pid 3" in with_f[0].message and "pid 4" not in with_f[0].message
    assert "new execs through this entry still get the old interpreter" in with_f[0].message
    assert "register --replace" in with_f[0].fix
    without = usage.findings([entry("qemu-aarch64", QEMU, "")], snap)
    assert "new execs get the new file" in without[0].message and "kill 3" in without[0].fix
    fresh = usage.Snapshot(procs[1:], 0, (), snap.interpreters)
    assert usage.findings([entry("qemu-aarch64", QEMU, "F")], fresh) == []


def test_a_container_engine_is_reported_with_the_entries_lacking_f() -> None:
    snap = usage.Snapshot((), 0, (("dockerd", 77),), {})
    found = usage.findings([entry("a", QEMU, "F"), entry("b", QEMU, "")], snap)
    assert [(f.code, f.severity) for f in found] == [("container-engine", "info")]
    assert "dockerd (pid 77)" in found[0].message and "without F: b)" in found[0].message


# -- for real --------------------------------------------------------------------------------------
@dataclass
class Foreign:
    """A foreign (aarch64) process running through the sandbox's entry until stopped."""

    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        # nsenter forks the program (entering a user namespace needs a new process)
        return int(_child_of(self.popen.pid))

    def stop(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.close()
        assert self.popen.wait(timeout=60) == 0


def _child_of(pid: int) -> str:
    import psutil

    kids = psutil.Process(pid).children()
    return str(kids[0].pid) if kids else str(pid)


@pytest.fixture
def foreign(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Sandbox, Foreign]]:
    """qemu-aarch64 registered (F) in the sandbox and a waiting aarch64 probe running."""
    tmp_path.chmod(0o755)
    r = run_cli(sandbox, "register", aarch64_line())
    assert r.returncode == 0, r.stderr
    prog = probe.write_probe("aarch64", tmp_path, wait=True)
    p = sandbox.popen([str(prog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline() == probe.marker("aarch64")  # it runs, through the entry
    f = Foreign(p)
    try:
        yield sandbox, f
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()


def test_a_running_foreign_process_shows_in_status_and_show(
    foreign: tuple[Sandbox, Foreign],
) -> None:
    box, f = foreign
    text = run_cli(box, "status")
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if "qemu-aarch64" in line)
    assert "PROCS" in text.stdout and row.split()[-2] == "1"
    data = json.loads(run_cli(box, "status", "--json").stdout)
    (procs,) = [e["processes"] for e in data["entries"] if e["name"] == "qemu-aarch64"]
    assert [p["pid"] for p in procs] == [f.pid]
    assert procs[0]["cmdline"][1].endswith("probe-aarch64-wait")
    assert procs[0]["name"].startswith("probe-aarch64") and procs[0]["username"] == "root"
    assert isinstance(data["processes_not_visible"], int)
    shown = run_cli(box, "show", "qemu-aarch64")
    assert "processes running through it: 1" in shown.stdout and str(f.pid) in shown.stdout
    f.stop()
    data = json.loads(run_cli(box, "status", "--json").stdout)
    assert [e["processes"] for e in data["entries"]] == [[]]  # gone when it ends
    assert run_cli(box, "status").stdout.splitlines()[-1].split()[-2] == "0"


def test_changing_an_entry_in_use_is_refused_naming_the_process(
    foreign: tuple[Sandbox, Foreign],
) -> None:
    box, f = foreign
    replacement = aarch64_line(flags="")
    for args in (
        ["remove", "qemu-aarch64"],
        ["uninstall", "aarch64"],
        ["disable", "qemu-aarch64"],
        ["register", "--replace", replacement],
        ["remove", "--dry-run", "qemu-aarch64"],
        ["uninstall", "--dry-run", "aarch64"],
    ):
        r = run_cli(box, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert f"qemu-aarch64 is in use by 1 process: pid {f.pid} (" in r.stderr, args
        assert "--force" in r.stderr and "Traceback" not in r.stderr
        if "--dry-run" in args:
            assert "would refuse" in r.stderr and "(dry run)" in r.stderr
        status = json.loads(run_cli(box, "status", "--json").stdout)["entries"]
        assert [(e["name"], e["enabled"], e["flags"]) for e in status] == [
            ("qemu-aarch64", True, "F")
        ], args  # nothing changed
    forced = run_cli(box, "register", "--replace", "--force", replacement)
    assert forced.returncode == 0 and "warning (--force): qemu-aarch64 is in use" in forced.stderr
    assert run_cli(box, "disable", "--force", "qemu-aarch64").returncode == 0
    assert run_cli(box, "remove", "--force", "qemu-aarch64").returncode == 0
    assert json.loads(run_cli(box, "status", "--json").stdout)["entries"] == []
    f.stop()  # the running process kept its interpreter


def test_when_it_ends_uninstall_goes_through(foreign: tuple[Sandbox, Foreign]) -> None:
    box, f = foreign
    assert run_cli(box, "uninstall", "aarch64").returncode == 1
    f.stop()
    r = run_cli(box, "uninstall", "aarch64")
    assert r.returncode == 0 and "removed qemu-aarch64" in r.stdout, r.stderr


def test_doctor_reports_processes_running_a_replaced_interpreter(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)
    qemu = tmp_path / "qemu-aarch64-static"
    shutil.copy2(QEMU, qemu)
    assert run_cli(sandbox, "register", aarch64_line(str(qemu))).returncode == 0
    prog = probe.write_probe("aarch64", tmp_path, wait=True)
    p = sandbox.popen([str(prog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdin is not None
    try:
        assert p.stdout.readline() == probe.marker("aarch64")
        before = json.loads(run_cli(sandbox, "doctor", "--json").stdout)["findings"]
        assert "in-use-interpreter-stale" not in {x["code"] for x in before}
        # an upgrade: a new file renamed over the old one; the process keeps the old inode
        new = tmp_path / "new"
        shutil.copy2(QEMU, new)
        os.replace(new, qemu)
        after = json.loads(run_cli(sandbox, "doctor", "--json").stdout)["findings"]
        (stale,) = [x for x in after if x["code"] == "in-use-interpreter-stale"]
        pid = _child_of(p.pid)
        assert stale["entry"] == "qemu-aarch64" and stale["severity"] == "warning"
        assert f"pid {pid}" in stale["message"] and "was replaced on disk" in stale["message"]
        assert "register --replace" in stale["fix"]
        qemu.unlink()  # now gone altogether
        gone = json.loads(run_cli(sandbox, "doctor", "--json").stdout)["findings"]
        (stale,) = [x for x in gone if x["code"] == "in-use-interpreter-stale"]
        assert "is gone from disk" in stale["message"]
    finally:
        p.stdin.close()
        p.wait(timeout=60)
        p.stdout.close()


def test_version_and_validate_do_not_load_psutil() -> None:
    code = (
        "import sys\nfrom binfmtctl.cli import _run_main\n"
        "for argv in (['--version'], ['validate', ':a:E::x::/bin/sh:']):\n"
        "    try:\n        _run_main(argv)\n    except SystemExit:\n        pass\n"
        "print('psutil' in sys.modules, 'binfmtctl.usage' in sys.modules)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert p.stdout.splitlines()[-1] == "False False", p.stdout + p.stderr


def test_as_an_unprivileged_user_hidden_processes_are_counted_and_said(user: User) -> None:
    """uid 65534 in its own `binfmtctl sandbox`: its foreign process is listed, the host's
    other processes (outside the namespace) are counted as not visible, no traceback."""
    work = user.workdir()
    prog = probe.write_probe("aarch64", work, wait=True)
    if os.geteuid() == 0:
        os.chown(prog, user.uid, user.uid)
    script = (
        "set -e; mkfifo hold; " + f"{prog} < hold > started & exec 4> hold; "
        "until grep -q probe started; do sleep 0.05; done; "
        '"$0" -m binfmtctl status --json > status.json; '
        '"$0" -m binfmtctl status > status.txt 2> status.err; '
        "exec 4>&-; wait"
    )
    r = user.binfmtctl(
        "sandbox", "--entry", aarch64_line(), "--", "sh", "-c", script, user.python, cwd=work
    )
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((work / "status.json").read_text())
    (procs,) = [e["processes"] for e in data["entries"]]
    assert len(procs) == 1 and procs[0]["cmdline"][1] == str(prog)
    assert data["processes_not_visible"] >= 1  # at least the pytest running this, as root
    err = (work / "status.err").read_text()
    assert "not visible (outside this user namespace" in err and "Traceback" not in err
    assert (work / "status.txt").read_text().splitlines()[-1].split()[-2] == "1"


def test_doctor_says_when_a_container_engine_runs(sandbox: Sandbox, tmp_path: Path) -> None:
    """A process named dockerd (a copy of sleep: the name is what is looked at)."""
    tmp_path.chmod(0o755)
    assert run_cli(sandbox, "register", aarch64_line(flags="")).returncode == 0

    def engine_findings() -> list[dict[str, str]]:
        out = json.loads(run_cli(sandbox, "doctor", "--json").stdout)["findings"]
        return [x for x in out if x["code"] == "container-engine"]

    if not any(p.name() in usage.CONTAINER_ENGINES for p in psutil.process_iter()):
        assert engine_findings() == []
    engine = tmp_path / "dockerd"
    shutil.copy2("/bin/sleep", engine)
    p = subprocess.Popen([str(engine), "600"])
    try:
        (found,) = engine_findings()
        assert found["severity"] == "info" and f"dockerd (pid {p.pid})" in found["message"]
        assert "(entries without F: qemu-aarch64)" in found["message"]
        assert "F" in found["fix"]
    finally:
        p.kill()
        p.wait()


# -- the /proc reader says what psutil says ----------------------------------------------------------
def _psutil_view(pid: int) -> tuple[str, list[str], str] | None:
    try:
        p = psutil.Process(pid)
        return p.name(), p.cmdline(), p.username()
    except psutil.Error:
        return None  # ended, or not ours to read: nothing to compare


def _our_view(pid: int) -> tuple[str, list[str], str] | None:
    try:
        return usage.process_name(pid), usage.command_line(pid), usage.username(pid)
    except OSError:
        return None


def test_names_command_lines_and_users_are_psutils_on_every_live_process(
    foreign: tuple[Sandbox, Foreign], tmp_path: Path
) -> None:
    """Every process of the host, the foreign one running under QEMU and one whose name the
    kernel cuts at 15 characters (psutil then takes argv[0]'s) included."""
    _, f = foreign
    long_name = tmp_path / "a-program-with-a-long-name"
    shutil.copy("/bin/sh", long_name)
    long_named = subprocess.Popen(
        [str(long_name), "-c", "echo ready; read line"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert long_named.stdout is not None and long_named.stdin is not None
    assert long_named.stdout.readline() == b"ready\n"  # it runs as itself now (exec is done)
    try:
        compared = {}
        for pid in psutil.pids():
            theirs, ours = _psutil_view(pid), _our_view(pid)
            if theirs is not None and ours is not None and _psutil_view(pid) == theirs:
                assert ours == theirs, pid
                compared[pid] = ours
        assert compared[long_named.pid][0] == "a-program-with-a-long-name"
        assert compared[f.pid][1][1].endswith("probe-aarch64-wait")  # QEMU's own argv
        assert len(compared) > 10
        # other processes may run this QEMU too (tests elsewhere on the host): take ours
        (user,) = [u for u in usage.snapshot([QEMU]).users(QEMU) if u.pid == f.pid]
        assert (user.pid, user.name, list(user.cmdline), user.username) == (
            f.pid,
            *compared[f.pid],
        )
    finally:
        long_named.stdin.close()
        long_named.wait()
        long_named.stdout.close()


STAT_TAIL = (
    b" S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
)


@pytest.mark.parametrize(
    ("comm", "cmdline"),
    [
        (b"sh", b"/bin/sh\x00-c\x00echo hi\x00"),  # NUL-separated, as exec leaves it
        (b"a (b) c)", b"x\x00"),  # parentheses in the name: the last ')' ends it
        (b"chrome", b"/opt/chrome --type=renderer --lang=en"),  # setproctitle: spaces, no NUL
        (b"chrome", b"/opt/chrome --type=gpu\x00"),  # spaces, one NUL at the end
        (b"x", b"a\x00\x00b\x00"),  # an empty argument
        (b"x", b"a\x00b"),  # no NUL at the end: psutil splits at spaces (there are none)
        (b"x", b"a\r\nb\x00c\rd\x00"),  # psutil reads text: universal newlines
        (b"zombie", b""),  # a zombie, or a kernel thread: no command line
        (b"caf\xc3\xa9", b"caf\xe9\x00\xff\xfe\x00"),  # not UTF-8: surrogate escapes, both
        (b"a-program-with-", b"/usr/bin/a-program-with-a-long-name\x00x\x00"),  # cut name
        (b"a-program-with-", b"/usr/bin/other\x00"),  # cut, argv[0] is not its start
    ],
)
def test_the_reader_parses_proc_files_as_psutil_does(
    comm: bytes, cmdline: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psutil's own Linux reader, pointed at a fake /proc, is the oracle for every shape."""
    pid = 4242
    d = tmp_path / str(pid)
    d.mkdir()
    (d / "stat").write_bytes(f"{pid} (".encode() + comm + b")" + STAT_TAIL)
    (d / "cmdline").write_bytes(cmdline)
    (d / "status").write_bytes(b"Name:\tx\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
    from psutil import _pslinux

    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    theirs = _pslinux.Process(pid)
    expected_args = theirs.cmdline()
    assert usage.command_line(pid, str(tmp_path)) == expected_args
    name = theirs.name()
    if len(name) >= 15 and expected_args:  # psutil.Process.name()'s rule, on top
        full = os.path.basename(expected_args[0])
        name = full if full.startswith(name) else name
    assert usage.process_name(pid, str(tmp_path)) == name
    assert usage.username(pid, str(tmp_path)) == "root"
