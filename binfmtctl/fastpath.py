"""The console entry point, and the three invocations it answers without click.

``binfmtctl --version``, the boot-time ``binfmtctl apply`` (what binfmtctl.service
runs: ``apply`` with at most ``--config FILE``, after at most ``--mount PATH``) and
``binfmtctl validate ENTRY...`` (register strings only, no option) are answered here;
every other command line goes to the click CLI (:mod:`binfmtctl.cli`). Importing click
costs more than starting the interpreter, so these pay only for what they use. Output and
exit statuses are the click path's, byte for byte (the tests run both paths on the same
inputs): the apply report is rendered by :func:`apply_text` for both, validate's by
:func:`binfmtctl.validate_text.validate_lines` for both, and errors are mapped by
:func:`binfmtctl.errors.error_line` for both.
"""

from __future__ import annotations

import os
import sys

from binfmtctl import __version__

#: ``--version`` imports nothing else: typing, the error types and the core are imported
#: by the path that uses them
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


OK, PROBLEMS = 0, 1  # binfmtctl.errors.ExitStatus, without importing it
VERSION_LINE = f"binfmtctl, version {__version__}"

#: click.style's SGR codes for the colours the apply and validate reports use
_SGR = {"red": 31, "green": 32, "yellow": 33}


def parse_fast(argv: Sequence[str]) -> tuple[str, dict[str, str]] | None:
    """("version", {}), ("apply", {"mount": ..., "config": ...}) or ("validate", {}) (the
    entries are ``argv[1:]``) when this module answers ``argv``; None sends it to click.
    Pure. Only the exact shapes the unit, ``--version`` and a plain ``validate ENTRY...``
    use are taken; anything else (help, --plan, --json, -f, --kernel, a repeated or empty
    option, an argument starting with ``-``) is click's, so no option is ever parsed two
    ways."""
    args = list(argv)
    if args in (["--version"], ["-V"]):
        return ("version", {})
    if args[:1] == ["validate"] and len(args) > 1 and not any(a.startswith("-") for a in args):
        return ("validate", {})
    opts: dict[str, str] = {}

    def take(name: str) -> bool:
        flag = f"--{name}"
        if not args or name in opts:
            return False
        if args[0].startswith(flag + "="):
            opts[name] = args.pop(0)[len(flag) + 1 :]
        elif args[0] == flag and len(args) >= 2:
            opts[name] = args[1]
            del args[:2]
        else:
            return False
        return True

    take("mount")
    if args[:1] != ["apply"]:
        return None
    del args[0]
    take("config")
    if args or any(not v or v.startswith("-") for v in opts.values()):
        return None
    return ("apply", opts)


def styled(text: str, fg: str | None, tty: bool, bold: bool = False) -> str:
    """``click.secho(text, fg=fg, bold=bold or None)``'s bytes: SGR colour (and bold) on a
    terminal where colour is allowed (``tty``); otherwise plain text, with any escape
    sequence in it removed as click removes them (``click.unstyle``)."""
    if not tty:
        return _unstyle(text) if "\x1b" in text else text
    if fg is None and not bold:
        return text
    codes = (f"\x1b[{_SGR[fg]}m" if fg else "") + ("\x1b[1m" if bold else "")
    return f"{codes}{text}\x1b[0m"


def _unstyle(text: str) -> str:
    """click's ``strip_ansi``: every ``\\033\\[[0-?]*[ -/]*[@-~]`` removed (the pattern of
    click._compat._ansi_re), scanned by hand: ``re`` costs more than validating. Greedy is
    exact here: a character given back by either star could never match what follows."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("\x1b[", i)
        if j < 0:
            break
        k = j + 2
        while k < n and "0" <= text[k] <= "?":
            k += 1
        while k < n and " " <= text[k] <= "/":
            k += 1
        if k < n and "@" <= text[k] <= "~":
            out.append(text[i:j])
            i = k + 1
        else:
            out.append(text[i : j + 1])
            i = j + 1
    out.append(text[i:])
    return "".join(out)


def _same(fix: str) -> str:
    return fix


def apply_lines(
    report: Any, table_path: str, scope: Callable[[str], str] = _same
) -> list[tuple[str, str | None]]:
    """The human report of ``apply`` as (line, colour) pairs; the click command prints the same.
    ``scope`` makes each fix carry the options the command runs under (``--mount``)."""
    out: list[tuple[str, str | None]] = []
    verb = {"add": "register", "replace": "replace", "keep": "unchanged"}
    n = len(report.items)
    out.append(
        (
            f"config {report.config}: {n} entr{'y' if n == 1 else 'ies'}; live table {table_path}"
            + (" (plan: nothing is changed)" if report.plan_only else ""),
            None,
        )
    )
    for i in report.items:
        if not i.ok:
            out.append((f"FAILED     {i.name}: {i.message}", "red"))
            out.append((f"  fix: {scope(i.fix)}", None))
        else:
            word = ("would " if report.plan_only and i.action != "keep" else "") + verb[i.action]
            out.append(
                (
                    f"{word:<16} {i.name:<22} {i.entry.interpreter}"
                    + (f"  ({i.message})" if i.message else ""),
                    None,
                )
            )
        out.extend((f"  warning: {w}", "yellow") for w in i.warnings)
    out.extend(config_problem_lines(report.problems, scope=scope))
    out.extend((f"note: {note}", None) for note in report.notes)
    if report.items:
        what = "would be" if report.plan_only else "were"
        counts = ", ".join(
            f"{report.count(k)} {label}"
            for k, label in (
                ("add", "to register" if report.plan_only else "registered"),
                ("replace", "to replace" if report.plan_only else "replaced"),
                ("keep", "unchanged"),
            )
        )
        out.append(
            (
                f"{'plan' if report.plan_only else 'done'}: {counts}; entries not in the config {what} left alone",
                None,
            )
        )
    return out


def config_problem_lines(
    problems: Sequence[Any], limit: int = 20, scope: Callable[[str], str] = _same
) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for p in problems[:limit]:
        out.append((f"INVALID    {p.where}: {p.message}", "red"))
        out.append((f"  fix: {scope(p.fix)}", None))
    if len(problems) > limit:
        out.append((f"... and {len(problems) - limit} more (--json lists them all)", None))
    return out


def apply_failure(report: Any, scope: Callable[[str], str] = _same) -> tuple[str, str] | None:
    """(message, fix) of the error ``apply`` ends with when some entry could not be
    applied, else None. Printed as ``Error: MESSAGE`` and ``  fix: FIX`` on stderr."""
    if report.ok:
        return None
    bad = [i.name for i in report.failed] + [p.where for p in report.problems]
    message = (
        f"{len(bad)} config entr{'y' if len(bad) == 1 else 'ies'} could not be applied: {', '.join(bad)}"
        + (
            ""
            if report.plan_only or len(report.items) == len(report.failed)
            else "; the others were applied"
        )
    )
    return message, scope("see the FAILED / INVALID lines above")


def apply_text(
    report: Any, scope: Callable[[str], str] = _same
) -> list[tuple[str, str | None, bool]]:
    """The whole text output of ``apply``: (line, colour, on stderr) triples, the report
    (:func:`apply_lines`) then the failure (:func:`apply_failure`). The one rendering both
    the fast path and the click command print."""
    from binfmtctl.errors import BinfmtctlError, error_line

    out = [(text, fg, False) for text, fg in apply_lines(report, report.table_path, scope)]
    failure = apply_failure(report, scope)
    if failure is not None:
        message, fix = failure
        out.append((error_line(BinfmtctlError(message, fix=fix)), None, True))
    return out


def fix_scope(mount: str | None) -> Callable[[str], str]:
    """What ``binfmtctl.cli.common.scoped`` does for apply: fixes name the --mount the
    command runs under (the option, else $BINFMTCTL_MOUNT, as click reads it), unless it
    is the default."""
    from binfmtctl.mountstate import DEFAULT_MOUNT

    mount = mount or os.environ.get("BINFMTCTL_MOUNT") or None
    if mount is None or os.path.normpath(mount) == DEFAULT_MOUNT:
        return _same
    from binfmtctl.fixscope import scope_fix

    return lambda fix: scope_fix(fix, mount=mount)


def run_apply(mount: str | None, config: str | None) -> int:
    """``binfmtctl apply`` without click: the boot plan replayed when every fact it was
    compiled from still holds (:mod:`binfmtctl.bootplan`), else the same core call, report
    and exit status as the click command, recorded into a new plan."""
    from binfmtctl import bootplan

    key = bootplan.Key(mount, config)
    replayed = bootplan.replay(key)
    if replayed is not None:
        lines, code = replayed
        _print(lines)
        return code
    from binfmtctl import persist
    from binfmtctl.binfmt_misc import BinfmtMisc
    from binfmtctl.persist.recording import Recorder

    path = persist.config_path(override=config)
    same = os.path.abspath(path) == key.config  # the plan's facts are about this file
    recorder = Recorder(key) if key.usable and same else None
    bm = BinfmtMisc(mount)
    bm.observer = recorder
    report = persist.apply_config(bm, path, host=recorder)
    lines = apply_text(report, fix_scope(mount))
    _print(lines)
    code = int(report.exit_code)
    if recorder is not None:
        recorder.finish(report, lines, code)
    return code


def _print(lines: Sequence[tuple[str, str | None, bool]]) -> None:
    colour = not os.environ.get("NO_COLOR")  # as the click path
    tty = sys.stdout.isatty() and colour
    err_tty = sys.stderr.isatty() and colour
    for text, fg, err in lines:
        stream = sys.stderr if err else sys.stdout
        if err:
            sys.stdout.flush()
        stream.write(styled(text, fg, err_tty if err else tty) + "\n")
    sys.stdout.flush()


def run_validate(entries: Sequence[str]) -> int:
    """``binfmtctl validate ENTRY...`` without click: the same use case, lines and status."""
    from binfmtctl import validation
    from binfmtctl.kernelprofile import KernelProfile
    from binfmtctl.validate_text import validate_lines

    inputs = [os.fsencode(e) for e in entries]  # as binfmtctl.cli.common.read_inputs
    report = validation.check(inputs, KernelProfile.current_default(), None)
    tty = sys.stdout.isatty() and not os.environ.get("NO_COLOR")  # as the click path
    write = sys.stdout.write
    for text, fg, bold in validate_lines(report, fix_scope(None)):
        write(styled(text, fg, tty, bold) + "\n")
    sys.stdout.flush()
    return report.exit_code


def run_fast(argv: Sequence[str]) -> int | None:
    """Answer ``argv`` here and return the exit status, or None for click to answer it."""
    parsed = parse_fast(argv)
    if parsed is None:
        return None
    what, opts = parsed
    if what == "version":
        sys.stdout.write(VERSION_LINE + "\n")
        return OK
    try:
        if what == "validate":
            return run_validate(argv[1:])
        return run_apply(opts.get("mount"), opts.get("config"))
    except Exception as e:
        # imported only now: a replayed boot plan never loads the error types (dataclasses)
        from binfmtctl.errors import BinfmtctlError, error_line

        if not isinstance(e, BinfmtctlError):
            raise
        sys.stdout.flush()
        sys.stderr.write(error_line(e) + "\n")
        return e.exit_code


def entry_point() -> None:
    """Console script: never a traceback for the user (BINFMTCTL_TRACEBACK=1 shows it)."""
    argv = sys.argv[1:]
    try:
        code = run_fast(argv)
        if code is None:
            from binfmtctl.cli import _run_main

            _run_main(argv)
            return
        sys.stdout.flush()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(PROBLEMS)
    except Exception as e:
        if os.environ.get("BINFMTCTL_TRACEBACK"):
            raise
        sys.stdout.flush()
        sys.stderr.write(
            f"Error: internal error: {type(e).__name__}: {e} (set BINFMTCTL_TRACEBACK=1 for details; please report it)\n"
        )
        sys.exit(PROBLEMS)
    sys.exit(code)
