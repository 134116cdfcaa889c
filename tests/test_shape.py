"""The architecture's limits (ARCHITECTURE.md), measured by benchmarks/shape.py's ast walk."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("shape", ROOT / "benchmarks" / "shape.py")
assert _spec is not None and _spec.loader is not None
shape = importlib.util.module_from_spec(_spec)
sys.modules["shape"] = shape
_spec.loader.exec_module(shape)

S = shape.measure(ROOT / "binfmtctl")


def test_no_module_over_800_lines() -> None:
    assert {m: n for m, n in S.modules.items() if n > 800} == {}


def test_no_import_cycle() -> None:
    assert S.cycles == []


def test_click_commands_are_adapters() -> None:
    assert S.commands, "the walk found no click command"
    assert [c for c in S.commands if c[0] > 25] == []


def test_only_the_cli_imports_click_and_only_proc_starts_processes() -> None:
    assert all(m.startswith("binfmtctl.cli") or m == "binfmtctl.manpages" for m in S.imports_click)
    assert set(S.imports_subprocess) <= {"binfmtctl.proc", "binfmtctl.sandbox"}


def test_the_walk_sees_a_cycle_and_a_long_command(tmp_path: Path) -> None:
    """The measure itself can fail: a planted cycle and a 30-line command are found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text(
        "import click\nfrom pkg import a\n\n@click.command()\ndef cmd():\n"
        + "".join(f"    x{i} = {i}\n" for i in range(30))
    )
    s = shape.measure(pkg)
    assert s.cycles == [["pkg.a", "pkg.b"]]
    assert s.commands[0][0] == 30 and s.imports_click == ["pkg.b"]
