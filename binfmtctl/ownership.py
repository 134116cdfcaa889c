"""Ownership records: which live entries binfmtctl registered, safe against a kill and
against other users.

The records live in a state directory (``/run/binfmtctl``, tmpfs: gone at reboot like
the entries) that must belong to the user running binfmtctl (root) and be writable by
no one else; it is created ``0700``. Every file in it is opened relative to the
directory's descriptor with ``O_NOFOLLOW``, created with ``O_EXCL`` and mode ``0600``
whatever the umask, and replaced atomically; stale temporary files are removed under
the lock.

Crash safety is an intent journal. Before each registration binfmtctl records the
entry's text as *pending*; after the kernel took it, the pending intent becomes an
*owned* record. A rerun reconciles (:func:`reconcile`, pure): a pending intent whose
entry is live with exactly that text was written by binfmtctl and is claimed; one with
no such live entry never reached the kernel and is dropped; an owned record whose entry
is gone or changed is dropped.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fcntl
import json
import os
import stat
import sys
from collections.abc import Iterator, Mapping

from binfmtctl.errors import BinfmtctlError
from binfmtctl.record import dataclass, field
from binfmtctl.statedir import LOCK_NAME, clean_tmp, write_atomic
from binfmtctl.statedir import dir_problem as dir_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: a records file larger than this is not binfmtctl's (a full table is a few KiB)
MAX_RECORD_BYTES = 1 << 20


class OwnershipError(BinfmtctlError):
    """The records cannot be kept safely: nothing is written to the kernel then."""


@dataclass
class Records:
    """``owned``: name -> the entry text binfmtctl registered (as enabled).
    ``pending``: name -> text about to be registered (an intent not yet confirmed)."""

    owned: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"entries": dict(self.owned), "pending": dict(self.pending)}


# -- pure ------------------------------------------------------------------------------------------
def parse_records(data: bytes) -> Records:
    """Records from a file's bytes; ValueError (with the reason) when it is not a records file."""
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    out = Records()
    for key, target in (("entries", out.owned), ("pending", out.pending)):
        part = doc.get(key, {})
        if not isinstance(part, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in part.items()
        ):
            raise ValueError(f"{key!r} is not a map of entry names to entry texts")
        target.update(part)
    return out


def render_records(records: Records) -> bytes:
    return (json.dumps(records.to_json(), indent=1, sort_keys=True) + "\n").encode()


def reconcile(records: Records, live: Mapping[str, str]) -> dict[str, str]:
    """The owned entries given the live table (name -> text as enabled): owned records
    still live as recorded, and pending intents whose entry is live with their text."""
    out = {n: v for n, v in records.owned.items() if live.get(n) == v}
    out.update({n: v for n, v in records.pending.items() if live.get(n) == v})
    return out


# -- the store (I/O) -------------------------------------------------------------------------------
def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class OwnershipStore:
    """The records of one binfmt_misc instance (``owned-<device>.json``) in ``state_dir``."""

    def __init__(self, state_dir: str, instance: str) -> None:
        self.dir = state_dir
        self.name = f"owned-{instance}.json"
        self.path = os.path.join(state_dir, self.name)
        self._fd: int | None = None  # the verified directory, while locked
        #: the boot plan's recorder (binfmtctl.persist.recording), told what was read and written
        self.observer: Any = None

    # -- the directory -----------------------------------------------------------------------
    def _open_dir(self, *, create: bool) -> int | None:
        """A descriptor of the verified state directory; None when it does not exist and
        ``create`` is false. OwnershipError when it exists but cannot be trusted."""
        if create:
            parent = os.path.dirname(os.path.abspath(self.dir))
            with contextlib.suppress(FileExistsError):
                os.makedirs(parent, mode=0o755, exist_ok=True)
                os.mkdir(self.dir, 0o700)
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise
            return None
        except OSError as e:
            if e.errno in (errno_mod.ELOOP, errno_mod.ENOTDIR):
                raise OwnershipError(
                    f"state directory {self.dir} is a symlink or not a directory: not using it",
                    fix=self._dir_fix(),
                ) from None
            raise
        st = os.fstat(fd)
        why = dir_problem(st, os.geteuid())
        if why is None and stat.S_IMODE(st.st_mode) & 0o077:
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o700)  # ours, readable by others: make it private
        if why is not None:
            os.close(fd)
            raise OwnershipError(
                f"state directory {self.dir} {why}: not trusting its ownership records",
                fix=self._dir_fix(),
            )
        return fd

    def _dir_fix(self) -> str:
        return (
            f"remove it (rm -r {self.dir}) and rerun: binfmtctl recreates it root-owned 0700 "
            "(or point BINFMTCTL_STATE_DIR at such a directory)"
        )

    # -- reading -----------------------------------------------------------------------------
    def load(self) -> Records:
        """The records; empty (with a warning on stderr) when they are missing, corrupt or
        in a directory that cannot be trusted. Never raises for bad content."""
        try:
            fd = self._fd if self._fd is not None else self._open_dir(create=False)
        except OwnershipError as e:
            self._warn(f"ignoring ownership records: {e.message}")
            return Records()
        except OSError:
            return Records()
        if fd is None:
            return Records()
        try:
            return self._read(fd)
        finally:
            if fd != self._fd:
                os.close(fd)

    def _read(self, dfd: int) -> Records:
        try:
            f = os.open(
                self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd
            )
        except FileNotFoundError:
            self._seen(None)
            return Records()
        except OSError as e:
            self._warn(f"ignoring ownership records {self.path}: {e.strerror}")
            return Records()
        try:
            st = os.fstat(f)
            if not stat.S_ISREG(st.st_mode):
                self._warn(f"ignoring ownership records {self.path}: not a regular file")
                return Records()
            data = os.read(f, MAX_RECORD_BYTES + 1)
        finally:
            os.close(f)
        try:
            records = parse_records(data)
        except ValueError as e:
            self._warn(
                f"ignoring ownership records {self.path}: {e}; binfmtctl rewrites them at its next change"
            )
            return Records()
        self._seen(data)
        return records

    def _seen(self, data: bytes | None) -> None:
        if self.observer is not None:
            self.observer.records_read(data)

    def _warn(self, message: str) -> None:
        if self.observer is not None:
            self.observer.refuse("a warning about the ownership records")
        _warn(message)

    # -- writing -----------------------------------------------------------------------------
    def save(self, records: Records) -> None:
        """Replace the records atomically (a temporary file, fsync'd, renamed over)."""
        try:
            if self._fd is not None:
                self._write(self._fd, records)
                return
            fd = self._open_dir(create=True)
            assert fd is not None
            try:
                self._write(fd, records)
            finally:
                os.close(fd)
        except OSError as e:
            raise OwnershipError(
                f"cannot save the ownership records in {self.dir}: {e.strerror}",
                fix="run as root (sudo binfmtctl ...), or set BINFMTCTL_STATE_DIR to a directory you own",
            ) from None

    def _write(self, dfd: int, records: Records) -> None:
        data = render_records(records)
        write_atomic(dfd, self.name, data)
        if self.observer is not None:
            self.observer.records_written(data)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the writers' lock in the verified directory (concurrent installs of the
        same batch end as one). OwnershipError when the directory cannot be trusted or
        made: then nothing can be recorded, so nothing should be written."""
        try:
            dfd = self._open_dir(create=True)
            assert dfd is not None
        except OSError as e:
            raise OwnershipError(
                f"cannot use the state directory {self.dir}: {e.strerror}",
                fix="run as root (sudo binfmtctl ...), or set BINFMTCTL_STATE_DIR to a directory you own",
            ) from None
        try:
            try:
                lk = os.open(
                    LOCK_NAME,
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dfd,
                )
            except OSError as e:
                raise OwnershipError(
                    f"cannot open the lock {os.path.join(self.dir, LOCK_NAME)}: {e.strerror}",
                    fix=self._dir_fix(),
                ) from None
            try:
                if not stat.S_ISREG(os.fstat(lk).st_mode):
                    raise OwnershipError(
                        f"{os.path.join(self.dir, LOCK_NAME)} is not a regular file",
                        fix=self._dir_fix(),
                    )
                fcntl.flock(lk, fcntl.LOCK_EX)
                clean_tmp(dfd, "owned-")
                self._fd = dfd
                try:
                    yield
                finally:
                    self._fd = None
            finally:
                os.close(lk)
        finally:
            os.close(dfd)
