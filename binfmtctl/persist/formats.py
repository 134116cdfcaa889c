"""Export and import formats: binfmt.d, Debian update-binfmts (a package's format file
and the admin database ``/var/lib/binfmts``) and JSON (``binfmtctl export --format json``).
Parsing and rendering are pure; :func:`import_files` and :func:`read_import` read files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from binfmtctl import safety, trust
from binfmtctl.binfmt_misc import open_exec_errno
from binfmtctl.entry import (
    Entry,
    EntryParseError,
    iter_binfmt_d_lines,
    parse_register,
    parse_update_binfmts,
    render_register,
    render_update_binfmts,
)
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.persist.config import ConfigProblem, is_masked, parse_rule
from binfmtctl.persist.paths import IGNORED_SUFFIXES, RUN_DETECTORS, UPDATE_BINFMTS_KEYS
from binfmtctl.record import dataclass
from binfmtctl.rules import KernelProfile

# -- export ---------------------------------------------------------------------------------------------
EXPORT_FORMATS = ("binfmt.d", "update-binfmts", "json")


def export_entries(
    live: Sequence[Entry], owned: Iterable[str], include_all: bool = False
) -> list[Entry]:
    """The live entries to export, oldest first: loading them in this order gives the same
    match order (the kernel tries the newest first). Default: binfmtctl's own. Pure."""
    keep = set(owned)
    return [e for e in reversed(list(live)) if include_all or e.name in keep]


def render_export(entries: Sequence[Entry], fmt: str, source: str = "") -> dict[str, bytes]:
    """Exported text per output file name (``""`` for one stream). binfmt.d and JSON are
    one stream; update-binfmts is one format file per entry, named after it. Pure."""
    if fmt == "binfmt.d":
        lines = [f"# exported by binfmtctl from {source or 'the live table'}"]
        lines.append("# load with: systemd-binfmt FILE, or binfmtctl import FILE")
        out = b"".join(line.encode() + b"\n" for line in lines)
        for e in entries:
            if not e.enabled:
                out += f"# {e.name} is disabled in the live table; this line registers it enabled\n".encode()
            out += render_register(e) + b"\n"
        return {"": out}
    if fmt == "update-binfmts":
        return {e.name: render_update_binfmts(e) for e in entries}
    if fmt == "json":
        data = {
            "source": source,
            "entries": [
                {**e.to_json(), "register": os.fsdecode(render_register(e))} for e in entries
            ],
        }
        return {"": (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()}
    raise UsageError(
        f"unknown export format {fmt!r}", fix=f"use one of {', '.join(EXPORT_FORMATS)}"
    )


# -- import -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Imported:
    entry: Entry
    source: str  # file or file:line


def parse_binfmts_admin(name: str, text: bytes, profile: KernelProfile) -> Entry:
    """An update-binfmts admin database file (``/var/lib/binfmts/NAME``): ten positional
    lines: package, type (magic/extension), offset, magic, mask, interpreter, detector,
    credentials, preserve, fix_binary (the last four may be missing). Pure."""
    lines = [line.strip(b" \t\r") for line in text.split(b"\n")]
    lines += [b""] * (10 - len(lines))
    _pkg, kind, offset, magic, mask, interp, detector, cred, preserve, fix = lines[:10]
    if kind not in (b"magic", b"extension"):
        raise EntryParseError(
            f"{name}: not an update-binfmts database file (line 2 is {kind[:20]!r}, not magic or extension)"
        )
    if detector:
        interp = RUN_DETECTORS.encode()
    flags = b""
    flags += b"P" if preserve == b"yes" else b""
    flags += b"C" if cred == b"yes" else b""
    flags += b"F" if fix == b"yes" else b""
    n = os.fsencode(name)
    if kind == b"extension":
        line = b":" + n + b":E::" + magic + b"::" + interp + b":" + flags
    else:
        off = b"" if offset in (b"", b"0") else offset
        line = b":" + n + b":M:" + off + b":" + magic + b":" + mask + b":" + interp + b":" + flags
    return parse_register(line, profile)


def detect_format(data: bytes, filename: str = "") -> str:
    """binfmt.d, update-binfmts (a package's format file), binfmts-admin (update-binfmts'
    database) or json (``binfmtctl export --format json``). Pure."""
    if data.lstrip()[:1] in (b"{", b"["):
        return "json"
    lines = [line.strip() for line in data.split(b"\n")]
    if len(lines) > 1 and lines[1] in (b"magic", b"extension") and b" " not in lines[0]:
        return "binfmts-admin"
    for _, rule in iter_binfmt_d_lines(data):
        words = rule.split(None, 1)  # empty for a rule of only \v or \f
        key = words[0].decode("ascii", "replace").lower() if words else ""
        if rule[:1].isalnum() and key in UPDATE_BINFMTS_KEYS:
            return "update-binfmts"
        break
    return "binfmt.d"


def parse_import(
    data: bytes, source: str, profile: KernelProfile | None = None
) -> tuple[list[Imported], list[ConfigProblem], list[str]]:
    """Entries of one import file (any supported format), its problems, and warnings. Pure."""
    prof = profile or KernelProfile.current_default()
    name = os.path.basename(source)
    warnings: list[str] = []
    if b"\0" in data[:8192]:
        return (
            [],
            [
                ConfigProblem(
                    source,
                    0,
                    "binary data, not a binfmt.d, update-binfmts or JSON file",
                    "give a text file: one register string per line, or 'key value' lines",
                )
            ],
            warnings,
        )
    fmt = detect_format(data, name)
    if fmt == "binfmt.d":
        out, problems = [], []
        for lineno, rule in iter_binfmt_d_lines(data):
            entry, problem = parse_rule(rule, source, lineno, prof)
            if problem is not None:
                problems.append(problem)
            elif entry is not None:
                out.append(Imported(entry, f"{source}:{lineno}"))
        return out, problems, warnings
    if fmt == "json":
        from binfmtctl.inputs import load_json  # not on the boot path: it needs typing

        doc = load_json(data, source)
        try:
            rows = doc["entries"] if isinstance(doc, dict) else doc
            regs = [str(r["register"]) for r in rows]
        except (ValueError, KeyError, TypeError):
            return (
                [],
                [
                    ConfigProblem(
                        source,
                        0,
                        "JSON without an 'entries' list of objects with a 'register' string",
                        "import a file written by `binfmtctl export --format json`",
                    )
                ],
                warnings,
            )
        out, problems = [], []
        for i, reg in enumerate(regs, start=1):
            entry, problem = parse_rule(os.fsencode(reg), f"{source} entries[{i - 1}]", 0, prof)
            if problem is not None:
                problems.append(problem)
            elif entry is not None:
                out.append(Imported(entry, f"{source} entries[{i - 1}]"))
        return out, problems, warnings
    try:
        if fmt == "binfmts-admin":
            entry = parse_binfmts_admin(name, data, prof)
        else:
            entry = parse_update_binfmts(name, data, prof)
            if any(line.strip().lower().startswith(b"detector ") for line in data.split(b"\n")):
                warnings.append(
                    f"{source}: has a userspace detector, which the kernel cannot run; imported with its interpreter"
                )
    except (EntryParseError, ValueError, UnicodeDecodeError) as e:
        msg = e.format_message() if isinstance(e, BinfmtctlError) else str(e)
        return (
            [],
            [
                ConfigProblem(
                    source,
                    0,
                    f"invalid {fmt} file: {msg}",
                    "fix the file (update-binfmts format: 'key value' lines with interpreter and magic or extension)",
                    name,
                )
            ],
            warnings,
        )
    return [Imported(entry, source)], [], warnings


def import_files(path: str) -> list[Path]:
    """The files ``import PATH`` reads: PATH itself, or a directory's files in name order.
    In a directory with ``*.conf`` files only those are read (binfmt.d semantics); other
    directories (update-binfmts, ``qemu-binfmt-conf.sh --debian``) give every regular file.
    Hidden files, backups and /dev/null masks are skipped. Edge."""
    p = Path(path)
    if not p.exists():
        raise UsageError(
            f"{path}: no such file or directory",
            fix="give a binfmt.d file, an update-binfmts format file, or a directory of them",
        )
    if not p.is_dir():
        return [p]
    try:
        names = sorted(os.listdir(p))
    except OSError as e:
        raise UsageError(f"cannot list {path}: {e.strerror}") from None
    files = [
        p / n
        for n in names
        if not n.startswith(".")
        and not n.endswith(IGNORED_SUFFIXES)
        and (p / n).is_file()
        and not is_masked(p / n)
    ]
    confs = [f for f in files if f.name.endswith(".conf")]
    return confs or files


def read_import(
    paths: Sequence[str], profile: KernelProfile | None = None
) -> tuple[list[Imported], list[ConfigProblem], list[str]]:
    """Every entry of the files or directories ``paths``, deduplicated; problems include
    unreadable lines and a name defined differently by two sources. Edge (reads files)."""
    found: list[Imported] = []
    problems: list[ConfigProblem] = []
    warnings: list[str] = []
    files = [f for p in paths for f in import_files(p)]
    if not files:
        raise UsageError(
            f"nothing to import in {', '.join(paths)}",
            fix="give a binfmt.d file, an update-binfmts format file, or a directory of them",
        )
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read {f}: {e.strerror}") from None
        got, bad, warn = parse_import(data, str(f), profile)
        found += got
        problems += bad
        warnings += warn
    by_name: dict[str, Imported] = {}
    for imp in found:
        first = by_name.get(imp.entry.name)
        if first is None:
            by_name[imp.entry.name] = imp
        elif not first.entry.same_registration(imp.entry):
            problems.append(
                ConfigProblem(
                    imp.source,
                    0,
                    f"{imp.entry.name!r} is also defined, differently, by {first.source} "
                    f"({entry_differences(first.entry, imp.entry)})",
                    "import these sources in separate runs (the later run wins, as in binfmt.d), or import only the one you want",
                    imp.entry.name,
                )
            )
    if not by_name and not problems:
        raise UsageError(
            f"no entries in {', '.join(paths)}",
            fix="give a binfmt.d file, an update-binfmts format file, or a directory of them",
        )
    return list(by_name.values()), problems, warnings


def _show_field(name: str, value: object) -> str:
    if isinstance(value, bytes):
        return value.hex() or "-"
    return "-" if value in (None, "") else str(value)


def entry_differences(a: Entry, b: Entry) -> str:
    """The fields in which two registrations differ, ``field X vs Y`` each. Pure."""
    out = []
    for name in ("type", "offset", "magic", "mask", "extension", "interpreter", "flags"):
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            out.append(f"{name} {_show_field(name, x)} vs {_show_field(name, y)}")
    return ", ".join(out) or "same registration"


def safety_problems(entries: Sequence[Entry]) -> list[tuple[str, str, str]]:
    """(name, message, fix) for entries refused without --force. Edge (reads host files)."""
    return [(e.name, p.message, p.fix) for e, p in safety.judge(entries) if p.is_error]


def interpreter_warnings(entries: Sequence[Entry]) -> list[str]:
    """Entries whose interpreter is not there now (added anyway: apply reports them), or
    is controlled by a non-root user (warned about; with C/O it is refused instead)."""
    out = []
    for e in entries:
        err = open_exec_errno(e.interpreter)
        if err is not None:
            out.append(
                f"{e.name}: interpreter {e.interpreter} is not usable now ({err})"
                + ("; `binfmtctl apply` will fail for it until it is" if "F" in e.flags else "")
            )
    seen: dict[str, trust.Verdict] = {}
    for e in entries:
        v = seen.setdefault(e.interpreter, trust.check(e.interpreter))
        p = trust.interpreter_problem(e, v)
        if p is not None and not p.is_error:
            out.append(f"{p.message}; fix: {p.fix}")
    return out
