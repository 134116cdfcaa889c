"""Unit tests for :mod:`binfmtctl.entry`: the Entry model and its spellings.

Expected texts come from the reference (``/work/shared/reference/kernel-binfmt-misc.md``):
§4.1 for the entry file, §4.3 for matching, §2.6 for decoding, §6 for binfmt.d.
The last part parses every binfmt.d and update-binfmts file installed on this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binfmtctl.entry import (
    Entry,
    EntryParseError,
    UnrepresentableError,
    choose_delimiter,
    escape_bytes,
    iter_binfmt_d_lines,
    kernel_view,
    normalize_flags,
    parse_binfmt_d,
    parse_entry_file,
    parse_register,
    parse_update_binfmts,
    render_binfmt_d,
    render_register,
    render_update_binfmts,
    unescape,
    unescape_legacy,
)
from binfmtctl.rules import KernelProfile, validate

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

K618 = KernelProfile.parse("6.18")

ARM_MAGIC = b"\x7fELF\x01\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x28\x00"
ARM_MASK = b"\xff" * 7 + b"\x00" + b"\xff" * 8 + b"\xfe\xff\xff\xff"


def m_entry(**kw: object) -> Entry:
    """An M entry: name t, magic BMX1, interpreter /bin/true, unless overridden."""
    fields: dict[str, object] = {"name": "t", "type": "M", "interpreter": "/bin/true"}
    fields["magic"] = b"BMX1"
    return Entry(**(fields | kw))  # type: ignore[arg-type]


def e_entry(extension: str = "foo", **kw: object) -> Entry:
    """An E entry for ``extension``, interpreter /bin/true, unless overridden."""
    fields: dict[str, object] = {"name": "t", "type": "E", "interpreter": "/bin/true"}
    fields["extension"] = extension
    return Entry(**(fields | kw))  # type: ignore[arg-type]


# -- flags -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given_flags", "stored"),
    [
        pytest.param("", "", id="none"),
        pytest.param("FCOP", "POCF", id="FCOP"),
        pytest.param("C", "OC", id="C-implies-O"),
        pytest.param("CO", "OC", id="CO"),
        pytest.param("PP", "P", id="dedup"),
        pytest.param("FP", "PF", id="order"),
        pytest.param("OPF", "POF", id="debian-binfmt.d"),
    ],
)
def test_normalize_flags(given_flags: str, stored: str) -> None:
    assert normalize_flags(given_flags) == stored
    assert m_entry(flags=given_flags).flags == stored


@pytest.mark.parametrize("flags", ["p", "X", "PX", "T", " "])
def test_normalize_flags_rejects_unknown(flags: str) -> None:
    with pytest.raises(ValueError, match="unknown flag"):
        normalize_flags(flags)


def test_entry_type_must_be_m_or_e() -> None:
    with pytest.raises(ValueError, match="'M' or 'E'"):
        Entry(name="t", type="B", interpreter="/bin/true")


def test_e_entry_drops_magic_fields() -> None:
    e = Entry(
        name="t", type="E", interpreter="/x", extension="foo", offset=3, magic=b"A", mask=b"\xff"
    )
    assert (e.offset, e.magic, e.mask) == (0, b"", None)


def test_same_registration_ignores_enabled() -> None:
    assert m_entry(enabled=False).same_registration(m_entry())
    assert not m_entry(flags="P").same_registration(m_entry())


# -- matching (§4.3) -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "header", "matches"),
    [
        pytest.param(m_entry(magic=b"BMXZ"), b"BMXZ rest", True, id="exact"),
        pytest.param(m_entry(magic=b"BMXZ"), b"BMXz", False, id="exact-case"),
        pytest.param(m_entry(magic=b"BMX\0", mask=b"\xff\xff\xff\0"), b"BMXZ", True, id="mask"),
        pytest.param(m_entry(magic=b"BMX\0", mask=b"\xff\xff\xff\0"), b"BMYZ", False, id="mask-no"),
        pytest.param(m_entry(magic=b"\x02", mask=b"\x03"), b"\x06", True, id="mask-bits"),
        pytest.param(m_entry(magic=b"\x02", mask=b"\x03"), b"\x03", False, id="mask-bits-no"),
        pytest.param(m_entry(magic=b"BMX4", offset=4), b"....BMX4", True, id="offset"),
        pytest.param(m_entry(magic=b"BMX4", offset=4), b"BMX4....", False, id="offset-no"),
        pytest.param(m_entry(magic=b"BMXS\0\0"), b"BMXS", True, id="zero-fill-past-eof"),
        pytest.param(m_entry(magic=b"BMXS\0\x01"), b"BMXS", False, id="zero-fill-not-one"),
        pytest.param(m_entry(magic=b"\0\0", offset=10), b"ab", True, id="offset-past-eof"),
        pytest.param(m_entry(magic=b"BMXS"), b"BMX", False, id="short-file"),
        pytest.param(m_entry(magic=ARM_MAGIC, mask=ARM_MASK), ARM_MAGIC, True, id="arm-elf"),
        pytest.param(
            m_entry(magic=ARM_MAGIC, mask=ARM_MASK),
            ARM_MAGIC[:16] + b"\x03\x00\x28\x00",  # e_type 3 (ET_DYN) is let through by \xfe
            True,
            id="arm-elf-pie",
        ),
        pytest.param(
            m_entry(magic=ARM_MAGIC, mask=ARM_MASK),
            ARM_MAGIC[:18] + b"\x3e\x00",  # x86_64
            False,
            id="arm-vs-x86_64",
        ),
        pytest.param(e_entry(), b"anything", False, id="E-never-by-header"),
    ],
)
def test_matches_header(entry: Entry, header: bytes, matches: bool) -> None:
    assert entry.matches_header(header) is matches


# -- escaping and decoding (§2.6) ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "text"),
    [
        pytest.param(b"\x7fELF", "\\x7fELF", id="elf"),
        pytest.param(b"AZaz09", "AZaz09", id="alnum-literal"),
        pytest.param(b":", "\\x3a", id="colon"),
        pytest.param(b"\\", "\\x5c", id="backslash"),
        pytest.param(b"\0", "\\x00", id="nul"),
        pytest.param(b"\n ", "\\x0a\\x20", id="whitespace"),
        pytest.param(b"\xff", "\\xff", id="lowercase-hex"),
        pytest.param(b"", "", id="empty"),
    ],
)
def test_escape_bytes(data: bytes, text: str) -> None:
    assert escape_bytes(data) == text


@given(st.binary(max_size=64))
def test_escape_bytes_round_trips_through_both_decoders(data: bytes) -> None:
    text = escape_bytes(data).encode()
    assert unescape(text) == data
    assert unescape_legacy(text) == data
    # the canonical spelling is safe as a field: no delimiter, backslash only in \xHH
    assert b":" not in text and b"\0" not in text


@pytest.mark.parametrize(
    ("text", "modern", "legacy"),
    [
        pytest.param(b"\\x41", "41", "41", id="hex"),
        pytest.param(b"\\x4", "04", "5c7834", id="one-digit-at-end"),
        pytest.param(b"\\\\x41", "5c5c783431", "5c41", id="backslash-backslash-x41"),
        pytest.param(b"\\x5cx41", "5c783431", "5c783431", id="escaped-backslash"),
        pytest.param(b"\\\\", "5c5c", "5c5c", id="double-backslash"),
        pytest.param(b"\\n", "5c6e", "5c6e", id="backslash-n"),
        pytest.param(b"\\X7fELF", "5c583766454c46", "5c583766454c46", id="upper-X"),
        pytest.param(b"AB\\", "41425c", "41425c", id="trailing-backslash"),
        pytest.param(b"AB\0CD", "4142", "4142", id="raw-nul-stops"),
        pytest.param(b"A\\x00B", "410042", "410042", id="escaped-nul-continues"),
        pytest.param(b"\\x7FELF", "7f454c46", "7f454c46", id="upper-digits"),
        pytest.param(b"\\xg7", "5c786737", "5c786737", id="not-hex"),
        pytest.param(b"\\\0A", "5c", "5c", id="backslash-then-nul"),
    ],
)
def test_unescape_modern_versus_legacy(text: bytes, modern: str, legacy: str) -> None:
    assert unescape(text).hex() == modern
    assert unescape_legacy(text).hex() == legacy


# -- the entry file (§4.1) -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "text"),
    [
        pytest.param(
            m_entry(),
            "enabled\ninterpreter /bin/true\nflags: \noffset 0\nmagic 424d5831\n",
            id="M-no-flags-trailing-space",
        ),
        pytest.param(
            m_entry(
                interpreter="/demo/interp",
                flags="POC",
                offset=2,
                magic=b"BMX\0",
                mask=b"\xff\xff\xff\0",
            ),
            "enabled\ninterpreter /demo/interp\nflags: POC\noffset 2\nmagic 424d5800\nmask ffffff00\n",
            id="M-mask-example",
        ),
        pytest.param(
            m_entry(mask=b"\xff" * 4, flags="C"),
            "enabled\ninterpreter /bin/true\nflags: OC\noffset 0\nmagic 424d5831\nmask ffffffff\n",
            id="M-all-ff-mask-still-shown",
        ),
        pytest.param(
            e_entry(interpreter="/demo/interp"),
            "enabled\ninterpreter /demo/interp\nflags: \nextension .foo\n",
            id="E",
        ),
        pytest.param(
            e_entry(".foo", enabled=False, flags="F"),
            "disabled\ninterpreter /bin/true\nflags: F\nextension ..foo\n",
            id="E-disabled-dot",
        ),
        pytest.param(
            e_entry("a\nb"),
            "enabled\ninterpreter /bin/true\nflags: \nextension .a\nb\n",
            id="E-newline-in-extension",
        ),
        pytest.param(
            m_entry(interpreter="/opt/my interp\nx"),
            "enabled\ninterpreter /opt/my interp\nx\nflags: \noffset 0\nmagic 424d5831\n",
            id="M-interp-space-newline",
        ),
    ],
)
def test_kernel_view_and_back(entry: Entry, text: str) -> None:
    assert kernel_view(entry) == text
    assert parse_entry_file(entry.name, text) == entry
    assert parse_entry_file(entry.name, text.encode()) == entry


def test_parse_entry_file_non_utf8_interpreter_round_trips() -> None:
    raw = b"enabled\ninterpreter /opt/\xff\xfe\nflags: P\noffset 0\nmagic 41\n"
    e = parse_entry_file("t", raw)
    assert e.interpreter_bytes == b"/opt/\xff\xfe"
    assert kernel_view(e).encode("utf-8", "surrogateescape") == raw


def test_parse_entry_file_accepts_extra_trailing_lines() -> None:
    """Newer kernels may append lines (bpf ...); the known prefix of an M entry is enough.
    (Not for E: an extension may itself contain newlines.)"""
    e = parse_entry_file("t", "enabled\ninterpreter /x\nflags: \noffset 0\nmagic 41\nbpf 12\n")
    assert (e.type, e.magic, e.mask) == ("M", b"A", None)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("enabled\n", id="truncated"),
        pytest.param("on\ninterpreter /x\nflags: \noffset 0\nmagic 41\n", id="bad-state"),
        pytest.param("enabled\ninterpreter /x\nflags: X\noffset 0\nmagic 41\n", id="bad-flag"),
        pytest.param("enabled\ninterpreter /x\nflags:\noffset 0\nmagic 41\n", id="no-space"),
        pytest.param("enabled\ninterpreter /x\nflags: \noffset -1\nmagic 41\n", id="neg-offset"),
        pytest.param("enabled\ninterpreter /x\nflags: \noffset 0\nmagic 4g\n", id="bad-hex"),
        pytest.param("enabled\r\ninterpreter /x\r\n", id="crlf"),
    ],
)
def test_parse_entry_file_rejects_garbage(text: str) -> None:
    with pytest.raises(EntryParseError, match="not a binfmt_misc entry file"):
        parse_entry_file("t", text)


# -- register strings --------------------------------------------------------------------------------
def test_render_register_canonical_spelling() -> None:
    e = m_entry(name="qemu-arm", magic=b"\x7fELF\x01", mask=b"\xff" * 5, flags="FP")
    assert render_register(e) == (
        b":qemu-arm:M::\\x7fELF\\x01:\\xff\\xff\\xff\\xff\\xff:/bin/true:PF"
    )
    assert render_register(m_entry(offset=4)) == b":t:M:4:BMX1::/bin/true:"
    assert render_register(e_entry()) == b":t:E::foo::/bin/true:"


@pytest.mark.parametrize(
    ("entry", "delimiter"),
    [
        pytest.param(m_entry(), b":", id="default"),
        pytest.param(m_entry(name="a:b"), b",", id="colon-in-name"),
        pytest.param(m_entry(interpreter="/x:y"), b",", id="colon-in-interp"),
        pytest.param(m_entry(name="a:b", interpreter="/x,y"), b"|", id="colon-and-comma"),
        pytest.param(e_entry("a:b"), b",", id="colon-in-extension"),
        pytest.param(m_entry(magic=b":,|"), b":", id="magic-is-escaped-anyway"),
        pytest.param(m_entry(name=":,|!@%^&*=~"), b"+", id="last-resort"),
    ],
)
def test_render_register_delimiter_choice(entry: Entry, delimiter: bytes) -> None:
    assert choose_delimiter(entry) == delimiter
    raw = render_register(entry)
    assert raw[:1] == delimiter
    v = validate(raw + b"\n", K618)
    assert v.valid, v.problems
    assert v.entry == entry


def test_render_register_gives_up_when_every_delimiter_is_used() -> None:
    with pytest.raises(ValueError, match="every usable delimiter"):
        choose_delimiter(m_entry(name=":,|!@%^&*=~+"))


def test_render_register_explicit_delimiter() -> None:
    raw = render_register(m_entry(), delimiter=b"#")
    assert raw == b"#t#M##BMX1##/bin/true#"
    assert validate(raw, K618).entry == m_entry()


def test_parse_register() -> None:
    e = parse_register(":qemu-arm:M::\\x7fELF\\x01:\\xff\\xff\\xff\\xff\\xff:/usr/bin/q:OPF", HOST)
    assert (e.name, e.magic, e.mask, e.flags) == ("qemu-arm", b"\x7fELF\x01", b"\xff" * 5, "POF")
    assert parse_register(b":t:M::BMX1::/bin/true:\n", HOST) == m_entry()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b":t:M::BMX1::/bin/true", "interpreter", id="missing-delimiter"),
        pytest.param(b":t:M:0x1:BMX1::/bin/true:", "offset", id="bad-offset"),
        pytest.param(b":t:X::BMX1::/bin/true:", "type", id="bad-type"),
    ],
)
def test_parse_register_raises_with_kernel_problems(raw: bytes, field: str) -> None:
    with pytest.raises(EntryParseError) as info:
        parse_register(raw, HOST)
    assert info.value.problems
    assert info.value.problems[0].field == field
    assert all(p.errno == "EINVAL" for p in info.value.problems)


# -- binfmt.d (§6) -----------------------------------------------------------------------------------
def test_iter_binfmt_d_lines_like_systemd() -> None:
    text = (
        b"# comment\n"
        b"\n"
        b"  :a:M::BMX1::/bin/true:  \n"
        b"; another comment\n"
        b"\t:b:E::foo::/bin/x:P\r\n"
        b"   # indented comment\n"
        b"   \n"
        b":c:M::BMX3::/bin/true:"
    )
    assert list(iter_binfmt_d_lines(text)) == [
        (3, b":a:M::BMX1::/bin/true:"),
        (5, b":b:E::foo::/bin/x:P"),
        (8, b":c:M::BMX3::/bin/true:"),
    ]


def test_binfmt_d_round_trip() -> None:
    entries = [m_entry(name="a", flags="PF"), e_entry(name="b"), m_entry(name="c:d", offset=3)]
    text = render_binfmt_d(entries, header="generated\nby a test")
    assert text.startswith(b"# generated\n# by a test\n")
    assert text.endswith(b"\n")
    assert parse_binfmt_d(text, HOST) == entries


# -- Debian update-binfmts format --------------------------------------------------------------------
@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(m_entry(), id="M-plain"),
        pytest.param(m_entry(magic=ARM_MAGIC, mask=ARM_MASK, flags="PF"), id="qemu-like"),
        pytest.param(m_entry(offset=7, flags="C"), id="offset-credentials"),
        pytest.param(m_entry(flags="POCF"), id="all-flags"),
        pytest.param(m_entry(magic=b":\\\0"), id="awkward-magic"),
        pytest.param(e_entry("jar", flags="P"), id="E"),
    ],
)
def test_update_binfmts_round_trip(entry: Entry) -> None:
    text = render_update_binfmts(entry, package="pkg")
    assert text.startswith(b"package pkg\n")
    assert parse_update_binfmts(entry.name, text, HOST) == entry


@pytest.mark.parametrize("flags", ["O", "POF"])
def test_update_binfmts_refuses_o_without_c(flags: str) -> None:
    """The format has no key for O alone: rendering it would silently drop O, so it refuses."""
    with pytest.raises(UnrepresentableError) as e:
        render_update_binfmts(m_entry(flags=flags))
    assert "O flag" in str(e.value) and "--format binfmt.d" in str(e.value.fix)


@pytest.mark.parametrize(("flags", "back"), [("OC", "OC"), ("POCF", "POCF"), ("C", "OC")])
def test_update_binfmts_keeps_o_with_c(flags: str, back: str) -> None:
    """credentials yes is C, which implies O in the kernel: O survives the round trip."""
    entry = m_entry(flags=flags)
    assert parse_update_binfmts(entry.name, render_update_binfmts(entry), HOST).flags == back


def test_parse_update_binfmts_keys() -> None:
    text = (
        b"package qemu-user-static\n"
        b"interpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\n"
        b"magic \\x7fELF\\x01\n"
        b"offset 2\n"
        b"mask \\xff\\xff\\xff\\xff\\xfe\n"
        b"credentials no\n"
        b"fix_binary yes\n"
        b"preserve yes\n"
    )
    e = parse_update_binfmts("qemu-arm", text, HOST)
    assert e == m_entry(
        name="qemu-arm",
        interpreter="/usr/libexec/qemu-binfmt/arm-binfmt-P",
        magic=b"\x7fELF\x01",
        mask=b"\xff\xff\xff\xff\xfe",
        offset=2,
        flags="PF",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(b"package p\nmagic BMX1\n", "no 'interpreter'", id="no-interpreter"),
        pytest.param(b"interpreter /x\n", "exactly one of", id="neither"),
        pytest.param(b"interpreter /x\nmagic A\nextension a\n", "exactly one of", id="both"),
    ],
)
def test_parse_update_binfmts_rejects(text: bytes, message: str) -> None:
    with pytest.raises(EntryParseError, match=message):
        parse_update_binfmts("t", text, HOST)


# -- every real file on this machine -------------------------------------------------------------------
BINFMT_D = Path("/usr/lib/binfmt.d")
BINFMTS = Path("/usr/share/binfmts")
CURRENT = KernelProfile.current_default()


def _files(directory: Path, pattern: str) -> list[object]:
    if not directory.is_dir():
        return [
            pytest.param(
                None, marks=pytest.mark.skip(reason=f"{directory} does not exist on this machine")
            )
        ]
    files = sorted(p for p in directory.glob(pattern) if p.is_file())
    return [pytest.param(p, id=p.name) for p in files]


@pytest.mark.parametrize("path", _files(BINFMT_D, "*.conf"))
def test_every_binfmt_d_line_is_accepted(path: Path) -> None:
    rules = list(iter_binfmt_d_lines(path.read_bytes()))
    assert rules, f"{path} has no rule"
    for lineno, rule in rules:
        v = validate(rule + b"\n", CURRENT)  # systemd-binfmt writes a trailing newline
        assert v.valid, (path, lineno, [p.message for p in v.problems])
        assert [p for p in v.problems if p.is_error] == []
        assert v.entry == parse_register(rule, HOST)
        if path.name.startswith("qemu-"):
            # Debian's masks pin class, byte order and machine
            assert "mask.elf-coverage" not in {p.rule for p in v.problems}


@pytest.mark.parametrize("path", _files(BINFMTS, "*"))
def test_every_update_binfmts_file_is_accepted(path: Path) -> None:
    entry = parse_update_binfmts(path.name, path.read_bytes(), HOST)
    assert entry.name == path.name
    v = validate(render_register(entry) + b"\n", CURRENT)
    assert v.valid, [p.message for p in v.problems]
    assert v.entry == entry


def _pairs() -> list[object]:
    for d in (BINFMT_D, BINFMTS):
        if not d.is_dir():
            return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{d} does not exist"))]
    pairs = [
        pytest.param(ub, BINFMT_D / f"{ub.name}.conf", id=ub.name)
        for ub in sorted(BINFMTS.iterdir())
        if (BINFMT_D / f"{ub.name}.conf").is_file()
    ]
    return pairs or [pytest.param(None, None, marks=pytest.mark.skip(reason="no common formats"))]


@pytest.mark.parametrize(("ub_path", "conf_path"), _pairs())
def test_update_binfmts_and_binfmt_d_describe_the_same_format(
    ub_path: Path, conf_path: Path
) -> None:
    ub = parse_update_binfmts(ub_path.name, ub_path.read_bytes(), HOST)
    (bd,) = parse_binfmt_d(conf_path.read_bytes(), HOST)
    assert (bd.name, bd.type, bd.offset, bd.magic, bd.mask, bd.interpreter, bd.extension) == (
        ub.name,
        ub.type,
        ub.offset,
        ub.magic,
        ub.mask,
        ub.interpreter,
        ub.extension,
    )
    if bd.flags != ub.flags:
        # The one real difference: Debian's binfmt.d lines say OPF, but the update-binfmts
        # format has no key for O alone (only credentials=C, which would imply O).
        assert b"credentials no" in ub_path.read_bytes()
        assert set(bd.flags) - set(ub.flags) == {"O"}
        assert normalize_flags(ub.flags + "O") == bd.flags


def test_debian_qemu_arm_flags_differ_only_by_o() -> None:
    ub_path, conf_path = BINFMTS / "qemu-arm", BINFMT_D / "qemu-arm.conf"
    if not (ub_path.is_file() and conf_path.is_file()):
        pytest.skip("Debian's qemu-user-static is not installed")
    assert conf_path.read_bytes().rstrip().endswith(b":OPF")
    assert parse_binfmt_d(conf_path.read_bytes(), HOST)[0].flags == "POF"
    assert parse_update_binfmts("qemu-arm", ub_path.read_bytes(), HOST).flags == "PF"
    (bd,) = parse_binfmt_d(conf_path.read_bytes(), HOST)
    assert (bd.magic, bd.mask) == (ARM_MAGIC, ARM_MASK)
