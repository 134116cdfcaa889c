"""The register-string grammar: a byte-for-byte model of ``create_entry()`` in
``fs/binfmt_misc.c``.

The kernel copies the write into a buffer padded with 8 delimiter bytes, then walks
it with C-string functions, so a raw NUL ends a ``strchr`` search, a missing
delimiter is "found" in the padding, and parsing fails at the end-of-data check.
:func:`scan_fields` does the same: one function per field, sharing a :class:`Cursor`
(the padded buffer, the position, the problems found so far). A field that cannot
be parsed stops the scan (``Cursor.stopped``): positions past it are meaningless.

This module sits below :mod:`binfmtctl.entry` and :mod:`binfmtctl.rules` (both use
it) and is pure: the kernel's behaviour comes in as a :class:`KernelProfile`, never
from the host. It yields the decoded fields; :mod:`binfmtctl.entry` makes the Entry.
"""

from __future__ import annotations

from binfmtctl.errors import Problem
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.record import dataclass, field
from binfmtctl.wording import plural

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `binfmtctl validate` imports no collections, typing
    from collections.abc import Callable

#: the kernel's limit on one write to register (since ~3.18; 256 before, see KernelProfile)
MAX_REGISTER = 1920
#: the hex digits of a ``\\xHH`` escape
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

Span = tuple[int, int]


def is_bare_hex(raw: bytes | None) -> bool:
    """True for a magic/mask field that spells bytes as bare hex text (``7f454c46``)."""
    # written without ``\\x``: two or more pairs of hex digits and nothing else
    return raw is not None and len(raw) >= 4 and not len(raw) % 2 and HEX_DIGITS.issuperset(raw)


# -- decoding magic and mask ---------------------------------------------------------
def unescape(data: bytes) -> bytes:
    """Decode a magic/mask field as the modern kernel does (``string_unescape`` in
    hex-only mode): stops at the first raw NUL; ``\\xH``/``\\xHH`` become a byte; a
    backslash followed by anything else is kept *with* that byte, unexamined."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0:
            break
        if c == 0x5C and i + 1 < n and data[i + 1] != 0:
            nxt = data[i + 1]
            if nxt == 0x78 and i + 2 < n and data[i + 2] in HEX_DIGITS:  # \x
                j = i + 2
                val = 0
                while j < n and j < i + 4 and data[j] in HEX_DIGITS:
                    val = val * 16 + int(chr(data[j]), 16)
                    j += 1
                out.append(val)
                i = j
                continue
            out += bytes((c, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def unescape_legacy(data: bytes) -> bytes:
    """Decode as pre-3.18 kernels did (private ``unquote()``): stop at a raw NUL,
    ``\\xHH`` becomes a byte, every other byte (a lone backslash too) is copied."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n and data[i] != 0:
        if (
            data[i : i + 2] == b"\\x"
            and i + 3 < n
            and all(c in HEX_DIGITS for c in data[i + 2 : i + 4])
        ):
            out.append(int(data[i + 2 : i + 4], 16))
            i += 4
            continue
        out.append(data[i])
        i += 1
    return bytes(out)


# -- the scan's result -----------------------------------------------------------------
@dataclass(frozen=True)
class Fields:
    """The fields of an accepted register string, as the kernel stores them."""

    name: bytes
    type: str  # "M" or "E"
    interpreter: bytes
    flags: str
    offset: int = 0
    magic: bytes = b""
    mask: bytes | None = None
    extension: bytes | None = None


@dataclass
class FieldScan:
    fields: Fields | None
    problems: list[Problem] = field(default_factory=list)
    #: byte spans of each field in the input, for diagnostics
    spans: dict[str, Span] = field(default_factory=dict)


def show_byte(b: int) -> str:
    if b == 0:
        return "a raw NUL byte"
    if b == 0x0A:
        return "a newline"
    if b == 0x20:
        return "a space"
    if 0x21 <= b <= 0x7E:  # printable, not a space
        return f"{chr(b)!r}"
    return f"byte 0x{b:02x}"


def _fix_delim(d: int) -> str:
    return f"put {show_byte(d)} after this field" if d else "end this field with the delimiter"


class Cursor:
    """The kernel's walk over one register write: the padded buffer, the position,
    and what was found wrong so far."""

    def __init__(self, raw: bytes, profile: KernelProfile) -> None:
        self.raw = raw
        self.n = len(raw)
        self.profile = profile
        self.d = raw[0] if raw else 0
        self.w = raw + bytes((self.d,)) * 8  # the kernel pads with 8 delimiter bytes
        self.dname = show_byte(self.d)
        self.pos = 1
        self.problems: list[Problem] = []
        self.spans: dict[str, Span] = {}
        #: a field could not be parsed: nothing after it means anything
        self.stopped = False

    def err(self, fld: str, rule: str, msg: str, fix: str, span: Span | None) -> None:
        self.problems.append(Problem(fld, msg, fix, errno="EINVAL", span=span, rule=rule))

    def warn(self, fld: str, rule: str, msg: str, fix: str, span: Span | None) -> None:
        self.problems.append(
            Problem(fld, msg, fix, errno=None, span=span, severity="warning", rule=rule)
        )

    def stop(self, fld: str, rule: str, msg: str, fix: str, span: Span | None) -> None:
        self.err(fld, rule, msg, fix, span)
        self.stopped = True

    def has(self, rule: str) -> bool:
        return any(p.rule == rule for p in self.problems)

    def _ends_inside(self, fld: str, start: int, extra: str = "") -> None:
        self.stop(
            fld,
            f"{fld}.unterminated",
            f"the string ends inside the {fld} field: the delimiter ({self.dname}, as at the start) is missing after it",
            _fix_delim(self.d) + extra,
            (start, self.n),
        )

    def cfield(self, fld: str) -> tuple[bytes, int] | None:
        """``strchr(p, del)`` + NUL-terminate: (the field, its start), or None (stopped)."""
        w, d, start = self.w, self.d, self.pos
        j = start
        while j < len(w) and w[j] != d and w[j] != 0:
            j += 1
        if j >= len(w):  # cannot happen with padding, kept for safety
            self.stop(
                fld,
                f"{fld}.unterminated",
                f"the {fld} field never ends",
                _fix_delim(d),
                (start, self.n),
            )
            return None
        if w[j] != d:  # a raw NUL before the delimiter: strchr() returns NULL
            self.stop(
                fld,
                f"{fld}.nul",
                f"the {fld} field contains a raw NUL byte at byte {j}; the kernel's string search stops there",
                f"remove the NUL from the {fld}"
                + (" (write it as \\x00 in magic or mask)" if fld in ("magic", "mask") else ""),
                (j, j + 1),
            )
            return None
        if j >= self.n:
            extra = (
                " (it is mandatory even when there are no flags)" if fld == "interpreter" else ""
            )
            self._ends_inside(fld, start, extra)
            return None
        self.spans[fld] = (start, j)
        self.pos = j + 1
        return w[start:j], start

    def scanarg(self, fld: str) -> bytes | None:
        """``scanarg()``: walk to the delimiter; ``\\x`` must be followed by two hex digits."""
        w, d, start = self.w, self.d, self.pos
        j = start
        while True:
            if j >= len(w):
                self.stop(
                    fld,
                    f"{fld}.unterminated",
                    f"the {fld} field never ends",
                    _fix_delim(d),
                    (start, self.n),
                )
                return None
            c = w[j]
            j += 1
            if c == d:
                break
            if c == 0x5C and j < len(w) and w[j] == 0x78:  # backslash x
                j += 1
                digits = w[j : j + 2]
                if len(digits) < 2 or not all(x in HEX_DIGITS for x in digits):
                    # the kernel returns NULL here: no further parsing
                    self.stop(
                        fld,
                        f"{fld}.escape",
                        f"bad escape in {fld}: '\\x' must be followed by exactly two hex digits",
                        "write every byte as \\xHH with two hex digits, e.g. \\x7f or \\x00",
                        (j - 2, min(j + 2, self.n)),
                    )
                    return None
                j += 2
        end = j - 1
        if end >= self.n:
            self._ends_inside(fld, start)
            return None
        self.spans[fld] = (start, end)
        self.pos = j
        return w[start:end]


# -- the scan, field by field -------------------------------------------------------------
def scan_fields(raw: bytes, profile: KernelProfile) -> FieldScan:
    """Parse ``raw`` (exactly the bytes of one ``write()``) as ``create_entry()`` does."""
    c = Cursor(raw, profile)
    result = FieldScan(None, c.problems, c.spans)
    if not _length(c) or not _delimiter(c):
        return result
    fields = _fields(c)
    if fields is not None and not any(p.is_error for p in c.problems):
        result.fields = fields
    return result


def _fields(c: Cursor) -> Fields | None:
    name = _name(c)
    etype = None if name is None else _type(c)
    if name is None or etype is None:
        return None
    body = _magic_body(c) if etype == "M" else _extension_body(c)
    interp = None if body is None else _interpreter(c)
    if body is None or interp is None:
        return None
    offset, magic, mask, extension = body
    flags = _flags(c)
    return Fields(name, etype, interp, flags, offset, magic, mask, extension)


def _length(c: Cursor) -> bool:
    """The write's size; False when there is nothing to parse."""
    raw, n, profile = c.raw, c.n, c.profile
    empty = raw in (b"", b"\n")
    if n < 11:
        c.err(
            "length",
            "length.min",
            "the register string is empty"
            if empty
            else f"the register string is {n} byte{'s' * (n != 1)}; the kernel needs at least 11",
            "write all seven fields: :name:type:offset:magic:mask:interpreter:flags",
            (0, n),
        )
        if empty:
            return False  # nothing more to say about nothing
    elif n > profile.max_register:
        total = getattr(raw, "full_length", n)  # a LongLine: only its start was read
        c.err(
            "length",
            "length.max",
            f"the register string is {total} bytes, over the kernel's register limit of "
            f"{profile.max_register} bytes (Linux {profile.label})",
            "shorten it: drop the mask if it is all \\xff, write magic bytes raw where safe, or use a shorter interpreter path",
            (profile.max_register, n),
        )
    return n != 0


def _delimiter(c: Cursor) -> bool:
    """The first byte; False when it makes every other complaint meaningless."""
    if c.raw.startswith(b"\xef\xbb\xbf"):
        c.err(
            "delimiter",
            "delimiter.bom",
            "the line starts with a UTF-8 byte order mark (EF BB BF): systemd-binfmt and echo "
            "pass it to the kernel, which takes its first byte \\xef as the delimiter",
            "save the file without a BOM (sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)",
            (0, 3),
        )
        return False  # every other complaint would follow from the wrong delimiter
    if chr(c.d) in "POCF":
        c.err(
            "delimiter",
            "delimiter.unusable",
            f"the delimiter is {c.dname}, a flag letter: the kernel's flag scan runs on into its padding, so it can never work",
            "start the string with ':' (or another byte that occurs in no field)",
            (0, 1),
        )
    return True


def _name(c: Cursor) -> bytes | None:
    got = c.cfield("name")
    if got is None:
        return None
    name, start = got
    span = (start, start + len(name))
    if not name:
        c.err(
            "name",
            "name.empty",
            "the name is empty",
            "give the entry a name, e.g. qemu-aarch64",
            span,
        )
    elif name in (b".", b".."):
        c.err(
            "name",
            "name.dot",
            f"the name {name.decode()!r} is reserved by the filesystem",
            "choose another name",
            span,
        )
    elif b"/" in name:
        c.err(
            "name",
            "name.slash",
            "the name contains '/'",
            "remove '/' from the name (it becomes a file name)",
            span,
        )
    return name


def _type(c: Cursor) -> str | None:
    w, pos, n = c.w, c.pos, c.n
    t = w[pos]
    if t not in b"ME" or w[pos + 1] != c.d:
        j = pos
        while j < n and w[j] != c.d:
            j += 1
        c.stop(
            "type",
            "type.invalid",
            f"the type field is {w[pos:j].decode('latin-1')!r}; it must be exactly 'M' (magic) or 'E' (extension)",
            "write M or E (upper case) between the name and the offset",
            (pos, max(j, pos + 1)),
        )
        return None
    c.spans["type"] = (pos, min(pos + 1, n))
    c.pos = pos + 2
    return chr(t)


_Body = tuple[int, bytes, bytes | None, bytes | None]  # offset, magic, mask, extension


def _magic_body(c: Cursor) -> _Body | None:
    """Offset, magic and mask of an ``M`` entry."""
    got = c.cfield("offset")
    if got is None:
        return None
    off_raw, start = got
    ospan = (start, start + len(off_raw))
    offset = _parse_offset(c, off_raw, ospan) if off_raw else 0
    magic_raw = c.scanarg("magic")
    if magic_raw is None:
        return None
    mspan = c.spans["magic"]
    if not magic_raw or magic_raw[0] == 0:
        c.err(
            "magic",
            "magic.empty",
            "the magic is empty"
            if not magic_raw
            else "the magic starts with a raw NUL byte, so the kernel sees it as empty",
            "give the bytes to match, e.g. \\x7fELF\\x02\\x01 (write NUL as \\x00)",
            mspan,
        )
    mask_raw = c.scanarg("mask")
    if mask_raw is None:
        return None
    decode = unescape_legacy if c.profile.legacy_unescape else unescape
    magic = decode(magic_raw)
    _warn_field_text(c, "magic", magic_raw, magic, mspan)
    mask = _mask(c, magic_raw, magic, mask_raw, decode)
    if magic_raw and magic_raw[0] != 0:
        _check_range(c, offset, len(magic), ospan, mspan)
    _warn_elf_coverage(c, magic, mask, offset, mspan)
    return offset, magic, mask, None


def _mask(
    c: Cursor, magic_raw: bytes, magic: bytes, mask_raw: bytes, decode: Callable[[bytes], bytes]
) -> bytes | None:
    kspan = c.spans["mask"]
    if not mask_raw:
        return None
    if mask_raw[0] == 0:
        c.warn(
            "mask",
            "mask.nul-first",
            "the mask starts with a raw NUL byte; the kernel treats that as no mask (exact match)",
            "write \\x00 instead of a raw NUL, or leave the mask empty on purpose",
            kspan,
        )
        return None
    mask = decode(mask_raw)
    _warn_field_text(c, "mask", mask_raw, mask, kspan)
    if magic_raw and magic_raw[0] != 0 and len(mask) != len(magic):
        c.err(
            "mask",
            "mask.length",
            f"the mask decodes to {plural(len(mask), 'byte')} but the magic to {len(magic)}; they must be equal",
            f"{'shorten' if len(mask) > len(magic) else 'extend'} the mask to {plural(len(magic), 'byte')} (\\xff for bytes that must match)",
            kspan,
        )
    return mask


def _check_range(c: Cursor, offset: int, size: int, ospan: Span, mspan: Span) -> None:
    """offset + magic must fit the buffer the kernel matches against."""
    profile, buf = c.profile, c.profile.buf_size
    if profile.kstrtoint_offset:
        too_big = size > buf or buf - size < offset
    else:  # int arithmetic on a truncated unsigned long: huge values wrap
        too_big = size + _as_int32(offset) > buf
    if too_big:
        c.err(
            "offset" if size <= buf else "magic",
            "magic.range",
            f"offset {offset} + magic size {size} = {offset + size} exceeds the {buf}-byte buffer the kernel matches against (Linux {profile.label})",
            f"keep offset + magic length <= {buf}"
            + (" (kernels before 5.1 match only the first 128 bytes)" if buf == 128 else ""),
            ospan if size <= buf else mspan,
        )


def _extension_body(c: Cursor) -> _Body | None:
    """An ``E`` entry: offset and mask are skipped unvalidated."""
    if c.cfield("offset") is None:
        return None
    got = c.cfield("extension")
    if got is None:
        return None
    extension, start = got
    espan = (start, start + len(extension))
    if not extension:
        c.err(
            "extension",
            "extension.empty",
            "the extension is empty",
            "give the extension without the dot, e.g. jar",
            espan,
        )
    elif b"/" in extension:
        c.err(
            "extension",
            "extension.slash",
            "the extension contains '/'",
            "remove '/' from the extension",
            espan,
        )
    elif b"." in extension:
        c.warn(
            "extension",
            "extension.dot",
            "the extension contains '.'; the kernel compares only the text after the last dot of the file name, so this can never match",
            f"use the last part only, e.g. {extension.rsplit(b'.', 1)[-1].decode('latin-1')!r}",
            espan,
        )
    if c.cfield("mask") is None:
        return None
    return 0, b"", None, extension


def _interpreter(c: Cursor) -> bytes | None:
    got = c.cfield("interpreter")
    if got is None:
        return None
    interp, start = got
    if not interp:
        c.err(
            "interpreter",
            "interpreter.empty",
            "the interpreter is empty",
            "give the absolute path of the interpreter, e.g. /usr/bin/qemu-aarch64-static",
            (start, start),
        )
    return interp


def _flags(c: Cursor) -> str:
    """The flags and the end-of-data check."""
    w, n, profile = c.w, c.n, c.profile
    fstart = pos = c.pos
    known = profile.known_flags.encode()
    while pos < len(w) and w[pos] in known:
        pos += 1
    flags_raw = w[fstart : min(pos, n)]
    if pos < len(w) and w[pos] == 0x0A:
        pos += 1
    c.spans["flags"] = (fstart, min(pos, n))
    c.pos = pos
    if pos > n:
        if not c.has("delimiter.unusable"):
            c.err(
                "flags",
                "flags.end",
                "the flags run past the end of the string",
                "end the string right after the flags (one newline at most)",
                (fstart, n),
            )
    elif pos < n:
        msg, fix = _flags_trailer(c, w[pos])
        c.err("flags", "flags.invalid", msg, fix, (pos, n))
    return flags_raw.decode("ascii")


def _flags_trailer(c: Cursor, bad: int) -> tuple[str, str]:
    """What the first byte after the flags is, and its fix."""
    profile = c.profile
    if bad == ord("F") and not profile.at_least(4, 8):
        return (
            f"the F flag (fix-binary) needs Linux 4.8; Linux {profile.label} rejects it",
            "drop F (then the interpreter must exist inside every container and chroot), or upgrade the kernel",
        )
    if bad == 0x0A:
        return (
            "more than one newline at the end; the kernel accepts exactly one",
            "end the string with at most one newline",
        )
    if bad == c.d:
        return (
            f"an extra delimiter {c.dname} after the flags",
            "remove the trailing delimiter: the flags are the last field",
        )
    if chr(bad) in "pocf":
        return f"unknown flag {chr(bad)!r}: flags are upper case", f"write {chr(bad).upper()!r}"
    if bad == 0x0D:
        return (
            "a carriage return after the flags (a file with Windows line endings?)",
            "convert the file to Unix line endings (dos2unix)",
        )
    return (
        f"unexpected {show_byte(bad)} in the flags; only {', '.join(profile.known_flags)} and one trailing newline are allowed",
        "keep only the flag letters " + "".join(profile.known_flags),
    )


# -- field checks ------------------------------------------------------------------------
def _as_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def kstrtoint_parts(raw: bytes) -> tuple[bytes, bytes] | None:
    """(sign, digits) of what kstrtoint(s, 10) takes: an optional '+' or '-', ASCII digits,
    one optional trailing newline (``([+-]?)(\\d+)\\n?`` of a bytes pattern, without ``re``);
    None for anything else."""
    body = raw[:-1] if raw.endswith(b"\n") else raw
    sign = body[:1] if body[:1] in (b"+", b"-") else b""
    digits = body[len(sign) :]
    return (sign, digits) if digits.isdigit() else None


def _parse_offset(c: Cursor, raw: bytes, span: Span) -> int:
    profile = c.profile
    fix = "write a plain decimal number of bytes (or leave it empty for 0)"
    if not profile.kstrtoint_offset:
        # simple_strtoul(): digits only, then the field must be over; no range check here
        if not raw.isdigit():
            c.err(
                "offset",
                "offset.syntax",
                f"the offset {raw.decode('latin-1')!r} is not a decimal number (Linux {profile.label}: digits only)",
                fix,
                span,
            )
            return 0
        return int(raw) & 0xFFFFFFFFFFFFFFFF
    parts = kstrtoint_parts(raw)
    if parts is None:
        c.err(
            "offset",
            "offset.syntax",
            f"the offset {raw.decode('latin-1')!r} is not a decimal number",
            fix,
            span,
        )
        return 0
    sign, digits = parts
    value = int(digits)
    if sign == b"-":
        value = -value
    if value > 2**31 - 1 or value < -(2**31):
        c.err(
            "offset",
            "offset.range",
            f"the offset {raw.decode('latin-1')!r} does not fit in an int",
            fix,
            span,
        )
        return 0
    if value < 0:
        c.err(
            "offset",
            "offset.negative",
            f"the offset {value} is negative",
            "offsets count bytes from the start of the file: use 0 or more",
            span,
        )
        return 0
    return value


def _warn_field_text(c: Cursor, fld: str, raw: bytes, decoded: bytes, span: Span) -> None:
    if is_bare_hex(raw):
        pretty = "".join(f"\\x{raw[i : i + 2].decode().lower()}" for i in range(0, len(raw), 2))
        c.warn(
            fld,
            f"{fld}.bare-hex",
            f"the {fld} is the ASCII text {raw.decode()!r} ({len(raw)} bytes), not the bytes it spells; it registers but "
            + ("matches nothing you meant" if fld == "magic" else "masks the wrong bits"),
            f"write each byte as \\xHH: {pretty}",
            span,
        )
    nul = raw.find(b"\0")
    if nul > 0:
        c.warn(
            fld,
            f"{fld}.nul-truncates",
            f"a raw NUL byte at position {nul} of the {fld} silently truncates it to {plural(len(decoded), 'byte')}",
            "write NUL bytes as the four characters \\x00 (beware printf %b and echo -e, which turn \\x00 into a raw NUL)",
            span,
        )


def _warn_elf_coverage(
    c: Cursor, magic: bytes, mask: bytes | None, offset: int, span: Span
) -> None:
    """An ELF magic whose mask leaves class, byte order or machine open matches far
    more than intended, often the host's own binaries."""
    if offset != 0 or not magic.startswith(b"\x7fELF"):
        return
    if mask is not None and len(mask) != len(magic):
        return  # the kernel refuses it (mask.length): nothing is matched at all
    full = mask if mask is not None else b"\xff" * len(magic)
    missing = []
    if len(magic) <= 4 or full[4] & 0x03 == 0:
        missing.append("EI_CLASS (byte 4)")
    if len(magic) <= 5 or full[5] & 0x03 == 0:
        missing.append("EI_DATA (byte 5)")
    if len(magic) <= 18 or (full[18] == 0 and (len(magic) <= 19 or full[19] == 0)):
        missing.append("e_machine (bytes 18-19)")
    if missing:
        c.warn(
            "mask",
            "mask.elf-coverage",
            f"this ELF magic ({len(magic)} bytes) does not constrain {', '.join(missing)}; it matches ELF files of other architectures, possibly the host's own",
            "use the full 20-byte magic/mask of the target (binfmtctl gen TARGET prints it)",
            span,
        )
