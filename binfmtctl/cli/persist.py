"""Persistence: `apply`, `export`, `import`, `persist ...`: adapters over :mod:`binfmtctl.persist`
whose reports :mod:`binfmtctl.cli.render.persist` prints."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

import binfmtctl.cli.render.persist  # noqa: F401  (registers the text renderers)
from binfmtctl.cli.common import (
    CONTEXT,
    Ctx,
    _config_option,
    _open_for_read,
    _root_option,
    accept_force_option,
    emit_json,
    fail,
    file_option,
    pass_ctx,
    read_inputs,
    scoped,
)
from binfmtctl.cli.render import Out, emit
from binfmtctl.errors import ExitStatus, UsageError
from binfmtctl.wording import plural


def _print_config_problems(problems: Sequence[Any], limit: int = 20) -> None:
    from binfmtctl.fastpath import config_problem_lines

    out = Out()
    for text, fg in config_problem_lines(problems, limit, scoped):
        out.line(text, fg=fg)


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
) -> tuple[Any, list[Any]]:
    """The live entries export and persist save act on: NAMEs (which must all be live),
    else binfmtctl's own, else with --all every live entry."""
    from binfmtctl import persist

    bm = _open_for_read(obj)
    live = bm.entries()
    unknown = [n for n in names if n not in {e.name for e in live}]
    if unknown:
        fail(
            f"no live entry named {', '.join(repr(n) for n in unknown)}{consequence}",
            fix="binfmtctl status lists every entry",
        )
    return bm, persist.export_entries(live, names or bm.owned(), include_all and not names)


@click.command(context_settings=CONTEXT)
@click.option("--plan", "plan_only", is_flag=True, help="Print the actions and change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Apply even entries that match what the host runs natively, or C/O with an interpreter path a non-root user controls (and a config non-root can change).",
)
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
    from pathlib import Path

    from binfmtctl import persist

    bm, chosen = _pick_live(obj, names, include_all)
    files = persist.render_export(chosen, fmt, bm.path)
    if fmt == "update-binfmts":
        if output is None and len(files) > 1:
            raise UsageError(
                f"update-binfmts format is one file per entry ({plural(len(files), 'entry')})",
                fix="binfmtctl export --format update-binfmts -o DIR",
            )
        if output is not None:
            for name, data in files.items():
                persist.atomic_write(Path(output) / name, data)
                click.echo(f"wrote {Path(output) / name}", err=True)
            return
    data = b"".join(files.values())
    if output is not None:
        persist.atomic_write(Path(output), data)
        click.echo(f"wrote {plural(len(chosen), 'entry')} to {output}", err=True)
        return
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    if not chosen:
        click.echo(
            "note: no entry to export"
            + ("" if include_all else " (binfmtctl owns none; --all exports every live entry)"),
            err=True,
        )


def _persist_add(
    entries: Sequence[Any], config: str | None, force: bool, as_json: bool, dry_run: bool = False
) -> Any:
    """Shared by import and persist add: safety, warnings, then the config edit."""
    from binfmtctl import persist

    unsafe = [] if force else persist.safety_problems(entries)
    if unsafe:
        for name, message, fix in unsafe:
            click.secho(f"refused: {name}: {message}", fg="red", err=True)
            click.echo(f"  fix: {scoped(fix)}", err=True)
        fail(
            "refused for the host's safety; nothing was written",
            fix="fix the entries, or pass --force",
        )
    for w in persist.interpreter_warnings(entries):
        click.secho(f"warning: {w}", fg="yellow", err=True)
    path = persist.config_path(override=config)
    if dry_run:
        _, change = persist.config_with(persist.read_config_text(path), entries, str(path))
        return change
    return persist.add_entries(path, entries)


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
        if as_json:
            emit_json({"ok": False, "problems": [p.to_json() for p in problems], "config": None})
            sys.exit(ExitStatus.PROBLEMS)
        _print_config_problems(problems)
        fail(
            f"{len(problems)} problem{'s' * (len(problems) != 1)} in the input; nothing was imported",
            fix="see the INVALID lines above",
        )
    for w in warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    change = _persist_add([i.entry for i in imported], config, force, as_json, dry_run)
    if as_json and not and_apply:
        emit_json({"ok": True, "dry_run": dry_run, "problems": [], "config": change.to_json()})
        return
    if not as_json:
        for line in change.describe():
            click.echo(("would: " if dry_run else "") + line)
    if and_apply and not dry_run:
        _apply_and_report(obj, config, plan_only=False, force=force, as_json=as_json)


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


def _print_unit_report(report: Any) -> None:
    for s in report.steps:
        click.echo(s)
    if report.exec_start:
        click.echo("ExecStart: " + " ".join(report.exec_start))
    for n in report.notes:
        click.echo(f"note: {n}")


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
    if as_json:
        emit_json(report.to_json())
    else:
        _print_unit_report(report)


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
    if as_json:
        emit_json(report.to_json())
    else:
        _print_unit_report(report)


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
    cfg_path = persist.config_path(r, config)
    result = persist.status(r, config=cfg_path, bm=obj.bm())
    for p in result["problems"]:
        p["fix"] = scoped(p["fix"], root=root, config=config)
    if as_json:
        emit_json(result)
    else:
        cfg, unit = result["config"], result["unit"]
        click.echo(
            f"config: {cfg['path']}"
            + (
                f" ({plural(len(cfg['entries']), 'entry')}{': ' if cfg['entries'] else ''}{', '.join(cfg['entries'])})"
                if cfg["exists"]
                else " (missing)"
            )
        )
        click.echo(
            f"unit:   {unit['path']}"
            + (
                f" ({'enabled' if result['enabled'] else 'not enabled'}; ExecStart: {' '.join(unit['exec_start'])})"
                if unit["exists"]
                else " (not installed)"
            )
        )
        if result["systemctl"]:
            click.echo(f"systemctl is-active: {result['systemctl']['is_active']}")
        live = result["live"]
        if live is not None:
            click.echo(
                f"live:   {len(live['in_sync'])} in sync"
                + (f", differ or missing: {', '.join(live['pending'])}" if live["pending"] else "")
            )
        for p in result["problems"]:
            click.secho(f"problem: {p['message']}", fg="red")
            click.echo(f"  fix: {p['fix']}")
        for n in result["notes"]:
            click.echo(f"note: {n}")
    if not result["ok"]:
        sys.exit(ExitStatus.PROBLEMS)


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
    change = _persist_add(desired, config, force, as_json)
    if as_json and not and_apply:
        emit_json({"ok": True, "config": change.to_json()})
        return
    if not as_json:
        for line in change.describe():
            click.echo(line)
    if and_apply:
        _apply_and_report(obj, config, plan_only=False, force=force, as_json=as_json)


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

    _, chosen = _pick_live(obj, names, include_all, "; nothing was saved")
    if not chosen:
        fail(
            "no live entry to save: binfmtctl owns none",
            fix="name the entries (binfmtctl persist save NAME...), or --all",
        )
    change = persist.add_entries(persist.config_path(override=config), chosen)
    if as_json:
        emit_json({"ok": True, "config": change.to_json()})
    else:
        for line in change.describe():
            click.echo(line)


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

    path = persist.config_path(override=config)
    present = persist.config_names(path)
    unknown = [n for n in names if n not in present]
    if unknown:
        fail(
            f"{path} has no entry named {', '.join(repr(n) for n in unknown)}; nothing was changed",
            fix="binfmtctl persist status lists the config's entries",
        )
    change = persist.remove_names(path, names)
    if as_json:
        emit_json({"ok": True, "config": change.to_json()})
    else:
        for line in change.describe():
            click.echo(line)
