"""The binfmt_misc entry: one model, many spellings.

An :class:`Entry` is what the kernel stores for one registration. This module
parses every spelling of it (the raw register string, exactly as the kernel's
``create_entry()`` does; binfmt.d lines; Debian update-binfmts format files;
the kernel's own entry file) and renders it back (canonical register string,
binfmt.d line, update-binfmts file, and ``kernel_view``: the exact text
``cat /proc/sys/fs/binfmt_misc/NAME`` prints).

Pure: bytes in, values out, no I/O. Names, interpreters and extensions are
arbitrary bytes to the kernel; they are held as ``str`` decoded with
``os.fsdecode`` (surrogateescape), so every byte round-trips.

The kernel grammar itself (with per-version differences) lives in
:mod:`binfmtctl.grammar`, below this module; :func:`parse_register` here is its
strict front door. Parsing takes the :class:`KernelProfile` to parse for: only the
edge (the CLI, the host readers) asks which kernel is running.
"""

from __future__ import annotations

import os

from binfmtctl.errors import BinfmtctlError, Problem
from binfmtctl.grammar import MAX_REGISTER, Fields, scan_fields
from binfmtctl.grammar import unescape as unescape
from binfmtctl.grammar import unescape_legacy as unescape_legacy
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.record import dataclass, replace

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `binfmtctl validate` imports no collections, typing
    import re
    from collections.abc import Iterator

FLAG_ORDER = "POCF"
FLAG_MEANING = {
    "P": "preserve-argv0: pass the original argv[0] to the interpreter",
    "O": "open-binary: pass an open fd of the binary (AT_EXECFD)",
    "C": "credentials: compute setuid/caps from the binary (implies O)",
    "F": "fix-binary: open the interpreter once at registration (Linux >= 4.8)",
}
#: bytes the canonical emitter writes literally in magic/mask; all others as \\xhh
_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
#: delimiters the canonical emitter may choose, most conventional first. None of
#: them is a flag letter, a newline, a comment or whitespace in binfmt.d, a
#: backslash, or an escape/hex character.
_DELIMITERS = b":,|!@%^&*=~+"


class EntryParseError(BinfmtctlError):
    """Raised by the strict parsers; carries the kernel-style problems."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


class UnrepresentableError(BinfmtctlError, ValueError):
    """The entry cannot be written in the requested format without changing it."""


def normalize_flags(flags: str) -> str:
    """Flags as the kernel stores them: ``POCF`` order, no duplicates, C implies O."""
    present = set(flags)
    unknown = present - set(FLAG_ORDER)
    if unknown:
        raise ValueError(f"unknown flag(s) {''.join(sorted(unknown))!r}; known: P, O, C, F")
    if "C" in present:
        present.add("O")
    return "".join(f for f in FLAG_ORDER if f in present)


@dataclass(frozen=True)
class Entry:
    """One binfmt_misc registration, as the kernel holds it.

    ``magic``/``mask`` are decoded bytes (type ``M``); ``extension`` is the
    literal extension text (type ``E``, without the dot). ``flags`` is always
    normalised (see :func:`normalize_flags`).
    """

    name: str
    type: str  # "M" (magic) or "E" (extension)
    interpreter: str
    flags: str = ""
    offset: int = 0
    magic: bytes = b""
    mask: bytes | None = None
    extension: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.type not in ("M", "E"):
            raise ValueError(f"entry type must be 'M' or 'E', not {self.type!r}")
        object.__setattr__(self, "flags", normalize_flags(self.flags))
        if self.type == "E":
            object.__setattr__(self, "offset", 0)
            object.__setattr__(self, "magic", b"")
            object.__setattr__(self, "mask", None)

    # -- identity -------------------------------------------------------------
    def same_registration(self, other: Entry) -> bool:
        """True if registering ``other`` would give the same kernel entry (ignores enabled)."""
        return replace(self, enabled=True) == replace(other, enabled=True)

    @property
    def name_bytes(self) -> bytes:
        return os.fsencode(self.name)

    @property
    def interpreter_bytes(self) -> bytes:
        return os.fsencode(self.interpreter)

    def matches_header(self, header: bytes) -> bool:
        """Would a file whose first bytes are ``header`` match (M entries only)?

        Bytes past the end of the file read as 0, as in the kernel's zero-filled buffer.
        """
        if self.type != "M":
            return False
        window = header[self.offset : self.offset + len(self.magic)]
        window = window.ljust(len(self.magic), b"\0")
        if self.mask is None:
            return window == self.magic
        if len(self.mask) != len(self.magic):
            raise ValueError("mask and magic differ in length")
        # one big-integer operation instead of a Python loop per byte: status classifies
        # every live entry against every target, apply every new entry against the host's
        # sampled programs
        w, m = int.from_bytes(window, "big"), int.from_bytes(self.magic, "big")
        return (w ^ m) & int.from_bytes(self.mask, "big") == 0

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {
            "name": self.name,
            "enabled": self.enabled,
            "type": self.type,
            "interpreter": self.interpreter,
            "flags": self.flags,
        }
        if self.type == "M":
            d["offset"] = self.offset
            d["magic"] = self.magic.hex()
            d["mask"] = self.mask.hex() if self.mask is not None else None
        else:
            d["extension"] = self.extension
        return d


# -- escaping ---------------------------------------------------------------------
def escape_bytes(data: bytes) -> str:
    """Canonical kernel spelling: alphanumerics literal, every other byte ``\\xhh``."""
    return "".join(chr(b) if b in _LITERAL else f"\\x{b:02x}" for b in data)


# -- rendering --------------------------------------------------------------------
def choose_delimiter(entry: Entry) -> bytes:
    """``:`` unless a field contains it; then the first safe byte that no field uses."""
    used = entry.name_bytes + entry.interpreter_bytes
    if entry.extension is not None:
        used += os.fsencode(entry.extension)
    for d in _DELIMITERS:
        if d not in used:
            return bytes((d,))
    raise ValueError(f"entry {entry.name!r}: every usable delimiter occurs in its fields")


#: bytes that can never stand raw in magic/mask: NUL truncates, backslash starts an
#: escape, CR/LF end a binfmt.d line
_NEVER_RAW = frozenset(b"\0\\\n\r")


def _escape_compact(data: bytes, delimiter: int) -> str:
    return "".join(
        f"\\x{b:02x}" if b in _NEVER_RAW or b == delimiter else os.fsdecode(bytes((b,)))
        for b in data
    )


def render_register(entry: Entry, delimiter: bytes | None = None) -> bytes:
    """Canonical register string (no trailing newline): ``:name:M:offset:magic:mask:interp:flags``.

    Magic and mask bytes other than alphanumerics are written ``\\xhh``. If that
    would exceed the kernel's 1920-byte limit (large magics), only the bytes that
    can never stand raw (NUL, backslash, CR, LF, the delimiter) are escaped.
    """
    d = delimiter or choose_delimiter(entry)
    out = _render(entry, d, compact=False)
    if len(out) + 1 > MAX_REGISTER:
        out = _render(entry, d, compact=True)
    return out


def _render(entry: Entry, d: bytes, *, compact: bool) -> bytes:
    def esc(data: bytes) -> bytes:
        return os.fsencode(_escape_compact(data, d[0])) if compact else escape_bytes(data).encode()

    if entry.type == "M":
        offset = b"" if entry.offset == 0 else str(entry.offset).encode()
        body = [offset, esc(entry.magic), b"" if entry.mask is None else esc(entry.mask)]
    else:
        body = [b"", os.fsencode(entry.extension or ""), b""]
    fields = [entry.name_bytes, entry.type.encode(), *body, entry.interpreter_bytes]
    return d + d.join(fields) + d + entry.flags.encode()


def render_register_str(entry: Entry) -> str:
    return os.fsdecode(render_register(entry))


def kernel_view(entry: Entry) -> str:
    """The exact text of ``/proc/sys/fs/binfmt_misc/NAME`` for this entry."""
    lines = [
        "enabled" if entry.enabled else "disabled",
        f"interpreter {entry.interpreter}",
        f"flags: {entry.flags}",
    ]
    if entry.type == "M":
        lines.append(f"offset {entry.offset}")
        lines.append(f"magic {entry.magic.hex()}")
        if entry.mask is not None:
            lines.append(f"mask {entry.mask.hex()}")
    else:
        lines.append(f"extension .{entry.extension}")
    return "\n".join(lines) + "\n"


_ENTRY_FILE_PATTERN = (
    rb"(enabled|disabled)\ninterpreter (.*)\nflags: ([POCF]*)\n"
    rb"(?:offset (\d+)\nmagic ((?:[0-9a-f]{2})*)\n(?:mask ((?:[0-9a-f]{2})*)\n)?|extension \.(.*)\n)"
)
_entry_file: list[re.Pattern[bytes]] = []  # compiled when first needed: validate never is


def parse_entry_file(name: str, text: bytes | str) -> Entry:
    """Parse the kernel's entry file (``cat /proc/sys/fs/binfmt_misc/NAME``)."""
    if not _entry_file:
        import re

        _entry_file.append(re.compile(_ENTRY_FILE_PATTERN, re.DOTALL))
    pattern = _entry_file[0]
    raw = os.fsencode(text) if isinstance(text, str) else text
    m = pattern.fullmatch(raw)
    if m is None:
        # Newer kernels may append lines (e.g. bpf ones); accept a known prefix.
        m = pattern.match(raw)
    if m is None:
        raise EntryParseError(f"{name}: not a binfmt_misc entry file: {raw[:60]!r}")
    state, interp, flags, off, magic, mask, ext = m.groups()
    if ext is not None:
        return Entry(
            name=name,
            type="E",
            interpreter=os.fsdecode(interp),
            flags=flags.decode(),
            extension=os.fsdecode(ext),
            enabled=state == b"enabled",
        )
    return Entry(
        name=name,
        type="M",
        interpreter=os.fsdecode(interp),
        flags=flags.decode(),
        offset=int(off),
        magic=bytes.fromhex(magic.decode()),
        mask=None if mask is None else bytes.fromhex(mask.decode()),
        enabled=state == b"enabled",
    )


# -- register strings and config formats --------------------------------------------
def entry_of(fields: Fields) -> Entry:
    """The Entry for the fields the grammar accepted."""
    return Entry(
        name=os.fsdecode(fields.name),
        type=fields.type,
        interpreter=os.fsdecode(fields.interpreter),
        flags=fields.flags,
        offset=fields.offset,
        magic=fields.magic,
        mask=fields.mask,
        extension=None if fields.extension is None else os.fsdecode(fields.extension),
    )


def parse_register(data: bytes | str, profile: KernelProfile) -> Entry:
    """Parse one register string exactly as ``profile``'s kernel grammar does.

    Raises :class:`EntryParseError` with the kernel's problems if it would be
    refused. A trailing newline is optional (``echo`` adds one).
    """
    raw = os.fsencode(data) if isinstance(data, str) else data
    if not raw.endswith(b"\n"):
        raw += b"\n"
    result = scan_fields(raw, profile)
    errors = [p for p in result.problems if p.is_error]
    if result.fields is None or errors:
        first = errors[0] if errors else None
        msg = f"{first.field}: {first.message}" if first else "invalid register string"
        raise EntryParseError(msg, errors)
    return entry_of(result.fields)


_WS = b" \t\n\r"


def iter_binfmt_d_lines(text: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, rule) for each rule of a binfmt.d file, as systemd-binfmt reads it:
    surrounding whitespace stripped; blank lines and ``#``/``;`` comments skipped."""
    for lineno, line in enumerate(text.split(b"\n"), start=1):
        rule = binfmt_d_rule(line)
        if rule is not None:
            yield lineno, rule


def binfmt_d_rule(line: bytes) -> bytes | None:
    """The rule on one binfmt.d line, or None for a blank line or a comment: the one
    definition every reader of binfmt.d syntax uses (files, stdin, import, apply)."""
    rule = line.strip(_WS)
    if not rule or rule[:1] in (b"#", b";"):
        return None
    return rule


def parse_binfmt_d(text: bytes, profile: KernelProfile) -> list[Entry]:
    return [parse_register(rule, profile) for _, rule in iter_binfmt_d_lines(text)]


def render_binfmt_d(entries: list[Entry], header: str | None = None) -> bytes:
    out = []
    if header:
        out += [b"# " + line.encode() for line in header.splitlines()]
    out += [render_register(e) for e in entries]
    return b"\n".join(out) + b"\n"


_UB_YES = {"yes", "true", "1"}


def parse_update_binfmts(name: str, text: bytes | str, profile: KernelProfile) -> Entry:
    """Parse a Debian update-binfmts format file (``/usr/share/binfmts/NAME``).

    Keys (case-insensitive): package, interpreter, magic, offset, mask, extension,
    detector, credentials, preserve, fix_binary. magic/mask use the kernel's
    ``\\xHH`` spelling; update-binfmts passes them through to ``register``.
    """
    raw = os.fsencode(text) if isinstance(text, str) else text
    fields: dict[str, bytes] = {}
    for line in raw.split(b"\n"):
        line = line.strip(_WS)
        if not line:
            continue
        key, _, value = line.partition(b" ")
        fields[key.decode("ascii", "replace").lower()] = value.strip(_WS)
    if "interpreter" not in fields:
        raise EntryParseError(f"{name}: update-binfmts file has no 'interpreter' line")
    if ("magic" in fields) == ("extension" in fields):
        raise EntryParseError(
            f"{name}: update-binfmts file needs exactly one of 'magic' or 'extension'"
        )
    flags = ""
    if fields.get("preserve", b"").decode("latin-1").lower() in _UB_YES:
        flags += "P"
    if fields.get("credentials", b"").decode("latin-1").lower() in _UB_YES:
        flags += "C"
    if fields.get("fix_binary", b"").decode("latin-1").lower() in _UB_YES:
        flags += "F"
    interp = fields["interpreter"]
    if "extension" in fields:
        line = b":" + os.fsencode(name) + b":E::" + fields["extension"] + b"::" + interp + b":"
    else:
        off = fields.get("offset", b"")
        line = (
            b":"
            + os.fsencode(name)
            + b":M:"
            + (b"" if off == b"0" else off)
            + b":"
            + fields["magic"]
            + b":"
            + fields.get("mask", b"")
            + b":"
            + interp
            + b":"
        )
    return parse_register(line + flags.encode(), profile)


def render_update_binfmts(entry: Entry, package: str = "binfmtctl") -> bytes:
    """The update-binfmts format file. It has keys for C, P and F only, so an entry
    with O but not C cannot be written without losing O: that raises."""
    if "O" in entry.flags and "C" not in entry.flags:
        raise UnrepresentableError(
            f"{entry.name!r} has the O flag, which the update-binfmts format cannot express (only credentials/preserve/fix_binary)",
            fix="export it as binfmt.d instead (binfmtctl export --format binfmt.d)",
        )
    lines = [f"package {package}", f"interpreter {entry.interpreter}"]
    if entry.type == "M":
        lines.append(f"magic {escape_bytes(entry.magic)}")
        lines.append(f"offset {entry.offset}")
        if entry.mask is not None:
            lines.append(f"mask {escape_bytes(entry.mask)}")
    else:
        lines.append(f"extension {entry.extension}")
    lines.append(f"credentials {'yes' if 'C' in entry.flags else 'no'}")
    lines.append(f"fix_binary {'yes' if 'F' in entry.flags else 'no'}")
    lines.append(f"preserve {'yes' if 'P' in entry.flags else 'no'}")
    return os.fsencode("\n".join(lines) + "\n")
