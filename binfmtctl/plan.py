"""Planning: from desired entries and the live table to a list of actions. Pure.

The rules (design.md, "Ownership and safety"):

* same name, same registration -> ``keep`` (a no-op, reported as such);
* same name, different registration -> ``replace`` if the user said
  ``--replace`` or binfmtctl owns the live one, else ``conflict`` (refused,
  both versions shown);
* no such name -> ``add``.

Host-safety checks (hijack, interpreter trust) live in :mod:`binfmtctl.safety`.
"""

from __future__ import annotations

from collections.abc import Iterable

from binfmtctl.entry import Entry, kernel_view
from binfmtctl.errors import UsageError
from binfmtctl.record import dataclass


@dataclass(frozen=True)
class Action:
    kind: str  # add | replace | keep | conflict | remove
    entry: Entry
    old: Entry | None = None
    note: str = ""

    @property
    def changes(self) -> bool:
        return self.kind in ("add", "replace", "remove")

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.kind,
            "name": self.entry.name,
            "entry": self.entry.to_json(),
            "old": self.old.to_json() if self.old else None,
            "note": self.note,
        }


def plan_register(
    desired: Iterable[Entry],
    live: Iterable[Entry],
    *,
    replace: bool = False,
    owned: Iterable[str] = (),
) -> list[Action]:
    live_by_name = {e.name: e for e in live}
    owned_set = set(owned)
    seen: set[str] = set()
    actions = []
    for e in desired:
        if e.name in seen:
            raise UsageError(
                f"the batch names {e.name!r} twice; each entry name can be registered once"
            )
        seen.add(e.name)
        old = live_by_name.get(e.name)
        if old is None:
            actions.append(Action("add", e))
        elif old.same_registration(e):
            note = "already registered, identical" + (
                "" if old.enabled else " (but disabled: binfmtctl enable " + e.name + ")"
            )
            actions.append(Action("keep", e, old, note))
        elif replace or e.name in owned_set:
            why = "--replace" if replace else "owned by binfmtctl"
            actions.append(
                Action("replace", e, old, f"differs from the live entry; replacing ({why})")
            )
        else:
            actions.append(
                Action(
                    "conflict",
                    e,
                    old,
                    "an entry of that name exists and differs; use --replace to replace it",
                )
            )
    return actions


def plan_remove(names: Iterable[str], live: Iterable[Entry]) -> list[Action]:
    live_by_name = {e.name: e for e in live}
    return [Action("remove", live_by_name[n], live_by_name[n]) for n in names if n in live_by_name]


def diff_lines(old: Entry, new: Entry) -> list[str]:
    """Both versions, kernel-view style, for a conflict message."""
    a = kernel_view(old).splitlines()
    b = kernel_view(new).splitlines()
    out = []
    for i in range(max(len(a), len(b))):
        la = a[i] if i < len(a) else ""
        lb = b[i] if i < len(b) else ""
        mark = " " if la == lb else "!"
        out.append(f"  {mark} live: {la:<40} new: {lb}")
    return out
