"""Phrases and fix commands shared by doctor's checks and ``--fix``. Pure."""

from __future__ import annotations

import os

from binfmtctl import table
from binfmtctl.binfmt_misc import is_standard_mount
from binfmtctl.doctor.facts import HostFacts
from binfmtctl.entry import Entry, render_register


# -- helpers for messages --------------------------------------------------------------------------
def qemu_target(entry: Entry) -> str | None:
    found = table.qemu_target(entry)
    return None if found is None else found.target


def is_emulator(entry: Entry) -> bool:
    """An entry that runs ELF binaries through an emulator (QEMU, box64, FEX, ...)."""
    return entry.type == "M" and (
        (entry.offset == 0 and entry.magic.startswith(b"\x7fELF")) or qemu_target(entry) is not None
    )


def reinstall_fix(entry: Entry, what: str) -> str:
    t = qemu_target(entry)
    if t is not None:
        return f"binfmtctl install --replace {t}  ({what})"
    return (
        f"binfmtctl remove {entry.name}, then register it again with a working interpreter ({what})"
    )


def register_cmd(entry: Entry) -> str:
    text = os.fsdecode(render_register(entry))
    return f"binfmtctl register --replace '{text}'"


def mount_fix(facts: HostFacts) -> str:
    ctx = facts.context
    path = facts.mount.path
    if not is_standard_mount(path):  # --mount DIR: doctor --fix mounts only an empty DIR
        return f"mount -t binfmt_misc binfmt_misc {path}  (as root); binfmtctl --mount {path} doctor --fix mounts it there only if the directory is empty"
    if not ctx.proc_sys_writable:
        return "/proc/sys is read-only here (a container?): mount and register on the host, or run the container with --privileged"
    if ctx.euid != 0 or not ctx.has_sys_admin:
        return f"as root on the host: mount -t binfmt_misc binfmt_misc {path}  (or sudo binfmtctl doctor --fix); without root, binfmtctl run gives a private table (Linux >= 6.7)"
    return f"binfmtctl doctor --fix (mounts it), or mount -t binfmt_misc binfmt_misc {path}; at boot: systemctl enable proc-sys-fs-binfmt_misc.mount"


def in_binfmt_d(path: str) -> bool:
    """A path inside a binfmt.d directory (systemd-binfmt's, not update-binfmts')."""
    from pathlib import PurePath  # doctor's persistence checks only: not on status's path

    return "binfmt.d" in PurePath(path).parts[:-1]
