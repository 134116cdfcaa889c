"""Differential test: ``validate`` against the running kernel, with no exceptions list.

Hypothesis generates register strings that stress every field; each is written
for real to ``register`` of a private binfmt_misc (tests/oracle_worker.py,
inside a user namespace). ``validate`` must agree with the kernel on
accept/reject, on the errno, and on ``kernel_view`` versus the entry file read
back. A batch of its own checks the outcome mix, so a generator that drifts towards
all-invalid input is caught.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binfmtctl import sandbox as sb
from binfmtctl.binfmt_misc import open_exec_errno
from binfmtctl.entry import kernel_view, render_register
from binfmtctl.rules import KernelProfile, validate
from tests.conftest import require_sandbox

HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("BINFMTCTL_DIFF_EXAMPLES", "2500"))


class Oracle:
    def __init__(self, box: sb.Sandbox, cwd: str) -> None:
        self.proc = box.popen(
            [sys.executable, str(HERE / "oracle_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
        )
        assert json.loads(self._readline()) == {"ready": True}

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("oracle worker died")
        return line.decode()

    def ask(self, data: bytes) -> dict[str, str | None]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data.hex().encode() + b"\n")
        self.proc.stdin.flush()
        out: dict[str, str | None] = json.loads(self._readline())
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Interpreter fixtures for the F flag, and the oracle's cwd (relative paths)."""
    d = tmp_path_factory.mktemp("oracle")
    os.chmod(d, 0o755)
    (d / "notexec").write_bytes(b"#!/bin/sh\n")
    os.chmod(d / "notexec", 0o644)
    (d / "exec").write_bytes(b"#!/bin/sh\n")
    os.chmod(d / "exec", 0o755)
    (d / "bin").mkdir()
    os.symlink("/bin/true", d / "bin" / "true")
    return d


@pytest.fixture(scope="module")
def oracle(sandbox_reason: tuple[str, str] | None, workdir: Path) -> Iterator[Oracle]:
    require_sandbox(sandbox_reason)
    with sb.Sandbox() as box:
        o = Oracle(box, str(workdir))
        yield o
        o.close()


# -- the generator ------------------------------------------------------------------------------
HEX = "0123456789abcdefABCDEF"
names = st.one_of(
    st.sampled_from(
        [
            "t",
            "qemu-aarch64",
            "a b",
            "...",
            "-x",
            "\u00e9t\u00e9",
            "existing",
            "register",
            "status",
            "",
            ".",
            "..",
            "a/b",
            "x" * 255,
            "x" * 256,
            "a\nb",
        ]
    ),
    st.text(alphabet="abcXYZ019._-+ ", min_size=1, max_size=12),
).map(lambda s: s.encode())
types = st.sampled_from([b"M"] * 6 + [b"E"] * 2 + [b"m", b"e", b"X", b"", b"MM", b" M", b"ME"])
offsets = st.one_of(
    st.sampled_from(
        [
            b"",
            b"",
            b"0",
            b"010",
            b"+5",
            b"+0",
            b"-0",
            b"5\n",
            b"-1",
            b" 5",
            b"5 ",
            b"0x10",
            b"1e2",
            b"abc",
            b"+",
            b"\n",
            b"2147483648",
            b"99999999999999999999",
            b"00000000000000000000000005",
            b"--1",
            b"+-1",
            b"-+1",
        ]
    ),
    st.integers(min_value=0, max_value=300).map(lambda i: str(i).encode()),
    st.integers(min_value=240, max_value=260).map(lambda i: str(i).encode()),
)
escape = st.one_of(
    st.integers(0, 255).map(lambda b: f"\\x{b:02x}".encode()),
    st.integers(0, 255).map(lambda b: f"\\x{b:02X}".encode()),
    st.sampled_from(
        [
            b"\\x7",
            b"\\x7g",
            b"\\xg7",
            b"\\x",
            b"\\X41",
            b"\\n",
            b"\\t",
            b"\\0",
            b"\\\\",
            b"\\\\x41",
            b"\\x5cx41",
            b"\\",
        ]
    ),
)
raw_byte = st.integers(1, 255).map(lambda b: bytes((b,)))
magic_piece = st.one_of(
    escape, escape, raw_byte, st.sampled_from([b"BMX", b"ELF", b"\0", b"A", b"7f454c46"])
)
magics = st.one_of(
    st.lists(magic_piece, min_size=0, max_size=8).map(b"".join),
    st.integers(1, 260).map(lambda n: b"A" * n),
    st.integers(60, 70).map(lambda n: b"\\xff" * n),
)
masks = st.one_of(st.just(b""), st.just(b""), magics)
interpreters = st.sampled_from(
    [
        b"/bin/true",
        b"/bin/true",
        b"/nonexistent",
        b"/tmp",
        b"true",
        b"bin/true",
        b"relative/path",
        b"exec",
        b"notexec",
        b"/bin/true/x",
        b"/bin/true --flag",
        b"",
        b"/etc/hostname",
        b"/x" * 700,
    ]
)
flag_sets = st.one_of(
    st.text(alphabet="POCF", max_size=4).map(str.encode),
    st.sampled_from([b"p", b"X", b"PX", b"P ", b"PFx", b"B", b"T", b"\r", b"f", b"\0"]),
)
tails = st.sampled_from([b"\n"] * 6 + [b""] * 3 + [b"\n\n", b"\r\n", b":", b":\n", b"\0", b" "])
delims = st.sampled_from(
    [b":"] * 12
    + [
        b",",
        b"|",
        b"#",
        b" ",
        b"\t",
        b"\x01",
        b"\xff",
        b"\0",
        b".",
        b"x",
        b"E",
        b"\\",
        b"\n",
        b"P",
        b"F",
        b"M",
        b"1",
        b"/",
    ]
)


good_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=2, max_size=20
).map(str.encode)
good_magics = st.lists(
    escape.filter(lambda b: len(b) == 4 and b[2:3] in b"0123456789abcdefABCDEF"),
    min_size=1,
    max_size=24,
).map(b"".join)
good_interp = st.sampled_from(
    [
        b"/bin/true",
        b"/nonexistent",
        b"/tmp",
        b"true",
        b"bin/true",
        b"exec",
        b"notexec",
        b"/bin/true/x",
    ]
)
good_flags = st.text(alphabet="POCF", max_size=4).map(str.encode)


@st.composite
def register_strings(draw: st.DrawFn) -> bytes:
    """Mostly well-formed strings with a few fields swapped for wild ones, so that
    both the accept paths (and F's errno) and each reject path are exercised."""
    if draw(st.integers(0, 40)) == 0:
        return draw(st.binary(max_size=40))
    if draw(st.integers(0, 30)) == 0:  # around the length limit
        target = draw(st.sampled_from([1919, 1920, 1921]))
        body = b":long:E::ext::/" + b"x" * target
        return body[: target - 2] + b":\n"  # exactly `target` bytes, newline included
    wild = draw(st.integers(0, 3))  # how many fields are drawn from the wild pools
    pick = set(draw(st.lists(st.integers(0, 8), min_size=wild, max_size=wild)))
    d = draw(delims) if 0 in pick else b":"
    etype = draw(types) if 1 in pick else draw(st.sampled_from([b"M", b"M", b"M", b"E"]))
    name = (
        draw(names)
        if 2 in pick
        else draw(st.one_of(good_names, st.sampled_from([b"existing", b"x" * 255, b"x" * 256])))
    )
    offset = draw(offsets) if 3 in pick else draw(st.sampled_from([b"", b"0", b"4", b"+2"]))
    magic = draw(magics) if 4 in pick else draw(good_magics)
    if 5 in pick:
        mask = draw(masks)
    else:
        mask = draw(st.sampled_from([b"", b"same"]))
        if mask == b"same":
            mask = b"".join(
                draw(escape.filter(lambda b: len(b) == 4 and b[2:3] in b"0123456789abcdef"))
                for _ in range(len(magic) // 4)
            )
    interp = draw(interpreters) if 6 in pick else draw(good_interp)
    flags = draw(flag_sets) if 7 in pick else draw(good_flags)
    tail = draw(tails) if 8 in pick else b"\n"
    missing_last = draw(st.integers(0, 40)) == 0
    fields = [name, etype, offset, magic, mask, interp]
    return d + d.join(fields) + (b"" if missing_last else d) + flags + tail


@pytest.mark.sandbox
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
@given(data=register_strings())
def test_validate_agrees_with_kernel(oracle: Oracle, workdir: Path, data: bytes) -> None:
    got = oracle.ask(data)
    cwd = os.getcwd()
    os.chdir(workdir)  # F resolves relative interpreters against the writer's cwd
    try:
        verdict = validate(
            data,
            KernelProfile.current_default(),
            existing_names=["existing"],
            exec_check=open_exec_errno,
        )
    finally:
        os.chdir(cwd)
    assert verdict.errno == got["errno"], (data, verdict.problems)
    if got["errno"] is None:
        assert verdict.entry is not None
        assert got["name"] == verdict.entry.name_bytes.hex()
        assert got["entry"] is not None
        assert os.fsencode(kernel_view(verdict.entry)) == bytes.fromhex(got["entry"]), data
        # the canonical rendering registers to the very same entry
        if verdict.entry.name != "existing":
            again = oracle.ask(render_register(verdict.entry) + b"\n")
            assert again["errno"] is None and again["entry"] == got["entry"], (data, again)


MIX_EXAMPLES = 600


@pytest.mark.sandbox
def test_outcome_mix_is_broad(oracle: Oracle) -> None:
    """The generator must hit many kernel paths: its own batch, asked of the kernel here
    (not counts left behind by another test, which a run of this test alone would lack)."""
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=MIX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=register_strings())
    def sample(data: bytes) -> None:
        outcomes[str(oracle.ask(data)["errno"])] += 1

    sample()
    assert sum(outcomes.values()) >= MIX_EXAMPLES // 2, outcomes
    for errno in ("None", "EINVAL", "EEXIST", "ENOENT", "EACCES", "ENAMETOOLONG"):
        assert outcomes[errno] > 0, (errno, outcomes)
    assert outcomes["None"] >= sum(outcomes.values()) // 10, outcomes


def test_fixture_modes(workdir: Path) -> None:
    assert stat.S_IMODE(os.stat(workdir / "notexec").st_mode) == 0o644
