"""Text of the live table's writes: `register`, `enable`, `disable`, `remove` (and the plan
lines `install`/`uninstall` share)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from binfmtctl.admission import InUse
from binfmtctl.changes import Change
from binfmtctl.cli.render import Out, render_text, text_renderer
from binfmtctl.cli.render import admission as _checks  # noqa: F401  (their renderers)

_VERB = {
    "add": "register",
    "replace": "replace",
    "keep": "unchanged",
    "conflict": "CONFLICT",
    "remove": "remove",
}
SCOPE_NOTE = (
    "this binfmt_misc belongs to a user namespace (a container or a binfmtctl sandbox): only "
    "processes in it see these entries, not the host or other containers"
)


def actions(out: Out, planned: Sequence[Any], dry_run: bool) -> None:
    """The plan, one line an action; a dry run adds the register strings and the diffs."""
    from binfmtctl.entry import render_register_str
    from binfmtctl.plan import diff_lines

    for a in planned:
        prefix = "would " if dry_run and a.changes else ""
        out.line(
            f"{prefix}{_VERB[a.kind]:<10} {a.entry.name}" + (f"  ({a.note})" if a.note else "")
        )
        if dry_run and a.kind in ("add", "replace"):
            out.line(f"  {render_register_str(a.entry)}")
        if (
            a.kind in ("conflict", "replace")
            and a.old is not None
            and (a.kind == "conflict" or dry_run)
        ):
            for line in diff_lines(a.old, a.entry):
                out.line(line)


@text_renderer(Change)
def _change(r: Change, out: Out) -> None:
    for c in r.checks:  # the checks before the plan: an invalid or unsafe batch
        if not isinstance(c, InUse):
            render_text(c, out)
    if r.verb == "register" and r.actions:
        actions(out, r.actions, r.dry_run or r.conflicts)
    elif r.verb == "remove" and r.dry_run:
        actions(out, r.actions, True)
    for c in r.checks:  # the entries in use, among those the plan changes
        if isinstance(c, InUse):
            render_text(c, out)
    for name in r.done:
        out.line(f"{r.verb}d {name}")
    if r.refusal is not None or r.failure is not None or r.dry_run:
        return
    if r.private_table:
        out.note(SCOPE_NOTE)
    if r.verb == "register":
        n = sum(1 for a in r.actions if a.changes)
        out.line(
            f"done: {n} change{'s' * (n != 1)}"
            if n
            else "nothing to do: every entry is already registered as given"
        )
    elif r.verb == "remove":
        for a in r.actions:
            out.line(f"removed {a.entry.name}")
        if not r.actions:
            out.line("nothing to remove")
