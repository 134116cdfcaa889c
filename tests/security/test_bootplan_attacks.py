"""Attacks on the boot plan, performed for real: the attacker is uid 65534 on this host,
the victim is root booting a private binfmt_misc (binfmtctl.service's ``apply``).

A plan is a cache of root's decisions; whoever could write one would decide what root
registers at boot. So a plan is read only from a directory and a file root owns that no
one else can write, and a plan root compiled is replayed only while every fact it was
decided from (owner and mode of every path component of every interpreter, among the
rest) is unchanged."""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from binfmtctl import table
from binfmtctl.sandbox import Sandbox
from tests.conftest import NOBODY, User, require_sandbox, shared_tmpdir
from tests.test_bootplan import Host

EVIL = b":evil:M::\\x7fELF\\x02\\x01\\x01::/bin/true:\n"  # every native x86_64 program
MNT = "/proc/sys/fs/binfmt_misc"


@pytest.fixture
def host(sandbox_reason: tuple[str, str] | None) -> Iterator[Host]:
    require_sandbox(sandbox_reason)
    with shared_tmpdir("binfmtctl-boot-") as d:
        yield Host(d)


@pytest.fixture
def sticky_dir() -> Iterator[Path]:
    """A root-owned sticky, world-writable directory, as /tmp is."""
    with shared_tmpdir("binfmtctl-sticky-", 0o1777) as d:
        yield d


def forged(host: Host) -> tuple[str, bytes]:
    """The strongest forgery: root's own plan (every fact right) with one registration
    more, that would hand every native program to the attacker's choice."""
    (path,) = host.plans()
    plan = marshal.loads(path.read_bytes())
    with Sandbox() as box:  # what the kernel shows for it, so the replay's check passes
        # one process registers and reads back: once it is registered, every exec in the
        # sandbox (cat, sh) goes to /bin/true
        script = (
            f"import sys; open({MNT + '/register'!r}, 'wb').write({EVIL!r}); "
            f"sys.stdout.buffer.write(open({MNT + '/evil'!r}, 'rb').read())"
        )
        shown = box.run([sys.executable, "-c", script]).stdout
    assert shown.startswith(b"enabled\n")
    steps = (*plan["steps"], ("register", EVIL, "evil", shown))
    return path.name, marshal.dumps(dict(plan, steps=steps))


def as_nobody(user: User, script: str) -> None:
    p = user.run(["sh", "-c", script])
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("how", ["their-directory", "symlink-to-their-directory"])
def test_a_plan_planted_by_another_user_is_never_replayed(
    host: Host, user: User, sticky_dir: Path, how: str
) -> None:
    first = host.boot()  # root compiles its plan in its own cache
    assert first.full and first.code == 0
    name, data = forged(host)
    # root's cache is configured under a world-writable directory (as /tmp): the attacker
    # gets there first, with a directory of their own (or a symlink to one) and the plan
    cache = sticky_dir / "cache"
    theirs = sticky_dir / "theirs"
    target = cache if how == "their-directory" else theirs
    src = sticky_dir / "forged.plan"  # what the attacker wrote (whoever typed it)
    src.write_bytes(data)
    src.chmod(0o644)
    # readable by root also inside its user namespace, where a uid it does not map (65534)
    # gets no CAP_DAC_OVERRIDE: a real root would read a 0700 directory of theirs anyway
    script = f"mkdir -m 0755 {target} && cat {src} > {target}/{name} && chmod 0644 {target}/{name}"
    if how != "their-directory":
        script += f" && ln -s {theirs} {cache}"
    as_nobody(user, script)
    assert (target / name).stat().st_uid == NOBODY
    assert (target / name).read_bytes() == data  # the forgery arrived intact
    host.cache = cache
    attacked = host.boot()
    assert "evil" not in [n for n, _ in attacked.table]
    assert attacked.full and attacked.seen() == first.seen()


def test_an_interpreter_directory_handed_to_another_user_is_judged_again(
    host: Host, user: User
) -> None:
    """Root compiled a plan registering a credentials (C) entry whose interpreter it
    owned. Then the interpreter's directory goes to uid 65534, who swaps the interpreter
    for their own program: a stale plan would give it every setuid binary's credentials
    at the next boot. The boot judges again and refuses."""
    host.write_config([table.get_target("aarch64").entry(str(host.bin / "qemu-aarch64"), "FOC")])
    first = host.boot()
    assert first.full and first.code == 0 and "register" in first.out
    assert host.boot().replayed
    os.chown(host.bin, NOBODY, NOBODY)
    as_nobody(user, f"cp /bin/true {host.bin}/qemu-aarch64.new && "
              f"mv -f {host.bin}/qemu-aarch64.new {host.bin}/qemu-aarch64")  # fmt: skip
    assert (host.bin / "qemu-aarch64").stat().st_uid == NOBODY
    attacked = host.boot()
    assert attacked.full
    assert attacked.code == 1 and "refused for the host's safety" in attacked.out
    assert attacked.table == []
