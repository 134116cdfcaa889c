"""The one renderer: JSON from a report's fields, text by registered type, exit from the report."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from binfmtctl.cli.render import Out, emit, jsonable, text_renderer
from binfmtctl.record import dataclass, field


class Kind(enum.Enum):
    ADD = "add"


@dataclass(frozen=True)
class Row:
    name: str
    kind: Kind
    raw: bytes
    path: Path
    secret: str = field(default="x", metadata={"json": False})


@dataclass(frozen=True)
class Report:
    rows: tuple[Row, ...]
    problems: int

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


@dataclass(frozen=True)
class SubReport(Report):
    pass


@text_renderer(Report)
def _text(r: Report, out: Out) -> None:
    for row in r.rows:
        out.line(f"{row.name} {row.kind.value}")
    if r.problems:
        out.warning(f"{r.problems} problem(s)")


def _report(problems: int, cls: type[Report] = Report) -> Report:
    return cls((Row("qemu-arm", Kind.ADD, b"\x7fELF\xff", Path("/usr/bin/q")),), problems)


def test_jsonable_derives_from_fields() -> None:
    assert jsonable(_report(0)) == {
        "rows": [{"name": "qemu-arm", "kind": "add", "raw": "\x7fELF\\xff", "path": "/usr/bin/q"}],
        "problems": 0,
    }


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("problems", [0, 2])
def test_emit_exits_alike_in_text_and_json(as_json: bool, problems: int) -> None:
    @click.command()
    def cmd() -> None:
        emit(_report(problems, SubReport), as_json=as_json)

    res = CliRunner().invoke(cmd)
    assert res.exit_code == (1 if problems else 0)
    if as_json:
        assert json.loads(res.stdout)["problems"] == problems
    else:
        assert res.stdout.splitlines()[0] == "qemu-arm add"  # found through the subclass's MRO


def test_unregistered_report_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="no text renderer for Row"):
        emit(Row("a", Kind.ADD, b"", Path("/")))
