"""deploy/ansible: the role, run with ansible-playbook against localhost inside a private
binfmt_misc: check mode says what would change and changes nothing, the first run changes,
the second does not, the foreign probe runs; ansible-lint is clean.

binfmtctl's config goes to a scratch file (the role's binfmtctl_config), never the host's
/etc; packages are the host's (binfmtctl_manage_packages: false), since apt must not run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from binfmtctl import sandbox as sb
from tests.fleet.conftest import ROOT

pytestmark = [pytest.mark.fleet, pytest.mark.sandbox, pytest.mark.qemu]

ANSIBLE = ROOT / "deploy" / "ansible"
BIN = Path(sys.executable).parent


def _recap(out: str) -> dict[str, int]:
    m = re.search(r"localhost\s*:\s*(.*)", out.split("PLAY RECAP")[-1])
    assert m, out
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def test_role_check_then_changed_then_unchanged_and_the_probe_runs(
    sandbox: sb.Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "binfmt.d" / "zz-binfmtctl.conf"
    config.parent.mkdir(parents=True)
    (tmp_path / "ansible").mkdir()
    env = {
        "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible"),
        "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    extra = json.dumps(
        {
            "binfmtctl_manage_packages": False,
            "binfmtctl_command": f"{sys.executable} -m binfmtctl",
            "binfmtctl_config": str(config),
            "binfmtctl_targets": ["arm64", "riscv64"],
        }
    )

    def play(*flags: str) -> str:
        p = sandbox.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                extra,
                *flags,
                str(ANSIBLE / "playbook.yml"),
            ],
            env=env,
            cwd=str(tmp_path),
            timeout=300,
        )
        out = p.stdout.decode(errors="replace")
        assert p.returncode == 0, out[-4000:] + p.stderr.decode(errors="replace")[-2000:]
        return out

    def table() -> list[str]:
        out = sandbox.run(["ls", sb.DEFAULT_MOUNT]).stdout.decode().split()
        return sorted(n for n in out if n not in ("register", "status"))

    checked = play("--check")
    assert _recap(checked)["changed"] == 1, checked
    assert (
        "would register qemu-aarch64, qemu-riscv64; would add qemu-aarch64, qemu-riscv64 to the config"
        in checked
    )
    assert table() == [] and not config.exists()  # check mode wrote nothing

    first = play()
    assert _recap(first)["changed"] == 1, first
    assert "binfmtctl: register qemu-aarch64, qemu-riscv64; add qemu-aarch64, qemu-riscv64" in first
    assert table() == ["qemu-aarch64", "qemu-riscv64"]
    lines = [ln for ln in config.read_text().splitlines() if ln and not ln.startswith("#")]
    assert [ln.split(":")[1] for ln in lines] == ["qemu-aarch64", "qemu-riscv64"]

    second = play()
    assert _recap(second)["changed"] == 0, second
    assert "nothing to do" in second
    again = play("--check")
    assert _recap(again)["changed"] == 0, again

    probes = sandbox.run(
        [sys.executable, "-m", "binfmtctl", "test", "--json", "aarch64", "riscv64"],
        env={"PYTHONPATH": str(ROOT)},
    )
    results = json.loads(probes.stdout)["targets"]
    assert [(r["target"], r["ok"]) for r in results] == [("aarch64", True), ("riscv64", True)]


def test_a_bad_target_fails_the_play_with_binfmtctls_reason_and_changes_nothing(
    sandbox: sb.Sandbox, tmp_path: Path
) -> None:
    (tmp_path / "ansible").mkdir()
    p = sandbox.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps(
                {
                    "binfmtctl_manage_packages": False,
                    "binfmtctl_command": f"{sys.executable} -m binfmtctl",
                    "binfmtctl_config": str(tmp_path / "c.conf"),
                    "binfmtctl_targets": ["arm64", "not-an-arch"],
                }
            ),
            str(ANSIBLE / "playbook.yml"),
        ],
        env={
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PYTHONPATH": str(ROOT),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible"),
            "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        },
        cwd=str(tmp_path),
        timeout=300,
    )
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 2, out
    assert "binfmtctl failed (exit 2): Error: unknown target 'not-an-arch'" in out
    assert "fix: use a QEMU target name" in out
    assert sandbox.run(["ls", sb.DEFAULT_MOUNT]).stdout.split() == [b"register", b"status"]
    assert not (tmp_path / "c.conf").exists()


def test_ansible_lint_is_clean() -> None:
    p = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "deploy/ansible"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "NO_COLOR": "1"},
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 failure(s), 0 warning(s)" in p.stdout + p.stderr
