"""Which binfmt_misc entry the kernel would pick for a file, and why the others did not match.

Mirrors ``check_file()`` in ``fs/binfmt_misc.c``: entries are walked newest first (the order
``entries`` must be given in); the first *enabled* entry that matches wins; nothing matches
while the global ``status`` is disabled.

- ``M`` entries compare ``magic`` under ``mask`` at ``offset`` in the first 256 bytes of the
  file (zero-filled past the end of a short file).
- ``E`` entries compare their extension, case-sensitively, with the text after the *last* ``.``
  of the path string given to exec (``x.tar.gz`` -> ``gz``; ``dir.d/prog`` -> ``d/prog``,
  which never matches, since an extension cannot contain ``/``).

A *near miss* is an ``M`` entry that agrees with the file on the first four bytes of its magic
(the format signature, ``\\x7fELF`` for every QEMU entry; at least one of those bytes under a
non-zero mask) but differs later. Entries for other formats (``MZ``, pyc, ``PK``...) are not
near misses. The first differing byte is named by its ELF header field when the file is ELF.

Pure: no I/O; only :func:`native` reads ``os.uname()`` when no host machine is given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from binfmtctl import table
from binfmtctl.entry import Entry
from binfmtctl.record import dataclass, field

ELF_MAGIC = b"\x7fELF"
#: the kernel's buffer (BINPRM_BUF_SIZE): magic + offset never reach past it
BUF_SIZE = 256
#: how many leading magic bytes must agree for a mismatch to count as a near miss
NEAR_PREFIX = 4


# -- extension ------------------------------------------------------------------------------------
def path_extension(path: str) -> str | None:
    """What the kernel compares with E entries: the text after the last '.' of the whole path."""
    dot = path.rfind(".")
    return None if dot < 0 else path[dot + 1 :]


def entry_matches(entry: Entry, header: bytes, path: str | None) -> bool:
    """Would ``entry`` match (ignoring enabled state)?"""
    if entry.type == "E":
        ext = None if path is None else path_extension(path)
        return ext is not None and bool(entry.extension) and ext == entry.extension
    return entry.matches_header(header[:BUF_SIZE])


# -- ELF field names ------------------------------------------------------------------------------
_IDENT = (
    (0, 4, "EI_MAG"),
    (4, 1, "EI_CLASS"),
    (5, 1, "EI_DATA"),
    (6, 1, "EI_VERSION"),
    (7, 1, "EI_OSABI"),
    (8, 1, "EI_ABIVERSION"),
    (9, 7, "EI_PAD"),
    (16, 2, "e_type"),
    (18, 2, "e_machine"),
    (20, 4, "e_version"),
)
_REST32 = (
    (24, 4, "e_entry"),
    (28, 4, "e_phoff"),
    (32, 4, "e_shoff"),
    (36, 4, "e_flags"),
    (40, 2, "e_ehsize"),
    (42, 2, "e_phentsize"),
    (44, 2, "e_phnum"),
    (46, 2, "e_shentsize"),
    (48, 2, "e_shnum"),
    (50, 2, "e_shstrndx"),
)
_REST64 = (
    (24, 8, "e_entry"),
    (32, 8, "e_phoff"),
    (40, 8, "e_shoff"),
    (48, 4, "e_flags"),
    (52, 2, "e_ehsize"),
    (54, 2, "e_phentsize"),
    (56, 2, "e_phnum"),
    (58, 2, "e_shentsize"),
    (60, 2, "e_shnum"),
    (62, 2, "e_shstrndx"),
)
ELF32_FIELDS = _IDENT + _REST32
ELF64_FIELDS = _IDENT + _REST64


def elf_field(offset: int, class_: int) -> tuple[int, int, str] | None:
    """(start, size, name) of the ELF header field holding byte ``offset`` (None past the header)."""
    for start, size, name in ELF64_FIELDS if class_ == 64 else ELF32_FIELDS:
        if start <= offset < start + size:
            return start, size, name
    return None


_CLASS = {0: "none", 1: "32-bit", 2: "64-bit"}
_DATA = {0: "none", 1: "little-endian", 2: "big-endian"}
_OSABI = {
    0: "SYSV",
    1: "HP-UX",
    2: "NetBSD",
    3: "GNU/Linux",
    6: "Solaris",
    9: "FreeBSD",
    12: "OpenBSD",
    97: "ARM",
    255: "standalone",
}
_ETYPE = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}


def _value_name(fname: str, value: int) -> str | None:
    if fname == "EI_CLASS":
        return _CLASS.get(value)
    if fname == "EI_DATA":
        return _DATA.get(value)
    if fname == "EI_OSABI":
        return _OSABI.get(value)
    if fname == "e_type":
        return _ETYPE.get(value)
    if fname == "e_machine":
        known = table.machine_names().get(value)
        return known[1] if known else None
    return None


def _fmt(fname: str, size: int, value: int) -> str:
    """How a field value is shown: small ident bytes in decimal, the rest in fixed-width hex."""
    text = str(value) if fname.startswith("EI_") and size == 1 else f"0x{value:0{size * 2}x}"
    name = _value_name(fname, value)
    return f"{text} ({name})" if name else text


def _accepted(fname: str, size: int, expected: int, mask: int) -> str:
    """The values an entry accepts for a field under ``mask``, spelled for a person."""
    full = (1 << (8 * size)) - 1
    if mask == full:
        return _fmt(fname, size, expected)
    free = [bit for bit in range(8 * size) if not mask >> bit & 1]
    if len(free) <= 2:
        values = set()
        for combo in range(1 << len(free)):
            v = expected & mask
            for i, bit in enumerate(free):
                if combo >> i & 1:
                    v |= 1 << bit
            values.add(v)
        return " or ".join(_fmt(fname, size, v) for v in sorted(values))
    return f"{_fmt(fname, size, expected & mask)} under mask 0x{mask:0{size * 2}x}"


# -- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """An entry that matches the file, and what became of it."""

    entry: Entry
    state: str  # "handler" | "disabled" | "shadowed" | "status-disabled"
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.entry.name,
            "enabled": self.entry.enabled,
            "state": self.state,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class NearMiss:
    """An M entry that has the file's format signature but differs at ``offset``."""

    entry: Entry
    offset: int  # file offset of the first differing byte
    actual: int  # the file's byte there
    expected: int  # the entry's magic byte there
    mask: int  # the entry's mask byte there
    field: str | None  # ELF field holding that byte, when the file is ELF
    message: str
    fields: tuple[str, ...] = ()  # every ELF field (or byte offset) that differs

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.entry.name,
            "enabled": self.entry.enabled,
            "offset": self.offset,
            "actual": self.actual,
            "expected": self.expected,
            "mask": self.mask,
            "field": self.field,
            "fields": list(self.fields),
            "message": self.message,
        }


@dataclass(frozen=True)
class MatchResult:
    """The kernel's choice for one file, with the reasons."""

    handler: Entry | None
    candidates: tuple[Candidate, ...] = ()
    near_misses: tuple[NearMiss, ...] = ()
    native: bool = False  # the host kernel could run it without binfmt_misc
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        """The matching part of ``which --json`` (design.md), plus the candidates."""
        return {
            "handler": None
            if self.handler is None
            else {"name": self.handler.name, "interpreter": self.handler.interpreter},
            "native": self.native,
            "near_misses": [n.to_json() for n in self.near_misses],
            "candidates": [c.to_json() for c in self.candidates],
            "notes": list(self.notes),
        }


# -- near misses ----------------------------------------------------------------------------------
def _window(entry: Entry, header: bytes) -> bytes:
    return header[entry.offset : entry.offset + len(entry.magic)].ljust(len(entry.magic), b"\0")


def near_miss(entry: Entry, header: bytes) -> NearMiss | None:
    """Explain why an M entry does not match, if it is a near miss (see module doc)."""
    if entry.type != "M" or len(entry.magic) <= NEAR_PREFIX:
        return None
    header = header[:BUF_SIZE]
    mask = entry.mask if entry.mask is not None else b"\xff" * len(entry.magic)
    window = _window(entry, header)
    diffs = [
        i for i, (w, m, k) in enumerate(zip(window, entry.magic, mask, strict=False)) if (w ^ m) & k
    ]
    if not diffs or diffs[0] < NEAR_PREFIX or not any(mask[:NEAR_PREFIX]):
        return None
    is_elf = header.startswith(ELF_MAGIC) and len(header) > 4
    class_ = 64 if is_elf and header[4] == 2 else 32
    big = is_elf and len(header) > 5 and header[5] == 2

    def locate(i: int) -> tuple[int, int, str] | None:
        return elf_field(entry.offset + i, class_) if is_elf else None

    first = diffs[0]
    off = entry.offset + first
    spot = locate(first)
    names: list[str] = []
    for i in diffs:
        where = locate(i)
        label = where[2] if where else f"byte {entry.offset + i}"
        if label not in names:
            names.append(label)
    if spot is None:
        message = (
            f"byte {off} is 0x{window[first]:02x}, entry expects 0x{entry.magic[first]:02x}"
            + ("" if mask[first] == 0xFF else f" under mask 0x{mask[first]:02x}")
        )
        return NearMiss(
            entry, off, window[first], entry.magic[first], mask[first], None, message, tuple(names)
        )
    start, size, fname = spot
    # The whole field, in the file's byte order, limited to the part the entry covers.
    lo, hi = max(start, entry.offset), min(start + size, entry.offset + len(entry.magic))
    actual_b = bytearray(header[start : start + size].ljust(size, b"\0"))
    expected_b = bytearray(size)
    mask_b = bytearray(size)
    for pos in range(lo, hi):
        expected_b[pos - start] = entry.magic[pos - entry.offset]
        mask_b[pos - start] = mask[pos - entry.offset]
    order: Literal["little", "big"] = "big" if big else "little"
    actual_v = int.from_bytes(actual_b, order)
    expected_v = int.from_bytes(expected_b, order)
    mask_v = int.from_bytes(mask_b, order)
    if fname in ("e_flags", "EI_PAD") or size > 4:
        # Wide fields: show only the bits the entry tests.
        message = (
            f"{fname} & 0x{mask_v:0{size * 2}x} is 0x{actual_v & mask_v:0{size * 2}x}, "
            f"entry expects 0x{expected_v & mask_v:0{size * 2}x}"
        )
        if fname == "e_flags" and mask_v & 0x20 and _is_mips(header, big):
            has = "set (n32)" if actual_v & 0x20 else "clear (o32)"
            wants = "set (n32)" if expected_v & 0x20 else "clear (o32)"
            message += f": EF_MIPS_ABI2 is {has}, entry wants it {wants}"
    else:
        message = f"{fname} is {_fmt(fname, size, actual_v)}, entry expects {_accepted(fname, size, expected_v, mask_v)}"
    return NearMiss(
        entry, off, window[first], entry.magic[first], mask[first], fname, message, tuple(names)
    )


def _is_mips(header: bytes, big: bool) -> bool:
    return len(header) >= 20 and int.from_bytes(header[18:20], "big" if big else "little") == 8


# -- native -----------------------------------------------------------------------------------------
#: 32-bit personalities a 64-bit kernel runs natively (kernel compat ELF loaders). Not listed:
#: aarch64 -> arm (AArch32 at EL0 is optional and absent on many current cores), x32
#: (ELFCLASS32 + EM_X86_64; usually disabled), riscv64 -> riscv32 (rarely in hardware).
COMPAT_NATIVE: dict[str, tuple[str, ...]] = {
    "x86_64": ("i386", "i486"),  # IA-32 emulation; the i386 loader takes EM_386 and EM_486
    "i386": ("i486",),
    "ppc64": ("ppc",),
    "sparc64": ("sparc", "sparc32plus"),
    "mips64": ("mips", "mipsn32"),
    "mips64el": ("mipsel", "mipsn32el"),
}


def native(header: bytes, host_machine: str | None = None) -> bool:
    """Would the host kernel run this ELF by itself (``ET_EXEC``/``ET_DYN`` of the host's class,
    byte order and machine, or a compat personality from :data:`COMPAT_NATIVE`: an x86_64 host
    also runs i386 ELF)? ``host_machine`` is a ``uname -m`` string; default ``os.uname()``."""
    if len(header) < 20 or not header.startswith(ELF_MAGIC) or header[4] not in (1, 2):
        return False
    if header[5] not in (1, 2):
        return False
    class_ = 32 if header[4] == 1 else 64
    endian: Literal["little", "big"] = "little" if header[5] == 1 else "big"
    e_type = int.from_bytes(header[16:18], endian)
    if e_type not in (2, 3):
        return False
    machine = int.from_bytes(header[18:20], endian)
    flags_at = 36 if class_ == 32 else 48
    e_flags = int.from_bytes(header[flags_at : flags_at + 4].ljust(4, b"\0"), endian)
    try:
        host = table.host_target(os.uname().machine if host_machine is None else host_machine)
    except table.UnknownTargetError:
        return False
    runnable = (host.name, *COMPAT_NATIVE.get(host.name, ()))
    by_name = {t.name: t for t in table.targets()}
    return any(by_name[n].matches_elf(class_, endian, machine, e_flags) for n in runnable)


# -- matching ---------------------------------------------------------------------------------------
def match(
    header: bytes,
    entries: Sequence[Entry],
    path: str | None = None,
    status_enabled: bool = True,
    *,
    host_machine: str | None = None,
) -> MatchResult:
    """The entry the kernel would run ``header`` (the file's first bytes) with.

    ``entries`` are in kernel order, newest first. ``path`` is the path string as passed to
    exec (for E entries). ``status_enabled`` is the global ``status``. ``host_machine`` feeds
    :func:`native` (default: this host).
    """
    handler: Entry | None = None
    candidates: list[Candidate] = []
    misses: list[NearMiss] = []
    for entry in entries:
        if entry_matches(entry, header, path):
            if not status_enabled:
                state, reason = "status-disabled", "binfmt_misc is disabled globally (status)"
            elif not entry.enabled:
                state, reason = "disabled", "disabled"
            elif handler is None:
                handler = entry
                state, reason = "handler", "first enabled matching entry (newest wins)"
            else:
                state, reason = "shadowed", f"shadowed by newer entry {handler.name}"
            candidates.append(Candidate(entry, state, reason))
        else:
            miss = near_miss(entry, header)
            if miss is not None:
                misses.append(miss)
    notes: list[str] = []
    is_native = native(header, host_machine)
    if handler is not None and is_native:
        notes.append(
            f"the host runs this binary natively, but binfmt_misc is tried first: "
            f"{handler.name} takes over every such exec"
        )
    if path is None and any(e.type == "E" for e in entries):
        notes.append("no path given: extension entries were not considered")
    return MatchResult(handler, tuple(candidates), tuple(misses), is_native, tuple(notes))


#: ELF e_type values that are files exec never runs: relocatable objects and core dumps
NOT_EXECUTABLE_TYPES = {1: "ET_REL", 4: "ET_CORE"}


def non_executable_kind(header: bytes) -> str | None:
    """``"ET_REL"`` or ``"ET_CORE"`` for an ELF that is not a program, else None (programs,
    shared objects and anything unreadable as ELF are left to the matcher)."""
    if len(header) < 18 or not header.startswith(ELF_MAGIC) or header[5] not in (1, 2):
        return None
    e_type = int.from_bytes(header[16:18], "little" if header[5] == 1 else "big")
    return NOT_EXECUTABLE_TYPES.get(e_type)


def handler_exec_failure(handler: Entry, interp_errno: str | None) -> dict[str, str] | None:
    """Why an exec through ``handler`` fails, or None when it starts its interpreter.

    Without ``F`` the kernel opens the interpreter at each exec (``interp_errno`` is what
    that open gives, gathered at the edge); with ``F`` it was opened at registration and
    pinned, so a missing file no longer matters."""
    if interp_errno is None or "F" in handler.flags:
        return None
    if interp_errno in ("ENOENT", "ENOTDIR"):
        what = f"its interpreter {handler.interpreter} does not exist"
        shell = "No such file or directory (bash: 'required file not found')"
    else:
        what = f"its interpreter {handler.interpreter} cannot be executed ({interp_errno})"
        shell = "Permission denied" if interp_errno == "EACCES" else interp_errno
    return {
        "errno": interp_errno,
        "message": f"{what}: without the F flag the kernel opens it at every exec, so the exec fails: {shell}",
        "fix": f"install {handler.interpreter} (or register {handler.name} again with an interpreter that exists), or binfmtctl disable {handler.name}",
    }


class Matcher:
    """``match(...).handler`` for many files: M entries are grouped by (offset, length) and mask
    and compared as integers once per group; E entries by extension."""

    def __init__(self, entries: Sequence[Entry], status_enabled: bool = True) -> None:
        self.entries = list(entries)
        self.status_enabled = status_enabled
        # (offset, length) -> mask -> masked magic -> first (newest) index
        self._groups: dict[tuple[int, int], dict[int, dict[int, int]]] = {}
        self._extensions: dict[str, int] = {}
        for index, entry in enumerate(self.entries):
            if not entry.enabled:
                continue
            if entry.type == "E":
                if entry.extension:
                    self._extensions.setdefault(entry.extension, index)
                continue
            n = len(entry.magic)
            mask = (
                int.from_bytes(entry.mask, "big") if entry.mask is not None else (1 << (8 * n)) - 1
            )
            value = int.from_bytes(entry.magic, "big") & mask
            by_mask = self._groups.setdefault((entry.offset, n), {})
            by_mask.setdefault(mask, {}).setdefault(value, index)

    def first(self, header: bytes, path: str | None = None) -> Entry | None:
        """The winning entry for this file, or None."""
        if not self.status_enabled:
            return None
        best: int | None = None
        if path is not None and self._extensions:
            ext = path_extension(path)
            if ext is not None and ext in self._extensions:
                best = self._extensions[ext]
        header = header[:BUF_SIZE]
        for (offset, n), by_mask in self._groups.items():
            window = int.from_bytes(header[offset : offset + n].ljust(n, b"\0"), "big")
            for mask, values in by_mask.items():
                index = values.get(window & mask)
                if index is not None and (best is None or index < best):
                    best = index
        return None if best is None else self.entries[best]
