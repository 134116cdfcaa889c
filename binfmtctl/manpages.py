"""Man pages from the click definitions: ``binfmtctl(1)`` and one page per command.

The pages say what ``--help`` says (the same docstrings and option help, walked through
click's own Context and parameters), so they cannot drift apart: the committed ``man/``
directory is regenerated with ``python -m binfmtctl.manpages man`` and a test fails when
it is not current. The wheel ships them as data (``share/man/man1``).

:func:`pages` is pure (click objects in, troff text out); :func:`write` is the edge.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence

import click

SECTION = "1"


def _esc(text: str) -> str:
    """troff-safe text: backslashes doubled, hyphens as minus signs in option names, and a
    line starting with . or ' protected."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out[:1] in (".", "'") else out


def _paragraphs(help_text: str) -> list[str]:
    """click's help text as troff: blank-line paragraphs, ``\\b`` blocks kept verbatim."""
    lines: list[str] = []
    blocks = [b for b in help_text.strip("\n").split("\n\n")]
    for block in blocks:
        raw = block.split("\n")
        if raw and raw[0].strip() == "\b":
            lines.append(".PP")
            lines.append(".nf")
            base = min(
                (len(r) - len(r.lstrip()) for r in raw[1:] if r.strip()),
                default=0,
            )
            lines.extend(_esc(r[base:]) if r.strip() else "" for r in raw[1:])
            lines.append(".fi")
        else:
            text = " ".join(r.strip() for r in raw if r.strip())
            if text:
                lines.append(".PP")
                lines.append(_esc(text))
    return lines


def commands(
    group: click.Group, ctx: click.Context, path: Sequence[str] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    """Every visible command under ``group``, depth first, in ``--help`` order."""
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, parent=ctx, info_name=name, **cmd.context_settings)
        yield (*path, name), cmd, sub
        if isinstance(cmd, click.Group):
            yield from commands(cmd, sub, (*path, name))


def page_name(path: Sequence[str]) -> str:
    """``binfmtctl``, ``binfmtctl-status``, ``binfmtctl-persist-add``."""
    return "-".join(("binfmtctl", *path))


def render(path: Sequence[str], cmd: click.Command, ctx: click.Context) -> str:
    """One man page, from what ``--help`` shows."""
    name = page_name(path)
    title = " ".join(("binfmtctl", *path))
    short = cmd.get_short_help_str(limit=200)
    out = [
        f'.TH "{name.upper()}" "{SECTION}" "" "binfmtctl" "User Commands"',
        ".SH NAME",
        f"{_esc(name)} \\- {_esc(short)}",
        ".SH SYNOPSIS",
        f"\\fB{_esc(title)}\\fR {_esc(' '.join(cmd.collect_usage_pieces(ctx)))}",
        ".SH DESCRIPTION",
        *_paragraphs(cmd.help or ""),
    ]
    records = [
        r
        for p in cmd.get_params(ctx)
        if isinstance(p, click.Option) and (r := p.get_help_record(ctx)) is not None
    ]
    if records:
        out.append(".SH OPTIONS")
        for opts, text in records:
            out += [".TP", f"\\fB{_esc(opts)}\\fR", _esc(text)]
    if isinstance(cmd, click.Group):
        out.append(".SH COMMANDS")
        for sub_path, sub, _ in commands(cmd, ctx, tuple(path)):
            if len(sub_path) == len(path) + 1:
                out += [
                    ".TP",
                    f"\\fB{_esc(sub_path[-1])}\\fR",
                    f"{_esc(sub.get_short_help_str(limit=200))} See \\fB{page_name(sub_path)}\\fR(1).",
                ]
    if cmd.epilog:  # the examples (binfmtctl.cli.common.examples_last put them there)
        text = cmd.epilog.replace("\b\nExamples:\n", "\b\n", 1)
        out += [".SH EXAMPLES", *_paragraphs(text)]
    out += [
        ".SH SEE ALSO",
        "\\fBbinfmtctl\\fR(1)" if path else "\\fBbinfmt_misc\\fR (Linux kernel documentation)",
    ]
    return "\n".join(out) + "\n"


def pages(main: click.Group) -> dict[str, str]:
    """file name -> troff text, for ``main`` and every visible command under it."""
    ctx = click.Context(main, info_name="binfmtctl", **main.context_settings)
    found = {f"binfmtctl.{SECTION}": render((), main, ctx)}
    for path, cmd, sub in commands(main, ctx):
        found[f"{page_name(path)}.{SECTION}"] = render(path, cmd, sub)
    return found


def write(directory: str) -> list[str]:
    """Write every page into ``directory`` (stale pages there removed); the names written."""
    from binfmtctl.cli import main

    os.makedirs(directory, exist_ok=True)
    want = pages(main)
    for old in os.listdir(directory):
        if old.endswith(f".{SECTION}") and old not in want:
            os.unlink(os.path.join(directory, old))
    for fname, text in want.items():
        tmp = os.path.join(directory, f".{fname}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(directory, fname))
    return sorted(want)


if __name__ == "__main__":  # python -m binfmtctl.manpages DIR
    written = write(sys.argv[1] if len(sys.argv) > 1 else "man")
    print(f"wrote {len(written)} man pages")
