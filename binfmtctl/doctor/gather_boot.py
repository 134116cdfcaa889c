"""The edge, boot side: what would register entries at the next boot of the system at
``--root`` (binfmt.d files, update-binfmts, binfmtctl's config and unit) and which
boot-time managers would run. Every existence, listing and read goes through
:class:`~binfmtctl.doctor.image.Image`: inside the image, never through its links to the
host.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from binfmtctl import boot_view
from binfmtctl.doctor.facts import ManagerFacts, PersistFacts
from binfmtctl.doctor.hints import in_binfmt_d
from binfmtctl.doctor.image import Image
from binfmtctl.entry import Entry, iter_binfmt_d_lines, parse_register
from binfmtctl.errors import BinfmtctlError
from binfmtctl.rootfs import Root
from binfmtctl.rules import KernelProfile
from binfmtctl.systemd_paths import (
    ADMIN_UNIT_DIRS,
    BINFMT_D_DIRS,
    BINFMT_SUPPORT,
    SYSTEMD_BINFMT,
    UNIT_DIRS,
)

_SYSV_RUNLEVELS = ("rcS.d", "rc2.d", "rc3.d", "rc5.d")


def _unit_exists(image: Image, name: str) -> str | None:
    for d in UNIT_DIRS:
        p = f"{d}/{name}"
        if image.lexists(p):
            return p
    return None


def _unit_masked(image: Image, name: str) -> bool:
    return any(image.readlink(f"{d}/{name}") == "/dev/null" for d in ADMIN_UNIT_DIRS)


def _unit_wanted(image: Image, name: str) -> bool:
    for d in UNIT_DIRS:
        subdirs = [s for s in image.listdir(d) or () if s.endswith((".wants", ".requires"))]
        if any(image.lexists(f"{d}/{s}/{name}") for s in subdirs):
            return True
    return False


def _sysv_enabled(image: Image, name: str) -> bool:
    if not image.exists(f"/etc/init.d/{name}"):
        return False
    for d in _SYSV_RUNLEVELS:
        links = image.listdir(f"/etc/{d}") or ()
        if any(n.startswith("S") and n.lstrip("S0123456789") == name for n in links):
            return True
    return False


def _binfmt_d_nonempty(image: Image) -> bool:
    return any(any(not n.startswith(".") for n in image.listdir(d) or ()) for d in BINFMT_D_DIRS)


def _skipped_on_wsl(image: Image) -> bool:
    for d in UNIT_DIRS:
        dropins = f"{d}/{SYSTEMD_BINFMT}.d"
        for n in image.listdir(dropins) or ():
            text = image.read_text(f"{dropins}/{n}") or ""
            if "ConditionVirtualization=!wsl" in text.replace(" ", ""):
                return True
    return False


def _binfmtctl_unit(image: Image) -> tuple[str | None, bool, str, str | None]:
    """binfmtctl's own unit: (its path when installed, enabled, its text, why it could not
    be read). A unit that is there but unreadable (a FIFO, a directory, too big) is
    reported, never taken for an empty one."""
    from binfmtctl import persist

    root = os.fspath(image.root.path)
    up = os.fspath(persist.unit_path(root))
    if not image.exists(up):
        return None, False, "", None
    enabled = image.islink(os.fspath(persist.wants_link(root)))
    enabled = enabled and not _unit_masked(image, persist.UNIT_NAME)
    try:
        text = image.root.read_bytes(up, 1 << 20).decode("utf-8", "replace")
    except (OSError, ValueError, BinfmtctlError) as e:
        return up, enabled, "", f"{persist.UNIT_NAME} cannot be read: {e}"
    return up, enabled, text, None


def managers_in(image: Image) -> ManagerFacts:
    """Which boot-time managers would touch binfmt_misc, from the files in ``image``."""
    unit_path, enabled, text, unit_error = _binfmtctl_unit(image)
    return ManagerFacts(
        systemd_binfmt_unit=_unit_exists(image, SYSTEMD_BINFMT) is not None,
        systemd_binfmt_wanted=_unit_wanted(image, SYSTEMD_BINFMT),
        systemd_binfmt_masked=_unit_masked(image, SYSTEMD_BINFMT),
        systemd_binfmt_skipped_on_wsl=_skipped_on_wsl(image),
        binfmt_d_nonempty=_binfmt_d_nonempty(image),
        binfmt_support_unit=_unit_exists(image, BINFMT_SUPPORT) is not None,
        binfmt_support_enabled=_unit_wanted(image, BINFMT_SUPPORT)
        and not _unit_masked(image, BINFMT_SUPPORT),
        binfmt_support_sysv=_sysv_enabled(image, "binfmt-support"),
        var_lib_binfmts=tuple(sorted(image.listdir("/var/lib/binfmts") or ())),
        binfmtctl_unit=unit_path,
        binfmtctl_enabled=enabled,
        binfmtctl_unit_text=text,
        binfmtctl_unit_error=unit_error,
    )


def gather_managers(root: str = "/") -> ManagerFacts:
    """:func:`managers_in` the system at ``root``."""
    with Root(root) as r:
        return managers_in(Image(r))


def _binfmt_d_entries(image: Image, files: Iterable[str]) -> dict[str, Entry]:
    """name -> registration, the last file (lexicographic order) winning, as systemd-binfmt."""
    out: dict[str, Entry] = {}
    for path in files:
        data = image.read_bytes(path)
        for _, rule in iter_binfmt_d_lines(data or b""):
            with contextlib.suppress(BinfmtctlError, ValueError):
                e = parse_register(rule, KernelProfile.current_default())
                out[e.name] = e
    return out


def persist_in(image: Image) -> PersistFacts:
    """Boot-time sources of entries (binfmtctl.persist lists them) and the managers. A
    source list that cannot be read is reported (``checked`` False, ``error`` why)."""
    from binfmtctl import persist

    root = os.fspath(image.root.path)
    managers = managers_in(image)
    try:
        raw_sources = persist.persistent_sources(root)
    except (OSError, ValueError, BinfmtctlError) as e:
        why = e.format_message() if isinstance(e, BinfmtctlError) else str(e)
        return PersistFacts(
            checked=False, error=f"cannot list the boot-time sources: {why}", managers=managers
        )
    sources = {str(k): tuple(str(f) for f in v) for k, v in raw_sources.items()}
    config_path = os.fspath(persist.config_path(root))
    entries: tuple[Entry, ...] = ()
    error: str | None = None
    try:
        if image.exists(config_path):
            entries = tuple(persist.read_config(config_path))
    except BinfmtctlError as e:
        error = e.format_message()
    except (OSError, ValueError) as e:
        error = str(e)
    in_d = {n: [f for f in fs if in_binfmt_d(f)] for n, fs in sources.items()}
    others = sorted({f for fs in in_d.values() for f in fs if f != config_path})
    return PersistFacts(
        checked=True,
        sources=sources,
        config_path=config_path,
        config_entries=entries,
        config_error=error,
        binfmt_d_entries=_binfmt_d_entries(image, others),
        binfmt_d_names=frozenset(n for n, fs in in_d.items() if fs),
        managers=managers,
        boot_definitions=boot_view.definitions(sources, skip=[config_path]),
    )


def gather_persist(root: str = "/") -> PersistFacts:
    """:func:`persist_in` the system at ``root``."""
    with Root(root) as r:
        return persist_in(Image(r))


def gather_rootless() -> tuple[bool, str, str]:
    """Whether ``binfmtctl run`` (rootless, private emulation) works here: (ok, why, fix)."""
    from binfmtctl import rootless

    try:
        ok, reason, fix = rootless.availability(rootless.gather_facts())
    except (OSError, ValueError, BinfmtctlError) as e:
        return (False, f"cannot tell: {e}", "binfmtctl run --help")
    return bool(ok), str(reason or ""), str(fix or "")
