"""Command line: parse options, call the core, print. Nothing else lives here.

Exit statuses (stable, for scripts): 0 ok; 1 problems found or an operation
failed; 2 usage error or unreadable input.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import click

from binfmtctl import __version__
from binfmtctl.errors import BinfmtctlError, CommandNotFound, ExitStatus, Problem, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# -- output helpers -------------------------------------------------------------------------------
def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _disp(b: int) -> str:
    if 0x20 <= b < 0x7F:
        return chr(b)
    return {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x00: "\\0"}.get(b, f"\\x{b:02x}")


def caret_lines(raw: bytes, span: tuple[int, int] | None) -> list[str]:
    """The input (non-printables escaped) and a caret line under ``span``, compiler style."""
    shown = [_disp(b) for b in raw]
    line = "".join(shown)
    if span is None:
        return [f"  {line}"]
    start = sum(len(s) for s in shown[: span[0]])
    width = max(1, sum(len(s) for s in shown[span[0] : span[1]]))
    return [f"  {line}", "  " + " " * start + "^" + "~" * (width - 1)]


def print_problem(raw: bytes | None, p: Problem) -> None:
    tag = p.severity + (f"[{p.errno}]" if p.errno else "")
    color = "red" if p.is_error else "yellow"
    click.secho(f"{tag} {p.field}: {p.message}", fg=color, err=False)
    if raw is not None and p.span is not None:
        for line in caret_lines(raw, p.span):
            click.echo(line)
    click.echo(f"  fix: {p.fix}")


def fail(message: str, fix: str | None = None) -> NoReturn:
    raise BinfmtctlError(message, fix=fix)


class Ctx:
    def __init__(self, mount: str | None) -> None:
        self.mount = mount

    def bm(self, profile: Any = None) -> Any:
        from binfmtctl.binfmt_misc import BinfmtMisc

        return BinfmtMisc(self.mount, profile=profile)


pass_ctx = click.make_pass_decorator(Ctx)


def read_inputs(entries: Sequence[str], file: str | None) -> list[bytes]:
    """Register strings from argv and/or a file (``-`` = stdin), as bytes.

    Blank lines and lines starting with ``#`` or ``;`` are skipped (binfmt.d syntax).
    """
    out = [os.fsencode(e) for e in entries]
    if file is not None:
        try:
            if file == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(file, "rb") as f:
                    data = f.read()
        except OSError as e:
            raise UsageError(f"cannot read {file}: {e.strerror}") from None
        for line in data.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line.strip() or line[:1] in (b"#", b";"):
                continue
            out.append(line)
    return out


# -- the group ------------------------------------------------------------------------------------
@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="binfmtctl")
@click.option(
    "--mount",
    envvar="BINFMTCTL_MOUNT",
    default=None,
    metavar="PATH",
    help="binfmt_misc mount to manage [env BINFMTCTL_MOUNT; default /proc/sys/fs/binfmt_misc].",
)
@click.pass_context
def main(ctx: click.Context, mount: str | None) -> None:
    """Register, explain and persist Linux binfmt_misc entries (QEMU user-mode emulation).

    \b
    Diagnose:   validate  which  scan  doctor  status  show
    Change:     register  enable  disable  remove  install  uninstall
    Prove:      test  sandbox  run
    Persist:    apply  export  import  persist

    \b
    Exit status: 0 ok, 1 problems found or an operation failed, 2 usage error.
    Read commands take --json. Nothing is written before everything is validated,
    and a batch that fails midway is rolled back.
    """
    ctx.obj = Ctx(mount)


# -- validate -------------------------------------------------------------------------------------
@main.command(context_settings=CONTEXT)
@click.argument("entries", nargs=-1)
@click.option(
    "-f",
    "--file",
    "file",
    metavar="FILE|-",
    help="Read register strings from FILE, one per line (- for stdin).",
)
@click.option(
    "--kernel",
    "kernel",
    metavar="X.Y",
    help="Judge as Linux X.Y would (default: the running kernel).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per input.")
@pass_ctx
def validate(
    obj: Ctx, entries: tuple[str, ...], file: str | None, kernel: str | None, as_json: bool
) -> None:
    """Say whether the kernel would accept each register string, and if not why.

    Each ENTRY is a register string, ':name:type:offset:magic:mask:interpreter:flags',
    judged exactly as `echo ENTRY > /proc/sys/fs/binfmt_misc/register` would write it
    (the string plus one newline). Errors name the field, point at the bytes, give the
    errno the kernel would return and the fix. Warnings flag what the kernel accepts but
    is almost surely a mistake (magic written as bare hex, a raw NUL that truncates,
    a mask that matches other architectures).

    \b
    Examples:
      binfmtctl validate ':qemu-arm:M::\\x7fELF\\x01::/usr/bin/qemu-arm-static:F'
      binfmtctl validate --kernel 4.4 -f /usr/lib/binfmt.d/qemu-aarch64.conf
      grep -h . /etc/binfmt.d/*.conf | binfmtctl validate -f - --json
    """
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.rules import KernelProfile
    from binfmtctl.rules import validate as do_validate

    try:
        profile = KernelProfile.parse(kernel) if kernel else KernelProfile.current_default()
    except ValueError as e:
        raise UsageError(str(e)) from None
    inputs = read_inputs(entries, file)
    if not inputs:
        raise UsageError(
            "nothing to validate: give ENTRY arguments or -f FILE",
            fix="binfmtctl validate ':name:M::magic::/path/to/interpreter:F'",
        )
    existing = _live_names(obj)
    verdicts = [
        do_validate(raw + b"\n", profile, existing_names=existing, exec_check=open_exec_errno)
        for raw in inputs
    ]
    if as_json:
        emit_json([v.to_json() for v in verdicts])
    else:
        for raw, v in zip(inputs, verdicts, strict=True):
            if v.valid:
                n_warn = sum(1 for p in v.problems if not p.is_error)
                click.secho(
                    f"ok  {raw.decode('utf-8', 'backslashreplace')}"
                    + (f"  ({n_warn} warning{'s' * (n_warn != 1)})" if n_warn else ""),
                    fg="green" if not n_warn else "yellow",
                )
            else:
                click.secho(
                    f"INVALID ({v.errno})  {raw.decode('utf-8', 'backslashreplace')}",
                    fg="red",
                    bold=True,
                )
            for p in v.problems:
                print_problem(raw + b"\n", p)
            if v.valid and v.kernel_view and len(inputs) == 1:
                click.echo("kernel would show:")
                for line in v.kernel_view.splitlines():
                    click.echo(f"  | {line}")
    if not all(v.valid for v in verdicts):
        sys.exit(ExitStatus.PROBLEMS)


def _live_names(obj: Ctx) -> list[str]:
    """Names in the live table if it can be read without side effects (else none)."""
    try:
        bm = obj.bm()
        if bm.mount_state().state != "mounted":
            return []
        names: list[str] = bm.names()
        return names
    except OSError:
        return []


# -- status / show --------------------------------------------------------------------------------
def _open_for_read(obj: Ctx) -> Any:
    from binfmtctl.binfmt_misc import NotMounted

    bm = obj.bm()
    try:
        bm.ensure_mounted(mount=os.geteuid() == 0)
    except NotMounted:
        raise
    return bm


def _entry_rows(bm: Any, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    from binfmtctl.binfmt_misc import entry_health, open_exec_errno

    entries = bm.entries()
    owned = bm.owned()
    rows = []
    for order, e in enumerate(entries, start=1):
        if names and e.name not in names:
            continue
        row = e.to_json()
        row["order"] = order
        row["owner"] = "binfmtctl" if e.name in owned else None
        row["health"] = entry_health(e, open_exec_errno(e.interpreter))
        row["kind"] = _classify(e)
        rows.append(row)
    return rows


def _classify(e: Any) -> Any:
    try:
        from binfmtctl import table
    except ImportError:  # pragma: no cover - table ships with the package
        return None
    try:
        return table.classify(e)
    except Exception:  # classification is best effort, never fatal
        return None


@main.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def status(obj: Ctx, names: tuple[str, ...], as_json: bool) -> None:
    """Show the live binfmt_misc table, in the order the kernel tries it.

    The kernel tries the newest entry first: the first enabled entry that matches
    a file runs it. For each entry: enabled, type, magic/mask or extension,
    interpreter, flags, owner (binfmtctl if it registered it) and a one-word
    health (ok, disabled, interpreter-missing, interpreter-not-executable,
    pinned-interpreter-gone). Reads need no root where the table is mounted.
    """
    from binfmtctl.binfmt_misc import NotMounted

    bm = obj.bm()
    try:
        st = bm.ensure_mounted(mount=os.geteuid() == 0)
    except NotMounted as e:
        if as_json:
            emit_json(
                {
                    "mount": bm.mount_state().to_json(),
                    "enabled": None,
                    "entries": [],
                    "error": e.format_message(),
                }
            )
            sys.exit(ExitStatus.PROBLEMS)
        raise
    rows = _entry_rows(bm, names)
    missing = [n for n in names if n not in {r["name"] for r in rows}]
    enabled = bm.enabled()
    if as_json:
        emit_json(
            {"mount": st.to_json(), "enabled": enabled, "kernel": bm.profile.label, "entries": rows}
        )
    else:
        click.echo(
            f"binfmt_misc at {bm.path}: {st.state}{' (read-only)' if st.read_only else ''}, {'enabled' if enabled else 'DISABLED (no entry is used)'}; Linux {bm.profile.label}"
        )
        if not rows:
            click.echo("no entries" + (" match" if names else " registered"))
        else:
            click.echo(
                f"{'#':>3}  {'NAME':<22} {'STATE':<8} {'FLAGS':<5} {'INTERPRETER':<44} {'OWNER':<9} HEALTH"
            )
            for r in rows:
                click.echo(
                    f"{r['order']:>3}  {r['name']:<22} {'enabled' if r['enabled'] else 'disabled':<8} {r['flags'] or '-':<5} {r['interpreter']:<44} {r['owner'] or '-':<9} {r['health']}"
                )
    if missing:
        fail(
            f"no entry named {', '.join(repr(n) for n in missing)}",
            fix="binfmtctl status lists every entry",
        )


@main.command(context_settings=CONTEXT)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def show(obj: Ctx, name: str, as_json: bool) -> None:
    """Show one entry: the kernel's own text, its register string, and what it means."""
    from binfmtctl.entry import render_register_str

    bm = _open_for_read(obj)
    rows = _entry_rows(bm, [name])
    if not rows:
        fail(f"no entry named {name!r}", fix="binfmtctl status lists every entry")
    e = bm.read(name)
    row = rows[0]
    row["register"] = render_register_str(e)
    if as_json:
        emit_json(row)
        return
    from binfmtctl.entry import FLAG_MEANING, kernel_view

    click.echo(
        f"{name}  (#{row['order']} in match order, owner {row['owner'] or 'unknown'}, health {row['health']})"
    )
    click.echo("kernel view:")
    for line in kernel_view(e).splitlines():
        click.echo(f"  | {line}")
    click.echo(f"register string: {row['register']}")
    for f in e.flags:
        click.echo(f"  {f}: {FLAG_MEANING[f]}")
    if row["kind"]:
        click.echo(f"recognised as: {row['kind']}")


# -- register / enable / disable / remove ---------------------------------------------------------
def _parse_batch(raws: Sequence[bytes], profile: Any) -> list[Any]:
    """Validate every input before anything is written; all errors at once."""
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.rules import validate as do_validate

    entries = []
    bad = []
    for raw in raws:
        v = do_validate(raw + b"\n", profile, exec_check=open_exec_errno)
        errors = [p for p in v.problems if p.is_error]
        if errors or v.entry is None:
            bad.append((raw, errors))
        else:
            entries.append(v.entry)
    if bad:
        for raw, errors in bad:
            click.secho(f"INVALID  {raw.decode('utf-8', 'backslashreplace')}", fg="red", err=True)
            for p in errors:
                click.echo(f"  {p.field} [{p.errno}]: {p.message}\n  fix: {p.fix}", err=True)
        fail(f"{len(bad)} of {len(raws)} entries are invalid; nothing was written")
    return entries


def _safety(entries: Sequence[Any], force: bool) -> None:
    from binfmtctl.binfmt_misc import gather_path_facts, read_host_headers
    from binfmtctl.plan import credentials_problem, host_match_problem

    headers = read_host_headers()
    problems = []
    for e in entries:
        for p in (
            host_match_problem(e, headers),
            credentials_problem(e, gather_path_facts(e.interpreter)),
        ):
            if p is not None:
                problems.append(p)
    if not problems:
        return
    for p in problems:
        click.secho(
            ("warning (--force): " if force else "refused: ") + p.message,
            fg="yellow" if force else "red",
            err=True,
        )
        if not force:
            click.echo(f"  fix: {p.fix}", err=True)
    if not force:
        fail(
            "refused for the host's safety; nothing was written",
            fix="fix the entries, or pass --force",
        )


def report_actions(actions: Sequence[Any], dry_run: bool) -> None:
    from binfmtctl.entry import render_register_str
    from binfmtctl.plan import diff_lines

    verb = {
        "add": "register",
        "replace": "replace",
        "keep": "unchanged",
        "conflict": "CONFLICT",
        "remove": "remove",
    }
    for a in actions:
        prefix = "would " if dry_run and a.changes else ""
        click.echo(
            f"{prefix}{verb[a.kind]:<10} {a.entry.name}" + (f"  ({a.note})" if a.note else "")
        )
        if dry_run and a.kind in ("add", "replace"):
            click.echo(f"  {render_register_str(a.entry)}")
        if (
            a.kind in ("conflict", "replace")
            and a.old is not None
            and (a.kind == "conflict" or dry_run)
        ):
            for line in diff_lines(a.old, a.entry):
                click.echo(line)


@main.command(context_settings=CONTEXT)
@click.argument("entries", nargs=-1)
@click.option(
    "-f",
    "--file",
    "file",
    metavar="FILE|-",
    help="Read register strings from FILE (binfmt.d syntax; - for stdin).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace a same-named entry that differs (remove, register, verify; restore on failure).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be written and change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Register even entries that match the host's own binaries, or C/O with an interpreter non-root users can write.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the actions as JSON.")
@pass_ctx
def register(
    obj: Ctx,
    entries: tuple[str, ...],
    file: str | None,
    replace: bool,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Register entries, all or nothing.

    Every entry is validated before the first write. An identical entry of the same
    name is left alone (reported as unchanged); a different one is refused, with both
    versions shown, unless --replace. If the k-th write fails, the k-1 before it are
    undone. After each write the entry is read back and compared.

    \b
    Examples:
      binfmtctl register ':qemu-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-aarch64-static:F'
      binfmtctl register -f /usr/lib/binfmt.d/qemu-riscv64.conf --dry-run
    """

    raws = read_inputs(entries, file)
    if not raws:
        raise UsageError("nothing to register: give ENTRY arguments or -f FILE")
    bm = obj.bm()
    desired = _parse_batch(raws, bm.profile)
    _safety(desired, force)
    if not dry_run:
        bm.ensure_mounted()
    with bm.locked() if not dry_run else contextlib.nullcontext():
        _register_locked(bm, desired, replace=replace, dry_run=dry_run, as_json=as_json)


def _register_locked(
    bm: Any, desired: list[Any], *, replace: bool, dry_run: bool, as_json: bool
) -> None:
    """Plan against the live table and apply, under the writers' lock."""
    from binfmtctl.plan import plan_register

    mounted = bm.mount_state().state == "mounted"
    live = bm.entries() if mounted else []
    actions = plan_register(desired, live, replace=replace, owned=bm.owned() if mounted else {})
    conflicts = [a for a in actions if a.kind == "conflict"]
    if as_json and (dry_run or conflicts):
        emit_json({"dry_run": dry_run, "actions": [a.to_json() for a in actions]})
    else:
        report_actions(actions, dry_run or bool(conflicts))
    if conflicts:
        fail(
            f"{len(conflicts)} entr{'y' if len(conflicts) == 1 else 'ies'} already registered with different content; nothing was written",
            fix="binfmtctl register --replace ...  (or remove them first)",
        )
    if dry_run:
        return
    bm.apply(actions)
    if as_json:
        emit_json({"dry_run": False, "actions": [a.to_json() for a in actions]})
    else:
        n = sum(1 for a in actions if a.changes)
        click.echo(
            f"done: {n} change{'s' * (n != 1)}"
            if n
            else "nothing to do: every entry is already registered as given"
        )


def _names_command(obj: Ctx, names: Sequence[str], op: str) -> None:
    bm = obj.bm()
    bm.ensure_mounted()
    live = set(bm.names())
    unknown = [n for n in names if n not in live]
    if unknown:
        fail(
            f"no entry named {', '.join(repr(n) for n in unknown)}; nothing was changed",
            fix="binfmtctl status lists every entry",
        )
    for n in names:
        if op == "enable":
            bm.set_enabled(n, True)
        elif op == "disable":
            bm.set_enabled(n, False)
        click.echo(f"{op}d {n}")


@main.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@pass_ctx
def enable(obj: Ctx, names: tuple[str, ...]) -> None:
    """Enable entries (write 1 to each)."""
    _names_command(obj, names, "enable")


@main.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@pass_ctx
def disable(obj: Ctx, names: tuple[str, ...]) -> None:
    """Disable entries (write 0): the kernel skips them but keeps them."""
    _names_command(obj, names, "disable")


@main.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option(
    "--owned", is_flag=True, help="Remove every entry binfmtctl registered (and still owns)."
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed.")
@pass_ctx
def remove(obj: Ctx, names: tuple[str, ...], owned: bool, dry_run: bool) -> None:
    """Remove named entries (write -1 to each), or with --owned all of binfmtctl's.

    Entries are removed one by one by name; binfmtctl never writes -1 to
    `status`, which would remove every entry including other tools' (WSLInterop,
    python, jar, Rosetta).
    """
    from binfmtctl.plan import plan_remove

    if not names and not owned:
        raise UsageError(
            "name the entries to remove, or pass --owned", fix="binfmtctl status lists the entries"
        )
    if "status" in names or "register" in names:
        raise UsageError(
            "'status' and 'register' are control files, not entries; binfmtctl never flushes the whole table"
        )
    bm = obj.bm()
    bm.ensure_mounted()
    live = bm.entries()
    live_names = {e.name for e in live}
    unknown = [n for n in names if n not in live_names]
    if unknown:
        fail(
            f"no entry named {', '.join(repr(n) for n in unknown)}; nothing was removed",
            fix="binfmtctl status lists every entry",
        )
    targets = list(names) + [n for n in bm.owned() if owned and n not in names]
    actions = plan_remove(targets, live)
    if dry_run:
        report_actions(actions, True)
        return
    bm.apply(actions)
    for a in actions:
        click.echo(f"removed {a.entry.name}")
    if not actions:
        click.echo("nothing to remove")


# -- which / scan / gen -----------------------------------------------------------------------------
def _live_for_matching(obj: Ctx) -> tuple[list[Any], bool, str | None]:
    """(entries newest first, global status, note) without mounting anything."""
    bm = obj.bm()
    try:
        st = bm.mount_state()
        if st.state == "automount":
            st = bm.ensure_mounted(mount=False)
        if st.state != "mounted":
            return [], True, f"binfmt_misc is not mounted at {bm.path}: no entry can run anything"
        return bm.entries(), bm.enabled(), None
    except (OSError, BinfmtctlError) as e:
        return [], True, f"cannot read the live table: {e}"


@main.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per FILE.")
@pass_ctx
def which(obj: Ctx, files: tuple[str, ...], as_json: bool) -> None:
    """Say which entry the kernel would run each FILE with, and why the others don't.

    Reads the file's first bytes and ELF headers (class, byte order, machine, ABI
    flags, static or dynamic), then walks the live entries in the kernel's order:
    the newest enabled match wins. For ELF entries that nearly match, names the
    first differing field ("e_machine is 0x00b7 (AArch64), entry expects 0x0028
    (ARM)"). Says when the host runs the file natively. Exit 1 if a FILE could not
    be read.
    """
    from binfmtctl.elf import NotElfError, read_elf, read_header
    from binfmtctl.match import match

    entries, enabled, note = _live_for_matching(obj)
    results: list[dict[str, Any]] = []
    unreadable = 0
    for path in files:
        row: dict[str, Any] = {
            "path": path,
            "elf": None,
            "handler": None,
            "native": False,
            "near_misses": [],
        }
        try:
            header = read_header(path)
        except NotElfError as e:
            row["error"] = e.format_message()
            unreadable += 1
            results.append(row)
            continue
        try:
            row["elf"] = read_elf(path).to_json()
        except NotElfError as e:
            row["not_elf"] = e.format_message()
        m = match(header, entries, path=path, status_enabled=enabled)
        row.update(m.to_json())
        if note:
            row["notes"] = [note, *row.get("notes", [])]
        results.append(row)
    if as_json:
        emit_json(results)
    else:
        for r in results:
            _print_which(r)
    if unreadable:
        sys.exit(ExitStatus.PROBLEMS)


def _print_which(r: dict[str, Any]) -> None:
    if "error" in r:
        click.secho(f"{r['path']}: {r['error']}", fg="red")
        return
    elf = r.get("elf")
    if elf:
        what = f"ELF {elf['class']}-bit {elf['endian']}-endian {elf['machine_description']} ({elf['arch'] or 'no QEMU target'}), {elf['linkage'] or elf['type']}"
    else:
        what = str(r.get("not_elf", "not ELF"))
    click.echo(f"{r['path']}: {what}")
    h = r["handler"]
    if h:
        click.secho(f"  runs with: {h['name']} -> {h['interpreter']}", fg="green")
    elif r["native"]:
        click.echo("  runs natively on this host")
    else:
        click.secho("  nothing can run it here: exec gives 'exec format error'", fg="yellow")
    for c in r.get("candidates", []):
        if c.get("state") != "handler":
            click.echo(f"  also matches {c['name']}: {c['reason']}")
    for nm in r["near_misses"]:
        click.echo(f"  not {nm['entry']}: {nm['reason']}")
    for n in r.get("notes", []):
        click.echo(f"  note: {n}")


@main.command(context_settings=CONTEXT)
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--examples", default=20, show_default=True, help="How many files nothing can run to list."
)
@pass_ctx
def scan(obj: Ctx, dirs: tuple[str, ...], as_json: bool, examples: int) -> None:
    """Walk trees and count ELF files by architecture and by handler.

    Streams the tree (memory stays flat however large it is), reads only the first
    bytes of each regular file, and reports the files that nothing can run (neither
    natively nor through an enabled entry). Symlinks are not followed.
    """
    from binfmtctl import table
    from binfmtctl.match import Matcher, native

    entries, enabled, note = _live_for_matching(obj)
    matcher = Matcher(entries, status_enabled=enabled)
    by_arch: dict[str, int] = {}
    by_handler: dict[str, int] = {}
    stranded: list[str] = []
    stranded_n = files = elfs = errors = 0
    arch_cache: dict[bytes, tuple[str, bool]] = {}
    show_progress = sys.stderr.isatty() and not as_json
    for path in _walk(dirs):
        files += 1
        if show_progress and files % 2000 == 0:
            click.echo(f"\rscanned {files} files, {elfs} ELF", nl=False, err=True)
        try:
            with open(path, "rb") as f:
                header = f.read(256)
        except OSError:
            errors += 1
            continue
        if header[:4] != b"\x7fELF":
            continue
        elfs += 1
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
        if h is None and not is_native:
            stranded_n += 1
            if len(stranded) < examples:
                stranded.append(path)
    if show_progress:
        click.echo("\r" + " " * 60 + "\r", nl=False, err=True)
    report: dict[str, Any] = {
        "files": files,
        "elf": elfs,
        "unreadable": errors,
        "by_arch": dict(sorted(by_arch.items(), key=lambda kv: -kv[1])),
        "by_handler": dict(sorted(by_handler.items(), key=lambda kv: -kv[1])),
        "unrunnable": stranded_n,
        "unrunnable_examples": stranded,
        "notes": [note] if note else [],
    }
    if as_json:
        emit_json(report)
        return
    click.echo(f"{files} files, {elfs} ELF, {errors} unreadable")
    click.echo("by architecture: " + ", ".join(f"{k} {v}" for k, v in report["by_arch"].items()))
    click.echo("by handler:      " + ", ".join(f"{k} {v}" for k, v in report["by_handler"].items()))
    if stranded_n:
        click.secho(f"{stranded_n} ELF files nothing here can run, e.g.:", fg="yellow")
        for p in stranded:
            click.echo(f"  {p}")
    if note:
        click.echo(f"note: {note}")


def _walk(roots: Iterable[str]) -> Iterable[str]:
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


@main.command(context_settings=CONTEXT)
@click.argument("target")
@click.option(
    "--interpreter", metavar="PATH", help="Interpreter path [default: /usr/bin/qemu-TARGET-static]."
)
@click.option("--flags", default="F", show_default=True, help="Flags: any of P O C F.")
@click.option("--name", help="Entry name [default: qemu-TARGET].")
@click.option(
    "--binfmt-d",
    "binfmt_d",
    is_flag=True,
    help="Print a commented binfmt.d file instead of the bare string.",
)
def gen(target: str, interpreter: str | None, flags: str, name: str | None, binfmt_d: bool) -> None:
    """Print the register string for a QEMU TARGET (any alias: arm64, linux/arm/v7, ppc64el...)."""
    from binfmtctl import table
    from binfmtctl.entry import normalize_flags, render_binfmt_d, render_register_str

    t = table.get_target(target)
    try:
        flags = normalize_flags(flags)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    entry = t.entry(interpreter or f"/usr/bin/{t.interpreter}-static", flags, name)
    if binfmt_d:
        click.echo(
            render_binfmt_d(
                [entry], header=f"{t.name}: {t.description}\ngenerated by binfmtctl gen"
            ).decode(),
            nl=False,
        )
    else:
        click.echo(render_register_str(entry))


# -- sandbox --------------------------------------------------------------------------------------
@main.command(context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.option(
    "--entry",
    "entries",
    multiple=True,
    metavar="ENTRY",
    help="Register this string in the sandbox (repeatable).",
)
@click.option(
    "-f", "--file", "file", metavar="FILE", help="Register the strings in FILE (binfmt.d syntax)."
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sandbox(entries: tuple[str, ...], file: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND with a private binfmt_misc holding just the given entries.

    Scope: COMMAND runs in a new user and mount namespace (Linux >= 6.7), as root
    of that namespace only. Its binfmt_misc starts empty; the entries you give are
    registered there and are used by COMMAND and everything it starts. The host's
    table is neither read nor changed, and everything vanishes when COMMAND exits.
    Its exit status is COMMAND's. Needs no root where unprivileged user namespaces
    are allowed.

    \b
    Example:
      binfmtctl sandbox -f /usr/lib/binfmt.d/qemu-aarch64.conf -- ./hello-arm64
    """
    from binfmtctl import sandbox as sb

    if not command:
        raise UsageError(
            "give the command to run after --", fix="binfmtctl sandbox --entry ENTRY -- COMMAND"
        )
    raws = read_inputs(entries, file)
    from binfmtctl.rules import KernelProfile

    _parse_batch(raws, KernelProfile.current_default())  # refuse bad entries before entering
    inner = [*sb.self_command(), "_sandbox-init"]
    for r in raws:
        inner += ["--entry-hex", r.hex()]
    inner += ["--", *command]
    sb.exec_in_sandbox(inner)


@main.command(
    "_sandbox-init", hidden=True, context_settings={**CONTEXT, "ignore_unknown_options": True}
)
@click.option("--entry-hex", "entries", multiple=True)
@click.option("--target", "targets", multiple=True)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sandbox_init(
    entries: tuple[str, ...], targets: tuple[str, ...], command: tuple[str, ...]
) -> None:
    """Inside the new namespace: mount, register, exec COMMAND."""
    import tempfile

    from binfmtctl.binfmt_misc import DEFAULT_MOUNT, BinfmtMisc
    from binfmtctl.plan import plan_register

    state = tempfile.mkdtemp(prefix="binfmtctl-state-")
    bm = BinfmtMisc(DEFAULT_MOUNT, state_dir=state)
    bm.ensure_mounted()
    desired = _parse_batch([bytes.fromhex(h) for h in entries], bm.profile)
    bm.apply(plan_register(desired, bm.entries()))
    env = dict(os.environ)
    env["BINFMTCTL_STATE_DIR"] = state
    env["BINFMTCTL_SANDBOX"] = "1"
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as e:
        raise CommandNotFound(f"cannot run {command[0]!r}: {e.strerror}") from None


# -- install / uninstall / test (QEMU targets) ----------------------------------------------------
def _install_profile(kernel: str | None, dry_run: bool) -> Any:
    from binfmtctl.rules import KernelProfile

    if kernel is None:
        return KernelProfile.current_default()
    if not dry_run:
        raise UsageError(
            "--kernel only simulates a kernel for --dry-run; a real install uses the running kernel",
            fix="add --dry-run, or drop --kernel",
        )
    try:
        return KernelProfile.parse(kernel)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _print_install(
    plans: Sequence[Any], skipped: Sequence[Any], dry_run: bool, profile: Any, host: str
) -> None:
    from binfmtctl import install as inst

    click.echo(
        f"Linux {profile.label}, host {host}"
        + (" (dry run: nothing is written)" if dry_run else "")
    )
    for s in skipped:
        if s.refused:
            click.secho(f"REFUSED  {s.name}: {s.reason}", fg="red")
            click.echo(f"  fix: {s.fix}")
        else:
            click.echo(f"skipped  {s.name}: {s.reason}")
    verb = {"add": "register", "replace": "replace", "keep": "unchanged", "conflict": "CONFLICT"}
    for p in plans:
        if p.entry is not None and p.action is not None:
            word = verb.get(p.action, p.action)
            if dry_run and p.action in ("add", "replace"):
                word = "would " + word
            click.echo(
                f"{word:<16} {p.entry.name:<20} {p.entry.flags or '-':<4} {p.entry.interpreter}"
            )
            if dry_run and p.action in ("add", "replace", "keep"):
                from binfmtctl.entry import render_register_str

                click.echo(f"  {render_register_str(p.entry)}")
        if p.error is not None:
            click.secho(f"FAILED   {p.target.name}: {p.error}", fg="red")
            if p.fix:
                click.echo(f"  fix: {p.fix}")
    for note, names in inst.group_notes(p for p in plans if p.ok):
        click.secho(
            f"{note.level} ({', '.join(names)}): {note.text}",
            fg="yellow" if note.level == "warning" else None,
        )


@main.command(context_settings=CONTEXT)
@click.argument("targets", nargs=-1)
@click.option(
    "--flags",
    "flags",
    metavar="FLAGS",
    help="Use exactly these flags (letters of POCF) instead of the per-target defaults; checked against the kernel.",
)
@click.option(
    "--credentials",
    is_flag=True,
    help="Add C (implies O): setuid foreign binaries get their privileges (sudo in a foreign chroot). A QEMU bug then becomes a privilege escalation.",
)
@click.option(
    "--qemu-path",
    metavar="DIR",
    help="Look for qemu-<target><suffix> only in DIR (as qemu-binfmt-conf.sh --qemu-path).",
)
@click.option(
    "--qemu-suffix",
    metavar="S",
    help="Interpreter name suffix to look for (default: '-static', then none).",
)
@click.option(
    "--kernel",
    metavar="X.Y",
    help="With --dry-run: plan as Linux X.Y would (4.4: no F flag).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace a same-named entry that differs even if binfmtctl did not register it.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the exact register strings and change nothing (no root, no mount needed).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Allow targets of the host's own family, and C with an interpreter non-root can write.",
)
@click.option("--no-test", is_flag=True, help="Do not run the probes after registering.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and results as JSON.")
@pass_ctx
def install(
    obj: Ctx,
    targets: tuple[str, ...],
    flags: str | None,
    credentials: bool,
    qemu_path: str | None,
    qemu_suffix: str | None,
    kernel: str | None,
    replace: bool,
    dry_run: bool,
    force: bool,
    no_test: bool,
    as_json: bool,
) -> None:
    """Register QEMU user-mode emulation for TARGETs (or all), then prove each works.

    TARGET is a QEMU name or an alias: aarch64 arm64 linux/arm64 arm armhf linux/arm/v7
    riscv64 ppc64le ppc64el s390x mips64el mips64le ... `all` is every target whose
    interpreter is installed, minus the host's own family (QEMU's rule: an x86_64 host
    skips i386, i486 and x86_64). Naming a host-family target is refused without --force:
    the entry would hijack the host's native binaries. Entries are named qemu-TARGET and
    use QEMU's magic/mask.

    Interpreters are looked up in --qemu-path DIR (only there when given), else in
    /usr/libexec/qemu-binfmt/TARGET-binfmt-P (Debian/Ubuntu), /usr/bin/qemu-TARGET-static
    (Debian, Fedora, Arch), /usr/bin/qemu-TARGET, /usr/local/bin. A missing one fails that
    target and names the package to install; the other targets are still installed.

    \b
    Flags (chosen per target; --flags sets them exactly):
      F  fix-binary, default on Linux >= 4.8. The kernel opens the interpreter once,
         at registration, so emulation works inside containers and chroots that do
         not contain QEMU. The open file is pinned: an upgraded QEMU is used only
         after re-registering. Without F the interpreter path is opened at every
         exec and must exist inside the container. F does not help a dynamically
         linked QEMU: its loader and libraries are still needed there (warned).
      P  preserve-argv0: programs see their real argv[0]. Set only where the
         interpreter expects it: Debian's TARGET-binfmt-P names require it (QEMU
         refuses to run without); other QEMUs learn of P from AT_FLAGS (Linux
         >= 5.12), and on older kernels P shifts argv.
      C  credentials (--credentials, implies O): setuid/setgid foreign binaries
         run with their owner's privileges (sudo in a foreign chroot). QEMU is
         not a security boundary: a QEMU bug becomes a root exploit. Off by
         default; refused when a non-root user can write the interpreter.
      O  open-binary (--flags ...O): the kernel hands QEMU an open fd of the
         binary, so execute-only binaries run. Off by default.

    Idempotent: an identical entry is left alone, and a second run says there is
    nothing to do. A different entry of the same name is replaced only when
    binfmtctl registered it or with --replace. Everything is validated first; the
    writes are one transaction (rolled back on failure). Afterwards a tiny probe
    program per target is run through the kernel (see `binfmtctl test`) and a
    pass/fail matrix printed. Exit 1 if any requested target is not working.

    \b
    Examples:
      binfmtctl install arm64 riscv64
      binfmtctl install all --dry-run
      binfmtctl install --dry-run --kernel 4.4 aarch64
      binfmtctl install --qemu-path /opt/qemu/bin --qemu-suffix '' s390x
    """
    from binfmtctl import install as inst
    from binfmtctl import interpreters
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.plan import plan_register

    if not targets:
        raise UsageError(
            "name the targets to install, or `all`", fix="binfmtctl install arm64 riscv64"
        )
    profile = _install_profile(kernel, dry_run)
    uname_m = os.uname().machine
    if flags is not None:
        inst.check_flags(flags, profile)

    found: dict[str, Any] = {}

    def find(t: Any) -> Any:
        if t.name not in found:
            found[t.name] = interpreters.find_interpreter(
                t, qemu_path=qemu_path, qemu_suffix=qemu_suffix, uname_m=uname_m
            )
        return found[t.name]

    chosen, skipped = inst.resolve_targets(
        list(targets), uname_m, force=force, available=lambda t: find(t).found
    )
    refused = [s for s in skipped if s.refused]
    plans = inst.plan_targets(
        chosen,
        {t.name: find(t) for t in chosen},
        profile,
        flags=flags,
        credentials=credentials,
        exec_check=open_exec_errno,
    )
    if refused or not chosen:
        if as_json:
            emit_json(
                {
                    "dry_run": dry_run,
                    "kernel": profile.label,
                    "ok": False,
                    "changes": 0,
                    "targets": [p.to_json() for p in plans],
                    "skipped": [s.to_json() for s in skipped],
                    "test": None,
                }
            )
            sys.exit(ExitStatus.PROBLEMS)
        _print_install([], refused or skipped, dry_run, profile, uname_m)
        if refused:
            fail(
                f"refused {', '.join(s.name for s in refused)} for the host's safety; nothing was written",
                fix=refused[0].fix,
            )
        fail(
            "no target to install"
            + (f" (searched only {qemu_path})" if qemu_path is not None else ""),
            fix=interpreters.package_hint("aarch64", interpreters.host_distro())[1],
        )
    entries = inst.build_entries(plans)
    _safety(entries, force)
    bm = obj.bm(profile=profile)
    if not dry_run and entries:
        bm.ensure_mounted()
    done: list[Any] = []
    with bm.locked() if not dry_run else contextlib.nullcontext():  # plan and apply as one
        mounted = bm.mount_state().state == "mounted"
        live = bm.entries() if mounted else []
        owned = bm.owned() if mounted else {}
        actions = plan_register(entries, live, replace=replace, owned=owned)
        inst.attach_actions(plans, actions)
        todo = [a for a in actions if a.kind in ("add", "replace")]
        if not dry_run and todo:
            done = bm.apply(todo)
    results: list[Any] = []
    working = [p.target.name for p in plans if p.ok]
    if not dry_run and not no_test and working:
        results = inst.run_probes(working, bm.entries(), bm.enabled())
    failed = [p.target.name for p in plans if not p.ok]
    failed += [r.target for r in results if not r.ok and r.target not in failed]
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "kernel": profile.label,
                "ok": not failed,
                "changes": len(done),
                "targets": [p.to_json() for p in plans],
                "skipped": [s.to_json() for s in skipped],
                "test": None if dry_run or no_test else {"targets": [r.to_json() for r in results]},
            }
        )
        if failed:
            sys.exit(ExitStatus.PROBLEMS)
        return
    _print_install(plans, skipped, dry_run, profile, uname_m)
    if not dry_run:
        if done:
            n = len(done)
            click.echo(f"done: {n} entr{'y' if n == 1 else 'ies'} registered or replaced")
        elif working:
            click.echo("nothing to do: every requested target is already installed as requested")
        if results:
            click.echo("test:")
            for line in inst.probe_matrix(results):
                click.echo(line)
    if failed:
        fail(
            f"{len(failed)} of {len(plans)} target{'s' * (len(plans) != 1)} not working: {', '.join(failed)}",
            fix="see the FAILED lines above",
        )


@main.command(context_settings=CONTEXT)
@click.argument("targets", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@pass_ctx
def uninstall(obj: Ctx, targets: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Remove QEMU entries: `all` = every qemu entry binfmtctl registered.

    A TARGET (or alias) removes qemu-TARGET; an entry name removes that entry even if
    another tool registered it, since you named it. Nothing else is touched: `all`
    leaves WSLInterop, python, jar, Rosetta and QEMU entries binfmtctl did not register
    (they are listed), and the table is never flushed through `status`.
    """
    from binfmtctl import install as inst
    from binfmtctl.plan import plan_remove

    if not targets:
        raise UsageError(
            "name the targets or entries to uninstall, or `all` (binfmtctl's own qemu entries)",
            fix="binfmtctl uninstall all",
        )
    bm = obj.bm()
    if not dry_run:
        bm.ensure_mounted()
    with bm.locked() if not dry_run else contextlib.nullcontext():
        live = bm.entries() if bm.mount_state().state == "mounted" else []
        names, notes = inst.uninstall_selection(list(targets), live, bm.owned())
        actions = plan_remove(names, live)
        if not dry_run and actions:
            bm.apply(actions)
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "removed": [a.entry.name for a in actions],
                "notes": [n.to_json() for n in notes],
            }
        )
        return
    for a in actions:
        click.echo(f"{'would remove' if dry_run else 'removed'} {a.entry.name}")
    for n in notes:
        click.echo(f"{n.level}: {n.text}")
    if not actions:
        click.echo("nothing to remove")


@main.command("test", context_settings=CONTEXT)
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {targets: [...]}")
@pass_ctx
def test_targets(obj: Ctx, targets: tuple[str, ...], as_json: bool) -> None:
    """Prove emulation works: run a tiny foreign program per TARGET through the kernel.

    Each probe is a static ELF for the target, generated by binfmtctl, that prints a
    marker. It is executed like any program, so the kernel picks the handler: a pass
    means binaries of that target really run here. Default TARGETs: every enabled
    live qemu entry. Shows the handling entry per target; exit 1 if any fails.
    """
    from binfmtctl import install as inst
    from binfmtctl import table

    bm = _open_for_read(obj)
    entries = bm.entries()
    names = [table.get_target(t).name for t in targets] or inst.live_qemu_targets(entries)
    if not names:
        if as_json:
            emit_json({"targets": []})
            sys.exit(ExitStatus.PROBLEMS)
        fail(
            "no enabled QEMU entry to test",
            fix="binfmtctl install TARGET...  (or name targets: binfmtctl test aarch64)",
        )
    names = list(dict.fromkeys(names))
    results = inst.run_probes(names, entries, bm.enabled())
    if as_json:
        emit_json({"targets": [r.to_json() for r in results]})
    else:
        for line in inst.probe_matrix(results):
            click.echo(line)
    bad = [r.target for r in results if not r.ok]
    if bad:
        if as_json:
            sys.exit(ExitStatus.PROBLEMS)
        fail(f"{len(bad)} of {len(results)} targets failed: {', '.join(bad)}")


# -- [persist] commands: apply, export, import, persist (issue 6) go above this line ------------


# -- [doctor] command (issue 7) goes above this line ---------------------------------------------


# -- [run] command (issue 9) goes above this line ------------------------------------------------


def _run_main(argv: Iterable[str] | None = None) -> None:
    try:
        main.main(
            args=list(argv) if argv is not None else None,
            prog_name="binfmtctl",
            standalone_mode=True,
        )
    except BrokenPipeError:
        sys.exit(ExitStatus.PROBLEMS)


def entry_point() -> None:
    """Console script: never a traceback for the user (BINFMTCTL_TRACEBACK=1 shows it)."""
    try:
        _run_main()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if os.environ.get("BINFMTCTL_TRACEBACK"):
            raise
        click.echo(
            f"Error: internal error: {type(e).__name__}: {e} (set BINFMTCTL_TRACEBACK=1 for details; please report it)",
            err=True,
        )
        sys.exit(ExitStatus.PROBLEMS)
