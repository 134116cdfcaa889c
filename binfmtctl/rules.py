"""The kernel's registration rules, per kernel version.

:func:`scan` is a byte-for-byte model of ``create_entry()`` in
``fs/binfmt_misc.c``: the kernel copies the write into a buffer padded with 8
delimiter bytes, then walks it with C-string functions, so a raw NUL ends a
``strchr`` search, a missing delimiter is "found" in the padding, and parsing
fails at the end-of-data check. :func:`validate` adds what ``bm_register_write``
decides after parsing (the ``F`` open of the interpreter, the name lookup and
``EEXIST``), in the order the profiled kernel does it, plus warnings for what
the kernel accepts but is almost surely a mistake.

Pure: filesystem facts (existing entry names, whether the interpreter opens for
exec) are passed in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from binfmtctl.entry import Entry, kernel_view, unescape, unescape_legacy
from binfmtctl.errors import Problem
from binfmtctl.wording import plural

RESERVED_NAMES = frozenset({"register", "status"})
NAME_MAX = 255


@dataclass(frozen=True)
class KernelProfile:
    """What a kernel version does with a registration (see the reference's §7)."""

    version: tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> KernelProfile:
        """``"6.1"``, ``"4.4.0-210-generic"``, ``"6.18.44-fc"`` -> profile."""
        m = re.match(r"^\s*(\d+)\.(\d+)", text)
        if not m:
            raise ValueError(f"not a kernel version: {text!r} (expected X.Y, e.g. 5.10)")
        return cls((int(m.group(1)), int(m.group(2))))

    @classmethod
    def current_default(cls) -> KernelProfile:
        """The running kernel's profile."""
        return cls.parse(os.uname().release)

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def at_least(self, major: int, minor: int) -> bool:
        return self.version >= (major, minor)

    # Facts, each with the change that introduced it.
    @property
    def max_register(self) -> int:
        return 1920 if self.at_least(3, 18) else 256  # 2014 cleanup raised 256 -> 1920

    @property
    def buf_size(self) -> int:
        return 256 if self.at_least(5, 1) else 128  # BINPRM_BUF_SIZE, 6eb3c3d0a52d

    @property
    def known_flags(self) -> str:
        return "POCF" if self.at_least(4, 8) else "POC"  # F: 948b701a607f

    @property
    def real_errno(self) -> bool:
        """Post-parse failures return their own errno (before 4.8: always EINVAL)."""
        return self.at_least(4, 8)

    @property
    def fopen_before_lookup(self) -> bool:
        """F's open_exec() runs before the name lookup (e7850f4d844e, 5.12)."""
        return self.at_least(5, 12)

    @property
    def kstrtoint_offset(self) -> bool:
        """Offset parsed with kstrtoint, negatives refused (5cc41e099504, ~4.18)."""
        return self.at_least(4, 18)

    @property
    def legacy_unescape(self) -> bool:
        """Pre-3.18 private unquote(): a backslash never swallows the next byte."""
        return not self.at_least(3, 18)

    @property
    def per_userns(self) -> bool:
        """Each user namespace may mount its own instance (21ca59b365c0, 6.7)."""
        return self.at_least(6, 7)

    @property
    def preserve_argv0_auxv(self) -> bool:
        """P is visible to the interpreter as AT_FLAGS bit 0 (2347961b11d4, 5.12)."""
        return self.at_least(5, 12)

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.label,
            "max_register": self.max_register,
            "buf_size": self.buf_size,
            "known_flags": self.known_flags,
            "real_errno": self.real_errno,
            "fopen_before_lookup": self.fopen_before_lookup,
            "per_userns": self.per_userns,
        }


@dataclass
class ScanResult:
    entry: Entry | None
    problems: list[Problem] = field(default_factory=list)
    #: byte spans of each field in the input, for diagnostics
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


class _Stop(Exception):
    """Parsing cannot continue (positions past this point are meaningless)."""


_PRINTABLE = re.compile(rb"[\x21-\x7e]")


def _show(b: int) -> str:
    if b == 0:
        return "a raw NUL byte"
    if b == 0x0A:
        return "a newline"
    if b == 0x20:
        return "a space"
    if _PRINTABLE.fullmatch(bytes((b,))):
        return f"{chr(b)!r}"
    return f"byte 0x{b:02x}"


def _fix_delim(d: int) -> str:
    return f"put {_show(d)} after this field" if d else "end this field with the delimiter"


def scan(raw: bytes, profile: KernelProfile) -> ScanResult:
    """Parse ``raw`` (exactly the bytes of one ``write()``) as ``create_entry()`` does."""
    res = ScanResult(entry=None)
    probs = res.problems
    n = len(raw)

    def err(fld: str, rule: str, msg: str, fix: str, span: tuple[int, int] | None) -> None:
        probs.append(Problem(fld, msg, fix, errno="EINVAL", span=span, rule=rule))

    def warn(fld: str, rule: str, msg: str, fix: str, span: tuple[int, int] | None) -> None:
        probs.append(Problem(fld, msg, fix, errno=None, span=span, severity="warning", rule=rule))

    if n < 11:
        err(
            "length",
            "length.min",
            "the register string is empty"
            if raw in (b"", b"\n")
            else f"the register string is {n} byte{'s' * (n != 1)}; the kernel needs at least 11",
            "write all seven fields: :name:type:offset:magic:mask:interpreter:flags",
            (0, n),
        )
        if raw in (b"", b"\n"):
            return res  # nothing more to say about nothing
    elif n > profile.max_register:
        total = getattr(raw, "full_length", n)  # a LongLine: only its start was read
        err(
            "length",
            "length.max",
            f"the register string is {total} bytes, over the kernel's register limit of "
            f"{profile.max_register} bytes (Linux {profile.label})",
            "shorten it: drop the mask if it is all \\xff, write magic bytes raw where safe, or use a shorter interpreter path",
            (profile.max_register, n),
        )
    if n == 0:
        return res

    d = raw[0]
    w = raw + bytes((d,)) * 8  # the kernel pads with 8 delimiter bytes
    dname = _show(d)
    if raw.startswith(b"\xef\xbb\xbf"):
        err(
            "delimiter",
            "delimiter.bom",
            "the line starts with a UTF-8 byte order mark (EF BB BF): systemd-binfmt and echo "
            "pass it to the kernel, which takes its first byte \\xef as the delimiter",
            "save the file without a BOM (sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)",
            (0, 3),
        )
        return res  # every other complaint would follow from the wrong delimiter
    if chr(d) in "POCF":
        err(
            "delimiter",
            "delimiter.unusable",
            f"the delimiter is {dname}, a flag letter: the kernel's flag scan runs on into its padding, so it can never work",
            "start the string with ':' (or another byte that occurs in no field)",
            (0, 1),
        )

    def cfield(pos: int, fld: str) -> tuple[bytes, int, int]:
        """strchr(p, del) + NUL-terminate: returns (field, start, next position)."""
        j = pos
        while j < len(w) and w[j] != d and w[j] != 0:
            j += 1
        if j >= len(w):  # cannot happen with padding, kept for safety
            err(fld, f"{fld}.unterminated", f"the {fld} field never ends", _fix_delim(d), (pos, n))
            raise _Stop
        if w[j] != d:  # a raw NUL before the delimiter: strchr() returns NULL
            err(
                fld,
                f"{fld}.nul",
                f"the {fld} field contains a raw NUL byte at byte {j}; the kernel's string search stops there",
                f"remove the NUL from the {fld}"
                + (" (write it as \\x00 in magic or mask)" if fld in ("magic", "mask") else ""),
                (j, j + 1),
            )
            raise _Stop
        if j >= n:
            err(
                fld,
                f"{fld}.unterminated",
                f"the string ends inside the {fld} field: the delimiter ({dname}, as at the start) is missing after it",
                _fix_delim(d)
                + (
                    " (it is mandatory even when there are no flags)"
                    if fld == "interpreter"
                    else ""
                ),
                (pos, n),
            )
            raise _Stop
        res.spans[fld] = (pos, j)
        return w[pos:j], pos, j + 1

    def scanarg(pos: int, fld: str) -> tuple[bytes, int]:
        """scanarg(): walk to the delimiter; ``\\x`` must be followed by two hex digits."""
        j = pos
        ok = True
        while True:
            if j >= len(w):
                err(
                    fld,
                    f"{fld}.unterminated",
                    f"the {fld} field never ends",
                    _fix_delim(d),
                    (pos, n),
                )
                raise _Stop
            c = w[j]
            j += 1
            if c == d:
                break
            if c == 0x5C and j < len(w) and w[j] == 0x78:  # backslash x
                j += 1
                digits = w[j : j + 2]
                if len(digits) < 2 or not all(x in _HEXB for x in digits):
                    if ok:
                        err(
                            fld,
                            f"{fld}.escape",
                            f"bad escape in {fld}: '\\x' must be followed by exactly two hex digits",
                            "write every byte as \\xHH with two hex digits, e.g. \\x7f or \\x00",
                            (j - 2, min(j + 2, n)),
                        )
                    ok = False
                    # the kernel returns NULL here: no further parsing
                    raise _Stop
                j += 2
        end = j - 1
        if end >= n:
            err(
                fld,
                f"{fld}.unterminated",
                f"the string ends inside the {fld} field: the delimiter ({dname}, as at the start) is missing after it",
                _fix_delim(d),
                (pos, n),
            )
            raise _Stop
        res.spans[fld] = (pos, end)
        return w[pos:end], j

    try:
        # -- name ------------------------------------------------------------------
        name, s0, pos = cfield(1, "name")
        span = (s0, s0 + len(name))
        if not name:
            err(
                "name",
                "name.empty",
                "the name is empty",
                "give the entry a name, e.g. qemu-aarch64",
                span,
            )
        elif name in (b".", b".."):
            err(
                "name",
                "name.dot",
                f"the name {name.decode()!r} is reserved by the filesystem",
                "choose another name",
                span,
            )
        elif b"/" in name:
            err(
                "name",
                "name.slash",
                "the name contains '/'",
                "remove '/' from the name (it becomes a file name)",
                span,
            )

        # -- type ------------------------------------------------------------------
        t = w[pos]
        tspan = (pos, min(pos + 1, n))
        if t not in b"ME" or w[pos + 1] != d:
            j = pos
            while j < n and w[j] != d:
                j += 1
            got = w[pos:j]
            err(
                "type",
                "type.invalid",
                f"the type field is {got.decode('latin-1')!r}; it must be exactly 'M' (magic) or 'E' (extension)",
                "write M or E (upper case) between the name and the offset",
                (pos, max(j, pos + 1)),
            )
            raise _Stop
        res.spans["type"] = tspan
        pos += 2
        etype = chr(t)

        magic = b""
        mask: bytes | None = None
        offset = 0
        extension: bytes | None = None
        if etype == "M":
            # -- offset ------------------------------------------------------------
            off_raw, s0, pos = cfield(pos, "offset")
            ospan = (s0, s0 + len(off_raw))
            if off_raw:
                offset = _parse_offset(off_raw, profile, ospan, err)
            # -- magic -------------------------------------------------------------
            magic_raw, pos = scanarg(pos, "magic")
            mspan = res.spans["magic"]
            if not magic_raw or magic_raw[0] == 0:
                err(
                    "magic",
                    "magic.empty",
                    "the magic is empty"
                    if not magic_raw
                    else "the magic starts with a raw NUL byte, so the kernel sees it as empty",
                    "give the bytes to match, e.g. \\x7fELF\\x02\\x01 (write NUL as \\x00)",
                    mspan,
                )
            # -- mask --------------------------------------------------------------
            mask_raw, pos = scanarg(pos, "mask")
            kspan = res.spans["mask"]
            decode = unescape_legacy if profile.legacy_unescape else unescape
            magic = decode(magic_raw)
            _warn_field_text("magic", magic_raw, magic, mspan, warn)
            if mask_raw and mask_raw[0] != 0:
                mask = decode(mask_raw)
                _warn_field_text("mask", mask_raw, mask, kspan, warn)
                if magic_raw and magic_raw[0] != 0 and len(mask) != len(magic):
                    err(
                        "mask",
                        "mask.length",
                        f"the mask decodes to {plural(len(mask), 'byte')} but the magic to {len(magic)}; they must be equal",
                        f"{'shorten' if len(mask) > len(magic) else 'extend'} the mask to {plural(len(magic), 'byte')} (\\xff for bytes that must match)",
                        kspan,
                    )
            elif mask_raw and mask_raw[0] == 0:
                warn(
                    "mask",
                    "mask.nul-first",
                    "the mask starts with a raw NUL byte; the kernel treats that as no mask (exact match)",
                    "write \\x00 instead of a raw NUL, or leave the mask empty on purpose",
                    kspan,
                )
            size = len(magic)
            buf = profile.buf_size
            if magic_raw and magic_raw[0] != 0:
                if profile.kstrtoint_offset:
                    too_big = size > buf or buf - size < offset
                else:  # int arithmetic on a truncated unsigned long: huge values wrap
                    too_big = size + _as_int32(offset) > buf
                if too_big:
                    err(
                        "offset" if size <= buf else "magic",
                        "magic.range",
                        f"offset {offset} + magic size {size} = {offset + size} exceeds the {buf}-byte buffer the kernel matches against (Linux {profile.label})",
                        f"keep offset + magic length <= {buf}"
                        + (
                            " (kernels before 5.1 match only the first 128 bytes)"
                            if buf == 128
                            else ""
                        ),
                        ospan if size <= buf else mspan,
                    )
            _warn_elf_coverage(magic, mask, offset, mspan, warn)
        else:
            # -- extension entry: offset and mask are skipped unvalidated --------------
            _, _, pos = cfield(pos, "offset")
            extension, s0, pos = cfield(pos, "extension")
            espan = (s0, s0 + len(extension))
            if not extension:
                err(
                    "extension",
                    "extension.empty",
                    "the extension is empty",
                    "give the extension without the dot, e.g. jar",
                    espan,
                )
            elif b"/" in extension:
                err(
                    "extension",
                    "extension.slash",
                    "the extension contains '/'",
                    "remove '/' from the extension",
                    espan,
                )
            elif b"." in extension:
                warn(
                    "extension",
                    "extension.dot",
                    "the extension contains '.'; the kernel compares only the text after the last dot of the file name, so this can never match",
                    f"use the last part only, e.g. {extension.rsplit(b'.', 1)[-1].decode('latin-1')!r}",
                    espan,
                )
            _, _, pos = cfield(pos, "mask")

        # -- interpreter -------------------------------------------------------------
        interp, s0, pos = cfield(pos, "interpreter")
        ispan = (s0, s0 + len(interp))
        if not interp:
            err(
                "interpreter",
                "interpreter.empty",
                "the interpreter is empty",
                "give the absolute path of the interpreter, e.g. /usr/bin/qemu-aarch64-static",
                ispan,
            )

        # -- flags and the end of data -------------------------------------------------
        fstart = pos
        known = profile.known_flags.encode()
        while pos < len(w) and w[pos] in known:
            pos += 1
        flags_raw = w[fstart : min(pos, n)]
        if pos < len(w) and w[pos] == 0x0A:
            pos += 1
        res.spans["flags"] = (fstart, min(pos, n))
        if pos != n:
            if pos > n:
                if not any(p.rule == "delimiter.unusable" for p in probs):
                    err(
                        "flags",
                        "flags.end",
                        "the flags run past the end of the string",
                        "end the string right after the flags (one newline at most)",
                        (fstart, n),
                    )
            else:
                bad = w[pos]
                if bad == ord("F") and not profile.at_least(4, 8):
                    msg = (
                        f"the F flag (fix-binary) needs Linux 4.8; Linux {profile.label} rejects it"
                    )
                    fix = "drop F (then the interpreter must exist inside every container and chroot), or upgrade the kernel"
                elif bad == 0x0A:
                    msg = "more than one newline at the end; the kernel accepts exactly one"
                    fix = "end the string with at most one newline"
                elif bad == d:
                    msg = f"an extra delimiter {dname} after the flags"
                    fix = "remove the trailing delimiter: the flags are the last field"
                elif chr(bad) in "pocf":
                    msg = f"unknown flag {chr(bad)!r}: flags are upper case"
                    fix = f"write {chr(bad).upper()!r}"
                elif bad == 0x0D:
                    msg = "a carriage return after the flags (a file with Windows line endings?)"
                    fix = "convert the file to Unix line endings (dos2unix)"
                else:
                    msg = f"unexpected {_show(bad)} in the flags; only {', '.join(profile.known_flags)} and one trailing newline are allowed"
                    fix = "keep only the flag letters " + "".join(profile.known_flags)
                err("flags", "flags.invalid", msg, fix, (pos, n))
    except _Stop:
        return res

    if any(p.is_error for p in probs):
        return res
    res.entry = Entry(
        name=os.fsdecode(name),
        type=etype,
        interpreter=os.fsdecode(interp),
        flags=flags_raw.decode("ascii"),
        offset=offset,
        magic=magic,
        mask=mask,
        extension=None if extension is None else os.fsdecode(extension),
    )
    return res


_HEXB = frozenset(b"0123456789abcdefABCDEF")


def _as_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _parse_offset(
    raw: bytes,
    profile: KernelProfile,
    span: tuple[int, int],
    err: Callable[[str, str, str, str, tuple[int, int] | None], None],
) -> int:
    fix = "write a plain decimal number of bytes (or leave it empty for 0)"
    if not profile.kstrtoint_offset:
        # simple_strtoul(): digits only, then the field must be over; no range check here
        if not raw.isdigit():
            err(
                "offset",
                "offset.syntax",
                f"the offset {raw.decode('latin-1')!r} is not a decimal number (Linux {profile.label}: digits only)",
                fix,
                span,
            )
            return 0
        return int(raw) & 0xFFFFFFFFFFFFFFFF
    # kstrtoint(s, 10): optional '+' or '-', digits, one optional trailing newline
    m = re.fullmatch(rb"([+-]?)(\d+)\n?", raw)
    if not m:
        err(
            "offset",
            "offset.syntax",
            f"the offset {raw.decode('latin-1')!r} is not a decimal number",
            fix,
            span,
        )
        return 0
    value = int(m.group(2))
    if m.group(1) == b"-":
        value = -value
    if value > 2**31 - 1 or value < -(2**31):
        err(
            "offset",
            "offset.range",
            f"the offset {raw.decode('latin-1')!r} does not fit in an int",
            fix,
            span,
        )
        return 0
    if value < 0:
        err(
            "offset",
            "offset.negative",
            f"the offset {value} is negative",
            "offsets count bytes from the start of the file: use 0 or more",
            span,
        )
        return 0
    return value


_BARE_HEX = re.compile(rb"(?:[0-9a-fA-F]{2}){2,}")


def _warn_field_text(
    fld: str,
    raw: bytes,
    decoded: bytes,
    span: tuple[int, int],
    warn: Callable[[str, str, str, str, tuple[int, int] | None], None],
) -> None:
    if _BARE_HEX.fullmatch(raw):
        pretty = "".join(f"\\x{raw[i : i + 2].decode().lower()}" for i in range(0, len(raw), 2))
        warn(
            fld,
            f"{fld}.bare-hex",
            f"the {fld} is the ASCII text {raw.decode()!r} ({len(raw)} bytes), not the bytes it spells; it registers but "
            + ("matches nothing you meant" if fld == "magic" else "masks the wrong bits"),
            f"write each byte as \\xHH: {pretty}",
            span,
        )
    nul = raw.find(b"\0")
    if nul > 0:
        warn(
            fld,
            f"{fld}.nul-truncates",
            f"a raw NUL byte at position {nul} of the {fld} silently truncates it to {plural(len(decoded), 'byte')}",
            "write NUL bytes as the four characters \\x00 (beware printf %b and echo -e, which turn \\x00 into a raw NUL)",
            span,
        )


def _warn_elf_coverage(
    magic: bytes,
    mask: bytes | None,
    offset: int,
    span: tuple[int, int],
    warn: Callable[[str, str, str, str, tuple[int, int] | None], None],
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
        warn(
            "mask",
            "mask.elf-coverage",
            f"this ELF magic ({len(magic)} bytes) does not constrain {', '.join(missing)}; it matches ELF files of other architectures, possibly the host's own",
            "use the full 20-byte magic/mask of the target (binfmtctl gen TARGET prints it)",
            span,
        )


# -- post-parse decisions ------------------------------------------------------------------------
ExecCheck = Callable[[str], "str | None"]


@dataclass
class Verdict:
    """Everything ``validate`` knows about one register string."""

    input: bytes
    entry: Entry | None
    problems: list[Problem]
    errno: str | None
    profile: KernelProfile
    #: set when binfmtctl itself failed to judge this input (a bug): not valid, no errno
    internal_error: str | None = None

    @property
    def valid(self) -> bool:
        return self.errno is None and self.internal_error is None

    @property
    def kernel_view(self) -> str | None:
        return kernel_view(self.entry) if self.entry is not None and self.valid else None

    def to_json(self) -> dict[str, object]:
        return {
            "input": (self.input[:-1] if self.input.endswith(b"\n") else self.input).decode(
                "utf-8", "backslashreplace"
            ),
            "valid": self.valid,
            "errno": self.errno,
            "problems": [p.to_json() for p in self.problems],
            "kernel_view": self.kernel_view,
            "kernel": self.profile.label,
        } | ({"internal_error": self.internal_error} if self.internal_error else {})


_FOPEN_FIX = {
    "ENOENT": "install the interpreter or fix the path (with F it must exist when you register)",
    "EACCES": "the interpreter must be an executable regular file on a filesystem mounted without noexec: chmod +x it or fix the path",
    "ENOTDIR": "a directory in the interpreter path is a file: fix the path",
    "ETXTBSY": "the interpreter is open for writing (being upgraded?); retry after the write finishes",
    "ELOOP": "the interpreter path has a symlink loop: fix the path",
    "ENAMETOOLONG": "shorten the interpreter path",
}


def validate_contained(
    raw: bytes,
    profile: KernelProfile,
    *,
    existing_names: Iterable[str] = (),
    exec_check: ExecCheck | None = None,
) -> Verdict:
    """:func:`validate`, but a failure of binfmtctl's own on this input becomes a verdict
    (not valid, ``internal_error`` set) instead of an exception: a batch still judges
    every other input."""
    try:
        return validate(raw, profile, existing_names=existing_names, exec_check=exec_check)
    except Exception as e:  # a bug of ours: contain it to this input
        why = f"{type(e).__name__}: {e}"
        problem = Problem(
            "input",
            f"binfmtctl could not judge this input (internal error {why})",
            "nothing to fix in the input on your side: please report it to binfmtctl with this input",
            errno=None,
            rule="internal",
        )
        return Verdict(raw, None, [problem], None, profile, internal_error=why)


def validate(
    raw: bytes,
    profile: KernelProfile,
    *,
    existing_names: Iterable[str] = (),
    exec_check: ExecCheck | None = None,
) -> Verdict:
    """Judge one ``write()`` to ``register``: would the kernel accept it, with which errno?

    ``exec_check(path)`` returns the errno name ``open_exec`` would give for the
    interpreter (or None); it is only consulted for ``F`` entries and only when
    given. ``existing_names`` are entries already registered in the target instance.
    """
    res = scan(raw, profile)
    problems = list(res.problems)
    entry = res.entry
    if entry is None:
        return Verdict(raw, None, problems, "EINVAL", profile)

    post: list[Problem] = []  # in the order the kernel decides them
    span_i = res.spans.get("interpreter")
    span_n = res.spans.get("name")
    fopen: Problem | None = None
    if "F" in entry.flags and exec_check is not None:
        e = exec_check(entry.interpreter)
        if e:
            fopen = Problem(
                "interpreter",
                f"with the F flag the kernel opens the interpreter {entry.interpreter!r} at registration, and that fails with {e}",
                _FOPEN_FIX.get(e, "fix the interpreter path"),
                errno=e,
                span=span_i,
                rule="interpreter.fopen",
            )
    lookup: list[Problem] = []
    if len(entry.name_bytes) > NAME_MAX:
        lookup.append(
            Problem(
                "name",
                f"the name is {len(entry.name_bytes)} bytes; entry names are file names of at most {NAME_MAX} bytes",
                "shorten the name",
                errno="ENAMETOOLONG",
                span=span_n,
                rule="name.length",
            )
        )
    elif entry.name in RESERVED_NAMES or entry.name in set(existing_names):
        reserved = entry.name in RESERVED_NAMES
        lookup.append(
            Problem(
                "name",
                f"the name {entry.name!r} is "
                + (
                    "reserved: the control files register and status have it"
                    if reserved
                    else "already registered"
                ),
                "choose another name"
                if reserved
                else f"the kernel never replaces an entry: remove it first (binfmtctl remove {entry.name}), or use binfmtctl register --replace",
                errno="EEXIST",
                span=span_n,
                rule="name.reserved" if reserved else "name.exists",
            )
        )
    if profile.fopen_before_lookup:
        post = ([fopen] if fopen else []) + lookup
    else:
        post = lookup + ([fopen] if fopen else [])
    if post and not profile.real_errno:
        post = [
            Problem(
                p.field,
                p.message + f" (Linux {profile.label} reports this as EINVAL)",
                p.fix,
                "EINVAL",
                p.span,
                p.severity,
                p.rule,
            )
            for p in post
        ]
    problems += post
    errno = post[0].errno if post else None

    # Accepted but risky: warnings that need the parsed entry.
    if entry.interpreter and not entry.interpreter.startswith("/"):
        problems.append(
            Problem(
                "interpreter",
                f"the interpreter {entry.interpreter!r} is a relative path: "
                + (
                    "with F it is resolved against the registering process's working directory"
                    if "F" in entry.flags
                    else "it is resolved against the working directory of every process that runs a matching file"
                ),
                "use an absolute path",
                errno=None,
                span=span_i,
                severity="warning",
                rule="interpreter.relative",
            )
        )
    return Verdict(raw, entry, problems, errno, profile)


__all__ = [
    "RESERVED_NAMES",
    "KernelProfile",
    "ScanResult",
    "Verdict",
    "scan",
    "validate",
]
