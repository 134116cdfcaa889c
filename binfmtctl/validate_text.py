"""The text of ``validate``'s report: a verdict per input, problems compiler style.

One rendering for both ways ``validate`` is answered: the click command's renderer
(``binfmtctl.cli.render.validate``) and the click-free fast path (:mod:`binfmtctl.fastpath`)
print these lines, so their output cannot drift apart. No click here: a line is
(text, colour, bold), and the caller writes it with its own styling.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from binfmtctl.errors import Problem
    from binfmtctl.validation import ValidateReport

#: (text, colour or None, bold)
Line = tuple[str, "str | None", bool]

_ESCAPES = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x00: "\\0"}


def _disp(b: int) -> str:
    if 0x20 <= b < 0x7F:
        return chr(b)
    return _ESCAPES.get(b, f"\\x{b:02x}")


def caret_lines(raw: bytes, span: tuple[int, int] | None) -> list[str]:
    """The input (non-printables escaped) and a caret line under ``span``, compiler style."""
    shown = [_disp(b) for b in raw]
    line = "".join(shown)
    if span is None:
        return [f"  {line}"]
    start = sum(len(s) for s in shown[: span[0]])
    width = max(1, sum(len(s) for s in shown[span[0] : span[1]]))
    return [f"  {line}", "  " + " " * start + "^" + "~" * (width - 1)]


def problem_lines(raw: bytes | None, p: Problem, scope: Callable[[str], str]) -> list[Line]:
    """One problem: severity[errno] field: message, the input with a caret, the fix
    (``scope`` makes it carry the options the command runs under)."""
    tag = p.severity + (f"[{p.errno}]" if p.errno else "")
    out: list[Line] = [(f"{tag} {p.field}: {p.message}", "red" if p.is_error else "yellow", False)]
    if raw is not None and p.span is not None:
        out += [(line, None, False) for line in caret_lines(raw, p.span)]
    out.append((f"  fix: {scope(p.fix)}", None, False))
    return out


def validate_lines(r: ValidateReport, scope: Callable[[str], str]) -> list[Line]:
    """The whole text report of ``validate``, all of it for stdout."""
    out: list[Line] = []
    for raw, v in zip(r.inputs, r.verdicts, strict=True):
        shown = raw.decode("utf-8", "backslashreplace")
        if v.valid:
            n_warn = sum(1 for p in v.problems if not p.is_error)
            out.append(
                (
                    f"ok  {shown}"
                    + (f"  ({n_warn} warning{'s' * (n_warn != 1)})" if n_warn else ""),
                    "green" if not n_warn else "yellow",
                    False,
                )
            )
        else:
            verdict = "UNJUDGED" if v.internal_error else f"INVALID ({v.errno})"
            out.append((f"{verdict}  {shown}", "red", True))
        for p in v.problems:
            out += problem_lines(raw + b"\n", p, scope)
        if v.valid and v.kernel_view and len(r.inputs) == 1:
            out.append(("kernel would show:", None, False))
            out += [(f"  | {line}", None, False) for line in v.kernel_view.splitlines()]
    return out
