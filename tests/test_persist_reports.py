"""The persist package's reports: message and fix kept apart, a pure triage of apply's
actions, and the JSON of ``persist status`` unchanged in keys and order."""

from __future__ import annotations

import json
import os
from pathlib import Path

from binfmtctl import persist
from binfmtctl.entry import parse_register
from binfmtctl.errors import BinfmtctlError
from binfmtctl.persist.apply import Blocked, triage
from tests.test_persist import AARCH64, HOST, host_cli

ARM = ":qemu-arm:M::\\x7fELF\\x01\\x01\\x01::/usr/bin/qemu-arm-static:F"


def test_an_error_keeps_its_cause_apart_from_its_fix() -> None:
    e = BinfmtctlError("cannot read /x", fix="chmod 0644 /x")
    assert (e.summary, e.fix) == ("cannot read /x", "chmod 0644 /x")
    assert e.format_message() == "cannot read /x\n  fix: chmod 0644 /x"  # what the CLI prints


def test_status_of_an_unreadable_config_names_the_fix_once(tmp_path: Path) -> None:
    """A FIFO config is refused as not a regular file: the problem's message says why,
    its fix says what to do, and the fix is not glued into the message a second time."""
    root = tmp_path / "image"
    cfg = root / "etc/binfmt.d/zz-binfmtctl.conf"
    cfg.parent.mkdir(parents=True)
    os.mkfifo(cfg)
    p = host_cli("persist", "status", "--root", str(root), "--json")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert list(doc) == [
        "root",
        "config",
        "unit",
        "enabled",
        "systemd_running",
        "systemctl",
        "live",
        "problems",
        "notes",
        "ok",
    ]
    first = doc["problems"][0]
    assert first["message"].startswith(f"cannot read {cfg}: "), first
    assert "fix:" not in first["message"], first
    assert first["fix"].startswith("replace it with a regular file"), first
    text = host_cli("persist", "status", "--root", str(root))
    assert text.stdout.count(first["fix"]) == 1, text.stdout


def test_triage_sorts_actions_without_writing() -> None:
    aarch64, arm = parse_register(AARCH64.encode(), HOST), parse_register(ARM.encode(), HOST)
    old_arm = parse_register(ARM.replace(":F", ":").encode(), HOST)
    actions = persist.plan_apply([aarch64, arm], [old_arm])
    assert [a.kind for a in actions] == ["add", "replace"]
    blocked = {"qemu-arm": Blocked("interpreter gone", "install it")}
    items, todo = triage(actions, blocked, {"qemu-aarch64": ["careful"]}, plan_only=False)
    assert [(i.name, i.ok, i.done) for i in items] == [("qemu-arm", False, False)]
    assert items[0].message == "interpreter gone (the live entry was left as it is)"
    assert items[0].fix == "install it"
    assert [(a.entry.name, w) for a, w in todo] == [("qemu-aarch64", ("careful",))]
    planned, none = triage(actions, {}, {}, plan_only=True)
    assert none == [] and [(i.action, i.ok, i.done) for i in planned] == [
        ("add", True, False),
        ("replace", True, False),
    ]
