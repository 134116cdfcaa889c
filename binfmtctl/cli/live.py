"""The live table: `status`, `show`, `register`, `enable`, `disable`, `remove`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import click

from binfmtctl.cli.common import (
    CONTEXT,
    Ctx,
    _parse_batch,
    _safety,
    emit_json,
    fail,
    file_option,
    pass_ctx,
    read_sourced,
    refuse_in_use,
    report_actions,
    scope_note,
    scoped,
)
from binfmtctl.cli.completion import complete_entries
from binfmtctl.cli.render import emit
from binfmtctl.cli.render import live as _texts  # noqa: F401  (registers the text renderers)
from binfmtctl.errors import UsageError


def _no_such_entry(unknown: Sequence[str], live: Sequence[str], tail: str = "") -> None:
    """Refuse names that are not live, suggesting the closest live names."""
    from binfmtctl.live import no_such_entry

    e = no_such_entry(unknown, live, tail)
    fail(e.message, e.fix)


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, shell_complete=complete_entries)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def status(obj: Ctx, names: tuple[str, ...], as_json: bool) -> None:
    """Show the live binfmt_misc table, in the order the kernel tries it.

    The kernel tries the newest entry first: the first enabled entry that matches
    a file runs it. For each entry: enabled, type, magic/mask or extension,
    interpreter, flags, owner (binfmtctl if it registered it) and a one-word
    health: ok, or the most severe of doctor's findings about the entry (disabled,
    interpreter-missing, pinned-interpreter-gone, interpreter-not-executable,
    magic-bare-hex, host-hijack, ...: the same checks `binfmtctl doctor` runs; --json
    lists them all, with their fixes). Reads need no root where the table is mounted.
    \b
    Examples:
      binfmtctl status
      binfmtctl status qemu-aarch64 --json
    """
    from binfmtctl import live

    report = live.status(obj.bm(), names, scoped)
    emit(report, as_json=as_json)
    if isinstance(report, live.StatusReport) and report.missing:
        _no_such_entry(report.missing, report.live_names)


@click.command(context_settings=CONTEXT)
@click.argument("name", shell_complete=complete_entries)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def show(obj: Ctx, name: str, as_json: bool) -> None:
    """Show one entry: the kernel's own text, its register string, and what it means.

    \b
    Examples:
      binfmtctl show qemu-aarch64
      binfmtctl show WSLInterop --json
    """
    from binfmtctl import live

    emit(live.show(obj.bm(), name, scoped), as_json=as_json)


@click.command(context_settings=CONTEXT)
@click.argument("entries", nargs=-1)
@file_option
@click.option(
    "--replace",
    is_flag=True,
    help="Replace a same-named entry that differs (remove, register, verify; restore on failure).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be written and change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Register even entries that match what the host runs natively, or C/O with an interpreter path a non-root user controls; --replace even entries processes run through now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the actions as JSON.")
@pass_ctx
def register(
    obj: Ctx,
    entries: tuple[str, ...],
    file: str | None,
    replace: bool,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Register entries, all or nothing.

    Every entry is validated before the first write. An identical entry of the same
    name is left alone (reported as unchanged); a different one is refused, with both
    versions shown, unless --replace. If the k-th write fails, the k-1 before it are
    undone. After each write the entry is read back and compared.

    \b
    Examples:
      binfmtctl register ':qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:F'
      binfmtctl register -f /usr/lib/binfmt.d/qemu-riscv64.conf --dry-run
    """

    sourced = read_sourced(entries, file)
    if not sourced:
        raise UsageError("nothing to register: give ENTRY arguments or -f FILE")
    bm = obj.bm()
    desired = _parse_batch([r for _, r in sourced], bm.profile, [w for w, _ in sourced])
    _safety(desired, force)
    if not dry_run:
        bm.mount_for_write()
    with bm.locked() if not dry_run else contextlib.nullcontext():
        _register_locked(
            bm, desired, replace=replace, dry_run=dry_run, as_json=as_json, force=force
        )


def _register_locked(
    bm: Any, desired: list[Any], *, replace: bool, dry_run: bool, as_json: bool, force: bool
) -> None:
    """Plan against the live table and apply, under the writers' lock."""
    from binfmtctl.plan import plan_register

    mounted = bm.mount_state().state == "mounted"
    live = bm.entries() if mounted else []
    # a differing entry is refused unless --replace, whoever registered it (as --help says)
    actions = plan_register(desired, live, replace=replace)
    conflicts = [a for a in actions if a.kind == "conflict"]
    if as_json and (dry_run or conflicts):
        emit_json({"dry_run": dry_run, "actions": [a.to_json() for a in actions]})
    else:
        report_actions(actions, dry_run or bool(conflicts))
    if conflicts:
        fail(
            f"{len(conflicts)} entr{'y' if len(conflicts) == 1 else 'ies'} already registered with different content; nothing was written",
            fix="binfmtctl register --replace ...  (or remove them first)",
        )
    refuse_in_use(
        [a.old for a in actions if a.kind == "replace" and a.old is not None], force, dry_run
    )
    if dry_run:
        return
    if bm.apply(actions):
        scope_note()
    if as_json:
        emit_json({"dry_run": False, "actions": [a.to_json() for a in actions]})
    else:
        n = sum(1 for a in actions if a.changes)
        click.echo(
            f"done: {n} change{'s' * (n != 1)}"
            if n
            else "nothing to do: every entry is already registered as given"
        )


def _names_command(obj: Ctx, names: Sequence[str], op: str, force: bool = False) -> None:
    bm = obj.bm()
    bm.mount_for_write()
    live = set(bm.names())
    unknown = [n for n in names if n not in live]
    if unknown:
        _no_such_entry(unknown, sorted(live), " (nothing was changed)")
    if op == "disable":
        refuse_in_use([bm.read(n) for n in dict.fromkeys(names)], force)
    for n in names:
        if op == "enable":
            bm.set_enabled(n, True)
        elif op == "disable":
            bm.set_enabled(n, False)
        click.echo(f"{op}d {n}")


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True, shell_complete=complete_entries)
@pass_ctx
def enable(obj: Ctx, names: tuple[str, ...]) -> None:
    """Enable entries (write 1 to each).

    \b
    Examples:
      binfmtctl enable qemu-aarch64
      binfmtctl enable qemu-arm qemu-riscv64
    """
    _names_command(obj, names, "enable")


_in_use_force = click.option(
    "--force", is_flag=True, help="Go ahead even when processes run through the entry now."
)


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True, shell_complete=complete_entries)
@_in_use_force
@pass_ctx
def disable(obj: Ctx, names: tuple[str, ...], force: bool) -> None:
    """Disable entries (write 0): the kernel skips them but keeps them.

    An entry processes run through now is refused (they are named) unless --force.

    \b
    Examples:
      binfmtctl disable qemu-aarch64
      binfmtctl disable --force qemu-aarch64
    """
    _names_command(obj, names, "disable", force)


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, shell_complete=complete_entries)
@click.option(
    "--owned", is_flag=True, help="Remove every entry binfmtctl registered (and still owns)."
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed.")
@_in_use_force
@pass_ctx
def remove(obj: Ctx, names: tuple[str, ...], owned: bool, dry_run: bool, force: bool) -> None:
    """Remove named entries (write -1 to each), or with --owned all of binfmtctl's.

    An entry processes run through now is refused (they are named) unless --force.

    Entries are removed one by one by name; binfmtctl never writes -1 to
    `status`, which would remove every entry including other tools' (WSLInterop,
    python, jar, Rosetta).

    \b
    Examples:
      binfmtctl remove qemu-aarch64 --dry-run
      binfmtctl remove --owned
    """
    from binfmtctl.plan import plan_remove

    if not names and not owned:
        raise UsageError(
            "name the entries to remove, or pass --owned", fix="binfmtctl status lists the entries"
        )
    if "status" in names or "register" in names:
        raise UsageError(
            "'status' and 'register' are control files, not entries; binfmtctl never flushes the whole table"
        )
    bm = obj.bm()
    if dry_run:
        bm.require_mounted()
    else:
        bm.mount_for_write()
    # plan under the lock: a parallel remove --owned must not see entries it just removed
    with bm.locked() if not dry_run else contextlib.nullcontext():
        live = bm.entries()
        live_names = {e.name for e in live}
        unknown = [n for n in names if n not in live_names]
        if unknown:
            _no_such_entry(unknown, [e.name for e in live], " (nothing was removed)")
        targets = list(names) + [n for n in bm.owned() if owned and n not in names]
        actions = plan_remove(targets, live)
        if dry_run:
            report_actions(actions, True)
        refuse_in_use([a.entry for a in actions], force, dry_run)
        if dry_run:
            return
        bm.apply(actions)
    for a in actions:
        click.echo(f"removed {a.entry.name}")
    if not actions:
        click.echo("nothing to remove")
