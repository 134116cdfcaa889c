"""`binfmtctl validate`: would the kernel accept this register string, and if not, why."""

from __future__ import annotations

import click

from binfmtctl.cli.common import CONTEXT, Ctx, pass_ctx, read_inputs
from binfmtctl.errors import UsageError


@click.command(context_settings=CONTEXT)
@click.argument("entries", nargs=-1)
@click.option(
    "-f",
    "--file",
    "file",
    metavar="FILE|-",
    help="Read register strings from FILE, one per line (- for stdin).",
)
@click.option(
    "--kernel",
    "kernel",
    metavar="X.Y",
    help="Judge as Linux X.Y would (default: the running kernel).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per input.")
@pass_ctx
def validate(
    obj: Ctx, entries: tuple[str, ...], file: str | None, kernel: str | None, as_json: bool
) -> None:
    """Say whether the kernel would accept each register string, and if not why.

    Each ENTRY is a register string, ':name:type:offset:magic:mask:interpreter:flags',
    judged exactly as `echo ENTRY > /proc/sys/fs/binfmt_misc/register` would write it
    (the string plus one newline). Errors name the field, point at the bytes, give the
    errno the kernel would return and the fix. Warnings flag what the kernel accepts but
    is almost surely a mistake (magic written as bare hex, a raw NUL that truncates,
    a mask that matches other architectures).

    \b
    Examples:
      binfmtctl validate ':qemu-arm:M::\\x7fELF\\x01::/usr/bin/qemu-arm-static:F'
      binfmtctl validate --kernel 4.4 -f /usr/lib/binfmt.d/qemu-aarch64.conf
      grep -h . /etc/binfmt.d/*.conf | binfmtctl validate -f - --json
    """
    from binfmtctl import validation
    from binfmtctl.cli.render import emit
    from binfmtctl.cli.render import validate as _texts  # noqa: F401  (registers the renderer)
    from binfmtctl.kernelprofile import KernelProfile

    try:
        profile = KernelProfile.parse(kernel) if kernel else KernelProfile.current_default()
    except ValueError as e:
        raise UsageError(str(e)) from None
    inputs = read_inputs(entries, file)
    if not inputs:
        raise UsageError(
            "nothing to validate: give ENTRY arguments or -f FILE",
            fix="binfmtctl validate ':name:M::magic::/path/to/interpreter:F'",
        )
    emit(validation.check(inputs, profile, obj.mount), as_json=as_json)
