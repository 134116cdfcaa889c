"""Text of the emulation reports: `install`, `uninstall`, `test`, `write-probe`.

Import :func:`emit` from here (not from the package) so these renderers are registered;
the import is lazy in the commands, keeping the core modules off the start-up path."""

from __future__ import annotations

from binfmtctl.cli.common import scoped
from binfmtctl.cli.render import Out, emit, text_renderer
from binfmtctl.emulation import InstallReport, ProbeMatrix, UninstallReport
from binfmtctl.entry import render_register_str
from binfmtctl.errors import BinfmtctlError, error_line
from binfmtctl.install import group_notes, probe_matrix
from binfmtctl.probe import WrittenProbe
from binfmtctl.wording import plural

__all__ = ["emit"]


@text_renderer(WrittenProbe)
def _written_probe(r: WrittenProbe, out: Out) -> None:
    path = r.path if r.path.is_absolute() else f"./{r.path}"
    out.line(f"wrote {r.path} ({r.size} bytes, static {r.target} ELF)")
    out.line(f"run it: {path}")
    out.line(f"it prints `{r.expected_output}` and exits 0 when {r.target} emulation works here")


def error(out: Out, message: str, fix: str | None = None) -> None:
    """The failure line a command ends with (as click prints a ``BinfmtctlError``)."""
    out.line(error_line(BinfmtctlError(message, fix=scoped(fix) if fix else None)), err=True)


@text_renderer(ProbeMatrix)
def _probe_matrix(r: ProbeMatrix, out: Out) -> None:
    if not r.targets:
        fix = "binfmtctl install TARGET...  (or name targets: binfmtctl test aarch64)"
        error(out, "no enabled QEMU entry to test", fix)
        return
    for line in probe_matrix(r.targets):
        out.line(line)
    if r.failed:
        n = plural(len(r.targets), "target")
        error(out, f"{len(r.failed)} of {n} failed: {', '.join(r.failed)}")


@text_renderer(UninstallReport)
def _uninstall(r: UninstallReport, out: Out) -> None:
    for name in r.removed:
        out.line(f"{'would remove' if r.dry_run else 'removed'} {name}")
    for name in r.config_removed:
        out.line(f"dropped {name} from binfmtctl's config: it is no longer registered at boot")
    for n in r.notes:
        out.line(f"{n.level}: {n.text}")
    if not r.removed:
        out.line("nothing to remove")


_VERB = {"add": "register", "replace": "replace", "keep": "unchanged", "conflict": "CONFLICT"}


@text_renderer(InstallReport)
def _install(r: InstallReport, out: Out) -> None:
    out.line(
        f"Linux {r.kernel}, host {r.host}" + (" (dry run: nothing is written)" if r.dry_run else "")
    )
    for s in r.skipped:
        if s.refused:
            out.line(f"REFUSED  {s.name}: {s.reason}", fg="red")
            out.fix(scoped(s.fix))
        elif r.outcome != "refused":
            out.line(f"skipped  {s.name}: {s.reason}")
    if r.outcome == "native":
        out.line("nothing to do: the host runs every named platform natively")
    if r.outcome == "installed":
        _install_plans(r, out)
    if r.message:
        error(out, r.message, r.fix)


def _install_plans(r: InstallReport, out: Out) -> None:
    for p in r.targets:
        if p.entry is not None and p.action is not None:
            word = _VERB.get(p.action, p.action)
            if r.dry_run and p.action in ("add", "replace"):
                word = "would " + word
            out.line(
                f"{word:<16} {p.entry.name:<20} {p.entry.flags or '-':<4} {p.entry.interpreter}"
            )
            if r.dry_run and p.action in ("add", "replace", "keep"):
                out.line(f"  {render_register_str(p.entry)}")
        if p.error is not None:
            out.line(f"FAILED   {p.target.name}: {p.error}", fg="red")
            if p.fix:
                out.fix(scoped(p.fix))
    for note, names in group_notes(p for p in r.targets if p.ok):
        fg = "yellow" if note.level == "warning" else None
        out.line(f"{note.level} ({', '.join(names)}): {note.text}", fg=fg)
    if r.dry_run:
        return
    if r.changes:
        n = r.changes
        out.line(f"done: {n} entr{'y' if n == 1 else 'ies'} registered or replaced")
    elif any(p.ok for p in r.targets):
        out.line("nothing to do: every requested target is already installed as requested")
    if r.test is not None and r.test.targets:
        out.line("test:")
        for line in probe_matrix(r.test.targets):
            out.line(line)
    for line in r.persisted.describe() if r.persisted else []:
        out.line(line)
