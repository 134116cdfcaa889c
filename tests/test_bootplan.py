"""The boot plan (binfmtctl.bootplan): the boot-path ``apply`` replays the last full run
only while every fact that run was decided from still holds, and then does and prints
exactly what the full run does.

Each "boot" is a fresh private binfmt_misc (a new Sandbox: an empty table) with a wiped
state directory at the same path (``/run/binfmtctl`` is a tmpfs) and the same cache
directory (``/var/cache/binfmtctl`` persists); ``apply`` runs the console entry point as
binfmtctl.service does. Whether the plan was replayed is read from what the run imported:
the full path imports the core (``binfmtctl.persist``), a replay only the boot plan.
"""

from __future__ import annotations

import marshal
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from binfmtctl import persist, table
from binfmtctl.entry import Entry, parse_register
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.sandbox import Sandbox
from tests.conftest import WSL, register_raw, require_sandbox, shared_tmpdir
from tests.test_fastpath import run_path

HOST = KernelProfile.current_default()
MNT = "/proc/sys/fs/binfmt_misc"
QEMU = "/usr/bin/qemu-aarch64-static"
UNTRUSTED = "a non-root user controls the interpreter"
#: what a replay may import of binfmtctl: nothing of the core
REPLAY_MODULES = {
    "binfmtctl",
    "binfmtctl.fastpath",
    "binfmtctl.bootplan",
    "binfmtctl.hostfacts",
    "binfmtctl.mountstate",
    "binfmtctl.statedir",
    "binfmtctl.record",
}


@dataclass
class Boot:
    code: int
    out: str
    err: str
    modules: set[str]
    table: list[tuple[str, str]]
    records: list[bytes]

    @property
    def replayed(self) -> bool:
        return {m for m in self.modules if m.startswith("binfmtctl")} <= REPLAY_MODULES

    @property
    def full(self) -> bool:
        return "binfmtctl.persist.apply" in self.modules

    def seen(self) -> tuple[int, str, str, list[tuple[str, str]], list[bytes]]:
        return (self.code, self.out, self.err, self.table, self.records)


class Host:
    """A host that boots: its config, its interpreters, its /run and /var/cache."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.bin = base / "bin"  # root-owned, 0755: the interpreters
        self.bin.mkdir(mode=0o755)
        for name in ("qemu-aarch64", "qemu-riscv64"):
            shutil.copy2(QEMU, self.bin / name)
        self.config = base / "etc" / "binfmtctl.conf"
        self.config.parent.mkdir(mode=0o755)
        self.state = base / "run"
        self.cache = base / "cache"
        self.write_config(
            [
                table.get_target("aarch64").entry(str(self.bin / "qemu-aarch64"), "F"),
                table.get_target("riscv64").entry(str(self.bin / "qemu-riscv64"), "PF"),
            ]
        )

    def write_config(self, entries: list[Entry]) -> None:
        persist.write_config(self.config, entries)

    def env(self) -> dict[str, str]:
        return {
            "BINFMTCTL_CONFIG": str(self.config),
            "BINFMTCTL_STATE_DIR": str(self.state),
            "BINFMTCTL_CACHE_DIR": str(self.cache),
        }

    def plans(self) -> list[Path]:
        return sorted(self.cache.glob("apply-*.plan"))

    def boot(
        self, before: list[str] | None = None, prepare: Callable[[Sandbox], None] | None = None
    ) -> Boot:
        """A fresh table (``before`` registered first, as systemd-binfmt or another tool
        would), a wiped /run (then ``prepare``), then the unit's ``apply``."""
        shutil.rmtree(self.state, ignore_errors=True)
        with Sandbox() as box:
            for line in before or []:
                register_raw(box, line)
            if prepare is not None:
                prepare(box)
            code, out, err, modules = run_path("fast", "apply", box=box, env=self.env())
            records = [p.read_bytes() for p in sorted(self.state.glob("owned-*.json"))]
            return Boot(code, out, err, modules, table_of(box), records)


def table_of(box: Sandbox) -> list[tuple[str, str]]:
    """(name, entry file text) in kernel match order, read from outside the sandbox (an
    entry matching native programs would take over any command run inside it)."""
    mnt = f"/proc/{box.pid}/root{MNT}"
    return [
        (n, Path(mnt, n).read_text()) for n in os.listdir(mnt) if n not in ("register", "status")
    ]


@pytest.fixture
def host(sandbox_reason: tuple[str, str] | None) -> Iterator[Host]:
    require_sandbox(sandbox_reason)
    with shared_tmpdir("binfmtctl-boot-") as d:
        yield Host(d)


# -- the replay is the full run -------------------------------------------------------------------
def test_second_boot_replays_the_first_exactly(host: Host) -> None:
    first = host.boot()
    assert first.full and first.code == 0, first.out + first.err
    assert [n for n, _ in first.table] == ["qemu-riscv64", "qemu-aarch64"]
    assert first.records and len(host.plans()) == 1
    (plan,) = host.plans()
    assert plan.stat().st_mode & 0o777 == 0o600 and host.cache.stat().st_mode & 0o777 == 0o700
    compiled = plan.stat().st_mtime_ns
    second = host.boot()
    assert second.replayed, sorted(second.modules)
    assert second.seen() == first.seen()  # output, exit status, table, ownership records
    assert plan.stat().st_mtime_ns == compiled  # read, not rewritten
    third = host.boot()
    assert third.replayed and third.seen() == first.seen()


def test_a_table_systemd_binfmt_filled_first_has_its_own_plan(host: Host) -> None:
    """At boot systemd-binfmt registers /etc/binfmt.d first: apply then keeps and claims."""
    lines = [ln for ln in host.config.read_text().splitlines() if ln.startswith(":")]
    first = host.boot(before=lines)
    assert first.full and "0 registered, 0 replaced, 2 unchanged" in first.out
    empty = host.boot()  # and a boot without it is another plan; both are kept
    assert empty.full and len(host.plans()) == 2
    again = host.boot(before=lines)
    assert again.replayed and again.seen() == first.seen()
    assert host.boot().replayed


def test_foreign_entries_before_are_part_of_the_starting_table(host: Host) -> None:
    first = host.boot(before=[WSL])
    assert first.full and first.table[-1][0] == "WSLInterop"
    second = host.boot(before=[WSL])
    assert second.replayed and second.seen() == first.seen()


# -- every fact it was decided from is checked -------------------------------------------------------
def _chmod_interpreter(host: Host) -> None:
    (host.bin / "qemu-aarch64").chmod(0o757)  # writable by others


def _chown_dir(host: Host) -> None:
    os.chown(host.bin, 65534, 65534)  # a non-root user now controls the directory


def _remove_interpreter(host: Host) -> None:
    (host.bin / "qemu-riscv64").unlink()


def _not_executable(host: Host) -> None:
    (host.bin / "qemu-riscv64").chmod(0o644)


def _swap_interpreter_for_symlink(host: Host) -> None:
    p = host.bin / "qemu-aarch64"
    p.unlink()
    p.symlink_to(QEMU)


def _edit_config(host: Host) -> None:
    with host.config.open("a") as f:
        f.write("# an edit\n")


def _config_symlink(host: Host) -> None:
    real = host.config.with_name("real.conf")
    host.config.rename(real)
    host.config.symlink_to(real)


def _plan_group_writable(host: Host) -> None:
    (plan,) = host.plans()
    plan.chmod(0o660)


def _cache_dir_not_ours(host: Host) -> None:
    os.chown(host.cache, 65534, 65534)


@pytest.mark.parametrize(
    ("change", "then"),
    [
        (_chmod_interpreter, UNTRUSTED),
        (_chown_dir, UNTRUSTED),
        (_remove_interpreter, "FAILED     qemu-riscv64: interpreter"),
        (_not_executable, "FAILED     qemu-riscv64: interpreter"),
        (_swap_interpreter_for_symlink, "register"),
        (_edit_config, "register"),
        (_config_symlink, "register"),
        (_plan_group_writable, "register"),
        (_cache_dir_not_ours, "register"),
    ],
)
def test_a_changed_fact_takes_the_full_path(host: Host, change: object, then: str) -> None:
    first = host.boot()
    assert host.boot().replayed  # the plan works before the change
    assert callable(change)
    change(host)
    after = host.boot()
    assert after.full, sorted(after.modules)
    assert then in after.out + after.err
    if then == UNTRUSTED:  # judged afresh: a warning the first boot did not have
        assert UNTRUSTED not in first.out + first.err


def test_other_records_under_the_lock_take_the_full_path(host: Host) -> None:
    """Same table, but ownership records this boot did not start from (a /run that
    survived): the full apply reconciles them, so no replay."""
    first = host.boot()
    assert host.boot().replayed

    def stale_records(box: Sandbox) -> None:
        dev = int(box.run(["stat", "-c", "%d", MNT]).stdout.decode())
        host.state.mkdir(mode=0o700)
        rec = host.state / f"owned-{dev:x}.json"
        rec.write_text('{"entries": {"gone": "enabled"}, "pending": {}}\n')
        rec.chmod(0o600)

    after = host.boot(prepare=stale_records)
    assert after.full and after.out == first.out
    assert b"gone" not in after.records[0]  # reconciled away, as the full path does


def test_a_step_that_fails_is_undone_and_the_full_run_follows(host: Host) -> None:
    """A plan whose second registration the kernel refuses (as a corrupt cache would
    say): the first registration is taken back, the records restored, and the full apply
    runs and says what it did, as if the plan had never been there."""
    first = host.boot()
    (path,) = host.plans()
    plan = marshal.loads(path.read_bytes())
    steps = list(plan["steps"])
    regs = [i for i, s in enumerate(steps) if s[0] == "register"]
    assert len(regs) == 2
    kind, _, name, shown = steps[regs[1]]
    steps[regs[1]] = (kind, b":broken:Q::x::/x:\n", name, shown)
    path.write_bytes(marshal.dumps(dict(plan, steps=tuple(steps))))  # still 0600, root's
    after = host.boot()
    assert after.full
    assert after.seen() == first.seen()


def test_plan_is_not_compiled_where_unrecorded_facts_matter(host: Host) -> None:
    # an E entry is judged against the names on PATH, which no plan records
    host.write_config(
        [
            table.get_target("aarch64").entry(str(host.bin / "qemu-aarch64"), "F"),
            parse_register(":t-ext:E::bfx::/bin/true:", HOST),
        ]
    )
    first = host.boot()
    assert first.full and first.code == 0
    assert host.plans() == []
    assert host.boot().full
