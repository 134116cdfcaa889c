"""``doctor --fix``: the safe fixes for a set of findings (planned purely), and the edge
that carries them out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from binfmtctl import table
from binfmtctl.binfmt_misc import (
    BinfmtMisc,
    open_exec_errno,
)
from binfmtctl.doctor.facts import Finding, HostFacts
from binfmtctl.doctor.hints import mount_fix, qemu_target
from binfmtctl.entry import Entry
from binfmtctl.errors import BinfmtctlError
from binfmtctl.record import dataclass, replace
from binfmtctl.wording import plural


@dataclass(frozen=True)
class FixResult:
    """One fix doctor tried: what, on which entry, whether it worked."""

    code: str
    entry: str | None
    action: str
    ok: bool
    message: str

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "entry": self.entry,
            "action": self.action,
            "ok": self.ok,
            "message": self.message,
        }


STALE_CODES = frozenset(
    {
        "interpreter-missing",
        "interpreter-gone-pinned",
        "interpreter-not-executable",
        "interpreter-wrong-arch",
        "interpreter-dynamic",
        "missing-f-flag",
        "preserve-argv0-mismatch",
    }
)


def plan_fixes(findings: Sequence[Finding], facts: HostFacts) -> list[tuple[str, str | None, str]]:
    """The safe fixes for these findings, in order: (code, entry, action). Pure.

    Actions: ``mount`` (mount or trigger the automount), ``apply-config`` (register
    binfmtctl's configured entries that are missing or differ), ``enable`` (an entry
    binfmtctl owns and configures, disabled), ``reinstall`` (replace a stale QEMU entry
    binfmtctl owns and does not configure with a freshly planned one). Nothing else is
    automatic: other tools' entries, the global status and the host-hijack removal are
    the user's call.
    """
    out: list[tuple[str, str | None, str]] = []
    codes = {f.code for f in findings}
    if codes & {"not-mounted", "automount-untriggered"}:
        code = "not-mounted" if "not-mounted" in codes else "automount-untriggered"
        out.append((code, None, "mount"))
    configured = {c.name: c for c in facts.persist.config_entries}
    live = {e.name: e for e in facts.entries}
    missing = any(f.code == "config-not-live" and f.entry in configured for f in findings)
    if configured and (missing or "not-mounted" in codes):
        out.append(("config-not-live", None, "apply-config"))
    for f in findings:
        if f.entry is None or f.entry not in facts.owned:
            continue
        if f.code == "entry-disabled" and f.entry in configured and configured[f.entry].enabled:
            out.append((f.code, f.entry, "enable"))
        elif (
            f.code in STALE_CODES
            and f.entry not in configured
            and f.entry in live
            and qemu_target(live[f.entry]) is not None
            and not any(a == "reinstall" and n == f.entry for _, n, a in out)
        ):
            out.append((f.code, f.entry, "reinstall"))
    return out


def _apply_config(bm: BinfmtMisc, config_path: str | None) -> str:
    """``binfmtctl apply``: persist's runner makes the live table match the config."""
    from binfmtctl import persist

    if config_path is None:
        raise BinfmtctlError("there is no binfmtctl config to apply", fix="binfmtctl apply")
    report = persist.apply_config(bm, Path(config_path))
    changed = sum(1 for i in report.items if i.done)
    failed = list(report.failed)
    if failed:
        first = failed[0]
        raise BinfmtctlError(
            f"applied {config_path} ({plural(changed, 'change')}) but {', '.join(i.name for i in failed)} failed: {first.message}",
            fix=first.fix or "binfmtctl apply --plan",
        )
    return f"applied {config_path}: {changed} entr{'y' if changed == 1 else 'ies'} registered or replaced"


def _reinstall(bm: BinfmtMisc, entry: Entry, facts: HostFacts) -> str:
    from binfmtctl import install as inst
    from binfmtctl import interpreters
    from binfmtctl.plan import Action

    target = qemu_target(entry)
    if target is None:
        raise BinfmtctlError(
            f"{entry.name} is not a QEMU entry", fix=f"binfmtctl remove {entry.name}"
        )
    t = table.get_target(target)
    info = interpreters.find_interpreter(t, uname_m=facts.uname_m)
    plan = inst.plan_targets([t], {t.name: info}, facts.running, exec_check=open_exec_errno)[0]
    if not plan.ok or plan.entry is None:
        raise BinfmtctlError(
            f"cannot build a working {entry.name}: {plan.error}",
            fix=plan.fix or "binfmtctl install --help",
        )
    new = replace(plan.entry, name=entry.name)
    if new.same_registration(entry):
        raise BinfmtctlError(
            f"{entry.name} is already what binfmtctl would register",
            fix=f"binfmtctl install --replace {t.name}",
        )
    with bm.locked():
        bm.apply([Action("replace", new, entry)])
    return f"replaced {entry.name}: {new.interpreter} flags {new.flags or '-'}"


def apply_fixes(
    findings: Sequence[Finding], facts: HostFacts, mount: str | None = None
) -> list[FixResult]:
    """Carry out :func:`plan_fixes`; every failure is reported, none raises."""
    bm = BinfmtMisc(mount, profile=facts.running)
    results: list[FixResult] = []
    by_name = {e.name: e for e in facts.entries}
    for code, name, action in plan_fixes(findings, facts):
        try:
            if action == "mount":
                st = bm.mount_for_write()
                if not os.path.exists(os.path.join(bm.path, "register")):
                    raise BinfmtctlError(
                        f"{bm.path} still has no register file: the binfmt_misc mount there is hidden by another mount over a parent directory (a read-only bind of /proc/sys?)",
                        fix=f"{mount_fix(facts)}",
                    )
                msg = f"binfmt_misc is {st.state} at {st.path}"
            elif action == "apply-config":
                bm.mount_for_write()
                msg = _apply_config(bm, facts.persist.config_path)
            elif action == "enable" and name is not None:
                bm.set_enabled(name, True)
                msg = f"enabled {name}"
            elif action == "reinstall" and name is not None:
                msg = _reinstall(bm, by_name[name], facts)
            else:  # pragma: no cover - plan_fixes only yields the actions above
                continue
            results.append(FixResult(code, name, action, True, msg))
        except BinfmtctlError as e:
            results.append(FixResult(code, name, action, False, e.format_message()))
        except OSError as e:
            results.append(FixResult(code, name, action, False, f"{e.strerror or e}"))
    return results
