"""Text of the checks before a write (binfmtctl.admission): all on stderr, fixes scoped."""

from __future__ import annotations

from binfmtctl.admission import Batch, InUse, SafetyVerdict
from binfmtctl.cli.render import Out, text_renderer


def _scoped(fix: str) -> str:
    from binfmtctl.cli.scope import scoped

    return scoped(fix)


@text_renderer(Batch)
def _batch(r: Batch, out: Out) -> None:
    for bad in r.invalid:
        shown = bad.raw.decode("utf-8", "backslashreplace")
        out.line(f"INVALID  {bad.place}: {shown}", fg="red", err=True)
        for p in bad.problems:
            out.line(f"  {p.field} [{p.errno}]: {p.message}\n  fix: {_scoped(p.fix)}", err=True)


@text_renderer(SafetyVerdict)
def _safety(r: SafetyVerdict, out: Out) -> None:
    for p in r.warnings:
        out.warning(p.message)
        out.fix(_scoped(p.fix), err=True)
    for p in r.refusals:
        tag = "warning (--force): " if r.force else "refused: "
        out.line(tag + p.message, fg="yellow" if r.force else "red", err=True)
        if not r.force:
            out.fix(_scoped(p.fix), err=True)


@text_renderer(InUse)
def _in_use(r: InUse, out: Out) -> None:
    from binfmtctl.usage import in_use_message

    tag = "warning (--force): " if r.force else ("would refuse: " if r.dry_run else "refused: ")
    for b in r.busy:
        out.line(
            tag + in_use_message(b.entry.name, b.users),
            fg="yellow" if r.force else "red",
            err=True,
        )
