"""Shared pieces of the command line: output helpers, input reading, batch validation, safety checks."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from binfmtctl.cli.scope import scoped as scoped  # the fix-line scoping commands import from here
from binfmtctl.errors import BinfmtctlError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def fail(message: str, fix: str | None = None) -> NoReturn:
    raise BinfmtctlError(message, fix=scoped(fix) if fix else fix)


class Ctx:
    def __init__(self, mount: str | None) -> None:
        self.mount = mount

    def bm(self, profile: Any = None) -> Any:
        from binfmtctl.binfmt_misc import BinfmtMisc

        return BinfmtMisc(self.mount, profile=profile)


pass_ctx = click.make_pass_decorator(Ctx)


def read_sourced(entries: Sequence[str], file: str | None) -> list[tuple[str, bytes]]:
    """(where, register string) from argv and/or a file (``-`` = stdin): ``argument N``
    or ``FILE:LINE``. The file is read as binfmt.d by the one parser
    (:func:`entry.binfmt_d_rule`: surrounding whitespace stripped, blank lines and
    ``#``/``;`` comments skipped), each line bounded."""
    from binfmtctl.inputs import read_binfmt_d

    out = [(f"argument {i}", os.fsencode(e)) for i, e in enumerate(entries, start=1)]
    if file is not None:
        name = "<stdin>" if file == "-" else file
        out += [(f"{name}:{n}", rule) for n, rule in read_binfmt_d(file)]
    return out


def read_inputs(entries: Sequence[str], file: str | None) -> list[bytes]:
    """Register strings from argv and/or a file, as bytes (see :func:`read_sourced`)."""
    return [raw for _, raw in read_sourced(entries, file)]


def _open_for_read(obj: Ctx) -> Any:
    """The live table for a read command: it must be mounted already (reads never mount)."""
    bm = obj.bm()
    bm.require_mounted()
    return bm


def _checked(verdict: Any) -> None:
    """Print a check's verdict (binfmtctl.admission) and stop with its refusal, if any."""
    from binfmtctl.cli.render import admission as _texts  # noqa: F401  (the renderers)
    from binfmtctl.cli.render import render_text

    render_text(verdict)
    refusal = verdict.error()
    if refusal is not None:
        fail(*refusal)


def _parse_batch(
    raws: Sequence[bytes], profile: Any, where: Sequence[str] | None = None
) -> list[Any]:
    """Validate every input before anything is written; all errors at once."""
    from binfmtctl.admission import parse_batch

    batch = parse_batch(raws, profile, where)
    _checked(batch)
    return list(batch.entries)


def _safety(entries: Sequence[Any], force: bool, *, private: bool = False) -> None:
    """Refuse (unless ``force``) entries that hijack native programs or give C/O to an
    interpreter a non-root user controls; warn about other untrusted interpreters."""
    from binfmtctl.admission import judge_safety

    _checked(judge_safety(entries, force, private=private))


def report_actions(actions: Sequence[Any], dry_run: bool) -> None:
    from binfmtctl.cli.render import Out
    from binfmtctl.cli.render.changes import actions as actions_text

    actions_text(Out(), actions, dry_run)


def scope_note() -> None:
    """Say it plainly when the table written is private to a user namespace."""
    from binfmtctl.cli.render.changes import SCOPE_NOTE
    from binfmtctl.userns import in_initial_user_namespace

    if not in_initial_user_namespace():
        click.echo(f"note: {SCOPE_NOTE}", err=True)


def finish(report: Any, as_json: bool = False) -> None:
    """Print a write command's report, then stop as it stopped: its refusal (exit 1, the
    fix scoped to this command line) or the error a kernel write failed with."""
    from binfmtctl.cli.render import changes as _texts  # noqa: F401  (the renderers)
    from binfmtctl.cli.render import emit

    emit(report, as_json=as_json)
    if report.failure is not None:
        raise report.failure
    if report.refusal is not None:
        fail(*report.refusal)


def _config_option(f: Any) -> Any:
    return click.option(
        "--config",
        "config",
        envvar="BINFMTCTL_CONFIG",
        metavar="FILE",
        help="binfmtctl's config [env BINFMTCTL_CONFIG; default /etc/binfmt.d/zz-binfmtctl.conf].",
    )(f)


def _root_option(f: Any) -> Any:
    return click.option(
        "--root",
        "root",
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Work on the offline system image at DIR (as systemctl --root): no systemctl, no live table.",
    )(f)


#: ``-f/--file`` for commands that take register strings from a file or stdin
file_option = click.option(
    "-f",
    "--file",
    "file",
    metavar="FILE|-",
    help="Read register strings from FILE (binfmt.d syntax; - for stdin).",
)
#: the safety refusals ``--force`` overrides, named once; each command lists its own
_FC = TypeVar("_FC", bound="Callable[..., Any] | click.Command")

FORCE_NATIVE = "entries that match what the host runs natively"
FORCE_WRITABLE = "C/O with an interpreter path a non-root user controls"
FORCE_IN_USE = "entries processes run through now"


def force_option(*overrides: str) -> Callable[[_FC], _FC]:
    """``--force``, declared once: one help text naming what this command's refusals are."""
    return click.option(
        "--force",
        is_flag=True,
        help=f"Go ahead despite a safety refusal: {', '.join(overrides)}.",
    )


#: ``--force`` for commands that add entries to binfmtctl's config
accept_force_option = force_option(FORCE_NATIVE, FORCE_WRITABLE)


def refuse_in_use(entries: Sequence[Any], force: bool, dry_run: bool = False) -> None:
    """Refuse (exit 1) to remove, disable or replace entries processes run through now,
    naming them, unless ``force``; with ``force`` warn. ``entries``: the live entries
    about to change."""
    from binfmtctl.admission import in_use

    _checked(in_use(entries, force, dry_run))


_EXAMPLES = "\b\nExamples:\n"


def examples_last(cmd: click.Command) -> click.Command:
    """Move the ``Examples:`` block of a command's docstring (and of its subcommands') to
    its epilog, so ``--help`` ends with the examples, after the options. Idempotent."""
    text = inspect.cleandoc(cmd.help or "")
    if _EXAMPLES in text and not cmd.epilog:
        body, _, examples = text.partition(_EXAMPLES)
        cmd.help = body.rstrip()
        cmd.epilog = _EXAMPLES + examples.rstrip()
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            examples_last(sub)
    return cmd
