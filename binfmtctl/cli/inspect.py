"""Who runs this binary: `which`, `scan`, `gen`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import click

from binfmtctl.cli.common import CONTEXT, Ctx, emit_json, pass_ctx, scoped
from binfmtctl.cli.completion import complete_targets
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.wording import plural


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


@click.command(context_settings=CONTEXT)
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
    be read, or if the entry that takes a FILE cannot start its interpreter (no F flag
    and the interpreter is missing or not executable: the exec would fail).

    \b
    Examples:
      binfmtctl which ./hello-arm64
      binfmtctl which --json /srv/rootfs/bin/busybox
    """
    from binfmtctl import which as use_case
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.cli.render.inspect import emit

    live = use_case.live_for_matching(obj.bm())
    emit(use_case.which(files, live, exec_check=open_exec_errno, scope_fix=scoped), as_json=as_json)


@click.command(context_settings=CONTEXT)
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--examples", default=20, show_default=True, help="How many files nothing can run to list."
)
@pass_ctx
def scan(obj: Ctx, dirs: tuple[str, ...], as_json: bool, examples: int) -> None:
    """Walk trees and count ELF files by architecture and by handler.

    Streams the tree (memory stays flat however large it is), reads only the first
    bytes of each regular file, and reports the executables that nothing can run
    (neither natively nor through an enabled entry). Files that are not executables
    (relocatable objects, core dumps, ar archives) are counted apart. Symlinks are not
    followed.

    \b
    Examples:
      binfmtctl scan /srv/arm64-rootfs
      binfmtctl scan --json --examples 5 /var/lib/containers
    """
    from binfmtctl import table
    from binfmtctl.binfmt_misc import open_exec_errno
    from binfmtctl.match import Matcher, handler_exec_failure, native, non_executable_kind

    entries, enabled, note = _live_for_matching(obj)
    matcher = Matcher(entries, status_enabled=enabled)
    by_arch: dict[str, int] = {}
    by_handler: dict[str, int] = {}
    not_exec: dict[str, int] = {}
    broken: dict[str, dict[str, str] | None] = {}  # handler -> why its exec fails
    stranded: list[str] = []
    stranded_n = files = elfs = errors = 0
    arch_cache: dict[bytes, tuple[str, bool]] = {}
    progress = _progress(as_json)
    for path in _walk(dirs):
        files += 1
        progress.update(files, elfs)
        try:  # raw fds: no buffered file object per file on this hot path
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                header = os.read(fd, 256)
            finally:
                os.close(fd)
        except OSError:
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
            broken[h.name] = handler_exec_failure(h, open_exec_errno(h.interpreter))
        if (h is None and not is_native) or (h is not None and broken[h.name] is not None):
            stranded_n += 1
            if len(stranded) < examples:
                stranded.append(path)
    progress.close(files, elfs)
    report: dict[str, Any] = {
        "files": files,
        "elf": elfs,
        "unreadable": errors,
        "by_arch": dict(sorted(by_arch.items(), key=lambda kv: -kv[1])),
        "by_handler": dict(sorted(by_handler.items(), key=lambda kv: -kv[1])),
        "not_executable": {k: not_exec[k] for k in NOT_EXEC_WORDS if k in not_exec},
        "unrunnable": stranded_n,
        "unrunnable_examples": stranded,
        "notes": ([note] if note else [])
        + [
            f"{name} takes {plural(by_handler[name], 'file')} here, but {why['message']}"
            for name, why in broken.items()
            if why is not None
        ],
    }
    if as_json:
        emit_json(report)
        return
    click.echo(f"{plural(files, 'file')}, {elfs} ELF, {errors} unreadable")
    click.echo("by architecture: " + ", ".join(f"{k} {v}" for k, v in report["by_arch"].items()))
    click.echo("by handler:      " + ", ".join(f"{k} {v}" for k, v in report["by_handler"].items()))
    if not_exec:
        click.echo(
            "not executables: "
            + ", ".join(
                f"{NOT_EXEC_WORDS.get(k, k)} {v}" for k, v in report["not_executable"].items()
            )
            + " (not counted above: nothing runs them)"
        )
    if stranded_n:
        click.secho(f"{plural(stranded_n, 'ELF file')} nothing here can run, e.g.:", fg="yellow")
        for p in stranded:
            click.echo(f"  {p}")
    for n in report["notes"]:
        click.echo(f"note: {n}")


def _progress(as_json: bool) -> Any:
    """The progress line: on a terminal's stderr only, never with --json."""
    from binfmtctl.progress import Progress

    return Progress(sys.stderr, sys.stderr.isatty() and not as_json)


NOT_EXEC_WORDS = {
    "ET_REL": "relocatable objects (ET_REL)",
    "ET_CORE": "core dumps (ET_CORE)",
    "archive": "ar archives",
}


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


@click.command(context_settings=CONTEXT)
@click.argument("target", shell_complete=complete_targets)
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
@click.option(
    "--json", "as_json", is_flag=True, help="Print the target, the entry and its register string."
)
def gen(
    target: str,
    interpreter: str | None,
    flags: str,
    name: str | None,
    binfmt_d: bool,
    as_json: bool,
) -> None:
    """Print the register string for a QEMU TARGET (any alias: arm64, linux/arm/v7, ppc64el...).

    \b
    Examples:
      binfmtctl gen arm64
      binfmtctl gen linux/riscv64 --binfmt-d > /etc/binfmt.d/qemu-riscv64.conf
      binfmtctl gen aarch64 --json
    """
    from binfmtctl import table
    from binfmtctl.cli.render.inspect import emit

    if as_json and binfmt_d:
        raise UsageError("--json and --binfmt-d are two output formats: pick one")
    gen = table.generate(target, interpreter=interpreter, flags=flags, name=name, binfmt_d=binfmt_d)
    emit(gen, as_json=as_json)
