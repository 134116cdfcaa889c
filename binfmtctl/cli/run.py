"""`binfmtctl run`: rootless emulation in a private user namespace."""

from __future__ import annotations

import os
from typing import Any

import click

from binfmtctl.cli.common import CONTEXT
from binfmtctl.errors import BinfmtctlError, CommandNotFound


class _RunUsageError(click.UsageError):
    """A bad `run` invocation: 125, like binfmtctl's other failures inside `run`."""

    exit_code = 125


class _RunCommand(click.Command):
    """`run` exits 125 for its own usage errors too, so COMMAND's statuses stay unambiguous."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _RunUsageError:
            raise
        except click.UsageError as e:
            raise _RunUsageError(e.message, ctx=e.ctx) from None


class _RunFailures:
    """Turn binfmtctl's own failures (any BinfmtctlError, an OSError) into exit 125;
    COMMAND-not-runnable errors (126, 127) pass through."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        from binfmtctl import rootless

        if exc is None or isinstance(
            exc, (rootless.RunRefused, rootless.CannotExecute, CommandNotFound, _RunUsageError)
        ):
            return
        if isinstance(exc, BinfmtctlError):
            raise rootless.RunRefused(exc.message, fix=exc.fix) from None
        if isinstance(exc, click.UsageError):
            raise _RunUsageError(exc.message, ctx=exc.ctx) from None
        if isinstance(exc, OSError):
            raise rootless.RunRefused(
                f"cannot set up the private namespace: {exc}",
                fix="see binfmtctl run --help; binfmtctl run --dry-run says what would be done",
            ) from None


@click.command(
    "run",
    cls=_RunCommand,
    context_settings={**CONTEXT, "allow_interspersed_args": False},
)
@click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    metavar="TARGET",
    help="Emulate TARGET (a QEMU name or alias: arm64, linux/arm/v7, riscv64...); repeatable. "
    "Default: every target whose QEMU is installed, minus the host's own family.",
)
@click.option(
    "--qemu-path",
    metavar="DIR",
    help="Look for qemu-<target><suffix> only in DIR (as `install --qemu-path`).",
)
@click.option(
    "--qemu-suffix",
    metavar="S",
    help="Interpreter name suffix to look for (default: '-static', then none).",
)
@click.option(
    "--allow-dynamic",
    is_flag=True,
    help="Accept a dynamically linked QEMU: fine for programs on this filesystem, broken in "
    "containers and chroots started from COMMAND.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say whether rootless emulation works here and what would be registered; run nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Say on stderr what is registered before COMMAND starts."
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(
    targets: tuple[str, ...],
    qemu_path: str | None,
    qemu_suffix: str | None,
    allow_dynamic: bool,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with QEMU emulation, as any user, without root and without touching the host.

    COMMAND runs in a new user and mount namespace (Linux >= 6.7) with its own binfmt_misc,
    where QEMU is registered for the TARGETs: foreign binaries run, for COMMAND and everything
    it starts (a shell, make, a container engine that does not mount its own binfmt_misc).
    You are root only inside that namespace: files you create are yours, and you gain no
    privilege on the host. Your working directory, environment, files, stdin/stdout/stderr and
    COMMAND's exit status pass through. The host's binfmt_misc table is neither read nor
    changed, and the entries vanish when COMMAND exits. Inside, BINFMTCTL_SANDBOX=1 is set.

    Entries are the ones `install` would make (qemu-TARGET, QEMU's magic/mask, F, and P for
    Debian's -binfmt-P interpreters). A named TARGET must work: a missing interpreter, or a
    dynamically linked one (unless --allow-dynamic), refuses the run. With F the kernel pins
    the interpreter file but still loads a dynamic QEMU's loader and libraries from the root
    of each program run, so it works for programs on this filesystem and fails inside
    containers and chroots. Without TARGETs, such targets are skipped (with a warning for a
    dynamic QEMU).

    Container engines (podman, buildah) inside need your subordinate ids: when /etc/subuid and
    /etc/subgid give you a range (and newuidmap/newgidmap are installed), the namespace maps
    it as rootless podman does and podman uses your usual image store, so
    `binfmtctl run -- podman build --platform linux/arm64 .` runs the RUN steps through QEMU
    with no root anywhere. Without a range, run warns before starting podman and names the fix.

    Refused, with the reason and the fix: Linux older than 6.7; user namespaces forbidden
    (user.max_user_namespaces = 0, kernel.unprivileged_userns_clone = 0, AppArmor's
    kernel.apparmor_restrict_unprivileged_userns = 1, a container's seccomp profile).

    \b
    Exit status: COMMAND's own when it ran;
      125  binfmtctl refused or failed (bad usage included): nothing ran
      126  COMMAND was found but cannot be executed
      127  COMMAND was not found

    \b
    Examples:
      binfmtctl run --target arm64 -- ./hello-arm64
      binfmtctl run -t arm64 -t riscv64 -- make test
      binfmtctl run -- sh          (every installed QEMU target)
      binfmtctl run -t arm64 -- podman build --platform linux/arm64 -t app:arm64 .
      binfmtctl run --dry-run      (does it work here? what would be registered?)
    """
    with _RunFailures():
        _run(targets, qemu_path, qemu_suffix, allow_dynamic, dry_run, as_json, verbose, command)


def _run(
    targets: tuple[str, ...],
    qemu_path: str | None,
    qemu_suffix: str | None,
    allow_dynamic: bool,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
    command: tuple[str, ...],
) -> None:
    from binfmtctl import rootless_run
    from binfmtctl import sandbox as sb
    from binfmtctl.cli.render import emit
    from binfmtctl.cli.render import run as _texts  # noqa: F401  (registers the renderer)

    if as_json and not dry_run:
        raise _RunUsageError("--json describes the plan: use it with --dry-run")
    if not command and not dry_run:
        raise _RunUsageError(
            "give the command to run after --: binfmtctl run --target arm64 -- COMMAND"
        )
    report = rootless_run.plan(
        targets,
        command,
        qemu_path=qemu_path,
        qemu_suffix=qemu_suffix,
        allow_dynamic=allow_dynamic,
        dry_run=dry_run,
        verbose=verbose,
    )
    emit(report, as_json=as_json)
    if not dry_run:
        ids = report.ids
        env = {**os.environ, **ids.env}
        argv = rootless_run.inner_argv(report)
        sb.exec_in_sandbox(argv, env, check=False, map_args=ids.unshare_args)
