"""What people expect of a modern CLI: completion, man pages, examples in --help, a
progress line on a terminal only, NO_COLOR / --no-color, gen --json, write-probe."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

from binfmtctl import manpages, probe
from binfmtctl.cli import main
from binfmtctl.progress import Progress, render
from binfmtctl.sandbox import Sandbox
from tests.conftest import ROOT, run_cli
from tests.test_packaging import wheel  # noqa: F401  (the built wheel, a module fixture)
from tests.test_usage import aarch64_line

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "binfmtctl", *args],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        check=False,
    )


# -- completion ------------------------------------------------------------------------------------
def complete(words: str, *, box: Sandbox | None = None) -> list[str]:
    """Run click's real bash completion protocol; the candidate values."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_BINFMTCTL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    if box is not None:
        p = run_cli(box, env=env)
        out = p.stdout
    else:
        out = cli(env=env).stdout
    return [line.split(",", 1)[1] for line in out.splitlines() if "," in line]


def test_completion_of_commands_options_and_targets_with_aliases() -> None:
    commands = complete("binfmtctl ")
    assert {"status", "install", "write-probe", "completion"} <= set(commands)
    assert "_sandbox-init" not in commands  # hidden stays hidden
    assert complete("binfmtctl st") == ["status"]
    assert "--dry-run" in complete("binfmtctl install --d")
    assert "--no-color" in complete("binfmtctl --no")
    arm = complete("binfmtctl install ar")
    assert {"arm", "armeb", "armhf", "armel"} <= set(arm) and "aarch64" not in arm
    assert {"aarch64", "arm64", "aarch64_be"} <= set(complete("binfmtctl test a"))
    assert {"linux/arm64", "linux/arm/v7", "linux/riscv64"} <= set(
        complete("binfmtctl doctor --target linux/")
    )
    assert "riscv64" in complete("binfmtctl gen ri") and "ppc64el" in complete(
        "binfmtctl write-probe ppc64"
    )
    assert complete("binfmtctl uninstall al") == ["all", "alpha"]


def test_completion_offers_live_entry_names(sandbox: Sandbox) -> None:
    assert run_cli(sandbox, "register", aarch64_line()).returncode == 0
    assert complete("binfmtctl show q", box=sandbox) == ["qemu-aarch64"]
    assert complete("binfmtctl disable ", box=sandbox) == ["qemu-aarch64"]  # no register/status
    assert "qemu-aarch64" in complete("binfmtctl uninstall q", box=sandbox)
    assert complete("binfmtctl --mount /nonexistent show q", box=sandbox) == []


@pytest.mark.parametrize(
    ("shell", "needle"),
    [
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef binfmtctl"),
        ("fish", "complete --no-files --command binfmtctl"),
    ],
)
def test_completion_script_for_each_shell(shell: str, needle: str) -> None:
    p = cli("completion", shell)
    assert p.returncode == 0 and needle in p.stdout and "_BINFMTCTL_COMPLETE" in p.stdout
    bad = cli("completion", "tcsh")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_the_bash_script_really_completes_in_bash(tmp_path: Path) -> None:
    script = cli("completion", "bash").stdout
    shim = tmp_path / "binfmtctl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m binfmtctl "$@"\n')
    shim.chmod(0o755)
    test = (
        script
        + "\nCOMP_WORDS=(binfmtctl install arm6); COMP_CWORD=2; _binfmtctl_completion binfmtctl; "
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    p = subprocess.run(
        ["bash", "-c", test],
        capture_output=True,
        text=True,
        env={**ENV, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        check=False,
    )
    assert p.stdout.split() == ["arm64", "arm64be"], p.stderr


# -- help, man pages -------------------------------------------------------------------------------
ALL = list(manpages.commands(main, click.Context(main, info_name="binfmtctl")))


@pytest.mark.parametrize("path", [p for p, _, _ in ALL], ids=" ".join)
def test_every_command_help_has_examples(path: tuple[str, ...]) -> None:
    p = cli(*path, "--help")
    assert p.returncode == 0
    head, sep, examples = p.stdout.partition("\n  Examples:\n")
    assert sep, f"binfmtctl {' '.join(path)} --help has no Examples section"
    assert "Options:" in head  # the examples come last, after the options
    shown = examples.strip("\n").splitlines()
    assert len(shown) >= 2 and all(x.startswith("    ") and "binfmtctl " in x for x in shown), shown


def test_every_command_has_a_current_man_page() -> None:
    committed = {p.name: p.read_text() for p in (ROOT / "man").glob("*.1")}
    want = manpages.pages(main)
    assert set(want) == {"binfmtctl.1"} | {f"{manpages.page_name(p)}.1" for p, _, _ in ALL}
    stale = sorted(n for n in want if committed.get(n) != want[n])
    assert not stale and set(committed) == set(want), (
        f"man/ is not current ({stale}): run python -m binfmtctl.manpages man"
    )


def test_a_man_page_says_what_help_says() -> None:
    page = manpages.pages(main)["binfmtctl-uninstall.1"]
    assert page.startswith('.TH "BINFMTCTL-UNINSTALL" "1"')
    assert (
        "\\fB\\-\\-force\\fR\nGo ahead despite a safety refusal: entries processes run through now."
        in page
    )
    assert "binfmtctl uninstall all \\-\\-dry\\-run" in page  # the examples, verbatim
    assert ".SH EXAMPLES\n.PP\n.nf\nbinfmtctl uninstall arm64\n" in page  # last, verbatim
    root = manpages.pages(main)["binfmtctl.1"]
    assert "See \\fBbinfmtctl\\-persist\\fR(1)" in root.replace(
        "binfmtctl-persist", "binfmtctl\\-persist"
    )


def test_man_pages_render_without_troff_warnings() -> None:
    p = subprocess.run(
        ["man", "--warnings", "-l", str(ROOT / "man" / "binfmtctl-status.1")],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"},
        check=False,
    )
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "binfmtctl status qemu-aarch64 --json" in p.stdout.replace("\u2010", "-")


def test_the_wheel_ships_every_man_page(wheel: Path) -> None:  # noqa: F811
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = {n.rsplit("/", 1)[1] for n in names if "/data/share/man/man1/" in n}
    assert pages == set(manpages.pages(main))


# -- progress and colour on a terminal -------------------------------------------------------------
def on_pty(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; everything it wrote."""
    m, s = pty.openpty()
    p = subprocess.Popen(
        [sys.executable, "-m", "binfmtctl", *args],
        stdin=subprocess.DEVNULL,
        stdout=s,
        stderr=s,
        env={**ENV, **(env or {})},
    )
    os.close(s)
    out = b""
    while True:
        try:
            chunk = os.read(m, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(m)
    return p.wait(), out


def test_scan_shows_progress_on_a_terminal_only() -> None:
    tree = str(ROOT / "binfmtctl")
    rc, out = on_pty("scan", tree)
    assert rc == 0 and b"\rscanning: " in out and b" files/s" in out
    assert b"files, 0 ELF, 0 unreadable" in out  # the report follows, on a clean line
    piped = cli("scan", tree)
    assert piped.returncode == 0 and "scanning" not in piped.stderr + piped.stdout
    rc, out = on_pty("scan", "--json", tree)
    assert rc == 0 and b"scanning" not in out and json.loads(out.decode())["files"] > 10


def test_progress_line_redraws_at_most_every_interval_and_clears() -> None:
    class Stream:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    now = [0.0]
    s = Stream()
    pr = Progress(s, True, interval=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    pr.update(1, 0)
    for n in range(2, 600):
        pr.update(n, 1)  # the clock does not move: no redraw
    now[0] = 2.0
    pr.update(768, 3)
    pr.close(800, 4)
    assert s.text.count("\rscanning: ") == 3
    assert "768 files, 3 ELF, 384 files/s" in s.text and s.text.endswith("\r")
    assert render(1000, 10, 0.5) == "scanning: 1,000 files, 10 ELF, 2,000 files/s"
    off = Stream()
    Progress(off, False).update(1, 1)  # type: ignore[arg-type]
    assert off.text == ""


BAD = ":x:X::a::/bin/sh:"


def test_colour_on_a_terminal_unless_no_color() -> None:
    rc, out = on_pty("validate", BAD)
    assert rc == 1 and b"\x1b[31m" in out
    for args, env in (
        (("--no-color", "validate", BAD), None),
        (("validate", BAD), {"NO_COLOR": "1"}),
    ):
        rc, out = on_pty(*args, env=env)
        assert rc == 1 and b"INVALID" in out and b"\x1b[" not in out, (args, env)
    rc, out = on_pty("validate", BAD, env={"NO_COLOR": ""})  # empty: not set, per no-color.org
    assert b"\x1b[31m" in out


# -- gen --json, write-probe -----------------------------------------------------------------------
def test_gen_json() -> None:
    p = cli("gen", "linux/arm64", "--json")
    data = json.loads(p.stdout)
    assert data["target"] == "aarch64" and data["entry"]["name"] == "qemu-aarch64"
    assert data["register"] == cli("gen", "arm64").stdout.strip()
    assert data["entry"]["interpreter"] == "/usr/bin/qemu-aarch64-static"
    both = cli("gen", "arm64", "--json", "--binfmt-d")
    assert both.returncode == 2 and "pick one" in both.stderr


def test_write_probe_runs_through_qemu_in_a_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    p = cli("write-probe", "arm64", str(tmp_path))
    assert p.returncode == 0 and f"wrote {tmp_path}/probe-aarch64" in p.stdout
    path = tmp_path / "probe-aarch64"
    assert path.read_bytes() == probe.build_probe("aarch64") and os.access(path, os.X_OK)
    assert run_cli(sandbox, "register", aarch64_line()).returncode == 0
    ran = sandbox.run([str(path)])
    assert ran.returncode == 0 and ran.stdout == probe.marker("aarch64")
    data = json.loads(cli("write-probe", "aarch64", str(tmp_path), "--wait", "--json").stdout)
    assert data["path"] == f"{tmp_path}/probe-aarch64-wait"
    assert data["expected_output"] == "binfmtctl-probe:aarch64"
    waited = sandbox.run([data["path"]], input=b"")  # stdin closed: it returns at once
    assert waited.returncode == 0 and waited.stdout == probe.marker("aarch64")


def test_write_probe_refusals_are_one_line(tmp_path: Path) -> None:
    for args, rc, text in (
        (("write-probe", "nosuch"), 2, "unknown target 'nosuch'"),
        (("write-probe", "riscv64", str(tmp_path), "--wait"), 2, "no waiting probe"),
        (("write-probe", "riscv64", str(tmp_path / "missing")), 1, "is not a directory"),
    ):
        p = cli(*args)
        assert p.returncode == rc and text in p.stderr and "Traceback" not in p.stderr, args
    assert list(tmp_path.iterdir()) == []  # nothing half-written
