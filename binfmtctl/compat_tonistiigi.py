"""The container image's entrypoint: tonistiigi/binfmt's interface on top of binfmtctl.

``docker/setup-qemu-action`` runs ``docker run --rm --privileged IMAGE --install PLATFORMS``
and then ``docker run --rm --privileged IMAGE`` and parses the JSON that prints
(``{"supported": [...], "emulators": [...]}``). This module speaks that interface so the
image is a drop-in (set the action's ``image:`` input), and passes every other command line
to binfmtctl itself (``IMAGE doctor``, ``IMAGE status --json``...).

The interface, as tonistiigi/binfmt ``cmd/binfmt/main.go`` defines it (Go ``flag`` syntax:
``-install X``, ``--install X``, ``--install=X``):

- ``--install all|LIST``: LIST is a comma list of OCI platforms (``linux/arm64``), architecture
  names (``arm64``, ``riscv64``) or globs over QEMU entry names (``qemu-*``);
- ``--uninstall LIST``: entry names, architectures (``aarch64`` removes ``qemu-aarch64``),
  platforms, or globs (``qemu-*``) over the live entries;
- ``--mount PATH`` (default /proc/sys/fs/binfmt_misc), ``-version``;
- then, always, the status JSON on stdout; progress (``installing: arm64 OK``) on stderr.

Differences, on purpose: entries are the ones ``binfmtctl install`` makes (F, and P only where
Debian's interpreter needs it; never C), and where tonistiigi logs an error and exits 0,
this prints what failed and exits 1, with a one-line summary as the last stderr line (the line
setup-qemu-action shows). WSLInterop and other tools' entries are never removed by a glob.

Pure: :func:`parse_argv`, :func:`expand_install`, :func:`select_uninstall`,
:func:`supported_platforms`, :func:`status_json`, :func:`install_report`.
Shell: :func:`main`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from binfmtctl import proc, table
from binfmtctl.errors import UsageError
from binfmtctl.record import dataclass, field
from binfmtctl.table import UnknownTargetError

DEFAULT_MOUNT = "/proc/sys/fs/binfmt_misc"
#: entries a glob never selects (tonistiigi skips WSLInterop too)
PROTECTED = ("register", "status", "WSLInterop")


@dataclass(frozen=True)
class Request:
    """A tonistiigi-style invocation."""

    install: str = ""
    uninstall: str = ""
    mount: str = DEFAULT_MOUNT
    version: bool = False


@dataclass
class Passthrough:
    """Not tonistiigi's interface: hand these arguments to binfmtctl."""

    argv: list[str] = field(default_factory=list)


_VALUED = {"install", "uninstall", "mount"}


def parse_argv(argv: Sequence[str]) -> Request | Passthrough:
    """Go ``flag`` parsing of tonistiigi's flags; anything else is a binfmtctl command line.

    No argument is the status query. A command line is tonistiigi's when its first word is
    one of its flags and every word is consumed by those flags; otherwise it is binfmtctl's
    (``doctor``, ``status --json``, ``--mount /x doctor``, ``--help``).
    """
    args = list(argv)
    if not args:
        return Request()
    values: dict[str, str] = {}
    version = False
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            if i + 1 < len(args):
                return Passthrough(args)
            break
        if not word.startswith("-") or word == "-":
            return Passthrough(args)
        name, eq, value = word.lstrip("-").partition("=")
        if name == "version" and word.startswith("-") and not word.startswith("--") and not eq:
            version = True
            i += 1
            continue
        if name not in _VALUED:
            return Passthrough(args)
        if not eq:
            if i + 1 >= len(args):
                raise UsageError(
                    f"flag needs an argument: {word}",
                    fix=f"{word} arm64,riscv64  (or {word} all)"
                    if name != "mount"
                    else f"{word} /proc/sys/fs/binfmt_misc",
                )
            value = args[i + 1]
            i += 1
        values[name] = value
        i += 1
    if not values and not version:
        return Passthrough(args)
    return Request(
        install=values.get("install", ""),
        uninstall=values.get("uninstall", ""),
        mount=values.get("mount", DEFAULT_MOUNT) or DEFAULT_MOUNT,
        version=version,
    )


def split_list(spec: str) -> list[str]:
    """``a, b,,c`` -> ``[a, b, c]``."""
    return [s.strip() for s in spec.split(",") if s.strip()]


def expand_install(spec: str) -> list[str]:
    """binfmtctl target names for ``--install SPEC``, in order, deduplicated; ``["all"]`` for all.

    Each item is ``all``, a platform (``linux/arm64``, ``linux/arm/v7``), an alias (``arm64``,
    ``riscv64``, ``aarch64``) or a glob over entry names (``qemu-*``, ``qemu-mips*``). An item
    that names nothing raises :class:`~binfmtctl.table.UnknownTargetError` (a usage error).
    """
    out: list[str] = []
    for item in split_list(spec):
        if item.lower() == "all":
            return ["all"]
        if any(c in item for c in "*?["):
            hits = [
                t.name
                for t in table.targets()
                if fnmatch.fnmatchcase(f"qemu-{t.name}", item) or fnmatch.fnmatchcase(t.name, item)
            ]
            if not hits:
                raise UsageError(
                    f"--install {item!r} matches no QEMU target",
                    fix="binfmtctl's targets: "
                    + ", ".join(t.name for t in table.targets())
                    + " (globs match qemu-NAME)",
                )
            out.extend(hits)
            continue
        name = item[len("qemu-") :] if item.startswith("qemu-") else item
        try:
            out.append(table.get_target(name).name)
        except UnknownTargetError:
            # a platform with a variant binfmtctl does not list (linux/arm64/v9): its architecture
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "linux":
                out.append(table.get_target(parts[1]).name)
            else:
                raise
    return list(dict.fromkeys(out))


def select_uninstall(spec: str, live: Sequence[str]) -> tuple[list[str], list[str]]:
    """(entry names to remove, items that matched no live entry) for ``--uninstall SPEC``.

    As tonistiigi: a platform or alias names its ``qemu-<target>`` entry; a glob matches live
    entry names (never ``WSLInterop``); a plain word matches an entry of that name or one ending
    in ``-WORD`` (``aarch64`` -> ``qemu-aarch64``).
    """
    names = [n for n in live if n not in PROTECTED]
    chosen: list[str] = []
    missing: list[str] = []
    for item in split_list(spec):
        if any(c in item for c in "*?["):
            hits = [n for n in names if fnmatch.fnmatchcase(n, item)]
        else:
            word = item
            if "/" in item or item not in names:
                try:
                    word = table.get_target(item).name
                except UnknownTargetError:
                    word = item
            hits = [n for n in names if n == word or n.endswith("-" + word)][:1]
            if not hits and word != item:
                hits = [n for n in names if n == item or n.endswith("-" + item)][:1]
        if not hits:
            missing.append(item)
        chosen.extend(hits)
    return list(dict.fromkeys(chosen)), missing


def native_targets(uname_m: str) -> list[str]:
    """Targets whose programs the host runs without QEMU, to try natively (x86-64: i386 too)."""
    host = table.host_target(uname_m)
    return [t.name for t in table.targets() if t.family == host.family and t.platform]


def supported_platforms(uname_m: str, working: Sequence[str]) -> list[str]:
    """OCI platforms that run here: the host's own, then each working target's, table order."""
    host = table.host_target(uname_m)
    ok = set(working)
    out = [host.platform] if host.platform else []
    for t in table.targets():
        if t.platform and t.name in ok and t.platform not in out:
            out.append(t.platform)
    return out


def status_json(
    entries: Sequence[tuple[str, bool]], uname_m: str, working: Sequence[str]
) -> dict[str, list[str]]:
    """tonistiigi's status object: supported platforms and the enabled entries, by name."""
    return {
        "supported": supported_platforms(uname_m, working),
        "emulators": sorted(name for name, enabled in entries if enabled),
    }


def install_report(result: Mapping[str, Any], requested: Sequence[str]) -> tuple[list[str], bool]:
    """``installing: NAME OK|error: ...`` lines from ``binfmtctl install --json``, and whether
    every requested target works."""
    lines: list[str] = []
    ok = bool(result.get("ok"))
    probes = {
        p["target"]: p for p in ((result.get("test") or {}).get("targets") or []) if "target" in p
    }
    for s in result.get("skipped") or []:
        word = "error" if s.get("refused") else "skipped"
        lines.append(f"installing: {s.get('name')} {word}: {s.get('reason')}")
        if s.get("refused"):
            ok = False
    for t in result.get("targets") or []:
        name = t.get("target")
        probe = probes.get(name)
        if t.get("error"):
            ok = False
            fix = f" (fix: {t['fix']})" if t.get("fix") else ""
            lines.append(f"installing: {name} error: {t['error']}{fix}")
        elif probe is not None and not probe.get("ok"):
            ok = False
            lines.append(
                f"installing: {name} error: registered, but the test failed: {probe.get('error')}"
            )
        else:
            verb = "OK" if t.get("action") != "keep" else "OK (already installed)"
            lines.append(f"installing: {name} {verb} ({t.get('entry')}, flags {t.get('flags')})")
    if not (result.get("targets") or result.get("skipped")) and requested:
        ok = False
    return lines, ok


# -- the shell --------------------------------------------------------------------------------
def _binfmtctl(mount: str, *args: str) -> proc.Ran:
    return proc.run([sys.executable, "-m", "binfmtctl", "--mount", mount, *args])


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _install(req: Request, failures: list[str]) -> None:
    targets = expand_install(req.install)
    qemu_path = os.environ.get("QEMU_BINARY_PATH")
    extra = ["--qemu-path", qemu_path] if qemu_path else []
    ran = _binfmtctl(req.mount, "install", "--json", *extra, *targets)
    try:
        result = json.loads(ran.out)
    except ValueError:
        err = (ran.err.strip().splitlines() or ["binfmtctl install failed"])[-1]
        failures.append(f"install {req.install}: {err}")
        _log(f"installing: {req.install} error: {err}")
        return
    lines, ok = install_report(result, targets)
    for line in lines:
        _log(line)
    if not ok or ran.returncode != 0:
        bad = [ln.split()[1] for ln in lines if " error: " in ln]
        failures.append(f"install of {', '.join(bad) or req.install} failed")


def _uninstall(req: Request, failures: list[str]) -> None:
    from binfmtctl.binfmt_misc import BinfmtMisc

    bm = BinfmtMisc(req.mount)
    names, missing = select_uninstall(req.uninstall, bm.names())
    for item in missing:
        _log(f"uninstalling: {item} error: not found (no live entry named {item} or *-{item})")
        failures.append(f"uninstall {item}: not found")
    for name in names:
        try:
            bm.remove(name)
        except Exception as e:
            msg = str(e).splitlines()[0]
            _log(f"uninstalling: {name} error: {msg}")
            failures.append(f"uninstall {name}: {msg}")
        else:
            _log(f"uninstalling: {name} OK")


def _status(mount: str) -> dict[str, list[str]]:
    from binfmtctl import install as inst
    from binfmtctl.binfmt_misc import BinfmtMisc

    bm = BinfmtMisc(mount)
    entries = bm.entries()
    uname_m = os.uname().machine
    candidates = list(dict.fromkeys([*native_targets(uname_m), *inst.live_qemu_targets(entries)]))
    results = inst.run_probes(candidates, entries, bm.enabled())
    return status_json(
        [(e.name, e.enabled) for e in entries], uname_m, [r.target for r in results if r.ok]
    )


def run(req: Request) -> int:
    """Do what ``req`` asks, print the status JSON; 0, or 1 when anything failed."""
    from binfmtctl import __version__
    from binfmtctl.binfmt_misc import BinfmtMisc

    if req.version:
        _log(f"binfmtctl/{__version__} (tonistiigi/binfmt-compatible entrypoint)")
        return 0
    failures: list[str] = []
    BinfmtMisc(req.mount).mount_for_write()  # as tonistiigi: this container's own mount
    if req.uninstall:
        _uninstall(req, failures)
    if req.install:
        _install(req, failures)
    print(json.dumps(_status(req.mount), indent=2), flush=True)
    if failures:
        _log(f"error: {'; '.join(failures)} (see the lines above)")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """The image's entrypoint."""
    from binfmtctl.errors import BinfmtctlError
    from binfmtctl.fastpath import entry_point

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        parsed = parse_argv(args)
        if isinstance(parsed, Passthrough):
            sys.argv = ["binfmtctl", *parsed.argv]
            entry_point()
            return
        if parsed.install:
            expand_install(parsed.install)  # a bad name is a usage error before any change
        code = run(parsed)
    except BinfmtctlError as e:
        _log(f"error: {e.format_message()}".replace("\n", " "))
        sys.exit(e.exit_code)
    sys.exit(code)


if __name__ == "__main__":
    main()
