"""The edge: reading the host (and ``--root`` image) once into :class:`HostFacts`."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from binfmtctl import proc, table
from binfmtctl.binfmt_misc import (
    DEFAULT_MOUNT,
    BinfmtMisc,
    MountState,
    cap_eff,
    mount_state,
    on_read_only_fs,
)
from binfmtctl.doctor.facts import ContextFacts, HostFacts
from binfmtctl.doctor.gather_boot import gather_rootless, persist_in
from binfmtctl.doctor.gather_entry import gather_interpreter
from binfmtctl.doctor.image import Image
from binfmtctl.entry import Entry
from binfmtctl.errors import BinfmtctlError
from binfmtctl.hijack import gather as hijack_gather
from binfmtctl.install import ProbeResult
from binfmtctl.record import dataclass
from binfmtctl.rootfs import Root, read_regular
from binfmtctl.rules import KernelProfile
from binfmtctl.usage import Snapshot


# -- the edge: gathering facts -------------------------------------------------------------------
def _read(path: str | Path, limit: int = 1 << 20) -> str | None:
    try:  # regular files only, never blocking (a FIFO under --root would hang doctor)
        return read_regular(path, limit).decode("utf-8", "replace")
    except (OSError, ValueError, BinfmtctlError):
        return None


def _pid1_container(environ: str | None) -> str | None:
    for item in (environ or "").split("\0"):
        if item.startswith("container="):
            return item.partition("=")[2] or None
    return None


def _detect_virt(arg: str) -> str | None:
    exe = shutil.which("systemd-detect-virt")
    if exe is None:
        return None
    try:
        ran = proc.run([exe, arg], timeout=5)
    except (OSError, proc.TimedOut):
        return None
    return ran.out.strip() or None


def gather_context(
    root: str = "/", proc: str = "/proc", mount: str = DEFAULT_MOUNT
) -> ContextFacts:
    """Who and where we run. Commands (systemd-detect-virt) only for the real root."""
    with Root(root) as r:
        return context_in(Image(r), proc, mount)


def context_in(image: Image, proc: str = "/proc", mount: str = DEFAULT_MOUNT) -> ContextFacts:
    """:func:`gather_context` with the image's files (``/.dockerenv``, ``/run/.containerenv``)
    looked up inside ``image``; /proc and the mount are this kernel's, never the image's."""
    real = os.path.realpath(image.root.path) == "/" and proc == "/proc"
    register = os.path.join(mount, "register")
    return ContextFacts(
        euid=os.geteuid(),
        cap_eff=cap_eff(_read(os.path.join(proc, "self/status"))),
        uid_map=_read(os.path.join(proc, "self/uid_map")),
        dockerenv=image.lexists("/.dockerenv"),
        containerenv=image.read_text("/run/.containerenv"),
        pid1_container=_pid1_container(_read(os.path.join(proc, "1/environ"))),
        pid1_cgroup=_read(os.path.join(proc, "1/cgroup")),
        detect_virt_container=_detect_virt("--container") if real else None,
        detect_virt_vm=_detect_virt("--vm") if real else None,
        proc_version=_read(os.path.join(proc, "version")) or "",
        wsl_interop=os.path.lexists(os.path.join(mount, "WSLInterop")),
        proc_sys_writable=not on_read_only_fs(os.path.join(proc, "sys", "fs")),
        register_writable=os.access(register, os.W_OK) if os.path.exists(register) else None,
    )


@dataclass(frozen=True)
class _Table:
    """The mount and the live table as this process sees them."""

    filesystems: str | None
    mount: MountState
    status_enabled: bool | None = None
    status_error: str | None = None
    entries: tuple[Entry, ...] = ()
    owned: frozenset[str] = frozenset()


def _read_table(bm: BinfmtMisc, proc: str) -> _Table:
    path = bm.path
    filesystems = _read(os.path.join(proc, "filesystems"))
    if proc == "/proc":
        st = bm.mount_state()
    else:
        mountinfo = _read(os.path.join(proc, "self/mountinfo")) or ""
        st = mount_state(path, mountinfo, filesystems, os.path.isdir(path))
    if st.state == "mounted" and not os.path.exists(os.path.join(path, "register")):
        # mountinfo lists a binfmt_misc mount at the path, but another mount over a parent
        # (a read-only bind of /proc/sys, say) hides it: nothing can be read or written there
        st = MountState("not-mounted", path, st.read_only, st.options)
    if st.state != "mounted":
        return _Table(filesystems, st)
    status_enabled: bool | None = None
    status_error: str | None = None
    try:
        status_enabled = bm.enabled()
    except OSError as e:
        status_error = e.strerror or str(e)
    entries: list[Entry] = []
    owned: frozenset[str] = frozenset()
    with contextlib.suppress(OSError):
        entries = bm.entries()
    with contextlib.suppress(OSError, BinfmtctlError):
        owned = frozenset(bm.owned())
    return _Table(filesystems, st, status_enabled, status_error, tuple(entries), owned)


def _run_probes(
    names: Sequence[str], entries: Sequence[Entry], enabled: bool
) -> tuple[ProbeResult, ...]:
    from binfmtctl import install as inst

    wanted = list(dict.fromkeys([*names, *inst.live_qemu_targets(list(entries))]))
    return tuple(inst.run_probes(wanted, list(entries), enabled))


def gather(
    mount: str | None = None,
    *,
    root: str = "/",
    proc: str = "/proc",
    kernel: str | None = None,
    targets: Sequence[str] = (),
    probe: bool = False,
    rootless: bool = True,
    uname_m: str | None = None,
) -> HostFacts:
    """Read the host once. Never raises for host state (missing mounts, unreadable files);
    ``kernel`` (X.Y) judges as another kernel; ``targets`` are QEMU names or aliases;
    boot-time files are read in the system at ``root`` (:class:`Image`)."""
    bm = BinfmtMisc(mount)
    running = KernelProfile.current_default()
    live = _read_table(bm, proc)
    entries = live.entries
    names = [table.get_target(t).name for t in targets]
    with Root(root) as r:
        image = Image(r)
        context, persist = context_in(image, proc, bm.path), persist_in(image)
    return HostFacts(
        profile=KernelProfile.parse(kernel) if kernel else running,
        running=running,
        uname_m=uname_m or os.uname().machine,
        filesystems=live.filesystems,
        mount=live.mount,
        status_enabled=live.status_enabled,
        status_error=live.status_error,
        entries=entries,
        owned=live.owned,
        interpreters={e.interpreter: gather_interpreter(e.interpreter) for e in entries},
        native=hijack_gather(entries),
        context=context,
        persist=persist,
        rootless=gather_rootless() if rootless else None,
        targets=tuple(dict.fromkeys(names)),
        probes=_run_probes(names, entries, live.status_enabled is not False) if probe else None,
        usage=_gather_usage(entries),
    )


def _gather_usage(entries: Sequence[Entry]) -> Snapshot | None:
    from binfmtctl import usage

    try:
        return usage.snapshot({e.interpreter for e in entries})
    except Exception:  # /proc unreadable: the other checks still run
        return None
