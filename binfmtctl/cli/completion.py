"""Shell completion through click's own mechanism, and `binfmtctl completion SHELL`.

Commands and options complete by themselves (click walks the command tree); the
callbacks here complete what click cannot know: QEMU target names with their
aliases (from the packaged table) and the live entry names (a directory listing of
the binfmt_misc mount: nothing is mounted or written). A callback never raises: a
broken table or an unreadable mount gives no candidates, not a traceback in the
user's shell.
"""

from __future__ import annotations

import os

import click

TYPE_CHECKING = False
if TYPE_CHECKING:  # imported where a completion runs: every command imports this module
    from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_BINFMTCTL_COMPLETE"
_CONTROL = frozenset({"register", "status"})


def target_names() -> list[tuple[str, str]]:
    """(name or alias, what it is) for every QEMU target, names first."""
    try:
        from binfmtctl import table

        targets = table.table().targets
    except Exception:  # the table is packaged; a broken install completes nothing
        return []
    names = [(t.name, t.description) for t in targets]
    aliases = [(a, f"{t.name}: {t.description}") for t in targets for a in t.aliases]
    return list(dict.fromkeys(names + aliases))


def live_entry_names(ctx: click.Context) -> list[str]:
    """Entry names in the mount --mount (or BINFMTCTL_MOUNT) names; [] when unreadable."""
    root = ctx.find_root()
    mount = root.params.get("mount") or os.environ.get("BINFMTCTL_MOUNT")
    path = mount or "/proc/sys/fs/binfmt_misc"
    try:
        return sorted(n for n in os.listdir(path) if n not in _CONTROL)
    except OSError:
        return []


def complete_targets(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    low = incomplete.lower()
    return [CompletionItem(n, help=h) for n, h in target_names() if n.lower().startswith(low)]


def complete_entries(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(n) for n in live_entry_names(ctx) if n.startswith(incomplete)]


def complete_uninstall(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """`all`, target names and aliases, and live entry names."""
    from click.shell_completion import CompletionItem

    items = [CompletionItem("all", help="every qemu entry binfmtctl registered")]
    items = [i for i in items if i.value.startswith(incomplete)]
    seen = {i.value for i in items}
    for i in complete_entries(ctx, param, incomplete) + complete_targets(ctx, param, incomplete):
        if i.value not in seen:
            seen.add(i.value)
            items.append(i)
    return items


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    It completes commands, options, QEMU targets with their aliases (arm64,
    linux/arm/v7, ...) and the names of the live entries.

    \b
    Examples:
      binfmtctl completion bash > ~/.local/share/bash-completion/completions/binfmtctl
      binfmtctl completion zsh > "${fpath[1]}/_binfmtctl"
      binfmtctl completion fish > ~/.config/fish/completions/binfmtctl.fish
    """
    from click.shell_completion import get_completion_class

    from binfmtctl.cli import main

    cls = get_completion_class(shell)
    assert cls is not None, shell  # every SHELLS entry is one click ships
    click.echo(cls(main, {}, "binfmtctl", COMPLETE_VAR).source())
