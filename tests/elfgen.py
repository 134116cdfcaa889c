"""Synthetic ELF headers and tiny ELF files for tests (built with ``struct``, no toolchain).

Independent of binfmtctl, so any test can use it:

- :func:`elf_header`: the 52-byte (ELF32) or 64-byte (ELF64) file header;
- :func:`elf_file`: a header plus program headers (PT_LOAD, optional PT_INTERP/PT_DYNAMIC),
  enough for pyelftools and the kernel's view of linkage;
- :func:`target_header`: the header of a ``binfmtctl.table.Target``.
"""

from __future__ import annotations

import struct
from typing import Any

ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_FLAGS_1 = 0, 0x6FFFFFFB
DF_1_PIE = 0x08000000


def _order(endian: str) -> str:
    return "<" if endian == "little" else ">"


def elf_header(
    class_: int,
    endian: str,
    machine: int,
    *,
    e_type: int = ET_EXEC,
    osabi: int = 0,
    abi_version: int = 0,
    e_version: int = 1,
    e_flags: int = 0,
    entry: int = 0x10000,
    phoff: int = 0,
    phnum: int = 0,
    ei_version: int = 1,
) -> bytes:
    """An ELF file header: 52 bytes for ``class_`` 32, 64 bytes for 64."""
    ident = b"\x7fELF" + bytes(
        [1 if class_ == 32 else 2, 1 if endian == "little" else 2, ei_version, osabi, abi_version]
    )
    ident = ident.ljust(16, b"\0")
    o = _order(endian)
    if class_ == 32:
        rest = struct.pack(
            o + "HHIIIIIHHHHHH",
            e_type, machine, e_version, entry, phoff, 0, e_flags, 52, 32, phnum, 40, 0, 0,
        )  # fmt: skip
    else:
        rest = struct.pack(
            o + "HHIQQQIHHHHHH",
            e_type, machine, e_version, entry, phoff, 0, e_flags, 64, 56, phnum, 64, 0, 0,
        )  # fmt: skip
    header = ident + rest
    assert len(header) == (52 if class_ == 32 else 64)
    return header


def _phdr(class_: int, endian: str, p_type: int, offset: int, filesz: int, flags: int = 4) -> bytes:
    o = _order(endian)
    if class_ == 32:
        return struct.pack(o + "IIIIIIII", p_type, offset, offset, offset, filesz, filesz, flags, 4)
    return struct.pack(o + "IIQQQQQQ", p_type, flags, offset, offset, offset, filesz, filesz, 8)


def elf_file(
    class_: int,
    endian: str,
    machine: int,
    *,
    e_type: int = ET_EXEC,
    interp: str | None = None,
    pie_flag: bool = False,
    **header: Any,
) -> bytes:
    """A small but well-formed ELF file: header, program headers, then their contents.

    ``interp`` adds PT_INTERP; ``pie_flag`` adds a PT_DYNAMIC with DT_FLAGS_1 = DF_1_PIE.
    """
    ehsize, phentsize = (52, 32) if class_ == 32 else (64, 56)
    segments: list[tuple[int, bytes]] = []
    if interp is not None:
        segments.append((PT_INTERP, interp.encode() + b"\0"))
    if pie_flag:
        o = _order(endian)
        fmt = o + ("iI" if class_ == 32 else "qQ")
        dyn = struct.pack(fmt, DT_FLAGS_1, DF_1_PIE) + struct.pack(fmt, DT_NULL, 0)
        segments.append((PT_DYNAMIC, dyn))
    phnum = 1 + len(segments)
    data_at = ehsize + phnum * phentsize
    phdrs = b""
    blobs = b""
    for p_type, blob in segments:
        phdrs += _phdr(class_, endian, p_type, data_at + len(blobs), len(blob))
        blobs += blob
    total = data_at + len(blobs)
    phdrs = _phdr(class_, endian, PT_LOAD, 0, total, flags=5) + phdrs
    head = elf_header(class_, endian, machine, e_type=e_type, phoff=ehsize, phnum=phnum, **header)
    return head + phdrs + blobs


def target_header(target: Any, *, e_type: int = ET_EXEC, osabi: int = 0, **kw: Any) -> bytes:
    """The file header a binary of ``target`` (a ``binfmtctl.table.Target``) starts with."""
    flags = kw.pop("e_flags", target.e_flags.value if target.e_flags is not None else 0)
    return elf_header(
        target.class_,
        target.endian,
        target.machine,
        e_type=e_type,
        osabi=osabi,
        e_flags=flags,
        **kw,
    )


def target_file(target: Any, **kw: Any) -> bytes:
    """A small ELF file of ``target`` (see :func:`elf_file`)."""
    flags = kw.pop("e_flags", target.e_flags.value if target.e_flags is not None else 0)
    return elf_file(target.class_, target.endian, target.machine, e_flags=flags, **kw)
