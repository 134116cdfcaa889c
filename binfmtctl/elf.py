"""ELF identity of a file, as binfmt_misc and the kernel's ELF loader see it.

:func:`parse_elf` reads a stream with pyelftools: class, byte order, machine, type, OSABI,
e_flags (decoded where binfmt entries depend on them: MIPS o32/n32/n64, ARM EABI and float
ABI, RISC-V and LoongArch float ABI, PPC64 ELFv1/v2), linkage (static / static-pie / dynamic)
and PT_INTERP, plus ``arch``: the table's QEMU target name. Anything that is not a loadable
ELF raises :class:`NotElfError` with a one-line reason, never a traceback.

pyelftools is imported inside the functions that need it (it is slow to import).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from binfmtctl import table
from binfmtctl.errors import BinfmtctlError
from binfmtctl.record import dataclass

ELF_MAGIC = b"\x7fELF"
#: what the kernel reads into its buffer before matching (BINPRM_BUF_SIZE, Linux >= 5.1)
BINPRM_BUF_SIZE = 256

ET_EXEC, ET_DYN = 2, 3
_PT_INTERP, _PT_DYNAMIC = 3, 2
_DF_1_PIE = 0x08000000


class NotElfError(BinfmtctlError):
    """The file is not a readable, well-formed ELF; ``reason`` says why in one line."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class UnreadableFileError(NotElfError):
    """The file could not be read at all (missing, a directory, permission denied, ...)."""


@dataclass(frozen=True)
class ElfInfo:
    """What an ELF file's headers say. ``arch`` is the table's QEMU target name, if any."""

    class_: int  # 32 or 64
    endian: str  # "little" or "big"
    machine: str  # "EM_AARCH64"; "0x1234" if unknown
    machine_number: int
    machine_description: str  # "AArch64"
    e_type: str  # "ET_EXEC", "ET_DYN", ...
    osabi: str  # "ELFOSABI_SYSV", "ELFOSABI_LINUX", ...
    abi_version: int
    e_flags: int
    abi: str | None  # decoded from e_flags: "o32", "n32", "n64", "eabi5", "lp64d", "elfv2", ...
    float_abi: str | None  # "hard", "soft", "single", "double", "quad"
    flag_notes: tuple[str, ...]
    #: "static" | "static-pie" | "dynamic"; None for types the kernel does not load (ET_REL, ET_CORE)
    linkage: str | None
    interpreter: str | None  # PT_INTERP
    arch: str | None

    @property
    def static(self) -> bool:
        return self.linkage in ("static", "static-pie")

    def to_json(self) -> dict[str, object]:
        """The ``elf`` object of ``which --json`` (design.md), plus the decoded extras."""
        return {
            "class": self.class_,
            "endian": self.endian,
            "machine": self.machine,
            "arch": self.arch,
            "static": self.static,
            "interpreter": self.interpreter,
            "machine_number": self.machine_number,
            "machine_description": self.machine_description,
            "type": self.e_type,
            "osabi": self.osabi,
            "abi_version": self.abi_version,
            "e_flags": self.e_flags,
            "abi": self.abi,
            "float_abi": self.float_abi,
            "flag_notes": list(self.flag_notes),
            "linkage": self.linkage,
        }


# -- what a non-ELF file looks like -----------------------------------------------------------
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a DOS/Windows executable (MZ)"),
    (b"PK\x03\x04", "a zip archive (zip, jar)"),
    (b"BC\xc0\xde", "LLVM bitcode"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary or a Java class file"),
    (b"\xfe\xed\xfa\xce", "a Mach-O binary"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O binary"),
    (b"\xce\xfa\xed\xfe", "a Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O binary"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"!<arch>\n", "an ar archive (static library or .deb)"),
    (b"\x00asm", "a WebAssembly module"),
)


def describe_non_elf(head: bytes) -> str:
    """A short guess at what a file is, from its first bytes (for error messages)."""
    if not head:
        return "an empty file"
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip()[:80].decode("utf-8", "replace")
        return f"a script (#!{line})"
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    if len(head) >= 4 and head[2:4] == b"\r\n":
        return "compiled Python bytecode (.pyc)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the buffer is still text.
        try:
            text = head[:-3].decode("utf-8") if len(head) > 3 else "\0"
        except UnicodeDecodeError:
            text = "\0"
    if text and all(c.isprintable() or c in "\t\n\r\f\v" for c in text):
        return "text"
    return "data (starts with " + head[:8].hex(" ") + ")"


# -- e_flags -----------------------------------------------------------------------------------
_MIPS_ARCH = {
    0x0: "mips1",
    0x1: "mips2",
    0x2: "mips3",
    0x3: "mips4",
    0x4: "mips5",
    0x5: "mips32",
    0x6: "mips64",
    0x7: "mips32r2",
    0x8: "mips64r2",
    0x9: "mips32r6",
    0xA: "mips64r6",
}
_RISCV_FLOAT = {0: "soft", 2: "single", 4: "double", 6: "quad"}
_RISCV_SUFFIX = {0: "", 2: "f", 4: "d", 6: "q"}
_LOONGARCH_BASE = {1: ("lp64s", "soft"), 2: ("lp64f", "single"), 3: ("lp64d", "double")}


def decode_flags(
    machine: int, class_: int, e_flags: int
) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(abi, float_abi, notes) decoded from ``e_flags`` for the machines whose entries or
    interpreters depend on them; (None, None, ()) elsewhere."""
    notes: list[str] = []
    abi: str | None = None
    float_abi: str | None = None
    if machine == 8:  # EM_MIPS
        abi_field = e_flags & 0xF000
        if class_ == 64:
            abi = {0x2000: "o64", 0x4000: "eabi64"}.get(abi_field, "n64")
        elif e_flags & 0x20:
            abi = "n32"
        else:
            abi = {0x3000: "eabi32"}.get(abi_field, "o32")
        if class_ == 32:
            state = "set" if e_flags & 0x20 else "clear"
            notes.append(f"EF_MIPS_ABI2 {state} ({abi})")
        arch = _MIPS_ARCH.get(e_flags >> 28)
        if arch:
            notes.append(f"ISA {arch}")
        if e_flags & 0x400:
            notes.append("EF_MIPS_NAN2008")
        if e_flags & 0x200:
            notes.append("EF_MIPS_FP64")
    elif machine == 40:  # EM_ARM
        version = e_flags >> 24
        abi = f"eabi{version}" if version else "oabi"
        notes.append(
            f"EABI version {version}" if version else "EABI version 0 (old ABI or unknown)"
        )
        if version >= 5 and e_flags & 0x400:
            float_abi = "hard"
        elif version >= 5 and e_flags & 0x200:
            float_abi = "soft"
        if float_abi:
            notes.append(f"{float_abi}-float ABI")
        if e_flags & 0x00800000:
            notes.append("BE8")
    elif machine == 243:  # EM_RISCV
        fl = e_flags & 0x6
        float_abi = _RISCV_FLOAT[fl]
        abi = (
            ("lp64" if class_ == 64 else "ilp32")
            + ("e" if e_flags & 0x8 else "")
            + _RISCV_SUFFIX[fl]
        )
        if e_flags & 0x1:
            notes.append("RVC (compressed instructions)")
        if e_flags & 0x10:
            notes.append("TSO memory model")
    elif machine == 258:  # EM_LOONGARCH
        base = _LOONGARCH_BASE.get(e_flags & 0x7)
        if base:
            abi, float_abi = base
        notes.append(f"object ABI v{(e_flags >> 6) & 0x3}")
    elif machine == 21:  # EM_PPC64
        abi = {1: "elfv1", 2: "elfv2"}.get(e_flags & 0x3)
    return abi, float_abi, tuple(notes)


# -- reading ------------------------------------------------------------------------------------
_FILE_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


@contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a regular file for reading, turning every failure into :class:`UnreadableFileError`."""
    name = os.fsdecode(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise UnreadableFileError(name, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _FILE_KINDS if test(st.st_mode)), "not a regular file")
            raise UnreadableFileError(name, f"not a regular file ({kind})")
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise UnreadableFileError(name, "no such file") from None
    except PermissionError:
        raise UnreadableFileError(name, "permission denied") from None
    except IsADirectoryError:
        raise UnreadableFileError(name, "is a directory") from None
    except OSError as exc:
        raise UnreadableFileError(name, f"cannot read: {exc.strerror or exc}") from None
    with f:
        yield f


def read_header(path: str | os.PathLike[str], size: int = BINPRM_BUF_SIZE) -> bytes:
    """The first ``size`` bytes of a file (what binfmt_misc matches against).

    Shorter for short files (the kernel reads zeros past the end). Raises
    :class:`UnreadableFileError` if the file cannot be read; its content is not judged.
    """
    with _open(path) as f:
        try:
            return f.read(size)
        except OSError as exc:
            raise UnreadableFileError(
                os.fsdecode(path), f"cannot read: {exc.strerror or exc}"
            ) from None


def read_elf(path: str | os.PathLike[str]) -> ElfInfo:
    """:func:`parse_elf` on a file."""
    with _open(path) as f:
        return parse_elf(f, os.fsdecode(path))


def _check_ident(head: bytes, size: int, name: str) -> tuple[int, str]:
    """Validate e_ident and the header length; return (class, endian)."""
    if size == 0:
        raise NotElfError(name, "empty file")
    if not head.startswith(ELF_MAGIC):
        if len(head) < 4 and ELF_MAGIC.startswith(head):
            raise NotElfError(name, f"truncated ELF: only {len(head)} byte{'s' * (len(head) != 1)}")
        raise NotElfError(name, f"not an ELF file: {describe_non_elf(head)}")
    if len(head) < 6:
        raise NotElfError(
            name, f"truncated ELF header: only {len(head)} byte{'s' * (len(head) != 1)}"
        )
    if head[4] not in (1, 2):
        raise NotElfError(name, f"invalid ELF: EI_CLASS is {head[4]} (expected 1 or 2)")
    if head[5] not in (1, 2):
        raise NotElfError(name, f"invalid ELF: EI_DATA is {head[5]} (expected 1 or 2)")
    class_ = 32 if head[4] == 1 else 64
    need = 52 if class_ == 32 else 64
    if size < need:
        raise NotElfError(
            name, f"truncated ELF header: ELF{class_} needs {need} bytes, file has {size}"
        )
    return class_, "little" if head[5] == 1 else "big"


def _name(value: Any, width: int) -> str:
    """pyelftools gives enum names as str and unknown values as int."""
    return value if isinstance(value, str) else f"0x{int(value):0{width}x}"


def parse_elf(stream: IO[bytes], name: str = "<stream>") -> ElfInfo:
    """ELF facts of a seekable binary stream; :class:`NotElfError` if it is not a loadable ELF."""
    try:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(0)
        head = stream.read(BINPRM_BUF_SIZE)
    except OSError as exc:
        raise UnreadableFileError(name, f"cannot read: {exc.strerror or exc}") from None
    class_, endian = _check_ident(head, size, name)
    try:
        return _parse(stream, name, head, size, class_, endian)
    except NotElfError:
        raise
    except Exception as exc:  # pyelftools raises many kinds of errors on garbage
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotElfError(name, f"malformed ELF: {detail}") from None


def _parse(
    stream: IO[bytes], name: str, head: bytes, size: int, class_: int, endian: str
) -> ElfInfo:
    from elftools.elf.descriptions import describe_e_machine
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(stream)
    hdr = elf.header
    machine_number = int.from_bytes(head[18:20], "little" if endian == "little" else "big")
    known = table.machine_names().get(machine_number)
    if known is not None:
        machine, description = known
    else:
        machine = _name(hdr["e_machine"], 4)
        described = (
            describe_e_machine(hdr["e_machine"]) if isinstance(hdr["e_machine"], str) else ""
        )
        description = (
            described if described and "unknown" not in described else f"unknown machine {machine}"
        )
    e_type = _name(hdr["e_type"], 4)
    e_flags = int(hdr["e_flags"])
    abi, float_abi, notes = decode_flags(machine_number, class_, e_flags)

    interpreter: str | None = None
    linkage: str | None = None
    if e_type in ("ET_EXEC", "ET_DYN"):
        phnum, phoff, phentsize = int(hdr["e_phnum"]), int(hdr["e_phoff"]), int(hdr["e_phentsize"])
        end = phoff + phnum * phentsize
        if phnum and end > size:
            raise NotElfError(
                name,
                f"truncated ELF: {phnum} program headers end at byte {end}, file has {size} bytes",
            )
        pie_flag = False
        soname = False
        for seg in elf.iter_segments():
            ptype = seg["p_type"]
            if ptype in ("PT_INTERP", _PT_INTERP):
                off, filesz = int(seg["p_offset"]), int(seg["p_filesz"])
                if off + filesz > size:
                    raise NotElfError(
                        name, f"truncated ELF: PT_INTERP at byte {off} is past the end"
                    )
                stream.seek(off)
                raw = stream.read(filesz).split(b"\0", 1)[0]
                interpreter = os.fsdecode(raw)
            elif ptype in ("PT_DYNAMIC", _PT_DYNAMIC):
                pie_flag, soname = _dynamic_facts(seg, size)
        if interpreter is not None:
            linkage = "dynamic"
        elif e_type == "ET_EXEC":
            linkage = "static"
        else:
            # The kernel loads an ET_DYN without PT_INTERP as a static PIE.
            linkage = "static-pie"
            if soname and not pie_flag:
                notes = (*notes, "no PT_INTERP and a DT_SONAME: probably a shared library")
    target = table.target_for_header(head) or table.target_for_elf(
        class_, endian, machine_number, e_flags
    )
    return ElfInfo(
        class_=class_,
        endian=endian,
        machine=machine,
        machine_number=machine_number,
        machine_description=description,
        e_type=e_type,
        osabi=_name(hdr["e_ident"]["EI_OSABI"], 2),
        abi_version=int(hdr["e_ident"]["EI_ABIVERSION"]),
        e_flags=e_flags,
        abi=abi,
        float_abi=float_abi,
        flag_notes=notes,
        linkage=linkage,
        interpreter=interpreter,
        arch=target.name if target is not None else None,
    )


def _dynamic_facts(seg: Any, size: int) -> tuple[bool, bool]:
    """(DF_1_PIE set, DT_SONAME present) from a PT_DYNAMIC segment; (False, False) if unreadable."""
    if int(seg["p_offset"]) + int(seg["p_filesz"]) > size:
        return False, False
    pie = soname = False
    try:
        for tag in seg.iter_tags():
            if tag.entry.d_tag == "DT_FLAGS_1" and int(tag.entry.d_val) & _DF_1_PIE:
                pie = True
            elif tag.entry.d_tag == "DT_SONAME":
                soname = True
    except Exception:  # a damaged dynamic section only loses these hints
        return False, False
    return pie, soname


# -- the light reader: what the interpreter checks need, without pyelftools --------------------
@dataclass(frozen=True)
class ElfFacts:
    """The facts of :class:`ElfInfo` that the interpreter checks use (status, doctor)."""

    arch: str | None
    machine: str
    linkage: str
    interpreter: str | None


def read_elf_facts(path: str | os.PathLike[str]) -> ElfFacts | None:
    """``arch``, ``machine``, ``linkage`` and ``interpreter`` of a well-formed ELF executable,
    read from its ELF and program headers with ``struct`` (no pyelftools: importing it and
    parsing 29 interpreters was most of ``status``). Equal to :func:`read_elf`'s fields
    (tested on real and generated files); None whenever anything is unusual (not a
    readable regular file, not ELF, not ET_EXEC/ET_DYN, a machine the table does not name,
    a header or table past the end of the file): then :func:`read_elf` gives the answer and
    its exact error message."""
    import struct

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        size = st.st_size
        head = os.pread(fd, BINPRM_BUF_SIZE, 0)
        if len(head) < 64 or not head.startswith(ELF_MAGIC) or head[4] not in (1, 2):
            return None
        if head[5] not in (1, 2):
            return None
        class_, endian = (32 if head[4] == 1 else 64), ("little" if head[5] == 1 else "big")
        e = "<" if endian == "little" else ">"
        if class_ == 32:
            e_type, machine_number, _, _, phoff, shoff, e_flags, _, phentsize, phnum = (
                struct.unpack_from(f"{e}HHIIIIIHHH", head, 16)
            )
            shentsize, shnum, shstrndx = struct.unpack_from(f"{e}HHH", head, 46)
            ph_fmt, ph_min = f"{e}II8xI", 32  # p_type, p_offset, p_filesz
        else:
            e_type, machine_number, _, _, phoff, shoff, e_flags, _, phentsize, phnum = (
                struct.unpack_from(f"{e}HHIQQQIHHH", head, 16)
            )
            shentsize, shnum, shstrndx = struct.unpack_from(f"{e}HHH", head, 58)
            ph_fmt, ph_min = f"{e}I4xQ16xQ", 56
        known = table.machine_names().get(machine_number)
        if e_type not in (ET_EXEC, ET_DYN) or known is None or size < (52 if class_ == 32 else 64):
            return None
        if phnum and (phentsize < ph_min or phoff + phnum * phentsize > size):
            return None
        if shnum and (shoff + shnum * shentsize > size or shstrndx >= shnum):
            return None  # pyelftools reads the section headers too: let it judge them
        table_bytes = os.pread(fd, phnum * phentsize, phoff) if phnum else b""
        if len(table_bytes) < phnum * phentsize:
            return None
        interpreter: str | None = None
        for i in range(phnum):
            p_type, p_offset, p_filesz = struct.unpack_from(ph_fmt, table_bytes, i * phentsize)
            if p_type == _PT_INTERP:
                if p_offset + p_filesz > size:
                    return None
                raw = os.pread(fd, p_filesz, p_offset)
                if len(raw) < p_filesz:
                    return None
                interpreter = os.fsdecode(raw.split(b"\0", 1)[0])
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
    if interpreter is not None:
        linkage = "dynamic"
    else:
        linkage = "static" if e_type == ET_EXEC else "static-pie"
    target = table.target_for_header(head) or table.target_for_elf(
        class_, endian, machine_number, e_flags
    )
    return ElfFacts(target.name if target else None, known[0], linkage, interpreter)
