"""Bad input never produces a traceback: a clear message and exit 1 or 2."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

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
