"""Would an entry take over what the host runs by itself? Decided by matching, not by a list.

binfmt_misc is consulted before the kernel's own ELF and script loaders, so an entry that
matches a native program sends every exec of it to the entry's interpreter (``/bin/true``:
the compiler, node, every shell script "succeed" and do nothing). An entry is judged against
a sample of what this host runs natively, with the kernel-exact magic/mask/offset match of
:meth:`Entry.matches_header` and the last-dot extension rule of ``E`` entries:

* synthetic ELF headers of every class the host kernel runs: its own (class, byte order,
  machine and e_flags read from the running Python, a native program) and the compat
  personalities of :data:`COMPAT` (i386 and i486 on x86_64; x32 where the kernel is built
  with CONFIG_X86_X32_ABI), for every ``e_type`` it executes (ET_EXEC and ET_DYN), each
  as a dynamic program (PT_PHDR + PT_INTERP) and a static one / static-pie, with EI_OSABI
  SYSV and GNU;
* ``#!`` scripts (``#!/bin/sh``, ``#! /bin/sh``, ``#!/usr/bin/env python3``, ...);
* the first bytes of a bounded, evenly spread sample of the real files on ``PATH``;
* for ``E`` entries: the extensions (text after the last ``.``) of the names on ``PATH``
  (``python3.12`` -> ``12``) and the common script extensions.

Deliberately free of the QEMU table (``apply`` runs at boot and stays light); the test
suite checks :data:`COMPAT` against ``match.COMPAT_NATIVE``.
:func:`synthetic`, :func:`samples` and :func:`hijack_problem` are pure; :func:`gather`
reads ``/proc/self/exe`` and ``PATH``.
"""

from __future__ import annotations

import os
import stat
import struct

from binfmtctl.entry import Entry
from binfmtctl.errors import Problem
from binfmtctl.hostfacts import read_head
from binfmtctl.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only for the checker: the boot-time apply imports this module
    from collections.abc import Iterable, Sequence
    from typing import Literal, TypeVar

    _T = TypeVar("_T")

#: what the kernel reads of a file to match it (BINPRM_BUF_SIZE)
BUF_SIZE = 256
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
EM_386, EM_486, EM_SPARC, EM_MIPS, EM_SPARC32PLUS = 3, 6, 2, 8, 18
EM_PPC, EM_PPC64, EM_SPARCV9, EM_X86_64 = 20, 21, 43, 62


@dataclass(frozen=True)
class Identity:
    """One kind of ELF the host kernel runs: ``name`` for messages."""

    name: str
    class_: int  # 32 or 64
    endian: str  # "little" or "big"
    machine: int
    e_flags: int = 0


#: (class, e_machine) of a 64-bit host -> the 32-bit personalities its kernel also runs
#: (the kernel's compat ELF loaders; mirrors match.COMPAT_NATIVE). Not listed: aarch64 ->
#: arm (AArch32 at EL0 is optional), riscv64 -> riscv32. x32 is added where built in.
COMPAT: dict[tuple[int, int], tuple[tuple[str, int, int], ...]] = {
    (64, EM_X86_64): (("i386", EM_386, 0), ("i486", EM_486, 0)),
    (32, EM_386): (("i486", EM_486, 0),),
    (64, EM_PPC64): (("ppc", EM_PPC, 0),),
    (64, EM_SPARCV9): (("sparc", EM_SPARC, 0), ("sparc32plus", EM_SPARC32PLUS, 0x100)),
    (64, EM_MIPS): (("mips o32", EM_MIPS, 0x70001001), ("mips n32", EM_MIPS, 0x80000021)),
}


@dataclass(frozen=True)
class NativeSamples:
    """What the host runs natively: ``headers`` as (what, first bytes) and ``extensions``
    as (extension, an example path that has it)."""

    headers: tuple[tuple[str, bytes], ...] = ()
    extensions: tuple[tuple[str, str], ...] = ()
    #: memo of :func:`native_hits`: the samples grouped by the bytes of each (offset,
    #: length) window an entry looks at, and each (offset, magic, mask) judged so far
    memo: dict[object, object] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )


# -- synthesis (pure) ---------------------------------------------------------------------------------
def host_identity(header: bytes, name: str | None = None) -> Identity | None:
    """The ELF identity of a native program's header (the running Python's); ``name`` for
    messages (``uname -m``)."""
    if len(header) < 52 or not header.startswith(b"\x7fELF") or header[4] not in (1, 2):
        return None
    class_ = 32 if header[4] == 1 else 64
    order: Literal["little", "big"] = "big" if header[5] == 2 else "little"
    endian = order
    machine = int.from_bytes(header[18:20], order)
    at = 36 if class_ == 32 else 48
    e_flags = int.from_bytes(header[at : at + 4], order)
    return Identity(name or f"e_machine {machine}", class_, endian, machine, e_flags)


def identities(host: Identity, x32: bool = False) -> list[Identity]:
    """The host's own identity and its compat personalities."""
    out = [host]
    for name, machine, e_flags in COMPAT.get((host.class_, host.machine), ()):
        out.append(Identity(name, 32, host.endian, machine, e_flags))
    if x32 and (host.class_, host.machine) == (64, EM_X86_64):
        out.append(Identity("x32", 32, host.endian, EM_X86_64, 0))
    return out


def _elf_header(t: Identity, e_type: int, layout: str, osabi: int) -> bytes:
    """A realistic first 256 bytes: ELF header and the first two program headers."""
    is64, big = t.class_ == 64, t.endian == "big"
    end = ">" if big else "<"
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    base = (0x400000 if is64 else 0x8048000) if e_type == _ET_EXEC else 0
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1, osabi]) + bytes(8)
    phnum = 13 if layout == "dynamic" else 10
    addr = "Q" if is64 else "I"
    ehdr = ident + struct.pack(
        f"{end}HHI3{addr}I6H",
        e_type,
        t.machine,
        1,
        base + 0x1040,
        ehsize,
        0x3A50,
        t.e_flags,
        ehsize,
        phentsize,
        phnum,
        shentsize,
        30,
        29,
    )
    if layout == "dynamic":
        table_size = phnum * phentsize
        first = (_PT_PHDR, 4, ehsize, base + ehsize, table_size, 8)
        interp_at = ehsize + table_size
        second = (_PT_INTERP, 4, interp_at, base + interp_at, 28, 1)
    else:
        first = (_PT_LOAD, 4, 0, base, 0x5E8, 0x1000)
        second = (_PT_LOAD, 5, 0x1000, base + 0x1000, 0x9D, 0x1000)
    phdrs = b""
    for p_type, p_flags, off, vaddr, size, align in (first, second):
        if is64:
            phdrs += struct.pack(
                f"{end}2I6Q", p_type, p_flags, off, vaddr, vaddr, size, size, align
            )
        else:
            phdrs += struct.pack(f"{end}8I", p_type, off, vaddr, vaddr, size, size, p_flags, align)
    return (ehdr + phdrs).ljust(BUF_SIZE, b"\0")


_KINDS = (
    (_ET_EXEC, "dynamic", "ET_EXEC (non-PIE), dynamic"),
    (_ET_EXEC, "static", "ET_EXEC (non-PIE), static"),
    (_ET_DYN, "dynamic", "ET_DYN (PIE), dynamic"),
    (_ET_DYN, "static", "ET_DYN (static-pie)"),
)


def synthetic(host: Identity | None, x32: bool = False) -> tuple[tuple[str, bytes], ...]:
    """Headers of everything the host runs natively (see the module doc). Pure."""
    out: list[tuple[str, bytes]] = []
    for t in identities(host, x32) if host is not None else []:
        for e_type, layout, kind in _KINDS:
            for osabi in (0, 3):
                what = f"{t.name} ELF {kind}" + (", OSABI GNU" if osabi else "")
                out.append((what, _elf_header(t, e_type, layout, osabi)))
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
    host: Identity | None,
    path_headers: Sequence[tuple[str, bytes]] = (),
    path_names: Sequence[str] = (),
    *,
    x32: bool = False,
) -> NativeSamples:
    """All of it, from the facts gathered at the edge. Pure. Of the PATH files only those
    the kernel runs by itself count: ``#!`` scripts and ELF of a native class (a foreign
    ELF, a jar or an .exe on PATH needs binfmt_misc anyway)."""
    exts = {e: f"script.{e}" for e in SCRIPT_EXTENSIONS}
    exts.update(extensions_of(path_names))
    kinds = {(i.class_, i.endian, i.machine) for i in identities(host, x32)} if host else set()
    real = tuple((p, h) for p, h in path_headers if runs_natively(h, kinds))
    return NativeSamples(synthetic(host, x32) + real, tuple(sorted(exts.items())))


def runs_natively(header: bytes, kinds: set[tuple[int, str, int]]) -> bool:
    """A ``#!`` script, or an ELF whose (class, byte order, machine) is one of ``kinds``."""
    if header.startswith(b"#!"):
        return True
    ident = host_identity(header)
    return ident is not None and (ident.class_, ident.endian, ident.machine) in kinds


def _matches(entry: Entry, header: bytes | None, path: str | None) -> bool:
    """The kernel's test (ignoring enabled state): E by the text after the last '.' of the
    exec'd path, M by magic under mask at offset in the zero-filled first 256 bytes."""
    if entry.type == "E":
        dot = -1 if path is None else path.rfind(".")
        return (
            path is not None
            and dot >= 0
            and bool(entry.extension)
            and (path[dot + 1 :] == entry.extension)
        )
    return header is not None and entry.matches_header(header[:BUF_SIZE])


# -- the judgement (pure) ---------------------------------------------------------------------------
def native_hits(entry: Entry, native: NativeSamples) -> list[str]:
    """What the entry would take over (labels of matching samples), in sample order.

    The kernel's test (:meth:`Entry.matches_header`, tested to agree), done once per
    distinct window rather than once per sample: the samples are grouped by the bytes at
    the entry's (offset, length) window of their zero-filled first 256 bytes (a few dozen
    groups of ~500 samples for a 20-byte ELF window), each group is compared as one integer
    under the mask, and the result is memoized per (offset, magic, mask) in ``native``
    (doctor's host-hijack and host-family checks ask about the same entry)."""
    if entry.type == "E":
        return [
            f"{example} (extension .{ext})"
            for ext, example in native.extensions
            if _matches(entry, None, example)
        ]
    if entry.type != "M":
        return []
    if entry.mask is not None and len(entry.mask) != len(entry.magic):
        entry.matches_header(b"")  # raises as the kernel-exact test does
    key = ("hits", entry.offset, entry.magic, entry.mask)
    hits = native.memo.get(key)
    if hits is None:
        hits = native.memo[key] = _window_hits(entry, native)
    assert isinstance(hits, list)
    return list(hits)


def _window_hits(entry: Entry, native: NativeSamples) -> list[str]:
    offset, size = entry.offset, len(entry.magic)
    groups = native.memo.get(("window", offset, size))
    if groups is None:
        by_bytes: dict[bytes, list[int]] = {}
        for i, (_, header) in enumerate(native.headers):
            window = header[:BUF_SIZE][offset : offset + size].ljust(size, b"\0")
            by_bytes.setdefault(window, []).append(i)
        groups = native.memo[("window", offset, size)] = [
            (int.from_bytes(w, "big"), idxs) for w, idxs in by_bytes.items()
        ]
    assert isinstance(groups, list)
    magic = int.from_bytes(entry.magic, "big")
    mask = (1 << (8 * size)) - 1 if entry.mask is None else int.from_bytes(entry.mask, "big")
    # the groups once more by their bytes under this mask (entries share a few masks: the
    # QEMU ones differ only in e_machine), then one lookup per entry
    masked = native.memo.get(("masked", offset, size, mask))
    if masked is None:
        by_masked: dict[int, list[int]] = {}
        for w, idxs in groups:
            by_masked.setdefault(w & mask, []).extend(idxs)
        masked = native.memo[("masked", offset, size, mask)] = by_masked
    assert isinstance(masked, dict)
    return [native.headers[i][0] for i in sorted(masked.get(magic & mask, ()))]


def hijack_problem(entry: Entry, native: NativeSamples) -> Problem | None:
    """An entry matching what the host runs natively hijacks every exec of it."""
    hits = native_hits(entry, native)
    if not hits:
        return None
    kinds = [h for h in hits if not h.startswith("/")]  # synthetic samples: kinds of program
    real = [h for h in hits if h.startswith("/")]  # files sampled from PATH
    what = "; ".join(kinds[:3]) + (f"; and {len(kinds) - 3} more kinds" if len(kinds) > 3 else "")
    if real:
        what += ("; " if what else "") + (
            f"{len(real)} of the programs sampled from PATH, e.g. {', '.join(real[:2])}"
        )
    return Problem(
        "extension" if entry.type == "E" else "magic",
        f"{entry.name!r} matches what this host runs natively ({what}): every exec of them "
        f"would go to {entry.interpreter}, which can make the host unusable",
        "use the magic/mask of a foreign architecture (binfmtctl gen TARGET) or an extension no "
        "native program has, or pass --force if this is really meant",
        errno=None,
        severity="error",
        rule="safety.host-match",
    )


# -- the edge ---------------------------------------------------------------------------------------
_read_head = read_head


def _spread(items: list[_T], limit: int) -> list[_T]:
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def scan_path(
    path_var: str | None = None, *, read_heads: bool = True
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(first bytes of a bounded sample of the executables on PATH, every name on PATH).

    A file is read once however many names it has, by its real path: the directory's real
    path joined with the name for anything but a symlink, the opened file's name for a
    symlink (``realpath`` would cost an ``lstat`` per component of each)."""
    dirs = [d for d in (path_var or DEFAULT_PATH).split(":") if d.startswith("/")]
    names: list[str] = []
    chosen: list[tuple[str, str | None]] = []  # (path, real path; None for a symlink)
    seen_dirs: set[str] = set()
    for d in dirs:
        real = os.path.realpath(d)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            with os.scandir(d) as it:
                listing = sorted((e.name, e.is_symlink()) for e in it)
        except OSError:
            continue
        names += [n for n, _ in listing]
        for n, link in _spread(listing, PER_DIR_LIMIT):
            chosen.append((os.path.join(d, n), None if link else os.path.join(real, n)))
    headers: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for p, known in _spread(chosen, SAMPLE_LIMIT) if read_heads else ():
        if known is None:  # a symlink: its target's path, from the descriptor that reads it
            head, target = _read_link_target(p)
            if target is None or target in seen:
                continue
            seen.add(target)
        else:
            if known in seen:
                continue
            seen.add(known)
            head = _read_head(p)
        if head:
            headers.append((p, head))
    return headers, names


def _read_link_target(path: str) -> tuple[bytes | None, str | None]:
    """(the first bytes, the real path) of what a symlink leads to, with one open: the
    kernel names the opened file (``/proc/self/fd``) as ``realpath`` would, without an
    ``lstat`` per component. (None, None) when it cannot be opened (nothing to read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (OSError, ValueError):
        return None, None
    try:
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            real = os.path.realpath(path)  # no /proc
        if not real.startswith("/"):  # not a path (an anonymous file): resolve by name
            real = os.path.realpath(path)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, real
        return os.read(fd, BUF_SIZE), real
    except OSError:
        return None, None
    finally:
        os.close(fd)


def kernel_has_x32() -> bool:
    """Was this kernel built with CONFIG_X86_X32_ABI (then x32 ELF runs natively)?"""
    release = os.uname().release
    for p in ("/proc/config.gz", f"/boot/config-{release}"):
        try:
            with open(p, "rb") as f:
                data = f.read()
            if p.endswith(".gz"):
                import zlib

                data = zlib.decompress(data, wbits=31)  # the gzip container
        except Exception:  # unreadable, or a corrupt config.gz (zlib.error): says nothing
            continue
        # a whole line, as the config file writes it (a search first: ~10,000 lines)
        needle = b"CONFIG_X86_X32_ABI=y"
        return needle in data and any(line.strip() == needle for line in data.splitlines())
    return False


def _fixed_bytes(kind: tuple[int, str, int]) -> dict[int, int]:
    """The bytes every ELF file of ``kind`` (class, byte order, machine) has, by offset."""
    class_, endian, machine = kind
    order: Literal["little", "big"] = "big" if endian == "big" else "little"
    fixed = dict(enumerate(b"\x7fELF"))
    fixed[4], fixed[5] = (2 if class_ == 64 else 1), (2 if endian == "big" else 1)
    fixed.update(zip((18, 19), machine.to_bytes(2, order), strict=True))
    return fixed


def _excluded_by(entry: Entry, fixed: dict[int, int]) -> bool:
    """Some byte the entry tests is fixed in every such file, and differs under the mask."""
    for i, want in enumerate(entry.magic):
        have = fixed.get(entry.offset + i)
        mask = 0xFF if entry.mask is None else entry.mask[i]
        if have is not None and have & mask != want:
            return True
    return False


def may_match_path_files(entry: Entry, kinds: set[tuple[int, str, int]]) -> bool:
    """Could ``entry`` match any file :func:`samples` keeps from PATH (a ``#!`` script or an
    ELF of one of ``kinds``)? False only where a byte the entry tests is fixed in every such
    file and differs: then reading PATH's files cannot change its verdict. Pure."""
    if entry.type != "M" or (entry.mask is not None and len(entry.mask) != len(entry.magic)):
        return entry.type == "M"
    if not _excluded_by(entry, {0: ord("#"), 1: ord("!")}):
        return True
    return not all(_excluded_by(entry, _fixed_bytes(k)) for k in kinds)


def _host() -> tuple[Identity | None, bool, set[tuple[int, str, int]]]:
    """(identity of this host's programs, x32 runs natively, their (class, byte order,
    machine) kinds). Edge: reads /proc/self/exe and the kernel's config."""
    host = host_identity(_read_head("/proc/self/exe") or b"", os.uname().machine)
    # x32 only adds a personality to an x86_64 host (identities()): no config read elsewhere
    x32 = host is not None and (host.class_, host.machine) == (64, EM_X86_64) and kernel_has_x32()
    kinds = {(i.class_, i.endian, i.machine) for i in identities(host, x32)} if host else set()
    return host, x32, kinds


def gather(candidates: Sequence[Entry] | None = None) -> NativeSamples:
    """What this host runs natively. Edge: reads /proc/self/exe and PATH (and the default
    PATH, since root's exec may use it). With ``candidates`` (the entries to be judged), the
    files on PATH are read only if one of them could match such a file
    (:func:`may_match_path_files`): QEMU's entries name a foreign e_machine, so a boot-time
    ``apply`` of them opens no program on PATH, with the same verdicts. The names on PATH
    matter only to E entries (their extensions): such a batch of M entries does not even
    list PATH's directories (3 to 5 ms of a ``binfmtctl validate`` here)."""
    return gather_listing(candidates)[0]


def gather_listing(
    candidates: Sequence[Entry] | None = None,
) -> tuple[NativeSamples, bool]:
    """:func:`gather`, and whether it listed PATH (read its programs, or took the names
    for an E entry): then the samples depend on PATH, which a boot plan does not record."""
    host, x32, kinds = _host()
    path_var = ":".join(
        dict.fromkeys((os.environ.get("PATH") or "").split(":") + DEFAULT_PATH.split(":"))
    )
    read = candidates is None or any(may_match_path_files(e, kinds) for e in candidates)
    listed = read or (candidates is not None and any(e.type != "M" for e in candidates))
    headers, names = scan_path(path_var, read_heads=read) if listed else ([], [])
    return samples(host, headers, names, x32=x32), listed
