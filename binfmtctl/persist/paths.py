"""Where persistence lives: binfmtctl's config, the unit and its enablement link, and
paths seen from an image root (``systemctl --root`` style). Pure, except
:func:`resolve_in_root` and :func:`config_path` (which reads ``$BINFMTCTL_CONFIG``).
"""

from __future__ import annotations

import os
from pathlib import Path

from binfmtctl.systemd_paths import UNIT_DIR

UNIT_NAME = "binfmtctl.service"
#: the target whose ``.wants/`` holds the enablement link (the unit's ``WantedBy=``)
WANTED_BY = "sysinit.target"
CONFIG_ENV = "BINFMTCTL_CONFIG"
DEFAULT_CONFIG = "/etc/binfmt.d/zz-binfmtctl.conf"
FILE_MODE = 0o644
DIR_MODE = 0o755
CONFIG_HEADER = (
    "binfmtctl's desired state: binfmt_misc entries registered at boot.\n"
    "One register string per line, binfmt.d(5) syntax (:name:type:offset:magic:mask:interpreter:flags).\n"
    "systemd-binfmt loads this file; binfmtctl.service (`binfmtctl apply`) re-applies it\n"
    "without touching other entries. Maintained by `binfmtctl install --persist`,\n"
    "`binfmtctl persist add/remove`, `binfmtctl import` and `binfmtctl uninstall`;\n"
    "hand edits and comments are kept. Check it with `binfmtctl apply --plan`."
)
IGNORED_SUFFIXES = (
    "~",
    ".bak",
    ".orig",
    ".swp",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".rpmnew",
    ".rpmsave",
)
UPDATE_BINFMTS_KEYS = frozenset(
    {
        "package",
        "interpreter",
        "magic",
        "offset",
        "mask",
        "extension",
        "detector",
        "credentials",
        "preserve",
        "fix_binary",
    }
)
RUN_DETECTORS = "/usr/lib/binfmt-support/run-detectors"


# -- paths ------------------------------------------------------------------------------------------
def root_dir(root: str | os.PathLike[str] | None) -> Path:
    return Path(os.path.abspath(root or "/"))


def in_root(root: str | os.PathLike[str] | None, path: str | os.PathLike[str]) -> Path:
    """``path`` as seen by the system at ``root`` (``systemctl --root`` style).

    An absolute path is placed under ``root``; one already under ``root`` is kept, so
    ``--root /mnt/img --config /mnt/img/etc/x.conf`` and ``--config /etc/x.conf`` agree.
    """
    r = root_dir(root)
    p = Path(os.path.abspath(path))
    if r == Path("/") or p == r or r in p.parents:
        return p
    return r / p.relative_to("/")


def inside_path(root: str | os.PathLike[str] | None, path: Path) -> str:
    """The path the booted system sees for an on-disk ``path`` under ``root``."""
    r = root_dir(root)
    if r == Path("/"):
        return str(path)
    try:
        return "/" + str(path.relative_to(r))
    except ValueError:
        return str(path)


def config_path(root: str = "/", override: str | None = None) -> Path:
    """binfmtctl's config: ``override`` (``--config``), else ``$BINFMTCTL_CONFIG``, else
    ``/etc/binfmt.d/zz-binfmtctl.conf``; placed under ``root`` (see :func:`in_root`)."""
    return in_root(root, override or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def unit_path(root: str = "/") -> Path:
    return in_root(root, f"{UNIT_DIR}/{UNIT_NAME}")


def wants_link(root: str = "/") -> Path:
    """The enablement symlink ``systemctl enable`` creates from the unit's ``WantedBy=``."""
    return in_root(root, f"{UNIT_DIR}/{WANTED_BY}.wants/{UNIT_NAME}")


def resolve_in_root(root: str | os.PathLike[str] | None, path: str) -> Path:
    """Follow symlinks in ``path`` component by component, keeping absolute link targets
    inside ``root`` (as a booted system at ``root`` would see them). Edge helper."""
    r = root_dir(root)
    parts = [p for p in path.split("/") if p]
    current = r
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if current != r:
                current = current.parent
            continue
        candidate = current / part
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink (or missing): take it literally
            current = candidate
            continue
        hops += 1
        if hops > 40:
            return candidate
        link_parts = [p for p in target.split("/") if p]
        if target.startswith("/"):
            current = r
        parts = link_parts + parts
    return current
