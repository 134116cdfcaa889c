"""`which` against the kernel: the handler it names is the one exec really uses.

Each entry's interpreter is a tiny script that prints the entry's name, so
running a foreign probe inside the sandbox shows which entry the kernel picked.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from binfmtctl import probe, table
from binfmtctl.entry import render_register_str
from binfmtctl.sandbox import Sandbox
from tests.conftest import run_cli

pytestmark = pytest.mark.sandbox
TARGETS = [
    "aarch64",
    "arm",
    "riscv64",
    "s390x",
    "ppc64le",
    "mips64el",
    "mipsel",
    "sparc64",
    "m68k",
    "i386",
]


def reporter(d: Path, name: str) -> str:
    path = d / f"interp-{name}"
    path.write_text(f"#!/bin/sh\necho ran-by-{name}\n")
    path.chmod(0o755)
    return str(path)


def which_handler(box: Sandbox, path: str) -> str | None:
    p = run_cli(box, "which", "--json", path)
    assert p.returncode == 0, p.stderr
    h = json.loads(p.stdout)[0]["handler"]
    return None if h is None else str(h["name"])


def ran_by(box: Sandbox, path: str) -> str:
    """Exec ``path`` with execv(2) itself (a shell or execvp would fall back to running
    an ENOEXEC file as a script)."""
    p = box.run([sys.executable, "-c", "import os, sys; os.execv(sys.argv[1], sys.argv[1:])", path])
    return (
        p.stdout.decode().strip()
        if p.returncode == 0
        else f"exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}"
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    return tmp_path


def test_which_agrees_with_exec_for_table_targets(sandbox: Sandbox, workdir: Path) -> None:
    entries = [
        render_register_str(table.get_target(t).entry(reporter(workdir, t), name=f"t-{t}"))
        for t in TARGETS
    ]
    # --force: i386 is run natively on an x86_64 host (a hijack, refused without it)
    assert run_cli(sandbox, "register", "--force", *entries).returncode == 0
    for t in TARGETS:
        prog = str(probe.write_probe(t, workdir))
        assert which_handler(sandbox, prog) == f"t-{t}"
        assert ran_by(sandbox, prog) == f"ran-by-{t}"
    # the host's own binaries match none of them
    assert which_handler(sandbox, "/bin/ls") is None


def test_newest_wins_and_disabled_is_skipped(sandbox: Sandbox, workdir: Path) -> None:
    t = table.get_target("aarch64")
    prog = str(probe.write_probe("aarch64", workdir))
    older = render_register_str(t.entry(reporter(workdir, "older"), name="older"))
    newer = render_register_str(t.entry(reporter(workdir, "newer"), name="newer"))
    assert run_cli(sandbox, "register", older).returncode == 0
    assert run_cli(sandbox, "register", newer).returncode == 0
    assert which_handler(sandbox, prog) == "newer"
    assert ran_by(sandbox, prog) == "ran-by-newer"
    p = run_cli(sandbox, "which", prog)
    assert "shadowed by newer entry newer" in p.stdout
    assert run_cli(sandbox, "disable", "newer").returncode == 0
    assert which_handler(sandbox, prog) == "older"
    assert ran_by(sandbox, prog) == "ran-by-older"
    assert run_cli(sandbox, "disable", "older").returncode == 0
    assert which_handler(sandbox, prog) is None
    assert "Exec format error" in ran_by(sandbox, prog)


def test_near_miss_names_the_field(sandbox: Sandbox, workdir: Path) -> None:
    arm = render_register_str(
        table.get_target("arm").entry(reporter(workdir, "arm"), name="qemu-arm")
    )
    assert run_cli(sandbox, "register", arm).returncode == 0
    prog = str(probe.write_probe("aarch64", workdir))
    p = run_cli(sandbox, "which", "--json", prog)
    row = json.loads(p.stdout)[0]
    assert row["handler"] is None and row["elf"]["arch"] == "aarch64"
    reasons = " ".join(str(n) for n in row["near_misses"])
    assert "EI_CLASS" in reasons or "e_machine" in reasons


@pytest.mark.parametrize(
    ("content", "kind"),
    [(b"", "empty"), (b"\x7fELF\x02\x01\x01" + b"\0" * 10, "truncated"), (b"hello\n", "text")],
)
def test_which_answers_cleanly_on_odd_files(
    sandbox: Sandbox, workdir: Path, content: bytes, kind: str
) -> None:
    f = workdir / kind
    f.write_bytes(content)
    p = run_cli(sandbox, "which", str(f), str(workdir))
    assert "Traceback" not in p.stderr + p.stdout
    assert p.returncode == 1  # the directory could not be examined
    assert "is a directory" in p.stdout
    assert "nothing can run it" in p.stdout


def test_which_text_names_the_near_misses_without_crashing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Text output with live entries that do not match the file (it once died on KeyError)."""
    for t in ("aarch64", "riscv64", "s390x"):
        entry = table.get_target(t).entry(reporter(tmp_path, t), "")
        assert run_cli(sandbox, "register", render_register_str(entry)).returncode == 0
    arm64 = str(probe.write_probe("aarch64", tmp_path))
    p = run_cli(sandbox, "which", "/bin/ls", arm64)
    assert p.returncode == 0, p.stderr
    assert "internal error" not in p.stderr
    assert "runs natively on this host" in p.stdout
    assert "not qemu-riscv64: e_machine is 0x003e (x86-64), entry expects 0x00f3" in p.stdout
    assert "runs with: qemu-aarch64" in p.stdout


def test_which_says_the_exec_fails_when_an_entry_without_f_has_no_interpreter(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """No F: the kernel opens the interpreter at each exec, so a missing one makes the exec
    fail. ``which`` says so (exit 1) instead of "runs with", and the kernel agrees."""
    missing = str(tmp_path / "gone" / "qemu-riscv64")
    entry = table.get_target("riscv64").entry(missing, "")
    assert run_cli(sandbox, "register", render_register_str(entry)).returncode == 0
    rv = str(probe.write_probe("riscv64", tmp_path))
    p = run_cli(sandbox, "which", rv)
    assert p.returncode == 1, p.stdout
    assert "runs with" not in p.stdout
    assert f"would fail: qemu-riscv64 takes it, but its interpreter {missing} does not exist" in (
        p.stdout
    )
    row = json.loads(run_cli(sandbox, "which", "--json", rv).stdout)[0]
    assert row["handler"]["name"] == "qemu-riscv64" and row["exec_fails"]["errno"] == "ENOENT"
    assert ran_by(sandbox, rv).startswith("exit 1:")  # the real exec fails: ENOENT
    assert "No such file or directory" in ran_by(sandbox, rv)
    # with F the interpreter is pinned at registration: a reporter that exists runs it
    ok = table.get_target("riscv64").entry(reporter(tmp_path, "riscv64"), "F")
    assert run_cli(sandbox, "register", "--replace", render_register_str(ok)).returncode == 0
    p = run_cli(sandbox, "which", rv)
    assert p.returncode == 0 and "runs with: qemu-riscv64" in p.stdout
