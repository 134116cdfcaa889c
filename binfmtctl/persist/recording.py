"""Compiling the boot plan: a full ``apply`` that writes down what it read and did.

:class:`Recorder` is the :class:`~binfmtctl.persist.apply.HostFacts` the boot path's full
``apply`` reads the host through, and the observer its table and ownership store tell
each write. At the end, when the run's outcome cannot have depended on anything it did
not record (see :mod:`binfmtctl.bootplan`), it saves the plan the next boot replays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from binfmtctl import bootplan, hijack, hostfacts, trust
from binfmtctl.entry import Entry
from binfmtctl.persist.apply import ApplyReport, HostFacts

_UNSET = object()


class Recorder(HostFacts):
    def __init__(self, key: bootplan.Key) -> None:
        self.key = key
        self.refused: list[str] = []
        self.lookups: dict[str, hostfacts.NodeFacts | None] = {}
        self.execs: dict[str, str | None] = {}
        self.table: object = _UNSET
        self.records: object = _UNSET
        self.steps: list[tuple[object, ...]] = []
        self.head = bootplan.host_head()
        self.mounted = bootplan.mount_facts(key.mount)
        self.config_bytes = bootplan.read_config(key.config)
        if self.mounted is None or self.mounted[0] != "binfmt_misc":
            self.refuse("binfmt_misc was not mounted")
        if self.config_bytes is None:
            self.refuse("the config is not a regular file")

    def refuse(self, why: str) -> None:
        self.refused.append(why)

    # -- what apply reads (HostFacts) ----------------------------------------------------------
    def exec_check(self, path: str) -> str | None:
        err = hostfacts.exec_errno(path)
        self.execs.setdefault(path, err)
        if err is not None:
            self.refuse(f"{path} is not executable")  # its fix reads fstab: not recorded
        return err

    def _lookup(self, path: str) -> trust.Node | None:
        facts = hostfacts.lookup(path)
        self.lookups.setdefault(path, facts)
        return None if facts is None else trust.Node(*facts)

    def trust(self, path: str) -> trust.Verdict:
        return trust.walk(path, self._lookup)

    def native(self, entries: Sequence[Entry]) -> hijack.NativeSamples:
        native, listed = hijack.gather_listing(entries)
        if listed:
            self.refuse("the hijack check read PATH")
        return native

    def late_mount(self) -> Callable[[str], str | None]:
        real = super().late_mount()

        def late(path: str) -> str | None:
            self.refuse("the fstab was read")
            return real(path)

        return late

    def table_seen(self, mount: str) -> None:
        self.table = bootplan.table_state(mount)

    # -- what apply writes (the table's and the ownership store's observer) -------------------
    def records_read(self, data: bytes | None) -> None:
        if self.records is _UNSET:
            self.records = data

    def records_written(self, data: bytes) -> None:
        self.steps.append(("save", data))

    def registered(self, data: bytes, name: str, shown: bytes | None) -> None:
        self.steps.append(("register", data, name, shown))

    # -- the plan -----------------------------------------------------------------------------
    def finish(self, report: ApplyReport, lines: Sequence[bootplan.Line], code: int) -> bool:
        """Save the plan if this run can be replayed; True if saved. Otherwise drop any old
        plan of this key (it describes a run that no longer happens)."""
        if code != 0 or not report.ok or report.plan_only:
            self.refuse("the run did not end with exit status 0")
        if any(i.action not in ("add", "keep") or not i.ok for i in report.items):
            self.refuse("an entry was replaced or failed")
        if self.table is _UNSET or self.records is _UNSET or self.table is None:
            self.refuse("the table or the records were not read under the lock")
        if bootplan.read_config(self.key.config) != self.config_bytes:
            self.refuse("the config changed during the run")
        if self.refused:
            if self.table is not _UNSET:
                bootplan.forget(self.key, self.table)
            return False
        facts = {
            "head": self.head,
            "config": self.key.config,
            "config_bytes": self.config_bytes,
            "mount": self.key.mount,
            "mounted": self.mounted,
            "lookups": tuple(self.lookups.items()),
            "exec": tuple(self.execs.items()),
            "table": self.table,
            "records": self.records,
        }
        return bootplan.save(
            self.key,
            {"facts": facts, "steps": tuple(self.steps), "lines": tuple(lines), "code": code},
        )
