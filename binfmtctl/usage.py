"""What runs through each binfmt_misc entry right now.

A process started through an entry runs the entry's interpreter: its
``/proc/PID/exe`` is the interpreter file (with ``F`` the very file the kernel
opened at registration). So an entry's users are the processes whose executable
is the interpreter, compared by (device, inode), never by name; and, since a
replaced or deleted file keeps running under its old inode, also by the path the
kernel reports for it (``/usr/bin/qemu-aarch64-static (deleted)``).

The matching (:func:`users_of`, :func:`stale_users`, :func:`in_use_message`,
:func:`findings`) is pure, over :class:`ProcessFacts` and :class:`InterpreterFile`
records. :func:`snapshot` is the edge: it lists the processes in ``/proc`` and stats
each ``/proc/PID/exe``, reading names, command lines and users from ``/proc`` as psutil
does (the same text: tests compare them on live processes), without psutil's 11 ms import
and per-process objects, since ``status`` pays for this walk on every run. A process whose
executable this user may not read (another user's, as non-root) is counted in
:attr:`Snapshot.hidden`, never an error.
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


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _comm(pid: int, proc: str) -> str:
    """The kernel's process name (at most 15 characters): the text between the first ``(``
    and the last ``)`` of ``/proc/PID/stat`` (it may itself hold spaces and parentheses)."""
    data = _read(f"{proc}/{pid}/stat")
    return os.fsdecode(data[data.find(b"(") + 1 : data.rfind(b")")])


def split_cmdline(data: str) -> list[str]:
    """``/proc/PID/cmdline`` as arguments, as psutil splits it: NUL-separated, or split at
    spaces when a process rewrote it that way (setproctitle: no NUL, or one at the end only)."""
    if not data:
        return []
    sep = "\x00" if data.endswith("\x00") else " "
    if data.endswith(sep):
        data = data[:-1]
    args = data.split(sep)
    if sep == "\x00" and len(args) == 1 and " " in data:
        args = data.split(" ")
    return args


def command_line(pid: int, proc: str = "/proc") -> list[str]:
    """psutil's ``Process.cmdline()``: the arguments of ``/proc/PID/cmdline``."""
    text = os.fsdecode(_read(f"{proc}/{pid}/cmdline"))
    # psutil reads it as a text file: universal newlines turn "\r\n" and "\r" into "\n"
    return split_cmdline(text.replace("\r\n", "\n").replace("\r", "\n"))


def process_name(pid: int, proc: str = "/proc") -> str:
    """psutil's ``Process.name()``: the kernel's name, or where that was cut at 15
    characters, the base name of ``argv[0]`` when it starts with it."""
    name = _comm(pid, proc)
    if len(name) >= 15:
        try:
            args = command_line(pid, proc)
        except PermissionError:
            return name
        if args and (full := os.path.basename(args[0])).startswith(name):
            return full
    return name


def username(pid: int, proc: str = "/proc") -> str:
    """The name of the process's real user (its number when no name is known), as psutil's
    ``Process.username()``."""
    import pwd

    for line in _read(f"{proc}/{pid}/status").splitlines():
        if line.startswith(b"Uid:"):
            uid = int(line.split()[1])
            break
    else:
        raise OSError(f"no Uid line in {proc}/{pid}/status")
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _pids(proc: str) -> list[int]:
    return sorted(int(n) for n in os.listdir(proc) if n.isdigit())


def snapshot(interpreters: Iterable[str] = (), proc: str = "/proc") -> Snapshot:
    """Every readable process's executable, the interpreters' files, container engines.

    ``interpreters``: the paths whose users are wanted; only those users are described
    further (command line, user), so one status costs a stat and a name per process."""
    files = {p: interpreter_file(p) for p in interpreters}
    procs: list[ProcessFacts] = []
    hidden = 0
    engines: list[tuple[str, int]] = []
    me = os.getpid()
    for pid in _pids(proc):
        if pid == me:
            continue
        try:
            name = process_name(pid, proc)
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended
        except OSError:
            name = ""
        if name in CONTAINER_ENGINES:
            engines.append((name, pid))
        try:
            exe = _exe(pid, proc)
        except PermissionError:
            hidden += 1
            continue
        except OSError:
            continue
        if exe is not None:
            procs.append(ProcessFacts(pid, exe[0], exe[1], exe[2], name=name))
    wanted = {q.pid for f in files.values() for q in users_of(f, procs)}
    described = [_describe(q, proc) if q.pid in wanted else q for q in procs]
    return Snapshot(tuple(described), hidden, tuple(engines), files)


def _describe(p: ProcessFacts, proc: str = "/proc") -> ProcessFacts:
    """Fill in the command line and user name; what cannot be read stays empty."""
    try:
        cmdline = tuple(command_line(p.pid, proc))
    except OSError:
        cmdline = ()
    try:
        name: str | None = username(p.pid, proc)
    except (OSError, ValueError):
        name = None
    return replace(p, cmdline=cmdline, username=name)
