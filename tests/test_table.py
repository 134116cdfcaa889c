"""data/magic_table.yaml and binfmtctl.table: QEMU's targets, aliases, families, classification."""

from __future__ import annotations

import importlib.resources
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binfmtctl import table
from binfmtctl.entry import Entry, escape_bytes, unescape
from binfmtctl.errors import BinfmtctlError
from tests.elfgen import ET_DYN, ET_EXEC, ET_REL, target_header

ROOT = Path(__file__).resolve().parent.parent
TABLE_YAML = ROOT / "data" / "magic_table.yaml"

#: QEMU's qemu_target_list (scripts/qemu-binfmt-conf.sh, QEMU 10.0), in order
QEMU_TARGETS = [
    "i386",
    "i486",
    "alpha",
    "arm",
    "armeb",
    "sparc",
    "sparc32plus",
    "sparc64",
    "ppc",
    "ppc64",
    "ppc64le",
    "m68k",
    "mips",
    "mipsel",
    "mipsn32",
    "mipsn32el",
    "mips64",
    "mips64el",
    "sh4",
    "sh4eb",
    "s390x",
    "aarch64",
    "aarch64_be",
    "hppa",
    "riscv32",
    "riscv64",
    "xtensa",
    "xtensaeb",
    "microblaze",
    "microblazeel",
    "or1k",
    "x86_64",
    "hexagon",
    "loongarch64",
]

#: Pairs of targets whose magic/mask sets intersect (one header could match both). QEMU's table,
#: with the microblaze fix, has none; list any deliberate one here with the reason.
DELIBERATE_OVERLAPS: set[frozenset[str]] = set()


def split_register(line: str) -> Entry:
    """A minimal register-string reader for the well-formed lines used here (not the kernel grammar)."""
    d = line[0]
    name, typ, offset, magic, mask, interp, flags = line[1:].split(d)
    if typ == "E":
        return Entry(name, "E", interp, flags, extension=magic)
    return Entry(
        name,
        "M",
        interp,
        flags,
        offset=int(offset or 0),
        magic=unescape(magic.encode()),
        mask=unescape(mask.encode()) if mask else None,
    )


#: QEMU's own table, transcribed from scripts/qemu-binfmt-conf.sh (source commit in its header),
#: kept in the repository so the comparison runs on every clean clone
REFERENCE_YAML = ROOT / "tests" / "data" / "qemu-targets.yaml"


def reference_table() -> list[dict[str, str]]:
    import yaml

    data: list[dict[str, str]] = yaml.safe_load(REFERENCE_YAML.read_text())["qemu_binfmt_targets"]
    return data


def sets_intersect(a: table.Target, b: table.Target) -> bool:
    """Can one header match both entries? (On common bytes, magics agree where both masks test.)"""
    return all(
        (x ^ y) & k1 & k2 == 0
        for x, y, k1, k2 in zip(a.magic, b.magic, a.mask, b.mask, strict=False)
    )


# -- the table itself ------------------------------------------------------------------------
def test_all_qemu_targets_in_qemu_order() -> None:
    assert [t.name for t in table.targets()] == QEMU_TARGETS
    assert len(table.targets()) == 34


@pytest.mark.parametrize("target", table.targets(), ids=lambda t: t.name)
def test_magic_and_mask_spelling(target: table.Target) -> None:
    assert target.magic == unescape(target.magic_text.encode())
    assert target.mask == unescape(target.mask_text.encode())
    assert len(target.magic) == len(target.mask)
    assert 20 <= len(target.magic) <= 256
    assert target.magic.startswith(b"\x7fELF") and target.mask[:4] == b"\xff" * 4
    # Kernel-safe text: only \xHH escapes and literal alphanumerics (no delimiter, NUL or newline).
    for text in (target.magic_text, target.mask_text):
        assert all(c.isalnum() or c == "\\" for c in text), text
        assert unescape(escape_bytes(unescape(text.encode())).encode()) == unescape(text.encode())


@pytest.mark.parametrize("target", table.targets(), ids=lambda t: t.name)
def test_magic_encodes_the_stated_elf_facts(target: table.Target) -> None:
    order: Literal["little", "big"] = "little" if target.endian == "little" else "big"
    assert target.magic[4] == (1 if target.class_ == 32 else 2)
    assert target.magic[5] == (1 if target.endian == "little" else 2)
    assert int.from_bytes(target.magic[16:18], order) == ET_EXEC  # catches QEMU's microblaze
    assert int.from_bytes(target.magic[18:20], order) == target.machine
    assert target.machine_name.startswith("EM_")
    assert target.interpreter == ("qemu-i386" if target.name == "i486" else f"qemu-{target.name}")
    assert target.packages.debian == "qemu-user-static"
    assert target.packages.fedora.startswith("qemu-user-static-")
    assert target.family


def test_table_matches_upstream_except_the_microblaze_fix() -> None:
    ref = reference_table()
    by_name = {t.name: t for t in table.targets()}
    assert [r["name"] for r in ref] == QEMU_TARGETS
    for r in ref:
        t = by_name[r["name"]]
        assert t.family == r["family"]
        if t.name == "microblaze":
            assert (t.upstream_magic, t.upstream_mask) == (
                unescape(r["magic"].encode()),
                unescape(r["mask"].encode()),
            )
            assert t.magic != t.upstream_magic
        else:
            assert (t.magic_text, t.mask_text) == (r["magic"], r["mask"])
            assert t.upstream_magic is None


def test_microblaze_fix() -> None:
    mb = table.get_target("microblaze")
    assert mb.upstream_magic is not None and mb.upstream_mask is not None
    header = target_header(mb)
    assert header[16:18] == b"\x00\x02"  # big-endian ET_EXEC
    assert mb.entry("/q").matches_header(header)
    assert mb.entry("/q").matches_header(target_header(mb, e_type=ET_DYN))
    upstream = Entry("qemu-microblaze", "M", "/q", magic=mb.upstream_magic, mask=mb.upstream_mask)
    assert not upstream.matches_header(header)
    assert not upstream.matches_header(target_header(mb, e_type=ET_DYN))
    assert "CORRECTED FROM UPSTREAM" in TABLE_YAML.read_text()


def test_e_flags_rules() -> None:
    o32 = table.get_target("mips").e_flags
    assert o32 is not None and (o32.mask, o32.value, o32.abi) == (0x20, 0x00, "o32")
    assert o32.accepts(0x70001001) and not o32.accepts(0x80000021)
    n32 = table.get_target("mipsn32")
    assert n32.e_flags is not None and n32.e_flags.value == 0x20 and n32.e_flags.abi == "n32"
    assert table.get_target("mips64el").e_flags is not None
    assert table.get_target("aarch64").e_flags is None


# -- aliases -----------------------------------------------------------------------------------
def test_aliases_are_unambiguous() -> None:
    owner: dict[str, str] = {t.name.lower(): t.name for t in table.targets()}
    for t in table.targets():
        for alias in t.aliases:
            key = alias.lower()
            assert owner.get(key, t.name) == t.name, f"{alias} names {owner[key]} and {t.name}"
            owner[key] = t.name
    # every spelling resolves back to its target
    for t in table.targets():
        for alias in (t.name, t.name.upper(), *t.aliases):
            assert table.get_target(alias) is t


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("arm64", "aarch64"),
        ("aarch64", "aarch64"),
        ("AArch64", "aarch64"),
        ("linux/arm64", "aarch64"),
        ("linux/arm64/v8", "aarch64"),
        ("linux/arm/v7", "arm"),
        ("linux/arm/v6", "arm"),
        ("linux/arm", "arm"),
        ("armhf", "arm"),
        ("armel", "arm"),
        ("armv7l", "arm"),
        ("armv5tejl", "arm"),  # via qemu_normalize
        ("ppc64el", "ppc64le"),
        ("linux/ppc64le", "ppc64le"),
        ("mips64le", "mips64el"),
        ("linux/mips64le", "mips64el"),
        ("mipsle", "mipsel"),
        ("linux/386", "i386"),
        ("i686", "i386"),
        ("i486", "i486"),
        ("amd64", "x86_64"),
        ("linux/amd64", "x86_64"),
        ("x86_64", "x86_64"),
        ("linux/s390x", "s390x"),
        ("linux/riscv64", "riscv64"),
        ("loong64", "loongarch64"),
        ("linux/loong64", "loongarch64"),
        ("powerpc", "ppc"),
        ("parisc64", "hppa"),
        ("sparc64", "sparc64"),
        (" arm64 ", "aarch64"),
    ],
)
def test_alias_lookup(alias: str, expected: str) -> None:
    assert table.get_target(alias).name == expected


def test_unknown_alias_names_close_matches() -> None:
    with pytest.raises(table.UnknownTargetError) as info:
        table.get_target("arm65")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, BinfmtctlError)
    assert "'arm65'" in str(err) and "arm64" in str(err)
    assert "arm64" in err.suggestions
    with pytest.raises(KeyError, match="aarch64"):
        table.get_target("aarch46")
    with pytest.raises(table.UnknownTargetError) as info2:
        table.get_target("zzzz-nothing")
    assert info2.value.suggestions == []
    assert err.exit_code == 2  # a usage error


@pytest.mark.parametrize(
    ("uname", "cpu"),
    [
        ("i386", "i386"),
        ("i486", "i386"),
        ("i586", "i386"),
        ("i686", "i386"),
        ("amd64", "x86_64"),
        ("x86_64", "x86_64"),
        ("powerpc", "ppc"),
        ("ppc64el", "ppc64le"),
        ("armel", "arm"),
        ("armhf", "arm"),
        ("armv7l", "arm"),
        ("armv5tel", "arm"),
        ("armv8l", "arm"),
        ("armv7b", "armeb"),
        ("arm64", "aarch64"),
        ("aarch64", "aarch64"),
        ("riscv64", "riscv64"),
        ("armv3l", "armv3l"),  # outside armv[4-9]: unchanged, like QEMU
    ],
)
def test_normalize_host_machine(uname: str, cpu: str) -> None:
    assert table.normalize_host_machine(uname) == cpu


# -- families ----------------------------------------------------------------------------------
def names(ts: list[table.Target]) -> set[str]:
    return {t.name for t in ts}


def test_family_rule_x86_64() -> None:
    foreign = names(table.foreign_targets("x86_64"))
    assert foreign == set(QEMU_TARGETS) - {"i386", "i486", "x86_64"}
    assert table.host_family("x86_64") == "i386"
    assert table.host_family("amd64") == "i386"


def test_family_rule_aarch64() -> None:
    foreign = names(table.foreign_targets("aarch64"))
    assert foreign == set(QEMU_TARGETS) - {"arm", "aarch64"}
    assert "armeb" in foreign and "aarch64_be" in foreign  # armeb is its own family
    assert names(table.foreign_targets("armv7l")) == foreign


def test_ignore_family_skips_only_the_host_cpu() -> None:
    assert names(table.foreign_targets("x86_64", ignore_family=True)) == set(QEMU_TARGETS) - {
        "x86_64"
    }
    assert "riscv32" in names(table.foreign_targets("riscv64", ignore_family=True))
    assert "riscv32" not in names(table.foreign_targets("riscv64"))
    assert names(table.foreign_targets("i686", ignore_family=True)) == set(QEMU_TARGETS) - {"i386"}


def test_foreign_targets_keep_qemu_order() -> None:
    order = [t.name for t in table.foreign_targets("aarch64")]
    assert order == [n for n in QEMU_TARGETS if n in order]


def test_unknown_host_cpu() -> None:
    with pytest.raises(table.UnknownTargetError, match="host cpu"):
        table.host_family("vax")


def test_host_family_default_uses_uname() -> None:
    try:
        expected = table.host_family(os.uname().machine)
    except table.UnknownTargetError:
        pytest.skip("host cpu not in QEMU's table")
    assert table.host_family() == expected


# -- every target matches exactly its own binaries ------------------------------------------------
HEADER_VARIANTS = list(itertools.product((ET_EXEC, ET_DYN), (0, 3)))


@pytest.mark.parametrize("target", table.targets(), ids=lambda t: t.name)
def test_synthetic_header_matches_only_its_own_entry(target: table.Target) -> None:
    entries = {t.name: t.entry(f"/usr/bin/{t.interpreter}") for t in table.targets()}
    for e_type, osabi in HEADER_VARIANTS:
        header = target_header(target, e_type=e_type, osabi=osabi)
        matching = {n for n, e in entries.items() if e.matches_header(header)}
        allowed = {target.name} | {
            n for pair in DELIBERATE_OVERLAPS if target.name in pair for n in pair
        }
        assert target.name in matching, (e_type, osabi)
        assert matching <= allowed, (e_type, osabi, matching)
        assert table.target_for_header(header) is target
    # ET_REL (object files) are not run
    assert not entries[target.name].matches_header(target_header(target, e_type=ET_REL))


def test_overlaps_are_exactly_the_deliberate_ones() -> None:
    found = {
        frozenset((a.name, b.name))
        for a, b in itertools.combinations(table.targets(), 2)
        if sets_intersect(a, b)
    }
    assert found == DELIBERATE_OVERLAPS


@pytest.mark.parametrize("target", table.targets(), ids=lambda t: t.name)
def test_target_for_elf_facts(target: table.Target) -> None:
    flags = target.e_flags.value if target.e_flags else 0
    assert table.target_for_elf(target.class_, target.endian, target.machine, flags) is target
    for alt in target.alt_machines:
        assert table.target_for_elf(target.class_, target.endian, alt, flags) is target


def test_mips_abi_is_told_apart_by_e_flags() -> None:
    assert table.target_for_elf(32, "big", 8, 0x70001001).name == "mips"  # type: ignore[union-attr]
    assert table.target_for_elf(32, "big", 8, 0x80000021).name == "mipsn32"  # type: ignore[union-attr]
    assert table.target_for_elf(64, "little", 8, 0x80000001).name == "mips64el"  # type: ignore[union-attr]
    assert table.target_for_elf(32, "little", 0x1234) is None


# -- Debian's entries ----------------------------------------------------------------------------
DEBIAN_DIR = Path("/usr/lib/binfmt.d")
#: byte offsets where Debian's magic/mask test differently from QEMU's (see the YAML comment):
#: EI_OSABI '\xfc'; alpha/m68k test the low bit of EI_DATA/EI_VERSION; MIPS EI_ABIVERSION
#: '\xfe' and no e_version check on the 32-bit entries
_OSABI_FC = {
    "ppc",
    "ppc64",
    "ppc64le",
    "s390x",
    "sh4",
    "sh4eb",
    "sparc",
    "sparc32plus",
    "sparc64",
    "i386",
    "x86_64",
}
DEBIAN_DIFFERENCES: dict[str, set[int]] = {
    **{name: {7} for name in _OSABI_FC},
    "alpha": {5, 6},
    "m68k": {6},
    "mips": {8, 20, 21, 22, 23},
    "mipsel": {8, 20, 21, 22, 23},
    "mipsn32": {8, 20, 21, 22, 23},
    "mipsn32el": {8, 20, 21, 22, 23},
    "mips64": {8},
    "mips64el": {8},
}


def pad_normalized(magic: bytes, mask: bytes, size: int) -> list[tuple[int, int]]:
    """(magic & mask, mask) per byte, padded with untested bytes to ``size``."""
    pairs = [(m & k, k) for m, k in zip(magic, mask, strict=True)]
    return pairs + [(0, 0)] * (size - len(pairs))


def debian_entries() -> list[Entry]:
    files = sorted(DEBIAN_DIR.glob("qemu-*.conf")) if DEBIAN_DIR.is_dir() else []
    out = []
    for f in files:
        for line in f.read_text().splitlines():
            line = line.strip()
            if line and line[0] not in "#;":
                out.append(split_register(line))
    return out


def test_debian_entries_agree_with_the_table() -> None:
    entries = debian_entries()
    if not entries:
        pytest.skip("Debian's qemu binfmt.d files are not installed")
    by_name = {t.name: t for t in table.targets()}
    seen = set()
    for e in entries:
        target_name = e.name.removeprefix("qemu-")
        got = table.classify(e)
        assert got is not None and got["kind"] == "qemu", e.name
        assert got["target"] == target_name, e.name
        if target_name not in by_name:
            assert got.get("legacy") is True  # cris
            continue
        t = by_name[target_name]
        seen.add(t.name)
        assert e.mask is not None
        # Compare what each entry tests, byte by byte; past its end an entry tests nothing
        # (Debian's little-endian 32-bit MIPS entries stop at e_flags' low byte, 37 bytes).
        size = max(len(e.magic), len(t.magic))
        theirs = pad_normalized(e.magic, e.mask, size)
        ours = pad_normalized(t.magic, t.mask, size)
        differ = {i for i in range(size) if theirs[i] != ours[i]}
        assert differ <= DEBIAN_DIFFERENCES.get(t.name, set()), (e.name, sorted(differ))
        # Same real binaries: ET_EXEC/ET_DYN with OSABI SYSV or GNU/Linux.
        for e_type, osabi in HEADER_VARIANTS:
            assert e.matches_header(target_header(t, e_type=e_type, osabi=osabi)), e.name
        if t.name == "microblaze":
            assert (e.magic, e.mask) == (t.magic, t.mask)  # the fix is Debian's spelling
    assert "microblaze" in seen


# -- host binaries ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/bin/ls", "/usr/bin/python3", sys.executable])
def test_no_foreign_target_matches_host_binaries(path: str) -> None:
    real = Path(path).resolve()
    if not real.is_file():
        pytest.skip(f"{path} missing")
    header = real.read_bytes()[:256]
    assert header.startswith(b"\x7fELF")
    try:
        host = table.host_target()
    except table.UnknownTargetError:
        pytest.skip("host cpu not in QEMU's table")
    for t in table.foreign_targets():
        assert not t.entry("/q").matches_header(header), t.name
    matching = [t for t in table.targets() if t.matches_header(header)]
    assert matching and all(t.family == host.family for t in matching)


# -- classification ----------------------------------------------------------------------------------
@pytest.mark.parametrize("handler", table.handlers(), ids=lambda h: h.id)
def test_handler_examples_classify_as_their_handler(handler: table.Handler) -> None:
    entry = split_register(handler.example)
    got = table.classify(entry)
    assert got is not None and got["kind"] == handler.kind and got["handler"] == handler.id


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (":WSLInterop-late:M::MZ::/init:P", "wsl"),
        (":python3.12:M::\\xcb\\x0d\\x0d\\x0a::/usr/bin/python3.12:", "python"),
        (":whatever:M::\\xcb\\x0d\\x0d\\x0a::/usr/local/bin/python3:", "python"),
        (":FEX-x86:M::\\x7fELF\\x01::/opt/fex/bin/FEXInterpreter:POCF", "fex"),
        (":cli:M::MZ::/usr/bin/cli:", "clr"),
        (":wine:M::MZ::/usr/bin/wine64:", "wine"),
        (":llvm-14-runtime.binfmt:M::BC::/usr/bin/lli-14:", "llvm"),
        (":jar:M::PK\\x03\\x04::/usr/bin/jexec:", "jar"),
    ],
)
def test_classify_handlers(line: str, kind: str) -> None:
    got = table.classify(split_register(line))
    assert got is not None and got["kind"] == kind


def test_rosetta_and_box64_are_not_mistaken_for_qemu() -> None:
    x86_64 = table.get_target("x86_64")
    rosetta = x86_64.entry("/mnt/lima-rosetta/rosetta", "CF", name="rosetta")
    assert table.classify(rosetta)["kind"] == "rosetta"  # type: ignore[index]
    box = x86_64.entry("/usr/local/bin/box64", name="x86_64")
    assert table.classify(box)["kind"] == "box64"  # type: ignore[index]


@pytest.mark.parametrize("target", table.targets(), ids=lambda t: t.name)
def test_classify_qemu_exact(target: table.Target) -> None:
    got = table.classify(target.entry("/usr/bin/" + target.interpreter + "-static", "F"))
    assert got == {
        "kind": "qemu",
        "target": target.name,
        "how": "exact",
        "description": f"QEMU user-mode emulation of {target.description}",
    }


def test_classify_qemu_variants() -> None:
    aarch64 = table.get_target("aarch64")
    # magic bits outside the mask differ: same files match
    odd = Entry(
        "x", "M", "/x", magic=aarch64.magic[:7] + b"\x09" + aarch64.magic[8:], mask=aarch64.mask
    )
    assert table.classify(odd)["how"] == "equivalent"  # type: ignore[index]
    # Debian-style OSABI mask, any name
    deb = Entry(
        "foo", "M", "/x", magic=aarch64.magic, mask=aarch64.mask[:7] + b"\xfc" + aarch64.mask[8:]
    )
    assert table.classify(deb) == {
        "kind": "qemu",
        "target": "aarch64",
        "how": "compatible",
        "description": "QEMU user-mode emulation of AArch64",
    }
    # QEMU's uncorrected microblaze
    mb = table.get_target("microblaze")
    up = Entry("qemu-microblaze", "M", "/x", magic=mb.upstream_magic or b"", mask=mb.upstream_mask)
    assert table.classify(up)["how"] == "upstream"  # type: ignore[index]
    # the printf '%b' trap: magic cut at the first NUL, matching every 64-bit LE ELF
    cut = Entry(
        "qemu-aarch64", "M", "/usr/bin/qemu-aarch64", magic=aarch64.magic[:7], mask=aarch64.mask[:7]
    )
    got = table.classify(cut)
    assert got is not None and got["target"] == "aarch64"
    assert {"x86_64", "riscv64", "loongarch64"} <= set(got["also_matches"])
    anonymous = Entry("mystery", "M", "/x", magic=aarch64.magic[:7], mask=aarch64.mask[:7])
    got = table.classify(anonymous)
    assert got is not None and got["kind"] == "elf" and "aarch64" in got["targets"]
    # a name that says qemu but a magic that matches nothing
    broken = Entry("qemu-arm", "M", "/usr/bin/qemu-arm", magic=b"\x7fELF\x05", mask=None)
    assert table.classify(broken)["how"] == "name"  # type: ignore[index]
    # Debian's interpreter naming is a hint too
    hinted = Entry(
        "whatever", "M", "/usr/libexec/qemu-binfmt/riscv64-binfmt-P", magic=b"\x7fELF\x05"
    )
    assert table.classify(hinted)["target"] == "riscv64"  # type: ignore[index]


def test_classify_unknown() -> None:
    assert table.classify(Entry("foo", "M", "/x", magic=b"\x00\x01\x02")) is None
    assert table.classify(Entry("foo", "E", "/x", extension="foo")) is None
    assert table.classify(Entry("foo", "M", "/x", offset=4, magic=b"\x7fELF")) is None


def test_target_entry() -> None:
    aarch64 = table.get_target("arm64")
    e = aarch64.entry("/usr/bin/qemu-aarch64-static", "FP")
    assert e == Entry(
        "qemu-aarch64", "M", "/usr/bin/qemu-aarch64-static", "PF", 0, aarch64.magic, aarch64.mask
    )
    assert aarch64.entry("/q", name="emu-arm64").name == "emu-arm64"
    assert table.get_target("i486").entry("/q").name == "qemu-i486"
    assert aarch64.platform == "linux/arm64"
    assert table.get_target("hexagon").platform is None


# -- loading ---------------------------------------------------------------------------------------
def test_locate_prefers_the_packaged_copy(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "binfmtctl"
    (pkg / "data").mkdir(parents=True)
    shutil.copy(TABLE_YAML, pkg / "data" / "magic_table.yaml")
    checkout = tmp_path / "checkout"
    assert table.locate_table(pkg, checkout) == pkg / "data" / "magic_table.yaml"


def test_locate_falls_back_to_the_source_tree(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "binfmtctl"
    pkg.mkdir(parents=True)
    assert table.locate_table(pkg, ROOT) == TABLE_YAML
    with pytest.raises(table.TableError, match="not found"):
        table.locate_table(pkg, tmp_path / "nowhere")


def test_locate_through_importlib_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "bfc_fake_installed"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(TABLE_YAML, pkg / "data" / "magic_table.yaml")
    monkeypatch.syspath_prepend(str(tmp_path))
    resource = table.locate_table(
        importlib.resources.files("bfc_fake_installed"), tmp_path / "nowhere"
    )
    loaded = table.load_table(resource)
    assert [t.name for t in loaded.targets] == QEMU_TARGETS
    assert loaded.targets == table.table().targets
    assert loaded.handlers == table.table().handlers


def test_default_resolution_finds_the_table() -> None:
    found = table.locate_table()
    assert found.is_file()
    assert table.table().source == str(found)


def test_malformed_tables_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("qemu_targets:\n  - name: x\n")
    with pytest.raises(table.TableError, match="malformed"):
        table.load_table(bad)
    text = TABLE_YAML.read_text().replace("other: [mipsle]", "other: [mipsle, arm64]")
    bad.write_text(text)
    with pytest.raises(table.TableError, match="arm64"):
        table.load_table(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(table.TableError, match="not a mapping"):
        table.load_table(bad)


def test_yaml_is_imported_lazily() -> None:
    code = "import sys, binfmtctl.table; print('yaml' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "False"


# -- the compiled form (binfmtctl.table_compiled) --------------------------------------------------
def test_the_compiled_table_is_the_yaml() -> None:
    """data/magic_table.json is exactly what PyYAML reads from data/magic_table.yaml."""
    import yaml

    from binfmtctl import table_compiled

    text = TABLE_YAML.read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    compiled = table_compiled.load(text)
    assert compiled is not None, (
        "data/magic_table.json was compiled from another magic_table.yaml: "
        "run python -m binfmtctl.table_compiled"
    )
    assert compiled == document
    assert (ROOT / "data" / "magic_table.json").read_text() == table_compiled.render(document, text)
    assert table.parse_table(compiled) == table.parse_table(document)


def test_an_edited_yaml_is_read_as_yaml(tmp_path: Path) -> None:
    from binfmtctl import table_compiled

    text = TABLE_YAML.read_text(encoding="utf-8")
    edited = text.replace("machine_name: EM_386\n", "machine_name: EM_386_EDITED\n", 1)
    assert edited != text and table_compiled.load(edited) is None
    path = tmp_path / "magic_table.yaml"
    path.write_text(edited)
    loaded = table.load_table(path)
    assert loaded.source == str(path)
    assert table.parse_table(table_compiled.load(text) or {}) != loaded
    assert "EM_386_EDITED" in {t.machine_name for t in loaded.targets}


def test_the_shipped_table_loads_without_pyyaml() -> None:
    code = (
        "import sys\nfrom binfmtctl import table\n"
        "assert table.get_target('linux/arm64').name == 'aarch64'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', '_yaml', 'importlib')"
        " and m != 'importlib' and not m.startswith(('importlib._', 'importlib.machinery'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


def test_qemu_target_is_typed_and_total() -> None:
    """``qemu_target`` answers with a QemuTarget or None, for any entry: callers need no
    ``except Exception`` around it."""
    aarch64 = table.get_target("aarch64")
    got = table.qemu_target(aarch64.entry("/usr/bin/qemu-aarch64-static", "F"))
    assert got == table.QemuTarget(
        "aarch64", "exact", "QEMU user-mode emulation of AArch64", False, ()
    )
    x86_64 = table.get_target("x86_64")
    assert table.qemu_target(x86_64.entry("/usr/local/bin/box64", name="x86_64")) is None
    assert table.qemu_target(split_register(":jar:M::PK\\x03\\x04::/usr/bin/jexec:")) is None
    # a mask longer than the magic (the kernel refuses it; a hand-made Entry may hold it)
    odd = Entry("qemu-aarch64", "M", "/x", magic=aarch64.magic, mask=aarch64.mask + b"\xff")
    assert table.classify(odd) is None and table.qemu_target(odd) is None


@settings(max_examples=300)
@given(
    index=st.integers(min_value=0),
    header=st.binary(max_size=24),
    flips=st.lists(st.integers(min_value=0, max_value=19 * 8 + 7), max_size=3),
)
def test_a_target_matches_a_header_as_its_entry_does(
    index: int, header: bytes, flips: list[int]
) -> None:
    """Target.matches_header (big-integer arithmetic) is the kernel-exact Entry test of the
    target's own entry: on random headers, and on the target's sample with a few bits flipped."""
    t = table.targets()[index % len(table.targets())]
    sample = bytearray(t.sample_header())
    for bit in flips:
        sample[bit // 8] ^= 1 << (bit % 8)
    for h in (header, bytes(sample)):
        assert t.matches_header(h) == t.entry("/q").matches_header(h)


@settings(max_examples=300)
@given(
    index=st.integers(min_value=0),
    offset=st.integers(min_value=0, max_value=4),
    length=st.integers(min_value=1, max_value=20),
    flips=st.lists(st.integers(min_value=0, max_value=20 * 8 - 1), max_size=4),
    masked=st.booleans(),
)
def test_matched_targets_is_the_entry_test_on_every_sample(
    index: int, offset: int, length: int, flips: list[int], masked: bool
) -> None:
    """An entry cut from a target's sample (some bits flipped, with or without a mask)
    matches the same samples through matched_targets as through Entry.matches_header."""
    t = table.targets()[index % len(table.targets())]
    data = bytearray(t.sample_header())
    for bit in flips:
        data[bit // 8] ^= 1 << (bit % 8)
    magic = bytes(data[offset : offset + length])
    mask = t.mask[offset : offset + length].ljust(len(magic), b"\xff") if masked else None
    e = Entry(name="x", type="M", interpreter="/q", offset=offset, magic=magic, mask=mask)
    expected = [
        s for s, headers in table._sample_headers() if any(e.matches_header(h) for h in headers)
    ]
    assert table.matched_targets(e) == expected


def test_find_target_answers_as_get_target_or_none_where_it_raises() -> None:
    names = [a for t in table.targets() for a in (t.name, *t.aliases, t.name.upper())]
    names += [t.name for t in table.table().legacy] + ["armv7l", "i686", "amd64", "nope", ""]
    for name in names:
        try:
            expected: table.Target | None = table.get_target(name)
        except table.UnknownTargetError:
            expected = None
        assert table.find_target(name) == expected, name
    assert table.find_target("cris") is None  # legacy: status's host-family check skips it
