"""`scan` streams: peak memory does not grow with the tree (speed is a benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from binfmtctl import probe

RSS_PROBE = (
    "import resource, subprocess, sys; "
    "p = subprocess.run(sys.argv[1:], capture_output=True); "
    "sys.stdout.write(p.stdout.decode()); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
)


def make_tree(root: Path, n: int) -> None:
    elf = probe.build_probe("aarch64")
    for i in range(n):
        d = root / f"d{i // 500}"
        if i % 500 == 0:
            d.mkdir(parents=True)
        (d / f"f{i}").write_bytes(elf if i % 10 == 0 else b"text file\n")


def scan(root: Path) -> tuple[dict[str, object], int]:
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            RSS_PROBE,
            sys.executable,
            "-m",
            "binfmtctl",
            "--mount",
            str(root),
            "scan",
            "--json",
            str(root),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(p.stdout), int(p.stderr.strip().splitlines()[-1])


def test_scan_counts_and_memory_is_flat(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    make_tree(small, 5_000)
    make_tree(big, 20_000)
    r_small, rss_small = scan(small)
    r_big, rss_big = scan(big)
    assert r_small["files"] == 5_000 and r_big["files"] == 20_000
    assert r_big["by_arch"] == {"aarch64": 2_000}
    assert r_big["unrunnable"] == 2_000  # nothing is mounted at that path: no handler
    assert len(r_big["unrunnable_examples"]) == 20  # type: ignore[arg-type]
    # 4x the files, no more than 8 MiB more peak RSS (ru_maxrss is in KiB)
    assert rss_big - rss_small < 8 * 1024, (rss_small, rss_big)
