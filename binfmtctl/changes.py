"""The live table's write use cases: `register`, `enable`, `disable`, `remove`.

Each takes a :class:`~binfmtctl.binfmt_misc.BinfmtMisc` and plain inputs, runs the checks
of :mod:`binfmtctl.admission` before the first write, plans (:mod:`binfmtctl.plan`), writes,
and returns a :class:`Change`: what was planned and done, the checks' verdicts to show, and
why it stopped (a refusal, or the error a write failed with, after which the table was
rolled back). Nothing here prints; ``binfmtctl.cli.render.live`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Literal

from binfmtctl.admission import Refusal
from binfmtctl.errors import BinfmtctlError
from binfmtctl.record import dataclass, field

Verb = Literal["register", "enable", "disable", "remove"]
_HIDE = {"json": False}


@dataclass(frozen=True)
class Change:
    """A write command's plan and outcome. JSON: ``{"dry_run", "actions"}``."""

    verb: Verb = field(metadata=_HIDE)
    dry_run: bool
    actions: tuple[Any, ...] = ()
    #: the checks' verdicts (admission.Batch, SafetyVerdict, InUse), in the order they ran
    checks: tuple[Any, ...] = field(default=(), metadata=_HIDE)
    #: names enabled or disabled, in order (enable, disable)
    done: tuple[str, ...] = field(default=(), metadata=_HIDE)
    #: the entries were written to a table private to a user namespace
    private_table: bool = field(default=False, metadata=_HIDE)
    #: why nothing (more) was written: (message, fix), the command's one-line error
    refusal: Refusal | None = field(default=None, metadata=_HIDE)
    #: a kernel write failed (the batch was rolled back): re-raised after the report
    failure: BinfmtctlError | None = field(default=None, metadata=_HIDE)

    @property
    def conflicts(self) -> bool:
        return any(a.kind == "conflict" for a in self.actions)


def _refusal(*checks: Any) -> Refusal | None:
    return next((r for c in checks if (r := c.error()) is not None), None)


def _private(wrote: bool) -> bool:
    from binfmtctl.userns import in_initial_user_namespace

    return wrote and not in_initial_user_namespace()


def register(
    bm: Any,
    raws: Sequence[bytes],
    where: Sequence[str],
    *,
    replace: bool,
    dry_run: bool,
    force: bool,
) -> Change:
    """Register ``raws``, all or nothing: valid, safe, not conflicting, not replacing an
    entry in use (unless ``force``); verified after each write, undone on a failure."""
    from binfmtctl import admission

    batch = admission.parse_batch(raws, bm.profile, where)
    if batch.error():
        return Change("register", dry_run, checks=(batch,), refusal=batch.error())
    safety = admission.judge_safety(batch.entries, force)
    if safety.error():
        return Change("register", dry_run, checks=(safety,), refusal=safety.error())
    if not dry_run:
        bm.mount_for_write()
    with bm.locked() if not dry_run else contextlib.nullcontext():
        return _register_locked(bm, list(batch.entries), safety, replace, dry_run, force)


def _register_locked(
    bm: Any, desired: list[Any], safety: Any, replace: bool, dry_run: bool, force: bool
) -> Change:
    from binfmtctl import admission
    from binfmtctl.plan import plan_register

    live = bm.entries() if bm.mount_state().state == "mounted" else []
    # a differing entry is refused unless --replace, whoever registered it (as --help says)
    actions = tuple(plan_register(desired, live, replace=replace))
    n = sum(1 for a in actions if a.kind == "conflict")
    if n:
        refusal = (
            f"{n} entr{'y' if n == 1 else 'ies'} already registered with different content; "
            "nothing was written",
            "binfmtctl register --replace ...  (or remove them first)",
        )
        return Change("register", dry_run, actions, (safety,), refusal=refusal)
    busy = admission.in_use(
        [a.old for a in actions if a.kind == "replace" and a.old is not None], force, dry_run
    )
    checks = (safety, busy)
    if dry_run or busy.error():
        return Change("register", dry_run, actions, checks, refusal=busy.error())
    try:
        wrote = bool(bm.apply(list(actions)))
    except BinfmtctlError as e:
        return Change("register", False, actions, checks, failure=e)
    return Change("register", False, actions, checks, private_table=_private(wrote))


def set_enabled(bm: Any, names: Sequence[str], enable: bool, force: bool = False) -> Change:
    """Enable or disable the named live entries, in order; disabling an entry in use is
    refused unless ``force``. A failed write stops there (the names before stay done)."""
    from binfmtctl import admission
    from binfmtctl.live import no_such_entry

    verb: Verb = "enable" if enable else "disable"
    bm.mount_for_write()
    live = bm.names()
    unknown = [n for n in names if n not in live]
    if unknown:
        refusal = no_such_entry(unknown, sorted(live), " (nothing was changed)")
        return Change(verb, False, refusal=refusal)
    busy = admission.in_use([bm.read(n) for n in dict.fromkeys(names)] if not enable else [], force)
    if busy.error():
        return Change(verb, False, checks=(busy,), refusal=busy.error())
    done: list[str] = []
    try:
        for n in names:
            bm.set_enabled(n, enable)
            done.append(n)
    except BinfmtctlError as e:
        return Change(verb, False, checks=(busy,), done=tuple(done), failure=e)
    return Change(verb, False, checks=(busy,), done=tuple(done))


def remove(bm: Any, names: Sequence[str], *, owned: bool, dry_run: bool, force: bool) -> Change:
    """Remove the named entries (and with ``owned`` every one binfmtctl owns), one by one
    by name, never through ``status``; entries in use are refused unless ``force``."""
    if dry_run:
        bm.require_mounted()
    else:
        bm.mount_for_write()
    # plan under the lock: a parallel remove --owned must not see entries it just removed
    with bm.locked() if not dry_run else contextlib.nullcontext():
        return _remove_locked(bm, names, owned, dry_run, force)


def _remove_locked(
    bm: Any, names: Sequence[str], owned: bool, dry_run: bool, force: bool
) -> Change:
    from binfmtctl import admission
    from binfmtctl.live import no_such_entry
    from binfmtctl.plan import plan_remove

    live = bm.entries()
    live_names = {e.name for e in live}
    unknown = [n for n in names if n not in live_names]
    if unknown:
        refusal = no_such_entry(unknown, [e.name for e in live], " (nothing was removed)")
        return Change("remove", dry_run, refusal=refusal)
    targets = list(names) + [n for n in bm.owned() if owned and n not in names]
    actions = tuple(plan_remove(targets, live))
    busy = admission.in_use([a.entry for a in actions], force, dry_run)
    if dry_run or busy.error():
        return Change("remove", dry_run, actions, (busy,), refusal=busy.error())
    try:
        bm.apply(list(actions))
    except BinfmtctlError as e:
        return Change("remove", False, actions, (busy,), failure=e)
    return Change("remove", False, actions, (busy,))
