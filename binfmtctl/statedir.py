"""binfmtctl's private directories (the state directory of the ownership records, the boot
plan cache): where the state directory is, when a directory can be trusted, and the
atomic, symlink-safe file writes both make.

Built-in modules only: the boot plan's replay (:mod:`binfmtctl.bootplan`) writes the
ownership records through the same functions :mod:`binfmtctl.ownership` does.
"""

from __future__ import annotations

import os
import stat

DEFAULT_STATE_DIR = "/run/binfmtctl"
STATE_ENV = "BINFMTCTL_STATE_DIR"
LOCK_NAME = "lock"
TMP_SUFFIX = ".tmp"


def state_dir_path(path: str | None = None) -> str:
    """The state directory: ``path``, else $BINFMTCTL_STATE_DIR, else /run/binfmtctl."""
    return path or os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR


def dir_problem(st: os.stat_result, euid: int) -> str | None:
    """Why a private directory with these facts cannot be trusted (None: it can)."""
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != euid:
        return f"is owned by uid {st.st_uid}, not by uid {euid} who runs binfmtctl"
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def write_atomic(dfd: int, name: str, data: bytes) -> None:
    """Replace ``name`` in the directory ``dfd``: a 0600 temporary file (whatever the
    umask, never through a symlink), fsync'd, renamed over. Nothing is left on failure."""
    tmp = f"{name}.{os.getpid()}{TMP_SUFFIX}"
    try:  # noqa: SIM105 (contextlib costs an import at boot)
        os.unlink(tmp, dir_fd=dfd)
    except FileNotFoundError:
        pass
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
    )
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp, dfd)
        raise
    os.close(fd)
    try:
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError:
        _unlink_quietly(tmp, dfd)
        raise


def clean_tmp(dfd: int, prefix: str) -> None:
    """Under the writers' lock no other writer runs: every temporary file of ``prefix``
    in the directory is a killed run's."""
    for n in os.listdir(dfd):
        if n.startswith(prefix) and n.endswith(TMP_SUFFIX):
            _unlink_quietly(n, dfd)


def _unlink_quietly(name: str, dfd: int) -> None:
    try:  # noqa: SIM105 (contextlib costs an import at boot)
        os.unlink(name, dir_fd=dfd)
    except OSError:
        pass
