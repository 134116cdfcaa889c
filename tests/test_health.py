"""``status`` health is doctor's per-entry verdict: one source of health, checked for real
in a private binfmt_misc with entries doctor rates differently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from binfmtctl import table
from binfmtctl.doctor import ENTRY_CHECKS, Finding
from binfmtctl.entry import render_register_str
from binfmtctl.health import health_of
from binfmtctl.sandbox import Sandbox
from tests.conftest import register_raw, run_cli

BARE_HEX = ":hex:M::7f454c460201010000000000000000000200b700::/bin/true:"


def test_health_is_the_most_severe_finding() -> None:
    info = Finding("overlap", "info", "x", "m", "f")
    warn = Finding("missing-f-flag", "warning", "x", "m", "f")
    err = Finding("magic-bare-hex", "error", "x", "m", "f")
    assert health_of([]) == "ok"
    assert health_of([info]) == "ok"
    assert health_of([info, warn, err]) == "magic-bare-hex"
    assert health_of([Finding("entry-disabled", "warning", "x", "m", "f")]) == "disabled"
    # one name for a pinned interpreter gone from disk: doctor's code, in status too
    gone = Finding("interpreter-gone-pinned", "warning", "x", "m", "f")
    assert health_of([gone]) == "interpreter-gone-pinned"
    assert ENTRY_CHECKS  # status runs exactly these


@pytest.mark.sandbox
def test_status_health_agrees_with_doctor(sandbox: Sandbox, tmp_path: Path) -> None:
    arm64 = table.get_target("aarch64").entry("/usr/bin/qemu-aarch64-static", "F")
    assert run_cli(sandbox, "register", render_register_str(arm64)).returncode == 0
    register_raw(sandbox, BARE_HEX)  # written without \x: registers, matches nothing meant
    register_raw(sandbox, f":gone:E::gone::{tmp_path}/missing-interpreter:")
    register_raw(sandbox, ":off:E::off::/bin/true:")
    assert run_cli(sandbox, "disable", "off").returncode == 0
    st = json.loads(run_cli(sandbox, "status", "--json").stdout)
    health = {e["name"]: e["health"] for e in st["entries"]}
    assert health == {
        "qemu-aarch64": "ok",
        "hex": "magic-bare-hex",
        "gone": "interpreter-missing",
        "off": "disabled",
    }
    doc = json.loads(run_cli(sandbox, "doctor", "--json", "--root", str(tmp_path)).stdout)
    for e in st["entries"]:
        mine = {(f["code"], f["fix"]) for f in e["findings"]}
        theirs = {
            (f["code"], f["fix"])
            for f in doc["findings"]
            if f["entry"] == e["name"] and f["severity"] != "info"
        }
        assert mine <= theirs, (e["name"], mine, theirs)  # the same findings, the same fixes
    text = run_cli(sandbox, "status").stdout
    hex_line = next(line for line in text.splitlines() if " hex " in line)
    assert hex_line.rstrip().endswith("magic-bare-hex")
    p = run_cli(sandbox, "show", "hex")
    assert "error magic-bare-hex:" in p.stdout and "health magic-bare-hex" in p.stdout
