"""`binfmtctl validate`: would the kernel accept this register string, and if not, why."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from binfmtctl.cli.common import CONTEXT, Ctx, emit_json, pass_ctx, print_problem, read_inputs
from binfmtctl.errors import ExitStatus, Problem, UsageError


@click.command(context_settings=CONTEXT)
@click.argument("entries", nargs=-1)
@click.option(
    "-f",
    "--file",
    "file",
    metavar="FILE|-",
    help="Read register strings from FILE, one per line (- for stdin).",
)
@click.option(
    "--kernel",
    "kernel",
    metavar="X.Y",
    help="Judge as Linux X.Y would (default: the running kernel).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per input.")
@pass_ctx
def validate(
    obj: Ctx, entries: tuple[str, ...], file: str | None, kernel: str | None, as_json: bool
) -> None:
    """Say whether the kernel would accept each register string, and if not why.

    Each ENTRY is a register string, ':name:type:offset:magic:mask:interpreter:flags',
    judged exactly as `echo ENTRY > /proc/sys/fs/binfmt_misc/register` would write it
    (the string plus one newline). Errors name the field, point at the bytes, give the
    errno the kernel would return and the fix. Warnings flag what the kernel accepts but
    is almost surely a mistake (magic written as bare hex, a raw NUL that truncates,
    a mask that matches other architectures).

    \b
    Examples:
      binfmtctl validate ':qemu-arm:M::\\x7fELF\\x01::/usr/bin/qemu-arm-static:F'
      binfmtctl validate --kernel 4.4 -f /usr/lib/binfmt.d/qemu-aarch64.conf
      grep -h . /etc/binfmt.d/*.conf | binfmtctl validate -f - --json
    """
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.inputs import as_written
    from binfmtctl.rules import KernelProfile, validate_contained

    try:
        profile = KernelProfile.parse(kernel) if kernel else KernelProfile.current_default()
    except ValueError as e:
        raise UsageError(str(e)) from None
    inputs = read_inputs(entries, file)
    if not inputs:
        raise UsageError(
            "nothing to validate: give ENTRY arguments or -f FILE",
            fix="binfmtctl validate ':name:M::magic::/path/to/interpreter:F'",
        )
    existing = _live_names(obj)
    verdicts = [
        validate_contained(
            as_written(raw), profile, existing_names=existing, exec_check=open_exec_errno
        )
        for raw in inputs
    ]
    _add_safety_warnings(verdicts)
    if as_json:
        emit_json([v.to_json() for v in verdicts])
    else:
        for raw, v in zip(inputs, verdicts, strict=True):
            if v.valid:
                n_warn = sum(1 for p in v.problems if not p.is_error)
                click.secho(
                    f"ok  {raw.decode('utf-8', 'backslashreplace')}"
                    + (f"  ({n_warn} warning{'s' * (n_warn != 1)})" if n_warn else ""),
                    fg="green" if not n_warn else "yellow",
                )
            else:
                click.secho(
                    f"{'UNJUDGED' if v.internal_error else f'INVALID ({v.errno})'}  {raw.decode('utf-8', 'backslashreplace')}",
                    fg="red",
                    bold=True,
                )
            for p in v.problems:
                print_problem(raw + b"\n", p)
            if v.valid and v.kernel_view and len(inputs) == 1:
                click.echo("kernel would show:")
                for line in v.kernel_view.splitlines():
                    click.echo(f"  | {line}")
    if not all(v.valid for v in verdicts):
        sys.exit(ExitStatus.PROBLEMS)


def _add_safety_warnings(verdicts: list[Any]) -> None:
    """What register would refuse or warn about for the host's safety (the kernel accepts
    it): as warnings, so validity stays the kernel's verdict."""
    from binfmtctl.safety import judge

    entries = [v.entry for v in verdicts if v.valid and v.entry is not None]
    if not entries:
        return
    found: dict[int, list[Problem]] = {}
    for e, p in judge(entries):
        if p.is_error:
            p = dataclasses.replace(
                p,
                severity="warning",
                message=p.message
                + " (register, install, import and apply refuse it without --force)",
            )
        found.setdefault(id(e), []).append(p)
    for v in verdicts:
        if v.valid and v.entry is not None:
            v.problems.extend(found.get(id(v.entry), []))


def _live_names(obj: Ctx) -> list[str]:
    """Names in the live table if it can be read without side effects (else none)."""
    try:
        bm = obj.bm()
        if bm.mount_state().state != "mounted":
            return []
        names: list[str] = bm.names()
        return names
    except OSError:
        return []
