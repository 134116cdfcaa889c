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


def test_scan_counts_objects_core_dumps_and_archives_apart(tmp_path: Path) -> None:
    """Relocatable objects, core dumps and ar archives are not programs: they are counted
    apart, never as "other" architectures or as files nothing can run."""
    from binfmtctl import table
    from tests import elfgen

    tree = tmp_path / "tree"
    tree.mkdir()
    x86, arm64 = table.get_target("x86_64"), table.get_target("aarch64")
    (tree / "crt1.o").write_bytes(elfgen.target_file(x86, e_type=elfgen.ET_REL))
    (tree / "foreign.o").write_bytes(elfgen.target_file(arm64, e_type=elfgen.ET_REL))
    (tree / "core").write_bytes(elfgen.target_file(arm64, e_type=4))
    (tree / "libx.a").write_bytes(
        b"!<arch>\n/               0           0     0     0       4         `\n"
    )
    (tree / "hello-arm64").write_bytes(probe.build_probe("aarch64"))
    report, _ = scan(tree)
    assert report["files"] == 5
    assert report["not_executable"] == {"ET_REL": 2, "ET_CORE": 1, "archive": 1}
    assert report["by_arch"] == {"aarch64": 1}
    assert report["unrunnable"] == 1
    assert report["unrunnable_examples"] == [str(tree / "hello-arm64")]
    p = subprocess.run(
        [sys.executable, "-m", "binfmtctl", "--mount", str(tree), "scan", str(tree)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        "not executables: relocatable objects (ET_REL) 2, core dumps (ET_CORE) 1, ar archives 1"
        in p.stdout
    )
    assert "1 ELF file nothing here can run" in p.stdout, p.stdout
