"""The live table: `status`, `show`, `register`, `enable`, `disable`, `remove`."""

from __future__ import annotations

from collections.abc import Sequence

import click

from binfmtctl.cli.common import (
    CONTEXT,
    FORCE_IN_USE,
    FORCE_NATIVE,
    FORCE_WRITABLE,
    Ctx,
    fail,
    file_option,
    finish,
    force_option,
    pass_ctx,
    read_sourced,
    scoped,
)
from binfmtctl.cli.completion import complete_entries
from binfmtctl.cli.render import emit
from binfmtctl.cli.render import live as _texts  # noqa: F401  (registers the text renderers)
from binfmtctl.errors import UsageError


def _no_such_entry(unknown: Sequence[str], live: Sequence[str], tail: str = "") -> None:
    """Refuse names that are not live, suggesting the closest live names."""
    from binfmtctl.live import no_such_entry

    fail(*no_such_entry(unknown, live, tail))


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
    interpreter-missing, interpreter-gone-pinned, interpreter-not-executable,
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
@force_option(FORCE_NATIVE, FORCE_WRITABLE, f"{FORCE_IN_USE} (with --replace)")
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
    from binfmtctl import changes

    sourced = read_sourced(entries, file)
    if not sourced:
        raise UsageError("nothing to register: give ENTRY arguments or -f FILE")
    raws, where = [r for _, r in sourced], [w for w, _ in sourced]
    report = changes.register(obj.bm(), raws, where, replace=replace, dry_run=dry_run, force=force)
    finish(report, as_json)


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
    from binfmtctl import changes

    finish(changes.set_enabled(obj.bm(), names, True))


_in_use_force = force_option(FORCE_IN_USE)


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
    from binfmtctl import changes

    finish(changes.set_enabled(obj.bm(), names, False, force))


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
    from binfmtctl import changes

    if not names and not owned:
        raise UsageError(
            "name the entries to remove, or pass --owned", fix="binfmtctl status lists the entries"
        )
    if "status" in names or "register" in names:
        raise UsageError(
            "'status' and 'register' are control files, not entries; binfmtctl never flushes the whole table"
        )
    finish(changes.remove(obj.bm(), names, owned=owned, dry_run=dry_run, force=force))
