"""A kill -9 at every kernel write k of install, uninstall, apply and persist add,
then one rerun: the table is the desired one, the records are exactly the live entries
binfmtctl owns, and no temporary file is left (issue 13, item 4).

The process kills itself right before or right after its k-th write to binfmt_misc
(``BINFMTCTL_TEST_KILL_AFTER_WRITES=before:k`` or ``k``, read only at the one kernel
write function), so both states between two writes are hit: an intent recorded whose
entry never reached the kernel, and an entry live whose intent was never confirmed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from binfmtctl.entry import kernel_view, parse_entry_file
from binfmtctl.record import replace
from binfmtctl.sandbox import Sandbox
from tests.conftest import register_raw, run_cli, snapshot

TARGETS = ("aarch64", "riscv64", "s390x")
QEMU = tuple(f"qemu-{t}" for t in TARGETS)
#: another tool's entry: never claimed, never removed
FOREIGN = ":other:E::zzq::/bin/true:"
CONF_LINES = (
    ":c1:M::\\x7fBMA::/bin/true:",
    ":c2:M::\\x7fBMB::/bin/true:",
    ":c3:E::zza::/bin/true:",
)
KILLED = (-signal.SIGKILL, 128 + signal.SIGKILL)


def live_views(box: Sandbox) -> dict[str, str]:
    return {
        name: kernel_view(replace(parse_entry_file(name, text.encode()), enabled=True))
        for name, text in snapshot(box)
    }


def records(box: Sandbox) -> dict[str, object]:
    files = list(Path(box.state_dir).glob("owned-*.json"))
    assert len(files) == 1, list(Path(box.state_dir).iterdir())
    data = json.loads(files[0].read_text())
    assert isinstance(data, dict)
    return data


def assert_consistent(box: Sandbox, owned_names: set[str]) -> None:
    live = live_views(box)
    rec = records(box)
    assert rec["entries"] == {n: live[n] for n in owned_names}
    assert not rec.get("pending")
    leftovers = [p.name for p in Path(box.state_dir).iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert (os.stat(box.state_dir).st_mode & 0o777) == 0o700


def kill_at(box: Sandbox, k: str, *args: str) -> None:
    p = run_cli(box, *args, env={"BINFMTCTL_TEST_KILL_AFTER_WRITES": k})
    assert p.returncode in KILLED, (k, p.returncode, p.stderr)


def points(n: int) -> list[tuple[str, int]]:
    """Every kill point of a run with n kernel writes: (hook value, writes that happened)."""
    return [(f"before:{k}", k - 1) for k in range(1, n + 1)] + [
        (str(k), k) for k in range(1, n + 1)
    ]


def test_install_killed_at_every_write_then_rerun_owns_all() -> None:
    for k, written in points(len(TARGETS)):
        with Sandbox() as box:
            register_raw(box, FOREIGN)
            kill_at(box, k, "install", "--no-test", *TARGETS)
            assert len(snapshot(box)) == 1 + written
            p = run_cli(box, "install", "--no-test", *TARGETS)
            assert p.returncode == 0, p.stderr
            assert {n for n, _ in snapshot(box)} == {"other", *QEMU}
            assert_consistent(box, set(QEMU))
            # what the killed run registered is binfmtctl's: uninstall all removes it all
            p = run_cli(box, "uninstall", "all")
            assert p.returncode == 0, p.stderr
            assert [n for n, _ in snapshot(box)] == ["other"], k
            assert_consistent(box, set())


def test_uninstall_killed_at_every_write_then_rerun_removes_the_rest() -> None:
    for k, written in points(len(TARGETS)):
        with Sandbox() as box:
            register_raw(box, FOREIGN)
            assert run_cli(box, "install", "--no-test", *TARGETS).returncode == 0
            kill_at(box, k, "uninstall", "all")
            assert len(snapshot(box)) == 1 + len(TARGETS) - written
            p = run_cli(box, "uninstall", "all")
            assert p.returncode == 0, p.stderr
            assert [n for n, _ in snapshot(box)] == ["other"]
            assert_consistent(box, set())


def test_apply_killed_at_every_write_then_rerun_matches_the_config(tmp_path: Path) -> None:
    conf = tmp_path / "zz-binfmtctl.conf"
    conf.write_text("".join(line + "\n" for line in CONF_LINES))
    os.chmod(tmp_path, 0o755)
    for k, _ in points(len(CONF_LINES)):
        with Sandbox() as box:
            register_raw(box, FOREIGN)
            kill_at(box, k, "apply", "--config", str(conf))
            p = run_cli(box, "apply", "--config", str(conf))
            assert p.returncode == 0, p.stderr
            assert {n for n, _ in snapshot(box)} == {"other", "c1", "c2", "c3"}
            assert_consistent(box, {"c1", "c2", "c3"})


def test_persist_add_killed_at_every_write_then_rerun(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    for k, _ in points(len(CONF_LINES)):
        conf = tmp_path / f"k{k.replace(':', '-')}.conf"
        with Sandbox() as box:
            register_raw(box, FOREIGN)
            args = ("persist", "add", "--apply", "--config", str(conf), *CONF_LINES)
            kill_at(box, k, *args)
            p = run_cli(box, *args)
            assert p.returncode == 0, p.stderr
            assert {n for n, _ in snapshot(box)} == {"other", "c1", "c2", "c3"}
            assert_consistent(box, {"c1", "c2", "c3"})
            assert len(conf.read_text().splitlines()) >= len(CONF_LINES)
            assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
