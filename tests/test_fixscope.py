"""A fix printed under --root, --mount, --kernel or --config runs as printed: it carries the
option (``persist status --root DIR`` never suggests a bare ``persist enable``, which would
change the real /etc)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binfmtctl.fixscope import scope_fix
from binfmtctl.sandbox import Sandbox
from tests.conftest import host_cli, run_cli


def test_scope_fix_adds_each_option_where_the_command_takes_it() -> None:
    assert scope_fix("binfmtctl persist enable", root="/img") == (
        "binfmtctl persist enable --root /img"
    )
    assert scope_fix("run `binfmtctl persist enable` again", root="/img") == (
        "run `binfmtctl persist enable --root /img` again"
    )
    assert scope_fix("binfmtctl apply  (or binfmtctl doctor --fix)", root="/i", config="/i/c") == (
        "binfmtctl apply --config /i/c  (or binfmtctl doctor --root /i --fix)"
    )
    assert scope_fix("binfmtctl remove x && binfmtctl install arm", mount="/m n") == (
        "binfmtctl --mount '/m n' remove x && binfmtctl --mount '/m n' install arm"
    )
    assert (
        scope_fix("binfmtctl validate -f F", kernel="4.4") == "binfmtctl validate --kernel 4.4 -f F"
    )
    # options already there are not repeated; commands that do not take one get none
    assert (
        scope_fix("binfmtctl doctor --kernel 4.4", kernel="4.4") == "binfmtctl doctor --kernel 4.4"
    )
    assert scope_fix("binfmtctl install arm", root="/img", kernel="4.4") == "binfmtctl install arm"
    assert scope_fix("binfmtctl persist enable", mount=None) == "binfmtctl persist enable"


def test_scope_fix_leaves_prose_alone_and_knows_every_command() -> None:
    from binfmtctl import fixscope
    from binfmtctl.cli import COMMANDS

    assert {c for c in COMMANDS if not c.startswith("_")} == fixscope.COMMANDS
    prose = "run `binfmtctl persist enable` again with the binfmtctl that should run at boot"
    assert scope_fix(prose, mount="/m") == (
        "run `binfmtctl --mount /m persist enable` again with the binfmtctl that should run at boot"
    )
    assert scope_fix("see binfmtctl.service and /run/binfmtctl", mount="/m", root="/r") == (
        "see binfmtctl.service and /run/binfmtctl"
    )


def test_persist_status_under_root_suggests_fixes_under_root(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.mkdir()
    p = host_cli("persist", "status", "--root", str(image))
    assert p.returncode == 1
    assert f"fix: binfmtctl persist enable --root {image}\n" in p.stdout, p.stdout
    assert "fix: binfmtctl persist enable\n" not in p.stdout
    data = json.loads(host_cli("persist", "status", "--root", str(image), "--json").stdout)
    assert data["problems"] and all(f"--root {image}" in x["fix"] for x in data["problems"])
    # and the fix, run as printed, fixes the image and nothing else
    fix = data["problems"][0]["fix"]
    assert host_cli(*fix.split()[1:], "--binfmtctl", "/usr/local/bin/binfmtctl").returncode == 0
    assert (image / "etc/systemd/system/binfmtctl.service").exists()


def test_doctor_fixes_under_root_mount_and_kernel_carry_them(tmp_path: Path) -> None:
    image = tmp_path / "image"
    image.mkdir()
    nothing = tmp_path / "nothing"
    p = host_cli("--mount", str(nothing), "doctor", "--json", "--root", str(image))
    fixes = [f["fix"] for f in json.loads(p.stdout)["findings"]]
    assert f"binfmtctl --mount {nothing} doctor --root {image} --kernel X.Y" in " ".join(fixes), (
        fixes
    )
    assert f"binfmtctl --mount {nothing} install TARGET" in " ".join(fixes), fixes
    assert "binfmtctl run --target arm64" in " ".join(fixes), fixes  # run has its own table
    for fix in fixes:
        assert fix.count("binfmtctl ") == fix.count("binfmtctl --mount") + fix.count(
            "binfmtctl run"
        ), fix


@pytest.mark.sandbox
def test_fixes_under_mount_carry_it(sandbox: Sandbox, tmp_path: Path) -> None:
    d = tmp_path / "bm"
    d.mkdir()
    p = sandbox.run(["mount", "--bind", "/proc/sys/fs/binfmt_misc", str(d)])
    assert p.returncode == 0, p.stderr
    assert (
        run_cli(sandbox, "register", f":gone:E::gone::{tmp_path}/no-such-interpreter:").returncode
        == 0
    )
    p = run_cli(sandbox, "--mount", str(d), "show", "gonne")
    assert p.returncode == 1
    assert "did you mean 'gone'?" in p.stderr
    assert f"fix: binfmtctl --mount {d} status lists every entry" in p.stderr, p.stderr
    st = json.loads(run_cli(sandbox, "--mount", str(d), "status", "--json").stdout)
    (gone,) = st["entries"]
    assert gone["health"] == "interpreter-missing"
    assert gone["findings"] and all(f"binfmtctl --mount {d} " in f["fix"] for f in gone["findings"])
