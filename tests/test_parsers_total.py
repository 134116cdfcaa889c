"""Every parser of user input is total: on any byte string, and on mutations of real
entries, it returns a verdict or raises binfmtctl's own error (a one-line message for the
user), never anything else (an IndexError once killed a whole ``validate -f`` batch).

Parsers: ``rules.validate`` (all kernel profiles), register strings (``parse_register``),
binfmt.d files (``parse_binfmt_d``, ``persist.parse_config``, ``persist.parse_import``),
update-binfmts files (``parse_update_binfmts``, ``persist.parse_binfmts_admin``) and the
kernel's entry-file text (``parse_entry_file``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from binfmtctl import persist, table
from binfmtctl.entry import (
    Entry,
    kernel_view,
    parse_binfmt_d,
    parse_entry_file,
    parse_register,
    parse_update_binfmts,
    render_register,
    render_update_binfmts,
)
from binfmtctl.errors import BinfmtctlError
from binfmtctl.rules import KernelProfile, validate

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

PROFILES = [KernelProfile.parse(v) for v in ("3.10", "4.4", "4.8", "4.18", "5.12", "6.18")]
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seeds() -> list[Entry]:
    out = [t.entry(f"/usr/bin/{t.interpreter}-static", "F") for t in table.targets()]
    out += [
        Entry("WSLInterop", "M", "/init", flags="P", magic=b"MZ"),
        Entry("python3.11", "M", "/usr/bin/python3.11", magic=b"\xa7\x0d\x0d\x0a"),
        Entry("jar", "E", "/usr/bin/jexec", extension="jar"),
        Entry(
            "off",
            "M",
            "/bin/true",
            flags="POC",
            offset=2,
            magic=b"BMX\x00",
            mask=b"\xff\xff\xff\x00",
        ),
    ]
    return out


SEEDS = _seeds()
REGISTER = [render_register(e) for e in SEEDS]
ENTRY_FILES = [kernel_view(e).encode() for e in SEEDS]
UPDATE_BINFMTS = [render_update_binfmts(e) for e in SEEDS]
OFFSETS = [b"-1", b"99999999999999999999", b"0x10", b"+5", b" 1", b"1\n", b"-0", b"2147483648"]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A real entry (register string, entry file, update-binfmts file) mutated 1-4 times:
    fields truncated, delimiters swapped, masks shortened or lengthened, escapes cut
    mid-sequence, offsets -1 / huge / hex, random bytes spliced in."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut", "field", "delim", "mask", "escape", "offset", "splice"]))
        d = data[0] if data else ord(":")
        fields = bytes(data).split(bytes([d]))
        if op == "cut" and data:
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "field" and len(fields) > 1:
            i = draw(st.integers(0, len(fields) - 1))
            fields[i] = fields[i][: draw(st.integers(0, len(fields[i])))]
            data = bytearray(bytes([d]).join(fields))
        elif op == "delim" and data:
            positions = [i for i, b in enumerate(data) if b == d] or [0]
            i = draw(st.sampled_from(positions))
            data[i] = draw(st.sampled_from(b":;,|\x00\n\\x#EM "))
        elif op == "mask" and len(fields) > 5:
            if draw(st.booleans()):
                fields[5] = fields[5][: max(0, len(fields[5]) - 4 * draw(st.integers(1, 20)))]
            else:
                fields[5] += b"\\xff" * draw(st.integers(1, 20))
            data = bytearray(bytes([d]).join(fields))
        elif op == "escape":
            at = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\\x"]
            if at:
                i = draw(st.sampled_from(at))
                tail = (
                    bytes(data[i + 2 + draw(st.integers(0, 2)) :]) if draw(st.booleans()) else b""
                )
                data = data[: i + draw(st.integers(1, 3))] + tail
        elif op == "offset" and len(fields) > 3:
            fields[3] = draw(st.sampled_from(OFFSETS))
            data = bytearray(bytes([d]).join(fields))
        elif op == "splice":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def raises_only_ours(fn: Callable[[], object]) -> None:
    """Run ``fn``: a result or binfmtctl's own error is fine; anything else fails the test."""
    with contextlib.suppress(BinfmtctlError):
        fn()


def check_register_parsers(raw: bytes) -> None:
    for profile in PROFILES:
        for line in (raw, raw + b"\n"):
            v = validate(line, profile, existing_names=["qemu-aarch64"], exec_check=lambda p: None)
            assert v.valid == (v.errno is None)
            v.to_json()
    raises_only_ours(lambda: parse_register(raw, HOST))
    raises_only_ours(lambda: parse_binfmt_d(raw, HOST))
    persist.parse_config(raw, "zz-binfmtctl.conf")
    raises_only_ours(lambda: persist.parse_import(raw, "/usr/lib/binfmt.d/x.conf"))


def check_file_parsers(raw: bytes) -> None:
    raises_only_ours(lambda: parse_entry_file("qemu-aarch64", raw))
    raises_only_ours(lambda: parse_update_binfmts("qemu-aarch64", raw, HOST))
    raises_only_ours(lambda: persist.parse_binfmts_admin("qemu-aarch64", raw, HOST))
    raises_only_ours(lambda: persist.parse_import(raw, "/usr/share/binfmts/qemu-aarch64"))
    raises_only_ours(lambda: persist.parse_import(raw, "/var/lib/binfmts/qemu-aarch64"))


# the lines that once crashed rules._warn_elf_coverage (mask shorter than an ELF magic)
CRASHERS = [
    rb":..:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\\:xff\xff\xff\xff\xff\xfe\xff\xff\xff:/bin/true:",
    rb":..:M:-1:\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:x00:/bin/true:",
]


@SETTINGS
@given(st.binary(max_size=400))
@example(CRASHERS[0])
@example(CRASHERS[1])
@example(b"")
@example(b"\n")
def test_register_parsers_on_any_bytes(raw: bytes) -> None:
    check_register_parsers(raw)


@SETTINGS
@given(mutated(REGISTER))
def test_register_parsers_on_mutated_real_entries(raw: bytes) -> None:
    check_register_parsers(raw)


@SETTINGS
@given(st.binary(max_size=400))
def test_file_parsers_on_any_bytes(raw: bytes) -> None:
    check_file_parsers(raw)


@SETTINGS
@given(mutated(ENTRY_FILES + UPDATE_BINFMTS))
def test_file_parsers_on_mutated_real_files(raw: bytes) -> None:
    check_file_parsers(raw)


def test_the_mutations_reach_the_interesting_cases() -> None:
    """The strategy is not vacuous: the crashers are mutations it can make (a mask shorter
    than an ELF magic, offset -1), and real seeds parse before they are mutated."""
    for raw in REGISTER:
        assert validate(raw + b"\n", PROFILES[-1]).valid
    for text, e in zip(ENTRY_FILES, SEEDS, strict=True):
        assert parse_entry_file(e.name, text).same_registration(e)
    for raw in CRASHERS:
        v = validate(raw + b"\n", PROFILES[-1])
        assert not v.valid and v.internal_error is None
