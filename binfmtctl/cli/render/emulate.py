"""Text of the emulation reports: `install`, `uninstall`, `test`, `write-probe`.

Import :func:`emit` from here (not from the package) so these renderers are registered;
the import is lazy in the commands, keeping the core modules off the start-up path."""

from __future__ import annotations

from binfmtctl.cli.common import scoped
from binfmtctl.cli.render import Out, emit, text_renderer
from binfmtctl.emulation import ProbeMatrix, UninstallReport
from binfmtctl.install import probe_matrix
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
    out.line(f"Error: {message}", err=True)
    if fix:
        out.fix(scoped(fix), err=True)


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
