"""`scan`: walk trees and count ELF files by architecture and by the handler that takes them.

The walk streams (an explicit stack of directory iterators: memory follows depth, not
size) and reads only the first bytes of each regular file through a raw fd. The result is
a :class:`ScanSummary`; progress goes to an optional callback, so the core draws nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

from binfmtctl.record import dataclass
from binfmtctl.which import LiveTable
from binfmtctl.wording import plural

#: the kinds of ELF (and ar) files that are not executables, in report order
NOT_EXECUTABLE_KINDS = ("ET_REL", "ET_CORE", "archive")

#: ``(files, elfs, done)``: called for every file, and once more with ``done`` at the end
ProgressCallback = Callable[[int, int, bool], None]


@dataclass(frozen=True)
class ScanSummary:
    """The counts of one ``scan`` (design.md's ``scan --json``), most frequent first."""

    files: int
    elf: int
    unreadable: int
    by_arch: Mapping[str, int]
    by_handler: Mapping[str, int]
    not_executable: Mapping[str, int]
    unrunnable: int
    unrunnable_examples: tuple[str, ...]
    notes: tuple[str, ...]


def scan(
    roots: Sequence[str],
    live: LiveTable,
    *,
    examples: int,
    exec_check: Callable[[str], str | None],
    progress: ProgressCallback | None = None,
) -> ScanSummary:
    """Count the files under ``roots`` and which live entry (or the host) runs each ELF
    executable; list up to ``examples`` of those nothing here can run. ``exec_check``: the
    errno of opening an interpreter for exec (None when it opens)."""
    from binfmtctl import table
    from binfmtctl.match import Matcher, handler_exec_failure, native, non_executable_kind

    matcher = Matcher(live.entries, status_enabled=live.enabled)
    by_arch: dict[str, int] = {}
    by_handler: dict[str, int] = {}
    not_exec: dict[str, int] = {}
    broken: dict[str, dict[str, str] | None] = {}  # handler -> why its exec fails
    stranded: list[str] = []
    stranded_n = files = elfs = errors = 0
    arch_cache: dict[bytes, tuple[str, bool]] = {}
    for path in walk(roots):
        files += 1
        if progress is not None:
            progress(files, elfs, False)
        header = _head(path)
        if header is None:
            errors += 1
            continue
        if header[:4] != b"\x7fELF":
            if header.startswith(b"!<arch>\n"):
                not_exec["archive"] = not_exec.get("archive", 0) + 1
            continue
        elfs += 1
        kind = non_executable_kind(header)
        if kind is not None:  # objects, core dumps: nothing runs them, nor should
            not_exec[kind] = not_exec.get(kind, 0) + 1
            continue
        key = header[4:6] + header[16:20] + header[36:40] + header[48:52]
        hit = arch_cache.get(key)
        if hit is None:
            t = table.target_for_header(header)
            hit = (t.name if t else "other", native(header))
            arch_cache[key] = hit
        arch, is_native = hit
        by_arch[arch] = by_arch.get(arch, 0) + 1
        h = matcher.first(header, path)
        hname = h.name if h is not None else ("native" if is_native else "none")
        by_handler[hname] = by_handler.get(hname, 0) + 1
        if h is not None and h.name not in broken:
            broken[h.name] = handler_exec_failure(h, exec_check(h.interpreter))
        if (h is None and not is_native) or (h is not None and broken[h.name] is not None):
            stranded_n += 1
            if len(stranded) < examples:
                stranded.append(path)
    if progress is not None:
        progress(files, elfs, True)
    notes = ((live.note,) if live.note else ()) + tuple(
        f"{name} takes {plural(by_handler[name], 'file')} here, but {why['message']}"
        for name, why in broken.items()
        if why is not None
    )
    return ScanSummary(
        files=files,
        elf=elfs,
        unreadable=errors,
        by_arch=_most_first(by_arch),
        by_handler=_most_first(by_handler),
        not_executable={k: not_exec[k] for k in NOT_EXECUTABLE_KINDS if k in not_exec},
        unrunnable=stranded_n,
        unrunnable_examples=tuple(stranded),
        notes=notes,
    )


def _head(path: str) -> bytes | None:
    """The first 256 bytes of ``path`` (None: unreadable), through a raw fd: no buffered
    file object per file on this hot path, never following a symlink, never blocking on
    a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return os.read(fd, 256)
        finally:
            os.close(fd)
    except OSError:
        return None


def _most_first(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def walk(roots: Iterable[str]) -> Iterable[str]:
    """Regular files under roots, depth first, without following symlinks (an explicit stack
    of directory iterators keeps memory proportional to depth, not size)."""
    for root in roots:
        if not os.path.isdir(root):
            yield root
            continue
        stack = [root]
        while stack:
            d = stack.pop()
            try:
                with os.scandir(d) as it:
                    for e in it:
                        try:
                            if e.is_dir(follow_symlinks=False):
                                stack.append(e.path)
                            elif e.is_file(follow_symlinks=False):
                                yield e.path
                        except OSError:
                            continue
            except OSError:
                continue
