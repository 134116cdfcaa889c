"""``persist status``: what is set up for boot, what is out of order, and (for a live root)
how the live table compares with the config.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from binfmtctl.binfmt_misc import BinfmtMisc
from binfmtctl.errors import BinfmtctlError
from binfmtctl.persist.apply import plan_apply
from binfmtctl.persist.config import parse_config
from binfmtctl.persist.paths import UNIT_NAME, config_path, in_root, root_dir, unit_path, wants_link
from binfmtctl.persist.unit import systemctl, systemd_booted, unit_exec, wsl_note
from binfmtctl.record import dataclass, replace
from binfmtctl.rootfs import Root
from binfmtctl.systemd_paths import UNIT_DIR

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from binfmtctl.entry import Entry


@dataclass(frozen=True)
class StatusProblem:
    """Something out of order for boot, and the command that fixes it."""

    message: str
    fix: str


@dataclass(frozen=True)
class LiveCompare:
    """The live table against the config (only for the running system's root)."""

    mount: str
    in_sync: tuple[str, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True)
class PersistStatus:
    """``persist status``: its JSON is these fields, in this order (shared/design.md)."""

    root: str
    config: dict[str, object]  # path, exists, [uid, gid, mode], entries
    unit: dict[str, object]  # path, exists, [uid, gid, mode], exec_start
    enabled: bool
    systemd_running: bool
    systemctl: dict[str, str] | None
    live: LiveCompare | None
    problems: tuple[StatusProblem, ...]
    notes: tuple[str, ...]
    ok: bool

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def with_fixes(self, scope: Callable[[str], str]) -> PersistStatus:
        """The same report with every fix passed through ``scope`` (the command's options)."""
        return replace(self, problems=tuple(replace(p, fix=scope(p.fix)) for p in self.problems))


def _reason(e: BaseException) -> str:
    return e.summary if isinstance(e, BinfmtctlError) else (getattr(e, "strerror", None) or str(e))


def _fix(e: BaseException, p: Path) -> str:
    return (e.fix if isinstance(e, BinfmtctlError) else None) or f"check {p} (ls -l {p})"


def _file_facts(fs: Root, p: Path) -> dict[str, object]:
    st = fs.lstat(p)
    if st is None:
        return {"path": str(p), "exists": False}
    return {
        "path": str(p),
        "exists": True,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
    }


def status(
    root: str = "/", *, config: Path | None = None, bm: BinfmtMisc | None = None
) -> PersistStatus:
    """What is set up for boot, what is out of order, and (for a live root) how the live
    table compares with the config. ``problems`` are things to fix (exit 1). Edge."""
    cfg = config if config is not None else config_path(root)
    upath, link = unit_path(root), wants_link(root)
    with Root(root_dir(root)) as fs:
        return _status(fs, root, cfg, upath, link, bm)


def _status(
    fs: Root, root: str, cfg: Path, upath: Path, link: Path, bm: BinfmtMisc | None
) -> PersistStatus:
    problems: list[StatusProblem] = []
    notes: list[str] = []
    entries = _config_part(fs, cfg, problems)
    exec_argv, linked = _unit_part(fs, root, upath, link, problems)
    systemctl_state: dict[str, str] | None = None
    live: LiveCompare | None = None
    if root_dir(root) == Path("/"):
        if systemd_booted(root):
            systemctl_state = {"is_active": systemctl("is-active", UNIT_NAME).out.strip()}
        else:
            notes.append("systemd is not the running init here: unit state not queried")
        live = _live_part(bm or BinfmtMisc(), entries, problems, notes)
    wsl = wsl_note(root)
    if wsl:
        notes.append(wsl)
    return PersistStatus(
        root=str(root_dir(root)),
        config={**_file_facts(fs, cfg), "entries": [e.name for e in entries]},
        unit={**_file_facts(fs, upath), "exec_start": exec_argv},
        enabled=linked,
        systemd_running=systemd_booted(root),
        systemctl=systemctl_state,
        live=live,
        problems=tuple(problems),
        notes=tuple(notes),
        ok=not problems,
    )


def _config_part(fs: Root, cfg: Path, problems: list[StatusProblem]) -> list[Entry]:
    """The config's entries; what is wrong with it goes to ``problems``."""
    try:
        cfg_text = fs.read_bytes(cfg)
    except FileNotFoundError:
        cfg_text = b""
    except (OSError, BinfmtctlError) as e:
        cfg_text = b""
        problems.append(StatusProblem(f"cannot read {cfg}: {_reason(e)}", _fix(e, cfg)))
    entries, cfg_problems = parse_config(cfg_text, str(cfg))
    problems += [StatusProblem(str(p), p.fix) for p in cfg_problems]
    facts = _file_facts(fs, cfg)
    if facts["exists"] and os.geteuid() == 0 and (facts["uid"] != 0 or facts["mode"] != "0644"):
        problems.append(
            StatusProblem(
                f"{cfg} is owned by uid {facts['uid']} with mode {facts['mode']}",
                f"chown root:root {cfg} && chmod 0644 {cfg}",
            )
        )
    return entries


def _unit_part(
    fs: Root, root: str, upath: Path, link: Path, problems: list[StatusProblem]
) -> tuple[list[str], bool]:
    """(the unit's ExecStart argv, whether it is enabled); what is wrong goes to ``problems``."""
    unit_text = None
    try:
        unit_text = fs.read_bytes(upath).decode("utf-8", "replace")
    except FileNotFoundError:
        pass
    except (OSError, BinfmtctlError) as e:
        problems.append(StatusProblem(f"cannot read {upath}: {_reason(e)}", _fix(e, upath)))
    exec_argv: list[str] = []
    if unit_text is None:
        problems.append(
            StatusProblem(f"{UNIT_NAME} is not installed ({upath})", "binfmtctl persist enable")
        )
    else:
        exec_argv = unit_exec(unit_text)[0]
        binary = in_root(root, exec_argv[0]) if exec_argv else None
        if binary is None or not fs.executable(binary):
            problems.append(
                StatusProblem(
                    f"the unit's ExecStart= program {exec_argv[0] if exec_argv else '(none)'} is missing",
                    "run `binfmtctl persist enable` again with the binfmtctl that should run at boot (for an image: --binfmtctl PATH-IN-IMAGE)",
                )
            )
    linked = fs.readlink(link) == f"{UNIT_DIR}/{UNIT_NAME}"
    if unit_text is not None and not linked:
        problems.append(
            StatusProblem(
                f"{UNIT_NAME} is installed but not enabled ({link} missing)",
                "binfmtctl persist enable",
            )
        )
    return exec_argv, linked


def _live_part(
    table: BinfmtMisc, entries: Sequence[Entry], problems: list[StatusProblem], notes: list[str]
) -> LiveCompare | None:
    """The live table against the config (None when binfmt_misc is not mounted)."""
    if table.mount_state().state != "mounted":
        notes.append(f"binfmt_misc is not mounted at {table.path}: live table not compared")
        return None
    actions = plan_apply(entries, table.entries())
    pending = [a.entry.name for a in actions if a.kind != "keep"]
    if pending:
        problems.append(
            StatusProblem(
                f"the live table differs from the config for {', '.join(pending)}",
                "binfmtctl apply  (binfmtctl apply --plan shows what it does)",
            )
        )
    in_sync = tuple(a.entry.name for a in actions if a.kind == "keep")
    return LiveCompare(table.path, in_sync, tuple(pending))
