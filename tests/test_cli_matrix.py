"""Every read command, on a messy table, in text and in --json: an answer, never a crash.

One private binfmt_misc holds what real hosts hold: QEMU entries, a foreign WSLInterop-like
entry, a disabled entry, a magic written as bare hex, an entry whose interpreter is missing,
an extension entry. Each read command runs against it, on every kind of file, in both
output modes. Each must exit 0, 1 or 2, print no "internal error" and no traceback, and
with --json print JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from binfmtctl import probe, table
from binfmtctl.entry import render_register_str
from binfmtctl.sandbox import Sandbox
from tests import elfgen
from tests.conftest import register_raw, run_cli

pytestmark = pytest.mark.sandbox

FOREIGN = ":WSLInterop:M::MZ::/init:P"
BARE_HEX = ":hex:M::7f454c460201010000000000000000000200b700::/bin/true:"
EXTENSION = ":ext:E::xyz::/bin/cat:"
DISABLED = ":off:M::BMXoff::/bin/true:"


def messy_table(box: Sandbox, tmp: Path) -> list[str]:
    """Fill the sandbox's table; return every entry name."""
    for t in ("aarch64", "s390x"):
        e = table.get_target(t).entry(f"/usr/bin/qemu-{t}-static", "F")
        assert run_cli(box, "register", render_register_str(e)).returncode == 0
    missing = table.get_target("riscv64").entry(str(tmp / "gone" / "qemu-riscv64"), "")
    assert run_cli(box, "register", render_register_str(missing)).returncode == 0
    for line in (FOREIGN, BARE_HEX, EXTENSION, DISABLED):
        register_raw(box, line)
    assert run_cli(box, "disable", "off").returncode == 0
    return ["qemu-aarch64", "qemu-s390x", "qemu-riscv64", "WSLInterop", "hex", "ext", "off"]


def files(tmp: Path) -> list[str]:
    """Every kind of file ``which`` meets."""
    d = tmp / "files"
    d.mkdir()
    out = {
        "native": "/bin/ls",
        "foreign-arm64": str(probe.write_probe("aarch64", d)),
        "foreign-riscv64": str(probe.write_probe("riscv64", d)),
        "foreign-arm": str(probe.write_probe("arm", d)),
    }
    (d / "empty").write_bytes(b"")
    (d / "truncated").write_bytes(probe.build_probe("aarch64")[:10])
    (d / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (d / "crt1.o").write_bytes(elfgen.target_file(table.get_target("x86_64"), e_type=elfgen.ET_REL))
    (d / "doc.xyz").write_text("text for the extension entry\n")
    (d / "windows.exe").write_bytes(b"MZ\x90\x00" + bytes(60))
    (d / "hexmagic").write_bytes(b"7f454c460201010000000000000000000200b700")
    os.mkfifo(d / "fifo")
    (d / "dir").mkdir()
    for name in ("empty", "truncated", "script.sh", "crt1.o", "doc.xyz", "windows.exe"):
        out[name] = str(d / name)
    out["hexmagic"] = str(d / "hexmagic")
    out["fifo"] = str(d / "fifo")
    out["dir"] = str(d / "dir")
    out["missing"] = str(d / "no-such-file")
    return list(out.values())


def read_commands(names: list[str], paths: list[str], tmp: Path) -> list[list[str]]:
    image = tmp / "image"
    image.mkdir()
    scan_dir = str(Path(paths[1]).parent)
    cmds: list[list[str]] = [
        ["status"],
        ["status", *names],
        ["status", "qemu-aarch64", "no-such-entry"],
        ["which", *paths],
        *[["which", p] for p in paths],
        ["scan", scan_dir],
        ["scan", scan_dir, "/bin/ls"],
        ["test"],
        ["test", "arm64", "riscv64", "s390x"],
        ["test", "arm65"],
        ["doctor", "--root", str(image)],
        ["doctor", "--root", str(image), "--kernel", "4.4"],
        ["persist", "status", "--root", str(image)],
        ["show", "register"],
        ["show", "status"],
        ["show", "no-such-entry"],
        *[["show", n] for n in names],
    ]
    return cmds


def check(box: Sandbox, args: list[str], as_json: bool) -> list[str]:
    """What is wrong with one run (nothing: an empty list)."""
    argv = [*args, "--json"] if as_json else args
    p = run_cli(box, *argv)
    what = " ".join(argv)
    bad = []
    if p.returncode not in (0, 1, 2):
        bad.append(f"{what}: exit {p.returncode}")
    out = p.stdout + p.stderr
    if "internal error" in out or "Traceback" in out:
        bad.append(f"{what}: {out.strip().splitlines()[-1]}")
    if not out.strip():
        bad.append(f"{what}: said nothing")
    if as_json and (p.stdout.strip() or p.returncode == 0):
        try:
            json.loads(p.stdout)
        except ValueError as e:
            bad.append(f"{what}: stdout is not JSON ({e}): {p.stdout[:200]!r}")
    if p.returncode == 2 and "Error" not in p.stderr:
        bad.append(f"{what}: exit 2 without a one-line error")
    return bad


def test_every_read_command_answers_on_a_messy_table(sandbox: Sandbox, tmp_path: Path) -> None:
    names = messy_table(sandbox, tmp_path)
    st = json.loads(run_cli(sandbox, "status", "--json").stdout)
    assert sorted(e["name"] for e in st["entries"]) == sorted(names)  # the mess is live
    paths = files(tmp_path)
    problems: list[str] = []
    for args in read_commands(names, paths, tmp_path):
        for as_json in (False, True):
            problems += check(sandbox, args, as_json)
    for fmt in ("binfmt.d", "update-binfmts", "json"):
        for extra in ([], ["--all"], ["hex", "ext"]):
            problems += check(sandbox, ["export", "--format", fmt, *extra], False)
    p = run_cli(sandbox, "export", "--format", "json", "--all")
    assert p.returncode == 0 and {e["name"] for e in json.loads(p.stdout)["entries"]} >= set(
        names
    ), p.stdout[:300]
    assert problems == [], "\n".join(problems)


def test_the_matrix_answers_are_truthful(sandbox: Sandbox, tmp_path: Path) -> None:
    """Spot checks that the messy table's answers are right, not only well-formed."""
    messy_table(sandbox, tmp_path)
    paths = files(tmp_path)
    by_path = {r["path"]: r for r in json.loads(run_cli(sandbox, "which", "--json", *paths).stdout)}
    assert by_path[paths[1]]["handler"]["name"] == "qemu-aarch64"
    assert by_path[paths[2]]["exec_fails"]["errno"] == "ENOENT"  # riscv64: no F, no interpreter
    assert by_path[paths[3]]["handler"] is None  # arm: nothing registered for it
    health = {
        e["name"]: e["health"]
        for e in json.loads(run_cli(sandbox, "status", "--json").stdout)["entries"]
    }
    assert health["hex"] == "magic-bare-hex"
    assert health["qemu-riscv64"] == "interpreter-missing"
    assert health["off"] == "disabled"
    scan = json.loads(run_cli(sandbox, "scan", "--json", str(Path(paths[1]).parent)).stdout)
    assert scan["not_executable"] == {"ET_REL": 1}
    # the riscv64 probe has a handler, but its exec fails (no F, interpreter missing)
    assert paths[2] in scan["unrunnable_examples"] and paths[1] not in scan["unrunnable_examples"]
    assert any(n.startswith("qemu-riscv64 takes 1 file here, but") for n in scan["notes"])
