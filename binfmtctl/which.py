"""`which`: the kernel's choice of handler for each file, with the reasons, as a report.

Reading the live table and the files is the edge (:func:`live_for_matching`,
:func:`which`); the choice itself is :func:`binfmtctl.match.match`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from binfmtctl.entry import Entry
from binfmtctl.errors import BinfmtctlError
from binfmtctl.record import dataclass

if TYPE_CHECKING:
    from binfmtctl.binfmt_misc import BinfmtMisc
    from binfmtctl.match import MatchResult

Verdict = Literal["unreadable", "runs", "would-fail", "native", "nothing"]


@dataclass(frozen=True)
class LiveTable:
    """The entries matching walks (newest first), the global status, and why it is empty."""

    entries: tuple[Entry, ...]
    enabled: bool
    note: str | None


def live_for_matching(bm: BinfmtMisc) -> LiveTable:
    """The live table as the kernel would walk it, without mounting anything."""
    try:
        st = bm.mount_state()
        if st.state == "automount":
            st = bm.ensure_mounted(mount=False)
        if st.state != "mounted":
            note = f"binfmt_misc is not mounted at {bm.path}: no entry can run anything"
            return LiveTable((), True, note)
        return LiveTable(tuple(bm.entries()), bm.enabled(), None)
    except (OSError, BinfmtctlError) as e:
        return LiveTable((), True, f"cannot read the live table: {e}")


@dataclass(frozen=True)
class WhichVerdict:
    """One file: what it is, which entry takes it (or why none does)."""

    path: str
    verdict: Verdict
    error: str | None = None  # unreadable: why
    elf: dict[str, Any] | None = None  # elf.ElfInfo.to_json()
    not_elf: str | None = None  # why the ELF headers could not be read
    match: MatchResult | None = None
    exec_fails: dict[str, str] | None = None  # the handler cannot start its interpreter
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """design.md's ``which --json`` object: optional keys only when they apply."""
        row: dict[str, object] = {
            "path": self.path,
            "elf": self.elf,
            "handler": None,
            "native": False,
            "near_misses": [],
        }
        if self.error is not None:
            row["error"] = self.error
            return row
        if self.not_elf is not None:
            row["not_elf"] = self.not_elf
        if self.match is not None:
            row.update(self.match.to_json())
        if self.exec_fails is not None:
            row["exec_fails"] = self.exec_fails
        if self.notes:
            row["notes"] = list(self.notes)
        return row


@dataclass(frozen=True)
class WhichReport:
    verdicts: tuple[WhichVerdict, ...]

    @property
    def exit_code(self) -> int:
        bad = ("unreadable", "would-fail")
        return 1 if any(v.verdict in bad for v in self.verdicts) else 0

    def to_json(self) -> list[WhichVerdict]:
        return list(self.verdicts)


def which(
    files: Sequence[str],
    live: LiveTable,
    *,
    exec_check: Callable[[str], str | None],
    scope_fix: Callable[[str], str] = str,
) -> WhichReport:
    """Which entry the kernel would run each file with. ``exec_check``: the errno of opening
    an interpreter for exec (None when it opens); ``scope_fix`` puts the command's options
    into a fix."""
    return WhichReport(tuple(_one(p, live, exec_check, scope_fix) for p in files))


def _one(
    path: str,
    live: LiveTable,
    exec_check: Callable[[str], str | None],
    scope_fix: Callable[[str], str],
) -> WhichVerdict:
    from binfmtctl.elf import NotElfError, read_elf, read_header
    from binfmtctl.match import handler_exec_failure, match

    try:
        header = read_header(path)
    except NotElfError as e:
        return WhichVerdict(path, "unreadable", error=e.format_message())
    elf: dict[str, Any] | None = None
    not_elf = None
    try:
        elf = read_elf(path).to_json()
    except NotElfError as e:
        not_elf = e.format_message()
    m = match(header, live.entries, path=path, status_enabled=live.enabled)
    fails = None
    if m.handler is not None:
        fails = handler_exec_failure(m.handler, exec_check(m.handler.interpreter))
        if fails is not None:
            fails = {**fails, "fix": scope_fix(fails["fix"])}
    verdict: Verdict = (
        ("would-fail" if fails else "runs")
        if m.handler is not None
        else ("native" if m.native else "nothing")
    )
    notes = ((live.note,) if live.note else ()) + tuple(m.notes)
    return WhichVerdict(path, verdict, None, elf, not_elf, m, fails, notes)
