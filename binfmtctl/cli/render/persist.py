"""Text renderings of the persist family's reports: ``apply``, ``import``, ``export``,
``persist enable|disable|status|add|save|remove``.

``apply``'s text is :func:`binfmtctl.fastpath.apply_text`, shared with the click-free boot
path, so both print the same bytes. Fixes carry the options the command runs under
(:func:`binfmtctl.cli.common.scoped`).
"""

from __future__ import annotations

from binfmtctl.cli.common import scoped
from binfmtctl.cli.render import Out, text_renderer
from binfmtctl.fastpath import apply_text
from binfmtctl.persist import ApplyReport


@text_renderer(ApplyReport)
def _apply(report: ApplyReport, out: Out) -> None:
    for text, fg, err in apply_text(report, scoped):
        out.line(text, fg=fg, err=err)
