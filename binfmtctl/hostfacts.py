"""The host facts ``apply``'s checks are decided from, each read one way.

Light on purpose: it imports only built-in modules (``os``, ``stat``, ``errno``), so the
boot plan (:mod:`binfmtctl.bootplan`) can re-read, at boot, exactly the facts the full
``apply`` read through these same functions, and compare them with the ones it recorded.
:mod:`binfmtctl.trust`, :mod:`binfmtctl.binfmt_misc` and :mod:`binfmtctl.hijack` read
them through here too, so what is recorded is what was judged.
"""

from __future__ import annotations

import errno as errno_mod
import os
import stat

#: the kernel reads the first BINPRM_BUF_SIZE bytes of a file for binfmt_misc's magic test
BUF_SIZE = 256

#: what :func:`lookup` says about one path component: (uid, mode, symlink target or None)
NodeFacts = tuple[int, int, "str | None"]


def lookup(path: str) -> NodeFacts | None:
    """lstat (and readlink) one component; None when it does not exist or cannot be read."""
    try:
        st = os.lstat(path)
        target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    except (OSError, ValueError):
        return None
    return (st.st_uid, st.st_mode, target)


def exec_errno(path: str) -> str | None:
    """The errno ``open_exec()`` would give for ``path`` (what F checks at registration)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return errno_mod.errorcode.get(e.errno or 0, "ENOENT")
    except ValueError:
        return "EINVAL"
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        return "EACCES"
    try:
        if os.statvfs(path).f_flag & os.ST_NOEXEC:
            return "EACCES"
    except OSError:
        pass
    return None


def read_head(path: str, size: int = BUF_SIZE) -> bytes | None:
    """The first bytes of a regular file (never blocks on a FIFO or device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def unescape_mountinfo(s: str) -> str:
    return (
        s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
    )


def parse_mountinfo(text: str, path: str) -> tuple[str, str] | None:
    """(fstype, mount options) of the top-most mount at ``path``, or None. Pure."""
    found = None
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) < 10 or "-" not in parts:
            continue
        sep = parts.index("-")
        if unescape_mountinfo(parts[4]) != path:
            continue
        fstype = parts[sep + 1]
        opts = parts[5] + "," + (parts[sep + 3] if len(parts) > sep + 3 else "")
        found = (fstype, opts)
    return found


def read_mountinfo() -> str:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return ""
