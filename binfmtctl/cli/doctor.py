"""`binfmtctl doctor`: the host's state as findings, each with its fix."""

from __future__ import annotations

import click

from binfmtctl.cli.common import CONTEXT, Ctx, pass_ctx
from binfmtctl.cli.completion import complete_targets
from binfmtctl.cli.render import emit


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
    from binfmtctl.cli.render import doctor as _renderer  # noqa: F401  (registers the text)
    from binfmtctl.doctor.run import DoctorRequest, run_doctor

    req = DoctorRequest(
        mount=obj.mount,
        root=root,
        proc=proc,
        kernel=kernel,
        targets=targets,
        probe=probe,
        fix=do_fix,
    )
    emit(run_doctor(req), as_json=as_json)
