"""`write-probe`: the foreign test program `test`, `install` and `doctor --probe` run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from binfmtctl.cli.common import CONTEXT, emit_json, fail
from binfmtctl.cli.completion import complete_targets
from binfmtctl.errors import UsageError


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
    from binfmtctl import probe, table

    name = table.get_target(target).name
    try:
        image = probe.build_probe(name, wait=wait)
    except probe.UnknownTargetError as e:
        raise UsageError(str(e), fix="binfmtctl write-probe aarch64 --wait") from None
    d = Path(directory)
    if not d.is_dir():
        fail(f"{directory} is not a directory", fix=f"mkdir -p {directory}")
    path = d / f"probe-{name}{'-wait' if wait else ''}"
    try:  # all or nothing: a temporary file renamed over the name (never through a symlink)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=d)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(image)
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        fail(
            f"cannot write {path}: {e.strerror}",
            fix="pick a directory you can write (binfmtctl write-probe TARGET /tmp)",
        )
    expected = probe.marker(name).decode().rstrip("\n")
    if as_json:
        emit_json({"target": name, "path": str(path), "expected_output": expected})
        return
    click.echo(f"wrote {path} ({len(image)} bytes, static {name} ELF)")
    click.echo(f"run it: {path if path.is_absolute() else './' + str(path)}")
    click.echo(f"it prints `{expected}` and exits 0 when {name} emulation works here")
