"""Persistence checks: what a reboot restores, boot-time managers that undo each
other, entries a systemd-binfmt restart flushes. Pure functions of :class:`HostFacts`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from binfmtctl import boot_view
from binfmtctl.doctor.facts import Finding, HostFacts, PersistFacts
from binfmtctl.doctor.hints import in_binfmt_d, register_cmd
from binfmtctl.entry import Entry
from binfmtctl.record import replace


# -- check: persistence ------------------------------------------------------------------------------
def _manager_of(path: str, p: PersistFacts) -> str:
    if p.config_path is not None and path == p.config_path:
        return "binfmtctl"
    parts = path.split(os.sep)
    if "binfmt.d" in parts:
        return "systemd-binfmt"
    if "binfmts" in parts:
        return "binfmt-support"
    return "other"


def _effective(files: Iterable[str], p: PersistFacts) -> tuple[str, ...]:
    """The sources that really register something at boot: update-binfmts files count
    only while binfmt-support is enabled (packages ship them whether it is installed or not)."""
    return tuple(
        f
        for f in files
        if _manager_of(f, p) != "binfmt-support" or p.managers.binfmt_support_active
    )


def _apply_fix_for(name: str, files: Sequence[str], p: PersistFacts) -> str:
    kinds = {_manager_of(f, p) for f in files}
    if "binfmtctl" in kinds:
        return "binfmtctl apply  (or binfmtctl doctor --fix)"
    if "systemd-binfmt" in kinds:
        f = next(f for f in files if _manager_of(f, p) == "systemd-binfmt")
        return f"/lib/systemd/systemd-binfmt {f}  (applies that file only; never restart systemd-binfmt: it flushes every entry)"
    if "binfmt-support" in kinds:
        imported = any("/var/lib/binfmts/" in f for f in files)
        return f"update-binfmts --enable {name}" + (
            "" if imported else f"  (after update-binfmts --import {name})"
        )
    return f"register it from {files[0]}"


def _check_unit_error(p: PersistFacts) -> list[Finding]:
    """binfmtctl's unit could not be looked at: said, and the other checks went on."""
    why = p.managers.binfmtctl_unit_error
    if why is None:
        return []
    return [
        Finding(
            "persistence-unchecked",
            "info",
            None,
            f"{why}; its ordering against systemd-binfmt was not checked, ignoring",
            "binfmtctl persist enable  (writes the unit again as a regular file)",
        )
    ]


def _check_config_readable(p: PersistFacts) -> list[Finding]:
    if not p.config_error:
        return []
    return [
        Finding(
            "config-not-live",
            "warning",
            None,
            f"binfmtctl's config {p.config_path} cannot be read: {p.config_error}",
            f"fix or remove {p.config_path}; binfmtctl validate -f {p.config_path} points at the bad line",
        )
    ]


def _check_not_persistent(facts: HostFacts) -> list[Finding]:
    """Live entries that no boot-time source (that will run) registers."""
    p = facts.persist
    out: list[Finding] = []
    for e in facts.entries:
        files = _effective(p.sources.get(e.name, ()), p)
        only_cfg = bool(files) and all(
            _manager_of(f, p) == "binfmtctl" and not in_binfmt_d(f) for f in files
        )
        if not files:
            out.append(
                Finding(
                    "not-persistent",
                    "warning",
                    e.name,
                    f"{e.name} is live, but no binfmt.d file, update-binfmts entry or binfmtctl config registers it at boot: it is lost at the next reboot",
                    f"binfmtctl persist save {e.name}  (adds it to binfmtctl's config, which systemd-binfmt and binfmtctl.service load at boot), or add it to /etc/binfmt.d/{e.name}.conf",
                )
            )
        elif only_cfg and not p.managers.binfmtctl_active:
            out.append(
                Finding(
                    "not-persistent",
                    "warning",
                    e.name,
                    f"{e.name} is only in binfmtctl's config ({files[0]}), which is outside binfmt.d, and binfmtctl.service is not enabled: nothing registers it at boot",
                    "binfmtctl persist enable",
                )
            )
    return out


def _check_config_not_live(facts: HostFacts, desired: Mapping[str, Entry]) -> list[Finding]:
    """Configured entries that are not live, or live differently from binfmtctl's config."""
    p = facts.persist
    live = {e.name: e for e in facts.entries}
    out: list[Finding] = []
    for name, all_files in sorted(p.sources.items()):
        files = _effective(all_files, p)
        if not files:
            continue
        le = live.get(name)
        want = desired.get(name)
        if le is None:
            out.append(
                Finding(
                    "config-not-live",
                    "warning",
                    name,
                    f"{name} is configured ({', '.join(files)}) but not registered now: binaries it should run fail with 'exec format error' until it is applied",
                    _apply_fix_for(name, files, p),
                )
            )
        elif want is not None and not want.same_registration(le):
            out.append(
                Finding(
                    "config-not-live",
                    "warning",
                    name,
                    f"the live {name} differs from binfmtctl's config ({p.config_path}): the next boot registers the configured one",
                    "binfmtctl apply  (or binfmtctl doctor --fix) to make the live entry match the config",
                )
            )
    return out


def _check_two_managers(p: PersistFacts) -> list[Finding]:
    """One entry configured by several boot-time managers."""
    out: list[Finding] = []
    for name, all_files in sorted(p.sources.items()):
        files = _effective(all_files, p)
        kinds = {_manager_of(f, p) for f in files} - {"other"}
        if len(kinds) < 2:
            continue
        how = "with different contents"
        if kinds == {"binfmtctl", "systemd-binfmt"}:
            mine = next((c for c in p.config_entries if c.name == name), None)
            theirs = p.binfmt_d_entries.get(name)
            if mine is not None and theirs is not None and mine.same_registration(theirs):
                continue
        else:
            how = "each with its own copy"
        out.append(
            Finding(
                "persistence-tools-conflict",
                "warning",
                name,
                f"{name} is configured by {' and '.join(sorted(kinds))} ({', '.join(files)}), {how}: whichever runs last at boot decides what is registered",
                f"keep one definition: remove {name} from all but one of {', '.join(files)}",
            )
        )
    return out


def check_persistence(facts: HostFacts) -> list[Finding]:
    """Live entries nothing restores at boot; configured entries not live; managers that
    undo each other; entries a systemd-binfmt restart would flush."""
    p = facts.persist
    if not p.checked:
        unchecked = Finding(
            "persistence-unchecked",
            "info",
            None,
            f"whether live entries survive a reboot was not checked: {p.error}",
            "make the boot-time files named above readable, then run binfmtctl doctor again",
        )
        return [unchecked, *_check_managers(facts)]
    out = _check_unit_error(p) + _check_config_readable(p)
    if facts.readable:
        desired = {c.name: c for c in p.config_entries}
        out += _check_not_persistent(facts)
        out += _check_config_not_live(facts, desired)
        out += _check_boot_differs(facts, desired)
    return out + _check_two_managers(p) + _check_managers(facts)


def _check_boot_differs(facts: HostFacts, desired: Mapping[str, Entry]) -> list[Finding]:
    """A live entry that a boot-time source registers differently: the next boot (or a
    systemd-binfmt restart) brings back the other one. binfmtctl's config is compared by
    config-not-live (it is applied last, so it wins over the others)."""
    p = facts.persist
    out: list[Finding] = []
    for e in facts.entries:
        if e.name in desired:
            continue
        effective = set(_effective([f for f, _ in p.boot_definitions.get(e.name, ())], p))
        for path, boot in p.boot_definitions.get(e.name, ()):
            if path not in effective or boot.same_registration(e):
                continue
            how = "; ".join(boot_view.differences(e, boot)) or "another registration"
            out.append(
                Finding(
                    "boot-differs",
                    "warning",
                    e.name,
                    f"the live {e.name} is not what {path} registers at boot ({how}): after the next reboot (or a restart of {_manager_of(path, p)}) {e.name} changes",
                    f"binfmtctl persist save {e.name}  (binfmtctl's config is applied after {path}, so the live registration is the one that comes back), or make the live entry match: {register_cmd(replace(boot, enabled=True))}",
                )
            )
    return out


def _check_managers(facts: HostFacts) -> list[Finding]:
    """Boot-time managers undoing each other, and live entries a systemd-binfmt restart
    flushes (from the unit and binfmt.d files alone)."""
    p = facts.persist
    m = p.managers
    out: list[Finding] = []
    if m.systemd_binfmt_active and m.binfmt_support_active:
        out.append(
            Finding(
                "persistence-tools-conflict",
                "warning",
                None,
                "binfmt-support (update-binfmts, /var/lib/binfmts) and systemd-binfmt (binfmt.d) are both enabled: systemd-binfmt flushes every entry when it (re)starts, binfmt-support registers its own set; which entries survive depends on order and upgrades",
                "keep one manager: on systemd hosts systemctl disable binfmt-support and move its formats to /etc/binfmt.d (binfmtctl export)",
            )
        )
    if m.binfmtctl_active and m.systemd_binfmt_active and not m.binfmtctl_after_systemd_binfmt:
        out.append(
            Finding(
                "persistence-tools-conflict",
                "warning",
                None,
                f"binfmtctl's unit ({m.binfmtctl_unit}) is not ordered after systemd-binfmt.service: at boot systemd-binfmt may flush the entries binfmtctl just registered",
                "binfmtctl persist enable  (re-installs the unit, ordered After=systemd-binfmt.service)",
            )
        )
    if m.systemd_binfmt_active and facts.readable:
        configured = {c.name for c in p.config_entries}
        for e in facts.entries:
            if e.name in p.binfmt_d_names:
                continue
            restored = (
                e.name in configured and m.binfmtctl_active and m.binfmtctl_partof_systemd_binfmt
            )
            if restored:
                continue
            out.append(
                Finding(
                    "systemd-binfmt-flush",
                    "warning",
                    e.name,
                    f"systemd-binfmt is enabled and {e.name} is in no binfmt.d file: any restart of systemd-binfmt (package upgrades do it; so does a systemd container such as minikube or kind sharing this table) flushes it",
                    f"binfmtctl persist save {e.name}  (binfmtctl's config is in /etc/binfmt.d, so systemd-binfmt itself registers it again), or add it to /etc/binfmt.d/{e.name}.conf",
                )
            )
    return out
