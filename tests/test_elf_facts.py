"""elf.read_elf_facts (the light reader status and doctor use for interpreters) gives
exactly read_elf's (pyelftools) arch, machine, linkage and PT_INTERP, or None so that
read_elf decides: on the real interpreters and programs of this host, on generated files
of every target, and on random damage to them."""

from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binfmtctl import table
from binfmtctl.elf import NotElfError, read_elf, read_elf_facts
from binfmtctl.interpreters import gather_facts
from tests.elfgen import ET_DYN, ET_EXEC, target_file


def agree(path: str) -> bool:
    """True if the light reader answered (and agreed); False if it left it to read_elf."""
    light = read_elf_facts(path)
    if light is None:
        return False
    full = read_elf(path)  # never raises where the light reader answered
    assert (light.arch, light.machine, light.linkage, light.interpreter) == (
        full.arch,
        full.machine,
        full.linkage,
        full.interpreter,
    ), path
    return True


def test_real_files_of_this_host() -> None:
    paths = [
        *sorted(glob.glob("/usr/bin/qemu-*-static"))[:40],
        os.path.realpath("/proc/self/exe"),
        "/bin/sh",
        "/usr/bin/env",
    ]
    answered = [p for p in paths if agree(p)]
    assert len(answered) == len(paths)  # all well-formed: none left to pyelftools
    kinds = {read_elf(p).linkage for p in answered}
    assert {"static-pie", "dynamic"} <= kinds  # qemu-*-static here, and the host's programs


def test_generated_files_of_every_target(tmp_path: Path) -> None:
    n = 0
    for t in table.table().targets:
        for e_type in (ET_EXEC, ET_DYN):
            for interp in (None, "/lib/ld-test.so.1"):
                p = tmp_path / f"{t.name}-{e_type}-{interp is None}"
                p.write_bytes(target_file(t, e_type=e_type, interp=interp))
                assert agree(str(p)), p
                n += 1
    assert n >= 4 * 20


def test_not_elf_and_odd_files_are_left_to_read_elf(tmp_path: Path) -> None:
    for name, data in (("empty", b""), ("script", b"#!/bin/sh\n"), ("short", b"\x7fELF\x02")):
        (tmp_path / name).write_bytes(data)
        assert read_elf_facts(tmp_path / name) is None
    assert read_elf_facts(tmp_path) is None  # a directory
    assert read_elf_facts(tmp_path / "missing") is None
    f = gather_facts(str(tmp_path / "script"))
    assert f.elf_error is not None and f.elf_error.startswith("not an ELF executable")


@settings(max_examples=200, deadline=None)
@given(
    target=st.sampled_from(table.table().targets),
    e_type=st.sampled_from([ET_EXEC, ET_DYN]),
    interp=st.sampled_from([None, "/lib/ld.so"]),
    damage=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 200)),
)
def test_damaged_files_agree_or_are_left_to_read_elf(
    tmp_path_factory: pytest.TempPathFactory,
    target: table.Target,
    e_type: int,
    interp: str | None,
    damage: list[tuple[int, int]],
    cut: int | None,
) -> None:
    data = bytearray(target_file(target, e_type=e_type, interp=interp))
    for at, value in damage:
        if at < len(data):
            data[at] = value
    blob = bytes(data[:cut] if cut is not None else data)
    p = tmp_path_factory.getbasetemp() / "damaged-elf"
    p.write_bytes(blob)
    light = read_elf_facts(p)
    if light is not None:
        full = read_elf(p)
        assert (light.arch, light.machine, light.linkage, light.interpreter) == (
            full.arch,
            full.machine,
            full.linkage,
            full.interpreter,
        )
    else:
        with contextlib.suppress(NotElfError):
            read_elf(p)
