"""Text renderings of the persist family's reports: ``apply``, ``import``, ``export``,
``persist enable|disable|status|add|save|remove``.

``apply``'s text is :func:`binfmtctl.fastpath.apply_text`, shared with the click-free boot
path, so both print the same bytes. Fixes carry the options the command runs under
(:func:`binfmtctl.cli.common.scoped`).
"""

from __future__ import annotations

from typing import cast

from binfmtctl.cli.common import scoped
from binfmtctl.cli.render import Out, text_renderer
from binfmtctl.errors import BinfmtctlError, error_line
from binfmtctl.fastpath import apply_text, config_problem_lines
from binfmtctl.persist import (
    ApplyReport,
    ConfigEdit,
    ExportReport,
    ImportReport,
    PersistStatus,
    UnitReport,
)
from binfmtctl.wording import plural


@text_renderer(ApplyReport)
def _apply(report: ApplyReport, out: Out) -> None:
    for text, fg, err in apply_text(report, scoped):
        out.line(text, fg=fg, err=err)


@text_renderer(UnitReport)
def _unit(report: UnitReport, out: Out) -> None:
    for s in report.steps:
        out.line(s)
    if report.exec_start:
        out.line("ExecStart: " + " ".join(report.exec_start))
    for n in report.notes:
        out.line(f"note: {n}")


@text_renderer(PersistStatus)
def _status(report: PersistStatus, out: Out) -> None:
    cfg, unit = report.config, report.unit
    names = [str(n) for n in cast("list[str]", cfg["entries"])]
    out.line(
        f"config: {cfg['path']}"
        + (
            f" ({plural(len(names), 'entry')}{': ' if names else ''}{', '.join(names)})"
            if cfg["exists"]
            else " (missing)"
        )
    )
    out.line(
        f"unit:   {unit['path']}"
        + (
            f" ({'enabled' if report.enabled else 'not enabled'}; ExecStart: {' '.join(cast('list[str]', unit['exec_start']))})"
            if unit["exists"]
            else " (not installed)"
        )
    )
    if report.systemctl:
        out.line(f"systemctl is-active: {report.systemctl['is_active']}")
    live = report.live
    if live is not None:
        out.line(
            f"live:   {len(live.in_sync)} in sync"
            + (f", differ or missing: {', '.join(live.pending)}" if live.pending else "")
        )
    for p in report.problems:
        out.line(f"problem: {p.message}", fg="red")
        out.line(f"  fix: {p.fix}")
    for n in report.notes:
        out.line(f"note: {n}")


@text_renderer(ConfigEdit)
def _edit(report: ConfigEdit, out: Out) -> None:
    for line in report.config.describe():
        out.line(("would: " if report.would else "") + line)


@text_renderer(ImportReport)
def _import(report: ImportReport, out: Out) -> None:
    if report.problems:
        for text, fg in config_problem_lines(report.problems, scope=scoped):
            out.line(text, fg=fg)
        n = len(report.problems)
        message = f"{n} problem{'s' * (n != 1)} in the input; nothing was imported"
        fix = scoped("see the INVALID lines above")
        out.line(error_line(BinfmtctlError(message, fix=fix)), err=True)
    elif report.config is not None:
        _edit(ConfigEdit(True, report.config, would=report.dry_run), out)


@text_renderer(ExportReport)
def _export(report: ExportReport, out: Out) -> None:
    if report.data:
        out.raw(report.data)
    for line in report.wrote:
        out.line(line, err=True)
    for n in report.notes:
        out.note(n)
