"""What each boot-time source registers for an entry name, and how that differs from the
live entry: the registration a reboot brings back.

:func:`read_definition` (edge) reads one source file's definition of a name: a binfmt.d
file (its last rule of that name, as systemd-binfmt applies them), an update-binfmts
format file (``/usr/share/binfmts/NAME``) or update-binfmts' database
(``/var/lib/binfmts/NAME``). :func:`differences` (pure) says, field by field, how a
definition differs from the live entry.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from binfmtctl.entry import Entry, iter_binfmt_d_lines, parse_register, parse_update_binfmts
from binfmtctl.errors import BinfmtctlError
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.rootfs import read_regular


def _flags(flags: str) -> str:
    return flags or "none"


def differences(live: Entry, boot: Entry) -> list[str]:
    """How ``boot`` differs from ``live``, one phrase per field ("flags OPF instead of PF")."""
    out: list[str] = []
    if live.type != boot.type:
        out.append(f"type {boot.type} instead of {live.type}")
    if live.interpreter != boot.interpreter:
        out.append(f"interpreter {boot.interpreter} instead of {live.interpreter}")
    if live.flags != boot.flags:
        out.append(f"flags {_flags(boot.flags)} instead of {_flags(live.flags)}")
    if live.offset != boot.offset:
        out.append(f"offset {boot.offset} instead of {live.offset}")
    if live.magic != boot.magic or live.mask != boot.mask:
        out.append("another magic/mask" if live.type == "M" else "")
    if live.extension != boot.extension:
        out.append(f"extension {boot.extension} instead of {live.extension}")
    return [d for d in out if d]


def read_definition(path: str, name: str) -> Entry | None:
    """The entry ``path`` registers under ``name`` at boot, or None (unreadable, no such
    rule, or a rule the kernel would refuse: then nothing of that name comes from it)."""
    try:
        data = read_regular(path)  # regular files only: a FIFO must not hang doctor
    except (OSError, BinfmtctlError):
        return None
    parts = Path(path).parts
    running = KernelProfile.current_default()  # the kernel that will read it at boot
    with contextlib.suppress(BinfmtctlError, ValueError):
        if "binfmt.d" in parts[:-1]:
            found: Entry | None = None
            for _, rule in iter_binfmt_d_lines(data):
                with contextlib.suppress(BinfmtctlError, ValueError):
                    e = parse_register(rule, running)
                    if e.name == name:
                        found = e
            return found
        if "binfmts" in parts[:-1] and os.path.basename(path) == name:
            from binfmtctl.persist import parse_binfmts_admin

            if "lib" in parts:  # /var/lib/binfmts: update-binfmts' own database
                return parse_binfmts_admin(name, data, running)
            return parse_update_binfmts(name, data, running)
    return None


def definitions(
    sources: Mapping[str, Iterable[str]], skip: Iterable[str] = ()
) -> dict[str, tuple[tuple[str, Entry], ...]]:
    """name -> ((file, entry) for each source file defining it), files in ``skip`` left out
    (binfmtctl's config: it is compared on its own). Edge (reads the files)."""
    skipped = set(skip)
    out: dict[str, tuple[tuple[str, Entry], ...]] = {}
    for name, files in sources.items():
        found = []
        for f in files:
            if f in skipped:
                continue
            e = read_definition(f, name)
            if e is not None:
                found.append((f, e))
        if found:
            out[name] = tuple(found)
    return out
