"""Who runs this binary: `which`, `scan`, `gen`."""

from __future__ import annotations

import sys

import click

from binfmtctl.cli.common import CONTEXT, Ctx, pass_ctx, scoped
from binfmtctl.cli.completion import complete_targets
from binfmtctl.errors import UsageError


@click.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per FILE.")
@pass_ctx
def which(obj: Ctx, files: tuple[str, ...], as_json: bool) -> None:
    """Say which entry the kernel would run each FILE with, and why the others don't.

    Reads the file's first bytes and ELF headers (class, byte order, machine, ABI
    flags, static or dynamic), then walks the live entries in the kernel's order:
    the newest enabled match wins. For ELF entries that nearly match, names the
    first differing field ("e_machine is 0x00b7 (AArch64), entry expects 0x0028
    (ARM)"). Says when the host runs the file natively. Exit 1 if a FILE could not
    be read, or if the entry that takes a FILE cannot start its interpreter (no F flag
    and the interpreter is missing or not executable: the exec would fail).

    \b
    Examples:
      binfmtctl which ./hello-arm64
      binfmtctl which --json /srv/rootfs/bin/busybox
    """
    from binfmtctl import which as use_case
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.cli.render.inspect import emit

    live = use_case.live_for_matching(obj.bm())
    emit(use_case.which(files, live, exec_check=open_exec_errno, scope_fix=scoped), as_json=as_json)


@click.command(context_settings=CONTEXT)
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--examples", default=20, show_default=True, help="How many files nothing can run to list."
)
@pass_ctx
def scan(obj: Ctx, dirs: tuple[str, ...], as_json: bool, examples: int) -> None:
    """Walk trees and count ELF files by architecture and by handler.

    Streams the tree (memory stays flat however large it is), reads only the first
    bytes of each regular file, and reports the executables that nothing can run
    (neither natively nor through an enabled entry). Files that are not executables
    (relocatable objects, core dumps, ar archives) are counted apart. Symlinks are not
    followed.

    \b
    Examples:
      binfmtctl scan /srv/arm64-rootfs
      binfmtctl scan --json --examples 5 /var/lib/containers
    """
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.cli.render.inspect import emit
    from binfmtctl.progress import Progress
    from binfmtctl.scan import scan as run_scan
    from binfmtctl.which import live_for_matching

    bar = Progress(sys.stderr, sys.stderr.isatty() and not as_json)  # never with --json
    live = live_for_matching(obj.bm())
    summary = run_scan(dirs, live, examples=examples, exec_check=open_exec_errno, progress=bar)
    emit(summary, as_json=as_json)


@click.command(context_settings=CONTEXT)
@click.argument("target", shell_complete=complete_targets)
@click.option(
    "--interpreter", metavar="PATH", help="Interpreter path [default: /usr/bin/qemu-TARGET-static]."
)
@click.option("--flags", default="F", show_default=True, help="Flags: any of P O C F.")
@click.option("--name", help="Entry name [default: qemu-TARGET].")
@click.option(
    "--binfmt-d",
    "binfmt_d",
    is_flag=True,
    help="Print a commented binfmt.d file instead of the bare string.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the target, the entry and its register string."
)
def gen(
    target: str,
    interpreter: str | None,
    flags: str,
    name: str | None,
    binfmt_d: bool,
    as_json: bool,
) -> None:
    """Print the register string for a QEMU TARGET (any alias: arm64, linux/arm/v7, ppc64el...).

    \b
    Examples:
      binfmtctl gen arm64
      binfmtctl gen linux/riscv64 --binfmt-d > /etc/binfmt.d/qemu-riscv64.conf
      binfmtctl gen aarch64 --json
    """
    from binfmtctl import table
    from binfmtctl.cli.render.inspect import emit

    if as_json and binfmt_d:
        raise UsageError("--json and --binfmt-d are two output formats: pick one")
    gen = table.generate(target, interpreter=interpreter, flags=flags, name=name, binfmt_d=binfmt_d)
    emit(gen, as_json=as_json)
