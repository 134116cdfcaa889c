"""QEMU emulators: `install`, `uninstall`, `test`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from binfmtctl.cli.common import (
    CONTEXT,
    FORCE_IN_USE,
    Ctx,
    _safety,
    force_option,
    pass_ctx,
    refuse_in_use,
    scope_note,
)
from binfmtctl.cli.completion import complete_targets, complete_uninstall


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
@force_option(
    "targets of the host's own family", "C with an interpreter path a non-root user controls"
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
    from binfmtctl import emulation
    from binfmtctl.cli.render.emulate import emit

    profile = emulation.install_profile(kernel, dry_run)
    opts = emulation.InstallOptions(
        flags=flags,
        credentials=credentials,
        qemu_path=qemu_path,
        qemu_suffix=qemu_suffix,
        replace=replace,
        dry_run=dry_run,
        force=force,
        probe=not no_test,
        persist=persist_,
        config=config,
    )
    bm = obj.bm(profile=profile)
    report = emulation.install(bm, targets, profile, opts, safety=lambda e: _safety(e, force))
    if report.changes:
        scope_note()  # on stderr, in JSON mode too
    emit(report, as_json=as_json)


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
@force_option(FORCE_IN_USE)
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
