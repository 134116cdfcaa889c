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
