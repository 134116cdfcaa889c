"""Text of the emulation reports: `install`, `uninstall`, `test`, `write-probe`.

Import :func:`emit` from here (not from the package) so these renderers are registered;
the import is lazy in the commands, keeping the core modules off the start-up path."""

from __future__ import annotations

from binfmtctl.cli.render import Out, emit, text_renderer
from binfmtctl.probe import WrittenProbe

__all__ = ["emit"]


@text_renderer(WrittenProbe)
def _written_probe(r: WrittenProbe, out: Out) -> None:
    path = r.path if r.path.is_absolute() else f"./{r.path}"
    out.line(f"wrote {r.path} ({r.size} bytes, static {r.target} ELF)")
    out.line(f"run it: {path}")
    out.line(f"it prints `{r.expected_output}` and exits 0 when {r.target} emulation works here")
