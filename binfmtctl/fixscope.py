"""Fixes that run as printed. A fix given under ``--mount``, ``--root``, ``--kernel`` (or
``--config``) names that option too: ``persist status --root DIR`` suggests
``binfmtctl persist enable --root DIR``, never a bare ``persist enable`` that would change
the real /etc. Pure: the options are passed in.
"""

from __future__ import annotations

import re
import shlex

#: commands that take --root DIR (the offline image they work on)
ROOT_COMMANDS = frozenset({"persist enable", "persist disable", "persist status", "doctor"})
#: commands that take --config FILE
CONFIG_COMMANDS = frozenset(
    {
        "persist enable",
        "persist disable",
        "persist status",
        "persist add",
        "persist save",
        "persist remove",
        "apply",
        "import",
    }
)
#: commands that never touch the --mount table (private tables, pure output)
NO_MOUNT_COMMANDS = frozenset({"run", "sandbox", "gen", "write-probe", "completion"})
#: commands that take --kernel X.Y and judge by it
KERNEL_COMMANDS = frozenset({"doctor", "validate"})

#: binfmtctl's commands (``cli.COMMANDS``, a test keeps them equal): only these are rewritten,
#: so prose such as "the binfmtctl that runs at boot" is left alone
COMMANDS = frozenset(
    {
        "validate", "status", "show", "register", "enable", "disable", "remove", "which",
        "scan", "gen", "sandbox", "install", "uninstall", "test", "write-probe", "apply",
        "export", "import", "persist", "doctor", "run", "completion",
    }
)  # fmt: skip
_SUBGROUPS = {"persist": ("enable", "disable", "status", "add", "save", "remove")}
# "binfmtctl [--mount X] COMMAND [SUBCOMMAND]" where the fix names a command to run
_CMD = re.compile(r"\bbinfmtctl((?: --mount (?:'[^']*'|\S+))?) ([a-z][a-z-]*)(?: ([a-z]+))?")


def _has(rest: str, option: str) -> bool:
    """Does the command (up to the next sentence or alternative) already give ``option``?"""
    head = re.split(r"  |\(|;|,| or | && |\)", rest, maxsplit=1)[0]
    return re.search(rf"(?:^|\s){re.escape(option)}(?:[\s=]|$)", head) is not None


def scope_fix(
    fix: str,
    *,
    mount: str | None = None,
    root: str | None = None,
    kernel: str | None = None,
    config: str | None = None,
) -> str:
    """``fix`` with every ``binfmtctl`` command in it carrying the options it was given
    under (only to commands that take them)."""
    if not any((mount, root, kernel, config)):
        return fix
    out: list[str] = []
    pos = 0
    for m in _CMD.finditer(fix):
        given_mount, cmd, sub = m.group(1), m.group(2), m.group(3)
        if cmd not in COMMANDS:
            continue
        name = cmd
        consumed = m.end()
        if sub is not None and sub in _SUBGROUPS.get(cmd, ()):
            name = f"{cmd} {sub}"
        elif sub is not None:
            consumed = m.start(3) - 1  # the word after a plain command is its argument
        rest = fix[consumed:]
        words = ["binfmtctl"]
        if given_mount:
            words.append(given_mount.strip())
        elif mount and name not in NO_MOUNT_COMMANDS:
            words.append(f"--mount {shlex.quote(mount)}")
        words.append(name)
        if root and name in ROOT_COMMANDS and not _has(rest, "--root"):
            words.append(f"--root {shlex.quote(root)}")
        if config and name in CONFIG_COMMANDS and not _has(rest, "--config"):
            words.append(f"--config {shlex.quote(config)}")
        if kernel and name in KERNEL_COMMANDS and not _has(rest, "--kernel"):
            words.append(f"--kernel {shlex.quote(kernel)}")
        out.append(fix[pos : m.start()])
        out.append(" ".join(words))
        pos = consumed
    out.append(fix[pos:])
    return "".join(out)
