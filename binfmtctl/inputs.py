"""Reading untrusted input with bounds: binfmt.d lines of bounded length, JSON of bounded
depth and valid Unicode. What cannot be read is a UsageError naming the place."""

from __future__ import annotations

import sys

from binfmtctl.entry import binfmt_d_rule
from binfmtctl.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `binfmtctl validate` imports no collections, typing
    from collections.abc import Iterator
    from typing import IO, Any

#: the most any kernel accepts in one register write (MAX_REGISTER_LENGTH)
REGISTER_LIMIT = 1920
#: JSON deeper than this is not an export file
MAX_JSON_DEPTH = 64


class LongLine(bytes):
    """The first bytes of a line longer than any register string; ``full_length`` is
    how long the whole line was (counted while skipping it, never held)."""

    full_length: int

    def __new__(cls, prefix: bytes, full_length: int) -> LongLine:
        obj = super().__new__(cls, prefix)
        obj.full_length = full_length
        return obj


def as_written(raw: bytes) -> bytes:
    """``raw`` plus the newline echo and systemd-binfmt add (a LongLine stays one)."""
    if isinstance(raw, LongLine):
        return LongLine(raw + b"\n", raw.full_length + 1)
    return raw + b"\n"


def binfmt_d_lines(f: IO[bytes], limit: int = REGISTER_LIMIT) -> Iterator[tuple[int, bytes]]:
    """(line number, rule) of a binfmt.d stream, as :func:`entry.iter_binfmt_d_lines`, but
    never holding more than ``limit`` bytes of a line: the rest of a longer one is
    skipped and counted, and the rule is a :class:`LongLine` (which the kernel refuses)."""
    lineno = 0
    while True:
        line = f.readline(limit + 2)
        if not line:
            return
        lineno += 1
        if len(line) > limit and not line.endswith(b"\n"):
            total = len(line)
            while True:
                chunk = f.readline(1 << 16)
                total += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield lineno, LongLine(line[: limit + 1], total - 1 if chunk.endswith(b"\n") else total)
            continue
        rule = binfmt_d_rule(line)
        if rule is not None:
            yield lineno, rule


def read_binfmt_d(path: str, limit: int = REGISTER_LIMIT) -> list[tuple[int, bytes]]:
    """The rules of a binfmt.d file (``-`` = stdin), bounded per line."""
    if path == "-":
        return list(binfmt_d_lines(sys.stdin.buffer, limit))
    try:
        with open(path, "rb") as f:
            return list(binfmt_d_lines(f, limit))
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def json_depth_ok(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Is every array/object nested at most ``max_depth`` deep? One linear pass, strings
    skipped (brackets inside them do not count)."""
    depth = 0
    in_str = esc = False
    for c in data:
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return False
        elif c in (0x5D, 0x7D):
            depth -= 1
    return True


def _check_text(value: Any) -> None:
    """Every string encodable as UTF-8 (JSON's \\ud800 escapes decode to lone surrogates)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            v.encode("utf-8")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def load_json(data: bytes, name: str) -> Any:
    """JSON from untrusted bytes: UsageError (exit 2) if too deep, not UTF-8 text, not
    JSON, or holding a lone surrogate; never RecursionError or UnicodeEncodeError."""
    if not json_depth_ok(data):
        raise UsageError(
            f"{name}: JSON nested deeper than {MAX_JSON_DEPTH} levels; not an export file",
            fix="import a file written by `binfmtctl export --format json`",
        )
    try:
        import json

        doc = json.loads(data.decode("utf-8"))
        _check_text(doc)
    except UnicodeError:
        raise UsageError(
            f"{name}: not valid Unicode text (invalid UTF-8, or a \\ud800-style lone surrogate)",
            fix="import a file written by `binfmtctl export --format json`",
        ) from None
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{name}: not JSON ({e})", fix="check the file") from None
    return doc
