"""The hand-written scanners that replaced regular expressions on ``binfmtctl validate``'s
path (``re`` costs 7 ms to import on this interpreter: issue 15) take exactly what the
regular expressions took: each is driven side by side with the expression it replaced."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from binfmtctl import fastpath
from binfmtctl.grammar import is_bare_hex, kstrtoint_parts
from binfmtctl.kernelprofile import KernelProfile

#: characters that matter to the patterns: ASCII and other digits, whitespace, signs
TEXT = st.text(alphabet=st.sampled_from("0123456789.+- \t\n\x0b\x1c\u00a0\u2003٣߂a-xX\x00"))
BYTES = st.binary(max_size=8) | st.lists(
    st.sampled_from(b"0123456789abcdefABCDEFgG+-\n \x00"), max_size=10
).map(bytes)


def old_parse(text: str) -> tuple[int, int] | None:
    m = re.match(r"^\s*(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


@given(TEXT)
@example("6.18.44-fc")
@example(" 4.4.0-210-generic")
@example("\u2003٣.٣")  # Unicode space and Arabic-Indic digits: \s and \d of a str pattern
@example("6.")
@example(".6")
@example("6..1")
def test_kernel_versions_are_parsed_as_the_regex_did(text: str) -> None:
    want = old_parse(text)
    try:
        got: tuple[int, int] | None = KernelProfile.parse(text).version
    except ValueError as e:
        assert str(e) == f"not a kernel version: {text!r} (expected X.Y, e.g. 5.10)"
        got = None
    assert got == want


@given(BYTES)
@example(b"7f454c46")
@example(b"7f45")
@example(b"7f4")
@example(b"7f")
@example(b"7f454c46\n")
def test_bare_hex_is_what_the_regex_took(raw: bytes) -> None:
    assert is_bare_hex(raw) is (re.fullmatch(rb"(?:[0-9a-fA-F]{2}){2,}", raw) is not None)


@given(BYTES)
@example(b"+12\n")
@example(b"-0")
@example(b"12\n\n")
@example(b"\n")
@example(b"+")
@example(b"+-1")
def test_offsets_are_what_kstrtoint_regex_took(raw: bytes) -> None:
    m = re.fullmatch(rb"([+-]?)(\d+)\n?", raw)
    assert kstrtoint_parts(raw) == (None if m is None else (m.group(1), m.group(2)))


ANSI = st.text(alphabet=st.sampled_from("\x1b[[0;9?:<@A~m ,/x\x7f\n"), max_size=14)


@given(ANSI)
@example("a\x1b[31mb\x1b[0m")
@example("\x1b[\x1b[1m")
@example("\x1b[1;")
@example("\x1b\x1b[m")
def test_escape_sequences_are_removed_as_click_removes_them(text: str) -> None:
    import click

    assert fastpath.styled(text, None, tty=False) == click.unstyle(text)
