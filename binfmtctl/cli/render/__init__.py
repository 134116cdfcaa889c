"""One renderer: every command's report is printed here, as text or as JSON.

A use case (in the core) returns a *report*: a dataclass (or a plain value) that knows
nothing of click. A click command hands it to :func:`emit`, which prints

- ``--json``: :func:`jsonable` of the report, derived from its fields (a type may define
  ``to_json()`` where the contract in ``shared/design.md`` names its keys differently);
- text: the renderer registered for the report's type with :func:`text_renderer`; the
  renderers live in the modules of this package, one per family of commands, and write
  through :class:`Out`, so colour, ``--no-color``/``NO_COLOR`` and stderr are decided once.

The exit status is the report's ``exit_code`` (0 when it has none): the command chooses
nothing by itself, so text and JSON always exit alike.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from binfmtctl import record

T = TypeVar("T")
TextRenderer = Callable[[Any, "Out"], None]
_TEXT: dict[type, TextRenderer] = {}


def text_renderer(kind: type[T]) -> Callable[[Callable[[T, Out], None]], Callable[[T, Out], None]]:
    """Register the text rendering of reports of type ``kind`` (and its subclasses)."""

    def register(fn: Callable[[T, Out], None]) -> Callable[[T, Out], None]:
        _TEXT[kind] = fn
        return fn

    return register


def jsonable(obj: Any) -> Any:
    """The JSON form of a report, from its fields: dataclasses become objects (fields whose
    metadata says ``json=False`` are left out), enums their value, bytes text, paths str."""
    to_json = getattr(obj, "to_json", None)
    if callable(to_json) and not isinstance(obj, type):
        return jsonable(to_json())
    if record.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: jsonable(getattr(obj, f.name))
            for f in record.fields(obj)
            if f.metadata.get("json", True)
        }
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


class Out:
    """Where text goes: stdout or stderr, with colour only where the user allows it."""

    def line(
        self, text: str = "", *, fg: str | None = None, bold: bool = False, err: bool = False
    ) -> None:
        if fg is None and not bold:
            click.echo(text, err=err)
        else:
            # bold=False would add an SGR 22 code: pass it only when set (as plain secho)
            click.secho(text, fg=fg, bold=bold or None, err=err)

    def raw(self, data: bytes) -> None:
        """Bytes to stdout as they are (an export in a file format)."""
        sys.stdout.buffer.write(data)
        sys.stdout.flush()

    def note(self, text: str) -> None:
        self.line(f"note: {text}", err=True)

    def warning(self, text: str) -> None:
        self.line(f"warning: {text}", fg="yellow", err=True)

    def fix(self, text: str, *, indent: str = "  ", err: bool = False) -> None:
        self.line(f"{indent}fix: {text}", err=err)


def render_text(report: Any, out: Out | None = None) -> None:
    out = out or Out()
    for kind in type(report).__mro__:
        fn = _TEXT.get(kind)
        if fn is not None:
            fn(report, out)
            return
    raise TypeError(f"no text renderer for {type(report).__name__}")


def render_json(report: Any) -> None:
    click.echo(json.dumps(jsonable(report), indent=2, ensure_ascii=False))


def exit_code(report: Any) -> int:
    code = getattr(report, "exit_code", 0)
    return int(code() if callable(code) else code)


def emit(report: Any, *, as_json: bool = False) -> None:
    """Print ``report`` (text or JSON) and exit with its status when that is not 0."""
    if as_json:
        render_json(report)
    else:
        render_text(report)
    code = exit_code(report)
    if code:
        raise SystemExit(code)
