"""Shared pieces of the command line: output helpers, input reading, batch validation, safety checks."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from binfmtctl.errors import BinfmtctlError, Problem, UsageError
from binfmtctl.wording import plural

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _disp(b: int) -> str:
    if 0x20 <= b < 0x7F:
        return chr(b)
    return {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x00: "\\0"}.get(b, f"\\x{b:02x}")


def caret_lines(raw: bytes, span: tuple[int, int] | None) -> list[str]:
    """The input (non-printables escaped) and a caret line under ``span``, compiler style."""
    shown = [_disp(b) for b in raw]
    line = "".join(shown)
    if span is None:
        return [f"  {line}"]
    start = sum(len(s) for s in shown[: span[0]])
    width = max(1, sum(len(s) for s in shown[span[0] : span[1]]))
    return [f"  {line}", "  " + " " * start + "^" + "~" * (width - 1)]


def print_problem(raw: bytes | None, p: Problem) -> None:
    tag = p.severity + (f"[{p.errno}]" if p.errno else "")
    color = "red" if p.is_error else "yellow"
    click.secho(f"{tag} {p.field}: {p.message}", fg=color, err=False)
    if raw is not None and p.span is not None:
        for line in caret_lines(raw, p.span):
            click.echo(line)
    click.echo(f"  fix: {scoped(p.fix)}")


def scoped(
    fix: str, *, root: str | None = None, kernel: str | None = None, config: str | None = None
) -> str:
    """``fix`` carrying the options this command runs under (the global --mount from the
    click context; --root, --kernel, --config as given), so it runs as printed."""
    from binfmtctl.binfmt_misc import DEFAULT_MOUNT
    from binfmtctl.fixscope import scope_fix

    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Ctx) if ctx is not None else None
    mount = obj.mount if obj is not None else None
    if mount is not None and os.path.normpath(mount) == DEFAULT_MOUNT:
        mount = None
    if root is not None and os.path.normpath(root) == "/":
        root = config = None
    return scope_fix(fix, mount=mount, root=root, kernel=kernel, config=config)


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


def _parse_batch(
    raws: Sequence[bytes], profile: Any, where: Sequence[str] | None = None
) -> list[Any]:
    """Validate every input before anything is written; all errors at once."""
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.inputs import as_written
    from binfmtctl.rules import validate as do_validate

    entries = []
    bad = []
    places = (
        list(where) if where is not None else [f"argument {i}" for i in range(1, len(raws) + 1)]
    )
    first: dict[str, str] = {}
    for raw, place in zip(raws, places, strict=True):
        v = do_validate(as_written(raw), profile, exec_check=open_exec_errno)
        errors = [p for p in v.problems if p.is_error]
        if errors or v.entry is None:
            bad.append((raw, errors, place))
            continue
        if v.entry.name in first:
            raise UsageError(
                f"{place}: {v.entry.name!r} is also given at {first[v.entry.name]}; "
                "each entry name can be registered once",
                fix=f"drop one of the two (at {first[v.entry.name]} or {place})",
            )
        first[v.entry.name] = place
        entries.append(v.entry)
    if bad:
        for raw, errors, place in bad:
            click.secho(
                f"INVALID  {place}: {raw.decode('utf-8', 'backslashreplace')}", fg="red", err=True
            )
            for p in errors:
                click.echo(
                    f"  {p.field} [{p.errno}]: {p.message}\n  fix: {scoped(p.fix)}", err=True
                )
        fail(
            f"{len(bad)} of {plural(len(raws), 'entry')} {'is' if len(bad) == 1 else 'are'} invalid; nothing was written"
        )
    return entries


def _safety(entries: Sequence[Any], force: bool, *, private: bool = False) -> None:
    """Refuse (unless ``force``) entries that hijack native programs or give C/O to an
    interpreter a non-root user controls; warn about other untrusted interpreters.
    ``private``: a table only the caller's own processes use (``run``): no trust check,
    since no one else's exec goes through it."""
    from binfmtctl.safety import judge
    from binfmtctl.trust import check

    found = judge(entries, check=None if private else check)
    errors = [p for _, p in found if p.is_error]
    for _, p in found:
        if p.is_error:
            continue
        click.secho(f"warning: {p.message}", fg="yellow", err=True)
        click.echo(f"  fix: {scoped(p.fix)}", err=True)
    for p in errors:
        click.secho(
            ("warning (--force): " if force else "refused: ") + p.message,
            fg="yellow" if force else "red",
            err=True,
        )
        if not force:
            click.echo(f"  fix: {scoped(p.fix)}", err=True)
    if errors and not force:
        fail(
            "refused for the host's safety; nothing was written",
            fix="fix the entries, or pass --force",
        )


def report_actions(actions: Sequence[Any], dry_run: bool) -> None:
    from binfmtctl.entry import render_register_str
    from binfmtctl.plan import diff_lines

    verb = {
        "add": "register",
        "replace": "replace",
        "keep": "unchanged",
        "conflict": "CONFLICT",
        "remove": "remove",
    }
    for a in actions:
        prefix = "would " if dry_run and a.changes else ""
        click.echo(
            f"{prefix}{verb[a.kind]:<10} {a.entry.name}" + (f"  ({a.note})" if a.note else "")
        )
        if dry_run and a.kind in ("add", "replace"):
            click.echo(f"  {render_register_str(a.entry)}")
        if (
            a.kind in ("conflict", "replace")
            and a.old is not None
            and (a.kind == "conflict" or dry_run)
        ):
            for line in diff_lines(a.old, a.entry):
                click.echo(line)


def scope_note() -> None:
    """Say it plainly when the table written is private to a user namespace."""
    from binfmtctl.sandbox import in_initial_user_namespace

    if not in_initial_user_namespace():
        click.echo(
            "note: this binfmt_misc belongs to a user namespace (a container or a binfmtctl "
            "sandbox): only processes in it see these entries, not the host or other containers",
            err=True,
        )


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
#: ``--force`` for commands that add entries to binfmtctl's config
accept_force_option = click.option(
    "--force",
    is_flag=True,
    help="Accept entries that match what the host runs natively, or C/O with an interpreter path a non-root user controls.",
)


def refuse_in_use(entries: Sequence[Any], force: bool, dry_run: bool = False) -> None:
    """Refuse (exit 1) to remove, disable or replace entries processes run through now,
    naming them, unless ``force``; with ``force`` warn. ``entries``: the live entries
    about to change."""
    if not entries:
        return
    from binfmtctl import usage

    snap = usage.snapshot({e.interpreter for e in entries})
    busy = [(e, snap.users(e.interpreter)) for e in entries]
    busy = [(e, users) for e, users in busy if users]
    if not busy:
        return
    for e, users in busy:
        tag = "warning (--force): " if force else ("would refuse: " if dry_run else "refused: ")
        click.secho(
            tag + usage.in_use_message(e.name, users), fg="yellow" if force else "red", err=True
        )
    if force:
        return
    n = len(busy)
    fail(
        f"{n} entr{'y is' if n == 1 else 'ies are'} in use; nothing was changed"
        + (" (dry run)" if dry_run else ""),
        fix="wait for those processes to end (or stop them), or pass --force: a running "
        "process keeps its interpreter, but its next exec of a foreign binary fails",
    )


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
