"""Persistence: `apply`, `export`, `import`, `persist ...`: adapters over :mod:`binfmtctl.persist`
whose reports :mod:`binfmtctl.cli.render.persist` prints."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click

import binfmtctl.cli.render.persist  # noqa: F401  (registers the text renderers)
from binfmtctl.cli.common import (
    CONTEXT,
    FORCE_NATIVE,
    FORCE_WRITABLE,
    Ctx,
    _config_option,
    _open_for_read,
    _root_option,
    accept_force_option,
    fail,
    file_option,
    force_option,
    pass_ctx,
    read_inputs,
    scoped,
)
from binfmtctl.cli.render import Out, emit
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.wording import plural


def _apply_and_report(
    obj: Ctx, config: str | None, *, plan_only: bool, force: bool, as_json: bool
) -> None:
    from binfmtctl import persist

    report = persist.apply_config(
        obj.bm(), persist.config_path(override=config), plan_only=plan_only, force=force
    )
    emit(report, as_json=as_json)


def _pick_live(
    obj: Ctx, names: Sequence[str], include_all: bool, consequence: str = ""
) -> list[Any]:
    """The live entries export and persist save act on: NAMEs (which must all be live),
    else binfmtctl's own, else with --all every live entry."""
    from binfmtctl import persist

    chosen, unknown = persist.pick_live(_open_for_read(obj), names, include_all)
    if unknown:
        fail(
            f"no live entry named {', '.join(repr(n) for n in unknown)}{consequence}",
            fix="binfmtctl status lists every entry",
        )
    return chosen


@click.command(context_settings=CONTEXT)
@click.option("--plan", "plan_only", is_flag=True, help="Print the actions and change nothing.")
@force_option(FORCE_NATIVE, FORCE_WRITABLE, "a config non-root can change")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def apply(obj: Ctx, plan_only: bool, force: bool, config: str | None, as_json: bool) -> None:
    """Make the live table match binfmtctl's config (what binfmtctl.service runs at boot).

    Registers the config's entries that are missing, replaces live entries of the
    config's names that differ, and leaves every other entry alone (WSLInterop, python,
    jar, other tools' QEMU); nothing is flushed. Each entry is validated first and applied
    on its own: one that cannot be applied (its interpreter is missing, or on a file
    system not mounted yet) is reported with the fix and the rest are still applied; the
    exit status is then 1. Idempotent: a second run changes nothing. Mounts binfmt_misc
    if needed. --plan prints the actions and changes nothing.

    \b
    Examples:
      binfmtctl apply --plan
      binfmtctl apply --config /etc/binfmt.d/zz-binfmtctl.conf
    """
    _apply_and_report(obj, config, plan_only=plan_only, force=force, as_json=as_json)


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["binfmt.d", "update-binfmts", "json"]),
    default="binfmt.d",
    show_default=True,
    help="binfmt.d lines (systemd-binfmt FILE loads them), update-binfmts format files, or JSON.",
)
@click.option("--all", "include_all", is_flag=True, help="Every live entry, not only binfmtctl's.")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Write to PATH instead of stdout (update-binfmts: a directory, one file per entry).",
)
@pass_ctx
def export(
    obj: Ctx, names: tuple[str, ...], fmt: str, include_all: bool, output: str | None
) -> None:
    """Print the live entries binfmtctl would persist, loadable elsewhere.

    Default: the entries binfmtctl registered (and still owns), oldest first so that
    loading them gives the same match order, as binfmt.d lines: `systemd-binfmt FILE`
    or `binfmtctl import FILE` loads them. NAMES picks live entries by name (whoever
    registered them); --all exports every live entry.

    \b
    Examples:
      binfmtctl export > /etc/binfmt.d/qemu.conf
      binfmtctl export --all --format json
      binfmtctl export --format update-binfmts -o /var/lib/binfmts
    """
    from binfmtctl import persist

    chosen = _pick_live(obj, names, include_all)
    source = obj.bm().path
    emit(persist.export(chosen, fmt, source, output, include_all=include_all))


def _persist_add(
    entries: Sequence[Any], config: str | None, force: bool, dry_run: bool = False
) -> Any:
    """Shared by import and persist add: safety, warnings, then the config edit."""
    from binfmtctl import persist

    unsafe = [] if force else persist.safety_problems(entries)
    if unsafe:
        out = Out()
        for name, message, fix in unsafe:
            out.line(f"refused: {name}: {message}", fg="red", err=True)
            out.fix(scoped(fix), err=True)
        fail(
            "refused for the host's safety; nothing was written",
            fix="fix the entries, or pass --force",
        )
    for w in persist.interpreter_warnings(entries):
        Out().warning(w)
    return persist.add_to_config(config, entries, dry_run=dry_run)


def _finish(
    obj: Ctx,
    report: Any,
    config: str | None,
    show_apply: bool,
    run_apply: bool,
    force: bool,
    as_json: bool,
) -> None:
    """After a config edit: its report (with --json only when no apply report follows),
    then with --apply the apply report."""
    if not (as_json and show_apply):
        emit(report, as_json=as_json)
    if run_apply:
        _apply_and_report(obj, config, plan_only=False, force=force, as_json=as_json)


@click.command("import", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR...")
@click.option("--apply", "and_apply", is_flag=True, help="Also apply the config now.")
@click.option("--dry-run", is_flag=True, help="Print what would be added and change nothing.")
@accept_force_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def import_cmd(
    obj: Ctx,
    paths: tuple[str, ...],
    and_apply: bool,
    dry_run: bool,
    force: bool,
    config: str | None,
    as_json: bool,
) -> None:
    """Add entries from binfmt.d or update-binfmts files to binfmtctl's config.

    Reads binfmt.d files (one register string per line; `qemu-binfmt-conf.sh --systemd`
    writes one per CPU), Debian update-binfmts format files (/usr/share/binfmts;
    `qemu-binfmt-conf.sh --debian` writes these), update-binfmts database files
    (/var/lib/binfmts) and `binfmtctl export --format json`. A DIR gives its *.conf files
    if it has any, else every file. Everything is validated first: one bad line, or one
    name defined differently by two sources, and nothing is imported. An entry already
    in the config is replaced (the later import wins, as in binfmt.d). --apply then
    applies the config.

    \b
    Examples:
      binfmtctl import /usr/lib/binfmt.d/qemu-aarch64.conf --apply
      binfmtctl import /usr/share/binfmts
    """
    from binfmtctl import persist

    imported, problems, warnings = persist.read_import(list(paths))
    if problems:
        emit(persist.ImportReport(dry_run, tuple(problems), None), as_json=as_json)
    for w in warnings:
        Out().warning(w)
    edit = _persist_add([i.entry for i in imported], config, force, dry_run)
    report = persist.ImportReport(dry_run, (), edit.config)
    _finish(obj, report, config, and_apply, and_apply and not dry_run, force, as_json)


@click.group("persist", context_settings=CONTEXT)
def persist_group() -> None:
    """Keep registrations across reboot: the config and the systemd unit.

    \b
    The config (default /etc/binfmt.d/zz-binfmtctl.conf, binfmt.d syntax) is what
    binfmtctl registers at boot; systemd-binfmt loads it too. binfmtctl.service runs
    `binfmtctl apply` early in boot, after systemd-binfmt, without flushing others.
      persist enable [--root DIR]    install the unit, its WantedBy= link, the config
      persist disable [--purge]      remove them (--purge: the config too)
      persist status                 what is set up, what differs from the live table
      persist add ENTRY... | -f FILE add register strings to the config
      persist save [NAME...] [--all] add live entries (default: binfmtctl's) to the config
      persist remove NAME...         drop entries from the config

    \b
    Examples:
      binfmtctl persist add "$(binfmtctl gen arm64)" --apply
      binfmtctl persist enable
      binfmtctl persist status --root /mnt/image
    """


def _mount_for_unit(obj: Ctx) -> str | None:
    from binfmtctl.binfmt_misc import DEFAULT_MOUNT

    return obj.mount if obj.mount and obj.mount != DEFAULT_MOUNT else None


@persist_group.command("enable", context_settings=CONTEXT)
@_root_option
@_config_option
@click.option(
    "--binfmtctl",
    "program",
    metavar="PATH",
    help="The binfmtctl the unit runs, as a path on the target system [default: this one].",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@pass_ctx
def persist_enable(
    obj: Ctx, root: str | None, config: str | None, program: str | None, as_json: bool
) -> None:
    """Install binfmtctl.service (ExecStart= this binfmtctl), enable it, create the config.

    The enablement link is made as `systemctl enable` makes it, so --root DIR provisions
    an offline image (give --binfmtctl PATH if binfmtctl has another path in the image).
    On a running systemd system it also runs `systemctl daemon-reload` and `systemctl
    enable --now binfmtctl.service`; where systemd is not PID 1 that is skipped, with a
    note. Run it again after moving or reinstalling binfmtctl.

    \b
    Examples:
      binfmtctl persist enable
      binfmtctl persist enable --root /mnt/image --binfmtctl /usr/bin/binfmtctl
    """
    from binfmtctl import persist

    r = root or "/"
    if program is not None and not os.path.isabs(program):
        raise UsageError(
            f"--binfmtctl {program!r} is not an absolute path",
            fix="--binfmtctl /usr/local/bin/binfmtctl",
        )
    report = persist.enable(
        r,
        config=persist.config_path(r, config),
        mount=_mount_for_unit(obj),
        command=[program] if program else None,
    )
    emit(report, as_json=as_json)


@persist_group.command("disable", context_settings=CONTEXT)
@_root_option
@_config_option
@click.option("--purge", is_flag=True, help="Also remove the config.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def persist_disable(root: str | None, config: str | None, purge: bool, as_json: bool) -> None:
    """Remove binfmtctl.service and its enablement link (the config stays unless --purge).

    Live entries stay registered (the unit has no ExecStop: nothing is flushed);
    `binfmtctl uninstall all` removes binfmtctl's. The config is a binfmt.d file, so
    systemd-binfmt keeps registering its entries at boot until it is purged.

    \b
    Examples:
      binfmtctl persist disable
      binfmtctl persist disable --purge
    """
    from binfmtctl import persist

    r = root or "/"
    report = persist.disable(r, config=persist.config_path(r, config), purge=purge)
    emit(report, as_json=as_json)


@persist_group.command("status", context_settings=CONTEXT)
@_root_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def persist_status(obj: Ctx, root: str | None, config: str | None, as_json: bool) -> None:
    """Show what is set up for boot and whether the live table matches the config.

    Exit 1 if something is out of order (each problem names its fix): the unit missing,
    not enabled, or pointing at a binfmtctl that is gone; an invalid config line; live
    entries that differ from the config (binfmtctl apply).

    \b
    Examples:
      binfmtctl persist status
      binfmtctl persist status --root /mnt/image --json
    """
    from binfmtctl import persist

    r = root or "/"
    report = persist.status(r, config=persist.config_path(r, config), bm=obj.bm())
    emit(report.with_fixes(lambda fix: scoped(fix, root=root, config=config)), as_json=as_json)


@persist_group.command("add", context_settings=CONTEXT)
@click.argument("entries", nargs=-1)
@file_option
@click.option("--apply", "and_apply", is_flag=True, help="Also apply the config now.")
@accept_force_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def persist_add(
    obj: Ctx,
    entries: tuple[str, ...],
    file: str | None,
    and_apply: bool,
    force: bool,
    config: str | None,
    as_json: bool,
) -> None:
    """Add register strings to the config (all or nothing; a same-named entry is replaced).

    \b
    Examples:
      binfmtctl persist add "$(binfmtctl gen arm64)"
      binfmtctl persist add -f qemu.conf --apply
    """
    from binfmtctl.rules import KernelProfile

    raws = read_inputs(entries, file)
    if not raws:
        raise UsageError(
            "nothing to add: give ENTRY arguments or -f FILE",
            fix="binfmtctl persist add ':name:M::magic::/path/to/interpreter:F'",
        )
    desired = _parse_batch_grammar(raws, KernelProfile.current_default())
    edit = _persist_add(desired, config, force)
    _finish(obj, edit, config, and_apply, and_apply, force, as_json)


def _parse_batch_grammar(raws: Sequence[bytes], profile: Any) -> list[Any]:
    """Like _parse_batch, but only the kernel grammar: a missing interpreter is warned
    about later, not refused (the config is the state wanted at boot)."""
    from binfmtctl.rules import validate as do_validate

    entries, bad = [], []
    for raw in raws:
        v = do_validate(raw + b"\n", profile)
        errors = [p for p in v.problems if p.is_error]
        if errors or v.entry is None:
            bad.append((raw, errors))
        else:
            entries.append(v.entry)
    for raw, errors in bad:
        click.secho(f"INVALID  {raw.decode('utf-8', 'backslashreplace')}", fg="red", err=True)
        for p in errors:
            click.echo(f"  {p.field} [{p.errno}]: {p.message}\n  fix: {scoped(p.fix)}", err=True)
    if bad:
        fail(
            f"{len(bad)} of {plural(len(raws), 'entry')} {'is' if len(bad) == 1 else 'are'} invalid; nothing was written"
        )
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(
            f"the batch names {', '.join(map(repr, dup))} more than once",
            fix="give each entry name once",
        )
    return entries


@persist_group.command("save", context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option("--all", "include_all", is_flag=True, help="Every live entry, not only binfmtctl's.")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def persist_save(
    obj: Ctx, names: tuple[str, ...], include_all: bool, config: str | None, as_json: bool
) -> None:
    """Add live entries to the config: NAMEs, or binfmtctl's own (--all: every live entry).

    \b
    Examples:
      binfmtctl persist save
      binfmtctl persist save --all --json
    """
    from binfmtctl import persist

    chosen = _pick_live(obj, names, include_all, "; nothing was saved")
    if not chosen:
        fail(
            "no live entry to save: binfmtctl owns none",
            fix="name the entries (binfmtctl persist save NAME...), or --all",
        )
    emit(persist.add_to_config(config, chosen), as_json=as_json)


@persist_group.command("remove", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def persist_remove(names: tuple[str, ...], config: str | None, as_json: bool) -> None:
    """Drop entries from the config (the live table is not changed: binfmtctl remove NAME).

    \b
    Examples:
      binfmtctl persist remove qemu-aarch64
      binfmtctl persist remove qemu-arm qemu-riscv64 --json
    """
    from binfmtctl import persist

    try:
        report = persist.remove_from_config(config, names)
    except BinfmtctlError as e:
        fail(e.summary, e.fix)  # the fix carries this command's --mount
    emit(report, as_json=as_json)
