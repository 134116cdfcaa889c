"""The live table: the only module that reads or writes a binfmt_misc mount.

:class:`BinfmtMisc` is bound to a mount path (tests and ``binfmtctl sandbox``
point it at a private instance). It tells the mount states apart, lists
entries in kernel match order, writes ``register`` / ``0`` / ``1`` / ``-1``
with one ``write()`` each, re-reads after every write to check the kernel
stored what was meant, and turns each errno into a cause and a fix.

Kernel match order: the kernel tries the newest entry first. Each new entry's
dentry is added at the head of the directory's child list, and readdir walks
that list from the head, so ``os.listdir`` returns entries newest first
(``register`` and ``status``, created at mount time, come last).
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import os
import signal
from collections.abc import Iterator, Sequence

from binfmtctl import proc
from binfmtctl.entry import Entry, EntryParseError, kernel_view, parse_entry_file, render_register
from binfmtctl.errors import BinfmtctlError
from binfmtctl.hostfacts import parse_mountinfo as parse_mountinfo
from binfmtctl.mountstate import CONTROL_FILES as CONTROL_FILES
from binfmtctl.mountstate import DEFAULT_MOUNT as DEFAULT_MOUNT
from binfmtctl.mountstate import MountState as MountState
from binfmtctl.mountstate import entry_names, mount_path, read_mount_state
from binfmtctl.mountstate import filesystems_has_binfmt as filesystems_has_binfmt
from binfmtctl.mountstate import mount_state as mount_state
from binfmtctl.mountstate import open_exec_errno as open_exec_errno
from binfmtctl.ownership import OwnershipStore, Records, reconcile
from binfmtctl.plan import Action
from binfmtctl.record import replace
from binfmtctl.rules import KernelProfile, validate
from binfmtctl.statedir import DEFAULT_STATE_DIR as DEFAULT_STATE_DIR
from binfmtctl.statedir import state_dir_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class KernelRefused(BinfmtctlError):
    """A write the kernel refused; ``errno`` is its name (EINVAL, EEXIST, ...)."""

    def __init__(self, message: str, *, errno: str, fix: str | None = None) -> None:
        self.errno = errno
        super().__init__(message, fix=fix)


class NotMounted(BinfmtctlError):
    pass


class VerifyFailed(BinfmtctlError):
    pass


def is_standard_mount(path: str) -> bool:
    """Is ``path`` binfmt_misc's own mount point (/proc/sys/fs/binfmt_misc)?"""
    return os.path.normpath(path) == DEFAULT_MOUNT


def mount_refusal(path: str, contents: list[str] | None) -> tuple[str, str] | None:
    """Why binfmtctl must not mount binfmt_misc at ``path`` (message, fix), or None. Pure.

    Writes mount binfmt_misc only on the standard path or on an empty directory: a mount
    over a directory with files hides them until it is unmounted. ``contents`` are the
    directory's names (None: not a readable directory)."""
    if is_standard_mount(path):
        return None
    if contents is None:
        return (
            f"refusing to mount binfmt_misc at {path}: it is not a readable directory",
            "--mount names binfmt_misc's mount point, or an empty directory to mount it on",
        )
    if contents:
        shown = ", ".join(sorted(contents)[:3]) + (", ..." if len(contents) > 3 else "")
        return (
            f"refusing to mount binfmt_misc over {path}: the directory is not empty "
            f"({len(contents)} name{'s' * (len(contents) != 1)}: {shown}) and the mount would hide them",
            "point --mount at binfmt_misc's mount point or an empty directory "
            "(mkdir -p /run/bm && binfmtctl --mount /run/bm ...), or mount it yourself: "
            "mount -t binfmt_misc binfmt_misc DIR",
        )
    return None


def not_mounted_fix(path: str, contents: list[str] | None) -> str:
    """The fix a read prints when binfmt_misc is not mounted at ``path``. Pure."""
    how = f"mount -t binfmt_misc binfmt_misc {path}  (as root)"
    if mount_refusal(path, contents) is None:
        return (
            how + "; or let a write do it: binfmtctl's register, install, apply and "
            "doctor --fix mount it themselves when run as root"
        )
    return how + f"; binfmtctl itself never mounts over {path}: it is not an empty directory"


def _dir_contents(path: str) -> list[str] | None:
    try:
        return os.listdir(path)
    except (OSError, ValueError):
        return None


def cap_eff(status_text: str | None) -> int | None:
    """The effective capability set from /proc/PID/status text (None if absent)."""
    for line in (status_text or "").splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split()[1], 16)
            except (IndexError, ValueError):
                return None
    return None


CAP_SYS_ADMIN = 21


def on_read_only_fs(path: str) -> bool:
    """Is ``path`` on a read-only mount (as systemd's ConditionPathIsReadWrite checks)?

    Not ``os.access(W_OK)``: procfs refuses write access to /proc/sys directories
    even to root on a perfectly writable host."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def has_cap_sys_admin() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            caps = cap_eff(f.read())
    except OSError:
        caps = None
    if caps is None:
        return os.geteuid() == 0
    return bool(caps >> CAP_SYS_ADMIN & 1)


# -- the one kernel write ---------------------------------------------------------------------------
_writes_done = 0


def kernel_write(fd: int, data: bytes) -> None:
    """One ``write()`` to a binfmt_misc file. The crash tests set
    ``BINFMTCTL_TEST_KILL_AFTER_WRITES=k`` to have the process SIGKILL itself right
    after its k-th successful kernel write, or ``before:k`` right before it (read here
    and nowhere else)."""
    global _writes_done
    hook = os.environ.get("BINFMTCTL_TEST_KILL_AFTER_WRITES", "")
    before, _, k = hook.rpartition(":")
    if k.isdigit() and before == "before" and _writes_done + 1 == int(k):
        os.kill(os.getpid(), signal.SIGKILL)
    os.write(fd, data)
    _writes_done += 1
    if k.isdigit() and not before and _writes_done == int(k):
        os.kill(os.getpid(), signal.SIGKILL)


# -- the mount -----------------------------------------------------------------------------------
class BinfmtMisc:
    def __init__(
        self,
        path: str | None = None,
        *,
        state_dir: str | None = None,
        profile: KernelProfile | None = None,
    ) -> None:
        self.path = mount_path(path)
        self.state_dir = state_dir_path(state_dir)
        self.profile = profile or KernelProfile.current_default()
        self._lock_depth = 0
        self._store: OwnershipStore | None = None  # while locked: the journal being kept
        self._records: Records | None = None
        self._batch = False  # inside a batch: intents saved up front, one save at its end
        #: the boot plan's recorder (binfmtctl.persist.recording), told every write
        self.observer: Any = None

    # -- mount state ---------------------------------------------------------
    def mount_state(self) -> MountState:
        return read_mount_state(self.path)

    def ensure_mounted(self, *, mount: bool = False) -> MountState:
        """Compatibility spelling: ``mount=True`` is :meth:`mount_for_write`, else
        :meth:`require_mounted`. Mounting is never the default."""
        return self.mount_for_write() if mount else self.require_mounted()

    def _readable_state(self) -> MountState:
        """The state, after triggering a systemd automount (any access to it does that)."""
        st = self.mount_state()
        if st.state == "automount":
            with contextlib.suppress(OSError):
                os.listdir(self.path)  # the first access triggers systemd's automount
            st = self.mount_state()
        return st

    def _absent(self, st: MountState) -> NotMounted | None:
        if st.state == "unsupported":
            return NotMounted(
                "this kernel has no binfmt_misc (not in /proc/filesystems)",
                fix="load the module (modprobe binfmt_misc) or use a kernel built with CONFIG_BINFMT_MISC",
            )
        if st.state == "missing":
            if not is_standard_mount(self.path):
                return NotMounted(
                    f"{self.path} does not exist",
                    fix="--mount names binfmt_misc's mount point, or an empty directory to mount it on",
                )
            return NotMounted(
                f"{self.path} does not exist",
                fix="is /proc mounted? inside a container, /proc/sys may be hidden; run on the host",
            )
        return None

    def require_mounted(self) -> MountState:
        """For reads: the table must already be mounted. Never mounts (reads never change the
        host); an untriggered systemd automount is triggered, as any access would."""
        st = self._readable_state()
        if st.state == "mounted":
            return st
        absent = self._absent(st)
        if absent is not None:
            raise absent
        raise NotMounted(
            f"binfmt_misc is not mounted at {self.path}: nothing is registered there",
            fix=not_mounted_fix(self.path, _dir_contents(self.path)),
        )

    def mount_for_write(self) -> MountState:
        """For commands that write: mount binfmt_misc if it is not mounted, but only on the
        standard path or an empty directory (mounting over files would hide them)."""
        st = self._readable_state()
        if st.state == "mounted":
            return st
        absent = self._absent(st)
        if absent is not None:
            raise absent
        refusal = mount_refusal(self.path, _dir_contents(self.path))
        if refusal is not None:
            raise NotMounted(refusal[0], fix=refusal[1])
        mounted = proc.run(["mount", "-t", "binfmt_misc", "binfmt_misc", self.path])
        if mounted.returncode != 0:
            raise NotMounted(
                f"binfmt_misc is not mounted at {self.path} and mounting it failed: {mounted.err.strip()}",
                fix=self._privilege_fix(),
            )
        return self.mount_state()

    def _privilege_fix(self) -> str:
        if os.geteuid() != 0:
            return "run as root (sudo binfmtctl ...), or use `binfmtctl run` for a private table without root (Linux >= 6.7)"
        if not has_cap_sys_admin():
            return "this process is root but lacks CAP_SYS_ADMIN (a container started without it?): register from the host, or give the container CAP_SYS_ADMIN"
        if on_read_only_fs("/proc/sys/fs"):
            return "/proc/sys is read-only here (a container?): register from the host, or run the container with --privileged"
        return "a security module (AppArmor, SELinux, seccomp) denies it: register from the host"

    def instance_id(self) -> str:
        try:
            return f"{os.stat(self.path).st_dev:x}"
        except OSError:
            return "unknown"

    def ownership(self) -> OwnershipStore:
        if self._store is not None:
            return self._store
        store = OwnershipStore(self.state_dir, self.instance_id())
        store.observer = self.observer
        return store

    # -- reading ---------------------------------------------------------------
    def _p(self, name: str) -> bytes:
        return os.fsencode(self.path) + b"/" + os.fsencode(name)

    def enabled(self) -> bool:
        with open(self._p("status"), "rb") as f:
            return f.read().strip() == b"enabled"

    def names(self) -> list[str]:
        """Entry names in kernel match order (newest first)."""
        return entry_names(self.path)

    def read(self, name: str) -> Entry | None:
        text = self._read_raw(name)
        return None if text is None else parse_entry_file(name, text)

    def _read_raw(self, name: str) -> bytes | None:
        try:
            with open(self._p(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def entries(self) -> list[Entry]:
        """Every live entry, newest first (the order the kernel tries them)."""
        out = []
        for n in self.names():
            try:
                e = self.read(n)
            except (OSError, EntryParseError):
                continue  # removed meanwhile, or a format this version cannot read
            if e is not None:
                out.append(e)
        return out

    def live_views(self) -> dict[str, str]:
        """name -> kernel_view (as enabled) of every live entry: what records compare with."""
        return {e.name: kernel_view(replace(e, enabled=True)) for e in self.entries()}

    def owned(self) -> dict[str, str]:
        """name -> kernel_view of entries binfmtctl registered that are still as it left
        them, counting intents a killed run recorded whose entry reached the kernel."""
        if self._records is not None:
            return dict(self._records.owned)
        return reconcile(self.ownership().load(), self.live_views())

    # -- writing ---------------------------------------------------------------
    def _write(self, name: str, data: bytes) -> None:
        if self.observer is not None:
            self.observer.refuse(f"a write to {name}")
        fd = os.open(self._p(name), os.O_WRONLY)
        try:
            kernel_write(fd, data)
        finally:
            os.close(fd)

    def _explain_open_failure(self, e: OSError, what: str) -> KernelRefused:
        name = errno_mod.errorcode.get(e.errno or 0, str(e.errno))
        if e.errno == errno_mod.ENOENT:
            return KernelRefused(
                f"{what}: {self.path} has no such file (binfmt_misc not mounted?)",
                errno=name,
                fix=not_mounted_fix(self.path, _dir_contents(self.path)),
            )
        if e.errno in (errno_mod.EACCES, errno_mod.EPERM):
            return KernelRefused(
                f"{what}: permission denied ({name})", errno=name, fix=self._privilege_fix()
            )
        if e.errno == errno_mod.EROFS:
            return KernelRefused(
                f"{what}: {self.path} is mounted read-only",
                errno=name,
                fix="inside a container /proc/sys is read-only: register from the host (or a --privileged container)",
            )
        return KernelRefused(f"{what}: {e.strerror} ({name})", errno=name)

    def register(self, entry: Entry, *, raw: bytes | None = None) -> Entry:
        """Write one registration, then re-read it and check the kernel stored ``entry``."""
        data = (raw if raw is not None else render_register(entry)) + b"\n"
        try:
            fd = os.open(self._p("register"), os.O_WRONLY)
        except OSError as e:
            raise self._explain_open_failure(e, f"cannot register {entry.name!r}") from None
        try:
            kernel_write(fd, data)
        except OSError as e:
            raise self._explain_register_error(entry, data, e) from None
        finally:
            os.close(fd)
        shown = self._read_raw(entry.name)
        if self.observer is not None:
            self.observer.registered(data, entry.name, shown)
        got = None if shown is None else parse_entry_file(entry.name, shown)
        want = kernel_view(entry)
        if got is None or kernel_view(got) != want:
            raise VerifyFailed(
                f"registered {entry.name!r} but the kernel shows "
                + ("nothing" if got is None else repr(kernel_view(got)))
                + f" instead of {want!r}",
                fix="another process may have changed the table at the same time; run binfmtctl status",
            )
        return got

    def _explain_register_error(self, entry: Entry, data: bytes, e: OSError) -> KernelRefused:
        name = errno_mod.errorcode.get(e.errno or 0, str(e.errno))
        verdict = validate(
            data, self.profile, existing_names=self.names(), exec_check=open_exec_errno
        )
        matching = [
            p for p in verdict.problems if p.is_error and (p.errno == name or name == "EINVAL")
        ]
        if matching:
            p = matching[0]
            return KernelRefused(
                f"the kernel refused {entry.name!r} ({name}): {p.field}: {p.message}",
                errno=name,
                fix=p.fix,
            )
        if e.errno == errno_mod.EEXIST:
            return KernelRefused(
                f"the kernel refused {entry.name!r}: an entry of that name exists (EEXIST)",
                errno=name,
                fix="use --replace, or remove it first",
            )
        if e.errno in (errno_mod.EACCES, errno_mod.EPERM):
            return KernelRefused(
                f"the kernel refused {entry.name!r}: permission denied ({name})",
                errno=name,
                fix=self._privilege_fix(),
            )
        return KernelRefused(
            f"the kernel refused {entry.name!r} with {name} ({e.strerror}) although it validates for Linux {self.profile.label}",
            errno=name,
            fix="a security module or an older kernel may forbid it; check dmesg for binfmt_misc messages",
        )

    def _command(self, name: str, value: bytes, what: str) -> None:
        try:
            self._write(name, value)
        except OSError as e:
            if e.errno == errno_mod.ENOENT:
                raise KernelRefused(
                    f"{what}: no entry named {name!r}",
                    errno="ENOENT",
                    fix="binfmtctl status lists the entries",
                ) from None
            raise self._explain_open_failure(e, what) from None

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._command(
            name, b"1" if enabled else b"0", f"cannot {'enable' if enabled else 'disable'} {name!r}"
        )
        got = self.read(name)
        if got is None or got.enabled != enabled:
            raise VerifyFailed(
                f"wrote to {name!r} but it is still {'disabled' if enabled else 'enabled'}"
            )

    def remove(self, name: str) -> None:
        if name in CONTROL_FILES:
            raise BinfmtctlError(
                f"refusing to write -1 to {name!r}: that would remove every entry, including other tools'"
            )
        self._command(name, b"-1", f"cannot remove {name!r}")
        if self.read(name) is not None:
            raise VerifyFailed(f"wrote -1 to {name!r} but it is still registered")

    def set_global(self, enabled: bool) -> None:
        self._command("status", b"1" if enabled else b"0", "cannot change the global state")
        if self.enabled() != enabled:
            raise VerifyFailed("wrote to status but the global state did not change")

    # -- transactions ------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writers' lock (re-entrant): plan and apply under one lock, so
        concurrent runs of the same batch cannot both see an entry as missing.

        Taking it reconciles the ownership records with the live table (claiming the
        intents of a killed run that reached the kernel, dropping the others) and keeps
        them in memory; every kernel write then updates them and saves them."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        store = self.ownership()
        with store.lock():
            self._lock_depth = 1
            try:
                if self.mount_state().state == "mounted":
                    before = store.load()
                    self._store = store
                    self._records = Records(reconcile(before, self.live_views()))
                    if self._records != before:
                        store.save(self._records)
                yield
            finally:
                self._lock_depth = 0
                self._store = None
                self._records = None

    def claim(self, entries: Sequence[Entry]) -> None:
        """Record live entries as binfmtctl's (apply: config entries found identical).
        Under the lock only."""
        rec = self._records
        if rec is None:
            return
        want = {e.name: kernel_view(replace(e, enabled=True)) for e in entries}
        if all(rec.owned.get(k) == v for k, v in want.items()):
            return
        rec.owned.update(want)
        self._save()

    def _save(self) -> None:
        if self._store is not None and self._records is not None and not self._batch:
            self._store.save(self._records)

    @contextlib.contextmanager
    def _journal(self, actions: Sequence[Action]) -> Iterator[None]:
        """Keep the records of a batch with two durable saves instead of two per write:
        every intent of the batch is saved before its first kernel write, and the outcome
        once at its end. A kill in between leaves intents that the next run's
        :func:`~binfmtctl.ownership.reconcile` claims where the kernel took them (live with
        exactly that text) and drops where it did not, which is all a per-write confirmation
        would have told it; stale owned records of entries removed meanwhile are dropped the
        same way, since they are no longer live."""
        rec = self._records
        if rec is None or self._batch:
            yield
            return
        for a in actions:
            if a.kind in ("add", "replace"):
                rec.pending[a.entry.name] = kernel_view(replace(a.entry, enabled=True))
        self._save()
        self._batch = True
        try:
            yield
        finally:
            self._batch = False
            self._save()

    def _intend(self, entry: Entry) -> None:
        if self._records is not None:
            self._records.pending[entry.name] = kernel_view(replace(entry, enabled=True))
            self._save()

    def _confirm(self, entry: Entry, owned: bool) -> None:
        """After a kernel write: ``entry`` is now live and ours (owned) or gone (not)."""
        rec = self._records
        if rec is None:
            return
        view = rec.pending.pop(entry.name, None)
        if owned:
            rec.owned[entry.name] = view or kernel_view(replace(entry, enabled=True))
        else:
            rec.owned.pop(entry.name, None)
        self._save()

    def _forget_intent(self, name: str) -> str | None:
        """Drop the intent recorded for ``name``; a failed save is returned as a warning
        (the next locked run reconciles the stale intent with the live table)."""
        rec = self._records
        if rec is not None and rec.pending.pop(name, None) is not None:
            try:
                self._save()
            except BinfmtctlError as e:
                return (
                    f"could not clear the recorded intent to register {name!r} ({_why(e)}), "
                    "ignoring; the next binfmtctl run reconciles it with the live table"
                )
        return None

    def apply(self, actions: list[Action]) -> list[Action]:
        """Carry out add/replace/remove actions in order, under the lock, all or nothing.

        On a failure at step k, steps k-1..0 are undone (added entries removed,
        replaced and removed ones put back) and the error is re-raised, so the
        table's entries end as they began. Records ownership of what it registers,
        an intent before each registration and a confirmation after it.
        """
        done: list[Action] = []
        with self.locked():
            before = dict(self._records.owned) if self._records is not None else {}
            with self._journal(actions):
                try:
                    for a in actions:
                        self._do(a, done)
                except BinfmtctlError as e:
                    e.warnings += tuple(self._rollback(done, before))
                    raise
        return done

    def apply_each(self, actions: list[Action]) -> list[tuple[Action, BinfmtctlError | None]]:
        """Carry out each action on its own (the boot path): a failed one is undone and
        reported, the others still happen. One lock for all."""
        results: list[tuple[Action, BinfmtctlError | None]] = []
        with self.locked():
            before = dict(self._records.owned) if self._records is not None else {}
            with self._journal(actions):
                for a in actions:
                    done: list[Action] = []
                    try:
                        self._do(a, done)
                    except BinfmtctlError as e:
                        e.warnings += tuple(self._rollback(done, before))
                        results.append((a, e))
                        continue
                    results.append((a, None))
        return results

    def _add(self, entry: Entry) -> None:
        self._intend(entry)
        try:
            self.register(entry)
        except BinfmtctlError as e:
            unsaved = self._forget_intent(entry.name)
            e.warnings += (unsaved,) if unsaved else ()
            raise
        self._confirm(entry, owned=True)

    def _drop(self, entry: Entry) -> None:
        self.remove(entry.name)
        self._confirm(entry, owned=False)

    def _do(self, a: Action, done: list[Action]) -> None:
        if a.kind == "add":
            self._add(a.entry)
        elif a.kind == "replace":
            assert a.old is not None
            self._drop(a.old)
            done.append(Action("remove", a.old, a.old))
            self._add(a.entry)
            done[-1] = a
            return
        elif a.kind == "remove":
            self._drop(a.entry)
        else:
            return
        done.append(a)

    def _rollback(self, done: list[Action], owned_before: dict[str, str]) -> list[str]:
        """Undo ``done`` in reverse; entries put back are owned again only if they were.

        A step that fails is reported and the rollback goes on with the next one (as
        systemd-binfmt's ", ignoring"): the returned lines say what was not undone."""
        failed: list[str] = []
        for a in reversed(done):
            if a.kind in ("add", "replace"):
                try:
                    self._drop(a.entry)
                except (BinfmtctlError, OSError) as e:
                    failed.append(
                        f"could not remove {a.entry.name!r}, registered before the failure "
                        f"({_why(e)}), ignoring; check it with binfmtctl status and remove it if unwanted"
                    )
            if a.kind in ("replace", "remove") and a.old is not None:
                try:
                    self._put_back(a.old, owned_before)
                except (BinfmtctlError, OSError) as e:
                    failed.append(
                        f"could not put {a.old.name!r} back as it was ({_why(e)}), ignoring; "
                        f"it is missing or changed now: register it again (binfmtctl status shows it)"
                    )
        return failed

    def _put_back(self, old: Entry, owned_before: dict[str, str]) -> None:
        self.register(replace(old, enabled=True))
        if not old.enabled:
            self.set_enabled(old.name, False)
        if old.name in owned_before and self._records is not None:
            self._records.owned[old.name] = owned_before[old.name]
            self._save()


def _why(e: BinfmtctlError | OSError) -> str:
    """The first line of an error, for a one-line report."""
    return (e.message.partition("\n")[0] if isinstance(e, BinfmtctlError) else str(e)).rstrip(".")
