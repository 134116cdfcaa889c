"""Text of the inspection reports: `which`, `scan`, `gen`.

Import :func:`emit` from here (not from the package) so these renderers are registered;
the import is lazy in the commands, keeping the core modules off the start-up path."""

from __future__ import annotations

from binfmtctl.cli.render import Out, emit, text_renderer
from binfmtctl.scan import ScanSummary
from binfmtctl.table import Generated
from binfmtctl.which import WhichReport, WhichVerdict
from binfmtctl.wording import plural

__all__ = ["emit"]


@text_renderer(Generated)
def _generated(r: Generated, out: Out) -> None:
    out.line(r.binfmt_d.removesuffix("\n") if r.binfmt_d else r.register)


@text_renderer(WhichReport)
def _which(r: WhichReport, out: Out) -> None:
    for v in r.verdicts:
        _verdict(v, out)


def _verdict(v: WhichVerdict, out: Out) -> None:
    if v.error is not None:
        out.line(f"{v.path}: {v.error}", fg="red")
        return
    elf = v.elf
    if elf:
        what = f"ELF {elf['class']}-bit {elf['endian']}-endian {elf['machine_description']} ({elf['arch'] or 'no QEMU target'}), {elf['linkage'] or elf['type']}"
    else:
        what = v.not_elf or "not ELF"
    out.line(f"{v.path}: {what}")
    m = v.match
    h = m.handler if m is not None else None
    if h is not None and v.exec_fails:
        out.line(
            f"  would fail: {h.name} takes it, but {v.exec_fails['message']}", fg="red", bold=True
        )
        out.fix(v.exec_fails["fix"])
    elif h is not None:
        out.line(f"  runs with: {h.name} -> {h.interpreter}", fg="green")
    elif v.verdict == "native":
        out.line("  runs natively on this host")
    else:
        out.line("  nothing can run it here: exec gives 'exec format error'", fg="yellow")
    for c in m.candidates if m is not None else ():
        if c.state != "handler":
            out.line(f"  also matches {c.entry.name}: {c.reason}")
    for nm in m.near_misses if m is not None else ():
        out.line(f"  not {nm.entry.name}: {nm.message}")
    for n in v.notes:
        out.line(f"  note: {n}")


NOT_EXEC_WORDS = {
    "ET_REL": "relocatable objects (ET_REL)",
    "ET_CORE": "core dumps (ET_CORE)",
    "archive": "ar archives",
}


@text_renderer(ScanSummary)
def _scan(r: ScanSummary, out: Out) -> None:
    out.line(f"{plural(r.files, 'file')}, {r.elf} ELF, {r.unreadable} unreadable")
    out.line("by architecture: " + ", ".join(f"{k} {v}" for k, v in r.by_arch.items()))
    out.line("by handler:      " + ", ".join(f"{k} {v}" for k, v in r.by_handler.items()))
    if r.not_executable:
        words = ", ".join(f"{NOT_EXEC_WORDS.get(k, k)} {v}" for k, v in r.not_executable.items())
        out.line(f"not executables: {words} (not counted above: nothing runs them)")
    if r.unrunnable:
        out.line(f"{plural(r.unrunnable, 'ELF file')} nothing here can run, e.g.:", fg="yellow")
        for p in r.unrunnable_examples:
            out.line(f"  {p}")
    for n in r.notes:
        out.line(f"note: {n}")
