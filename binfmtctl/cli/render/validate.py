"""Text of `validate`'s report: the lines of :mod:`binfmtctl.validate_text`, which the
click-free fast path prints too."""

from __future__ import annotations

from binfmtctl.cli.render import Out, text_renderer
from binfmtctl.validate_text import validate_lines
from binfmtctl.validation import ValidateReport


@text_renderer(ValidateReport)
def _validate(r: ValidateReport, out: Out) -> None:
    from binfmtctl.cli.scope import scoped

    for text, fg, bold in validate_lines(r, scoped):
        out.line(text, fg=fg, bold=bold)
