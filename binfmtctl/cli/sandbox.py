"""`binfmtctl sandbox` and the hidden `_sandbox-init` that runs inside the new namespace."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from typing import Any

import click

from binfmtctl.cli.common import CONTEXT, _parse_batch, read_sourced
from binfmtctl.cli.run import _RunFailures
from binfmtctl.errors import CommandNotFound, UsageError


@click.command(context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.option(
    "--entry",
    "entries",
    multiple=True,
    metavar="ENTRY",
    help="Register this string in the sandbox (repeatable).",
)
@click.option(
    "-f", "--file", "file", metavar="FILE", help="Register the strings in FILE (binfmt.d syntax)."
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sandbox(entries: tuple[str, ...], file: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND with a private binfmt_misc holding just the given entries.

    Scope: COMMAND runs in a new user and mount namespace (Linux >= 6.7), as root
    of that namespace only. Its binfmt_misc starts empty; the entries you give are
    registered there and are used by COMMAND and everything it starts. The host's
    table is neither read nor changed, and everything vanishes when COMMAND exits.
    Its exit status is COMMAND's. Needs no root where unprivileged user namespaces
    are allowed.

    \b
    Example:
      binfmtctl sandbox -f /usr/lib/binfmt.d/qemu-aarch64.conf -- ./hello-arm64

    \b
    Examples:
      binfmtctl sandbox --entry "$(binfmtctl gen arm64)" -- ./hello-arm64
      binfmtctl sandbox -f qemu.conf -- sh
    """
    from binfmtctl import sandbox as sb

    if not command:
        raise UsageError(
            "give the command to run after --", fix="binfmtctl sandbox --entry ENTRY -- COMMAND"
        )
    sourced = read_sourced(entries, file)
    raws = [r for _, r in sourced]
    from binfmtctl.rules import KernelProfile

    _parse_batch(
        raws, KernelProfile.current_default(), [w for w, _ in sourced]
    )  # refuse bad entries before entering
    inner = [*sb.self_command(), "_sandbox-init"]
    for r in raws:
        inner += ["--entry-hex", r.hex()]
    inner += ["--", *command]
    sb.exec_in_sandbox(inner)


@click.command(
    "_sandbox-init", hidden=True, context_settings={**CONTEXT, "ignore_unknown_options": True}
)
@click.option("--entry-hex", "entries", multiple=True)
@click.option("--target", "targets", multiple=True)
@click.option("--rootless", "rootless_run", is_flag=True)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sandbox_init(
    entries: tuple[str, ...],
    targets: tuple[str, ...],
    rootless_run: bool,
    command: tuple[str, ...],
) -> None:
    """Inside the new namespace: mount, register, exec COMMAND.

    --rootless (for `run`): binfmtctl's own failures exit 125, COMMAND not found 127,
    not executable 126, so COMMAND's own statuses stay unambiguous.
    """
    with _RunFailures() if rootless_run else contextlib.nullcontext():
        desired, state = _private_table(entries)
    env = _child_env(state)
    # COMMAND runs as a child so that its state directory (records, a sandboxed config)
    # is removed when it ends: the namespace dies with it, the directory would not
    pid = os.fork()
    if pid == 0:
        try:
            os.execvpe(command[0], list(command), env)
        except OSError as e:
            if rootless_run:
                from binfmtctl import rootless
                from binfmtctl.install import live_qemu_targets

                registered = live_qemu_targets(desired)
                raise rootless.exec_failure(command[0], e, env.get("PATH"), registered) from None
            raise CommandNotFound(f"cannot run {command[0]!r}: {e.strerror}") from None
    sys.exit(_wait_then_clean(pid, state))


def _child_env(state: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BINFMTCTL_STATE_DIR"] = state
    env["BINFMTCTL_SANDBOX"] = "1"
    # the namespace shares the host's files: persistence must not reach /etc/binfmt.d
    env.setdefault("BINFMTCTL_CONFIG", os.path.join(state, "zz-binfmtctl.conf"))
    # nor the boot plan cache: a plan compiled in here stays in here
    env["BINFMTCTL_CACHE_DIR"] = os.path.join(state, "cache")
    return env


def _private_table(entries: tuple[str, ...]) -> tuple[list[Any], str]:
    """Mount a fresh binfmt_misc, register the entries (hex) in it: (entries, state dir)."""
    import tempfile

    from binfmtctl.binfmt_misc import DEFAULT_MOUNT, BinfmtMisc
    from binfmtctl.plan import plan_register
    from binfmtctl.sandbox import mount_private

    mount_private(DEFAULT_MOUNT)  # never the inherited copy of the host's mount
    state = tempfile.mkdtemp(prefix="binfmtctl-state-")
    try:
        bm = BinfmtMisc(DEFAULT_MOUNT, state_dir=state)
        desired = _parse_batch([bytes.fromhex(h) for h in entries], bm.profile)
        bm.apply(plan_register(desired, bm.entries()))
    except BaseException:
        shutil.rmtree(state, ignore_errors=True)
        raise
    return desired, state


def _wait_then_clean(pid: int, state: str) -> int:
    """Wait for COMMAND as a shell would (^C and ^\\ go to it; TERM and HUP are passed on),
    remove the state directory, and end as COMMAND ended (its status, or its signal)."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _f: os.kill(pid, n))
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except ChildProcessError:
                status = 0
                break
            except InterruptedError:
                continue
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if os.WIFSIGNALED(status):  # end the same way, so callers see COMMAND's signal
        n = os.WTERMSIG(status)
        signal.signal(n, signal.SIG_DFL)
        os.kill(os.getpid(), n)
        return 128 + n
    return os.waitstatus_to_exitcode(status)
