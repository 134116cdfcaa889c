"""Text of the inspection reports: `which`, `scan`, `gen`.

Import :func:`emit` from here (not from the package) so these renderers are registered;
the import is lazy in the commands, keeping the core modules off the start-up path."""

from __future__ import annotations

from binfmtctl.cli.render import Out, emit, text_renderer
from binfmtctl.table import Generated

__all__ = ["emit"]


@text_renderer(Generated)
def _generated(r: Generated, out: Out) -> None:
    out.line(r.binfmt_d.removesuffix("\n") if r.binfmt_d else r.register)
