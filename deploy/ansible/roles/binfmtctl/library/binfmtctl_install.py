#!/usr/bin/python
"""Ansible module: QEMU binfmt_misc entries via `binfmtctl install --json`, idempotent."""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: binfmtctl_install
short_description: Register QEMU user-mode emulation with binfmtctl, and keep it across reboot
description:
  - Runs C(binfmtctl install --json TARGETS) (with C(--persist) unless I(persist=false)) and
    reports C(changed) from binfmtctl's own account of what it wrote (kernel entries
    registered or replaced, config lines added or replaced). A second run changes nothing.
  - In check mode runs C(binfmtctl install --dry-run --json) and says what would change.
options:
  targets:
    description: QEMU targets or aliases (arm64, linux/arm/v7, riscv64...), or C(all).
    type: list
    elements: str
    required: true
  persist:
    description: Also add the entries to binfmtctl's config, registered again at boot.
    type: bool
    default: true
  config:
    description: binfmtctl's config file (default /etc/binfmt.d/zz-binfmtctl.conf).
    type: str
  command:
    description: How to run binfmtctl (a command line).
    type: str
    default: binfmtctl
"""

RETURN = r"""
registered: {description: entries registered or replaced in the kernel (would be, in check mode), type: list}
config_changed: {description: entries added to or replaced in the config, type: list}
binfmtctl: {description: binfmtctl's JSON output, type: dict}
"""


def config_lines(path: str) -> set[str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return {line.strip() for line in f}
    except FileNotFoundError:
        return set()


def summarize(result: dict[str, Any], check: bool, config_text: set[str]) -> dict[str, Any]:
    """changed / registered / config_changed / msg from binfmtctl's install JSON."""
    targets = result.get("targets") or []
    registered = [t["entry"] for t in targets if t.get("action") in ("add", "replace")]
    persisted = result.get("persisted") or {}
    if check:
        config_changed = [
            t["entry"] for t in targets if t.get("register") and t["register"] not in config_text
        ]
    else:
        config_changed = list(persisted.get("added", [])) + list(persisted.get("replaced", []))
    would = "would " if check else ""
    parts = []
    if registered:
        parts.append(f"{would}register {', '.join(registered)}")
    if config_changed:
        parts.append(f"{would}add {', '.join(config_changed)} to the config")
    return {
        "changed": bool(registered or config_changed),
        "registered": registered,
        "config_changed": config_changed,
        "msg": "; ".join(parts)
        if parts
        else "nothing to do: every target is installed as requested",
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "targets": {"type": "list", "elements": "str", "required": True},
            "persist": {"type": "bool", "default": True},
            "config": {"type": "str"},
            "command": {"type": "str", "default": "binfmtctl"},
        },
        supports_check_mode=True,
    )
    p = module.params
    argv = [*shlex.split(p["command"]), "install", "--json"]
    if module.check_mode:
        argv.append("--dry-run")
    elif p["persist"]:
        argv.append("--persist")
    if p["config"]:
        argv += ["--config", p["config"]]
    argv += p["targets"]
    rc, out, err = module.run_command(argv)
    try:
        result = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"binfmtctl failed (exit {rc}): {err.strip()}", rc=rc, cmd=argv)
    config = p["config"] or os.environ.get("BINFMTCTL_CONFIG") or "/etc/binfmt.d/zz-binfmtctl.conf"
    summary = summarize(result, module.check_mode, config_lines(config) if p["persist"] else set())
    if rc != 0 or not result.get("ok", False):
        failed = [
            f"{t['target']}: {t['error']}" for t in result.get("targets", []) if t.get("error")
        ]
        failed += [
            f"{t['target']}: test failed: {t.get('error')}"
            for t in ((result.get("test") or {}).get("targets") or [])
            if not t.get("ok")
        ]
        failed += [
            f"{s['name']}: {s['reason']}" for s in result.get("skipped", []) if s.get("refused")
        ]
        module.fail_json(
            msg="binfmtctl install failed: " + ("; ".join(failed) or err.strip()),
            rc=rc,
            cmd=argv,
            binfmtctl=result,
            **{k: v for k, v in summary.items() if k != "msg"},
        )
    module.exit_json(binfmtctl=result, cmd=argv, **summary)


if __name__ == "__main__":
    main()
