"""The wheel is the product: it must carry the table and the unit, and an installed
copy must find them without a source checkout nearby."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    (whl,) = out.glob("binfmtctl-*.whl")
    return whl


def test_wheel_carries_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "binfmtctl/data/magic_table.yaml" in names
    assert "binfmtctl/data/magic_table.json" in names  # the compiled form start-up reads
    assert "binfmtctl/data/binfmtctl.service" in names
    assert "binfmtctl/cli/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)


def test_installed_package_finds_its_data_without_a_checkout(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what an install lays down, minus metadata handling
    code = (
        "from binfmtctl import table, persist; "
        "print(table.locate_table()); print(persist.locate_unit_template()); "
        "print(table.get_target('linux/arm64').name); import sys; print('yaml' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/", check=False
    )
    assert p.returncode == 0, p.stderr
    table_path, unit_path, arm64, yaml_imported = p.stdout.split()
    assert table_path == str(site / "binfmtctl" / "data" / "magic_table.yaml")
    assert unit_path == str(site / "binfmtctl" / "data" / "binfmtctl.service")
    assert arm64 == "aarch64"
    assert yaml_imported == "False"  # the installed copy reads its compiled table


def test_console_script_is_the_lean_launcher(wheel: Path, tmp_path: Path) -> None:
    """`binfmtctl` is the wheel's own script, not a generated entry-point launcher (which
    imports re first): installed, its shebang names the environment's python and running it
    imports nothing beyond what `python -c pass` has, for --version."""
    zf = zipfile.ZipFile(wheel)
    (script,) = [n for n in zf.namelist() if n.endswith(".data/scripts/binfmtctl")]
    text = zf.read(script).decode()
    assert text.startswith("#!python\n")  # rewritten to the environment's python on install
    code_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert code_lines == ["from binfmtctl.fastpath import entry_point", "entry_point()"]
    meta = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert not any(
        "console_scripts" in zf.read(n).decode() for n in meta
    )  # no second bin/binfmtctl
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    p = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-deps", str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    exe = venv / "bin" / "binfmtctl"
    assert exe.read_text().splitlines()[0] == f"#!{venv / 'bin' / 'python'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    probe = (
        "import sys\n"
        "base = set(sys.modules)\n"
        f"sys.argv = [{str(exe)!r}, '--version']\n"
        "try:\n"
        "    exec(compile(open(sys.argv[0]).read(), sys.argv[0], 'exec'), {'__name__': '__main__'})\n"
        "except SystemExit as e:\n"
        "    print(sorted(m for m in set(sys.modules) - base if not m.startswith('binfmtctl')), e.code)\n"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, env=env,
        cwd="/", check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "binfmtctl, version" in out.stdout
    # __future__: fastpath's `from __future__ import annotations` (a few lines, no imports)
    assert out.stdout.splitlines()[-1] == "['__future__'] 0", out.stdout
