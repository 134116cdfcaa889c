"""binfmtctl benchmarks: every number is a ratio against a reference run side by side.

    python benchmarks/run.py [--reps N] [--json PATH] [--tree DIR]

Rows (median of --reps repetitions, reference and subject interleaved; times are
CPU seconds, user + system, of the measured process and its children):

1. start-up: ``binfmtctl --version``, ``status --json`` and ``validate`` of one
   entry, each against a bare ``python -c pass`` of the same interpreter
   (goal: at most 2x);
2. boot-time apply: ``binfmtctl apply`` of the full QEMU set into an empty
   private binfmt_misc, against the real ``systemd-binfmt`` loading the same
   entries from a binfmt.d file in the same sandbox, and against the bare
   interpreter (goal: at most 2x the bare interpreter);
3. scan: ``binfmtctl scan`` over a tree of >= 20,000 files against
   ``file -b`` over the same files (goal: >= 50x the files per second), and
   peak RSS at 5,000 and 20,000 files (goal: flat);
4. validate throughput: register strings per second through
   ``validate --json -`` on 10,000 fuzzed lines.

Everything that registers runs inside a private user-namespace binfmt_misc;
the host's table is never touched. The whole run is re-executed inside one
sandbox (``--inner``), so every subject and reference pays the same costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = [PY, "-m", "binfmtctl"]
MNT = "/proc/sys/fs/binfmt_misc"


def timed(
    argv: Sequence[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> float:
    """CPU seconds (user + system) the command used. CPU time, not wall time: on a
    small shared machine wall time swings with neighbours, CPU time hardly does."""
    p = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    if stdin is not None:
        assert p.stdin is not None
        p.stdin.write(stdin)
        p.stdin.close()
    _, _, usage = os.wait4(p.pid, 0)
    p.returncode = 0  # reaped by wait4
    return usage.ru_utime + usage.ru_stime


def median_pair(
    reps: int,
    subject: Callable[[], float],
    reference: Callable[[], float],
    setup: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """Interleave subject and reference so drift hits both alike."""
    s, r = [], []
    for _ in range(reps):
        if setup:
            setup()
        s.append(subject())
        if setup:
            setup()
        r.append(reference())
    return statistics.median(s), statistics.median(r)


def row(
    name: str, subject: float, reference: float, ref_name: str, goal: str, ok: bool, unit: str = "s"
) -> dict[str, object]:
    return {
        "name": name,
        "subject": round(subject, 5),
        "reference": round(reference, 5),
        "reference_name": ref_name,
        "ratio": round(subject / reference, 3) if reference else None,
        "unit": unit,
        "goal": goal,
        "met": ok,
    }


# -- 1. start-up ------------------------------------------------------------------------------
def bench_startup(reps: int) -> list[dict[str, object]]:
    bare = lambda: timed([PY, "-c", "pass"])  # noqa: E731
    out = []
    for label, args in [
        ("--version", ["--version"]),
        ("status --json", ["status", "--json"]),
        ("validate (one entry)", ["validate", ":t:M::\\x7fELF\\x02\\x01::/bin/true:"]),
    ]:
        s, r = median_pair(reps, lambda a=args: timed([*BIN, *a]), bare)  # type: ignore[misc]
        out.append(row(f"start-up: binfmtctl {label}", s, r, "python -c pass", "<= 2x", s <= 2 * r))
    return out


# -- 2. boot-time apply ---------------------------------------------------------------------------
def clear_table() -> None:
    for name in os.listdir(MNT):
        if name not in ("register", "status"):
            with open(os.path.join(MNT, name), "w") as f:
                f.write("-1")


def full_qemu_config(directory: Path) -> Path:
    """Every foreign QEMU target with Debian's static interpreter, as binfmtctl's config
    (the host's own family is left out, as install does: apply would refuse it)."""
    sys.path.insert(0, str(ROOT))
    from binfmtctl import table
    from binfmtctl.entry import render_binfmt_d

    entries = [
        t.entry(f"/usr/bin/{t.interpreter}-static", "F")
        for t in table.foreign_targets()
        if os.path.exists(f"/usr/bin/{t.interpreter}-static")
    ]
    path = directory / "qemu-all.conf"
    path.write_bytes(render_binfmt_d(entries))
    return path


def bench_apply(reps: int, work: Path) -> list[dict[str, object]]:
    conf = full_qemu_config(work)
    n = sum(1 for line in conf.read_text().splitlines() if line and not line.startswith("#"))
    have_apply = (
        subprocess.run([*BIN, "apply", "--help"], capture_output=True, check=False).returncode == 0
    )
    sd_binfmt = next(
        (
            p
            for p in ("/lib/systemd/systemd-binfmt", "/usr/lib/systemd/systemd-binfmt")
            if os.path.exists(p)
        ),
        None,
    )
    if not have_apply:
        return [
            {
                "name": "boot-time apply",
                "skipped": "binfmtctl apply is not available in this version",
            }
        ]
    env = dict(os.environ, BINFMTCTL_CONFIG=str(conf), BINFMTCTL_STATE_DIR=str(work / "state"))
    apply_ = lambda: timed([*BIN, "apply"], env=env)  # noqa: E731
    out = []
    s, r = median_pair(reps, apply_, lambda: timed([PY, "-c", "pass"]), setup=clear_table)
    out.append(row(f"boot-time apply of {n} entries", s, r, "python -c pass", "<= 2x", s <= 2 * r))
    if sd_binfmt:
        s2, r2 = median_pair(reps, apply_, lambda: timed([sd_binfmt, str(conf)]), setup=clear_table)
        out.append(
            row(
                f"boot-time apply of {n} entries",
                s2,
                r2,
                "systemd-binfmt FILE",
                "(comparison)",
                True,
            )
        )
    clear_table()
    return out


# -- 3. scan ----------------------------------------------------------------------------------------
def list_files(tree: str, limit: int) -> list[str]:
    files = []
    for dirpath, _dirs, names in os.walk(tree):
        for nm in names:
            p = os.path.join(dirpath, nm)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
                if len(files) >= limit:
                    return files
    return files


def link_tree(files: Sequence[str], dest: Path) -> Path:
    """The same files laid out as one tree (hard links where possible, else copies of
    their first 4 KiB), so scan and `file` read exactly the same set."""
    dest.mkdir(parents=True)
    for i, f in enumerate(files):
        d = dest / f"d{i // 1000}"
        if i % 1000 == 0:
            d.mkdir()
        target = d / f"f{i}"
        try:
            os.link(f, target)
        except OSError:
            with open(f, "rb") as src:
                target.write_bytes(src.read(4096))
    return dest


def peak_rss_kib(argv: Sequence[str]) -> int:
    code = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    p = subprocess.run([PY, "-c", code, *argv], capture_output=True, text=True, check=True)
    return int(p.stdout.strip())


def bench_scan(reps: int, work: Path, tree: str) -> list[dict[str, object]]:
    files = list_files(tree, 20_000)
    if len(files) < 20_000:
        return [{"name": "scan", "skipped": f"{tree} has only {len(files)} files; need 20,000"}]
    big = link_tree(files, work / "tree20k")
    small = link_tree(files[:5_000], work / "tree5k")
    listing = work / "files.txt"
    listing.write_text("\n".join(str(p) for p in sorted(big.rglob("f*"))) + "\n")
    scan = lambda: timed([*BIN, "scan", "--json", str(big)])  # noqa: E731
    file_ = lambda: timed(["file", "-b", "-f", str(listing)])  # noqa: E731
    scan(), file_()  # warm the page cache for both: only the first reader would pay for the disk
    s, r = median_pair(max(1, reps // 2), scan, file_)
    rate_s, rate_r = len(files) / s, len(files) / r
    out = [
        row(
            "scan: files per second (20,000 files)",
            rate_s,
            rate_r,
            "file -b",
            ">= 50x",
            rate_s >= 50 * rate_r,
            unit="files/s",
        )
    ]
    rss5 = peak_rss_kib([*BIN, "scan", "--json", str(small)])
    rss20 = peak_rss_kib([*BIN, "scan", "--json", str(big)])
    out.append(
        row(
            "scan: peak RSS KiB at 20,000 vs 5,000 files",
            rss20,
            rss5,
            "scan of 5,000 files",
            "flat (<= 1.1x)",
            rss20 <= 1.1 * rss5,
            unit="KiB",
        )
    )
    return out


# -- 4. validate throughput --------------------------------------------------------------------------
def fuzz_lines(n: int, seed: int = 7) -> bytes:
    rnd = random.Random(seed)
    parts = [b"\\x7f", b"ELF", b"\\x02", b"\\x01", b"\\xff", b"\\x00", b"A", b"\\x7g", b"\\"]
    lines = []
    for _ in range(n):
        magic = b"".join(rnd.choice(parts) for _ in range(rnd.randint(1, 20)))
        mask = b"" if rnd.random() < 0.5 else b"\\xff" * rnd.randint(1, 20)
        flags = rnd.choice([b"", b"F", b"POC", b"X", b"OCF"])
        offset = rnd.choice([b"", b"0", b"-1", b"300", b"+4"])
        lines.append(
            b":n%d:M:%s:%s:%s:/bin/true:%s" % (rnd.randint(0, 99), offset, magic, mask, flags)
        )
    return b"\n".join(lines) + b"\n"


def bench_validate(reps: int) -> list[dict[str, object]]:
    data = fuzz_lines(10_000)
    s, r = median_pair(
        max(1, reps // 2),
        lambda: timed([*BIN, "validate", "--json", "-f", "-"], stdin=data),
        lambda: timed([PY, "-c", "pass"]),
    )
    rate = 10_000 / s
    return [
        row(
            "validate --json -: register strings per second (10,000 fuzzed lines)",
            rate,
            10_000 / r if r else 0,
            "lines/s if it cost one bare start",
            "(throughput)",
            True,
            unit="lines/s",
        )
    ]


# -- driver ------------------------------------------------------------------------------------------
def machine() -> dict[str, object]:
    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def inner(args: argparse.Namespace) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="binfmtctl-bench-") as tmp:
        work = Path(tmp)
        rows = bench_startup(args.reps)
        rows += bench_apply(args.reps, work)
        rows += bench_scan(args.reps, work, args.tree)
        rows += bench_validate(args.reps)
    return rows


def render(rows: Sequence[dict[str, object]], info: dict[str, object]) -> str:
    lines = [
        f"machine: {info}",
        "",
        "| benchmark | binfmtctl | reference | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['name']} | skipped: {r['skipped']} | | | | |")
            continue
        lines.append(
            f"| {r['name']} | {r['subject']} {r['unit']} | {r['reference']} {r['unit']} ({r['reference_name']}) | {r['ratio']}x | {r['goal']} | {'yes' if r['met'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    ap.add_argument("--tree", default="/usr/lib")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    if args.inner:
        rows = inner(args)
        print(json.dumps(rows))
        return
    if shutil.which("unshare") is None:
        sys.exit("benchmarks need unshare (util-linux) for a private binfmt_misc")
    script = f'mount -t binfmt_misc binfmt_misc {MNT} && exec "$@"'
    argv = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        PY,
        __file__,
        "--inner",
        "--reps",
        str(args.reps),
        "--tree",
        args.tree,
    ]
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.exit(f"benchmark run failed:\n{p.stderr}")
    rows = json.loads(p.stdout.strip().splitlines()[-1])
    info = machine()
    Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    print(render(rows, info))
    print(f"\nJSON written to {args.json}")


if __name__ == "__main__":
    main()
