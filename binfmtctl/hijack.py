"""Would an entry take over what the host runs by itself? Decided by matching, not by a list.

binfmt_misc is consulted before the kernel's own ELF and script loaders, so an entry that
matches a native program sends every exec of it to the entry's interpreter (``/bin/true``:
the compiler, node, every shell script "succeed" and do nothing). An entry is judged against
a sample of what this host runs natively, with the kernel-exact matching of :mod:`match`:

* synthetic ELF headers of every class the host kernel runs (its own target and the compat
  personalities of :data:`match.COMPAT_NATIVE`: i386 on x86_64, and x32 where the kernel is
  built with it), for every ``e_type`` it executes (ET_EXEC and ET_DYN), each as a dynamic
  program (PT_PHDR + PT_INTERP), a static one and a static-pie, with EI_OSABI SYSV and GNU;
* ``#!`` scripts (``#!/bin/sh``, ``#! /usr/bin/env python3``, ...);
* the first bytes of a bounded, evenly spread sample of the real files on ``PATH``;
* for ``E`` entries: the extensions (text after the last ``.``) of the executables on
  ``PATH`` (``python3.12`` -> ``12``) and the common script extensions.

:func:`synthetic` and :func:`hijack_problem` are pure; :func:`gather` reads ``PATH``.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from binfmtctl import probe, table
from binfmtctl.entry import Entry
from binfmtctl.errors import Problem
from binfmtctl.match import BUF_SIZE, COMPAT_NATIVE, entry_matches

#: extensions of scripts that run natively through their ``#!`` line
SCRIPT_EXTENSIONS = ("sh", "bash", "zsh", "ksh", "csh", "py", "pl", "rb", "lua", "tcl", "awk")
#: ``#!`` lines as scripts start
SHEBANGS = (
    b"#!/bin/sh\n",
    b"#!/bin/bash\n",
    b"#! /bin/sh\n",
    b"#!/usr/bin/env python3\n",
    b"#!/usr/bin/python3\n",
    b"#!/usr/bin/perl -w\n",
)
#: real files read from PATH at most (spread evenly over each directory)
SAMPLE_LIMIT = 600
PER_DIR_LIMIT = 200
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ET_EXEC, _ET_DYN = 2, 3
_PT_LOAD, _PT_INTERP, _PT_PHDR = 1, 3, 6


@dataclass(frozen=True)
class NativeSamples:
    """What the host runs natively: ``headers`` as (what, first bytes) and ``extensions``
    as (extension, an example path that has it)."""

    headers: tuple[tuple[str, bytes], ...] = ()
    extensions: tuple[tuple[str, str], ...] = ()


# -- synthesis (pure) ---------------------------------------------------------------------------------
def _elf_header(
    t: table.Target, e_type: int, layout: str, osabi: int, e_flags: int, machine: int
) -> bytes:
    """A realistic first 256 bytes: ELF header and the first two program headers."""
    is64, big = t.class_ == 64, t.endian == "big"
    end = ">" if big else "<"
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    base = 0x400000 if e_type == _ET_EXEC else 0
    if t.name in ("i386", "i486") and e_type == _ET_EXEC:
        base = 0x8048000
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1, osabi]) + bytes(8)
    phnum = 13 if layout == "dynamic" else 10
    addr = "Q" if is64 else "I"
    ehdr = ident + struct.pack(
        f"{end}HHI3{addr}I6H",
        e_type,
        machine,
        1,
        base + 0x1040,
        ehsize,
        0x3A50,
        e_flags,
        ehsize,
        phentsize,
        phnum,
        shentsize,
        30,
        29,
    )
    phdrs = b""
    if layout == "dynamic":
        table_size = phnum * phentsize
        first = (_PT_PHDR, 4, ehsize, base + ehsize, table_size, 8)
        interp_at = ehsize + table_size
        second = (_PT_INTERP, 4, interp_at, base + interp_at, 28, 1)
    else:
        first = (_PT_LOAD, 4, 0, base, 0x5E8, 0x1000)
        second = (_PT_LOAD, 5, 0x1000, base + 0x1000, 0x9D, 0x1000)
    for p_type, p_flags, off, vaddr, size, align in (first, second):
        if is64:
            phdrs += struct.pack(
                f"{end}2I6Q", p_type, p_flags, off, vaddr, vaddr, size, size, align
            )
        else:
            phdrs += struct.pack(f"{end}8I", p_type, off, vaddr, vaddr, size, size, p_flags, align)
    return (ehdr + phdrs).ljust(BUF_SIZE, b"\0")


def native_targets(host_machine: str, x32: bool = False) -> list[table.Target]:
    """The table's targets whose binaries this host's kernel runs by itself."""
    try:
        host = table.host_target(host_machine)
    except table.UnknownTargetError:
        return []
    by_name = {t.name: t for t in table.targets()}
    names = (host.name, *COMPAT_NATIVE.get(host.name, ()))
    out = [by_name[n] for n in names if n in by_name]
    if x32 and host.name == "x86_64":
        out.append(_x32(host))
    return out


def _x32(host: table.Target) -> table.Target:
    """ELFCLASS32 with EM_X86_64: run natively by a kernel built with CONFIG_X86_X32_ABI."""
    from dataclasses import replace

    return replace(host, name="x32", class_=32)


def synthetic(host_machine: str, x32: bool = False) -> tuple[tuple[str, bytes], ...]:
    """Headers of everything the host runs natively (see the module doc). Pure."""
    out: list[tuple[str, bytes]] = []
    for t in native_targets(host_machine, x32):
        try:
            e_flags = probe.toolchain_e_flags(t.name)
        except probe.UnknownTargetError:
            e_flags = 0
        for e_type, kind in ((_ET_EXEC, "ET_EXEC (non-PIE)"), (_ET_DYN, "ET_DYN (PIE)")):
            for layout in ("dynamic", "static"):
                for osabi in (0, 3):
                    what = f"{t.name} ELF {kind}, {layout}" + (", OSABI GNU" if osabi else "")
                    if e_type == _ET_DYN and layout == "static":
                        what = f"{t.name} ELF ET_DYN (static-pie)" + (
                            ", OSABI GNU" if osabi else ""
                        )
                    header = _elf_header(t, e_type, layout, osabi, e_flags, t.machine)
                    out.append((what, header))
    out += [(f"#! script ({line.decode().strip()})", line) for line in SHEBANGS]
    return tuple(out)


def extensions_of(names: Iterable[str]) -> dict[str, str]:
    """extension -> an example name, as the kernel sees them (after the last '.')."""
    out: dict[str, str] = {}
    for n in names:
        dot = n.rfind(".")
        if dot >= 0 and "/" not in n[dot + 1 :]:
            out.setdefault(n[dot + 1 :], n)
    return out


def samples(
    host_machine: str,
    path_headers: Sequence[tuple[str, bytes]] = (),
    path_names: Sequence[str] = (),
    *,
    x32: bool = False,
) -> NativeSamples:
    """All of it, from the facts gathered at the edge. Pure."""
    exts = {e: f"script.{e}" for e in SCRIPT_EXTENSIONS}
    exts.update(extensions_of(path_names))
    return NativeSamples(
        synthetic(host_machine, x32) + tuple(path_headers), tuple(sorted(exts.items()))
    )


# -- the judgement (pure) ---------------------------------------------------------------------------
def native_hits(entry: Entry, native: NativeSamples) -> list[str]:
    """What the entry would take over (labels of matching samples), in sample order."""
    if entry.type == "E":
        return [
            f"{example} (extension .{ext})"
            for ext, example in native.extensions
            if entry_matches(entry, b"", example)
        ]
    return [what for what, header in native.headers if entry_matches(entry, header, None)]


def hijack_problem(entry: Entry, native: NativeSamples) -> Problem | None:
    """An entry matching what the host runs natively hijacks every exec of it."""
    hits = native_hits(entry, native)
    if not hits:
        return None
    more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
    return Problem(
        "extension" if entry.type == "E" else "magic",
        f"{entry.name!r} matches what this host runs natively ({'; '.join(hits[:3])}{more}): "
        f"every exec of them would go to {entry.interpreter}, which can make the host unusable",
        "use the magic/mask of a foreign architecture (binfmtctl gen TARGET) or an extension no "
        "native program has, or pass --force if this is really meant",
        errno=None,
        severity="error",
        rule="safety.host-match",
    )


# -- the edge ---------------------------------------------------------------------------------------
def _read_head(path: str) -> bytes | None:
    """The first bytes of a regular file (never blocks on a FIFO or device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, BUF_SIZE)
    except OSError:
        return None
    finally:
        os.close(fd)


def _spread(items: list[str], limit: int) -> list[str]:
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def scan_path(path_var: str | None = None) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(first bytes of a bounded sample of the executables on PATH, every name on PATH)."""
    dirs = [d for d in (path_var or DEFAULT_PATH).split(":") if d.startswith("/")]
    names: list[str] = []
    chosen: list[str] = []
    seen_dirs: set[str] = set()
    for d in dirs:
        real = os.path.realpath(d)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            listing = sorted(os.listdir(d))
        except OSError:
            continue
        names += listing
        chosen += [os.path.join(d, n) for n in _spread(listing, PER_DIR_LIMIT)]
    headers: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for p in _spread(chosen, SAMPLE_LIMIT):
        real = os.path.realpath(p)
        if real in seen:
            continue
        seen.add(real)
        head = _read_head(p)
        if head:
            headers.append((p, head))
    return headers, names


def kernel_has_x32() -> bool:
    """Was this kernel built with CONFIG_X86_X32_ABI (then x32 ELF runs natively)?"""
    import gzip

    release = os.uname().release
    for p in ("/proc/config.gz", f"/boot/config-{release}"):
        try:
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rt") as f:
                return any(line.strip() == "CONFIG_X86_X32_ABI=y" for line in f)
        except OSError:
            continue
    return False


def gather(host_machine: str | None = None) -> NativeSamples:
    """What this host runs natively. Edge: reads PATH (the default PATH too)."""
    machine = host_machine or os.uname().machine
    path_var = ":".join(
        dict.fromkeys((os.environ.get("PATH") or "").split(":") + DEFAULT_PATH.split(":"))
    )
    headers, names = scan_path(path_var)
    return samples(machine, headers, names, x32=kernel_has_x32())
