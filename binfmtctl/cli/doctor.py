"""`binfmtctl doctor`: the host's state as findings, each with its fix."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import click

from binfmtctl.cli.common import CONTEXT, Ctx, emit_json, pass_ctx, scoped
from binfmtctl.cli.completion import complete_targets
from binfmtctl.errors import ExitStatus, UsageError
from binfmtctl.wording import plural

_DOCTOR_HEADINGS = {"error": "ERRORS", "warning": "WARNINGS", "info": "INFO"}


def _print_findings(findings: Sequence[Any]) -> None:
    color = {"error": "red", "warning": "yellow", "info": None}
    for sev, heading in _DOCTOR_HEADINGS.items():
        group = [f for f in findings if f.severity == sev]
        if not group:
            continue
        click.secho(f"{heading} ({len(group)})", fg=color[sev], bold=True)
        for f in group:
            click.secho(f"  {f.code}" + (f"  [{f.entry}]" if f.entry else ""), fg=color[sev])
            click.echo(f"    {f.message}")
            click.echo(f"    fix: {f.fix}")


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help='Print {"findings": [...]} (and "fixes").')
@click.option(
    "--probe", is_flag=True, help="Also run a tiny program per target through the kernel."
)
@click.option(
    "--target",
    "targets",
    shell_complete=complete_targets,
    multiple=True,
    metavar="T",
    help="A target that must work (repeatable; aliases such as arm64 accepted).",
)
@click.option("--kernel", metavar="X.Y", help="Judge the entries as Linux X.Y would (4.4: no F).")
@click.option(
    "--fix", "do_fix", is_flag=True, help="Apply the safe fixes listed above, then check again."
)
@click.option(
    "--root",
    metavar="DIR",
    default="/",
    show_default=True,
    help="Read boot-time configuration (binfmt.d, units, binfmtctl's config) under DIR.",
)
@click.option("--proc", metavar="DIR", default="/proc", hidden=True)
@pass_ctx
def doctor(
    obj: Ctx,
    as_json: bool,
    probe: bool,
    targets: tuple[str, ...],
    kernel: str | None,
    do_fix: bool,
    root: str,
    proc: str,
) -> None:
    """Find what stops foreign binaries from running here, and say how to fix each thing.

    Checks: kernel support (binfmt_misc, F >= 4.8, P via AT_FLAGS >= 5.12, per-namespace
    tables >= 6.7); the mount (absent, untriggered automount, read-only) and global status;
    the context (root, CAP_SYS_ADMIN, container, user namespace, WSL) and who sees the
    registrations; every entry (disabled, interpreter missing / gone but pinned /
    not executable / dynamically linked / wrong architecture, no F, magic written as bare
    hex, masks that leave the ELF machine open, C/O with a writable interpreter, P that
    disagrees with the interpreter, entries that match the host's own binaries); overlapping
    entries and which one wins; persistence (entries lost at reboot, configured entries not
    live, boot-time managers undoing each other, systemd-binfmt restarts that flush); whether
    rootless emulation (binfmtctl run) works. --probe runs a tiny program per target.

    Each finding has a code, a severity, the entry, a message and the fix. Exit 0 when
    there is no error and no warning, else 1.

    \b
    --fix applies only safe fixes, then checks again: mount binfmt_misc (or trigger the
    automount), register binfmtctl's configured entries that are missing or differ, enable
    a disabled entry binfmtctl owns and configures, and replace a stale QEMU entry binfmtctl
    owns with a freshly planned one. Other tools' entries and the global status are never
    changed.

    \b
    Examples:
      binfmtctl doctor
      binfmtctl doctor --probe --target arm64 --target riscv64
      binfmtctl doctor --kernel 4.4 --json
    """
    from binfmtctl import doctor as doc

    if kernel is not None:
        from binfmtctl.rules import KernelProfile

        try:
            KernelProfile.parse(kernel)
        except ValueError as e:
            raise UsageError(str(e), fix="--kernel 4.4, --kernel 5.10, ...") from None

    from binfmtctl.rootfs import Root

    Root(root).close()  # a missing --root is an error, never an empty image

    def raw_check() -> list[Any]:
        facts = doc.gather(
            obj.mount, root=root, proc=proc, kernel=kernel, targets=targets, probe=probe
        )
        return [facts, doc.run_checks(facts)]

    def check() -> list[Any]:
        facts, found = raw_check()
        config = facts.persist.config_path
        return [
            facts,
            [replace(f, fix=scoped(f.fix, root=root, kernel=kernel, config=config)) for f in found],
        ]

    facts, findings = check()
    fixes: list[Any] = []
    if do_fix:
        fixes = doc.apply_fixes(findings, facts, obj.mount)
        if fixes:
            facts, findings = check()
    if as_json:
        data = doc.to_json(findings)
        if do_fix:
            data["fixes"] = [f.to_json() for f in fixes]
        emit_json(data)
    else:
        n = len(facts.entries)
        click.echo(
            f"binfmtctl doctor: Linux {facts.profile.label}, binfmt_misc at {facts.mount.path}: "
            f"{facts.mount.state}{' (read-only)' if facts.mount.read_only else ''}, "
            f"{n} entr{'y' if n == 1 else 'ies'}"
        )
        if do_fix:
            if not fixes:
                click.echo("--fix: nothing doctor can fix by itself")
            for r in fixes:
                click.secho(
                    f"{'fixed' if r.ok else 'FAILED'} ({r.action}"
                    + (f" {r.entry}" if r.entry else "")
                    + f"): {r.message}",
                    fg="green" if r.ok else "red",
                )
        _print_findings(findings)
        counts = {s: sum(1 for f in findings if f.severity == s) for s in _DOCTOR_HEADINGS}
        if doc.has_problems(findings):
            click.secho(
                f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}: see the fixes above",
                fg="red" if counts["error"] else "yellow",
            )
        else:
            click.secho("healthy: no errors, no warnings", fg="green")
    if doc.has_problems(findings):
        sys.exit(ExitStatus.PROBLEMS)
