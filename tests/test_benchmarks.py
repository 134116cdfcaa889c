"""benchmarks/run.py: the parts that decide what is published (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = load_bench()


def best(wall_ms: float, cpu_ms: float) -> Any:
    b = bench.Best()
    b.add((wall_ms / 1000, cpu_ms / 1000, 0))
    return b


def result(bare: float, refs: list[float], bare_wall: float | None = None) -> dict[str, Any]:
    rows = [
        bench.row(f"r{i}", best(30, 20), best(r, r), "python -c pass", goal=2.0)
        for i, r in enumerate(refs)
    ]
    return {
        "bare_best_cpu_ms": bare,
        "bare_best_wall_ms": bare_wall or bare * 1.1,
        "worst_reference_cpu_ms": max(refs),
        "rows": rows,
    }


def test_a_sane_run_passes_the_gate() -> None:
    bench.check_sane(result(10.0, [10.0, 11.0, 29.0]), 40.0)


def test_a_slow_bare_start_is_refused() -> None:
    with pytest.raises(bench.Refused, match=r"above the 40\.0 ms ceiling"):
        bench.check_sane(result(44.0, [44.0, 62.0]), 40.0)


def test_a_run_on_an_oversubscribed_machine_is_refused() -> None:
    with pytest.raises(bench.Refused, match="wait for a CPU"):
        bench.check_sane(result(11.2, [11.2, 12.5], bare_wall=31.9), 40.0)


def test_a_reference_that_drifted_is_refused() -> None:
    with pytest.raises(bench.Refused, match="more than 3x"):
        bench.check_sane(result(10.0, [10.0, 31.0]), 40.0)


def test_goals_are_judged_on_cpu_and_speed_rows_invert() -> None:
    r = bench.row("x", best(50, 19), best(10, 10), "python -c pass", goal=2.0)
    assert r["met"] is True and r["ratio"] == {"wall": 5.0, "cpu": 1.9}
    r = bench.row("x", best(50, 21), best(10, 10), "python -c pass", goal=2.0)
    assert r["met"] is False
    s = bench.row("scan", best(100, 100), best(90, 80), "raw", goal=0.85, kind="speed")
    assert s["ratio"] == {"wall": 0.9, "cpu": 0.8} and s["met"] is False


def test_the_readme_block_is_rewritten_and_nothing_else(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before, after = "# t\n\nintro\n\n", "\n\nmore text\n"
    readme.write_text(f"{before}{bench.BEGIN}\nold table\n{bench.END}{after}")
    bench.update_readme("| new |", readme)
    assert readme.read_text() == f"{before}{bench.BEGIN}\n| new |\n{bench.END}{after}"
    readme.write_text("no markers\n")
    with pytest.raises(bench.Refused, match="no <!-- benchmarks:begin"):
        bench.update_readme("| new |", readme)
    assert readme.read_text() == "no markers\n"


def test_the_readme_table_is_the_one_generated_from_results_json() -> None:
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    text = (ROOT / "README.md").read_text()
    block = text[text.index(bench.BEGIN) + len(bench.BEGIN) : text.index(bench.END)]
    assert block.strip() == bench.render(results).strip(), "rerun python benchmarks/run.py"
    for r in results["rows"]:  # every row carries its reference's own figure
        assert "rss_kib" in r or {"wall_ms", "cpu_ms", "name"} <= set(r["reference"])
