"""QEMU emulators: `install`, `uninstall`, `test`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from binfmtctl.cli.common import (
    CONTEXT,
    Ctx,
    _persist_install,
    _safety,
    emit_json,
    fail,
    pass_ctx,
    refuse_in_use,
    scope_note,
    scoped,
)
from binfmtctl.cli.completion import complete_targets, complete_uninstall
from binfmtctl.errors import ExitStatus, UsageError


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
            click.echo(f"  fix: {scoped(s.fix)}")
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
                click.echo(f"  fix: {scoped(p.fix)}")
    for note, names in inst.group_notes(p for p in plans if p.ok):
        click.secho(
            f"{note.level} ({', '.join(names)}): {note.text}",
            fg="yellow" if note.level == "warning" else None,
        )


@click.command(context_settings=CONTEXT)
@click.argument("targets", nargs=-1, shell_complete=complete_targets)
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
    help="Allow targets of the host's own family, and C with an interpreter path a non-root user controls.",
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
    riscv64 ppc64le ppc64el s390x mips64el mips64le ..., or a comma list of them as
    buildx takes (linux/arm,linux/arm64,linux/amd64), or a glob ('mips64*', 'qemu-*').
    `all` is every target whose interpreter is installed, minus the host's own family
    (QEMU's rule: an x86_64 host skips i386, i486 and x86_64). A named platform the host
    runs natively (x86_64, and i386 on x86_64) is skipped with a note, the rest installed;
    --force registers it anyway (the entry would hijack the host's native binaries).
    Entries are named qemu-TARGET and use QEMU's magic/mask.

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
        list(targets), uname_m, force=force, available=lambda t: find(t).found, skip_native=True
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
    if not chosen and not refused and skipped and all(s.native for s in skipped):
        # every platform named runs natively here (install linux/amd64 on x86_64): no-op
        if as_json:
            emit_json(
                {
                    "dry_run": dry_run,
                    "kernel": profile.label,
                    "ok": True,
                    "changes": 0,
                    "targets": [],
                    "skipped": [s.to_json() for s in skipped],
                    "test": None,
                }
            )
            return
        _print_install([], skipped, dry_run, profile, uname_m)
        click.echo("nothing to do: the host runs every named platform natively")
        return
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
        bm.mount_for_write()
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


@click.command(context_settings=CONTEXT)
@click.argument("targets", nargs=-1, shell_complete=complete_uninstall)
@click.option("--dry-run", is_flag=True, help="Print what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.option(
    "--config",
    envvar="BINFMTCTL_CONFIG",
    metavar="FILE",
    help="binfmtctl's config, from which the removed entries are dropped too [env BINFMTCTL_CONFIG].",
)
@click.option("--force", is_flag=True, help="Remove even entries processes run through now.")
@pass_ctx
def uninstall(
    obj: Ctx,
    targets: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    config: str | None,
    force: bool,
) -> None:
    """Remove QEMU entries: `all` = every qemu entry binfmtctl registered.

    A TARGET (or alias) removes qemu-TARGET; an entry name removes that entry even if
    another tool registered it, since you named it. Nothing else is touched: `all`
    leaves WSLInterop, python, jar, Rosetta and QEMU entries binfmtctl did not register
    (they are listed), and the table is never flushed through `status`. An entry
    processes run through now is refused (they are named) unless --force. Comma lists
    and globs work as in tonistiigi/binfmt (uninstall 'qemu-*'); a glob takes QEMU entries
    (and binfmtctl's own) only, never WSLInterop, python or jar.

    \b
    Examples:
      binfmtctl uninstall arm64
      binfmtctl uninstall all --dry-run
    """
    from binfmtctl import emulation
    from binfmtctl.cli.render.emulate import emit

    def in_use(entries: Sequence[Any], dry_run: bool) -> None:
        refuse_in_use(entries, force, dry_run)

    report = emulation.uninstall(obj.bm(), targets, dry_run=dry_run, config=config, in_use=in_use)
    emit(report, as_json=as_json)


@click.command("test", context_settings=CONTEXT)
@click.argument("targets", nargs=-1, shell_complete=complete_targets)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {targets: [...]}")
@pass_ctx
def test_targets(obj: Ctx, targets: tuple[str, ...], as_json: bool) -> None:
    """Prove emulation works: run a tiny foreign program per TARGET through the kernel.

    Each probe is a static ELF for the target, generated by binfmtctl, that prints a
    marker. It is executed like any program, so the kernel picks the handler: a pass
    means binaries of that target really run here. Default TARGETs: every enabled
    live qemu entry; comma lists work, and a glob ('qemu-*') names the installed targets
    it matches. Shows the handling entry per target; exit 1 if any fails. Never mounts
    binfmt_misc: on an unmounted table it says so.

    \b
    Examples:
      binfmtctl test
      binfmtctl test arm64 riscv64 --json
    """
    from binfmtctl import emulation
    from binfmtctl.cli.render.emulate import emit

    emit(emulation.probe_targets(obj.bm(), targets), as_json=as_json)
