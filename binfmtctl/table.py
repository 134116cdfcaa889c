"""QEMU user-mode targets and well-known non-QEMU handlers, from ``data/magic_table.yaml``.

The table gives, per QEMU target, the binfmt_misc magic/mask (QEMU's own, with the microblaze
byte-order fix), the ELF identity they encode, QEMU's family, the aliases users type (OCI
platforms, Debian architectures, ``uname -m``) and where the interpreter comes from. A second
section describes handlers that other software registers (WSL, Rosetta, box64, FEX, python,
jar, ...) so a live entry can be classified with :func:`classify`.

The YAML is read once, lazily (PyYAML is imported only then), from the installed package
(``binfmtctl/data/magic_table.yaml`` in the wheel) or, in a source checkout, ``data/`` next to
the package.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal, Protocol

from binfmtctl import resources
from binfmtctl.entry import Entry, unescape
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

TABLE_FILE = "magic_table.yaml"


class TableError(BinfmtctlError):
    """The magic table is missing or malformed (a packaging bug, not a user error)."""


class UnknownTargetError(UsageError, KeyError):
    """A target name or alias that the table does not know."""

    def __init__(
        self,
        alias: str,
        suggestions: Iterable[str] = (),
        *,
        what: str = "target",
        fix: str | None = None,
    ) -> None:
        self.alias = alias
        self.suggestions = list(suggestions)
        message = f"unknown {what} {alias!r}"
        if self.suggestions:
            message += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        if fix is None:
            fix = (
                "use a QEMU target name ("
                + ", ".join(t.name for t in targets())
                + ") or an alias such as arm64, linux/arm/v7, armhf, ppc64el, mips64le"
            )
        super().__init__(message, fix=fix)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.format_message()


# -- model --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EFlagsRule:
    """The part of ``e_flags`` an entry checks: ``e_flags & mask == value``."""

    mask: int
    value: int
    abi: str | None
    note: str

    def accepts(self, e_flags: int) -> bool:
        return e_flags & self.mask == self.value


@dataclass(frozen=True)
class Packages:
    """Who ships the interpreter (hints for fix messages)."""

    debian: str
    fedora: str
    arch: str


@dataclass(frozen=True)
class Target:
    """One QEMU user-mode target: its binfmt_misc magic/mask and the ELF identity behind it."""

    name: str
    family: str
    magic: bytes
    mask: bytes
    class_: int  # 32 or 64
    endian: str  # "little" or "big"
    machine: int  # e_machine
    machine_name: str  # e.g. "EM_AARCH64"
    description: str
    interpreter: str  # basename, e.g. "qemu-aarch64"
    packages: Packages
    e_flags: EFlagsRule | None = None
    oci: tuple[str, ...] = ()
    debian: tuple[str, ...] = ()
    uname: tuple[str, ...] = ()
    other: tuple[str, ...] = ()
    alt_machines: tuple[int, ...] = ()
    #: QEMU's own bytes where this table corrects them (microblaze), else None
    upstream_magic: bytes | None = None
    upstream_mask: bytes | None = None
    magic_text: str = ""  # the kernel spelling, as written in the table
    mask_text: str = ""
    legacy: bool = False  # no longer in QEMU's table; only for classify()

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every other spelling that names this target (OCI, Debian, uname, other)."""
        seen: dict[str, None] = {}
        for alias in (*self.oci, *self.debian, *self.uname, *self.other):
            if alias != self.name:
                seen.setdefault(alias, None)
        return tuple(seen)

    @property
    def platform(self) -> str | None:
        """The main OCI platform (``linux/arm64``), if the target has one."""
        return self.oci[0] if self.oci else None

    def entry(self, interpreter: str, flags: str = "", name: str | None = None) -> Entry:
        """The binfmt_misc entry for this target (default name ``qemu-<target>``)."""
        return Entry(
            name=name or f"qemu-{self.name}",
            type="M",
            interpreter=interpreter,
            flags=flags,
            offset=0,
            magic=self.magic,
            mask=self.mask,
        )

    def matches_header(self, header: bytes) -> bool:
        """Would this target's entry match a file starting with ``header``?"""
        n = len(self.magic)
        if len(self.mask) != n:
            raise ValueError(f"{self.name}: mask and magic differ in length")
        # one big-integer operation, as Entry.matches_header: status's per-entry checks ask
        # every target of every live entry's mask coverage
        w = int.from_bytes(header[:n].ljust(n, b"\0"), "big")
        return (w ^ int.from_bytes(self.magic, "big")) & int.from_bytes(self.mask, "big") == 0

    def matches_elf(self, class_: int, endian: str, machine: int, e_flags: int = 0) -> bool:
        """Do these ELF facts describe a binary of this target (ignoring e_type/OSABI)?"""
        if (class_, endian) != (self.class_, self.endian):
            return False
        if machine != self.machine and machine not in self.alt_machines:
            return False
        return self.e_flags is None or self.e_flags.accepts(e_flags)

    def sample_header(self, e_type: int = 2) -> bytes:
        """A minimal header of this target (the magic with ``e_type`` set), as its binaries start."""
        header = bytearray(self.magic.ljust(20, b"\0"))
        header[16:18] = e_type.to_bytes(2, "little" if self.endian == "little" else "big")
        return bytes(header)


@dataclass(frozen=True)
class Recognizer:
    """One way to recognise a handler's entry; every condition given must hold."""

    name: re.Pattern[str] | None = None
    interpreter: re.Pattern[str] | None = None
    magic: bytes | None = None
    magic_pattern: re.Pattern[str] | None = None
    extension: str | None = None

    def matches(self, entry: Entry) -> bool:
        if self.name is not None and not self.name.fullmatch(entry.name):
            return False
        if self.interpreter is not None and not self.interpreter.search(entry.interpreter):
            return False
        if self.magic is not None and (entry.type != "M" or entry.magic != self.magic):
            return False
        if self.magic_pattern is not None and (
            entry.type != "M" or not self.magic_pattern.fullmatch(entry.magic.decode("latin-1"))
        ):
            return False
        return self.extension is None or (entry.type == "E" and entry.extension == self.extension)


@dataclass(frozen=True)
class Handler:
    """A well-known non-QEMU binfmt_misc handler (WSL interop, Rosetta, box64, ...)."""

    id: str
    kind: str
    description: str
    example: str
    recognize: tuple[Recognizer, ...]

    def matches(self, entry: Entry) -> bool:
        return any(r.matches(entry) for r in self.recognize)


@dataclass(frozen=True)
class Table:
    """The loaded table: targets in QEMU order, legacy targets, handlers."""

    targets: tuple[Target, ...]
    legacy: tuple[Target, ...]
    handlers: tuple[Handler, ...]
    source: str
    by_alias: Mapping[str, Target] = field(default_factory=dict, compare=False, repr=False)


# -- loading ----------------------------------------------------------------------------------
class Resource(Protocol):
    """What the loader needs of a file: ``pathlib.Path`` and importlib ``Traversable`` both fit."""

    def is_file(self) -> bool: ...

    def read_text(self, encoding: str | None = None) -> str: ...


def locate_table(package_dir: Any = None, checkout_dir: Path | None = None) -> Resource:
    """Where the table is: ``<package>/data/magic_table.yaml`` (the wheel's layout) first, then
    ``<checkout>/data/magic_table.yaml`` (a source tree). Both roots can be given for tests."""
    found, packaged, source = resources.locate(TABLE_FILE, "data", package_dir, checkout_dir)
    if found is not None:
        return found  # type: ignore[no-any-return]
    raise TableError(
        f"{TABLE_FILE} not found in the package ({packaged}) nor the source tree ({source})",
        fix="reinstall binfmtctl; the wheel ships binfmtctl/data/magic_table.yaml",
    )


def _bytes(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise TableError(f"{where}: expected a quoted \\xHH string, got {text!r}")
    return unescape(text.encode("latin-1"))


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(v) for v in raw.get(key) or ())


def _target(raw: Mapping[str, Any], legacy: bool = False) -> Target:
    name = str(raw["name"])
    magic = _bytes(raw["magic"], f"{name}.magic")
    mask = _bytes(raw["mask"], f"{name}.mask")
    if len(magic) != len(mask):
        raise TableError(f"{name}: magic is {len(magic)} bytes but mask is {len(mask)}")
    upstream_magic = upstream_mask = None
    if "upstream_magic" in raw:
        upstream_magic = _bytes(raw["upstream_magic"], f"{name}.upstream_magic")
        upstream_mask = _bytes(raw["upstream_mask"], f"{name}.upstream_mask")
    flags = raw.get("e_flags")
    pkgs = raw.get("packages") or {}
    return Target(
        name=name,
        family=str(raw["family"]),
        magic=magic,
        mask=mask,
        class_=int(raw["class"]),
        endian=str(raw["endian"]),
        machine=int(raw["machine"]),
        machine_name=str(raw["machine_name"]),
        description=str(raw["description"]),
        interpreter=str(raw["interpreter"]),
        packages=Packages(
            debian=str(pkgs.get("debian", "")),
            fedora=str(pkgs.get("fedora", "")),
            arch=str(pkgs.get("arch", "")),
        ),
        e_flags=None
        if flags is None
        else EFlagsRule(
            mask=int(flags["mask"]),
            value=int(flags["value"]),
            abi=flags.get("abi"),
            note=str(flags.get("note", "")),
        ),
        oci=_strings(raw, "oci"),
        debian=_strings(raw, "debian"),
        uname=_strings(raw, "uname"),
        other=_strings(raw, "other"),
        alt_machines=tuple(int(m) for m in raw.get("alt_machines") or ()),
        upstream_magic=upstream_magic,
        upstream_mask=upstream_mask,
        magic_text=str(raw["magic"]),
        mask_text=str(raw["mask"]),
        legacy=legacy,
    )


def _recognizer(raw: Mapping[str, Any]) -> Recognizer:
    unknown = set(raw) - {"name", "interpreter", "magic", "magic_pattern", "extension"}
    if unknown:
        raise TableError(f"handler condition(s) not understood: {sorted(unknown)}")
    return Recognizer(
        name=re.compile(raw["name"]) if "name" in raw else None,
        interpreter=re.compile(raw["interpreter"]) if "interpreter" in raw else None,
        magic=_bytes(raw["magic"], "handler magic") if "magic" in raw else None,
        magic_pattern=re.compile(raw["magic_pattern"]) if "magic_pattern" in raw else None,
        extension=str(raw["extension"]) if "extension" in raw else None,
    )


def _alias_index(targets: tuple[Target, ...]) -> dict[str, Target]:
    """Lower-cased name/alias -> target; an alias naming two targets is a table bug."""
    index = {t.name.lower(): t for t in targets}
    for t in targets:
        for alias in t.aliases:
            key = alias.lower()
            other = index.get(key)
            if other is not None and other is not t:
                raise TableError(f"alias {alias!r} of {t.name} already names {other.name}")
            index[key] = t
    return index


def parse_table(data: Mapping[str, Any], source: str = "<data>") -> Table:
    """Build a :class:`Table` from the loaded YAML document (pure)."""
    try:
        targets = tuple(_target(raw) for raw in data["qemu_targets"])
        legacy = tuple(_target(raw, legacy=True) for raw in data.get("legacy_targets") or ())
        handlers = tuple(
            Handler(
                id=str(raw["id"]),
                kind=str(raw["kind"]),
                description=str(raw["description"]),
                example=str(raw.get("example", "")),
                recognize=tuple(_recognizer(r) for r in raw["recognize"]),
            )
            for raw in data.get("handlers") or ()
        )
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise TableError(f"{source}: malformed magic table: {exc!r}") from exc
    return Table(targets, legacy, handlers, source, _alias_index(targets))


def load_table(resource: Resource | str | os.PathLike[str]) -> Table:
    """Read and parse a table file (uncached). The shipped table is taken from its compiled
    form (:mod:`binfmtctl.table_compiled`) when that was compiled from this very text."""
    from binfmtctl import table_compiled

    res = os.fspath(resource) if isinstance(resource, (str, os.PathLike)) else resource
    try:
        if isinstance(res, str):  # a path: read without pathlib (status loads the table)
            with open(res, encoding="utf-8") as f:
                text = f.read()
        else:
            text = res.read_text(encoding="utf-8")
    except OSError as exc:
        raise TableError(f"cannot read magic table {res}: {exc}") from exc
    data = table_compiled.load(text)
    if data is None:
        import yaml  # lazy: only a table without a matching compiled form pays for PyYAML

        try:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster
            data = yaml.load(text, Loader=loader)
        except yaml.YAMLError as exc:
            raise TableError(f"cannot read magic table {res}: {exc}") from exc
    if not isinstance(data, dict):
        raise TableError(f"{res}: magic table is not a mapping")
    return parse_table(data, str(res))


@functools.lru_cache(maxsize=1)
def table() -> Table:
    """The packaged table, loaded once."""
    return load_table(resources.shipped(TABLE_FILE, "data") or locate_table())


# -- lookups ----------------------------------------------------------------------------------
def targets() -> list[Target]:
    """All QEMU targets, in QEMU's order."""
    return list(table().targets)


def handlers() -> list[Handler]:
    """The well-known non-QEMU handlers, in recognition order."""
    return list(table().handlers)


def find_target(alias: str) -> Target | None:
    """:func:`get_target`'s answer, or None where it would raise (a legacy target's name,
    say): for checks that only skip such a name, without building the error's suggestions."""
    index = table().by_alias
    key = alias.strip().lower()
    return index.get(key) or index.get(normalize_host_machine(key))


def get_target(alias: str) -> Target:
    """The target named by a QEMU name or any alias (case-insensitive).

    ``uname -m`` spellings not listed in the table are tried through
    :func:`normalize_host_machine` (``armv5tejl`` -> arm). Raises :class:`UnknownTargetError`
    naming close matches.
    """
    found = find_target(alias)
    if found is not None:
        return found
    import difflib  # only to name close matches for an unknown target

    key = alias.strip().lower()
    close = difflib.get_close_matches(key, list(table().by_alias), n=4, cutoff=0.6)
    raise UnknownTargetError(alias, close)


def normalize_host_machine(uname_m: str) -> str:
    """QEMU's ``qemu_normalize``: map a ``uname -m``/distro spelling to a QEMU target name.

    i[3-6]86 -> i386, amd64 -> x86_64, powerpc -> ppc, ppc64el -> ppc64le,
    armel/armhf/armv[4-9]*l -> arm, armv[4-9]*b -> armeb, arm64 -> aarch64; others unchanged.
    """
    cpu = uname_m.strip()
    if re.fullmatch(r"i[3-6]86", cpu):
        return "i386"
    simple = {"amd64": "x86_64", "powerpc": "ppc", "ppc64el": "ppc64le", "arm64": "aarch64"}
    if cpu in simple:
        return simple[cpu]
    if cpu in ("armel", "armhf") or re.fullmatch(r"armv[4-9].*l", cpu):
        return "arm"
    if re.fullmatch(r"armv[4-9].*b", cpu):
        return "armeb"
    return cpu


def host_target(uname_m: str | None = None) -> Target:
    """The target the host CPU is (``os.uname().machine`` by default).

    Like QEMU: normalise, then look the name up; beyond QEMU, table aliases are accepted
    too (``parisc64`` -> hppa). An unknown host raises :class:`UnknownTargetError`.
    """
    machine = os.uname().machine if uname_m is None else uname_m
    cpu = normalize_host_machine(machine)
    for t in table().targets:
        if t.name == cpu:
            return t
    found = table().by_alias.get(cpu.lower())
    if found is None:
        raise UnknownTargetError(
            machine,
            what="host cpu",
            fix="QEMU's table has no such CPU; name the host CPU explicitly "
            "(a QEMU target name or a uname -m spelling such as x86_64, aarch64)",
        )
    return found


def host_family(uname_m: str | None = None) -> str:
    """QEMU's family of the host CPU (``os.uname().machine`` by default)."""
    return host_target(uname_m).family


def foreign_targets(uname_m: str | None = None, ignore_family: bool = False) -> list[Target]:
    """Targets to register on this host, by QEMU's family rule.

    Default: skip every target of the host's family (x86_64 skips i386, i486, x86_64).
    ``ignore_family``: skip only the exact host CPU (QEMU's ``--ignore-family yes``).
    """
    host = host_target(uname_m)
    if ignore_family:
        return [t for t in table().targets if t.name != host.name]
    return [t for t in table().targets if t.family != host.family]


def target_for_header(header: bytes) -> Target | None:
    """The target whose entry matches a file starting with ``header`` (None if none does)."""
    for t in table().targets:
        if t.matches_header(header):
            return t
    return None


def target_for_elf(class_: int, endian: str, machine: int, e_flags: int = 0) -> Target | None:
    """The target these ELF facts belong to, whatever ``e_type``/OSABI are (None if none)."""
    for t in table().targets:
        if t.matches_elf(class_, endian, machine, e_flags):
            return t
    return None


@functools.lru_cache(maxsize=1)
def machine_names() -> Mapping[int, tuple[str, str]]:
    """e_machine number -> (``EM_*`` name, description) for the machines in the table."""
    names: dict[int, tuple[str, str]] = {}
    for t in (*table().targets, *table().legacy):
        # Descriptions name the CPU, without the byte order / ABI that e_machine does not carry.
        names.setdefault(
            t.machine, (t.machine_name, _MACHINE_DESCRIPTIONS.get(t.machine_name, t.description))
        )
    return MappingProxyType(names)


_MACHINE_DESCRIPTIONS = {
    "EM_ARM": "ARM",
    "EM_PPC": "PowerPC",
    "EM_PPC64": "PowerPC64",
    "EM_MIPS": "MIPS",
    "EM_SH": "SuperH",
    "EM_AARCH64": "AArch64",
    "EM_RISCV": "RISC-V",
    "EM_XTENSA": "Xtensa",
    "EM_MICROBLAZE_OLD": "MicroBlaze (legacy number)",
    "EM_S390": "IBM S/390",
    "EM_PARISC": "HP PA-RISC",
    "EM_SPARC": "SPARC",
    "EM_LOONGARCH": "LoongArch",
}


# -- classification -----------------------------------------------------------------------------
def _qemu_name_hint(entry: Entry) -> str | None:
    """The target an entry's name or interpreter names (``qemu-aarch64``, ``aarch64-binfmt-P``)."""
    known = {t.name for t in (*table().targets, *table().legacy)}
    base = entry.interpreter.rsplit("/", 1)[-1]
    candidates = [entry.name, base]
    for text in candidates:
        m = re.fullmatch(r"qemu-(.+?)(?:-static|-binfmt|-binfmt-P)?", text)
        if m and m.group(1) in known:
            return m.group(1)
    m = re.fullmatch(r"(.+)-binfmt-P", base)  # Debian's /usr/libexec/qemu-binfmt/<t>-binfmt-P
    if m and m.group(1) in known:
        return m.group(1)
    return None


@functools.lru_cache(maxsize=1)
def _sample_headers() -> tuple[tuple[Target, tuple[bytes, bytes]], ...]:
    """Every target (current, then legacy) with its ET_EXEC and ET_DYN sample headers, built once."""
    return tuple(
        (t, (t.sample_header(2), t.sample_header(3))) for t in (*table().targets, *table().legacy)
    )


@functools.lru_cache(maxsize=256)
def _normalized(magic: bytes, mask: bytes | None) -> tuple[bytes, bytes]:
    """(magic & mask, mask): two entries with equal normal forms match the same files."""
    mask = mask if mask is not None else b"\xff" * len(magic)
    return bytes(a & k for a, k in zip(magic, mask, strict=False)), mask


@dataclass(frozen=True)
class HandlerKind:
    """A live entry recognised as a known non-QEMU handler (Rosetta, box64, FEX, ...)."""

    kind: str
    handler: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "handler": self.handler, "description": self.description}


QemuHow = Literal["exact", "equivalent", "upstream", "compatible", "name"]


@dataclass(frozen=True)
class QemuTarget:
    """A live entry recognised as QEMU's for ``target``, and how that was told."""

    target: str
    how: QemuHow
    description: str
    legacy: bool = False
    #: other targets whose binaries the entry also matches (an over-broad entry)
    also_matches: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "qemu",
            "target": self.target,
            "how": self.how,
            "description": self.description,
        }
        if self.legacy:
            out["legacy"] = True
        if self.also_matches:
            out["also_matches"] = list(self.also_matches)
        return out


@dataclass(frozen=True)
class ElfKind:
    """A live entry that is no known handler but matches ELF binaries of several targets."""

    targets: tuple[str, ...]
    description: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": "elf", "targets": list(self.targets), "description": self.description}


Recognized = HandlerKind | QemuTarget | ElfKind


#: recognize()'s answers by what it reads of an entry (status asks twice per entry: doctor's
#: checks through qemu_target(), the row's kind through classify()); bounded, answers immutable
_RECOGNIZED: dict[tuple[object, ...], Recognized | None] = {}


def recognize(entry: Entry) -> Recognized | None:
    """Which known handler or QEMU target a live entry is, or None (computed once per entry:
    the answer depends only on the fields in the key below and the packaged table).

    Non-QEMU handlers are recognised first, by name/interpreter/magic (Rosetta, box64 and FEX
    reuse QEMU's x86 magics). QEMU targets are then recognised by ``how``:

    - ``exact``: magic and mask bytes are the table's;
    - ``equivalent``: same ``magic & mask`` and mask (matches exactly the same files);
    - ``upstream``: QEMU's uncorrected bytes (microblaze: matches no real binary);
    - ``compatible``: the entry matches this target's binaries (Debian's masks, for instance);
    - ``name``: only its name/interpreter says so; its magic does not match the target's binaries.

    An entry whose mask and magic differ in length (the kernel never stores one) is nothing.
    """
    e = entry
    key = (e.name, e.type, e.interpreter, e.offset, e.magic, e.mask, e.extension)
    if key in _RECOGNIZED:
        return _RECOGNIZED[key]
    found = _recognize(entry)
    if len(_RECOGNIZED) >= 1024:
        _RECOGNIZED.clear()
    _RECOGNIZED[key] = found
    return found


def matched_targets(entry: Entry) -> list[Target]:
    """The targets (current, then legacy) one of whose sample headers (ET_EXEC, ET_DYN) an
    M entry matches: :meth:`Entry.matches_header` on each, with the entry's integers
    computed once (status asks this of every live entry against ~70 samples)."""
    start, n = entry.offset, len(entry.magic)
    magic = int.from_bytes(entry.magic, "big")
    mask = int.from_bytes(entry.mask if entry.mask is not None else b"\xff" * n, "big")
    return [
        t
        for t, headers in _sample_headers()
        if any(
            (int.from_bytes(h[start : start + n].ljust(n, b"\0"), "big") ^ magic) & mask == 0
            for h in headers
        )
    ]


def _recognize(entry: Entry) -> Recognized | None:
    for handler in table().handlers:
        if handler.matches(entry):
            return HandlerKind(handler.kind, handler.id, handler.description)
    if entry.type != "M" or (entry.mask is not None and len(entry.mask) != len(entry.magic)):
        return None
    hint = _qemu_name_hint(entry)
    all_targets = (*table().targets, *table().legacy)
    norm = _normalized(entry.magic, entry.mask) if entry.offset == 0 else None
    chosen: Target | None = None
    how: QemuHow = "exact"
    for t in all_targets:
        if norm is None:
            break
        if entry.magic == t.magic and entry.mask == t.mask:
            chosen, how = t, "exact"
        elif norm == _normalized(t.magic, t.mask):
            chosen, how = t, "equivalent"
        elif t.upstream_magic is not None and norm == _normalized(
            t.upstream_magic, t.upstream_mask
        ):
            chosen, how = t, "upstream"
        if chosen is not None:
            break
    matched = matched_targets(entry)
    if chosen is None:
        by_hint = [t for t in matched if t.name == hint]
        if by_hint:
            chosen, how = by_hint[0], "compatible"
        elif len(matched) == 1:
            chosen, how = matched[0], "compatible"
        elif hint is not None:
            chosen = next(t for t in all_targets if t.name == hint)
            how = "name"
    if chosen is None:
        if not matched:
            return None
        names = tuple(t.name for t in matched)
        return ElfKind(names, "matches ELF binaries of several targets: " + ", ".join(names))
    return QemuTarget(
        chosen.name,
        how,
        f"QEMU user-mode emulation of {chosen.description}",
        chosen.legacy,
        tuple(t.name for t in matched if t is not chosen),
    )


def classify(entry: Entry) -> dict[str, Any] | None:
    """:func:`recognize`'s answer as the JSON record ``status`` shows (``kind``: a handler
    kind, ``qemu`` or ``elf``), or None."""
    found = recognize(entry)
    return None if found is None else found.to_json()


def qemu_target(entry: Entry) -> QemuTarget | None:
    """The QEMU target a live entry is for, or None (not QEMU's, or not recognisable)."""
    found = recognize(entry)
    return found if isinstance(found, QemuTarget) else None


# -- gen --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Generated:
    """``gen``: the entry for a target, its register string, and how to print it as text."""

    target: str
    description: str
    register: str
    entry: Entry
    binfmt_d: str = field(default="", metadata={"json": False})  # the commented file, asked for


def generate(
    alias: str,
    *,
    interpreter: str | None = None,
    flags: str = "F",
    name: str | None = None,
    binfmt_d: bool = False,
) -> Generated:
    """The register string (and with ``binfmt_d`` a commented binfmt.d file) for a target."""
    from binfmtctl.entry import normalize_flags, render_binfmt_d, render_register_str

    t = get_target(alias)
    try:
        flags = normalize_flags(flags)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    entry = t.entry(interpreter or f"/usr/bin/{t.interpreter}-static", flags, name)
    text = ""
    if binfmt_d:
        header = f"{t.name}: {t.description}\ngenerated by binfmtctl gen"
        text = render_binfmt_d([entry], header=header).decode()
    return Generated(t.name, t.description, render_register_str(entry), entry, text)
