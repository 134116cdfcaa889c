"""binfmtctl.elf: ELF identity via pyelftools, and clear errors for everything else."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binfmtctl import elf, table
from binfmtctl.elf import NotElfError, UnreadableFileError, parse_elf, read_elf, read_header
from tests.elfgen import ET_DYN, ET_EXEC, ET_REL, elf_file, elf_header, target_file

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = {"class", "endian", "machine", "arch", "static", "interpreter"}


def host_target() -> table.Target:
    try:
        return table.host_target()
    except table.UnknownTargetError:
        pytest.skip("host cpu not in QEMU's table")


def parse(data: bytes) -> elf.ElfInfo:
    return parse_elf(io.BytesIO(data), "<test>")


# -- real host binaries ------------------------------------------------------------------------
def test_dynamic_host_binary() -> None:
    info = read_elf("/bin/ls")
    host = host_target()
    assert (info.class_, info.endian, info.machine_number) == (
        host.class_,
        host.endian,
        host.machine,
    )
    assert info.arch == host.name
    assert info.linkage == "dynamic" and not info.static
    assert info.interpreter is not None and info.interpreter.startswith("/")
    assert info.e_type in ("ET_EXEC", "ET_DYN")
    data = info.to_json()
    assert set(data) >= CONTRACT_KEYS
    assert data["static"] is False and data["interpreter"] == info.interpreter


def test_python_is_dynamic() -> None:
    real = Path(sys.executable).resolve()
    info = read_elf(real)
    assert info.arch == host_target().name
    assert info.interpreter is not None
    # read_elf follows the symlink, as exec does
    if Path("/usr/bin/python3").is_symlink():
        assert (
            read_elf("/usr/bin/python3").machine
            == read_elf(Path("/usr/bin/python3").resolve()).machine
        )


def test_static_host_binary() -> None:
    candidates = [*sorted(Path("/usr/bin").glob("qemu-*-static")), Path("/bin/busybox")]
    for path in candidates:
        if path.is_file():
            break
    else:
        pytest.skip("no static binary on this host")
    info = read_elf(path)
    assert info.interpreter is None
    assert info.linkage in ("static", "static-pie") and info.static
    assert info.to_json()["static"] is True
    assert info.arch == host_target().name


def test_probe_images_are_static_elf_of_their_target() -> None:
    from binfmtctl import probe

    assert set(probe.PROBE_TARGETS) == {t.name for t in table.targets()}
    for name in probe.PROBE_TARGETS:
        info = parse(probe.build_probe(name))
        assert info.arch == name, name
        assert info.linkage == "static"


# -- synthetic files per target ----------------------------------------------------------------
@pytest.mark.parametrize("target", table.targets(), ids=lambda t: t.name)
def test_synthetic_targets(target: table.Target) -> None:
    info = parse(target_file(target))
    assert info.arch == target.name
    assert (info.class_, info.endian, info.machine_number) == (
        target.class_,
        target.endian,
        target.machine,
    )
    assert info.machine == target.machine_name
    assert info.e_type == "ET_EXEC" and info.linkage == "static"
    dyn = parse(target_file(target, e_type=ET_DYN, interp="/lib/ld.so.1", osabi=3))
    assert dyn.linkage == "dynamic" and dyn.interpreter == "/lib/ld.so.1"
    assert dyn.osabi == "ELFOSABI_LINUX" and dyn.arch == target.name
    pie = parse(target_file(target, e_type=ET_DYN, pie_flag=True))
    assert pie.linkage == "static-pie" and pie.static
    # object files: no linkage, but the architecture is still known
    obj = parse(elf_header(target.class_, target.endian, target.machine, e_type=ET_REL,
                           e_flags=target.e_flags.value if target.e_flags else 0))  # fmt: skip
    assert obj.linkage is None and obj.arch == target.name and obj.e_type == "ET_REL"


@pytest.mark.parametrize(
    ("class_", "endian", "machine", "flags", "arch", "abi", "float_abi"),
    [
        (32, "big", 8, 0x70001007, "mips", "o32", None),
        (32, "little", 8, 0x80000027, "mipsn32el", "n32", None),
        (64, "little", 8, 0x80000007, "mips64el", "n64", None),
        (32, "little", 40, 0x05000400, "arm", "eabi5", "hard"),
        (32, "little", 40, 0x05000200, "arm", "eabi5", "soft"),
        (32, "little", 40, 0x00000000, "arm", "oabi", None),
        (64, "little", 243, 0x5, "riscv64", "lp64d", "double"),
        (32, "little", 243, 0x0, "riscv32", "ilp32", "soft"),
        (64, "little", 258, 0x43, "loongarch64", "lp64d", "double"),
        (64, "little", 21, 0x2, "ppc64le", "elfv2", None),
        (64, "big", 21, 0x1, "ppc64", "elfv1", None),
        (64, "little", 183, 0x0, "aarch64", None, None),
    ],
)
def test_e_flags_decoding(
    class_: int,
    endian: str,
    machine: int,
    flags: int,
    arch: str,
    abi: str | None,
    float_abi: str | None,
) -> None:
    info = parse(elf_file(class_, endian, machine, e_flags=flags))
    assert (info.arch, info.abi, info.float_abi, info.e_flags) == (arch, abi, float_abi, flags)
    assert info.to_json()["abi"] == abi


def test_mips_notes_name_the_abi2_bit() -> None:
    info = parse(elf_file(32, "big", 8, e_flags=0x80000021))
    assert info.abi == "n32" and "EF_MIPS_ABI2 set (n32)" in info.flag_notes
    assert "ISA mips64r2" in info.flag_notes


def test_modern_microblaze_number_still_names_the_arch() -> None:
    info = parse(elf_file(32, "big", 189))
    assert info.arch == "microblaze"
    assert info.machine == "EM_MICROBLAZE"  # pyelftools' name, not in our table


def test_unknown_machine() -> None:
    info = parse(elf_file(64, "little", 0x7777))
    assert info.arch is None and info.machine == "0x7777"
    assert info.to_json()["arch"] is None


def test_shared_library_without_interp_gets_a_note() -> None:
    lib = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")
    if not lib.is_file():
        pytest.skip("no libz on this host")
    info = read_elf(lib)
    assert info.linkage == "static-pie"
    assert any("shared library" in n for n in info.flag_notes)


# -- not ELF / broken ELF --------------------------------------------------------------------------
def test_truncated_header_of_a_real_binary(tmp_path: Path) -> None:
    p = tmp_path / "cut"
    p.write_bytes(Path("/bin/ls").read_bytes()[:30])
    with pytest.raises(
        NotElfError, match=r"truncated ELF header: ELF64 needs 64 bytes, file has 30"
    ):
        read_elf(p)
    assert read_header(p) == Path("/bin/ls").read_bytes()[:30]


def test_truncated_program_headers() -> None:
    data = elf_file(64, "little", 183, interp="/lib/ld.so")
    with pytest.raises(NotElfError, match="program headers end at byte"):
        parse(data[:80])


def test_interp_past_the_end() -> None:
    data = elf_file(32, "little", 40, interp="/lib/ld-linux-armhf.so.3")
    # keep the program headers, lose the interpreter string
    with pytest.raises(NotElfError, match="PT_INTERP"):
        parse(data[: 52 + 2 * 32 + 2])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello world\nsecond line\n", "not an ELF file: text"),
        (b"#!/bin/sh\necho hi\n", "not an ELF file: a script (#!/bin/sh)"),
        (b"#! /usr/bin/env python3\n", "a script (#!/usr/bin/env python3)"),
        (b"MZ\x90\x00\x03\x00", "a DOS/Windows executable (MZ)"),
        (b"PK\x03\x04\x14\x00", "a zip archive"),
        (b"\xa7\x0d\x0d\x0a\x00\x00", "compiled Python bytecode"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x00\x01\x02\x03\xff\xfe", "data (starts with 00 01 02 03 ff fe)"),
        (b"\x7fEL", "truncated ELF: only 3 bytes"),
        (b"\x7fELF\x03\x01\x01" + bytes(60), "EI_CLASS is 3"),
        (b"\x7fELF\x02\x00\x01" + bytes(60), "EI_DATA is 0"),
    ],
)
def test_not_elf_reasons(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "f"
    p.write_bytes(content)
    with pytest.raises(NotElfError) as info:
        read_elf(p)
    assert reason in str(info.value)
    assert str(info.value).startswith(str(p) + ": ")
    assert "\n" not in info.value.reason


def test_directory_and_missing(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="is a directory"):
        read_elf(tmp_path)
    with pytest.raises(UnreadableFileError, match="no such file"):
        read_elf(tmp_path / "nope")
    with pytest.raises(UnreadableFileError, match="is a directory"):
        read_header(tmp_path)
    with pytest.raises(UnreadableFileError, match="no such file"):
        read_header(tmp_path / "nope")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFileError, match=r"not a regular file \(a FIFO\)"):
        read_elf(fifo)


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "secret"
    p.write_bytes(b"\x7fELF")
    if os.geteuid() != 0:
        p.chmod(0)
        with pytest.raises(UnreadableFileError, match="permission denied"):
            read_elf(p)
        p.chmod(0o600)

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(elf, "open", deny, raising=False)
    with pytest.raises(UnreadableFileError, match="permission denied"):
        read_elf(p)
    with pytest.raises(UnreadableFileError, match="permission denied"):
        read_header(p)


def test_read_header() -> None:
    data = Path("/bin/ls").read_bytes()
    assert read_header("/bin/ls") == data[:256]
    assert read_header("/bin/ls", 16) == data[:16]


def test_errors_are_binfmtctl_errors() -> None:
    from binfmtctl.errors import BinfmtctlError

    err = NotElfError("x", "empty file")
    assert isinstance(err, BinfmtctlError) and str(err) == "x: empty file"
    assert issubclass(UnreadableFileError, NotElfError)


# -- garbage never escapes as anything but NotElfError ------------------------------------------------
def _parse_or_not_elf(data: bytes) -> None:
    try:
        info = parse(data)
    except NotElfError as exc:
        assert exc.reason and "\n" not in exc.reason
    else:
        assert info.class_ in (32, 64)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _parse_or_not_elf(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from([1, 2]),
    st.sampled_from([1, 2]),
    st.binary(min_size=0, max_size=400),
)
def test_garbage_after_a_valid_ident(class_: int, data_: int, rest: bytes) -> None:
    _parse_or_not_elf(b"\x7fELF" + bytes([class_, data_, 1]) + rest)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_mutated_small_elf(data: st.DataObject) -> None:
    base = bytearray(
        elf_file(
            64, "little", 183, e_type=ET_DYN, interp="/lib/ld-linux-aarch64.so.1", pie_flag=True
        )
    )
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    _parse_or_not_elf(bytes(base[:cut]) if data.draw(st.booleans()) else bytes(base))


# -- import cost ------------------------------------------------------------------------------
def test_pyelftools_is_imported_lazily() -> None:
    code = "import sys, binfmtctl.elf; print(any(m.startswith('elftools') for m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "False"


def test_elfgen_headers_have_the_right_size() -> None:
    assert len(elf_header(32, "big", 8)) == 52
    assert len(elf_header(64, "little", 62, e_type=ET_EXEC)) == 64
