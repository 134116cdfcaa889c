"""Text of the live table's reports: `status`, `show`."""

from __future__ import annotations

import os
from typing import Any

from binfmtctl.cli.render import Out, text_renderer
from binfmtctl.live import ControlFileReport, ShowReport, StatusReport, StatusUnavailable


def hidden_note(out: Out, hidden: int) -> None:
    from binfmtctl.usage import hidden_note
    from binfmtctl.userns import in_initial_user_namespace

    note = hidden_note(hidden, root=os.geteuid() == 0, initial_userns=in_initial_user_namespace())
    if note:
        out.note(note)


@text_renderer(StatusUnavailable)
def _unavailable(r: StatusUnavailable, out: Out) -> None:
    raise r.exception  # shown as the one-line error, with its fix


@text_renderer(StatusReport)
def _status(r: StatusReport, out: Out) -> None:
    st = r.mount
    out.line(
        f"binfmt_misc at {r.path}: {st.state}{' (read-only)' if st.read_only else ''}, "
        f"{'enabled' if r.enabled else 'DISABLED (no entry is used)'}; Linux {r.kernel}"
    )
    for c in r.control_files:
        out.line(f"{c.name}: a control file, {c.mode}, not an entry: {c.message}")
        out.fix(c.fix)
    if not r.entries and (r.entry_names_asked or not r.control_files):
        out.line("no entries" + (" match" if r.asked else " registered"))
    elif r.entries:
        out.line(
            f"{'#':>3}  {'NAME':<22} {'STATE':<8} {'FLAGS':<5} {'INTERPRETER':<44} "
            f"{'OWNER':<9} {'PROCS':>5}  HEALTH"
        )
        for row in r.entries:
            e = row.entry
            out.line(
                f"{row.order:>3}  {e.name:<22} {'enabled' if e.enabled else 'disabled':<8} "
                f"{e.flags or '-':<5} {e.interpreter:<44} {row.owner or '-':<9} "
                f"{len(row.processes):>5}  {row.health}"
            )
    hidden_note(out, r.processes_not_visible)


@text_renderer(ControlFileReport)
def _control(r: ControlFileReport, out: Out) -> None:
    c = r.control
    out.line(f"{r.name}: a control file of binfmt_misc, {c.mode}, not an entry")
    out.line(f"  {c.message}")
    out.fix(c.fix)


@text_renderer(ShowReport)
def _show(r: ShowReport, out: Out) -> None:
    from binfmtctl.entry import FLAG_MEANING, kernel_view

    row, e = r.row, r.entry
    out.line(
        f"{e.name}  (#{row.order} in match order, owner {row.owner or 'unknown'}, "
        f"health {row.health})"
    )
    out.line("kernel view:")
    for line in kernel_view(e).splitlines():
        out.line(f"  | {line}")
    out.line(f"register string: {row.register}")
    for f in row.findings:
        out.line(
            f"{f.severity} {f.code}: {f.message}", fg="red" if f.severity == "error" else "yellow"
        )
        out.fix(f.fix)
    for flag in e.flags:
        out.line(f"  {flag}: {FLAG_MEANING[flag]}")
    if row.kind:
        out.line(f"recognised as: {kind_text(row.kind)}")
    out.line(
        f"processes running through it: {len(row.processes)}"
        + (" (that this user can see)" if r.hidden else "")
    )
    for p in row.processes:
        j = p.to_json()
        out.line(
            f"  {j['pid']:>7}  {j['username'] or '?':<10} {' '.join(j['cmdline']) or j['name']}"
        )
    hidden_note(out, r.hidden)


_HOW = {
    "exact": "QEMU's own magic and mask",
    "equivalent": "matches exactly the files QEMU's magic and mask match",
    "upstream": "QEMU's upstream bytes, which match no real binary",
    "compatible": "matches this target's binaries with a magic/mask of its own",
    "name": "by its name only: its magic does not match this target's binaries",
}


def kind_text(kind: dict[str, Any]) -> str:
    """``table.classify``'s record in words: what the entry is, and how that was told."""
    text = str(kind.get("description") or kind.get("kind"))
    if kind.get("kind") == "qemu":
        text += f" (target {kind['target']}; {_HOW.get(str(kind.get('how')), kind.get('how'))})"
        if kind.get("legacy"):
            text += "; a legacy target"
    also = kind.get("also_matches")
    if also:
        text += f"; it also matches {', '.join(also)} binaries"
    return text
