"""binfmtctl.service: rendering the unit for this binfmtctl, and ``persist enable`` /
``disable``. The unit is a oneshot service ordered after the binfmt_misc mount, local
file systems and systemd-binfmt (and ``PartOf=`` it, so a restart of systemd-binfmt, which
flushes every entry, re-applies binfmtctl's), before container engines. ``--root DIR``
works on an offline image root, as ``systemctl --root`` does (every file opened through
:class:`binfmtctl.rootfs.Root`); only a live system runs ``systemctl``, through
:func:`systemctl`, the one place binfmtctl starts it.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from binfmtctl import proc
from binfmtctl.errors import BinfmtctlError
from binfmtctl.persist.config import header_bytes, os_error
from binfmtctl.persist.paths import (
    DEFAULT_CONFIG,
    FILE_MODE,
    UNIT_NAME,
    config_path,
    in_root,
    inside_path,
    root_dir,
    unit_path,
    wants_link,
)
from binfmtctl.record import dataclass, field
from binfmtctl.rootfs import Root
from binfmtctl.systemd_paths import UNIT_DIR

#: typing is not imported at run time: the boot-time apply does not need it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# -- the unit -----------------------------------------------------------------------------------------
def locate_unit_template(package_dir: Any = None, checkout_dir: Path | None = None) -> Any:
    """The shipped unit: ``<package>/data/binfmtctl.service`` (the wheel) first, then
    ``<checkout>/systemd/binfmtctl.service``. Both roots can be given for tests."""
    from binfmtctl import resources

    found, packaged, source = resources.locate(UNIT_NAME, "systemd", package_dir, checkout_dir)
    if found is not None:
        return found
    raise BinfmtctlError(
        f"{UNIT_NAME} not found in the package ({packaged}) nor the source tree ({source})",
        fix="reinstall binfmtctl; the wheel ships binfmtctl/data/binfmtctl.service",
    )


def unit_template() -> str:
    text: str = locate_unit_template().read_text(encoding="utf-8")
    return text


def systemd_quote(word: str) -> str:
    """One word of a systemd command line: specifiers (%) and variables ($) escaped,
    double-quoted when it has whitespace, quotes or backslashes."""
    w = word.replace("%", "%%").replace("$", "$$")
    if w and not any(c in w for c in " \t\n\"'\\;"):
        return w
    return '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_exec_line(value: str) -> list[str]:
    """Words of an ``ExecStart=`` value as rendered by :func:`systemd_quote`."""
    import shlex

    words = shlex.split(value.lstrip("@-:+!"), posix=True)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


def unit_settings(text: str, key: str) -> list[str]:
    """Values of ``key=`` lines in a unit file (in order)."""
    out = []
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == key:
            out.append(v.strip())
    return out


def unit_exec(text: str) -> tuple[list[str], dict[str, str]]:
    """(ExecStart argv, Environment) of a rendered unit: what systemd runs. A line that
    cannot be split (unbalanced quotes in a hand edit) reads as empty."""
    import shlex

    execs = unit_settings(text, "ExecStart")
    try:
        argv = parse_exec_line(execs[-1]) if execs else []
    except ValueError:
        argv = []
    env: dict[str, str] = {}
    for value in unit_settings(text, "Environment"):
        try:
            assignments = shlex.split(value)
        except ValueError:
            continue
        for assignment in assignments:
            k, _, v = assignment.partition("=")
            env[k] = v.replace("%%", "%")
    return argv, env


def self_command() -> tuple[list[str], dict[str, str]]:
    """How the unit runs this binfmtctl: its console script when that is what is running,
    else this Python with ``-m binfmtctl`` (and PYTHONPATH when the package is not on that
    Python's default path, e.g. a source checkout). Edge."""
    argv0 = sys.argv[0] if sys.argv else ""
    if (
        os.path.basename(argv0) == "binfmtctl"
        and os.path.isfile(argv0)
        and os.access(argv0, os.X_OK)
    ):
        return [os.path.abspath(argv0)], {}
    parent = str(Path(__file__).resolve().parents[2])  # the directory holding binfmtctl/
    import site

    default = {os.path.realpath(p) for p in site.getsitepackages()}
    env = {} if os.path.realpath(parent) in default else {"PYTHONPATH": parent}
    return [sys.executable, "-m", "binfmtctl"], env


def render_unit(
    template: str,
    command: Sequence[str],
    *,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    mount: str | None = None,
) -> str:
    """The unit to install: the template with ``ExecStart=COMMAND apply [--config CONFIG]``
    and ``Environment=`` lines for ``env``. Pure."""
    argv = [*command]
    if mount:
        argv += ["--mount", mount]
    argv.append("apply")
    if config:
        argv += ["--config", config]
    exec_line = "ExecStart=" + " ".join(systemd_quote(w) for w in argv)
    env_lines = [
        "Environment=" + systemd_quote(f"{k}={v}").replace("$$", "$")
        for k, v in (env or {}).items()
    ]
    out: list[str] = []
    replaced = False
    for line in template.splitlines():
        if line.strip().startswith("ExecStart=") and not replaced:
            out += [*env_lines, exec_line]
            replaced = True
        elif line.strip().startswith("ExecStart="):
            continue
        else:
            out.append(line)
    if not replaced:
        raise BinfmtctlError("the unit template has no ExecStart= line", fix="reinstall binfmtctl")
    head = [
        f"# Installed by `binfmtctl persist enable`: ExecStart= runs {command[0]}.",
        "# If that binfmtctl moves, run `binfmtctl persist enable` again.",
    ]
    return "\n".join(head + out) + "\n"


def systemd_booted(root: str = "/") -> bool:
    """Is systemd the running manager (``sd_booted()``: /run/systemd/system exists)?"""
    return in_root(root, "/run/systemd/system").is_dir()


def systemctl(*args: str) -> proc.Ran:
    """The one place binfmtctl runs ``systemctl`` (tests fake exactly these command lines)."""
    try:
        return proc.run(["systemctl", *args], timeout=120)
    except FileNotFoundError:
        raise BinfmtctlError(
            "systemctl is not installed", fix="install systemd, or use --root DIR for an image"
        ) from None
    except (OSError, proc.TimedOut) as e:
        raise BinfmtctlError(f"systemctl {' '.join(args)} failed: {e}") from None


def _systemctl_checked(*args: str) -> str:
    ran = systemctl(*args)
    if ran.returncode != 0:
        raise BinfmtctlError(
            f"systemctl {' '.join(args)} failed (exit {ran.returncode}): {(ran.err or ran.out).strip()}",
            fix="see journalctl -u binfmtctl.service; the unit and config are installed",
        )
    return f"ran systemctl {' '.join(args)}"


@dataclass
class UnitReport:
    root: str
    unit: str
    link: str
    config: str
    exec_start: list[str]
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "root": self.root,
            "unit": self.unit,
            "link": self.link,
            "config": self.config,
            "exec_start": self.exec_start,
            "steps": self.steps,
            "notes": self.notes,
        }


def _not_booted_note() -> str:
    return (
        "systemd is not the running init here (no /run/systemd/system; PID 1 is not systemd), "
        "so `systemctl daemon-reload` and `systemctl enable --now` were skipped: the unit runs at "
        "the next boot; run `binfmtctl apply` to apply the config now"
    )


def wsl_note(root: str) -> str | None:
    if root_dir(root) != Path("/"):
        return None
    try:
        version = Path("/proc/version").read_text().lower()
    except OSError:
        return None
    if "microsoft" in version or "wsl" in version:
        return (
            "WSL: systemd-binfmt is often disabled there (ConditionVirtualization=!wsl), so "
            "binfmtctl.service is what re-applies the config; it needs systemd enabled in "
            "/etc/wsl.conf ([boot] systemd=true), else run `binfmtctl apply` from [boot] command="
        )
    return None


def _enable_files(
    fs: Root,
    root: str,
    report: UnitReport,
    text: str,
    upath: Path,
    link: Path,
    cfg: Path,
    command: Sequence[str],
) -> None:
    """The unit, its wants-link and the config, each opened inside ``fs`` (never through
    a link out of an image)."""
    if root_dir(root) != Path("/") and not fs.executable(in_root(root, command[0])):
        report.notes.append(
            f"ExecStart= runs {command[0]}, which is not in {root_dir(root)}: install binfmtctl "
            "in the image at that path, or pass --binfmtctl with the path it has in the image"
        )
    try:
        current: str | None = fs.read_bytes(upath).decode("utf-8")
    except (OSError, BinfmtctlError, UnicodeDecodeError):
        current = None
    try:
        if current != text:
            if fs.readlink(upath) == os.devnull:
                raise BinfmtctlError(
                    f"{upath} is a symlink to /dev/null (masked); refusing to replace the mask",
                    fix=f"remove the mask (rm {upath}) if binfmtctl should manage it",
                )
            fs.write_atomic(upath, text.encode(), FILE_MODE)
            report.steps.append(f"{'updated' if current is not None else 'wrote'} {upath}")
    except OSError as e:
        raise os_error(e, "write", upath) from None
    target = f"{UNIT_DIR}/{UNIT_NAME}"
    try:
        if fs.readlink(link) != target:
            fs.symlink(target, link)
            report.steps.append(f"linked {link} -> {target}")
    except OSError as e:
        raise os_error(e, "create the enablement link", link) from None
    try:
        with fs.parent(cfg, create=True) as (dfd, _):
            fcntl.flock(dfd, fcntl.LOCK_EX)  # as config_lock: edits of the config serialise
            if fs.lstat(cfg) is None:
                fs.write_atomic(cfg, header_bytes(), FILE_MODE)
                report.steps.append(
                    f"created {cfg} (empty; add entries with install --persist, persist add or import)"
                )
    except OSError as e:
        raise os_error(e, "create", cfg) from None


def enable(
    root: str = "/",
    *,
    config: Path | None = None,
    live: bool | None = None,
    command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    mount: str | None = None,
    template: str | None = None,
) -> UnitReport:
    """Install the unit (rendered for this binfmtctl), its ``WantedBy=`` link as
    ``systemctl enable`` makes it, and the config (empty if there is none). On a live
    system (``live``: default when ``root`` is /) whose init is systemd, also run
    ``systemctl daemon-reload`` and ``systemctl enable --now``. Edge."""
    is_live = root_dir(root) == Path("/") if live is None else live
    cfg = config if config is not None else config_path(root)
    if command is None:
        command, found_env = self_command()
        env = {**found_env, **(env or {})}
    inside_cfg = inside_path(root, cfg)
    text = render_unit(
        template if template is not None else unit_template(),
        command,
        config=None if inside_cfg == DEFAULT_CONFIG else inside_cfg,
        env=env,
        mount=mount,
    )
    upath, link = unit_path(root), wants_link(root)
    report = UnitReport(str(root_dir(root)), str(upath), str(link), str(cfg), [*command])
    report.exec_start = unit_exec(text)[0]
    with Root(root_dir(root)) as fs:
        _enable_files(fs, root, report, text, upath, link, cfg, command)
    if not report.steps:
        report.notes.append(
            f"ExecStart= runs {command[0]}, which is not in {root_dir(root)}: install binfmtctl "
            "in the image at that path, or pass --binfmtctl with the path it has in the image"
        )
    if not report.steps:
        report.steps.append("already enabled: unit, link and config are in place")
    if is_live:
        if systemd_booted(root):
            report.steps.append(_systemctl_checked("daemon-reload"))
            report.steps.append(_systemctl_checked("enable", "--now", UNIT_NAME))
        else:
            report.notes.append(_not_booted_note())
    wsl = wsl_note(root)
    if wsl:
        report.notes.append(wsl)
    return report


def disable(
    root: str = "/", *, config: Path | None = None, purge: bool = False, live: bool | None = None
) -> UnitReport:
    """Remove the unit and its enablement link (and the config with ``purge``). Live
    entries stay registered; on a live systemd system the unit is stopped first (it has
    no ExecStop: nothing is unregistered) and systemd reloaded after. Edge."""
    is_live = root_dir(root) == Path("/") if live is None else live
    cfg = config if config is not None else config_path(root)
    upath, link = unit_path(root), wants_link(root)
    report = UnitReport(str(root_dir(root)), str(upath), str(link), str(cfg), [])
    booted = is_live and systemd_booted(root)
    with Root(root_dir(root)) as fs:
        if booted and (fs.lstat(upath) is not None or fs.lstat(link) is not None):
            report.steps.append(_systemctl_checked("stop", UNIT_NAME))
        for p in (link, upath, *((cfg,) if purge else ())):
            try:
                if fs.unlink(p):
                    report.steps.append(f"removed {p}")
            except OSError as e:
                raise os_error(e, "remove", p) from None
        cfg_exists = fs.lstat(cfg) is not None
    if not purge and cfg_exists:
        report.notes.append(
            f"kept the config {cfg}"
            + (
                ": it is a binfmt.d file, so systemd-binfmt still registers its entries at boot; "
                "`binfmtctl persist disable --purge` removes it"
                if inside_path(root, cfg).startswith("/etc/binfmt.d/")
                else " (`--purge` removes it)"
            )
        )
    if not report.steps:
        report.steps.append("nothing to remove: not enabled")
    if booted:
        report.steps.append(_systemctl_checked("daemon-reload"))
    elif is_live:
        report.notes.append(
            "systemd is not the running init here: `systemctl daemon-reload` skipped"
        )
    report.notes.append(
        "live entries were left registered; `binfmtctl uninstall all` removes binfmtctl's"
    )
    return report
