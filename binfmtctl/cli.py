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


def scope_note() -> None:
    """Say it plainly when the table written is private to a user namespace."""
    from binfmtctl.sandbox import in_initial_user_namespace

    if not in_initial_user_namespace():
        click.echo(
            "note: this binfmt_misc belongs to a user namespace (a container or a binfmtctl "
            "sandbox): only processes in it see these entries, not the host or other containers",
            err=True,
        )


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
    if bm.apply(actions):
        scope_note()
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
@click.option("--rootless", "rootless_run", is_flag=True)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sandbox_init(
    entries: tuple[str, ...],
    targets: tuple[str, ...],
    rootless_run: bool,
    command: tuple[str, ...],
) -> None:
    """Inside the new namespace: mount, register, exec COMMAND.

    --rootless (for `run`): binfmtctl's own failures exit 125, COMMAND not found 127,
    not executable 126, so COMMAND's own statuses stay unambiguous.
    """
    import tempfile

    from binfmtctl.binfmt_misc import DEFAULT_MOUNT, BinfmtMisc
    from binfmtctl.plan import plan_register
    from binfmtctl.sandbox import mount_private

    with _RunFailures() if rootless_run else contextlib.nullcontext():
        mount_private(DEFAULT_MOUNT)  # never the inherited copy of the host's mount
        state = tempfile.mkdtemp(prefix="binfmtctl-state-")
        try:
            bm = BinfmtMisc(DEFAULT_MOUNT, state_dir=state)
            desired = _parse_batch([bytes.fromhex(h) for h in entries], bm.profile)
            bm.apply(plan_register(desired, bm.entries()))
        finally:
            if rootless_run:  # leave nothing behind: the records die with the namespace
                import shutil

                shutil.rmtree(state, ignore_errors=True)
    env = dict(os.environ)
    env["BINFMTCTL_STATE_DIR"] = state
    env["BINFMTCTL_SANDBOX"] = "1"
    # the namespace shares the host's files: persistence must not reach /etc/binfmt.d
    env.setdefault("BINFMTCTL_CONFIG", os.path.join(state, "zz-binfmtctl.conf"))
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as e:
        if rootless_run:
            from binfmtctl import rootless
            from binfmtctl.install import live_qemu_targets

            registered = live_qemu_targets(desired)
            raise rootless.exec_failure(command[0], e, env.get("PATH"), registered) from None
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
@click.option(
    "--persist",
    "persist_",
    is_flag=True,
    help="Also add the installed entries to binfmtctl's config: registered again at boot (binfmtctl persist enable).",
)
@click.option(
    "--config",
    envvar="BINFMTCTL_CONFIG",
    metavar="FILE",
    help="With --persist: the config [env BINFMTCTL_CONFIG; default /etc/binfmt.d/zz-binfmtctl.conf].",
)
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
    persist_: bool,
    config: str | None,
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
            scope_note()
    results: list[Any] = []
    working = [p.target.name for p in plans if p.ok]
    if not dry_run and not no_test and working:
        results = inst.run_probes(working, bm.entries(), bm.enabled())
    failed = [p.target.name for p in plans if not p.ok]
    failed += [r.target for r in results if not r.ok and r.target not in failed]
    persisted = _persist_install(config, plans) if persist_ and not dry_run else None
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "kernel": profile.label,
                "ok": not failed,
                "changes": len(done),
                "persisted": persisted.to_json() if persisted else None,
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
        for line in persisted.describe() if persisted else []:
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
@click.option(
    "--config",
    envvar="BINFMTCTL_CONFIG",
    metavar="FILE",
    help="binfmtctl's config, from which the removed entries are dropped too [env BINFMTCTL_CONFIG].",
)
@pass_ctx
def uninstall(
    obj: Ctx, targets: tuple[str, ...], dry_run: bool, as_json: bool, config: str | None
) -> None:
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
    dropped = _persist_forget(config, targets, actions) if not dry_run else []
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "removed": [a.entry.name for a in actions],
                "config_removed": dropped,
                "notes": [n.to_json() for n in notes],
            }
        )
        return
    for a in actions:
        click.echo(f"{'would remove' if dry_run else 'removed'} {a.entry.name}")
    for name in dropped:
        click.echo(f"dropped {name} from binfmtctl's config: it is no longer registered at boot")
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


# -- persistence: apply / export / import / persist (issue 6) -------------------------------------
def _config_option(f: Any) -> Any:
    return click.option(
        "--config",
        "config",
        envvar="BINFMTCTL_CONFIG",
        metavar="FILE",
        help="binfmtctl's config [env BINFMTCTL_CONFIG; default /etc/binfmt.d/zz-binfmtctl.conf].",
    )(f)


def _root_option(f: Any) -> Any:
    return click.option(
        "--root",
        "root",
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Work on the offline system image at DIR (as systemctl --root): no systemctl, no live table.",
    )(f)


def _persist_install(config: str | None, plans: Sequence[Any]) -> Any:
    """install --persist: add the entries of the installed targets to the config."""
    from binfmtctl import persist

    entries = [p.entry for p in plans if p.ok and p.entry is not None]
    return persist.add_entries(persist.config_path(override=config), entries) if entries else None


def _persist_forget(
    config: str | None, targets: Sequence[str], actions: Sequence[Any]
) -> list[str]:
    """uninstall: drop what it removed (and what it names) from the config; names dropped."""
    from binfmtctl import persist

    path = persist.config_path(override=config)
    if not path.exists():
        return []
    entries, _ = persist.parse_config(persist.read_config_text(path), str(path))
    names = persist.uninstall_config_names(targets, [a.entry.name for a in actions], entries)
    return persist.remove_names(path, names).removed if names else []


def _print_config_problems(problems: Sequence[Any], limit: int = 20) -> None:
    for p in problems[:limit]:
        click.secho(f"INVALID    {p.where}: {p.message}", fg="red")
        click.echo(f"  fix: {p.fix}")
    if len(problems) > limit:
        click.echo(f"... and {len(problems) - limit} more (--json lists them all)")


def _print_apply(report: Any, table_path: str) -> None:
    verb = {"add": "register", "replace": "replace", "keep": "unchanged"}
    n = len(report.items)
    click.echo(
        f"config {report.config}: {n} entr{'y' if n == 1 else 'ies'}; live table {table_path}"
        + (" (plan: nothing is changed)" if report.plan_only else "")
    )
    for i in report.items:
        if not i.ok:
            click.secho(f"FAILED     {i.name}: {i.message}", fg="red")
            click.echo(f"  fix: {i.fix}")
        else:
            word = ("would " if report.plan_only and i.action != "keep" else "") + verb[i.action]
            click.echo(
                f"{word:<16} {i.name:<22} {i.entry.interpreter}"
                + (f"  ({i.message})" if i.message else "")
            )
        for w in i.warnings:
            click.secho(f"  warning: {w}", fg="yellow")
    _print_config_problems(report.problems)
    for note in report.notes:
        click.echo(f"note: {note}")
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
        click.echo(
            f"{'plan' if report.plan_only else 'done'}: {counts}; entries not in the config {what} left alone"
        )


def _apply_and_report(
    obj: Ctx, config: str | None, *, plan_only: bool, force: bool, as_json: bool
) -> None:
    from binfmtctl import persist

    bm = obj.bm()
    report = persist.apply_config(
        bm, persist.config_path(override=config), plan_only=plan_only, force=force
    )
    if as_json:
        emit_json(report.to_json())
        if not report.ok:
            sys.exit(ExitStatus.PROBLEMS)
        return
    _print_apply(report, bm.path)
    if not report.ok:
        bad = [i.name for i in report.failed] + [p.where for p in report.problems]
        fail(
            f"{len(bad)} config entr{'y' if len(bad) == 1 else 'ies'} could not be applied: {', '.join(bad)}"
            + (
                ""
                if plan_only or len(report.items) == len(report.failed)
                else "; the others were applied"
            ),
            fix="see the FAILED / INVALID lines above",
        )


@main.command(context_settings=CONTEXT)
@click.option("--plan", "plan_only", is_flag=True, help="Print the actions and change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Apply even entries that match the host's own binaries, or C/O with an interpreter non-root can write.",
)
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def apply(obj: Ctx, plan_only: bool, force: bool, config: str | None, as_json: bool) -> None:
    """Make the live table match binfmtctl's config (what binfmtctl.service runs at boot).

    Registers the config's entries that are missing, replaces live entries of the
    config's names that differ, and leaves every other entry alone (WSLInterop, python,
    jar, other tools' QEMU); nothing is flushed. Each entry is validated first and applied
    on its own: one that cannot be applied (its interpreter is missing, or on a file
    system not mounted yet) is reported with the fix and the rest are still applied; the
    exit status is then 1. Idempotent: a second run changes nothing. Mounts binfmt_misc
    if needed. --plan prints the actions and changes nothing.
    """
    _apply_and_report(obj, config, plan_only=plan_only, force=force, as_json=as_json)


@main.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["binfmt.d", "update-binfmts", "json"]),
    default="binfmt.d",
    show_default=True,
    help="binfmt.d lines (systemd-binfmt FILE loads them), update-binfmts format files, or JSON.",
)
@click.option("--all", "include_all", is_flag=True, help="Every live entry, not only binfmtctl's.")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Write to PATH instead of stdout (update-binfmts: a directory, one file per entry).",
)
@pass_ctx
def export(
    obj: Ctx, names: tuple[str, ...], fmt: str, include_all: bool, output: str | None
) -> None:
    """Print the live entries binfmtctl would persist, loadable elsewhere.

    Default: the entries binfmtctl registered (and still owns), oldest first so that
    loading them gives the same match order, as binfmt.d lines: `systemd-binfmt FILE`
    or `binfmtctl import FILE` loads them. NAMES picks live entries by name (whoever
    registered them); --all exports every live entry.
    """
    from pathlib import Path

    from binfmtctl import persist

    bm = _open_for_read(obj)
    live = bm.entries()
    unknown = [n for n in names if n not in {e.name for e in live}]
    if unknown:
        fail(
            f"no live entry named {', '.join(repr(n) for n in unknown)}",
            fix="binfmtctl status lists every entry",
        )
    chosen = persist.export_entries(live, names or bm.owned(), include_all and not names)
    files = persist.render_export(chosen, fmt, bm.path)
    if fmt == "update-binfmts":
        if output is None and len(files) > 1:
            raise UsageError(
                f"update-binfmts format is one file per entry ({len(files)} entries)",
                fix="binfmtctl export --format update-binfmts -o DIR",
            )
        if output is not None:
            for name, data in files.items():
                persist.atomic_write(Path(output) / name, data)
                click.echo(f"wrote {Path(output) / name}", err=True)
            return
    data = b"".join(files.values())
    if output is not None:
        persist.atomic_write(Path(output), data)
        click.echo(f"wrote {len(chosen)} entries to {output}", err=True)
        return
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    if not chosen:
        click.echo(
            "note: no entry to export"
            + ("" if include_all else " (binfmtctl owns none; --all exports every live entry)"),
            err=True,
        )


def _persist_add(
    entries: Sequence[Any], config: str | None, force: bool, as_json: bool, dry_run: bool = False
) -> Any:
    """Shared by import and persist add: safety, warnings, then the config edit."""
    from binfmtctl import persist

    unsafe = [] if force else persist.safety_problems(entries)
    if unsafe:
        for name, message, fix in unsafe:
            click.secho(f"refused: {name}: {message}", fg="red", err=True)
            click.echo(f"  fix: {fix}", err=True)
        fail(
            "refused for the host's safety; nothing was written",
            fix="fix the entries, or pass --force",
        )
    for w in persist.interpreter_warnings(entries):
        click.secho(f"warning: {w}", fg="yellow", err=True)
    path = persist.config_path(override=config)
    if dry_run:
        _, change = persist.config_with(persist.read_config_text(path), entries, str(path))
        return change
    return persist.add_entries(path, entries)


@main.command("import", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR...")
@click.option("--apply", "and_apply", is_flag=True, help="Also apply the config now.")
@click.option("--dry-run", is_flag=True, help="Print what would be added and change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Accept entries that match the host's own binaries, or C/O with an interpreter non-root can write.",
)
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def import_cmd(
    obj: Ctx,
    paths: tuple[str, ...],
    and_apply: bool,
    dry_run: bool,
    force: bool,
    config: str | None,
    as_json: bool,
) -> None:
    """Add entries from binfmt.d or update-binfmts files to binfmtctl's config.

    Reads binfmt.d files (one register string per line; `qemu-binfmt-conf.sh --systemd`
    writes one per CPU), Debian update-binfmts format files (/usr/share/binfmts;
    `qemu-binfmt-conf.sh --debian` writes these), update-binfmts database files
    (/var/lib/binfmts) and `binfmtctl export --format json`. A DIR gives its *.conf files
    if it has any, else every file. Everything is validated first: one bad line, or one
    name defined differently by two sources, and nothing is imported. An entry already
    in the config is replaced (the later import wins, as in binfmt.d). --apply then
    applies the config.

    \b
    Examples:
      binfmtctl import /usr/lib/binfmt.d/qemu-aarch64.conf --apply
      binfmtctl import /usr/share/binfmts
    """
    from binfmtctl import persist

    imported, problems, warnings = persist.read_import(list(paths))
    if problems:
        if as_json:
            emit_json({"ok": False, "problems": [p.to_json() for p in problems], "config": None})
            sys.exit(ExitStatus.PROBLEMS)
        _print_config_problems(problems)
        fail(
            f"{len(problems)} problem{'s' * (len(problems) != 1)} in the input; nothing was imported",
            fix="see the INVALID lines above",
        )
    for w in warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)
    change = _persist_add([i.entry for i in imported], config, force, as_json, dry_run)
    if as_json and not and_apply:
        emit_json({"ok": True, "dry_run": dry_run, "problems": [], "config": change.to_json()})
        return
    if not as_json:
        for line in change.describe():
            click.echo(("would: " if dry_run else "") + line)
    if and_apply and not dry_run:
        _apply_and_report(obj, config, plan_only=False, force=force, as_json=as_json)


@main.group("persist", context_settings=CONTEXT)
def persist_group() -> None:
    """Keep registrations across reboot: the config and the systemd unit.

    \b
    The config (default /etc/binfmt.d/zz-binfmtctl.conf, binfmt.d syntax) is what
    binfmtctl registers at boot; systemd-binfmt loads it too. binfmtctl.service runs
    `binfmtctl apply` early in boot, after systemd-binfmt, without flushing others.
      persist enable [--root DIR]    install the unit, its WantedBy= link, the config
      persist disable [--purge]      remove them (--purge: the config too)
      persist status                 what is set up, what differs from the live table
      persist add ENTRY... | -f FILE add register strings to the config
      persist save [NAME...] [--all] add live entries (default: binfmtctl's) to the config
      persist remove NAME...         drop entries from the config
    """


def _print_unit_report(report: Any) -> None:
    for s in report.steps:
        click.echo(s)
    if report.exec_start:
        click.echo("ExecStart: " + " ".join(report.exec_start))
    for n in report.notes:
        click.echo(f"note: {n}")


def _mount_for_unit(obj: Ctx) -> str | None:
    from binfmtctl.binfmt_misc import DEFAULT_MOUNT

    return obj.mount if obj.mount and obj.mount != DEFAULT_MOUNT else None


@persist_group.command("enable", context_settings=CONTEXT)
@_root_option
@_config_option
@click.option(
    "--binfmtctl",
    "program",
    metavar="PATH",
    help="The binfmtctl the unit runs, as a path on the target system [default: this one].",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@pass_ctx
def persist_enable(
    obj: Ctx, root: str | None, config: str | None, program: str | None, as_json: bool
) -> None:
    """Install binfmtctl.service (ExecStart= this binfmtctl), enable it, create the config.

    The enablement link is made as `systemctl enable` makes it, so --root DIR provisions
    an offline image (give --binfmtctl PATH if binfmtctl has another path in the image).
    On a running systemd system it also runs `systemctl daemon-reload` and `systemctl
    enable --now binfmtctl.service`; where systemd is not PID 1 that is skipped, with a
    note. Run it again after moving or reinstalling binfmtctl.
    """
    from binfmtctl import persist

    r = root or "/"
    if program is not None and not os.path.isabs(program):
        raise UsageError(
            f"--binfmtctl {program!r} is not an absolute path",
            fix="--binfmtctl /usr/local/bin/binfmtctl",
        )
    report = persist.enable(
        r,
        config=persist.config_path(r, config),
        mount=_mount_for_unit(obj),
        command=[program] if program else None,
    )
    if as_json:
        emit_json(report.to_json())
    else:
        _print_unit_report(report)


@persist_group.command("disable", context_settings=CONTEXT)
@_root_option
@_config_option
@click.option("--purge", is_flag=True, help="Also remove the config.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def persist_disable(root: str | None, config: str | None, purge: bool, as_json: bool) -> None:
    """Remove binfmtctl.service and its enablement link (the config stays unless --purge).

    Live entries stay registered (the unit has no ExecStop: nothing is flushed);
    `binfmtctl uninstall all` removes binfmtctl's. The config is a binfmt.d file, so
    systemd-binfmt keeps registering its entries at boot until it is purged.
    """
    from binfmtctl import persist

    r = root or "/"
    report = persist.disable(r, config=persist.config_path(r, config), purge=purge)
    if as_json:
        emit_json(report.to_json())
    else:
        _print_unit_report(report)


@persist_group.command("status", context_settings=CONTEXT)
@_root_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def persist_status(obj: Ctx, root: str | None, config: str | None, as_json: bool) -> None:
    """Show what is set up for boot and whether the live table matches the config.

    Exit 1 if something is out of order (each problem names its fix): the unit missing,
    not enabled, or pointing at a binfmtctl that is gone; an invalid config line; live
    entries that differ from the config (binfmtctl apply).
    """
    from binfmtctl import persist

    r = root or "/"
    result = persist.status(r, config=persist.config_path(r, config), bm=obj.bm())
    if as_json:
        emit_json(result)
    else:
        cfg, unit = result["config"], result["unit"]
        click.echo(
            f"config: {cfg['path']}"
            + (
                f" ({len(cfg['entries'])} entries{': ' if cfg['entries'] else ''}{', '.join(cfg['entries'])})"
                if cfg["exists"]
                else " (missing)"
            )
        )
        click.echo(
            f"unit:   {unit['path']}"
            + (
                f" ({'enabled' if result['enabled'] else 'not enabled'}; ExecStart: {' '.join(unit['exec_start'])})"
                if unit["exists"]
                else " (not installed)"
            )
        )
        if result["systemctl"]:
            click.echo(f"systemctl is-active: {result['systemctl']['is_active']}")
        live = result["live"]
        if live is not None:
            click.echo(
                f"live:   {len(live['in_sync'])} in sync"
                + (f", differ or missing: {', '.join(live['pending'])}" if live["pending"] else "")
            )
        for p in result["problems"]:
            click.secho(f"problem: {p['message']}", fg="red")
            click.echo(f"  fix: {p['fix']}")
        for n in result["notes"]:
            click.echo(f"note: {n}")
    if not result["ok"]:
        sys.exit(ExitStatus.PROBLEMS)


@persist_group.command("add", context_settings=CONTEXT)
@click.argument("entries", nargs=-1)
@click.option(
    "-f",
    "--file",
    "file",
    metavar="FILE|-",
    help="Read register strings from FILE (binfmt.d syntax; - for stdin).",
)
@click.option("--apply", "and_apply", is_flag=True, help="Also apply the config now.")
@click.option(
    "--force",
    is_flag=True,
    help="Accept entries that match the host's own binaries, or C/O with an interpreter non-root can write.",
)
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def persist_add(
    obj: Ctx,
    entries: tuple[str, ...],
    file: str | None,
    and_apply: bool,
    force: bool,
    config: str | None,
    as_json: bool,
) -> None:
    """Add register strings to the config (all or nothing; a same-named entry is replaced)."""
    from binfmtctl.rules import KernelProfile

    raws = read_inputs(entries, file)
    if not raws:
        raise UsageError(
            "nothing to add: give ENTRY arguments or -f FILE",
            fix="binfmtctl persist add ':name:M::magic::/path/to/interpreter:F'",
        )
    desired = _parse_batch_grammar(raws, KernelProfile.current_default())
    change = _persist_add(desired, config, force, as_json)
    if as_json and not and_apply:
        emit_json({"ok": True, "config": change.to_json()})
        return
    if not as_json:
        for line in change.describe():
            click.echo(line)
    if and_apply:
        _apply_and_report(obj, config, plan_only=False, force=force, as_json=as_json)


def _parse_batch_grammar(raws: Sequence[bytes], profile: Any) -> list[Any]:
    """Like _parse_batch, but only the kernel grammar: a missing interpreter is warned
    about later, not refused (the config is the state wanted at boot)."""
    from binfmtctl.rules import validate as do_validate

    entries, bad = [], []
    for raw in raws:
        v = do_validate(raw + b"\n", profile)
        errors = [p for p in v.problems if p.is_error]
        if errors or v.entry is None:
            bad.append((raw, errors))
        else:
            entries.append(v.entry)
    for raw, errors in bad:
        click.secho(f"INVALID  {raw.decode('utf-8', 'backslashreplace')}", fg="red", err=True)
        for p in errors:
            click.echo(f"  {p.field} [{p.errno}]: {p.message}\n  fix: {p.fix}", err=True)
    if bad:
        fail(f"{len(bad)} of {len(raws)} entries are invalid; nothing was written")
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(
            f"the batch names {', '.join(map(repr, dup))} more than once",
            fix="give each entry name once",
        )
    return entries


@persist_group.command("save", context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option("--all", "include_all", is_flag=True, help="Every live entry, not only binfmtctl's.")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def persist_save(
    obj: Ctx, names: tuple[str, ...], include_all: bool, config: str | None, as_json: bool
) -> None:
    """Add live entries to the config: NAMEs, or binfmtctl's own (--all: every live entry)."""
    from binfmtctl import persist

    bm = _open_for_read(obj)
    live = bm.entries()
    unknown = [n for n in names if n not in {e.name for e in live}]
    if unknown:
        fail(
            f"no live entry named {', '.join(repr(n) for n in unknown)}; nothing was saved",
            fix="binfmtctl status lists every entry",
        )
    chosen = persist.export_entries(live, names or bm.owned(), include_all and not names)
    if not chosen:
        fail(
            "no live entry to save: binfmtctl owns none",
            fix="name the entries (binfmtctl persist save NAME...), or --all",
        )
    change = persist.add_entries(persist.config_path(override=config), chosen)
    if as_json:
        emit_json({"ok": True, "config": change.to_json()})
    else:
        for line in change.describe():
            click.echo(line)


@persist_group.command("remove", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def persist_remove(names: tuple[str, ...], config: str | None, as_json: bool) -> None:
    """Drop entries from the config (the live table is not changed: binfmtctl remove NAME)."""
    from binfmtctl import persist

    path = persist.config_path(override=config)
    present = persist.config_names(path)
    unknown = [n for n in names if n not in present]
    if unknown:
        fail(
            f"{path} has no entry named {', '.join(repr(n) for n in unknown)}; nothing was changed",
            fix="binfmtctl persist status lists the config's entries",
        )
    change = persist.remove_names(path, names)
    if as_json:
        emit_json({"ok": True, "config": change.to_json()})
    else:
        for line in change.describe():
            click.echo(line)


# -- [persist] commands: apply, export, import, persist (issue 6) go above this line ------------


# -- doctor (issue 7) -------------------------------------------------------------------------------
_DOCTOR_HEADINGS = {"error": "ERRORS", "warning": "WARNINGS", "info": "INFO"}


def _print_findings(findings: Sequence[Any]) -> None:
    color = {"error": "red", "warning": "yellow", "info": None}
    for sev, heading in _DOCTOR_HEADINGS.items():
        group = [f for f in findings if f.severity == sev]
        if not group:
            continue
        click.secho(f"{heading} ({len(group)})", fg=color[sev], bold=True)
        for f in group:
            click.secho(f"  {f.code}" + (f"  [{f.entry}]" if f.entry else ""), fg=color[sev])
            click.echo(f"    {f.message}")
            click.echo(f"    fix: {f.fix}")


@main.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help='Print {"findings": [...]} (and "fixes").')
@click.option(
    "--probe", is_flag=True, help="Also run a tiny program per target through the kernel."
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="T",
    help="A target that must work (repeatable; aliases such as arm64 accepted).",
)
@click.option("--kernel", metavar="X.Y", help="Judge the entries as Linux X.Y would (4.4: no F).")
@click.option(
    "--fix", "do_fix", is_flag=True, help="Apply the safe fixes listed above, then check again."
)
@click.option(
    "--root",
    metavar="DIR",
    default="/",
    show_default=True,
    help="Read boot-time configuration (binfmt.d, units, binfmtctl's config) under DIR.",
)
@click.option("--proc", metavar="DIR", default="/proc", hidden=True)
@pass_ctx
def doctor(
    obj: Ctx,
    as_json: bool,
    probe: bool,
    targets: tuple[str, ...],
    kernel: str | None,
    do_fix: bool,
    root: str,
    proc: str,
) -> None:
    """Find what stops foreign binaries from running here, and say how to fix each thing.

    Checks: kernel support (binfmt_misc, F >= 4.8, P via AT_FLAGS >= 5.12, per-namespace
    tables >= 6.7); the mount (absent, untriggered automount, read-only) and global status;
    the context (root, CAP_SYS_ADMIN, container, user namespace, WSL) and who sees the
    registrations; every entry (disabled, interpreter missing / gone but pinned /
    not executable / dynamically linked / wrong architecture, no F, magic written as bare
    hex, masks that leave the ELF machine open, C/O with a writable interpreter, P that
    disagrees with the interpreter, entries that match the host's own binaries); overlapping
    entries and which one wins; persistence (entries lost at reboot, configured entries not
    live, boot-time managers undoing each other, systemd-binfmt restarts that flush); whether
    rootless emulation (binfmtctl run) works. --probe runs a tiny program per target.

    Each finding has a code, a severity, the entry, a message and the fix. Exit 0 when
    there is no error and no warning, else 1.

    \b
    --fix applies only safe fixes, then checks again: mount binfmt_misc (or trigger the
    automount), register binfmtctl's configured entries that are missing or differ, enable
    a disabled entry binfmtctl owns and configures, and replace a stale QEMU entry binfmtctl
    owns with a freshly planned one. Other tools' entries and the global status are never
    changed.

    \b
    Examples:
      binfmtctl doctor
      binfmtctl doctor --probe --target arm64 --target riscv64
      binfmtctl doctor --kernel 4.4 --json
    """
    from binfmtctl import doctor as doc

    if kernel is not None:
        from binfmtctl.rules import KernelProfile

        try:
            KernelProfile.parse(kernel)
        except ValueError as e:
            raise UsageError(str(e), fix="--kernel 4.4, --kernel 5.10, ...") from None

    def check() -> list[Any]:
        facts = doc.gather(
            obj.mount, root=root, proc=proc, kernel=kernel, targets=targets, probe=probe
        )
        return [facts, doc.run_checks(facts)]

    facts, findings = check()
    fixes: list[Any] = []
    if do_fix:
        fixes = doc.apply_fixes(findings, facts, obj.mount)
        if fixes:
            facts, findings = check()
    if as_json:
        data = doc.to_json(findings)
        if do_fix:
            data["fixes"] = [f.to_json() for f in fixes]
        emit_json(data)
    else:
        n = len(facts.entries)
        click.echo(
            f"binfmtctl doctor: Linux {facts.profile.label}, binfmt_misc at {facts.mount.path}: "
            f"{facts.mount.state}{' (read-only)' if facts.mount.read_only else ''}, "
            f"{n} entr{'y' if n == 1 else 'ies'}"
        )
        if do_fix:
            if not fixes:
                click.echo("--fix: nothing doctor can fix by itself")
            for r in fixes:
                click.secho(
                    f"{'fixed' if r.ok else 'FAILED'} ({r.action}"
                    + (f" {r.entry}" if r.entry else "")
                    + f"): {r.message}",
                    fg="green" if r.ok else "red",
                )
        _print_findings(findings)
        counts = {s: sum(1 for f in findings if f.severity == s) for s in _DOCTOR_HEADINGS}
        if doc.has_problems(findings):
            click.secho(
                f"{counts['error']} error(s), {counts['warning']} warning(s): see the fixes above",
                fg="red" if counts["error"] else "yellow",
            )
        else:
            click.secho("healthy: no errors, no warnings", fg="green")
    if doc.has_problems(findings):
        sys.exit(ExitStatus.PROBLEMS)


# -- [doctor] command (issue 7) goes above this line ---------------------------------------------


# -- run: rootless emulation (issue 9) ------------------------------------------------------------
class _RunUsageError(click.UsageError):
    """A bad `run` invocation: 125, like binfmtctl's other failures inside `run`."""

    exit_code = 125


class _RunCommand(click.Command):
    """`run` exits 125 for its own usage errors too, so COMMAND's statuses stay unambiguous."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _RunUsageError:
            raise
        except click.UsageError as e:
            raise _RunUsageError(e.message, ctx=e.ctx) from None


class _RunFailures:
    """Turn binfmtctl's own failures (any BinfmtctlError, an OSError) into exit 125;
    COMMAND-not-runnable errors (126, 127) pass through."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        from binfmtctl import rootless

        if exc is None or isinstance(
            exc, (rootless.RunRefused, rootless.CannotExecute, CommandNotFound, _RunUsageError)
        ):
            return
        if isinstance(exc, BinfmtctlError):
            raise rootless.RunRefused(exc.message) from None
        if isinstance(exc, click.UsageError):
            raise _RunUsageError(exc.message, ctx=exc.ctx) from None
        if isinstance(exc, OSError):
            raise rootless.RunRefused(
                f"cannot set up the private namespace: {exc}",
                fix="see binfmtctl run --help; binfmtctl run --dry-run says what would be done",
            ) from None


def _print_run_plan(rp: Any, avail: Any, dry_run: bool, verbose: bool) -> None:
    """The plan: on stdout for --dry-run, else on stderr (stdout belongs to COMMAND)."""
    err = not dry_run
    if dry_run:
        state = "available" if avail.available else "NOT available"
        click.echo(f"rootless emulation: {state}: {avail.reason}")
        if not avail.available:
            click.echo(f"  fix: {avail.fix}")
    if dry_run or verbose:
        if rp.entries:
            click.echo(
                "would register in a private binfmt_misc:" if dry_run else "registering:", err=err
            )
        for e in rp.entries:
            click.echo(f"  {e.name:<20} {e.flags or '-':<4} {e.interpreter}", err=err)
    for s in rp.skipped:
        dynamic = "dynamically linked" in s.reason
        if dry_run or verbose or dynamic:
            click.secho(f"skipped  {s.name}: {s.reason}", fg="yellow" if dynamic else None, err=err)
            if s.fix and (dynamic or dry_run):
                click.echo(f"  fix: {s.fix}", err=err)
    if len(rp.refusals) > 1:
        for r in rp.refusals:
            click.secho(f"REFUSED  {r.target or 'run'}: {r.reason}", fg="red", err=True)
            click.echo(f"  fix: {r.fix}", err=True)


@main.command(
    "run",
    cls=_RunCommand,
    context_settings={**CONTEXT, "allow_interspersed_args": False},
)
@click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    metavar="TARGET",
    help="Emulate TARGET (a QEMU name or alias: arm64, linux/arm/v7, riscv64...); repeatable. "
    "Default: every target whose QEMU is installed, minus the host's own family.",
)
@click.option(
    "--qemu-path",
    metavar="DIR",
    help="Look for qemu-<target><suffix> only in DIR (as `install --qemu-path`).",
)
@click.option(
    "--qemu-suffix",
    metavar="S",
    help="Interpreter name suffix to look for (default: '-static', then none).",
)
@click.option(
    "--allow-dynamic",
    is_flag=True,
    help="Accept a dynamically linked QEMU: fine for programs on this filesystem, broken in "
    "containers and chroots started from COMMAND.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say whether rootless emulation works here and what would be registered; run nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Say on stderr what is registered before COMMAND starts."
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(
    targets: tuple[str, ...],
    qemu_path: str | None,
    qemu_suffix: str | None,
    allow_dynamic: bool,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with QEMU emulation, as any user, without root and without touching the host.

    COMMAND runs in a new user and mount namespace (Linux >= 6.7) with its own binfmt_misc,
    where QEMU is registered for the TARGETs: foreign binaries run, for COMMAND and everything
    it starts (a shell, make, a container engine that does not mount its own binfmt_misc).
    You are root only inside that namespace: files you create are yours, and you gain no
    privilege on the host. Your working directory, environment, files, stdin/stdout/stderr and
    COMMAND's exit status pass through. The host's binfmt_misc table is neither read nor
    changed, and the entries vanish when COMMAND exits. Inside, BINFMTCTL_SANDBOX=1 is set.

    Entries are the ones `install` would make (qemu-TARGET, QEMU's magic/mask, F, and P for
    Debian's -binfmt-P interpreters). A named TARGET must work: a missing interpreter, or a
    dynamically linked one (unless --allow-dynamic), refuses the run. With F the kernel pins
    the interpreter file but still loads a dynamic QEMU's loader and libraries from the root
    of each program run, so it works for programs on this filesystem and fails inside
    containers and chroots. Without TARGETs, such targets are skipped (with a warning for a
    dynamic QEMU).

    Refused, with the reason and the fix: Linux older than 6.7; user namespaces forbidden
    (user.max_user_namespaces = 0, kernel.unprivileged_userns_clone = 0, AppArmor's
    kernel.apparmor_restrict_unprivileged_userns = 1, a container's seccomp profile).

    \b
    Exit status: COMMAND's own when it ran;
      125  binfmtctl refused or failed (bad usage included): nothing ran
      126  COMMAND was found but cannot be executed
      127  COMMAND was not found

    \b
    Examples:
      binfmtctl run --target arm64 -- ./hello-arm64
      binfmtctl run -t arm64 -t riscv64 -- make test
      binfmtctl run -- sh          (every installed QEMU target)
      binfmtctl run --dry-run      (does it work here? what would be registered?)
    """
    with _RunFailures():
        _run(targets, qemu_path, qemu_suffix, allow_dynamic, dry_run, as_json, verbose, command)


def _run(
    targets: tuple[str, ...],
    qemu_path: str | None,
    qemu_suffix: str | None,
    allow_dynamic: bool,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
    command: tuple[str, ...],
) -> None:
    from binfmtctl import rootless
    from binfmtctl import sandbox as sb

    if as_json and not dry_run:
        raise _RunUsageError("--json describes the plan: use it with --dry-run")
    if not command and not dry_run:
        raise _RunUsageError(
            "give the command to run after --: binfmtctl run --target arm64 -- COMMAND"
        )
    requested = list(targets) or ["all"]
    rootless.named_targets(requested)  # an unknown name is a usage error, before any work
    avail = rootless.availability(rootless.gather_facts(unprivileged=False))
    rp = rootless.prepare_run(
        requested, qemu_path=qemu_path, qemu_suffix=qemu_suffix, allow_dynamic=allow_dynamic
    )
    if as_json:
        emit_json({"availability": avail.to_json(), "command": list(command), **rp.to_json()})
        if not (avail.available and rp.ok):
            sys.exit(rootless.EXIT_REFUSED)
        return
    _print_run_plan(rp, avail, dry_run, verbose)
    if not avail.available:
        raise rootless.RunRefused(
            f"rootless emulation is not available: {avail.reason}", fix=avail.fix
        )
    if len(rp.refusals) == 1:
        r = rp.refusals[0]
        raise rootless.RunRefused(
            f"refused{' ' + r.target if r.target else ''}: {r.reason}; nothing ran", fix=r.fix
        )
    if rp.refusals:
        raise rootless.RunRefused(
            f"refused for the {len(rp.refusals)} reasons above; nothing ran",
            fix=rp.refusals[0].fix,
        )
    _safety(rp.entries, False)
    if dry_run:
        return
    if verbose:
        click.echo(
            "running COMMAND as root of a private user namespace (not root on the host)", err=True
        )
    sb.exec_in_sandbox(rootless.inner_argv(sb.self_command(), rp.entries, command), check=False)


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
