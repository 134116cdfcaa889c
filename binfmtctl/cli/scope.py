"""Fix lines that run as printed: a fix carries the options its command runs under."""

from __future__ import annotations

import os

import click


def scoped(
    fix: str, *, root: str | None = None, kernel: str | None = None, config: str | None = None
) -> str:
    """``fix`` carrying the options this command runs under (the global --mount, or
    BINFMTCTL_MOUNT, from the click context; --root, --kernel, --config as given)."""
    from binfmtctl.binfmt_misc import DEFAULT_MOUNT
    from binfmtctl.fixscope import scope_fix

    ctx = click.get_current_context(silent=True)
    mount = ctx.find_root().params.get("mount") if ctx is not None else None
    if mount is not None and os.path.normpath(mount) == DEFAULT_MOUNT:
        mount = None
    if root is not None and os.path.normpath(root) == "/":
        root = config = None
    return scope_fix(fix, mount=mount, root=root, kernel=kernel, config=config)
