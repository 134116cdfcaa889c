"""Reading PATH's programs is skipped only where it cannot change a verdict."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from binfmtctl import hijack, table
from binfmtctl.entry import Entry

FULL = hijack.gather()  # every PATH sample read
HOST = hijack.host_identity(hijack._read_head("/proc/self/exe") or b"", os.uname().machine)
assert HOST is not None
KINDS = {(i.class_, i.endian, i.machine) for i in hijack.identities(HOST)}
REAL = [(p, h) for p, h in FULL.headers if p.startswith("/")]


def _entry(offset: int, magic: bytes, mask: bytes | None) -> Entry:
    return Entry(name="t", type="M", offset=offset, magic=magic, mask=mask, interpreter="/bin/true")


def test_this_host_has_real_samples_to_lose() -> None:
    assert len(REAL) > 20  # scripts and native programs on PATH: the filter has work to do


def test_qemu_entries_need_no_path_read_and_keep_their_verdicts() -> None:
    every = [_entry(0, t.magic, t.mask) for t in table.targets()]
    foreign = [e for e in every if hijack.hijack_problem(e, FULL) is None]
    assert len(foreign) > 20
    assert not any(hijack.may_match_path_files(e, KINDS) for e in foreign)
    light = hijack.gather(foreign)
    assert not [h for h in light.headers if h[0].startswith("/")]  # nothing read from PATH
    for e in foreign:
        assert hijack.native_hits(e, light) == hijack.native_hits(e, FULL)


def test_m_entries_that_read_no_file_list_no_directory_and_e_entries_do() -> None:
    """PATH's names matter only to E entries (extensions): a batch of M entries that reads
    no program does not list PATH, and keeps its verdicts (above); one E entry lists it and
    is judged on the same extensions as with everything read."""
    foreign = [_entry(0, t.magic, t.mask) for t in table.targets()][:5]
    assert hijack.gather(foreign).extensions == hijack.samples(HOST).extensions
    on_path = [ext for ext, _ in FULL.extensions if ext not in hijack.SCRIPT_EXTENSIONS]
    assert on_path  # this host has programs with extensions of their own on PATH
    ext = Entry(name="e", type="E", extension=on_path[0], interpreter="/bin/true")
    with_e = hijack.gather([*foreign, ext])
    assert with_e.extensions == FULL.extensions
    assert hijack.native_hits(ext, with_e) == hijack.native_hits(ext, FULL) != []
    assert not [h for h in with_e.headers if h[0].startswith("/")]  # still no file read


def test_an_entry_for_native_programs_reads_path() -> None:
    e = _entry(0, b"#!", None)
    assert hijack.may_match_path_files(e, KINDS)
    assert [h for h in hijack.gather([e]).headers if h[0].startswith("/")]


@settings(max_examples=400, deadline=None)
@given(
    offset=st.integers(0, 40),
    data=st.data(),
)
def test_no_real_sample_matches_an_entry_the_filter_rules_out(
    offset: int, data: st.DataObject
) -> None:
    # magics cut from real samples (so matches happen), with random masks and flips
    _, head = data.draw(st.sampled_from(REAL))
    size = data.draw(st.integers(1, 24))
    magic = bytearray(head[offset : offset + size].ljust(size, b"\0"))
    if data.draw(st.booleans()):
        i = data.draw(st.integers(0, size - 1))
        magic[i] ^= data.draw(st.integers(1, 255))
    mask = data.draw(st.one_of(st.none(), st.binary(min_size=size, max_size=size)))
    if mask is not None:
        magic = bytearray(b & m for b, m in zip(magic, mask, strict=True))
    e = _entry(offset, bytes(magic), mask)
    if not hijack.may_match_path_files(e, KINDS):
        assert not any(e.matches_header(h[: hijack.BUF_SIZE]) for _, h in REAL)
