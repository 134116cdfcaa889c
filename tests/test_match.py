"""binfmtctl.match: the kernel's choice of entry, near misses by ELF field, native, Matcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binfmtctl import table
from binfmtctl.entry import Entry
from binfmtctl.match import (
    Matcher,
    elf_field,
    match,
    native,
    near_miss,
    path_extension,
)
from binfmtctl.record import replace
from tests.elfgen import ET_DYN, ET_EXEC, ET_REL, elf_header, target_header

HOST = "x86_64"  # explicit host for determinism


def qemu(target: str, **kw: object) -> Entry:
    t = table.get_target(target)
    return replace(t.entry(f"/usr/bin/qemu-{t.name}-static", "F"), **kw)  # type: ignore[arg-type]


def header(name: str, **kw: int) -> bytes:
    return target_header(table.get_target(name), **kw)


AARCH64 = header("aarch64")


# -- kernel order ------------------------------------------------------------------------------
def test_newest_enabled_entry_wins() -> None:
    newer = qemu("aarch64", name="newer", interpreter="/opt/emu")
    older = qemu("aarch64", name="older")
    r = match(AARCH64, [newer, older], host_machine=HOST)
    assert r.handler is newer
    assert [(c.entry.name, c.state) for c in r.candidates] == [
        ("newer", "handler"),
        ("older", "shadowed"),
    ]
    assert r.candidates[1].reason == "shadowed by newer entry newer"
    assert r.to_json()["handler"] == {"name": "newer", "interpreter": "/opt/emu"}


def test_disabled_entries_are_skipped() -> None:
    newer = qemu("aarch64", name="newer", enabled=False)
    older = qemu("aarch64", name="older")
    r = match(AARCH64, [newer, older], host_machine=HOST)
    assert r.handler is older
    assert [(c.entry.name, c.state) for c in r.candidates] == [
        ("newer", "disabled"),
        ("older", "handler"),
    ]
    assert match(AARCH64, [newer], host_machine=HOST).handler is None


def test_global_status_disabled_means_no_handler() -> None:
    r = match(AARCH64, [qemu("aarch64"), qemu("arm")], status_enabled=False, host_machine=HOST)
    assert r.handler is None
    assert [c.state for c in r.candidates] == ["status-disabled"]
    assert Matcher([qemu("aarch64")], status_enabled=False).first(AARCH64) is None


def test_no_entries() -> None:
    r = match(AARCH64, [], host_machine=HOST)
    assert r.handler is None and r.candidates == () and r.near_misses == ()
    assert r.to_json()["handler"] is None


def test_every_target_gets_its_own_entry() -> None:
    entries = [qemu(t.name) for t in table.targets()]
    for t in table.targets():
        for e_type in (ET_EXEC, ET_DYN):
            got = match(
                target_header(t, e_type=e_type, osabi=3), entries, host_machine=HOST
            ).handler
            assert got is not None and got.name == f"qemu-{t.name}"


# -- extensions ----------------------------------------------------------------------------------
def ext(extension: str, name: str | None = None, **kw: object) -> Entry:
    return Entry(name or f"ext-{extension}", "E", "/usr/bin/run", extension=extension, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("x.tar.gz", "gz"),
        ("/a/b/prog.jar", "jar"),
        ("prog", None),
        ("dir.d/prog", "d/prog"),
        (".bashrc", "bashrc"),
        ("trailing.", ""),
    ],
)
def test_path_extension(path: str, expected: str | None) -> None:
    assert path_extension(path) == expected


def test_extension_semantics() -> None:
    gz, targz, d = ext("gz"), ext("tar.gz"), ext("d")
    entries = [targz, gz, d]
    assert match(b"", entries, "x.tar.gz").handler is gz
    assert match(b"", [targz], "x.tar.gz").handler is None  # never tar.gz
    assert match(b"", entries, "dir.d/prog").handler is None  # 'd/prog'
    assert match(b"", entries, "prog").handler is None
    assert match(b"", [ext("jar")], "APP.JAR").handler is None  # case-sensitive
    assert match(b"", [ext("jar")], "/opt/app.jar").handler is not None
    r = match(b"", [ext("jar")], None)
    assert r.handler is None and any("no path" in n for n in r.notes)


def test_extension_and_magic_entries_share_one_order() -> None:
    jar_e = ext("jar", name="jar-ext")
    jar_m = Entry("jar-magic", "M", "/usr/bin/jexec", magic=b"PK\x03\x04")
    zip_header = b"PK\x03\x04" + bytes(20)
    assert match(zip_header, [jar_m, jar_e], "a.jar").handler is jar_m
    r = match(zip_header, [jar_e, jar_m], "a.jar")
    assert r.handler is jar_e
    assert r.candidates[1].reason == "shadowed by newer entry jar-ext"


# -- offsets and zero fill -----------------------------------------------------------------------------
def test_offset_entries() -> None:
    e = Entry("off", "M", "/x", offset=2, magic=b"BMXS")
    assert match(b"xxBMXS", [e]).handler is e
    assert match(b"BMXS", [e]).handler is None


def test_zero_fill_past_eof() -> None:
    zeros = Entry("z", "M", "/x", magic=b"BMXS\x00\x00")
    one = Entry("o", "M", "/x", magic=b"BMXS\x00\x01")
    assert match(b"BMXS", [zeros]).handler is zeros
    r = match(b"BMXS", [one])
    assert r.handler is None
    (miss,) = r.near_misses
    assert (miss.offset, miss.actual, miss.expected, miss.mask, miss.field) == (5, 0, 1, 0xFF, None)
    assert miss.message == "byte 5 is 0x00, entry expects 0x01"


# -- near misses -----------------------------------------------------------------------------------------
def only_miss(hdr: bytes, entry: Entry) -> object:
    r = match(hdr, [entry], host_machine=HOST)
    assert r.handler is None
    (miss,) = r.near_misses
    return miss


def test_aarch64_binary_vs_arm_entry() -> None:
    miss = near_miss(qemu("arm"), AARCH64)
    assert miss is not None
    assert miss.field == "EI_CLASS" and miss.offset == 4 and (miss.actual, miss.expected) == (2, 1)
    assert miss.message == "EI_CLASS is 2 (64-bit), entry expects 1 (32-bit)"
    assert miss.fields == ("EI_CLASS", "e_machine")


def test_e_machine_message() -> None:
    miss = near_miss(qemu("aarch64"), header("riscv64"))
    assert miss is not None and miss.field == "e_machine" and miss.offset == 18
    assert miss.message == "e_machine is 0x00f3 (RISC-V), entry expects 0x00b7 (AArch64)"
    # the same field in big-endian order
    miss = near_miss(qemu("s390x"), header("ppc64"))
    assert miss is not None and miss.offset == 19
    assert miss.message == "e_machine is 0x0015 (PowerPC64), entry expects 0x0016 (IBM S/390)"
    # arm entry against a 32-bit x86 binary
    miss = near_miss(qemu("arm"), header("i386"))
    assert (
        miss is not None
        and miss.message == "e_machine is 0x0003 (Intel 80386), entry expects 0x0028 (ARM)"
    )


def test_ei_data_message() -> None:
    miss = near_miss(qemu("arm"), header("armeb"))
    assert miss is not None and miss.field == "EI_DATA"
    assert miss.message == "EI_DATA is 2 (big-endian), entry expects 1 (little-endian)"


def test_e_type_message() -> None:
    miss = near_miss(qemu("aarch64"), header("aarch64", e_type=ET_REL))
    assert miss is not None and miss.field == "e_type" and miss.mask == 0xFE
    assert (
        miss.message
        == "e_type is 0x0001 (ET_REL), entry expects 0x0002 (ET_EXEC) or 0x0003 (ET_DYN)"
    )


def test_mips_e_flags_32bit_both_byte_orders() -> None:
    miss = near_miss(qemu("mips"), header("mipsn32"))
    assert miss is not None and miss.field == "e_flags" and miss.offset == 39
    assert "EF_MIPS_ABI2 is set (n32), entry wants it clear (o32)" in miss.message
    miss = near_miss(qemu("mipsn32el"), header("mipsel"))
    assert miss is not None and miss.field == "e_flags" and miss.offset == 36
    assert miss.message.startswith("e_flags & 0x00000020 is 0x00000000, entry expects 0x00000020")


def test_e_version_message() -> None:
    miss = near_miss(qemu("mips"), header("mips", e_version=0))
    assert miss is not None and miss.field == "e_version"
    assert miss.message == "e_version is 0x00000000, entry expects 0x00000001"


def test_elf64_field_layout() -> None:
    # An entry that tests e_flags of an ELF64 file (offset 48).
    magic = bytearray(target_header(table.get_target("riscv64"), e_flags=0x5)[:52])
    mask = bytearray(52)
    mask[:20] = table.get_target("riscv64").mask
    mask[48] = 0x06  # float ABI bits
    e = Entry("rv-lp64d", "M", "/x", magic=bytes(magic), mask=bytes(mask))
    soft = target_header(table.get_target("riscv64"), e_flags=0x1)
    miss = near_miss(e, soft)
    assert miss is not None and miss.field == "e_flags" and miss.offset == 48
    assert miss.message == "e_flags & 0x00000006 is 0x00000000, entry expects 0x00000004"
    assert elf_field(36, 32) == (36, 4, "e_flags")
    assert elf_field(36, 64) == (32, 8, "e_phoff")
    assert elf_field(48, 64) == (48, 4, "e_flags")
    assert elf_field(48, 32) == (48, 2, "e_shnum")
    assert elf_field(18, 64) == (18, 2, "e_machine") == elf_field(19, 32)
    assert elf_field(20, 32) == (20, 4, "e_version")
    assert elf_field(64, 64) is None and elf_field(52, 32) is None


def test_osabi_message_for_a_loongarch_entry() -> None:
    miss = near_miss(qemu("loongarch64"), header("loongarch64", osabi=9))  # FreeBSD
    assert miss is not None and miss.field == "EI_OSABI"
    assert miss.message.startswith("EI_OSABI is 9 (FreeBSD), entry expects 0 (SYSV) or")


def test_only_near_misses_are_reported() -> None:
    entries = [
        Entry("WSLInterop", "M", "/init", "P", magic=b"MZ"),
        Entry("python3.11", "M", "/usr/bin/python3.11", magic=b"\xa7\x0d\x0d\x0a"),
        Entry("jar", "E", "/usr/bin/jexec", extension="jar"),
        qemu("arm"),
        qemu("riscv64"),
    ]
    r = match(AARCH64, entries, "/bin/prog", host_machine=HOST)
    assert [m.entry.name for m in r.near_misses] == ["qemu-arm", "qemu-riscv64"]
    # a script is no near miss for ELF entries
    assert match(b"#!/bin/sh\n", entries, "x.sh", host_machine=HOST).near_misses == ()
    # entries that do match are not near misses
    assert match(AARCH64, [qemu("aarch64")], host_machine=HOST).near_misses == ()
    # an all-zero mask on the signature does not make a near miss
    loose = Entry("loose", "M", "/x", magic=b"\x7fELF\x09", mask=b"\x00\x00\x00\x00\xff")
    assert not loose.matches_header(AARCH64) and near_miss(loose, AARCH64) is None
    # a non-ELF format with a 4-byte signature is explained by byte offset
    fmt = Entry("fmt", "M", "/x", magic=b"ABCD\x09")
    miss = near_miss(fmt, b"ABCD\x01")
    assert miss is not None and miss.field is None and miss.offset == 4
    assert near_miss(fmt, b"wxyz\x09") is None


def test_near_miss_json() -> None:
    r = match(AARCH64, [qemu("arm")], host_machine=HOST)
    data = r.to_json()
    assert set(data) >= {"handler", "native", "near_misses"}
    misses = data["near_misses"]
    assert isinstance(misses, list) and len(misses) == 1
    miss = misses[0]
    assert miss["name"] == "qemu-arm" and miss["field"] == "EI_CLASS" and miss["offset"] == 4
    assert miss["message"] == "EI_CLASS is 2 (64-bit), entry expects 1 (32-bit)"


# -- native --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "host", "expected"),
    [
        ("x86_64", "x86_64", True),
        ("i386", "x86_64", True),  # IA-32 emulation
        ("i486", "x86_64", True),
        ("aarch64", "x86_64", False),
        ("aarch64", "aarch64", True),
        ("aarch64", "arm64", True),
        ("arm", "aarch64", False),  # AArch32 is optional: not assumed
        ("arm", "armv7l", True),
        ("armeb", "armv7l", False),
        ("x86_64", "i686", False),
        ("ppc", "ppc64", True),
        ("ppc64le", "ppc64", False),
        ("mipsn32el", "mips64el", True),
        ("mips64el", "mips64", False),
        ("riscv64", "riscv64", True),
        ("riscv32", "riscv64", False),
    ],
)
def test_native(target: str, host: str, expected: bool) -> None:
    assert native(header(target), host) is expected
    assert native(header(target, e_type=ET_DYN), host) is expected


def test_native_edge_cases() -> None:
    assert not native(header("x86_64", e_type=ET_REL), "x86_64")
    assert not native(b"#!/bin/sh\n", "x86_64")
    assert not native(b"", "x86_64")
    assert not native(header("x86_64"), "vax")
    real = Path("/bin/ls").read_bytes()[:256]
    try:
        table.host_target()
    except table.UnknownTargetError:
        pytest.skip("host cpu not in QEMU's table")
    assert native(real)  # the default host is this machine


def test_hijack_note() -> None:
    r = match(header("x86_64"), [qemu("x86_64")], host_machine="x86_64")
    assert r.native and r.handler is not None
    assert any("natively" in n for n in r.notes)
    assert r.to_json()["native"] is True
    r = match(AARCH64, [qemu("aarch64")], host_machine="x86_64")
    assert not r.native and r.notes == ()


# -- Matcher --------------------------------------------------------------------------------------------
def test_matcher_on_the_table() -> None:
    entries = [qemu(t.name) for t in table.targets()]
    entries.insert(3, qemu("aarch64", name="newer-aarch64", enabled=False))
    entries.insert(0, ext("jar"))
    m = Matcher(entries)
    for t in table.targets():
        for e_type in (ET_EXEC, ET_DYN, ET_REL):
            hdr = target_header(t, e_type=e_type)
            assert m.first(hdr, "/bin/x") is match(hdr, entries, "/bin/x").handler
    assert m.first(b"PK", "a.jar") is entries[0]


BYTES = st.lists(st.sampled_from([0x00, 0x01, 0x7F, 0xFF]), min_size=1, max_size=6).map(bytes)


@st.composite
def entries_strategy(draw: st.DrawFn) -> Entry:
    enabled = draw(st.booleans())
    name = f"e{draw(st.integers(0, 99))}"
    if draw(st.integers(0, 4)) == 0:
        extension = draw(st.sampled_from(["gz", "tar.gz", "a", "jar", "JAR", "d"]))
        return Entry(name, "E", "/x", extension=extension, enabled=enabled)
    magic = draw(BYTES)
    mask = draw(
        st.none()
        | st.lists(
            st.sampled_from([0x00, 0xFE, 0xFF, 0x0F]), min_size=len(magic), max_size=len(magic)
        ).map(bytes)
    )
    return Entry(
        name, "M", "/x", offset=draw(st.integers(0, 3)), magic=magic, mask=mask, enabled=enabled
    )


@settings(max_examples=500, deadline=None)
@given(
    st.lists(entries_strategy(), max_size=12),
    st.lists(st.sampled_from([0x00, 0x01, 0x7F, 0xFF]), max_size=10).map(bytes),
    st.none() | st.sampled_from(["x.tar.gz", "a.gz", "dir.d/prog", "prog", "A.JAR", "b.jar", ".a"]),
    st.booleans(),
)
def test_matcher_agrees_with_match(
    entries: list[Entry], hdr: bytes, path: str | None, status: bool
) -> None:
    expected = match(hdr, entries, path, status, host_machine=HOST).handler
    assert Matcher(entries, status).first(hdr, path) is expected


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=80), st.lists(st.sampled_from([t.name for t in table.targets()]), max_size=8)
)
def test_near_miss_never_claims_a_matching_entry(hdr: bytes, names: list[str]) -> None:
    entries = [qemu(n) for n in names]
    r = match(hdr, entries, host_machine=HOST)
    matched = {id(c.entry) for c in r.candidates}
    for miss in r.near_misses:
        assert id(miss.entry) not in matched
        assert (miss.actual ^ miss.expected) & miss.mask
        assert miss.message


def test_ex_header_helper_sanity() -> None:
    assert len(elf_header(64, "little", 183)) == 64 and AARCH64[:4] == b"\x7fELF"
