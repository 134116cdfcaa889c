"""The binfmt_misc mount as a read sees it, without side effects: its state, its entry
names, and the errno F's ``open_exec()`` would give an interpreter.

Split from :mod:`binfmtctl.binfmt_misc` (which re-exports these names) so that a read such
as ``binfmtctl validate`` learns what it needs about the live table without importing the
writer (its journal, rollback, subprocesses). Nothing here mounts, writes or locks.
"""

from __future__ import annotations

import os

from binfmtctl.hostfacts import exec_errno, parse_mountinfo, read_mountinfo
from binfmtctl.record import dataclass

DEFAULT_MOUNT = "/proc/sys/fs/binfmt_misc"
CONTROL_FILES = ("register", "status")


def mount_path(path: str | None = None) -> str:
    """The mount a command works on: ``--mount``, else $BINFMTCTL_MOUNT, else the default."""
    return path or os.environ.get("BINFMTCTL_MOUNT") or DEFAULT_MOUNT


# -- pure -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MountState:
    """``state`` is one of: mounted, automount (systemd autofs not yet triggered),
    not-mounted, unsupported (kernel has no binfmt_misc), missing (no such directory)."""

    state: str
    path: str
    read_only: bool = False
    options: str = ""

    def to_json(self) -> dict[str, object]:
        return {"state": self.state, "path": self.path, "read_only": self.read_only}


def filesystems_has_binfmt(text: str) -> bool:
    return any(line.split()[-1:] == ["binfmt_misc"] for line in text.splitlines())


def mount_state(
    path: str, mountinfo: str, filesystems: str | None, path_exists: bool
) -> MountState:
    """Pure decision from the facts: the mount table, /proc/filesystems, the directory."""
    top = parse_mountinfo(mountinfo, path)
    if top is not None:
        fstype, opts = top
        ro = "ro" in opts.split(",")
        if fstype == "binfmt_misc":
            return MountState("mounted", path, ro, opts)
        if fstype == "autofs":
            return MountState("automount", path, ro, opts)
    if not path_exists:
        return MountState("missing", path)
    if filesystems is not None and not filesystems_has_binfmt(filesystems):
        # It may still be a loadable module: mount autoloads it (MODULE_ALIAS_FS).
        return MountState("unsupported", path)
    return MountState("not-mounted", path)


# -- reading (no side effects) -------------------------------------------------------------------
def _read_text(path: str) -> str | None:
    """The file's text (undecodable bytes kept as os.fsdecode keeps them), None if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return None


def read_mount_state(path: str) -> MountState:
    """The state of ``path``, from the mount table, /proc/filesystems and the directory."""
    mountinfo = read_mountinfo()
    filesystems = _read_text("/proc/filesystems")
    st = mount_state(path, mountinfo, filesystems, os.path.isdir(path))
    has_register = os.path.exists(os.path.join(path, "register"))
    if st.state == "not-mounted" and has_register:
        # mountinfo may not name the path (e.g. a bind from elsewhere); the files decide
        return MountState("mounted", path)
    if st.state == "mounted" and not has_register:
        # listed, but hidden under a later mount of a parent directory
        return MountState("not-mounted", path)
    return st


def entry_names(path: str) -> list[str]:
    """Entry names in kernel match order (newest first). Raises OSError."""
    return [
        os.fsdecode(n) for n in os.listdir(os.fsencode(path)) if os.fsdecode(n) not in CONTROL_FILES
    ]


#: the errno open_exec() would give (the fact F checks at registration): binfmtctl.hostfacts
open_exec_errno = exec_errno
