"""Which ids ``binfmtctl run``'s user namespace maps: just you, or you plus your subordinate ids.

A namespace that maps only the caller (``unshare --map-root-user``) is enough to run foreign
programs, but not for a container engine inside it: image layers hold files of many owners
(root, ``_apt``, ``shadow``...), and a rootless ``podman build`` needs them mapped. Rootless
podman gets them from the caller's ranges in /etc/subuid and /etc/subgid, through the setuid
helpers ``newuidmap``/``newgidmap`` (package uidmap). When the caller has such ranges,
``run`` maps the same way podman itself does (``unshare --map-auto --map-root-user``: you are
0, your first subordinate range is 1..N), and tells podman and buildah that this *is* their
rootless namespace (``_CONTAINERS_USERNS_CONFIGURED``, as podman's own re-exec sets), so they
use your usual storage (~/.local/share/containers) instead of trying to create another
namespace. Then ``binfmtctl run -- podman build --platform linux/arm64 .`` runs its ``RUN``
steps through the private binfmt_misc, with no root at any step.

Pure: :func:`parse_subids`, :func:`plan_idmap`, :func:`engine_warning`.  Edge: :func:`gather`.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Mapping, Sequence

from binfmtctl import proc
from binfmtctl.record import dataclass, field

#: programs that need subordinate ids to build or run images in a user namespace
ENGINES = ("podman", "buildah", "skopeo")


@dataclass(frozen=True)
class Facts:
    uid: int
    gid: int
    user: str | None
    subuid: str | None  # /etc/subuid text (None: unreadable or missing)
    subgid: str | None
    newuidmap: bool
    newgidmap: bool
    map_auto: bool  # unshare knows --map-auto (util-linux >= 2.38)


@dataclass(frozen=True)
class IdMap:
    """How to create the namespace: extra ``unshare`` options and environment, or why not."""

    unshare_args: tuple[str, ...] = ("--map-root-user",)
    env: Mapping[str, str] = field(default_factory=dict)
    subordinate: bool = False
    #: why only the caller is mapped, and the fix (empty when the subordinate ids are mapped)
    reason: str = ""
    fix: str = ""


def parse_subids(text: str, name: str | None, ident: int) -> list[tuple[int, int]]:
    """(start, count) ranges of ``name`` (or the numeric id) in /etc/subuid-format text.
    /etc/subgid is keyed by *user* name too (newgidmap checks the caller's user)."""
    out: list[tuple[int, int]] = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        who, start, count = parts
        if who not in (name, str(ident)):
            continue
        try:
            s, c = int(start), int(count)
        except ValueError:
            continue
        if c > 0 and s >= 0:
            out.append((s, c))
    return out


def plan_idmap(f: Facts) -> IdMap:
    """Map the caller's subordinate ids too when everything needed is there."""
    who = f.user or str(f.uid)
    add = (
        f"as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}"
        " (or add the line '" + who + ":100000:65536' to /etc/subuid and /etc/subgid)"
    )
    if f.uid == 0:
        return IdMap(reason="you are root: only root is mapped", fix="run as a normal user")
    uids = parse_subids(f.subuid or "", f.user, f.uid)
    gids = parse_subids(f.subgid or "", f.user, f.uid)  # keyed by user too (newgidmap)
    if not uids or not gids:
        missing = " and ".join(
            p for p, r in (("/etc/subuid", uids), ("/etc/subgid", gids)) if not r
        )
        return IdMap(reason=f"{who} has no subordinate ids in {missing}", fix=add)
    if not (f.newuidmap and f.newgidmap):
        return IdMap(
            reason="newuidmap/newgidmap are not installed",
            fix="install them (Debian/Ubuntu: apt-get install uidmap; Fedora: shadow-utils)",
        )
    if not f.map_auto:
        return IdMap(
            reason="this unshare cannot map subordinate ids (--map-auto needs util-linux 2.38+)",
            fix="upgrade util-linux",
        )
    env = {
        "_CONTAINERS_USERNS_CONFIGURED": "done",
        "_CONTAINERS_ROOTLESS_UID": str(f.uid),
        "_CONTAINERS_ROOTLESS_GID": str(f.gid),
    }
    return IdMap(("--map-auto", "--map-root-user"), env, subordinate=True)


def engine_warning(command: Sequence[str], idmap: IdMap) -> str | None:
    """A warning when COMMAND is a container engine that will fail without subordinate ids."""
    if not command or idmap.subordinate:
        return None
    name = os.path.basename(command[0])
    if name not in ENGINES:
        return None
    return (
        f"{name} needs subordinate ids inside `binfmtctl run` (image layers have files of many "
        f"owners), and they cannot be mapped: {idmap.reason}; fix: {idmap.fix}"
    )


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _unshare_has_map_auto() -> bool:
    try:
        ran = proc.run(["unshare", "--help"], timeout=10)
    except (OSError, proc.TimedOut):
        return False
    return "--map-auto" in ran.out


def gather() -> Facts:
    uid, gid = os.getuid(), os.getgid()
    try:
        user: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = None
    return Facts(
        uid=uid,
        gid=gid,
        user=user,
        subuid=_read("/etc/subuid"),
        subgid=_read("/etc/subgid"),
        newuidmap=shutil.which("newuidmap") is not None,
        newgidmap=shutil.which("newgidmap") is not None,
        map_auto=_unshare_has_map_auto(),
    )
