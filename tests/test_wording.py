"""Messages read as English: counts, articles, "did you mean", no raw Python records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from binfmtctl import probe, table
from binfmtctl.entry import render_register_str
from binfmtctl.sandbox import Sandbox
from binfmtctl.wording import article, plural, suggestion
from tests.conftest import run_cli


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "binfmtctl", *args], capture_output=True, text=True, check=False
    )


def test_plural() -> None:
    assert plural(1, "entry") == "1 entry"
    assert plural(0, "entry") == "0 entries"
    assert plural(3, "file") == "3 files"
    assert plural(1, "target") == "1 target"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("arm", "an arm"),
        ("aarch64", "an aarch64"),
        ("i386", "an i386"),
        ("x86_64", "an x86_64"),
        ("s390x", "an s390x"),
        ("m68k", "an m68k"),
        ("sh4", "an sh4"),
        ("riscv64", "a riscv64"),
        ("mips64el", "a mips64el"),
        ("ppc64le", "a ppc64le"),
        ("sparc64", "a sparc64"),
        ("lxc", "a lxc"),
        ("docker", "a docker"),
    ],
)
def test_article(word: str, expected: str) -> None:
    assert article(word) == expected


def test_suggestion() -> None:
    assert suggestion("qemu-aarch46", ["qemu-aarch64", "WSLInterop"]) == (
        "; did you mean 'qemu-aarch64'?"
    )
    assert suggestion("zzz", ["qemu-aarch64"]) == ""


def test_a_mistyped_command_gets_a_suggestion() -> None:
    p = cli("instal", "arm64")
    assert p.returncode == 2
    assert "No such command 'instal'; did you mean 'install'" in p.stderr
    p = cli("stauts")
    assert p.returncode == 2 and "did you mean 'status'" in p.stderr
    p = cli("xyzzy")
    assert p.returncode == 2 and "No such command 'xyzzy'" in p.stderr
    assert "did you mean" not in p.stderr


@pytest.mark.parametrize("command", ["install --dry-run", "gen"])
def test_a_mistyped_target_gets_a_suggestion(command: str) -> None:
    p = cli("--mount", "/nonexistent/binfmt_misc", *command.split(), "arm65")
    assert p.returncode in (1, 2), p.stderr
    assert "did you mean" in p.stderr and "'arm64'" in p.stderr, p.stderr
    assert "internal error" not in p.stderr


@pytest.mark.sandbox
def test_entry_names_get_suggestions_and_show_speaks_words(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    entry = table.get_target("aarch64").entry("/bin/true", "")
    assert run_cli(sandbox, "register", render_register_str(entry)).returncode == 0
    for args in (
        ["show", "qemu-aarch46"],
        ["enable", "qemu-arch64"],
        ["disable", "qemu-arch64"],
        ["remove", "qemu-aarch"],
        ["status", "qemu-arch64"],
    ):
        p = run_cli(sandbox, *args)
        assert p.returncode == 1, (args, p.stderr)
        assert "did you mean 'qemu-aarch64'?" in p.stderr, (args, p.stderr)
    for args in (["uninstall", "arm65"], ["test", "arm65"]):
        p = run_cli(sandbox, *args)
        assert p.returncode in (1, 2), (args, p.stderr)
        assert "did you mean" in p.stderr and "'arm64'" in p.stderr, (args, p.stderr)
    p = run_cli(sandbox, "show", "qemu-aarch64")
    assert p.returncode == 0
    kind = next(line for line in p.stdout.splitlines() if line.startswith("recognised as:"))
    assert kind == (
        "recognised as: QEMU user-mode emulation of AArch64 (target aarch64; QEMU's own magic and mask)"
    )
    assert "{" not in p.stdout
    # "1 file", not "1 files"; "an aarch64 binary"
    one = tmp_path / "one"
    one.mkdir()
    probe.write_probe("aarch64", one)
    p = run_cli(sandbox, "scan", str(one))
    assert p.stdout.startswith("1 file, 1 ELF"), p.stdout
    assert run_cli(sandbox, "remove", "qemu-aarch64").returncode == 0
    p = run_cli(sandbox, "test", "arm64", "--json")
    assert "an aarch64 binary" in p.stdout or "an aarch64 binary" in p.stderr, p.stdout
