"""Text rendering of ``doctor``'s report: a summary line, what ``--fix`` did, the findings
grouped by severity (each with its fix), and the verdict."""

from __future__ import annotations

from binfmtctl.cli.render import Out, text_renderer
from binfmtctl.doctor.facts import Finding
from binfmtctl.doctor.fix import FixResult
from binfmtctl.doctor.run import DoctorReport
from binfmtctl.wording import plural

_HEADINGS = {"error": "ERRORS", "warning": "WARNINGS", "info": "INFO"}
_COLOR: dict[str, str | None] = {"error": "red", "warning": "yellow", "info": None}


def _summary(r: DoctorReport) -> str:
    ro = " (read-only)" if r.read_only else ""
    entries = f"{r.entries} entr{'y' if r.entries == 1 else 'ies'}"
    return f"binfmtctl doctor: Linux {r.kernel}, binfmt_misc at {r.mount_path}: {r.mount_state}{ro}, {entries}"


def _fixes(fixes: tuple[FixResult, ...], out: Out) -> None:
    if not fixes:
        out.line("--fix: nothing doctor can fix by itself")
    for x in fixes:
        on = f" {x.entry}" if x.entry else ""
        verdict = "fixed" if x.ok else "FAILED"
        out.line(f"{verdict} ({x.action}{on}): {x.message}", fg="green" if x.ok else "red")


def _findings(findings: tuple[Finding, ...], out: Out) -> None:
    for sev, heading in _HEADINGS.items():
        group = [f for f in findings if f.severity == sev]
        if not group:
            continue
        out.line(f"{heading} ({len(group)})", fg=_COLOR[sev], bold=True)
        for f in group:
            out.line(f"  {f.code}" + (f"  [{f.entry}]" if f.entry else ""), fg=_COLOR[sev])
            out.line(f"    {f.message}")
            out.fix(f.fix, indent="    ")


@text_renderer(DoctorReport)
def render_doctor(r: DoctorReport, out: Out) -> None:
    out.line(_summary(r))
    if r.fixes is not None:
        _fixes(r.fixes, out)
    _findings(r.findings, out)
    if r.healthy:
        out.line("healthy: no errors, no warnings", fg="green")
        return
    errors, warnings = r.count("error"), r.count("warning")
    out.line(
        f"{plural(errors, 'error')}, {plural(warnings, 'warning')}: see the fixes above",
        fg="red" if errors else "yellow",
    )
