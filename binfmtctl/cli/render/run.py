"""Text of `run`'s report: the plan, on stdout for --dry-run, else on stderr (stdout
belongs to COMMAND); then the run ends as the report says (refused: exit 125)."""

from __future__ import annotations

from binfmtctl.cli.render import Out, render_text, text_renderer
from binfmtctl.cli.render import admission as _checks  # noqa: F401  (their renderers)
from binfmtctl.rootless_run import RunReport


@text_renderer(RunReport)
def _run(r: RunReport, out: Out) -> None:
    _plan(r, out)
    refused = r.refusal()
    if r.safety is not None:
        render_text(r.safety, out)
    if refused is not None:
        raise refused
    ids = r.ids
    if r.dry_run:
        if ids.subordinate:
            out.line("container engines: your subordinate ids are mapped (podman build works)")
        else:
            out.line(f"container engines: only you are mapped: {ids.reason}")
            out.fix(ids.fix)
        return
    if r.verbose:
        out.line(
            "running COMMAND as root of a private user namespace (not root on the host)", err=True
        )
    if r.engine_warning:
        out.warning(r.engine_warning)
    elif r.verbose and ids.subordinate:
        out.line("mapping your subordinate ids too (/etc/subuid, /etc/subgid)", err=True)


def _plan(r: RunReport, out: Out) -> None:
    rp, avail, dry_run, verbose = r.plan, r.availability, r.dry_run, r.verbose
    err = not dry_run
    if dry_run:
        out.line(
            f"rootless emulation: {'available' if avail.available else 'NOT available'}: {avail.reason}"
        )
        if not avail.available:
            out.fix(avail.fix)
    if dry_run or verbose:
        if rp.entries:
            out.line(
                "would register in a private binfmt_misc:" if dry_run else "registering:", err=err
            )
        for e in rp.entries:
            out.line(f"  {e.name:<20} {e.flags or '-':<4} {e.interpreter}", err=err)
    for s in rp.skipped:
        dynamic = "dynamically linked" in s.reason
        if dry_run or verbose or dynamic:
            out.line(f"skipped  {s.name}: {s.reason}", fg="yellow" if dynamic else None, err=err)
            if s.fix and (dynamic or dry_run):
                out.fix(s.fix, err=err)
    if len(rp.refusals) > 1:
        for x in rp.refusals:
            out.line(f"REFUSED  {x.target or 'run'}: {x.reason}", fg="red", err=True)
            out.fix(x.fix, err=True)
