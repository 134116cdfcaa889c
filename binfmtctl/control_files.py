"""binfmt_misc's two control files, ``register`` and ``status``, explained. Pure.

Every binfmt_misc mount holds them besides the entries. ``register`` is write-only
(mode 0200, and the kernel gives it no read operation), so the classic first look,
``cat /proc/sys/fs/binfmt_misc/register``, fails with ``Invalid argument`` (EINVAL)
even for root on a healthy host. ``show``, ``status`` and ``doctor`` say so when
asked about it, instead of "no such entry".
"""

from __future__ import annotations

from binfmtctl.record import dataclass


@dataclass(frozen=True)
class ControlFile:
    """What a control file is, what reading it gives, and what to do instead."""

    name: str
    mode: str
    message: str
    fix: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "control_file": True,
            "mode": self.mode,
            "message": self.message,
            "fix": self.fix,
        }


def register_write_only(path: str) -> str:
    """The one-line answer to "cat register: Invalid argument"."""
    return (
        f"{path}/register is write-only (mode 0200, no read operation in the kernel): "
        f"`cat {path}/register` fails with 'Invalid argument' (EINVAL) on every healthy host, "
        "root included; that is not a problem with the table. You write one registration line "
        "to it; the entries are the other files of the directory"
    )


def explain(name: str, path: str) -> ControlFile | None:
    """The explanation of control file ``name`` at mount ``path``, or None for other names."""
    if name == "register":
        return ControlFile(
            "register",
            "write-only (0200)",
            register_write_only(path),
            "list the entries: binfmtctl status (or cat one: binfmtctl show NAME); add one: "
            "binfmtctl register ':name:type:offset:magic:mask:interpreter:flags' "
            "(or as root: echo LINE > " + path + "/register)",
        )
    if name == "status":
        return ControlFile(
            "status",
            "read-write (0644)",
            f"{path}/status is the global switch, not an entry: reading it says enabled or "
            "disabled; writing 0 or 1 disables or enables every entry, and -1 removes every "
            "entry (binfmtctl never writes -1 there)",
            "the global state and every entry: binfmtctl status",
        )
    return None
