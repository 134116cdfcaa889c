"""Probes: well-formed static ELF files that QEMU runs and that binfmt magic matches."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE

from binfmtctl.probe import PROBE_TARGETS, UnknownTargetError, build_probe, marker, write_probe

# Independent of probe.py: (EI_CLASS bits, little-endian?, e_machine) per target.
EXPECTED_IDENTITY: dict[str, tuple[int, bool, int]] = {
    "i386": (32, True, 3),
    "i486": (32, True, 6),
    "alpha": (64, True, 0x9026),
    "arm": (32, True, 40),
    "armeb": (32, False, 40),
    "sparc": (32, False, 2),
    "sparc32plus": (32, False, 18),
    "sparc64": (64, False, 43),
    "ppc": (32, False, 20),
    "ppc64": (64, False, 21),
    "ppc64le": (64, True, 21),
    "m68k": (32, False, 4),
    "mips": (32, False, 8),
    "mipsel": (32, True, 8),
    "mipsn32": (32, False, 8),
    "mipsn32el": (32, True, 8),
    "mips64": (64, False, 8),
    "mips64el": (64, True, 8),
    "sh4": (32, True, 42),
    "sh4eb": (32, False, 42),
    "s390x": (64, False, 22),
    "aarch64": (64, True, 183),
    "aarch64_be": (64, False, 183),
    "hppa": (32, False, 15),
    "riscv32": (32, True, 243),
    "riscv64": (64, True, 243),
    "xtensa": (32, True, 94),
    "xtensaeb": (32, False, 94),
    "microblaze": (32, False, 0xBAAB),
    "microblazeel": (32, True, 0xBAAB),
    "or1k": (32, False, 92),
    "x86_64": (64, True, 62),
    "hexagon": (32, True, 164),
    "loongarch64": (64, True, 258),
}

# The targets the probes must cover at the very least.
MUST = {"aarch64", "arm", "armeb", "i386", "x86_64", "ppc", "ppc64le", "s390x", "riscv64",
        "mips", "mipsel", "mips64el", "sparc64", "m68k"}  # fmt: skip

# QEMU binary per target where it is not qemu-<target> (QEMU's table: i486 -> qemu-i386).
QEMU_BINARY = {"i486": "i386"}

# Probes that legitimately match another target's magic/mask too. None do: i386/i486 and
# sparc/sparc32plus differ in e_machine, mips/mipsn32 in EF_MIPS_ABI2, the rest in
# EI_CLASS, EI_DATA or e_machine.
KNOWN_OVERLAPS: dict[str, set[str]] = {}

EF_MIPS_ABI2 = 0x20
PF_X, PF_R, PF_W = 1, 4, 2

REPO = Path(__file__).resolve().parents[1]
QEMU_TABLE_CANDIDATES = (
    REPO.parent / "shared" / "reference" / "qemu-targets.yaml",
    Path("/work/shared/reference/qemu-targets.yaml"),
)
DEBIAN_BINFMT_D = Path("/usr/lib/binfmt.d")


def unescape(text: str) -> bytes:
    """Kernel-style register string (\\xHH escapes, other characters literal) to bytes."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\x", i):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out.append(ord(text[i]))
            i += 1
    return bytes(out)


def matches(image: bytes, magic: bytes, mask: bytes, offset: int = 0) -> bool:
    """binfmt_misc's M-type test: (file[i] ^ magic[i]) & mask[i] == 0 over the magic."""
    window = image[offset : offset + len(magic)]
    if len(window) < len(magic):
        return False
    return all((f ^ m) & k == 0 for f, m, k in zip(window, magic, mask, strict=True))


def qemu_table() -> dict[str, tuple[bytes, bytes]]:
    """Upstream QEMU's (magic, mask) per target, microblaze's e_type bug corrected."""
    path = next((p for p in QEMU_TABLE_CANDIDATES if p.is_file()), None)
    if path is None:
        pytest.skip(f"QEMU target table not found (looked in {QEMU_TABLE_CANDIDATES})")
    entries = yaml.safe_load(path.read_text())["qemu_binfmt_targets"]
    table = {e["name"]: (unescape(e["magic"]), unescape(e["mask"])) for e in entries}
    # Upstream's microblaze (big-endian) entry writes e_type little-endian ("\x02\x00",
    # mask "\xfe\xff"), so it matches no real big-endian file. Debian's
    # /usr/lib/binfmt.d/qemu-microblaze.conf has it right; use the corrected bytes.
    magic, mask = (bytearray(b) for b in table["microblaze"])
    assert (bytes(magic[16:18]), bytes(mask[16:18])) == (b"\x02\x00", b"\xfe\xff"), (
        "upstream fixed it?"
    )
    magic[16:18], mask[16:18] = b"\x00\x02", b"\xff\xfe"
    table["microblaze"] = (bytes(magic), bytes(mask))
    return table


def debian_confs() -> dict[str, tuple[int, bytes, bytes]]:
    """Debian's qemu-*.conf entries as {target: (offset, magic, mask)}."""
    confs = {}
    for path in sorted(DEBIAN_BINFMT_D.glob("qemu-*.conf")):
        for line in path.read_text().splitlines():
            if not line.startswith(":"):
                continue
            _, name, kind, offset, magic, mask, *_ = line.split(":")
            assert kind == "M", line
            confs[name.removeprefix("qemu-")] = (int(offset or 0), unescape(magic), unescape(mask))
    return confs


def qemu_binary(target: str) -> Path | None:
    name = f"qemu-{QEMU_BINARY.get(target, target)}-static"
    found = shutil.which(name)
    return Path(found) if found else None


def test_targets_cover_the_must_list_and_the_expected_table() -> None:
    assert set(PROBE_TARGETS) >= MUST
    assert set(PROBE_TARGETS) == set(EXPECTED_IDENTITY)
    assert len(set(PROBE_TARGETS)) == len(PROBE_TARGETS)


def test_targets_are_exactly_qemus_binfmt_table() -> None:
    assert list(qemu_table()) == list(PROBE_TARGETS)


@pytest.mark.parametrize("target", PROBE_TARGETS)
def test_probe_is_a_static_exec_for_its_target(target: str) -> None:
    image = build_probe(target)
    bits, little, machine = EXPECTED_IDENTITY[target]
    elf = ELFFile(io.BytesIO(image))
    header = elf.header

    assert elf.elfclass == bits
    assert elf.little_endian is little
    e_machine = header["e_machine"]
    assert ENUM_E_MACHINE.get(e_machine, e_machine) == machine
    assert header["e_type"] == "ET_EXEC"
    assert header["e_ident"]["EI_OSABI"] == "ELFOSABI_SYSV"
    assert header["e_ident"]["EI_VERSION"] == "EV_CURRENT"
    assert header["e_version"] == "EV_CURRENT"
    assert header["e_shnum"] == 0

    segments = list(elf.iter_segments())
    assert [s["p_type"] for s in segments] == ["PT_LOAD"]  # so no PT_INTERP: static
    load = segments[0]
    assert load["p_flags"] == PF_R | PF_X
    assert load["p_offset"] == 0 and load["p_filesz"] == load["p_memsz"] == len(image)
    assert load["p_vaddr"] % load["p_align"] == 0 and load["p_align"] >= 0x1000
    assert load["p_vaddr"] < header["e_entry"] < load["p_vaddr"] + len(image)

    assert marker(target) in image
    assert len(image) < 512


@pytest.mark.parametrize(
    ("target", "flags"),
    [
        ("arm", 0x05000000),  # EABI5
        ("armeb", 0x05800000),  # EABI5 | BE8
        ("ppc64", 1),  # ELFv1: entry is a function descriptor
        ("ppc64le", 2),  # ELFv2
        ("sparc32plus", 0x100),  # EF_SPARC_32PLUS
    ],
)
def test_e_flags_where_the_loader_cares(target: str, flags: int) -> None:
    assert ELFFile(io.BytesIO(build_probe(target))).header["e_flags"] == flags


@pytest.mark.parametrize("target", [t for t in PROBE_TARGETS if t.startswith("mips")])
def test_mips_n32_is_told_apart_by_ef_mips_abi2(target: str) -> None:
    e_flags = ELFFile(io.BytesIO(build_probe(target))).header["e_flags"]
    assert bool(e_flags & EF_MIPS_ABI2) is target.startswith("mipsn32")


@pytest.mark.parametrize("target", PROBE_TARGETS)
def test_probe_matches_its_own_qemu_magic_and_no_other(target: str) -> None:
    image = build_probe(target)
    matched = {name for name, (magic, mask) in qemu_table().items() if matches(image, magic, mask)}
    assert matched == {target} | KNOWN_OVERLAPS.get(target, set())


def test_probes_match_debians_binfmt_d_entries() -> None:
    confs = debian_confs()
    if not confs:
        pytest.skip(f"no qemu-*.conf in {DEBIAN_BINFMT_D} (Debian's qemu-user-static)")
    images = {t: build_probe(t) for t in PROBE_TARGETS}
    for name, (offset, magic, mask) in confs.items():
        matched = {t for t, image in images.items() if matches(image, magic, mask, offset)}
        expected = {name} if name in images else set()  # e.g. cris: no probe
        assert matched == expected, name


def test_debian_microblaze_entry_is_the_corrected_upstream_one() -> None:
    conf = debian_confs().get("microblaze")
    if conf is None:
        pytest.skip(f"no qemu-microblaze.conf in {DEBIAN_BINFMT_D}")
    assert conf == (0, *qemu_table()["microblaze"])


@pytest.mark.qemu
@pytest.mark.parametrize("target", PROBE_TARGETS)
def test_probe_runs_under_qemu(target: str, tmp_path: Path) -> None:
    qemu = qemu_binary(target)
    if qemu is None:
        pytest.skip(f"qemu-{QEMU_BINARY.get(target, target)}-static not installed")
    path = write_probe(target, tmp_path)
    result = subprocess.run([str(qemu), str(path)], capture_output=True, timeout=60, check=False)
    assert (result.stdout, result.returncode) == (marker(target), 0), result.stderr


def test_write_probe_writes_an_executable_file(tmp_path: Path) -> None:
    path = write_probe("aarch64", str(tmp_path))
    assert path == tmp_path / "probe-aarch64"
    assert path.read_bytes() == build_probe("aarch64")
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    path.chmod(0o600)
    assert stat.S_IMODE(write_probe("aarch64", tmp_path).stat().st_mode) == 0o755


def test_marker_names_the_target() -> None:
    assert marker("aarch64") == b"binfmtctl-probe:aarch64\n"
    assert len({marker(t) for t in PROBE_TARGETS}) == len(PROBE_TARGETS)


def test_build_is_deterministic() -> None:
    assert all(build_probe(t) == build_probe(t) for t in PROBE_TARGETS)


@pytest.mark.parametrize("call", [build_probe, marker, lambda t: write_probe(t, os.devnull)])
def test_unknown_target_is_refused_clearly(call: Callable[[str], object]) -> None:
    with pytest.raises(ValueError, match=r"no probe for QEMU target 'vax'.*aarch64"):
        call("vax")
    with pytest.raises(KeyError):
        call("vax")
    with pytest.raises(UnknownTargetError) as info:
        call("i686")
    assert str(info.value).startswith("no probe for QEMU target 'i686'")
