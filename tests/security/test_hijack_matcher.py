"""The fast matcher of binfmtctl.hijack (samples grouped by window, one integer compare per
group, memoized) gives exactly the verdicts of the kernel-exact Entry.matches_header."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from binfmtctl import hijack, record
from binfmtctl.entry import Entry


@functools.lru_cache(maxsize=1)
def host_samples() -> hijack.NativeSamples:
    return hijack.gather()  # this host: its own Python, the programs on its PATH


def slow_hits(entry: Entry, headers: tuple[tuple[str, bytes], ...]) -> list[str]:
    return [what for what, h in headers if entry.matches_header(h[: hijack.BUF_SIZE])]


def window_of(headers: list[bytes]) -> st.SearchStrategy[tuple[int, bytes]]:
    """An (offset, magic) copied from one of the headers (so matches are common), or random."""
    copied = st.tuples(st.sampled_from(headers), st.integers(0, 280), st.integers(1, 40)).map(
        lambda t: (t[1], t[0][: hijack.BUF_SIZE][t[1] : t[1] + t[2]].ljust(t[2], b"\0"))
    )
    return st.one_of(copied, st.tuples(st.integers(0, 280), st.binary(min_size=1, max_size=40)))


@st.composite
def entries(draw: st.DrawFn, headers: list[bytes]) -> Entry:
    offset, magic = draw(window_of(headers))
    mask = draw(
        st.one_of(
            st.none(),
            st.binary(min_size=len(magic), max_size=len(magic)),
            st.lists(
                st.sampled_from([0, 0xFF, 0xFE, 0xF0]), min_size=len(magic), max_size=len(magic)
            ).map(bytes),
        )
    )
    return Entry("e", "M", "/bin/true", offset=offset, magic=magic, mask=mask)


RANDOM_HEADERS = st.lists(
    st.tuples(st.just(""), st.binary(min_size=0, max_size=300)), min_size=0, max_size=30
)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), extra=RANDOM_HEADERS)
def test_fast_matcher_agrees_with_matches_header(
    data: st.DataObject, extra: list[tuple[str, bytes]]
) -> None:
    base = host_samples()
    headers = base.headers + tuple((f"random {i}", h) for i, (_, h) in enumerate(extra))
    native = hijack.NativeSamples(headers, base.extensions)
    many = data.draw(st.lists(entries([h for _, h in headers] or [b""]), min_size=1, max_size=6))
    for e in many:
        expected = slow_hits(e, headers)
        assert hijack.native_hits(e, native) == expected
        assert hijack.native_hits(e, native) == expected  # memoized: the same answer again
        for _, h in headers[:: max(1, len(headers) // 5)]:  # same window and mask, other magic
            n = len(e.magic)
            twin = record.replace(
                e, magic=h[: hijack.BUF_SIZE][e.offset : e.offset + n].ljust(n, b"\0")
            )
            assert hijack.native_hits(twin, native) == slow_hits(twin, headers)
    fresh = hijack.NativeSamples(headers, base.extensions)
    assert [hijack.native_hits(e, fresh) for e in reversed(many)] == [
        slow_hits(e, headers) for e in reversed(many)
    ]


def test_real_samples_are_grouped_and_a_host_elf_entry_matches_many() -> None:
    native = hijack.NativeSamples(host_samples().headers)
    x86_64 = Entry(
        "h",
        "M",
        "/bin/true",
        magic=b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
        mask=b"\xff" * 7 + b"\x00" + b"\xff" * 8 + b"\xfe\xff\xff\xff",
    )
    hits = hijack.native_hits(x86_64, native)
    assert hits == slow_hits(x86_64, native.headers) and len(hits) > 10
    groups = native.memo[("window", 0, 20)]
    assert isinstance(groups, list) and len(groups) < len(native.headers) / 4


def test_a_mask_of_another_length_raises_as_matches_header_does() -> None:
    bad = Entry("b", "M", "/bin/true", magic=b"\x7fELF", mask=b"\xff")
    try:
        bad.matches_header(b"\x7fELF")
    except ValueError as e:
        expected = str(e)
    try:
        hijack.native_hits(bad, host_samples())
    except ValueError as e:
        assert str(e) == expected
    else:
        raise AssertionError("no ValueError")


def test_scan_path_reads_each_real_file_once_as_realpath_would(tmp_path: Path) -> None:
    """Symlinks are resolved through the opened descriptor: the same files are read, once
    each, as with os.path.realpath, through chains, relative and cross-directory links."""
    a, b, real = tmp_path / "a", tmp_path / "b", tmp_path / "real"
    for d in (a, b, real):
        d.mkdir()
    (real / "tool").write_bytes(b"#!/bin/sh\ntool\n")
    (a / "prog").write_bytes(b"#!/bin/sh\nprog\n")
    os.symlink("../real/tool", a / "link1")  # relative, into another directory
    os.symlink(a / "link1", b / "link2")  # a chain
    os.symlink("prog", b / "zprog")  # dangling here (b has no prog)
    os.symlink(a / "prog", b / "yprog")  # the same file as a/prog
    os.symlink(real, b / "dirlink")  # a directory: not read
    os.symlink(tmp_path / "real", tmp_path / "alias")  # a PATH dir reached through a link
    headers, names = hijack.scan_path(f"{a}:{b}:{tmp_path / 'alias'}")
    # the reference: the same listing, deduplicated by os.path.realpath, read if regular
    expected, seen = [], set()
    for d in (a, b, tmp_path / "alias"):
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            r = os.path.realpath(p)
            if r in seen:
                continue
            seen.add(r)
            if os.path.isfile(p):
                expected.append((p, Path(p).read_bytes()))
    assert headers == expected
    assert [p for p, _ in headers] == [f"{a}/link1", f"{a}/prog"]  # the rest are duplicates
    assert sorted(names) == sorted(["link1", "prog", "dirlink", "link2", "yprog", "zprog", "tool"])
