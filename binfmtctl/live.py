"""The live table's read use cases: the rows of `status` and `show`, as reports.

Nothing here prints or knows click: :func:`status` and :func:`show` read the table (through a
:class:`~binfmtctl.binfmt_misc.BinfmtMisc`) and return a report; ``binfmtctl.cli.render.live``
prints it, as text or, from the report's fields, as the JSON of ``shared/design.md``.
A fix is scoped (``--mount`` carried) by the ``scope`` function the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from binfmtctl.errors import BinfmtctlError
from binfmtctl.record import dataclass, field, replace

if TYPE_CHECKING:
    from binfmtctl.entry import Entry

Scope = Callable[[str], str]


def _same(fix: str) -> str:
    return fix


@dataclass(frozen=True)
class EntryRow:
    """One live entry as `status` and `show` describe it: its place in match order, owner,
    health (with doctor's findings about it), what it is, and the processes running through
    it. ``register`` (its register string) is filled for `show` only."""

    entry: Any = field(metadata={"json": False})
    order: int
    owner: str | None
    health: str
    findings: tuple[Any, ...]
    kind: dict[str, Any] | None
    processes: tuple[Any, ...]
    register: str | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = self.entry.to_json()
        row.update(
            order=self.order,
            owner=self.owner,
            health=self.health,
            findings=[f.to_json() for f in self.findings],
            kind=self.kind,
            processes=[p.to_json() for p in self.processes],
        )
        if self.register is not None:
            row["register"] = self.register
        return row


@dataclass(frozen=True)
class Rows:
    rows: tuple[EntryRow, ...]
    hidden: int  # processes this user may not look at


@dataclass(frozen=True)
class StatusReport:
    """`status`: the mount, the table's switch, the rows asked for, control files named."""

    path: str = field(metadata={"json": False})
    mount: Any
    enabled: bool
    kernel: str
    entries: tuple[EntryRow, ...]
    processes_not_visible: int
    control_files: tuple[Any, ...]
    asked: bool = field(default=False, metadata={"json": False})  # names were given
    entry_names_asked: bool = field(default=False, metadata={"json": False})
    missing: tuple[str, ...] = field(default=(), metadata={"json": False})
    live_names: tuple[str, ...] = field(default=(), metadata={"json": False})


@dataclass(frozen=True)
class StatusUnavailable:
    """`status` where binfmt_misc is not mounted: JSON says so; text shows the error."""

    mount: Any
    enabled: None
    entries: tuple[()]
    error: str
    exception: BinfmtctlError = field(metadata={"json": False})
    exit_code: int = field(default=1, metadata={"json": False})


@dataclass(frozen=True)
class ControlFileReport:
    """`show register` / `show status`: a control file, not an entry."""

    name: str = field(metadata={"json": False})
    control: Any

    def to_json(self) -> Any:
        return self.control.to_json()


@dataclass(frozen=True)
class ShowReport:
    """`show NAME`: one row, with the entry's register string and its processes."""

    row: EntryRow
    hidden: int
    entry: Any = field(metadata={"json": False})  # as read back by name

    def to_json(self) -> Any:
        return self.row.to_json()


def qemu_kind(e: Entry) -> dict[str, Any] | None:
    """``table.classify`` of a live entry (what it is: a handler, a QEMU target, or None)."""
    from binfmtctl import table  # only status and show need the target table

    return table.classify(e)


def entry_rows(bm: Any, names: Sequence[str] = (), scope: Scope = _same) -> Rows:
    """The rows of ``status``/``show`` (every entry, or those named) and how many processes
    could not be looked at."""
    from binfmtctl import usage
    from binfmtctl.health import entry_findings, health_of

    entries = bm.entries()
    wanted = [e for e in entries if not names or e.name in names]
    # no entry, no process walk
    snap = usage.snapshot({e.interpreter for e in wanted}) if wanted else usage.Snapshot()
    owned = bm.owned()
    findings = entry_findings(wanted, bm.profile)
    rows = [
        EntryRow(
            entry=e,
            order=order,
            owner="binfmtctl" if e.name in owned else None,
            health=health_of(findings[e.name]),
            findings=tuple(replace(f, fix=scope(f.fix)) for f in findings[e.name] if f.is_problem),
            kind=qemu_kind(e),
            processes=tuple(snap.users(e.interpreter)),
        )
        for order, e in enumerate(entries, start=1)
        if not names or e.name in names
    ]
    return Rows(tuple(rows), snap.hidden)


def no_such_entry(unknown: Sequence[str], live: Sequence[str], tail: str = "") -> tuple[str, str]:
    """(message, fix) refusing names that are not live, suggesting the closest live name."""
    from binfmtctl.wording import suggestion

    hints = "".join(suggestion(n, live) for n in unknown[:1])
    return (
        f"no entry named {', '.join(repr(n) for n in unknown)}{tail}{hints}",
        "binfmtctl status lists every entry",
    )


def status(
    bm: Any, names: Sequence[str] = (), scope: Scope = _same
) -> StatusReport | StatusUnavailable:
    """The live table (or the entries and control files named)."""
    from binfmtctl.binfmt_misc import NotMounted

    try:
        st = bm.require_mounted()
    except NotMounted as e:
        return StatusUnavailable(bm.mount_state(), None, (), e.format_message(), e)
    controls = []
    if names:  # `status register`: a control file, explained
        from binfmtctl.control_files import explain

        controls = [c for n in dict.fromkeys(names) if (c := explain(n, bm.path)) is not None]
    control_names = {c.name for c in controls}
    entry_names = [n for n in names if n not in control_names]
    got = entry_rows(bm, entry_names, scope) if entry_names or not names else Rows((), 0)
    found = {r.entry.name for r in got.rows}
    missing = tuple(n for n in entry_names if n not in found)
    return StatusReport(
        path=bm.path,
        mount=st,
        enabled=bm.enabled(),
        kernel=bm.profile.label,
        entries=got.rows,
        processes_not_visible=got.hidden,
        control_files=tuple(controls),
        asked=bool(names),
        entry_names_asked=bool(entry_names),
        missing=missing,
        live_names=tuple(bm.names()) if missing else (),
    )


def show(bm: Any, name: str, scope: Scope = _same) -> ShowReport | ControlFileReport:
    """One entry (or, for ``register``/``status``, what that control file is)."""
    from binfmtctl.control_files import explain
    from binfmtctl.entry import render_register_str

    control = explain(name, bm.path)
    if control is not None:  # `show register`: the classic "cat register: Invalid argument"
        return ControlFileReport(name, control)
    bm.require_mounted()
    got = entry_rows(bm, [name], scope)
    if not got.rows:
        message, fix = no_such_entry([name], bm.names())
        raise BinfmtctlError(message, fix=scope(fix))
    row = got.rows[0]
    e = bm.read(name)
    return ShowReport(replace(row, register=render_register_str(e)), got.hidden, e)
