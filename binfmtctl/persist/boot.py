"""Where else entries come from at boot (:func:`boot_sources`, :func:`persistent_sources`):
binfmt.d directories with systemd's same-file-name override and masking rules,
update-binfmts' database and import directory, and binfmtctl's config.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from binfmtctl.entry import (
    EntryParseError,
    iter_binfmt_d_lines,
    parse_register,
    parse_update_binfmts,
)
from binfmtctl.errors import BinfmtctlError
from binfmtctl.persist.config import parse_config
from binfmtctl.persist.formats import parse_binfmts_admin
from binfmtctl.persist.paths import IGNORED_SUFFIXES, config_path, in_root, resolve_in_root
from binfmtctl.record import dataclass
from binfmtctl.rootfs import read_regular
from binfmtctl.rules import KernelProfile
from binfmtctl.systemd_paths import BINFMT_D_DIRS, BINFMTS_ADMIN_DIR, BINFMTS_IMPORT_DIR


# -- where else entries come from at boot -------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    name: str
    path: str  # on disk (under root)
    line: int  # 0 for one-entry-per-file formats
    kind: str  # binfmtctl | binfmt.d | update-binfmts | update-binfmts-import

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path, "line": self.line, "kind": self.kind}


def _masks(root: str, directory: str, name: str) -> bool:
    """systemd's ``null_or_empty``: a link to /dev/null or an empty file masks a name."""
    listed = resolve_in_root(root, directory) / name
    with contextlib.suppress(OSError):
        if os.readlink(listed) == os.devnull:
            return True
    try:
        st = resolve_in_root(root, f"{directory}/{name}").stat()
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0)


def effective_binfmt_d(
    listing: Sequence[tuple[str, Sequence[str]]], masked: Callable[[str, str], bool]
) -> list[tuple[str, str]]:
    """(directory, file name) of the binfmt.d files systemd-binfmt applies, in its order.
    ``listing``: each directory (highest priority first) and its ``*.conf`` names. A name
    in a higher directory hides the same name below; a masked one hides it and is not
    applied. Files are applied in lexicographic order of name, whatever the directory. Pure."""
    chosen: dict[str, str | None] = {}
    for d, names in listing:
        for n in names:
            if n.endswith(".conf") and n not in chosen:
                chosen[n] = None if masked(d, n) else d
    return [(d, n) for n, d in sorted(chosen.items()) if d is not None]


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def boot_sources(root: str = "/", config: Path | None = None) -> list[Source]:
    """Every (entry name, file) that would register an entry at boot on the system at
    ``root``, in the order each manager applies them. Edge (reads files)."""
    cfg = config if config is not None else config_path(root)
    cfg_real = os.path.realpath(cfg)
    out: list[Source] = []
    listing = [(d, _listdir(resolve_in_root(root, d))) for d in BINFMT_D_DIRS]
    files = effective_binfmt_d(listing, lambda d, n: _masks(root, d, n))
    seen_cfg = False
    for d, n in files:
        disk = in_root(root, f"{d}/{n}")
        try:
            data = read_regular(resolve_in_root(root, f"{d}/{n}"))
        except (OSError, BinfmtctlError):
            continue
        kind = "binfmtctl" if os.path.realpath(disk) == cfg_real else "binfmt.d"
        seen_cfg = seen_cfg or kind == "binfmtctl"
        for lineno, rule in iter_binfmt_d_lines(data):
            try:
                e = parse_register(rule, KernelProfile.current_default())
            except (EntryParseError, ValueError):
                continue  # systemd-binfmt refuses it: it registers nothing
            out.append(Source(e.name, str(disk), lineno, kind))
    if not seen_cfg:
        try:
            entries, _ = parse_config(read_regular(cfg), str(cfg))
        except (OSError, BinfmtctlError):
            entries = []
        out += [Source(e.name, str(cfg), 0, "binfmtctl") for e in entries]
    for d, kind, parse in (
        (BINFMTS_ADMIN_DIR, "update-binfmts", parse_binfmts_admin),
        (BINFMTS_IMPORT_DIR, "update-binfmts-import", parse_update_binfmts),
    ):
        real = resolve_in_root(root, d)
        for n in _listdir(real):
            if n.startswith(".") or n.endswith(IGNORED_SUFFIXES):
                continue
            try:
                parse(
                    n,
                    read_regular(resolve_in_root(root, f"{d}/{n}")),
                    KernelProfile.current_default(),
                )
            except (OSError, BinfmtctlError, ValueError):
                continue
            out.append(Source(n, str(in_root(root, f"{d}/{n}")), 0, kind))
    return out


def persistent_sources(root: str = "/") -> dict[str, list[str]]:
    """For every entry name something would register at boot, the files that provide it
    (in the order they are applied: within binfmt.d, the last one wins). Sources:
    binfmt.d directories (/etc, /run, /usr/local/lib, /usr/lib, /lib, with systemd's
    same-file-name override and /dev/null or empty-file masks), update-binfmts' database
    /var/lib/binfmts and import directory /usr/share/binfmts, and binfmtctl's config.
    Paths are on disk (under ``root``). Edge (reads files)."""
    out: dict[str, list[str]] = {}
    for s in boot_sources(root):
        paths = out.setdefault(s.name, [])
        if s.path not in paths:
            paths.append(s.path)
    return dict(sorted(out.items()))
