"""The boot plan: the boot-time ``apply`` replayed from what the last full run decided.

binfmtctl.service runs ``binfmtctl apply`` at every boot, with the same config, on the
same host. The full ``apply`` imports the kernel-exact core, parses and validates every
entry, and checks each interpreter and each new entry against the host before it writes
(about 60 ms of CPU here, against 10 ms for a bare ``python -c pass``). What it decided is a pure
function of the facts it read. So after a full run through the boot path
(:mod:`binfmtctl.fastpath`), binfmtctl compiles a *plan* (like ``ld.so.cache`` or
``hwdb.bin``): every fact the decision was made from, and what the run then did, in
order (each records save, each registration with what the kernel showed back) and what
it printed. The next boot-path run re-reads exactly those facts, through the same
readers (:mod:`binfmtctl.hostfacts`), and only if every one is unchanged replays the
plan; otherwise, or if any step of the replay fails (it is undone first), the full
``apply`` runs, as it always did, and compiles a new plan.

The facts (each compared for equality, never trusted from the plan alone):

* the plan's format, binfmtctl's version, the interpreter (``sys.version``), the euid;
* the kernel (``uname``: release, version, machine) and the running program's ELF header
  (``/proc/self/exe``): the host identity the hijack check judged the entries against;
* the config's bytes (a regular file, opened without following a symlink), the mount
  point and the state directory;
* every path component the trust checks looked at (``lstat`` + ``readlink``: owner, mode,
  link target) for the config and every interpreter, and the ``open_exec`` errno of every
  interpreter;
* the binfmt_misc mount at the mount point (fstype and options, from mountinfo);
* under the writers' lock: the table (names, each entry file's text, ``status``) and the
  ownership records' bytes.

A plan is only compiled when the decision cannot depend on anything else: every entry is a
magic (``M``) entry whose bytes exclude every program that could run natively here (so the
programs on PATH were not read), every interpreter was executable (no fstab lookup), the
table was mounted, nothing was replaced or removed, and the run ended with exit status 0.

The plan is a cache in ``/var/cache/binfmtctl`` (``$BINFMTCTL_CACHE_DIR``), written
atomically, ``0600`` in a ``0700`` directory owned by the user that runs binfmtctl; a plan
in a directory or file that anyone else could write is ignored, never read. Deleting it
only makes the next boot take the full path. Nothing here imports more than the built-in
modules (no dataclasses, enum, re, json, pathlib): that is the point.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import stat
import sys

from binfmtctl import __version__, hostfacts
from binfmtctl.mountstate import CONTROL_FILES, mount_path
from binfmtctl.statedir import LOCK_NAME, clean_tmp, dir_problem, state_dir_path, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

FORMAT = 1
CACHE_ENV = "BINFMTCTL_CACHE_DIR"
DEFAULT_CACHE_DIR = "/var/cache/binfmtctl"
#: persist.paths.DEFAULT_CONFIG (that module imports pathlib): a key whose path differs from
#: the one the full apply reads records nothing (fastpath.run_apply compares them)
DEFAULT_CONFIG = "/etc/binfmt.d/zz-binfmtctl.conf"
MAX_PLAN = 1 << 20
#: plans kept per (mount, config): one per starting table (see Key.prefix)
KEEP = 4
#: set by the crash tests to kill binfmtctl between kernel writes: always the full path
KILL_HOOK = "BINFMTCTL_TEST_KILL_AFTER_WRITES"

#: an output line: (text, colour or None, on stderr)
Line = tuple[str, "str | None", bool]


class Key:
    """Where a boot-path ``apply`` runs: which plan is its, and what it must match."""

    def __init__(self, mount: str | None, config: str | None) -> None:
        env = os.environ
        self.mount = mount_path(mount)
        self.config = os.path.abspath(config or env.get("BINFMTCTL_CONFIG") or DEFAULT_CONFIG)
        self.state_dir = state_dir_path()
        self.cache_dir = env.get(CACHE_ENV) or DEFAULT_CACHE_DIR
        self.usable = not env.get(KILL_HOOK)

    def ident(self) -> tuple[object, ...]:
        u = os.uname()
        return (
            FORMAT,
            __version__,
            sys.version,
            os.geteuid(),
            (u.release, u.version, u.machine),
            self.mount,
            self.config,
            self.state_dir,
        )

    def prefix(self) -> str:
        """The plans of this (mount, config) are named ``PREFIX-TABLE.plan``: one per state
        of the live table it started from (at boot: empty, or what systemd-binfmt registered
        from /etc/binfmt.d; after a restart of the unit: binfmtctl's own entries), at most
        :data:`KEEP` of them. The name only finds a plan; the plan says whose it is."""
        raw = f"{self.mount}\0{self.config}"
        return "apply-" + "".join(c if c.isalnum() else "_" for c in raw)[-150:]

    def plan_name(self, table: Any) -> str:
        # a digest without importing zlib or hashlib: the table's bytes as one integer,
        # modulo the largest prime below 2**64 (a collision only finds a plan that load()
        # then finds is for another table)
        digest = int.from_bytes(marshal.dumps(table), "little") % 0xFFFFFFFFFFFFFFC5
        return f"{self.prefix()}-{digest:016x}.plan"


# -- the facts: re-read exactly as recorded --------------------------------------------------------
def read_config(path: str) -> bytes | None:
    """The config's bytes when it is a regular file (not a symlink, FIFO...), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def mount_facts(mount: str) -> tuple[str, str] | None:
    return hostfacts.parse_mountinfo(hostfacts.read_mountinfo(), mount)


def host_head() -> bytes | None:
    return hostfacts.read_head("/proc/self/exe")


def _read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def table_state(mount: str) -> tuple[object, ...] | None:
    """The live table as files: ``status`` and every entry's text, by name."""
    try:
        names = sorted(n for n in os.listdir(mount) if n not in CONTROL_FILES)
    except OSError:
        return None
    return (
        _read_file(os.path.join(mount, "status")),
        tuple((n, _read_file(os.path.join(mount, n))) for n in names),
    )


def records_name(mount: str) -> str | None:
    """The ownership records' file name for the instance at ``mount`` (ownership.py)."""
    try:
        return f"owned-{os.stat(mount).st_dev:x}.json"
    except OSError:
        return None


def read_records(dfd: int, name: str) -> bytes | bool | None:
    """The records' bytes, None when absent, False when unusable (the full path warns)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, MAX_PLAN + 1)
    finally:
        os.close(fd)


def static_facts_hold(facts: dict[str, Any]) -> bool:
    """Every fact that is not the table's or the records' (those are checked under the
    lock) still reads as recorded."""
    if host_head() != facts["head"] or read_config(facts["config"]) != facts["config_bytes"]:
        return False
    if mount_facts(facts["mount"]) != facts["mounted"]:
        return False
    if any(hostfacts.lookup(p) != v for p, v in facts["lookups"]):
        return False
    return all(hostfacts.exec_errno(p) == v for p, v in facts["exec"])


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> None:
    """``fn(...)``, an OSError ignored (contextlib.suppress, without importing contextlib)."""
    try:  # noqa: SIM105 (the one place; contextlib costs an import at boot)
        fn(*args, **kwargs)
    except OSError:
        pass


# -- safe files --------------------------------------------------------------------------------------
def _private_dir_fd(path: str, *, create: bool) -> int | None:
    """A descriptor of ``path`` if it is a directory owned by the euid that no one else
    can write (created 0700 when ``create``); None otherwise."""
    if create:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if dir_problem(st, os.geteuid()) is not None:
        os.close(fd)
        return None
    if st.st_mode & 0o077:
        _quietly(os.fchmod, fd, 0o700)  # ours, readable by others: private (as ownership.py)
    return fd


# -- the plan file -----------------------------------------------------------------------------------
def load(key: Key, table: Any) -> dict[str, Any] | None:
    """The plan for ``key`` starting from ``table`` if there is one that can be trusted and
    is for this run."""
    dfd = _private_dir_fd(key.cache_dir, create=False)
    if dfd is None:
        return None
    try:
        fd = os.open(
            key.plan_name(table),
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=dfd,
        )
    except OSError:
        return None
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        data = os.read(fd, MAX_PLAN + 1)
    finally:
        os.close(fd)
    try:
        plan = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(plan, dict) or plan.get("ident") != key.ident():
        return None
    if plan["facts"]["table"] != table:
        return None
    return plan


def save(key: Key, plan: dict[str, Any]) -> bool:
    """Write the plan (best effort: a cache). True if written."""
    plan = dict(plan, ident=key.ident())
    dfd = _private_dir_fd(key.cache_dir, create=True)
    if dfd is None:
        return False
    try:
        name = key.plan_name(plan["facts"]["table"])
        write_atomic(dfd, name, marshal.dumps(plan))
        _evict(dfd, key.prefix() + "-", keep=name)
        return True
    except OSError:
        return False
    finally:
        os.close(dfd)


def _evict(dfd: int, prefix: str, keep: str) -> None:
    """Keep the newest :data:`KEEP` plans of a key (``keep`` among them)."""
    ours = []
    for n in os.listdir(dfd):
        if n.startswith(prefix) and n.endswith(".plan") and n != keep:
            try:
                ours.append((os.stat(n, dir_fd=dfd, follow_symlinks=False).st_mtime_ns, n))
            except OSError:
                continue
    for _, n in sorted(ours)[: max(0, len(ours) - (KEEP - 1))]:
        _quietly(os.unlink, n, dir_fd=dfd)


def forget(key: Key, table: Any) -> None:
    """Drop the plan of ``key`` for ``table``: that run no longer goes as it said."""
    dfd = _private_dir_fd(key.cache_dir, create=False)
    if dfd is not None:
        _quietly(os.unlink, key.plan_name(table), dir_fd=dfd)
        os.close(dfd)


# -- the replay --------------------------------------------------------------------------------------
def replay(key: Key) -> tuple[Sequence[Line], int] | None:
    """Replay the plan of ``key`` if every fact still holds: (output lines, exit status);
    None when the full ``apply`` must run (no plan, a fact changed, a step failed and was
    undone)."""
    if not key.usable:
        return None
    plan = load(key, table_state(key.mount))  # checked again under the lock
    if plan is None or not static_facts_hold(plan["facts"]):
        return None
    dfd = _private_dir_fd(key.state_dir, create=True)
    if dfd is None:
        return None
    try:
        try:
            lk = os.open(
                LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
            )
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(lk).st_mode):
                return None
            fcntl.flock(lk, fcntl.LOCK_EX)
            clean_tmp(dfd, "owned-")
            if not _run(key, plan, dfd):
                return None
        finally:
            os.close(lk)
    finally:
        os.close(dfd)
    return plan["lines"], plan["code"]


def _run(key: Key, plan: dict[str, Any], dfd: int) -> bool:
    """Under the lock: check the table and the records, then do the plan's steps in order;
    on a failed step undo the ones done. True when the whole plan was carried out."""
    facts = plan["facts"]
    name = records_name(key.mount)
    if name is None or table_state(key.mount) != facts["table"]:
        return False
    before = read_records(dfd, name)
    if isinstance(before, bool) or before != facts["records"]:
        return False
    added: list[str] = []
    try:
        for step in plan["steps"]:
            if step[0] == "save":
                write_atomic(dfd, name, step[1])
            else:
                _, data, entry, shown = step
                fd = os.open(os.path.join(key.mount, "register"), os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
                added.append(entry)
                if _read_file(os.path.join(key.mount, entry)) != shown:
                    raise OSError("the kernel shows the entry differently")
    except OSError:
        _undo(key, dfd, name, added, before)
        return False
    return True


def _undo(key: Key, dfd: int, name: str, added: Sequence[str], before: bytes | None) -> None:
    for entry in reversed(added):
        try:
            with open(os.path.join(key.mount, entry), "wb") as f:
                f.write(b"-1")
        except OSError:
            pass
    try:
        if before is None:
            os.unlink(name, dir_fd=dfd)
        else:
            write_atomic(dfd, name, before)
    except OSError:
        pass
