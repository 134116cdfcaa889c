"""The click-free fast path answers exactly as the click CLI does, and imports what it uses.

Every comparison runs both paths on the same input and state: the fast path through the
console entry point (``binfmtctl.fastpath.entry_point``), the click path through
``binfmtctl.cli._run_main`` (what the entry point hands other command lines to).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from binfmtctl import __version__, fastpath, persist
from binfmtctl.entry import parse_register
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.sandbox import Sandbox
from tests.conftest import AARCH64, ROOT, S390X_GONE, WSL, register_raw, snapshot

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

MNT = "/proc/sys/fs/binfmt_misc"
HEAVY = {"click", "yaml", "_yaml", "elftools", "psutil"}

#: runs one path ("fast" or "click") on argv, then reports the modules it imported on $MODULES_FD
HARNESS = """
import os, sys
path, argv = sys.argv[1], sys.argv[2:]
sys.argv = ["binfmtctl", *argv]
try:
    if path == "fast":
        from binfmtctl.fastpath import entry_point
        entry_point()
    else:
        from binfmtctl.cli import _run_main
        _run_main(argv)
    code = 0
except SystemExit as e:
    code = e.code
sys.stdout.flush()
modules = sorted(sys.modules)
import json
os.write(int(os.environ["MODULES_FD"]), json.dumps(modules).encode())
sys.exit(code)
"""


def run_path(
    path: str, *args: str, box: Sandbox | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str, set[str]]:
    """(exit status, stdout, stderr, modules imported) of one path, in ``box`` if given."""
    r, w = os.pipe()
    argv = [sys.executable, "-c", HARNESS, path, *args]
    e = {**(box.env(env) if box else {**os.environ, **(env or {})}), "PYTHONPATH": str(ROOT)}
    e["MODULES_FD"] = str(w)
    cmd = box.command(argv) if box else argv
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(w,), env=e)
    os.close(w)
    out, err = p.communicate(timeout=120)
    with os.fdopen(r, "rb") as f:
        raw = f.read()
    modules = set(json.loads(raw)) if raw else set()
    return p.returncode, out.decode(), err.decode(), modules


# -- which command lines the fast path takes -------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--version"], ("version", {})),
        (["-V"], ("version", {})),
        (["apply"], ("apply", {})),
        (["apply", "--config", "/c"], ("apply", {"config": "/c"})),
        (["apply", "--config=/c"], ("apply", {"config": "/c"})),
        (["--mount", "/m", "apply"], ("apply", {"mount": "/m"})),
        (["--mount=/m", "apply", "--config", "/c"], ("apply", {"mount": "/m", "config": "/c"})),
        (["validate", ":t:M::BM::/bin/true:"], ("validate", {})),
        (["validate", "a", "b c", ""], ("validate", {})),
    ],
)
def test_the_fast_shapes(argv: list[str], expected: tuple[str, dict[str, str]]) -> None:
    assert fastpath.parse_fast(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["--version", "--help"],
        ["apply", "--plan"],
        ["apply", "--json"],
        ["apply", "--force"],
        ["apply", "--help"],
        ["apply", "--config"],
        ["apply", "--config", ""],
        ["apply", "--config", "--json"],
        ["apply", "--config", "a", "--config", "b"],
        ["--mount", "/m", "--mount", "/n", "apply"],
        ["apply", "x"],
        ["status"],
        ["validate", "--version"],
        ["--mount", "apply"],
        ["validate"],
        ["validate", "-"],
        ["validate", "-f", "x.conf"],
        ["validate", "--json", ":t:M::BM::/bin/true:"],
        ["validate", ":t:M::BM::/bin/true:", "--json"],
        ["validate", "--kernel", "4.4", ":t:M::BM::/bin/true:"],
        ["validate", "--kernel=4.4", ":t:M::BM::/bin/true:"],
        ["validate", "x", "--help"],
        ["validate", "x", "-h"],
        ["validate", "--", "x"],
        ["--mount", "/m", "validate", "x"],
        ["--no-color", "validate", "x"],
        ["x", "validate"],
    ],
)
def test_everything_else_goes_to_click(argv: list[str]) -> None:
    assert fastpath.parse_fast(argv) is None


def test_colour_is_clicks() -> None:
    for fg in ("red", "yellow", "green"):
        assert fastpath.styled("FAILED x", fg, tty=True) == click.style("FAILED x", fg=fg)
        assert fastpath.styled("FAILED x", fg, tty=False) == "FAILED x"
        bold = click.style("INVALID x", fg=fg, bold=True)
        assert fastpath.styled("INVALID x", fg, tty=True, bold=True) == bold
    assert fastpath.styled("plain", None, tty=True) == "plain"
    assert fastpath.styled("b", None, tty=True, bold=True) == click.style("b", bold=True)
    # escape sequences in the text itself (a name, an input): click removes them from what
    # does not go to a colour terminal, and passes them on to one
    odd = "a\x1b[31mb\x1b[0m\x1b[2Jc\x1b[?25l\x1bx\x1b[1;"
    assert fastpath.styled(odd, "red", tty=False) == click.unstyle(odd) == "abc\x1bx\x1b[1;"
    assert fastpath.styled(odd, None, tty=True) == odd


# -- --version -----------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_is_the_same_on_both_paths_and_imports_nothing(flag: str) -> None:
    fast = run_path("fast", flag)
    slow = run_path("click", flag)
    assert fast[:3] == slow[:3] == (0, f"binfmtctl, version {__version__}\n", "")
    ours = {m for m in fast[3] if m.startswith("binfmtctl")}
    assert ours == {"binfmtctl", "binfmtctl.fastpath"}, ours
    assert not (HEAVY | {"typing", "dataclasses", "enum"}) & fast[3]
    assert "click" in slow[3]  # the comparison really ran the click path


def test_validate_imports_no_yaml_elftools_psutil() -> None:
    code, out, _, modules = run_path("fast", "validate", ":t:M::\\x7fELF\\x02::/bin/true:")
    assert code == 0 and out.startswith("ok  ")
    assert not {"yaml", "_yaml", "elftools", "psutil"} & {m.split(".")[0] for m in modules}
    assert "binfmtctl.table" not in modules


def test_errors_do_not_import_click() -> None:
    code = "import sys, binfmtctl.errors; print('click' in sys.modules)"
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert p.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("args", "status", "first_line"),
    [
        (["validate"], 2, "Error: nothing to validate: give ENTRY arguments or -f FILE"),
        (["validate", "--kernel", "banana", ":t:M::BM::/bin/true:"], 2, "Error: not a kernel"),
        (["register", ":t:X::a::/bin/true:"], 1, "Error: 1 of 1 entry is invalid"),
        (["sandbox", "--", "/nonexistent/cmd"], 127, "Error: cannot run '/nonexistent/cmd'"),
    ],
)
def test_click_shows_binfmtctl_errors_as_before(
    args: list[str], status: int, first_line: str
) -> None:
    """BinfmtctlError is no ClickException any more: the CLI maps it to the same one line
    (plus the fix line) and status."""
    code, _, err, _ = run_path("click", *args, env={"BINFMTCTL_MOUNT": "/nonexistent/mnt"})
    assert code == status and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(first_line), err
    if args == ["validate"]:
        assert err.endswith(
            "\n  fix: binfmtctl validate ':name:M::magic::/path/to/interpreter:F'\n"
        )


# -- apply ---------------------------------------------------------------------------------------
def reset(box: Sandbox, *lines: str) -> None:
    """The table back to exactly ``lines`` (registered behind binfmtctl's back), no state."""
    for name, _ in snapshot(box):
        assert box.run(["sh", "-c", f"echo -1 > {MNT}/{name}"]).returncode == 0
    shutil.rmtree(box.state_dir, ignore_errors=True)
    for line in lines:
        register_raw(box, line)


def both_paths(
    box: Sandbox, args: list[str], env: dict[str, str], before: tuple[str, ...]
) -> tuple[int, str, str]:
    """Run ``args`` through the fast path and through click, each from the table ``before``;
    assert they said and did the same thing; return what they said."""
    reset(box, *before)
    fast = run_path("fast", *args, box=box, env=env)
    after_fast = snapshot(box)
    reset(box, *before)
    slow = run_path("click", *args, box=box, env=env)
    assert fast[:3] == slow[:3], (fast[:3], slow[:3])
    assert snapshot(box) == after_fast
    assert not (HEAVY & {m.split(".")[0] for m in fast[3]}), HEAVY & fast[3]
    assert not {m for m in fast[3] if m.startswith("binfmtctl.cli")}
    assert not {"typing", "subprocess", "binfmtctl.table"} & fast[3]
    assert "click" in slow[3]
    return fast[:3]


def test_apply_is_the_same_on_both_paths(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    cfg = tmp_path / "binfmtctl.conf"
    env = {"BINFMTCTL_CONFIG": str(cfg)}
    persist.write_config(cfg, [parse_register(AARCH64, HOST)])
    status, out, err = both_paths(box, ["apply"], env, (WSL,))
    assert status == 0 and err == ""
    assert "register         qemu-aarch64" in out and out.endswith("left alone\n")
    # idempotent: the second run finds it in place
    status, out, _ = both_paths(box, ["apply"], env, (WSL, AARCH64))
    assert status == 0 and "unchanged        qemu-aarch64" in out


def test_apply_failures_are_the_same_on_both_paths(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    cfg = tmp_path / "binfmtctl.conf"
    persist.write_config(cfg, [parse_register(AARCH64, HOST), parse_register(S390X_GONE, HOST)])
    with cfg.open("a") as f:
        f.write(":broken:X::abc::/bin/true:\n")  # an INVALID line
    status, out, err = both_paths(box, ["apply"], {"BINFMTCTL_CONFIG": str(cfg)}, (WSL,))
    assert status == 1
    assert "FAILED     qemu-s390x" in out and "INVALID    " in out
    assert err.startswith("Error: 2 config entries could not be applied: qemu-s390x, ")
    assert err.endswith("\n  fix: see the FAILED / INVALID lines above\n")


def test_apply_as_the_unit_runs_it_is_the_same_on_both_paths(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    box = sandbox
    cfg = tmp_path / "unit.conf"
    persist.write_config(cfg, [parse_register(AARCH64, HOST)])
    args = ["--mount", MNT, "apply", "--config", str(cfg)]
    assert fastpath.parse_fast(args) is not None
    status, out, _ = both_paths(box, args, {"BINFMTCTL_CONFIG": "/nonexistent"}, ())
    assert status == 0 and f"config {cfg}: 1 entry; live table {MNT}" in out


def test_apply_refusal_is_the_same_on_both_paths(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    cfg = tmp_path / "open.conf"
    persist.write_config(cfg, [parse_register(AARCH64, HOST)])
    cfg.chmod(0o666)
    status, out, err = both_paths(box, ["apply"], {"BINFMTCTL_CONFIG": str(cfg)}, ())
    assert status == 1 and out == ""
    assert err.startswith(f"Error: {cfg} can be changed by a non-root user")
    assert snapshot(box) == []


def test_a_config_error_is_the_same_on_both_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "c.conf"
    cfg.mkdir()  # refused before anything is mounted or written
    args = ["--mount", str(tmp_path / "m"), "apply", "--config", str(cfg)]
    fast, slow = run_path("fast", *args), run_path("click", *args)
    assert fast[:3] == slow[:3]
    assert fast[0] == 2 and fast[2].startswith(f"Error: {cfg} is a directory"), fast


def test_an_internal_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(argv: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(fastpath, "run_fast", boom)
    monkeypatch.setattr(sys, "argv", ["binfmtctl", "apply"])
    monkeypatch.delenv("BINFMTCTL_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exc:
        fastpath.entry_point()
    assert exc.value.code == 1
    assert capsys.readouterr().err == (
        "Error: internal error: RuntimeError: boom "
        "(set BINFMTCTL_TRACEBACK=1 for details; please report it)\n"
    )


def run_on_terminal(box: Sandbox, path: str, args: list[str], env: dict[str, str]) -> bytes:
    """What one path writes to a terminal (a pty as stdout), colours included."""
    import pty

    master, slave = pty.openpty()
    argv = [sys.executable, "-c", HARNESS, path, *args]
    r, w = os.pipe()
    e = {**box.env(env), "PYTHONPATH": str(ROOT), "MODULES_FD": str(w)}
    p = subprocess.Popen(
        box.command(argv), stdout=slave, stderr=subprocess.DEVNULL, pass_fds=(w,), env=e
    )
    os.close(slave)
    os.close(w)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=120)
    os.close(master)
    os.close(r)
    return out


@pytest.mark.parametrize("no_color", ["", "1"])
def test_apply_on_a_terminal_is_the_same_on_both_paths(
    sandbox: Sandbox, tmp_path: Path, no_color: str
) -> None:
    cfg = tmp_path / "binfmtctl.conf"
    persist.write_config(cfg, [parse_register(AARCH64, HOST), parse_register(S390X_GONE, HOST)])
    env = {"BINFMTCTL_CONFIG": str(cfg), "NO_COLOR": no_color}
    reset(sandbox)
    fast = run_on_terminal(sandbox, "fast", ["apply"], env)
    reset(sandbox)
    slow = run_on_terminal(sandbox, "click", ["apply"], env)
    assert fast == slow and b"FAILED     qemu-s390x" in fast
    assert (b"\x1b[31mFAILED" in fast) is (not no_color)


def test_fixes_name_a_non_default_mount_on_both_paths(sandbox: Sandbox, tmp_path: Path) -> None:
    """Under --mount DIR every fix names DIR (binfmtctl.fixscope), on both paths alike."""
    other = tmp_path / "bm"
    other.mkdir()
    mounted = sandbox.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(other)])
    assert mounted.returncode == 0, mounted.stderr  # the namespace's instance, seen twice
    cfg = tmp_path / "binfmtctl.conf"
    persist.write_config(cfg, [parse_register(AARCH64, HOST), parse_register(S390X_GONE, HOST)])
    args = ["--mount", str(other), "apply", "--config", str(cfg)]
    status, out, _ = both_paths(sandbox, args, {}, ())
    assert status == 1
    assert f"binfmtctl --mount {other} persist remove qemu-s390x" in out


# -- validate ------------------------------------------------------------------------------------
#: what ``binfmtctl validate ENTRY`` may import: none of these (issue 15)
NOT_FOR_VALIDATE = HEAVY | {
    "subprocess",
    "typing",
    "dataclasses",
    "inspect",
    "pathlib",
    "json",
    "difflib",
}
#: nor these, which cost 3 to 7 ms each here, while fixes need no rewriting (fixscope's
#: regular expressions run only under a --mount other than the default)
NOT_FOR_LEAN_VALIDATE = NOT_FOR_VALIDATE | {"re", "enum", "collections", "functools", "shlex"}
FOREIGN = AARCH64.replace("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "/bin/true")
#: the hijack warning (an ELF magic that matches the host's programs), the benchmark's entry
HIJACK = r":t:M::\x7fELF\x02\x01\x01::/bin/true:F"
INVALID = ":bad:X::a::/bin/true:"
#: not UTF-8, control characters, a raw escape: shown escaped, judged as bytes
ODD = os.fsdecode(b":odd\xff:E::x\tz::/bin/tr\xc3ue\x1b[31m:")


def validate_both(
    *entries: str, box: Sandbox | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``validate ENTRY...`` through the fast path and through click; assert they said the
    same, that the fast path imported none of what it must not; return what they said."""
    mount = (env or {}).get("BINFMTCTL_MOUNT")
    forbidden = NOT_FOR_VALIDATE if mount else NOT_FOR_LEAN_VALIDATE
    args = ["validate", *entries]
    assert fastpath.parse_fast(args) == ("validate", {})
    fast = run_path("fast", *args, box=box, env=env)
    slow = run_path("click", *args, box=box, env=env)
    assert fast[:3] == slow[:3], (fast[:3], slow[:3])
    imported = {m.split(".")[0] for m in fast[3]}
    assert not forbidden & imported, forbidden & imported
    assert not {m for m in fast[3] if m.startswith(("binfmtctl.cli", "binfmtctl.binfmt_misc"))}
    assert "click" in slow[3]
    return fast[:3]


def test_validate_ok_is_the_same_on_both_paths() -> None:
    status, out, err = validate_both(FOREIGN)
    assert (status, err) == (0, "")
    assert out.startswith(f"ok  {FOREIGN}\nkernel would show:\n  | enabled\n")


def test_validate_warnings_are_the_same_on_both_paths() -> None:
    status, out, err = validate_both(HIJACK)
    assert (status, err) == (0, "")
    assert out.startswith(f"ok  {HIJACK}  (")
    assert "warning magic: 't' matches what this host runs natively" in out
    assert "^~~" in out and "  fix: " in out


def test_validate_invalid_and_several_are_the_same_on_both_paths() -> None:
    status, out, err = validate_both(FOREIGN, INVALID, HIJACK, "", "garbage")
    assert (status, err) == (1, "")
    assert f"INVALID (EINVAL)  {INVALID}\nerror[EINVAL] type: " in out
    assert "kernel would show:" not in out  # only for a single input
    assert out.count("\nok  ") + out.startswith("ok  ") == 2
    assert out.count("INVALID (") == 3


def test_an_odd_entry_is_the_same_on_both_paths() -> None:
    status, out, err = validate_both(ODD, ODD + "F")
    assert err == "" and status == 1
    # as given, undecodable bytes escaped; off a terminal the escape sequence is removed
    assert out.startswith("ok  :odd\\xff:E::x\tz::/bin/tr\\xc3ue:\n")
    assert "  :odd\\xff:E::x\\tz::/bin/tr\\xc3ue\\x1b[31m:F\\n" in out  # the caret line's copy


def test_validate_against_a_live_table_is_the_same_on_both_paths(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A same name is EEXIST: the live table is read (without side effects) on both paths,
    at $BINFMTCTL_MOUNT when it is set, and fixes then name that mount."""
    register_raw(sandbox, FOREIGN)
    status, out, _ = validate_both(FOREIGN, box=sandbox)
    assert status == 1 and out.startswith(f"INVALID (EEXIST)  {FOREIGN}")
    other = tmp_path / "bm"
    other.mkdir()
    mounted = sandbox.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(other)])
    assert mounted.returncode == 0, mounted.stderr  # the namespace's instance, seen twice
    status, out, _ = validate_both(FOREIGN, box=sandbox, env={"BINFMTCTL_MOUNT": str(other)})
    assert status == 1 and f"binfmtctl --mount {other} " in out
    # a table that is not mounted there: nothing is live, nothing is mounted
    status, out, _ = validate_both(FOREIGN, box=sandbox, env={"BINFMTCTL_MOUNT": str(tmp_path)})
    assert status == 0


@pytest.mark.parametrize("no_color", ["", "1"])
def test_validate_on_a_terminal_is_the_same_on_both_paths(sandbox: Sandbox, no_color: str) -> None:
    args = ["validate", FOREIGN, INVALID, HIJACK]
    env = {"NO_COLOR": no_color}
    fast = run_on_terminal(sandbox, "fast", args, env)
    slow = run_on_terminal(sandbox, "click", args, env)
    assert fast == slow and b"INVALID (EINVAL)" in fast
    assert (b"\x1b[31m\x1b[1mINVALID (EINVAL)" in fast) is (not no_color)
    assert (b"\x1b[32mok  " in fast) is (not no_color)
    assert (b"\x1b[33mwarning " in fast) is (not no_color)
