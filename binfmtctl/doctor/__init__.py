"""``binfmtctl doctor``: the host's binfmt_misc state turned into findings.

The package, one job per module: ``facts`` (the records), ``gather`` / ``gather_boot`` /
``image`` (the edge: reading the host, and the system at ``--root`` inside it),
``checks_host`` / ``checks_entries`` / ``checks_persistence`` (pure checks), ``checks``
(their order), ``fix`` (``--fix``), ``run`` (the use case, returning a report). A new
check is a pure function in the ``checks_*`` module of its concern, listed in
``checks.CHECKS`` (or ``checks_entries.ENTRY_CHECKS`` for a per-entry one, which ``status``
runs too), its code in ``facts.CODES`` and in the table below; a new fact is a field of a
``facts`` record, read in ``gather`` (the host) or ``gather_boot`` (the system at --root).
The names below are imported from their module on first use (``status`` runs only the
per-entry checks, through ``gather_entry``, and pays for nothing else); ``doctor.gather`` is
the module, its function ``doctor.gather.gather``.

One edge function, :func:`gather`, reads everything once into a :class:`HostFacts`
snapshot (kernel, mount, the live table, every interpreter, the process's context,
persistence files, rootless availability, optional probe runs). Every check is a pure
function over that snapshot returning :class:`Finding` records
``(code, severity, entry, message, fix)``; :func:`run_checks` runs them all and sorts
the findings most severe first. :func:`apply_fixes` (``doctor --fix``) is the only
part that writes, and only the safe fixes named below.

Finding codes (stable; ``entry`` names the binfmt_misc entry concerned, or is null):

========================================  ==========================================================
code                                      meaning
========================================  ==========================================================
``kernel``                                info: kernel version and what it supports (F >= 4.8, P via AT_FLAGS >= 5.12, per-namespace instances >= 6.7)
``kernel-no-binfmt``                      error: binfmt_misc is not in /proc/filesystems (module not loaded or not built)
``kernel-flag-unsupported``               error: an entry uses a flag the judged kernel does not know (F before 4.8): EINVAL there
``kernel-rejects-entry``                  error: the judged kernel would refuse an entry for another reason (e.g. magic past 128 bytes before 5.1)
``mount-missing``                         error: the binfmt_misc directory does not exist (/proc not mounted, or hidden)
``not-mounted``                           error: binfmt_misc is not mounted: nothing is registered, nothing can be
``automount-untriggered``                 warning: a systemd automount that nobody triggered yet (a private mount in a container can then lose its entries)
``read-only``                             warning: the mount (or /proc/sys) is read-only: entries can be read and used but not changed here
``status-disabled``                       error: the global status is disabled: no entry is used
``status-unreadable``                     warning: the global status file cannot be read
``register-write-only``                   info: register is write-only; `cat register` gives 'Invalid argument' on every healthy host
``context``                               info: who runs doctor (root, CAP_SYS_ADMIN, container, user namespace, WSL, VM) and who sees the registrations
``entry-disabled``                        warning: an entry is registered but disabled
``interpreter-missing``                   error: no F and the interpreter does not exist: every matching exec fails
``interpreter-gone-pinned``               warning: F pinned an interpreter that is gone from the host: works until reboot, fails to register next boot
``interpreter-not-executable``            error (warning with F): the interpreter is not an executable regular file (or on a noexec mount)
``interpreter-dynamic``                   warning: an emulator interpreter is dynamically linked: fails in containers and chroots even with F
``interpreter-wrong-arch``                error: the interpreter is built for an architecture this host does not run
``missing-f-flag``                        warning: an emulator entry without F: the interpreter path is looked up inside every container/chroot
``magic-bare-hex``                        error: magic (or mask) written as bare hex digits without \\x: registers, matches nothing
``mask-elf-coverage``                     warning: an ELF magic/mask that leaves class, byte order or machine open
``interpreter-untrusted``                 error with C/O, else warning: a non-root user controls the interpreter path (a component, a symlink, or a missing file they can create)
``preserve-argv0-mismatch``               error/warning: P flag and interpreter disagree (Debian -binfmt-P without P; P on < 5.12 with a QEMU that cannot know)
``host-hijack``                           error: an entry (enabled or not) matches what the host runs natively (its ELF classes, i386 on x86_64, #! scripts, extensions of programs on PATH)
``host-family``                           warning: a QEMU entry for a CPU family the host runs natively, where it is no hijack (arm on some aarch64 hosts); i386 on x86_64 is ``host-hijack``
``overlap``                               warning (info if same interpreter): two entries match the same files; the newest enabled one wins
``target-not-registered``                 error: a --target has no enabled entry that matches its binaries
``not-persistent``                        warning: a live entry no boot-time source registers: lost at reboot
``config-not-live``                       warning: a configured entry (binfmt.d, update-binfmts, binfmtctl config) is not live, or differs
``boot-differs``                          warning: a live entry that a boot-time source (binfmt.d, update-binfmts) registers differently
``persistence-tools-conflict``            warning: several boot-time managers configure the same entries or are ordered so one undoes the other
``systemd-binfmt-flush``                  warning: systemd-binfmt is active and this live entry is in no binfmt.d file: any restart flushes it
``persistence-unchecked``                 info: the persistence checks (or one boot-time manager) could not be looked at, and why
``rootless``                              info: whether ``binfmtctl run`` (rootless, private emulation) works here, and why not
``probe-ok``                              info (--probe): the targets whose probe program ran through the kernel
``probe-failed``                          error (--probe): a target's probe program did not run, and why
``in-use-interpreter-stale``              warning: processes run through an entry whose interpreter file is gone or was replaced on disk (they keep the old inode)
``container-engine``                      info: a container engine (dockerd, containerd, buildkitd, podman) runs: containers started before a registration see it only with F
========================================  ==========================================================

"Healthy" means: no error and no warning finding. Info findings never change the exit
status.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from binfmtctl.binfmt_misc import cap_eff
    from binfmtctl.doctor.checks import CHECKS, HostCheck, has_problems, run_checks, to_json
    from binfmtctl.doctor.checks_entries import (
        ENTRY_CHECKS,
        EntryCheck,
        check_entries,
        check_entry_disabled,
        check_host_family,
        check_host_hijack,
        check_interpreter_dynamic,
        check_interpreter_missing,
        check_interpreter_not_executable,
        check_interpreter_trust,
        check_interpreter_wrong_arch,
        check_magic_bare_hex,
        check_mask_coverage,
        check_missing_f,
        check_overlap,
        check_preserve_argv0,
        overlaps,
    )
    from binfmtctl.doctor.checks_host import (
        check_context,
        check_kernel,
        check_mount,
        check_probes,
        check_register_file,
        check_rootless,
        check_targets,
        check_usage,
        scope,
    )
    from binfmtctl.doctor.checks_persistence import check_persistence
    from binfmtctl.doctor.facts import (
        CODES,
        FULL_UID_MAP,
        RANK,
        SEVERITIES,
        ContextFacts,
        Finding,
        HostFacts,
        InterpreterFacts,
        ManagerFacts,
        PersistFacts,
    )
    from binfmtctl.doctor.fix import STALE_CODES, FixResult, apply_fixes, plan_fixes
    from binfmtctl.doctor.gather import context_in, gather_context
    from binfmtctl.doctor.gather_boot import (
        gather_managers,
        gather_persist,
        gather_rootless,
        managers_in,
        persist_in,
    )
    from binfmtctl.doctor.gather_entry import gather_interpreter
    from binfmtctl.doctor.image import Image
    from binfmtctl.doctor.run import DoctorReport, DoctorRequest, run_doctor

#: public name -> the module that defines it; imported on first use (PEP 562), so
#: ``status`` (which runs the per-entry checks only) pays for no host-wide gathering
_LAZY = {
    "cap_eff": "binfmtctl.binfmt_misc",
    "CHECKS": "binfmtctl.doctor.checks",
    "HostCheck": "binfmtctl.doctor.checks",
    "has_problems": "binfmtctl.doctor.checks",
    "run_checks": "binfmtctl.doctor.checks",
    "to_json": "binfmtctl.doctor.checks",
    "ENTRY_CHECKS": "binfmtctl.doctor.checks_entries",
    "EntryCheck": "binfmtctl.doctor.checks_entries",
    "check_entries": "binfmtctl.doctor.checks_entries",
    "check_entry_disabled": "binfmtctl.doctor.checks_entries",
    "check_host_family": "binfmtctl.doctor.checks_entries",
    "check_host_hijack": "binfmtctl.doctor.checks_entries",
    "check_interpreter_dynamic": "binfmtctl.doctor.checks_entries",
    "check_interpreter_missing": "binfmtctl.doctor.checks_entries",
    "check_interpreter_not_executable": "binfmtctl.doctor.checks_entries",
    "check_interpreter_trust": "binfmtctl.doctor.checks_entries",
    "check_interpreter_wrong_arch": "binfmtctl.doctor.checks_entries",
    "check_magic_bare_hex": "binfmtctl.doctor.checks_entries",
    "check_mask_coverage": "binfmtctl.doctor.checks_entries",
    "check_missing_f": "binfmtctl.doctor.checks_entries",
    "check_overlap": "binfmtctl.doctor.checks_entries",
    "check_preserve_argv0": "binfmtctl.doctor.checks_entries",
    "overlaps": "binfmtctl.doctor.checks_entries",
    "check_context": "binfmtctl.doctor.checks_host",
    "check_kernel": "binfmtctl.doctor.checks_host",
    "check_mount": "binfmtctl.doctor.checks_host",
    "check_probes": "binfmtctl.doctor.checks_host",
    "check_register_file": "binfmtctl.doctor.checks_host",
    "check_rootless": "binfmtctl.doctor.checks_host",
    "check_targets": "binfmtctl.doctor.checks_host",
    "check_usage": "binfmtctl.doctor.checks_host",
    "scope": "binfmtctl.doctor.checks_host",
    "check_persistence": "binfmtctl.doctor.checks_persistence",
    "CODES": "binfmtctl.doctor.facts",
    "FULL_UID_MAP": "binfmtctl.doctor.facts",
    "RANK": "binfmtctl.doctor.facts",
    "SEVERITIES": "binfmtctl.doctor.facts",
    "ContextFacts": "binfmtctl.doctor.facts",
    "Finding": "binfmtctl.doctor.facts",
    "HostFacts": "binfmtctl.doctor.facts",
    "InterpreterFacts": "binfmtctl.doctor.facts",
    "ManagerFacts": "binfmtctl.doctor.facts",
    "PersistFacts": "binfmtctl.doctor.facts",
    "STALE_CODES": "binfmtctl.doctor.fix",
    "FixResult": "binfmtctl.doctor.fix",
    "apply_fixes": "binfmtctl.doctor.fix",
    "plan_fixes": "binfmtctl.doctor.fix",
    "context_in": "binfmtctl.doctor.gather",
    "gather_context": "binfmtctl.doctor.gather",
    "gather_interpreter": "binfmtctl.doctor.gather_entry",
    "gather_managers": "binfmtctl.doctor.gather_boot",
    "gather_persist": "binfmtctl.doctor.gather_boot",
    "gather_rootless": "binfmtctl.doctor.gather_boot",
    "managers_in": "binfmtctl.doctor.gather_boot",
    "persist_in": "binfmtctl.doctor.gather_boot",
    "Image": "binfmtctl.doctor.image",
    "DoctorReport": "binfmtctl.doctor.run",
    "DoctorRequest": "binfmtctl.doctor.run",
    "run_doctor": "binfmtctl.doctor.run",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CHECKS",
    "CODES",
    "ENTRY_CHECKS",
    "FULL_UID_MAP",
    "RANK",
    "SEVERITIES",
    "STALE_CODES",
    "ContextFacts",
    "DoctorReport",
    "DoctorRequest",
    "EntryCheck",
    "Finding",
    "FixResult",
    "HostCheck",
    "HostFacts",
    "Image",
    "InterpreterFacts",
    "ManagerFacts",
    "PersistFacts",
    "apply_fixes",
    "cap_eff",
    "check_context",
    "check_entries",
    "check_entry_disabled",
    "check_host_family",
    "check_host_hijack",
    "check_interpreter_dynamic",
    "check_interpreter_missing",
    "check_interpreter_not_executable",
    "check_interpreter_trust",
    "check_interpreter_wrong_arch",
    "check_kernel",
    "check_magic_bare_hex",
    "check_mask_coverage",
    "check_missing_f",
    "check_mount",
    "check_overlap",
    "check_persistence",
    "check_preserve_argv0",
    "check_probes",
    "check_register_file",
    "check_rootless",
    "check_targets",
    "check_usage",
    "context_in",
    "gather_context",
    "gather_interpreter",
    "gather_managers",
    "gather_persist",
    "gather_rootless",
    "has_problems",
    "managers_in",
    "overlaps",
    "persist_in",
    "plan_fixes",
    "run_checks",
    "run_doctor",
    "scope",
    "to_json",
]
