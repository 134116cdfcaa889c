"""Can a non-root user change what a path opens? One check for every path run or read as root.

The kernel executes a binfmt_misc interpreter for every matching file, with the credentials
of whoever ran it (root too); with ``C`` it hands over a setuid binary's credentials. Whoever
can change the interpreter path can therefore run code as root. The model is sudo's and
OpenSSH's secure-path checks: walk the path from ``/`` one component at a time, following
symlinks component by component (relative ones from the directory that holds them, ``..``
lexically on the already resolved part), and call it untrusted when

* any symlink on the way is owned by a non-root user (its owner can repoint it);
* any directory or the file itself is owned by a non-root user, or is writable by group or
  others (they can replace or rename what is in it) -- except a root-owned *sticky*
  directory such as ``/tmp``, where only an entry's owner can rename or remove it: the
  entry inside must then be root-owned itself, which the rule above already demands;
* a component is missing in a directory others can create files in (``/tmp/x`` missing:
  anyone can create it);
* the symlinks do not resolve within :data:`MAX_HOPS` (a loop), or the path is relative
  (resolved against the working directory of every process that execs a matching file).

:func:`walk` is pure: it asks ``lookup`` for the lstat facts of each component.
:func:`lookup` is the small I/O function that gathers them; :func:`check` combines the two.
"""

from __future__ import annotations

import posixpath
import stat

from binfmtctl import hostfacts
from binfmtctl.entry import Entry
from binfmtctl.errors import Problem
from binfmtctl.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `binfmtctl validate` imports no collections, typing
    from collections.abc import Callable

#: symlinks followed before giving up (the kernel's own limit is 40)
MAX_HOPS = 40


@dataclass(frozen=True)
class Node:
    """What ``lstat`` says about one path component (and ``readlink`` for a symlink)."""

    uid: int
    mode: int
    target: str | None = None  # for symlinks


if TYPE_CHECKING:
    Lookup = Callable[[str], "Node | None"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of a walk. ``component`` is the offending path as walked (a symlink, a
    directory, the file, or the missing entry), None when the path is trusted. ``resolved``
    is where the walk ended (symlinks followed; as far as it got). ``missing`` says the path
    does not exist (trusted when only root could create it)."""

    path: str
    resolved: str
    component: str | None = None
    reason: str = ""
    fix: str = ""
    missing: bool = False

    @property
    def trusted(self) -> bool:
        return self.component is None


def _owner(uid: int) -> str:
    return "root" if uid == 0 else f"uid {uid}"


def _others_can_create(node: Node) -> bool:
    """Can a non-root user add an entry to this directory?"""
    return node.uid != 0 or bool(node.mode & 0o022)


def _weak(node: Node) -> str | None:
    """Why a non-root user can change this (existing, non-symlink) component, or None."""
    if node.uid != 0:
        return f"is owned by {_owner(node.uid)}"
    if node.mode & 0o022:
        if stat.S_ISDIR(node.mode) and node.mode & stat.S_ISVTX:
            return None  # root-owned sticky (/tmp): only an entry's owner may rename it
        who = (
            "group and others"
            if node.mode & 0o022 == 0o022
            else ("its group" if node.mode & 0o020 else "others")
        )
        return f"is writable by {who} (mode {stat.S_IMODE(node.mode):04o})"
    return None


def walk(path: str, lookup: Lookup, max_hops: int = MAX_HOPS) -> Verdict:
    """Judge ``path`` from ``/`` down, following symlinks one component at a time. Pure."""

    def untrusted(component: str, reason: str, fix: str, resolved: str) -> Verdict:
        return Verdict(path, resolved, component, reason, fix)

    if not path.startswith("/"):
        return untrusted(
            path,
            "is a relative path: it is resolved against the working directory of every "
            "process that runs a matching file",
            "give the interpreter as an absolute path",
            path,
        )
    root = lookup("/")
    if root is None:
        return Verdict(path, "/", missing=True)
    why = _weak(root)
    if why is not None:
        return untrusted("/", f"/ {why}", "chown root / && chmod go-w /", "/")
    resolved = "/"  # a real directory, every component of it checked
    parent = root
    todo = _parts(path)
    todo.reverse()  # a stack: the next component is last
    hops = 0
    while todo:
        comp = todo.pop()
        if comp == ".":
            continue
        if comp == "..":
            resolved = posixpath.dirname(resolved)
            node = lookup(resolved)
            if node is None:  # cannot happen on a real tree; stay safe
                return Verdict(path, resolved, missing=True)
            parent = node
            continue
        here = posixpath.join(resolved, comp)
        node = lookup(here)
        if node is None:
            if _others_can_create(parent):
                return untrusted(
                    here,
                    f"{here} does not exist, and {resolved} lets non-root users create it "
                    f"(owner {_owner(parent.uid)}, mode {stat.S_IMODE(parent.mode):04o})",
                    f"create {here} as root first (or use a path under a root-only directory)",
                    here,
                )
            return Verdict(path, here, missing=True)
        if stat.S_ISLNK(node.mode):
            if node.uid != 0:
                return untrusted(
                    here,
                    f"the symlink {here} is owned by {_owner(node.uid)}, who can repoint it "
                    "at any program",
                    f"point the entry at the real file ({_link_hint(node)}), or replace "
                    f"{here} with a root-owned link",
                    here,
                )
            hops += 1
            if hops > max_hops:
                return untrusted(
                    here,
                    f"more than {max_hops} symlinks from {path} (a loop?)",
                    "fix the symlinks, or name the interpreter's real path",
                    here,
                )
            target = node.target or ""
            todo.extend(reversed(_parts(target)))
            if target.startswith("/"):
                resolved, parent = "/", root
            continue
        why = _weak(node)
        if why is not None:
            return untrusted(
                here,
                f"{here} {why}",
                f"chown root:root {here} && chmod go-w {here}",
                here,
            )
        if todo and not stat.S_ISDIR(node.mode):
            return Verdict(path, here, missing=True)  # ENOTDIR: nobody can make it resolve
        resolved, parent = here, node
    return Verdict(path, resolved)


def _parts(path: str) -> list[str]:
    """Components in order; ``.`` kept (after a non-directory it fails, as in the kernel),
    and a trailing slash read as a final ``.``."""
    parts = [c for c in path.split("/") if c]
    if path.endswith("/") and parts:
        parts.append(".")
    return parts


def _link_hint(node: Node) -> str:
    return f"it points to {node.target}" if node.target else "see readlink -f"


# -- what it means for an entry ------------------------------------------------------------------------
def interpreter_problem(entry: Entry, verdict: Verdict) -> Problem | None:
    """An entry whose interpreter a non-root user controls: an error with ``C``/``O`` (they
    get every matched setuid binary's credentials, or its open file), a warning otherwise
    (they run code as whoever runs a matching file, root included). Pure."""
    if verdict.trusted:
        return None
    credentials = bool(set(entry.flags) & {"C", "O"})
    flag = "C" if "C" in entry.flags else "O"
    if credentials:
        harm = (
            f"with the {flag} flag, they could run code with the privileges of every "
            "matched setuid binary"
        )
        drop = f"drop {flag}, or pass --force"
    else:
        harm = "every matching program, run by anyone (root included), would run their code"
        drop = "or remove the entry"
    return Problem(
        "interpreter",
        f"{entry.name!r}: a non-root user controls the interpreter {entry.interpreter}: "
        f"{verdict.reason}; {harm}",
        f"{verdict.fix}; {drop}",
        errno=None,
        severity="error" if credentials else "warning",
        rule="safety.credentials" if credentials else "safety.interpreter-untrusted",
        extra={"component": verdict.component},
    )


# -- the edge ----------------------------------------------------------------------------------------
def lookup(path: str) -> Node | None:
    """lstat (and readlink) one component; None when it does not exist or cannot be read."""
    facts = hostfacts.lookup(path)
    return None if facts is None else Node(*facts)


def check(path: str) -> Verdict:
    """Is ``path`` controlled by root alone? Edge: reads the file system."""
    return walk(path, lookup)
