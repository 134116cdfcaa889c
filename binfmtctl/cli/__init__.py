"""Command line: parse options, call the core, print. Nothing else lives here.

Exit statuses (stable, for scripts): 0 ok; 1 problems found or an operation
failed; 2 usage error or unreadable input.

Each command lives in a module of this package, named for what it is about, and is
imported only when it runs (``LazyGroup``): start-up pays for one command's
definitions, not for all of them.

The console script is :func:`binfmtctl.fastpath.entry_point`: it answers ``--version``
and the boot-time ``apply`` without importing click and hands every other command line
to :func:`_run_main`. ``BinfmtctlError`` does not depend on click; :class:`LazyGroup`
maps it to click's ``Error: <message>`` and exit status, the one place that does.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

import click

from binfmtctl import __version__
from binfmtctl.cli.common import CONTEXT, Ctx, examples_last
from binfmtctl.errors import BinfmtctlError, ExitStatus, error_text

#: command name -> "module:function", in the order --help lists them
COMMANDS = {
    "validate": "binfmtctl.cli.validate:validate",
    "status": "binfmtctl.cli.live:status",
    "show": "binfmtctl.cli.live:show",
    "register": "binfmtctl.cli.live:register",
    "enable": "binfmtctl.cli.live:enable",
    "disable": "binfmtctl.cli.live:disable",
    "remove": "binfmtctl.cli.live:remove",
    "which": "binfmtctl.cli.inspect:which",
    "scan": "binfmtctl.cli.inspect:scan",
    "gen": "binfmtctl.cli.inspect:gen",
    "sandbox": "binfmtctl.cli.sandbox:sandbox",
    "_sandbox-init": "binfmtctl.cli.sandbox:sandbox_init",
    "install": "binfmtctl.cli.emulate:install",
    "uninstall": "binfmtctl.cli.emulate:uninstall",
    "test": "binfmtctl.cli.emulate:test_targets",
    "write-probe": "binfmtctl.cli.probes:write_probe",
    "apply": "binfmtctl.cli.persist:apply",
    "export": "binfmtctl.cli.persist:export",
    "import": "binfmtctl.cli.persist:import_cmd",
    "persist": "binfmtctl.cli.persist:persist_group",
    "doctor": "binfmtctl.cli.doctor:doctor",
    "run": "binfmtctl.cli.run:run",
    "completion": "binfmtctl.cli.completion:completion",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented pattern)."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *super().list_commands(ctx)]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click's lookup, plus "did you mean" for a mistyped command."""
        name = click.utils.make_str(args[0]) if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            from binfmtctl.wording import suggestion

            public = [c for c in self.list_commands(ctx) if not c.startswith("_")]
            ctx.fail(f"No such command {name!r}{suggestion(name, public)}")
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command), target
        return examples_last(cmd)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BinfmtctlError as e:
            raise click_error(e.exit_code)(error_text(e)) from e


@functools.cache
def click_error(exit_code: int) -> type[click.ClickException]:
    """The click exception that shows ``Error: <message>`` and exits ``exit_code`` (click
    reads the status from the class)."""
    return type(f"BinfmtctlError{exit_code}", (click.ClickException,), {"exit_code": exit_code})


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="binfmtctl")
@click.option(
    "--mount",
    envvar="BINFMTCTL_MOUNT",
    default=None,
    metavar="PATH",
    help="binfmt_misc mount to manage [env BINFMTCTL_MOUNT; default /proc/sys/fs/binfmt_misc].",
)
@click.option(
    "--no-color",
    is_flag=True,
    help="No colour, even on a terminal [also when env NO_COLOR is set and not empty].",
)
@click.pass_context
def main(ctx: click.Context, mount: str | None, no_color: bool) -> None:
    """Register, explain and persist Linux binfmt_misc entries (QEMU user-mode emulation).

    \b
    Diagnose:   validate  which  scan  doctor  status  show
    Change:     register  enable  disable  remove  install  uninstall
    Prove:      test  sandbox  run  write-probe
    Persist:    apply  export  import  persist

    \b
    Exit status: 0 ok, 1 problems found or an operation failed, 2 usage error.
    Read commands take --json. Nothing is written before everything is validated,
    and a batch that fails midway is rolled back.
    """
    ctx.obj = Ctx(mount)
    if no_color or os.environ.get("NO_COLOR"):
        ctx.color = False  # click strips styles from every echo under this context


def _run_main(argv: Iterable[str] | None = None) -> None:
    try:
        main.main(
            args=list(argv) if argv is not None else None,
            prog_name="binfmtctl",
            standalone_mode=True,
        )
    except BrokenPipeError:
        sys.exit(ExitStatus.PROBLEMS)
