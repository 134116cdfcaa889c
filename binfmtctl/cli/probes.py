"""`write-probe`: the foreign test program `test`, `install` and `doctor --probe` run."""

from __future__ import annotations

import click

from binfmtctl.cli.common import CONTEXT
from binfmtctl.cli.completion import complete_targets


@click.command("write-probe", context_settings=CONTEXT)
@click.argument("target", shell_complete=complete_targets)
@click.argument("directory", default=".", required=False, type=click.Path(file_okay=False))
@click.option(
    "--wait",
    is_flag=True,
    help="A probe that, after its line, waits until stdin closes (aarch64 only): a foreign "
    "process to watch in `binfmtctl status`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the path and the expected output.")
def write_probe(target: str, directory: str, wait: bool, as_json: bool) -> None:
    """Write the probe for TARGET to DIR (default: here) as probe-TARGET, mode 0755.

    The probe is the tiny static program binfmtctl runs to prove a target works: it
    writes one line, `binfmtctl-probe:TARGET`, and exits 0. Run it yourself to reproduce
    what `binfmtctl test` does: the kernel picks the handler, exactly as for any file.
    TARGET is a QEMU name or an alias (arm64, linux/arm/v7, ppc64el...).

    \b
    Examples:
      binfmtctl write-probe arm64 /tmp && /tmp/probe-aarch64
      binfmtctl write-probe riscv64 . && binfmtctl which ./probe-riscv64
      binfmtctl write-probe aarch64 /tmp --wait && sleep 60 | /tmp/probe-aarch64-wait
    """
    from binfmtctl import probe
    from binfmtctl.cli.render.emulate import emit

    emit(probe.save_probe(target, directory, wait=wait), as_json=as_json)
