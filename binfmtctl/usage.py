"""What runs through each binfmt_misc entry right now.

A process started through an entry runs the entry's interpreter: its
``/proc/PID/exe`` is the interpreter file (with ``F`` the very file the kernel
opened at registration). So an entry's users are the processes whose executable
is the interpreter, compared by (device, inode), never by name; and, since a
replaced or deleted file keeps running under its old inode, also by the path the
kernel reports for it (``/usr/bin/qemu-aarch64-static (deleted)``).

The matching (:func:`users_of`, :func:`stale_users`, :func:`in_use_message`,
:func:`findings`) is pure, over :class:`ProcessFacts` and :class:`InterpreterFile`
records. :func:`snapshot` is the edge: it lists processes with psutil (imported
there, so the boot-time ``apply`` path and ``--version`` never load it) and stats
each ``/proc/PID/exe``. A process whose executable this user may not read (another
user's, as non-root) is counted in :attr:`Snapshot.hidden`, never an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from binfmtctl.record import dataclass, field, replace

#: (st_dev, st_ino) of a file
FileId = tuple[int, int]

#: process names of container engines (``comm``, at most 15 characters)
CONTAINER_ENGINES = ("dockerd", "containerd", "buildkitd", "podman")

_DELETED = " (deleted)"


@dataclass(frozen=True)
class ProcessFacts:
    """One process: its executable as the kernel reports it, and who it is."""

    pid: int
    exe: str  # the /proc/PID/exe link text, " (deleted)" removed
    exe_id: FileId  # (device, inode) of the file it runs
    deleted: bool = False  # the file it runs is no longer linked on disk
    name: str = ""
    cmdline: tuple[str, ...] = ()
    username: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": list(self.cmdline),
            "username": self.username,
        }

    def label(self) -> str:
        """``pid 123 (name: argv...)`` for messages."""
        args = " ".join(self.cmdline)
        if len(args) > 60:
            args = args[:57] + "..."
        return f"pid {self.pid} ({self.name}{': ' + args if args else ''})"


@dataclass(frozen=True)
class InterpreterFile:
    """An entry's interpreter as it is on disk now."""

    path: str  # as the entry names it
    real: str  # symlinks resolved
    id: FileId | None  # None: it does not exist (or cannot be stat'ed)


@dataclass(frozen=True)
class Snapshot:
    """The processes of this moment whose executable could be read."""

    processes: tuple[ProcessFacts, ...] = ()
    hidden: int = 0  # processes whose executable this user may not read
    engines: tuple[tuple[str, int], ...] = ()  # (name, pid) of running container engines
    interpreters: Mapping[str, InterpreterFile] = field(default_factory=dict)

    def users(self, interpreter: str) -> list[ProcessFacts]:
        f = self.interpreters.get(interpreter)
        return users_of(f, self.processes) if f is not None else []


# -- pure ------------------------------------------------------------------------------------------
def users_of(interp: InterpreterFile, processes: Iterable[ProcessFacts]) -> list[ProcessFacts]:
    """The processes running ``interp``: the same inode as the file at its path now, or a
    file the kernel still names by that path (replaced or deleted since they started)."""
    paths = {interp.path, interp.real}
    return [
        p for p in processes if (interp.id is not None and p.exe_id == interp.id) or p.exe in paths
    ]


def stale_users(interp: InterpreterFile, users: Iterable[ProcessFacts]) -> list[ProcessFacts]:
    """Users that run a file that is no longer the one at the interpreter's path."""
    return [p for p in users if p.deleted or interp.id is None or p.exe_id != interp.id]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


def in_use_message(name: str, users: Sequence[ProcessFacts]) -> str:
    """``qemu-aarch64 is in use by 2 processes: pid 1 (...), pid 2 (...)``."""
    shown = ", ".join(p.label() for p in users[:5])
    more = f" and {len(users) - 5} more" if len(users) > 5 else ""
    return f"{name} is in use by {_plural(len(users), 'process')}: {shown}{more}"


def hidden_note(hidden: int, *, root: bool, initial_userns: bool) -> str | None:
    """What to say about processes that could not be looked at (None: nothing)."""
    if not hidden:
        return None
    n = _plural(hidden, "process")
    if not initial_userns:
        return (
            f"{n} not visible (outside this user namespace, or other users' processes): "
            "run as root on the host to see every user of an entry"
        )
    if root:
        return (
            f"{n} not visible: root could not read their executables "
            "(a container without CAP_SYS_PTRACE?)"
        )
    return (
        f"{n} not visible (other users' processes cannot be looked at as this user): "
        "run as root to see every user of an entry"
    )


@dataclass(frozen=True)
class UsageFinding:
    """A finding for ``doctor`` (it wraps these in its own Finding)."""

    code: str
    severity: str
    entry: str | None
    message: str
    fix: str


def findings(entries: Sequence[Any], snap: Snapshot) -> list[UsageFinding]:
    """``in-use-interpreter-stale`` per entry whose users run a file that is gone or
    replaced on disk; ``container-engine`` when one runs. ``entries``: objects with
    ``name``, ``interpreter`` and ``flags`` (:class:`binfmtctl.entry.Entry`)."""
    out: list[UsageFinding] = []
    for e in entries:
        interp = snap.interpreters.get(e.interpreter)
        if interp is None:
            continue
        stale = stale_users(interp, users_of(interp, snap.processes))
        if not stale:
            continue
        who = ", ".join(p.label() for p in stale[:5]) + (
            f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        )
        state = "is gone from disk" if interp.id is None else "was replaced on disk"
        pids = " ".join(str(p.pid) for p in stale)
        if "F" in e.flags:
            message = (
                f"{e.interpreter} {state}, but {_plural(len(stale), 'process')} still run the "
                f"old file ({who}); with F the kernel keeps the file it opened at registration, "
                "so new execs through this entry still get the old interpreter too"
            )
            fix = (
                f"re-register the entry so it pins the file now on disk: binfmtctl register "
                f"--replace (or binfmtctl install) once these processes end (kill {pids}), "
                "or with --force"
                if interp.id is not None
                else f"reinstall {e.interpreter} (the entry is lost at the next reboot otherwise), then re-register it"
            )
        else:
            message = (
                f"{e.interpreter} {state} while {_plural(len(stale), 'process')} run the old "
                f"file ({who}); new execs get "
                + ("nothing: they fail" if interp.id is None else "the new file")
            )
            fix = (
                f"restart them to run the interpreter now on disk (kill {pids})"
                if interp.id is not None
                else f"reinstall {e.interpreter}, then restart them (kill {pids})"
            )
        out.append(UsageFinding("in-use-interpreter-stale", "warning", e.name, message, fix))
    if snap.engines:
        names = ", ".join(f"{n} (pid {pid})" for n, pid in snap.engines)
        no_f = [e.name for e in entries if "F" not in e.flags]
        out.append(
            UsageFinding(
                "container-engine",
                "info",
                None,
                f"a container engine runs here: {names}; containers started before an entry "
                "was registered see it only if it has the F flag (the interpreter opened at "
                "registration), others look the interpreter up inside the container"
                + (f" (entries without F: {', '.join(no_f)})" if no_f else ""),
                "register emulators with F (binfmtctl install does), and restart containers "
                "that started before a registration without F",
            )
        )
    return out


# -- the edge --------------------------------------------------------------------------------------
def interpreter_file(path: str) -> InterpreterFile:
    try:
        st = os.stat(path)
        fid: FileId | None = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        fid = None
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        real = path
    return InterpreterFile(path, real, fid)


def _exe(pid: int, proc: str) -> tuple[str, FileId, bool] | None:
    """(link text, file id, deleted) of /proc/PID/exe; None for kernel threads, zombies
    and processes that ended. PermissionError propagates: the caller counts it."""
    link = f"{proc}/{pid}/exe"
    try:
        text = os.readlink(link)
        st = os.stat(link)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    deleted = text.endswith(_DELETED) and st.st_nlink == 0
    if deleted:
        text = text[: -len(_DELETED)]
    return text, (st.st_dev, st.st_ino), deleted


def snapshot(interpreters: Iterable[str] = (), proc: str = "/proc") -> Snapshot:
    """Every readable process's executable, the interpreters' files, container engines.

    ``interpreters``: the paths whose users are wanted; only those users are described
    further (name, command line, user), so one status costs one stat per process."""
    import psutil

    files = {p: interpreter_file(p) for p in interpreters}
    procs: list[ProcessFacts] = []
    hidden = 0
    engines: list[tuple[str, int]] = []
    me = os.getpid()
    for p in psutil.process_iter(["name"]):
        if p.pid == me:
            continue
        name = p.info.get("name") or ""
        if name in CONTAINER_ENGINES:
            engines.append((name, p.pid))
        try:
            exe = _exe(p.pid, proc)
        except PermissionError:
            hidden += 1
            continue
        except OSError:
            continue
        if exe is not None:
            procs.append(ProcessFacts(p.pid, exe[0], exe[1], exe[2], name=name))
    wanted = {q.pid for f in files.values() for q in users_of(f, procs)}
    described = [_describe(q) if q.pid in wanted else q for q in procs]
    return Snapshot(tuple(described), hidden, tuple(engines), files)


def _describe(p: ProcessFacts) -> ProcessFacts:
    """Fill in the command line and user name (psutil); what cannot be read stays empty."""
    import psutil

    try:
        proc = psutil.Process(p.pid)
        with proc.oneshot():
            cmdline = tuple(_safe(proc.cmdline, []))
            username = _safe(proc.username, None)
    except psutil.Error:
        return p
    return replace(p, cmdline=cmdline, username=username)


def _safe(call: Any, default: Any) -> Any:
    import psutil

    try:
        return call()
    except (psutil.Error, OSError, KeyError):
        return default
