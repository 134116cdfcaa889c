"""Text of `validate`'s report: a verdict per input, problems compiler style."""

from __future__ import annotations

from binfmtctl.cli.render import Out, text_renderer
from binfmtctl.errors import Problem
from binfmtctl.validation import ValidateReport


def _disp(b: int) -> str:
    if 0x20 <= b < 0x7F:
        return chr(b)
    return {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x00: "\\0"}.get(b, f"\\x{b:02x}")


def caret_lines(raw: bytes, span: tuple[int, int] | None) -> list[str]:
    """The input (non-printables escaped) and a caret line under ``span``, compiler style."""
    shown = [_disp(b) for b in raw]
    line = "".join(shown)
    if span is None:
        return [f"  {line}"]
    start = sum(len(s) for s in shown[: span[0]])
    width = max(1, sum(len(s) for s in shown[span[0] : span[1]]))
    return [f"  {line}", "  " + " " * start + "^" + "~" * (width - 1)]


def problem(out: Out, raw: bytes | None, p: Problem) -> None:
    """One problem: severity[errno] field: message, the input with a caret, the fix."""
    from binfmtctl.cli.scope import scoped

    tag = p.severity + (f"[{p.errno}]" if p.errno else "")
    out.line(f"{tag} {p.field}: {p.message}", fg="red" if p.is_error else "yellow")
    if raw is not None and p.span is not None:
        for line in caret_lines(raw, p.span):
            out.line(line)
    out.fix(scoped(p.fix))


@text_renderer(ValidateReport)
def _validate(r: ValidateReport, out: Out) -> None:
    for raw, v in zip(r.inputs, r.verdicts, strict=True):
        shown = raw.decode("utf-8", "backslashreplace")
        if v.valid:
            n_warn = sum(1 for p in v.problems if not p.is_error)
            out.line(
                f"ok  {shown}" + (f"  ({n_warn} warning{'s' * (n_warn != 1)})" if n_warn else ""),
                fg="green" if not n_warn else "yellow",
            )
        else:
            verdict = "UNJUDGED" if v.internal_error else f"INVALID ({v.errno})"
            out.line(f"{verdict}  {shown}", fg="red", bold=True)
        for p in v.problems:
            problem(out, raw + b"\n", p)
        if v.valid and v.kernel_view and len(r.inputs) == 1:
            out.line("kernel would show:")
            for line in v.kernel_view.splitlines():
                out.line(f"  | {line}")
