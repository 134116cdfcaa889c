"""Bad input never produces a traceback: a clear message and exit 1 or 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from binfmtctl import rules
from binfmtctl.cli import main


def run(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "binfmtctl", *args], input=stdin, capture_output=True, check=False
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_validate_random_bytes_from_stdin(data: bytes) -> None:
    r = CliRunner().invoke(main, ["validate", "-f", "-", "--json"], input=data)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code in (0, 1, 2)
    if r.exit_code in (0, 1):
        out = json.loads(r.stdout)
        assert isinstance(out, list)
        assert all(set(o) >= {"input", "valid", "errno", "problems", "kernel_view"} for o in out)


def test_empty_input_is_a_usage_error() -> None:
    r = run(["validate", "-f", "-"], stdin=b"")
    assert r.returncode == 2 and b"nothing to validate" in r.stderr and b"Traceback" not in r.stderr


def test_huge_line_and_invalid_utf8() -> None:
    r = run(
        ["validate", "-f", "-", "--json"], stdin=b":x:M::" + b"\xff" * 1_000_000 + b"::/bin/true:\n"
    )
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    out = json.loads(r.stdout)
    assert out[0]["errno"] == "EINVAL" and out[0]["problems"][0]["field"] == "length"


def test_unreadable_file_and_bad_kernel_are_usage_errors(tmp_path: object) -> None:
    r = run(["validate", "-f", "/no/such/file"])
    assert r.returncode == 2 and b"cannot read /no/such/file" in r.stderr
    r = run(["validate", "--kernel", "banana", ":t:M::BM::/bin/true:"])
    assert r.returncode == 2 and b"not a kernel version" in r.stderr
    r = run(["bogus-command"])
    assert r.returncode == 2


def test_validate_exit_codes_and_json_order() -> None:
    good, bad = ":t:M::BMX1::/bin/true:", ":t:X::BMX1::/bin/true:"
    r = run(["validate", good])
    assert r.returncode == 0
    r = run(["validate", "--json", good, bad, good])
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert [o["valid"] for o in out] == [True, False, True]
    assert (
        out[0]["kernel_view"]
        == "enabled\ninterpreter /bin/true\nflags: \noffset 0\nmagic 424d5831\n"
    )
    assert out[1]["problems"][0]["field"] == "type"


def test_kernel_44_rejects_f_and_explains() -> None:
    r = run(
        [
            "validate",
            "--kernel",
            "4.4",
            "--json",
            ":qemu-arm:M:0:7f454c4601010100:ffffffffffffff00:/usr/bin/qemu-arm:OCF",
        ]
    )
    out = json.loads(r.stdout)[0]
    assert r.returncode == 1 and out["errno"] == "EINVAL"
    rules = {p["rule"] for p in out["problems"]}
    assert {"magic.bare-hex", "mask.bare-hex", "flags.invalid"} <= rules


# An ELF magic at offset 0 whose mask decodes shorter than the magic (the kernel refuses it):
# ``rules._warn_elf_coverage`` once indexed past the mask and killed the whole batch.
AARCH64_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
SHORT_MASKS = [
    f":..:M::{AARCH64_MAGIC}:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\\\:xff\\xff:/bin/true:",
    f":a:M:-1:{AARCH64_MAGIC}:x00:/bin/true:",
    f":a:M::{AARCH64_MAGIC}:x00:/bin/true:",
    f":a:M::{AARCH64_MAGIC}:\\xff:/bin/true:",
]


def test_a_mask_shorter_than_an_elf_magic_is_judged_not_crashed(tmp_path: Path) -> None:
    f = tmp_path / "lines.conf"
    f.write_text("\n".join([":ok1:E::zz1::/bin/true:", *SHORT_MASKS, ":ok2:E::zz2::/bin/true:"]))
    r = run(["validate", "-f", str(f)])
    out = r.stdout.decode()
    assert b"internal error" not in r.stderr and r.returncode == 1, r.stderr
    assert out.count("INVALID (EINVAL)") == len(SHORT_MASKS)
    assert "ok  :ok1:" in out and "ok  :ok2:" in out
    verdicts = json.loads(run(["validate", "--json", "-f", str(f)]).stdout)
    assert [v["valid"] for v in verdicts] == [True, *[False] * len(SHORT_MASKS), True]
    assert all(any(p["rule"] == "mask.length" for p in v["problems"]) for v in verdicts[1:-1]), (
        verdicts
    )


def test_one_line_failing_inside_binfmtctl_does_not_hide_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Per-line containment: whatever goes wrong judging one line, every other line gets
    its verdict, and that line says it was not judged (exit 1, no traceback)."""
    real = rules.validate

    def flaky(raw: bytes, *args: Any, **kwargs: Any) -> rules.Verdict:
        if b"boom" in raw:
            raise IndexError("index out of range")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(rules, "validate", flaky)
    lines = ":a:E::aa::/bin/true:\n:boom:E::bb::/bin/true:\n:c:E::cc::/bin/true:\n"
    r = CliRunner().invoke(main, ["validate", "-f", "-"], input=lines)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == 1
    assert "ok  :a:E::aa::/bin/true:" in r.stdout and "ok  :c:E::cc::/bin/true:" in r.stdout
    assert "UNJUDGED  :boom:E::bb::/bin/true:" in r.stdout
    assert "internal error IndexError: index out of range" in r.stdout
    r = CliRunner().invoke(main, ["validate", "--json", "-f", "-"], input=lines)
    data = json.loads(r.stdout)
    assert [v["valid"] for v in data] == [True, False, True]
    assert data[1]["internal_error"] == "IndexError: index out of range"
    assert data[1]["errno"] is None


def test_empty_register_string_message() -> None:
    r = run(["validate", ""])
    assert r.returncode == 1
    assert b"the register string is empty" in r.stdout
    assert b"the delimiter a newline" not in r.stdout
    r = run(["validate", ":a:M::ab"])
    assert b"is missing after it" in r.stdout and b"the delimiter ':' after" not in r.stdout


def test_the_bare_hex_fix_is_whole_in_text_and_json() -> None:
    magic = "7f454c460201010000000000000000000200b700"
    line = f":qemu-aarch64:M::{magic}::/bin/true:"
    whole = "".join(f"\\x{magic[i : i + 2]}" for i in range(0, len(magic), 2))
    r = run(["validate", line])
    assert f"fix: write each byte as \\xHH: {whole}\n" in r.stdout.decode()
    fixes = [p["fix"] for p in json.loads(run(["validate", "--json", line]).stdout)[0]["problems"]]
    assert f"write each byte as \\xHH: {whole}" in fixes
    assert not any("..." in f for f in fixes)
