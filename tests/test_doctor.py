"""doctor: each check over planted facts, then each fault planted for real.

Pure tests build a :class:`HostFacts` by hand and call one check. The sandbox tests plant
the real fault in a private binfmt_misc (or in a temporary root / proc tree for the
file-based facts) and run the real CLI, ``doctor --json``, asserting code, severity and
entry. Nothing here touches the host's table.

"Healthy" (what ``doctor`` exits 0 for) is: no finding of severity error or warning. The
healthy sandbox is one where ``binfmtctl install aarch64`` ran, its entry is in binfmtctl's
config (persist's default ``/etc/binfmt.d/zz-binfmtctl.conf`` under the boot-time root given
with ``--root``), and that root holds nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from binfmtctl import doctor as doc
from binfmtctl import hijack, probe, table
from binfmtctl.binfmt_misc import MountState
from binfmtctl.entry import Entry, parse_register, render_register_str
from binfmtctl.install import ProbeResult
from binfmtctl.interpreters import FileFacts
from binfmtctl.rules import KernelProfile
from binfmtctl.sandbox import Sandbox
from binfmtctl.trust import Node, Verdict, walk
from tests.conftest import ROOT, User, register_raw, run_cli, shared_tmpdir

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

MNT = "/proc/sys/fs/binfmt_misc"
K = KernelProfile((6, 18))
QEMU_AARCH64 = "/usr/bin/qemu-aarch64-static"
DEBIAN_P = "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
AARCH64 = table.get_target("aarch64")
X86_64 = table.get_target("x86_64")
ARM_BARE_HEX = (
    ":qemu-arm:M:0:7f454c4601010100000000000000000002002800"
    ":ffffffffffffff00fffffffffffffffffeffffff:/usr/bin/qemu-arm:OC"
)
NATIVE = hijack.samples(hijack.host_identity(X86_64.sample_header(3).ljust(64, b"\0")))


# -- planted facts ----------------------------------------------------------------------------------
def interp(
    path: str = QEMU_AARCH64,
    *,
    exists: bool = True,
    executable: bool = True,
    regular: bool = True,
    linkage: str | None = "static-pie",
    arch: str | None = "x86_64",
    exec_errno: str | None = None,
    trust: Verdict | None = None,
    loader: str | None = None,
) -> doc.InterpreterFacts:
    if not exists:
        return doc.InterpreterFacts(FileFacts(path, exists=False), "ENOENT")
    f = FileFacts(
        path,
        True,
        regular,
        executable,
        path,
        elf_arch=arch,
        elf_machine=None if arch else "EM_UNKNOWN",
        linkage=linkage,
        loader=loader,
    )
    return doc.InterpreterFacts(f, exec_errno, trust)


def facts(*entries: Entry, **kw: Any) -> doc.HostFacts:
    """A healthy x86_64 host with these live entries; ``interps`` maps path -> facts."""
    interps = {e.interpreter: interp(e.interpreter) for e in entries}
    interps.update(kw.pop("interps", {}))
    base: dict[str, Any] = {
        "profile": K,
        "running": K,
        "entries": tuple(entries),
        "interpreters": interps,
        "native": NATIVE,
        "persist": doc.PersistFacts(sources={e.name: ("/etc/binfmt.d/x.conf",) for e in entries}),
    }
    base.update(kw)
    return doc.HostFacts(**base)


def aarch64(flags: str = "PF", interpreter: str = DEBIAN_P, name: str | None = None) -> Entry:
    return AARCH64.entry(interpreter, flags, name)


def codes(found: list[doc.Finding]) -> set[str]:
    return {f.code for f in found}


def one(found: list[doc.Finding], code: str) -> doc.Finding:
    hits = [f for f in found if f.code == code]
    assert len(hits) == 1, (code, found)
    return hits[0]


def problems(found: list[doc.Finding]) -> list[doc.Finding]:
    return [f for f in found if f.severity != "info"]


# -- the record and the contract ---------------------------------------------------------------------
def test_finding_requires_fix_and_known_severity() -> None:
    with pytest.raises(ValueError, match="fix"):
        doc.Finding("x", "error", None, "m", "")
    with pytest.raises(ValueError, match="severity"):
        doc.Finding("x", "fatal", None, "m", "f")
    f = doc.Finding("overlap", "warning", "a", "m", "f")
    assert f.to_json() == {
        "code": "overlap",
        "severity": "warning",
        "entry": "a",
        "message": "m",
        "fix": "f",
    }


def test_every_code_is_documented_in_module_and_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("Diagnosing a broken host", 1)[1]
    assert doc.__doc__ is not None
    for code in doc.CODES:
        assert f"``{code}``" in doc.__doc__, code
        assert f"`{code}`" in section, code


def test_healthy_facts_have_no_problems_and_sort_most_severe_first() -> None:
    f = facts(aarch64())
    found = doc.run_checks(f)
    assert problems(found) == []
    assert {"kernel", "context"} <= codes(found)
    bad = facts(aarch64(flags="F"), status_enabled=False)  # -binfmt-P without P; status off
    found = doc.run_checks(bad)
    ranks = [doc.SEVERITIES.index(x.severity) for x in found]
    assert ranks == sorted(ranks)
    assert found[0].severity == "error"
    assert all(x.fix for x in found)


# -- kernel -----------------------------------------------------------------------------------------
def test_kernel_no_binfmt() -> None:
    f = facts(filesystems="nodev\tproc\nnodev\ttmpfs\n", mount=MountState("unsupported", MNT))
    x = one(doc.check_kernel(f), "kernel-no-binfmt")
    assert (x.severity, x.entry) == ("error", None)
    assert "modprobe binfmt_misc" in x.fix


def test_kernel_facts_info_names_the_feature_versions() -> None:
    x = one(doc.check_kernel(facts(profile=KernelProfile((4, 4)))), "kernel")
    assert x.severity == "info"
    assert "4.4" in x.message and "needs 4.8" in x.message and "needs 6.7" in x.message
    assert "judged; running 6.18" in x.message


def test_kernel_flags_f_entries_on_4_4() -> None:
    f = facts(aarch64(), profile=KernelProfile((4, 4)))
    x = one(doc.check_kernel(f), "kernel-flag-unsupported")
    assert (x.severity, x.entry) == ("error", "qemu-aarch64")
    assert "Invalid argument" in x.message and "4.8" in x.message
    assert one(doc.check_kernel(facts(aarch64(), profile=KernelProfile((4, 8)))), "kernel")


def test_kernel_rejects_long_magic_before_5_1() -> None:
    e = Entry("far", "M", "/bin/true", offset=200, magic=b"ab")
    x = one(doc.check_kernel(facts(e, profile=KernelProfile((4, 19)))), "kernel-rejects-entry")
    assert (x.severity, x.entry) == ("error", "far")
    assert "128" in x.message or "buffer" in x.message


def test_kernel_judges_configured_entries_too() -> None:
    p = doc.PersistFacts(config_entries=(aarch64(),), config_path="/etc/binfmtctl.conf")
    x = one(
        doc.check_kernel(facts(profile=KernelProfile((4, 4)), persist=p)), "kernel-flag-unsupported"
    )
    assert x.entry == "qemu-aarch64" and "configured" in x.message


# -- mount ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "code", "severity"),
    [
        ("missing", "mount-missing", "error"),
        ("not-mounted", "not-mounted", "error"),
        ("automount", "automount-untriggered", "warning"),
    ],
)
def test_mount_states(state: str, code: str, severity: str) -> None:
    x = one(doc.check_mount(facts(mount=MountState(state, MNT))), code)
    assert (x.severity, x.entry) == (severity, None)


def test_not_mounted_fix_depends_on_context() -> None:
    ro = doc.ContextFacts(proc_sys_writable=False, register_writable=None)
    f = facts(mount=MountState("not-mounted", MNT), context=ro)
    found = doc.check_mount(f)
    assert "read-only" in one(found, "not-mounted").fix
    assert one(found, "read-only").severity == "warning"
    user = doc.ContextFacts(euid=1000, cap_eff=0)
    assert (
        "as root"
        in one(
            doc.check_mount(facts(mount=MountState("not-mounted", MNT), context=user)),
            "not-mounted",
        ).fix
    )
    root = doc.ContextFacts(euid=0, cap_eff=1 << 21)
    assert (
        "doctor --fix"
        in one(
            doc.check_mount(facts(mount=MountState("not-mounted", MNT), context=root)),
            "not-mounted",
        ).fix
    )


def test_not_mounted_fix_under_mount_dir_names_it_and_promises_no_mount_over_files() -> None:
    root = doc.ContextFacts(euid=0, cap_eff=1 << 21)
    f = facts(mount=MountState("not-mounted", "/srv/bm"), context=root)
    fix = one(doc.check_mount(f), "not-mounted").fix
    assert "mount -t binfmt_misc binfmt_misc /srv/bm" in fix
    assert "--mount /srv/bm doctor --fix" in fix and "only if the directory is empty" in fix


def test_read_only_mount() -> None:
    x = one(doc.check_mount(facts(mount=MountState("mounted", MNT, read_only=True))), "read-only")
    assert (x.severity, x.entry) == ("warning", None)
    assert "remount,rw" in x.fix


def test_status_disabled_and_unreadable() -> None:
    x = one(doc.check_mount(facts(status_enabled=False)), "status-disabled")
    assert (x.severity, x.entry) == ("error", None)
    y = one(
        doc.check_mount(facts(status_enabled=None, status_error="Permission denied")),
        "status-unreadable",
    )
    assert y.severity == "warning" and "Permission denied" in y.message


# -- context ----------------------------------------------------------------------------------------
def test_context_host_root() -> None:
    x = one(doc.check_context(facts(context=doc.ContextFacts(cap_eff=(1 << 41) - 1))), "context")
    assert x.severity == "info"
    assert "running as root" in x.message and "with CAP_SYS_ADMIN" in x.message
    assert "this host" in x.message


@pytest.mark.parametrize(
    ("ctx", "says", "scope"),
    [
        (doc.ContextFacts(dockerenv=True), "docker container", "the host and every container"),
        (doc.ContextFacts(containerenv=""), "podman container", "the host and every container"),
        (doc.ContextFacts(pid1_container="lxc"), "lxc container", "the host and every container"),
        (
            doc.ContextFacts(pid1_cgroup="0::/kubepods/burstable/pod1"),
            "kubernetes",
            "every container",
        ),
        (doc.ContextFacts(uid_map="0 1000 1\n"), "user namespace", "only this user namespace"),
        (
            doc.ContextFacts(proc_version="Linux version 5.15.153.1-microsoft-standard-WSL2"),
            "WSL2",
            "every WSL2 distro",
        ),
        (
            doc.ContextFacts(proc_version="Linux version 4.4.0-19041-Microsoft"),
            "WSL1",
            "WSL1 distro",
        ),
        (doc.ContextFacts(detect_virt_vm="kvm"), "kvm VM", "only a kvm VM"),
        (
            doc.ContextFacts(proc_version="Linux version 6.6.32-linuxkit"),
            "Docker Desktop",
            "Docker Desktop's VM",
        ),
    ],
)
def test_context_where_and_who_sees(ctx: doc.ContextFacts, says: str, scope: str) -> None:
    x = one(doc.check_context(facts(context=ctx)), "context")
    assert says in x.message and scope in x.message


def test_context_non_root_without_cap() -> None:
    x = one(doc.check_context(facts(context=doc.ContextFacts(euid=1000, cap_eff=0))), "context")
    assert "uid 1000 (not root)" in x.message and "without CAP_SYS_ADMIN" in x.message
    assert "sudo" in x.fix and "binfmtctl run" in x.fix


def test_context_userns_on_old_kernel_is_global() -> None:
    f = facts(
        context=doc.ContextFacts(uid_map="0 100000 65536", dockerenv=True),
        profile=KernelProfile((6, 1)),
    )
    x = one(doc.check_context(f), "context")
    assert "one global table" in x.message


def test_cap_eff_parsing() -> None:
    assert doc.cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n") == 0x1FFFFFFFFFF
    assert doc.cap_eff("CapEff:\tzz\n") is None
    assert doc.ContextFacts(cap_eff=0x1FFFFFFFFFF).has_sys_admin
    assert not doc.ContextFacts(cap_eff=0x1FFFFFFFFFF & ~(1 << 21)).has_sys_admin


# -- per entry --------------------------------------------------------------------------------------
def test_entry_disabled() -> None:
    e = Entry(
        "qemu-aarch64", "M", DEBIAN_P, "PF", magic=AARCH64.magic, mask=AARCH64.mask, enabled=False
    )
    x = doc.check_entry_disabled(e, facts(e))
    assert x is not None and (x.code, x.severity, x.entry) == ("entry-disabled", "warning", e.name)
    assert doc.check_entry_disabled(aarch64(), facts(aarch64())) is None


def test_interpreter_missing_without_f_and_gone_with_f() -> None:
    e = aarch64("", "/usr/bin/qemu-aarch64")
    gone = {e.interpreter: interp(e.interpreter, exists=False)}
    x = doc.check_interpreter_missing(e, facts(e, interps=gone))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "interpreter-missing",
        "error",
        e.name,
    )
    assert "install --replace aarch64" in x.fix
    pinned = aarch64("F", "/usr/bin/qemu-aarch64")
    y = doc.check_interpreter_missing(pinned, facts(pinned, interps=gone))
    assert y is not None and (y.code, y.severity) == ("interpreter-gone-pinned", "warning")
    assert "until reboot" in y.message


def test_interpreter_not_executable() -> None:
    e = aarch64("", QEMU_AARCH64)
    i = {QEMU_AARCH64: interp(executable=False, exec_errno="EACCES")}
    x = doc.check_interpreter_not_executable(e, facts(e, interps=i))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "interpreter-not-executable",
        "error",
        e.name,
    )
    pinned = aarch64("F", QEMU_AARCH64)
    y = doc.check_interpreter_not_executable(pinned, facts(pinned, interps=i))
    assert y is not None and y.severity == "warning"


def test_interpreter_dynamic_only_for_emulators() -> None:
    e = aarch64("F", "/usr/bin/qemu-aarch64")
    dyn = {
        e.interpreter: interp(
            e.interpreter, linkage="dynamic", loader="/lib64/ld-linux-x86-64.so.2"
        )
    }
    x = doc.check_interpreter_dynamic(e, facts(e, interps=dyn))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "interpreter-dynamic",
        "warning",
        e.name,
    )
    assert "qemu-user-static" in x.fix and "container" in x.message and "ld-linux" in x.message
    py = parse_register(r":python3.11:M::\xa7\x0d\x0d\x0a::/usr/bin/python3.11:", HOST)
    pydyn = {py.interpreter: interp(py.interpreter, linkage="dynamic")}
    assert doc.check_interpreter_dynamic(py, facts(py, interps=pydyn)) is None


def test_interpreter_wrong_arch() -> None:
    e = aarch64("F", "/opt/qemu-aarch64")
    i = {e.interpreter: interp(e.interpreter, arch="aarch64")}
    x = doc.check_interpreter_wrong_arch(e, facts(e, interps=i))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "interpreter-wrong-arch",
        "error",
        e.name,
    )
    i386 = {e.interpreter: interp(e.interpreter, arch="i386")}  # x86_64 runs i386 natively
    assert doc.check_interpreter_wrong_arch(e, facts(e, interps=i386)) is None


def test_missing_f_flag() -> None:
    e = aarch64("", QEMU_AARCH64)
    x = doc.check_missing_f(e, facts(e))
    assert x is not None and (x.code, x.severity, x.entry) == ("missing-f-flag", "warning", e.name)
    assert doc.check_missing_f(e, facts(e, profile=KernelProfile((4, 4)))) is None
    assert doc.check_missing_f(aarch64(), facts(aarch64())) is None


def test_magic_bare_hex_classic_line() -> None:
    e = parse_register(ARM_BARE_HEX, HOST)
    x = doc.check_magic_bare_hex(e, facts(e))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "magic-bare-hex",
        "error",
        "qemu-arm",
    )
    assert "7f454c46" in x.message and "and the mask too" in x.message
    assert "binfmtctl install arm" in x.fix
    other = Entry("thing", "M", "/bin/true", magic=b"cafe", mask=None)
    y = doc.check_magic_bare_hex(other, facts(other))
    assert y is not None and r"\xca\xfe" in y.fix
    assert doc.check_magic_bare_hex(aarch64(), facts(aarch64())) is None


def test_mask_elf_coverage() -> None:
    e = Entry("short", "M", "/usr/bin/qemu-s390x-static", "F", magic=b"\x7fELF\x02\x02")
    x = doc.check_mask_coverage(e, facts(e))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "mask-elf-coverage",
        "warning",
        "short",
    )
    assert "e_machine" in x.message
    assert doc.check_mask_coverage(aarch64(), facts(aarch64())) is None


def test_interpreter_untrusted_error_with_c_warning_without() -> None:
    tree = {
        "/": Node(0, 0o40755),
        "/srv": Node(0, 0o40755),
        "/srv/w": Node(0, 0o40777),  # world-writable, not sticky
        "/srv/w/qemu": Node(0, 0o100755),
        "/tmp": Node(0, 0o41777),
        "/tmp/qemu": Node(0, 0o100755),
    }
    weak = walk("/srv/w/qemu", tree.get)
    e = aarch64("OCF", "/srv/w/qemu")
    i = {e.interpreter: interp(e.interpreter, trust=weak)}
    x = doc.check_interpreter_trust(e, facts(e, interps=i))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "interpreter-untrusted",
        "error",
        e.name,
    )
    assert "/srv/w" in x.message and "chown root:root /srv/w && chmod go-w /srv/w" in x.fix
    plain = aarch64("F", "/srv/w/qemu")
    y = doc.check_interpreter_trust(plain, facts(plain, interps=i))
    assert y is not None and y.severity == "warning"
    sticky = walk("/tmp/qemu", tree.get)  # root-owned file in a root-owned sticky dir
    ok = {e.interpreter: interp(e.interpreter, trust=sticky)}
    assert doc.check_interpreter_trust(e, facts(e, interps=ok)) is None


def test_preserve_argv0_mismatch() -> None:
    e = aarch64("F", DEBIAN_P)
    x = doc.check_preserve_argv0(e, facts(e))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "preserve-argv0-mismatch",
        "error",
        e.name,
    )
    assert ":PF'" in x.fix
    p = aarch64("PF", QEMU_AARCH64)
    assert doc.check_preserve_argv0(p, facts(p)) is None  # 6.18: QEMU reads AT_FLAGS
    y = doc.check_preserve_argv0(p, facts(p, profile=KernelProfile((5, 10))))
    assert y is not None and y.severity == "warning" and "5.12" in y.message


def test_host_hijack_enabled_or_not() -> None:
    e = X86_64.entry("/usr/bin/qemu-x86_64-static", "F")
    x = doc.check_host_hijack(e, facts(e))
    assert x is not None and (x.code, x.severity, x.entry) == (
        "host-hijack",
        "error",
        "qemu-x86_64",
    )
    off = Entry(e.name, "M", e.interpreter, "F", magic=e.magic, mask=e.mask, enabled=False)
    y = doc.check_host_hijack(off, facts(off))
    assert y is not None and "disabled now" in y.message
    assert doc.check_host_hijack(aarch64(), facts(aarch64())) is None


def test_host_family() -> None:
    """Same family, not run natively: arm on an aarch64 host (AArch32 is optional)."""
    arm = table.get_target("arm").entry("/usr/bin/qemu-arm-static", "F")
    on_arm64 = {
        "uname_m": "aarch64",
        "native": hijack.samples(hijack.host_identity(AARCH64.sample_header().ljust(64, b"\0"))),
    }
    x = doc.check_host_family(arm, facts(arm, **on_arm64))
    assert x is not None and (x.code, x.severity, x.entry) == ("host-family", "warning", "qemu-arm")
    assert doc.check_host_family(aarch64(), facts(aarch64())) is None
    # i386 on x86_64 is run natively: a hijack, not a mere family warning
    i386 = table.get_target("i386").entry("/usr/bin/qemu-i386-static", "F")
    assert doc.check_host_family(i386, facts(i386)) is None
    hit = doc.check_host_hijack(i386, facts(i386))
    assert hit is not None and "i386 ELF ET_EXEC" in hit.message


# -- overlaps and targets ---------------------------------------------------------------------------
def test_overlaps_pure() -> None:
    a = aarch64()
    assert doc.overlaps(a, aarch64(name="box"))
    assert not doc.overlaps(a, table.get_target("riscv64").entry("/x"))
    assert doc.overlaps(
        Entry("e1", "E", "/x", extension="jar"), Entry("e2", "E", "/y", extension="jar")
    )
    short = Entry("s", "M", "/x", magic=b"\x7fELF")
    assert doc.overlaps(short, a)
    shifted = Entry("o", "M", "/x", offset=18, magic=b"\xb7\x00")
    assert doc.overlaps(shifted, a)
    assert not doc.overlaps(Entry("o", "M", "/x", offset=18, magic=b"\x28\x00"), a)


def test_overlap_names_the_winner() -> None:
    newer = aarch64("F", QEMU_AARCH64, name="box-aarch64")
    older = aarch64()
    x = one(doc.check_overlap(facts(newer, older)), "overlap")
    assert (x.severity, x.entry) == ("warning", "qemu-aarch64")
    assert "box-aarch64" in x.message and "wins" in x.message and "newest" in x.message
    off = Entry(
        "box-aarch64", "M", QEMU_AARCH64, "F", magic=AARCH64.magic, mask=AARCH64.mask, enabled=False
    )
    y = one(doc.check_overlap(facts(off, older)), "overlap")
    assert y.entry == "box-aarch64" and "disabled" in y.message
    same = one(doc.check_overlap(facts(aarch64(name="a2"), older)), "overlap")
    assert same.severity == "info"


def test_target_not_registered() -> None:
    x = one(doc.check_targets(facts(targets=("riscv64",))), "target-not-registered")
    assert (x.severity, x.entry) == ("error", None) and "install riscv64" in x.fix
    assert doc.check_targets(facts(aarch64(), targets=("aarch64",))) == []
    off = facts(aarch64(), targets=("aarch64",), status_enabled=False)
    assert codes(doc.check_targets(off)) == {"target-not-registered"}


# -- persistence (planted facts) --------------------------------------------------------------------
def pf(**kw: Any) -> doc.PersistFacts:
    return doc.PersistFacts(**kw)


def test_not_persistent_and_config_not_live() -> None:
    live = aarch64()
    p = pf(sources={"qemu-riscv64": ("/etc/binfmt.d/qemu-riscv64.conf",)})
    found = doc.check_persistence(facts(live, persist=p))
    x = one(found, "not-persistent")
    assert (x.severity, x.entry) == ("warning", "qemu-aarch64") and "reboot" in x.message
    y = one(found, "config-not-live")
    assert (y.severity, y.entry) == ("warning", "qemu-riscv64")
    assert "systemd-binfmt /etc/binfmt.d/qemu-riscv64.conf" in y.fix


def test_config_differs_from_live() -> None:
    cfg = "/etc/binfmtctl/entries.conf"
    p = pf(
        sources={"qemu-aarch64": (cfg,)},
        config_path=cfg,
        config_entries=(aarch64("PF", QEMU_AARCH64),),
    )
    x = one(doc.check_persistence(facts(aarch64(), persist=p)), "config-not-live")
    assert x.entry == "qemu-aarch64" and "differs" in x.message and "binfmtctl apply" in x.fix


def test_persistence_tools_conflict() -> None:
    m = doc.ManagerFacts(
        systemd_binfmt_unit=True,
        systemd_binfmt_wanted=True,
        binfmt_d_nonempty=True,
        binfmt_support_unit=True,
        binfmt_support_enabled=True,
    )
    src = {"qemu-aarch64": ("/usr/lib/binfmt.d/qemu-aarch64.conf",)}
    found = doc.check_persistence(facts(aarch64(), persist=pf(managers=m, sources=src)))
    x = one(found, "persistence-tools-conflict")
    assert (x.severity, x.entry) == ("warning", None) and "binfmt-support" in x.message
    cfg = "/etc/binfmtctl/entries.conf"
    both = pf(
        sources={"qemu-aarch64": (cfg, "/usr/lib/binfmt.d/qemu-aarch64.conf")},
        config_path=cfg,
        config_entries=(aarch64(),),
        binfmt_d_entries={"qemu-aarch64": aarch64("OPF")},
    )
    y = one(doc.check_persistence(facts(aarch64(), persist=both)), "persistence-tools-conflict")
    assert y.entry == "qemu-aarch64"
    same = replace_persist(both, binfmt_d_entries={"qemu-aarch64": aarch64()})
    assert "persistence-tools-conflict" not in codes(
        doc.check_persistence(facts(aarch64(), persist=same))
    )


def replace_persist(p: doc.PersistFacts, **kw: Any) -> doc.PersistFacts:
    from binfmtctl.record import replace

    return replace(p, **kw)


def test_binfmtctl_unit_not_ordered_after_systemd_binfmt() -> None:
    m = doc.ManagerFacts(
        systemd_binfmt_unit=True,
        systemd_binfmt_wanted=True,
        binfmt_d_nonempty=True,
        binfmtctl_unit="/etc/systemd/system/binfmtctl.service",
        binfmtctl_enabled=True,
        binfmtctl_unit_text="[Unit]\nAfter=local-fs.target\n",
    )
    x = one(doc.check_persistence(facts(persist=pf(managers=m))), "persistence-tools-conflict")
    assert "not ordered after systemd-binfmt" in x.message
    from binfmtctl.record import replace

    ordered = replace(m, binfmtctl_unit_text="[Unit]\nAfter=a.service systemd-binfmt.service\n")
    assert ordered.binfmtctl_after_systemd_binfmt
    assert "persistence-tools-conflict" not in codes(
        doc.check_persistence(facts(persist=pf(managers=ordered)))
    )


def test_systemd_binfmt_flush() -> None:
    m = doc.ManagerFacts(
        systemd_binfmt_unit=True,
        systemd_binfmt_wanted=True,
        binfmt_d_nonempty=True,
    )
    cfg = "/etc/binfmtctl/entries.conf"
    p = pf(
        managers=m, sources={"qemu-aarch64": (cfg,)}, config_path=cfg, config_entries=(aarch64(),)
    )
    x = one(doc.check_persistence(facts(aarch64(), persist=p)), "systemd-binfmt-flush")
    assert (x.severity, x.entry) == ("warning", "qemu-aarch64") and "restart" in x.message
    restoring = doc.ManagerFacts(
        **{
            **m.__dict__,
            "binfmtctl_unit": "/u",
            "binfmtctl_enabled": True,
            "binfmtctl_unit_text": "After=systemd-binfmt.service\nPartOf=systemd-binfmt.service\n",
        }
    )
    p2 = replace_persist(p, managers=restoring)
    assert "systemd-binfmt-flush" not in codes(doc.check_persistence(facts(aarch64(), persist=p2)))
    masked = doc.ManagerFacts(**{**m.__dict__, "systemd_binfmt_masked": True})
    p3 = replace_persist(p, managers=masked)
    assert "systemd-binfmt-flush" not in codes(doc.check_persistence(facts(aarch64(), persist=p3)))


def test_update_binfmts_files_count_only_with_binfmt_support() -> None:
    src = {"qemu-aarch64": ("/usr/share/binfmts/qemu-aarch64",)}
    off = pf(sources=src)
    x = one(doc.check_persistence(facts(aarch64(), persist=off)), "not-persistent")
    assert x.entry == "qemu-aarch64"
    on = pf(sources=src, managers=doc.ManagerFacts(binfmt_support_sysv=True))
    assert "not-persistent" not in codes(doc.check_persistence(facts(aarch64(), persist=on)))
    y = one(doc.check_persistence(facts(persist=on)), "config-not-live")
    assert "update-binfmts --import qemu-aarch64" in y.fix


def test_persistence_unchecked_without_the_module() -> None:
    x = one(
        doc.check_persistence(facts(persist=pf(checked=False, error="gone"))),
        "persistence-unchecked",
    )
    assert x.severity == "info" and "gone" in x.message


# -- rootless and probes ------------------------------------------------------------------------------
def test_rootless_available_or_not() -> None:
    yes = one(
        doc.check_rootless(facts(rootless=(True, "tried", "binfmtctl run -- CMD"))), "rootless"
    )
    assert (
        yes.severity == "info" and "available" in yes.message and yes.fix == "binfmtctl run -- CMD"
    )
    no = one(
        doc.check_rootless(facts(rootless=(False, "Linux 6.1 has one table", "upgrade"))),
        "rootless",
    )
    assert "not available" in no.message and "6.1" in no.message and no.fix == "upgrade"
    assert doc.check_rootless(facts(rootless=None)) == []


def test_rootless_edge_uses_the_rootless_module() -> None:
    got = doc.gather_rootless()
    assert got is not None
    ok, reason, fix = got
    assert isinstance(ok, bool) and reason and fix


def test_probe_findings() -> None:
    results = (
        ProbeResult("aarch64", True, "qemu-aarch64", "binfmtctl-probe:aarch64", None),
        ProbeResult("riscv64", False, None, "", "exec format error (ENOEXEC): no enabled entry"),
    )
    found = doc.check_probes(facts(aarch64(), probes=results))
    bad = one(found, "probe-failed")
    assert (bad.severity, bad.entry) == ("error", None) and "install riscv64" in bad.fix
    assert "aarch64 (via qemu-aarch64)" in one(found, "probe-ok").message
    assert doc.check_probes(facts()) == []


# -- --fix planning -----------------------------------------------------------------------------------
def test_plan_fixes_only_safe_ones() -> None:
    stale = aarch64("", "/gone/qemu-aarch64")
    other = Entry("python3.11", "M", "/gone/python", magic=b"\xa7\x0d\x0d\x0a")
    f = facts(
        stale,
        other,
        owned=frozenset({"qemu-aarch64"}),
        interps={
            "/gone/qemu-aarch64": interp("/gone/qemu-aarch64", exists=False),
            "/gone/python": interp("/gone/python", exists=False),
        },
        mount=MountState("mounted", MNT),
        status_enabled=False,
    )
    plan = doc.plan_fixes(doc.run_checks(f), f)
    assert ("interpreter-missing", "qemu-aarch64", "reinstall") in plan
    assert all(name != "python3.11" for _, name, _ in plan)  # not ours
    assert all(code != "status-disabled" for code, _, _ in plan)  # deliberate, never automatic
    nm = facts(mount=MountState("not-mounted", MNT))
    assert doc.plan_fixes(doc.run_checks(nm), nm) == [("not-mounted", None, "mount")]
    cfg = "/c"
    disabled = Entry(
        "qemu-aarch64", "M", DEBIAN_P, "PF", magic=AARCH64.magic, mask=AARCH64.mask, enabled=False
    )
    p = pf(
        sources={"qemu-aarch64": (cfg,), "qemu-riscv64": (cfg,)},
        config_path=cfg,
        config_entries=(
            aarch64(),
            table.get_target("riscv64").entry("/usr/bin/qemu-riscv64-static", "F"),
        ),
    )
    g = facts(disabled, persist=p, owned=frozenset({"qemu-aarch64"}))
    plan = doc.plan_fixes(doc.run_checks(g), g)
    assert ("config-not-live", None, "apply-config") in plan
    assert ("entry-disabled", "qemu-aarch64", "enable") in plan


# -- the edge over temporary trees ------------------------------------------------------------------
def fake_proc(
    tmp: Path, *, filesystems: str, mountinfo: str = "", uid_map: str = "0 0 4294967295\n"
) -> Path:
    proc = tmp / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "1").mkdir()
    (proc / "filesystems").write_text(filesystems)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "self" / "status").write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    (proc / "self" / "uid_map").write_text(uid_map)
    (proc / "1" / "cgroup").write_text("0::/\n")
    (proc / "1" / "environ").write_bytes(b"PATH=/bin\0container=lxc\0")
    (proc / "version").write_text("Linux version 6.18.0 (x@y)\n")
    (proc / "sys").mkdir()
    return proc


def test_gather_context_from_a_temporary_root(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, filesystems="nodev\tbinfmt_misc\n", uid_map="0 100000 65536\n")
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / ".dockerenv").touch()
    (root / "run" / ".containerenv").write_text('engine="podman-4.9"\n')
    ctx = doc.gather_context(str(root), str(proc), str(tmp_path / "mnt"))
    assert ctx.cap_eff == 0 and not ctx.has_sys_admin
    assert ctx.pid1_container == "lxc" and ctx.container == "lxc"
    assert ctx.dockerenv and ctx.containerenv is not None and "podman" in ctx.containerenv
    assert ctx.in_user_namespace
    assert ctx.detect_virt_container is None  # commands run only for the real root


def test_gather_managers_from_a_temporary_root(tmp_path: Path) -> None:
    r = tmp_path
    (r / "usr/lib/systemd/system/sysinit.target.wants").mkdir(parents=True)
    (r / "usr/lib/systemd/system/systemd-binfmt.service").write_text("[Unit]\n")
    os.symlink(
        "../systemd-binfmt.service",
        r / "usr/lib/systemd/system/sysinit.target.wants/systemd-binfmt.service",
    )
    (r / "usr/lib/systemd/system/binfmt-support.service").write_text("[Unit]\n")
    (r / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    os.symlink(
        "/lib/systemd/system/binfmt-support.service",
        r / "etc/systemd/system/multi-user.target.wants/binfmt-support.service",
    )
    (r / "usr/lib/binfmt.d").mkdir(parents=True)
    (r / "etc/binfmt.d").mkdir(parents=True)
    (r / "usr/lib/binfmt.d/a.conf").write_text(render_register_str(aarch64()) + "\n")
    (r / "usr/lib/binfmt.d/masked.conf").write_text(":m:E::m::/bin/true:\n")
    os.symlink("/dev/null", r / "etc/binfmt.d/masked.conf")
    (r / "var/lib/binfmts").mkdir(parents=True)
    (r / "var/lib/binfmts/jar").write_text("openjdk\n")
    m = doc.gather_managers(str(r))
    assert m.systemd_binfmt_active and m.binfmt_support_active and m.binfmt_d_nonempty
    assert m.var_lib_binfmts == ("jar",)
    found = doc.check_persistence(facts(persist=pf(managers=m)))
    assert one(found, "persistence-tools-conflict").entry is None
    p = doc.gather_persist(str(r))
    assert p.checked and "qemu-aarch64" in p.binfmt_d_names and "m" not in p.sources  # masked
    assert p.binfmt_d_entries["qemu-aarch64"].same_registration(aarch64())
    os.symlink("/dev/null", r / "etc/systemd/system/systemd-binfmt.service")
    assert not doc.gather_managers(str(r)).systemd_binfmt_active
    (r / "etc/init.d").mkdir()
    (r / "etc/init.d/binfmt-support").write_text("#!/bin/sh\n")
    assert not doc.gather_managers(str(r)).binfmt_support_sysv
    (r / "etc/rcS.d").mkdir()
    os.symlink("../init.d/binfmt-support", r / "etc/rcS.d/S01binfmt-support")
    assert doc.gather_managers(str(r)).binfmt_support_sysv
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not doc.gather_managers(str(empty)).systemd_binfmt_active


def test_an_unreadable_binfmtctl_unit_is_reported_not_swallowed(tmp_path: Path) -> None:
    unit = tmp_path / "etc/systemd/system/binfmtctl.service"
    unit.parent.mkdir(parents=True)
    os.mkfifo(unit)  # there, but no unit: reading it must neither hang nor pass for empty
    m = doc.gather_managers(str(tmp_path))
    assert m.binfmtctl_unit is not None and m.binfmtctl_unit_text == ""
    assert m.binfmtctl_unit_error is not None and "FIFO" in m.binfmtctl_unit_error
    found = doc.check_persistence(facts(persist=doc.gather_persist(str(tmp_path))))
    x = one(found, "persistence-unchecked")
    assert x.severity == "info" and "binfmtctl.service cannot be read" in x.message
    assert x.message.endswith("ignoring") and x.fix.startswith("binfmtctl persist enable")
    unit.unlink()
    unit.write_text("[Unit]\nAfter=systemd-binfmt.service\n")
    assert doc.gather_managers(str(tmp_path)).binfmtctl_unit_error is None


# -- the real CLI -------------------------------------------------------------------------------------
def doctor(
    box: Sandbox | None,
    *args: str,
    root: Path | str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, list[doc.Finding], str]:
    """Run ``doctor --json`` (in the sandbox, or on the host when ``box`` is None)."""
    argv = ["doctor", "--json", *(["--root", str(root)] if root is not None else []), *args]
    env = {"BINFMTCTL_CONFIG": "", **(env or {})}  # persist's default config, under --root
    if box is None:
        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT)
        e.update(env or {})
        p = subprocess.run(
            [sys.executable, "-m", "binfmtctl", *argv],
            capture_output=True,
            text=True,
            env=e,
            check=False,
        )
        rc, out, err = p.returncode, p.stdout, p.stderr
    else:
        q = run_cli(box, *argv, env=env)
        rc, out, err = q.returncode, q.stdout, q.stderr
    assert "Traceback" not in err, err
    data = json.loads(out)
    found = [doc.Finding(**x) for x in data["findings"]]
    assert all(f.fix for f in found)
    return rc, found, err


def sh(box: Sandbox, script: str) -> None:
    p = box.run(["sh", "-c", script])
    assert p.returncode == 0, p.stderr.decode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty boot-time root: no binfmt.d, no units, no binfmtctl config."""
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-traversable temporary directory (pytest's tmp_path is 0700)."""
    with shared_tmpdir("binfmtctl-doctor-") as d:
        yield d


def write_config(root: Path, *lines: str, path: str = "etc/binfmt.d/zz-binfmtctl.conf") -> Path:
    """binfmtctl's config under the boot-time root (persist's default place)."""
    cfg = root / path
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("".join(line + "\n" for line in lines))
    return cfg


def live_register_string(box: Sandbox, name: str) -> str:
    p = run_cli(box, "show", name, "--json")
    assert p.returncode == 0, p.stderr
    return str(json.loads(p.stdout)["register"])


def by(found: list[doc.Finding], code: str, entry: str | None = None) -> doc.Finding:
    hits = [f for f in found if f.code == code and (entry is None or f.entry == entry)]
    assert hits, (code, entry, [(f.code, f.entry) for f in found])
    return hits[0]


@pytest.mark.sandbox
def test_healthy_sandbox(sandbox: Sandbox, root: Path) -> None:
    assert run_cli(sandbox, "install", "aarch64", "--no-test").returncode == 0
    rc, found, _ = doctor(sandbox, root=root)
    assert by(found, "not-persistent", "qemu-aarch64").severity == "warning"
    assert rc == 1
    write_config(root, live_register_string(sandbox, "qemu-aarch64"))
    rc, found, _ = doctor(sandbox, "--probe", "--target", "arm64", root=root)
    assert problems(found) == [], found
    assert rc == 0
    assert "aarch64 (via qemu-aarch64)" in by(found, "probe-ok").message
    assert "only this user namespace" in by(found, "context").message
    p = run_cli(sandbox, "doctor", "--root", str(root), env={"BINFMTCTL_CONFIG": ""})
    assert p.returncode == 0 and "healthy" in p.stdout


@pytest.mark.sandbox
def test_config_outside_binfmt_d_needs_the_unit(sandbox: Sandbox, root: Path) -> None:
    assert run_cli(sandbox, "install", "aarch64", "--no-test").returncode == 0
    where = {"BINFMTCTL_CONFIG": "/etc/binfmtctl/entries.conf"}
    write_config(
        root, live_register_string(sandbox, "qemu-aarch64"), path=where["BINFMTCTL_CONFIG"][1:]
    )
    _, found, _ = doctor(sandbox, root=root, env=where)
    x = by(found, "not-persistent", "qemu-aarch64")
    assert "binfmtctl.service is not enabled" in x.message
    # under --root the fix names the image (and its config), so it runs as printed
    assert (
        x.fix
        == f"binfmtctl persist enable --root {root} --config {root}/etc/binfmtctl/entries.conf"
    )
    p = run_cli(sandbox, "persist", "enable", "--root", str(root), env=where)
    assert p.returncode == 0, p.stdout + p.stderr
    rc, found, _ = doctor(sandbox, root=root, env=where)
    assert problems(found) == [] and rc == 0, found


@pytest.mark.sandbox
def test_classic_manual_attempt_is_recognised(sandbox: Sandbox, root: Path) -> None:
    """Hex without \\x and a missing interpreter: registered without F (with F the kernel
    refuses it: ENOENT), doctor names both."""
    assert not os.path.exists("/usr/bin/qemu-arm")
    register_raw(sandbox, ARM_BARE_HEX)
    rc, found, _ = doctor(sandbox, root=root)
    assert rc == 1
    x = by(found, "magic-bare-hex", "qemu-arm")
    assert x.severity == "error" and "binfmtctl install arm" in x.fix
    y = by(found, "interpreter-missing", "qemu-arm")
    assert y.severity == "error" and "No such file or directory" in y.message


@pytest.mark.sandbox
def test_f_entry_on_a_4_4_kernel_profile(sandbox: Sandbox, root: Path) -> None:
    assert run_cli(sandbox, "install", "aarch64", "--no-test").returncode == 0
    rc, found, _ = doctor(sandbox, "--kernel", "4.4", root=root)
    assert rc == 1
    x = by(found, "kernel-flag-unsupported", "qemu-aarch64")
    assert x.severity == "error" and "4.8" in x.message
    assert "needs 4.8" in by(found, "kernel").message
    p = run_cli(sandbox, "doctor", "--kernel", "four")
    assert p.returncode == 2 and "Traceback" not in p.stderr


@pytest.mark.sandbox
def test_entry_past_128_bytes_on_a_4_19_profile(sandbox: Sandbox, root: Path) -> None:
    register_raw(sandbox, ":far:M:200:ab::/bin/true:")  # fits 6.18's 256-byte buffer
    rc, found, _ = doctor(sandbox, "--kernel", "4.19", root=root)
    x = by(found, "kernel-rejects-entry", "far")
    assert rc == 1 and x.severity == "error"
    _, found, _ = doctor(sandbox, root=root)
    assert "kernel-rejects-entry" not in codes(found)


@pytest.mark.sandbox
def test_disabled_entry_and_global_status(sandbox: Sandbox, root: Path) -> None:
    assert run_cli(sandbox, "install", "aarch64", "--no-test").returncode == 0
    assert run_cli(sandbox, "disable", "qemu-aarch64").returncode == 0
    rc, found, _ = doctor(sandbox, root=root)
    x = by(found, "entry-disabled", "qemu-aarch64")
    assert (rc, x.severity) == (1, "warning")
    sh(sandbox, f"echo 0 > {MNT}/status")
    _, found, _ = doctor(sandbox, root=root)
    assert by(found, "status-disabled").severity == "error"


@pytest.mark.sandbox
def test_pinned_interpreter_gone(sandbox: Sandbox, root: Path, shared_dir: Path) -> None:
    qemu = shared_dir / "qemu-aarch64-static"
    shutil.copy2(QEMU_AARCH64, qemu)
    register_raw(sandbox, render_register_str(aarch64("F", str(qemu))))
    qemu.unlink()
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "interpreter-gone-pinned", "qemu-aarch64")
    assert x.severity == "warning" and "until reboot" in x.message
    assert "interpreter-missing" not in codes(found)


@pytest.mark.sandbox
def test_interpreter_not_executable_live(sandbox: Sandbox, root: Path, shared_dir: Path) -> None:
    qemu = shared_dir / "qemu-aarch64-static"
    shutil.copy2(QEMU_AARCH64, qemu)
    qemu.chmod(0o644)
    register_raw(sandbox, render_register_str(aarch64("", str(qemu))))
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "interpreter-not-executable", "qemu-aarch64")
    assert x.severity == "error" and "chmod 755" in x.fix


@pytest.mark.sandbox
def test_interpreter_dynamic(sandbox: Sandbox, root: Path) -> None:
    dynamic = shutil.which("true") or "/bin/true"
    register_raw(sandbox, render_register_str(aarch64("F", os.path.realpath(dynamic))))
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "interpreter-dynamic", "qemu-aarch64")
    assert x.severity == "warning" and "dynamically linked" in x.message


@pytest.mark.sandbox
def test_interpreter_wrong_arch_live(sandbox: Sandbox, root: Path, shared_dir: Path) -> None:
    foreign = probe.write_probe("riscv64", shared_dir)  # a static riscv64 ELF as the "QEMU"
    register_raw(sandbox, render_register_str(aarch64("F", str(foreign))))
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "interpreter-wrong-arch", "qemu-aarch64")
    assert x.severity == "error" and "riscv64" in x.message


@pytest.mark.sandbox
def test_missing_f_flag_live(sandbox: Sandbox, root: Path) -> None:
    register_raw(sandbox, render_register_str(aarch64("", QEMU_AARCH64)))
    _, found, _ = doctor(sandbox, root=root)
    assert by(found, "missing-f-flag", "qemu-aarch64").severity == "warning"


@pytest.mark.sandbox
def test_mask_elf_coverage_live(sandbox: Sandbox, root: Path) -> None:
    register_raw(sandbox, r":short-s390x:M::\x7fELF\x02\x02::/usr/bin/qemu-s390x-static:F")
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "mask-elf-coverage", "short-s390x")
    assert x.severity == "warning" and "e_machine" in x.message
    assert "host-hijack" not in codes(found)  # big-endian: not the host's binaries


@pytest.mark.sandbox
def test_credentials_with_writable_interpreter(
    sandbox: Sandbox, root: Path, shared_dir: Path
) -> None:
    w = shared_dir / "w"
    w.mkdir()
    w.chmod(0o777)  # world-writable, not sticky
    qemu = w / "qemu-aarch64-static"
    shutil.copy2(QEMU_AARCH64, qemu)
    register_raw(sandbox, render_register_str(aarch64("OCF", str(qemu))))
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "interpreter-untrusted", "qemu-aarch64")
    assert x.severity == "error" and str(w) in x.message


@pytest.mark.sandbox
def test_preserve_argv0_mismatch_live(sandbox: Sandbox, root: Path) -> None:
    register_raw(sandbox, render_register_str(aarch64("F", DEBIAN_P)))
    _, found, _ = doctor(sandbox, root=root)
    assert by(found, "preserve-argv0-mismatch", "qemu-aarch64").severity == "error"
    sh(sandbox, f"echo -1 > {MNT}/qemu-aarch64")
    register_raw(sandbox, render_register_str(aarch64("PF", QEMU_AARCH64)))
    _, found, _ = doctor(sandbox, root=root)
    assert "preserve-argv0-mismatch" not in codes(found)
    _, found, _ = doctor(sandbox, "--kernel", "5.10", root=root)
    assert by(found, "preserve-argv0-mismatch", "qemu-aarch64").severity == "warning"


@pytest.mark.sandbox
def test_host_hijack_disabled_entry(sandbox: Sandbox, root: Path) -> None:
    """Register the host's own magic and disable it in one process, with no exec between
    (enabled, it would take over every exec in the sandbox)."""
    line = render_register_str(X86_64.entry("/nonexistent/qemu-x86_64"))
    script = (
        f"import os\nfd = os.open('{MNT}/register', os.O_WRONLY)\n"
        f"os.write(fd, {(line + chr(10)).encode()!r})\nos.close(fd)\n"
        f"fd = os.open('{MNT}/qemu-x86_64', os.O_WRONLY)\nos.write(fd, b'0')\nos.close(fd)\n"
    )
    p = sandbox.run([sys.executable, "-c", script])
    assert p.returncode == 0, p.stderr.decode()
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "host-hijack", "qemu-x86_64")
    assert x.severity == "error" and "disabled now" in x.message


@pytest.mark.sandbox
def test_i386_on_x86_64_is_a_hijack_live(sandbox: Sandbox, root: Path) -> None:
    register_raw(
        sandbox,
        render_register_str(table.get_target("i386").entry("/usr/bin/qemu-i386-static", "F")),
    )
    _, found, _ = doctor(sandbox, root=root)
    assert by(found, "host-hijack", "qemu-i386").severity == "error"
    assert "host-family" not in codes(found)


@pytest.mark.sandbox
def test_overlap_names_the_newest_as_winner(sandbox: Sandbox, root: Path) -> None:
    assert run_cli(sandbox, "install", "aarch64", "--no-test").returncode == 0
    register_raw(sandbox, render_register_str(aarch64("F", QEMU_AARCH64, name="box-aarch64")))
    _, found, _ = doctor(sandbox, root=root)
    x = by(found, "overlap", "qemu-aarch64")
    assert x.severity == "warning" and "box-aarch64" in x.message and "wins" in x.message


@pytest.mark.sandbox
def test_target_not_registered_and_probe_failed(sandbox: Sandbox, root: Path) -> None:
    rc, found, _ = doctor(sandbox, "--target", "riscv64", root=root)
    assert rc == 1 and by(found, "target-not-registered").severity == "error"
    register_raw(
        sandbox,
        render_register_str(aarch64("F", os.path.realpath(shutil.which("true") or "/bin/true"))),
    )
    rc, found, _ = doctor(sandbox, "--probe", root=root)
    x = by(found, "probe-failed", "qemu-aarch64")
    assert rc == 1 and x.severity == "error" and "aarch64" in x.message


@pytest.mark.sandbox
def test_read_only_mount_in_sandbox(sandbox: Sandbox, root: Path) -> None:
    assert run_cli(sandbox, "install", "aarch64", "--no-test").returncode == 0
    sh(sandbox, f"mount -o remount,bind,ro {MNT}")
    rc, found, _ = doctor(sandbox, root=root)
    assert rc == 1 and by(found, "read-only").severity == "warning"
    assert "binfmt_misc not writable here" in by(found, "context").message


@pytest.mark.sandbox
def test_read_only_proc_sys_hides_the_mount(sandbox: Sandbox, root: Path, shared_dir: Path) -> None:
    """/proc/sys is read-only for the sandbox's root (a user namespace may not write the
    host's sysctls), as in an unprivileged container; a read-only bind over /proc/sys/fs
    then hides the binfmt_misc mount that mountinfo still lists (a bind of /proc/sys itself
    fails in a user namespace when the host has binfmt_misc mounted: a locked submount)."""
    (shared_dir / "fs" / "binfmt_misc").mkdir(parents=True)
    sh(sandbox, f"mount --bind -o ro {shared_dir / 'fs'} /proc/sys/fs")
    rc, found, _ = doctor(sandbox, root=root)
    assert rc == 1
    assert "read-only" in by(found, "not-mounted").fix
    assert by(found, "read-only").severity == "warning"
    assert "status-unreadable" not in codes(found)
    # --fix mounts this namespace's instance again where it can be seen: every mount in a
    # user namespace shows the same table, so the fix makes the host healthy
    p = run_cli(sandbox, "doctor", "--fix", "--root", str(root))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout
    assert "binfmt_misc is mounted at /proc/sys/fs/binfmt_misc" in p.stdout


def test_nothing_mounted_on_the_host(tmp_path: Path, root: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, found, _ = doctor(
        None, "--target", "aarch64", root=root, env={"BINFMTCTL_MOUNT": str(empty)}
    )
    assert rc == 1
    assert by(found, "not-mounted").severity == "error"
    assert by(found, "target-not-registered").severity == "error"
    rc, found, _ = doctor(None, root=root, env={"BINFMTCTL_MOUNT": str(tmp_path / "nowhere")})
    assert rc == 1 and by(found, "mount-missing").severity == "error"
    bad = subprocess.run(
        [sys.executable, "-m", "binfmtctl", "doctor", "--target", "nosucharch"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert bad.returncode == 2 and "unknown target" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.sandbox
def test_probe_with_nothing_mounted(sandbox: Sandbox, root: Path, shared_dir: Path) -> None:
    mnt = {"BINFMTCTL_MOUNT": str(shared_dir)}
    rc, found, _ = doctor(sandbox, "--probe", "--target", "aarch64", root=root, env=mnt)
    assert rc == 1
    assert by(found, "not-mounted").severity == "error"
    x = by(found, "probe-failed")
    assert x.severity == "error" and "aarch64" in x.message and "install aarch64" in x.fix


def test_kernel_and_automount_from_a_planted_proc(tmp_path: Path, root: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = fake_proc(tmp_path, filesystems="nodev\tproc\n")
    rc, found, _ = doctor(None, "--proc", str(proc), root=root, env={"BINFMTCTL_MOUNT": str(mnt)})
    assert rc == 1 and by(found, "kernel-no-binfmt").severity == "error"
    auto = fake_proc(
        tmp_path / "b",
        filesystems="nodev\tbinfmt_misc\n",
        mountinfo=f"40 25 0:40 / {mnt} rw,relatime shared:14 - autofs systemd-1 rw,fd=29\n",
    )
    rc, found, _ = doctor(None, "--proc", str(auto), root=root, env={"BINFMTCTL_MOUNT": str(mnt)})
    assert rc == 1 and by(found, "automount-untriggered").severity == "warning"
    assert "lxc container" in by(found, "context").message
    assert "without CAP_SYS_ADMIN" in by(found, "context").message


@pytest.mark.sandbox
def test_fix_mounts_and_replaces_a_stale_owned_entry(sandbox: Sandbox, root: Path) -> None:
    stale = render_register_str(aarch64("", "/nonexistent/qemu-aarch64"))
    assert run_cli(sandbox, "register", stale).returncode == 0  # binfmtctl owns it
    rc, found, _ = doctor(sandbox, root=root)
    assert rc == 1 and by(found, "interpreter-missing", "qemu-aarch64")
    p = run_cli(sandbox, "doctor", "--json", "--fix", "--root", str(root))
    data = json.loads(p.stdout)
    assert [(f["action"], f["entry"], f["ok"]) for f in data["fixes"]] == [
        ("reinstall", "qemu-aarch64", True)
    ]
    assert [(f["code"], f["entry"]) for f in data["findings"] if f["severity"] != "info"] == [
        ("not-persistent", "qemu-aarch64")  # fixed, though not persisted (that is the user's call)
    ]
    assert live_register_string(sandbox, "qemu-aarch64") == render_register_str(aarch64())


@pytest.mark.sandbox
def test_fix_mounts(sandbox: Sandbox, root: Path, shared_dir: Path) -> None:
    mnt = {"BINFMTCTL_MOUNT": str(shared_dir)}
    rc, found, _ = doctor(sandbox, root=root, env=mnt)
    assert rc == 1 and by(found, "not-mounted")
    p = run_cli(sandbox, "doctor", "--fix", "--root", str(root), env=mnt)
    assert "fixed (mount)" in p.stdout and p.returncode == 0, p.stdout
    assert "binfmt_misc at " + str(shared_dir) + ": mounted" in p.stdout


@pytest.mark.sandbox
def test_fix_leaves_other_tools_entries(sandbox: Sandbox, root: Path) -> None:
    register_raw(sandbox, render_register_str(aarch64("", "/nonexistent/qemu-aarch64")))  # not ours
    p = run_cli(sandbox, "doctor", "--json", "--fix", "--root", str(root))
    data = json.loads(p.stdout)
    assert data["fixes"] == [] and p.returncode == 1
    assert "/nonexistent/qemu-aarch64" in live_register_string(sandbox, "qemu-aarch64")


# -- persistence, for real (binfmtctl.persist) -----------------------------------------------------
@pytest.mark.sandbox
def test_not_persistent_and_config_not_live_for_real(sandbox: Sandbox, root: Path) -> None:
    assert run_cli(sandbox, "install", "aarch64", "--no-test").returncode == 0
    riscv = render_register_str(
        table.get_target("riscv64").entry("/usr/bin/qemu-riscv64-static", "F")
    )
    write_config(root, riscv)
    _, found, _ = doctor(sandbox, root=root)
    assert by(found, "not-persistent", "qemu-aarch64").severity == "warning"
    x = by(found, "config-not-live", "qemu-riscv64")
    assert x.severity == "warning"
    p = run_cli(
        sandbox, "doctor", "--json", "--fix", "--root", str(root), env={"BINFMTCTL_CONFIG": ""}
    )
    data = json.loads(p.stdout)
    assert any(f["action"] == "apply-config" and f["ok"] for f in data["fixes"]), data
    assert "config-not-live" not in {f["code"] for f in data["findings"]}


@pytest.mark.sandbox
def test_systemd_binfmt_flush_and_tools_conflict_for_real(sandbox: Sandbox, root: Path) -> None:
    units = root / "lib/systemd/system"
    (units / "sysinit.target.wants").mkdir(parents=True)
    (units / "systemd-binfmt.service").write_text("[Unit]\n")
    os.symlink("../systemd-binfmt.service", units / "sysinit.target.wants/systemd-binfmt.service")
    (units / "binfmt-support.service").write_text("[Unit]\n")
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    os.symlink(
        "/lib/systemd/system/binfmt-support.service",
        root / "etc/systemd/system/multi-user.target.wants/binfmt-support.service",
    )
    (root / "usr/lib/binfmt.d").mkdir(parents=True)
    (root / "usr/lib/binfmt.d/qemu-riscv64.conf").write_text(
        render_register_str(table.get_target("riscv64").entry("/usr/bin/qemu-riscv64-static", "F"))
        + "\n"
    )
    assert run_cli(sandbox, "install", "aarch64", "riscv64", "--no-test").returncode == 0
    _, found, _ = doctor(sandbox, root=root)
    assert by(found, "systemd-binfmt-flush", "qemu-aarch64").severity == "warning"
    assert not [f for f in found if f.code == "systemd-binfmt-flush" and f.entry == "qemu-riscv64"]
    assert by(found, "persistence-tools-conflict").severity == "warning"


# -- as a non-root user ------------------------------------------------------------------------------
def test_doctor_as_nobody(user: User) -> None:
    """A real unprivileged user (uid 65534 when the suite runs as root) on a host where
    nothing is mounted: findings with fixes, no traceback, and --fix fails cleanly."""
    work = user.workdir()
    empty = work / "mnt"
    empty.mkdir()
    root = work / "root"
    root.mkdir()
    env = {"BINFMTCTL_MOUNT": str(empty)}
    p = user.binfmtctl("doctor", "--json", "--root", str(root), env=env)
    assert "Traceback" not in p.stderr, p.stderr
    data = json.loads(p.stdout)
    found = {f["code"]: f for f in data["findings"]}
    assert p.returncode == 1
    assert f"uid {user.uid} (not root)" in found["context"]["message"]
    assert "without CAP_SYS_ADMIN" in found["context"]["message"]
    assert "as root" in found["not-mounted"]["fix"] or "read-only" in found["not-mounted"]["fix"]
    p = user.binfmtctl("doctor", "--fix", "--root", str(root), env=env)
    assert "Traceback" not in p.stderr and p.returncode == 1
    assert "FAILED (mount)" in p.stdout


@pytest.mark.sandbox
def test_a_live_entry_a_boot_source_registers_differently_is_a_finding(
    sandbox: Sandbox, root: Path
) -> None:
    """install registered qemu-aarch64 with PF; the distro's binfmt.d file (OPF) wins at
    boot: doctor says so, names the file and the difference, and both ways out."""
    assert run_cli(sandbox, "install", "arm64", "--no-test").returncode == 0
    live = live_register_string(sandbox, "qemu-aarch64")
    assert live.endswith(":PF")
    distro = root / "usr/lib/binfmt.d/qemu-aarch64.conf"
    distro.parent.mkdir(parents=True)
    distro.write_text(live[: -len("PF")] + "OPF\n")
    rc, found, _ = doctor(sandbox, root=root)
    f = by(found, "boot-differs", "qemu-aarch64")
    assert rc == 1 and f.severity == "warning"
    assert str(distro) in f.message and "flags POF instead of PF" in f.message
    cfg = root / "etc/binfmt.d/zz-binfmtctl.conf"  # --root: the fix names the image's config
    assert f.fix.startswith(f"binfmtctl persist save --config {cfg} qemu-aarch64"), f.fix
    assert f"'{live[: -len('PF')]}POF'" in f.fix  # the kernel's flag order
    # the same registration at boot: no finding
    distro.write_text(live + "\n")
    rc, found, _ = doctor(sandbox, root=root)
    assert "boot-differs" not in {x.code for x in found}
    # binfmtctl's config holds it (applied last, so it wins): config-not-live's business
    distro.write_text(live[: -len("PF")] + "OPF\n")
    write_config(root, live)
    rc, found, _ = doctor(sandbox, root=root)
    assert "boot-differs" not in {x.code for x in found}


# -- the use case, without click ---------------------------------------------------------------------
def test_the_doctor_use_case_does_not_load_click() -> None:
    code = "import sys, binfmtctl.doctor, binfmtctl.doctor.run\nprint('click' in sys.modules)\n"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.stdout.strip() == "False", p.stdout + p.stderr


def test_doctor_report_json_and_exit_come_from_its_fields() -> None:
    from binfmtctl.cli.render import exit_code, jsonable
    from binfmtctl.errors import UsageError

    warn = doc.Finding("missing-f-flag", "warning", "qemu-arm", "m", "f")
    info = doc.Finding("kernel", "info", None, "m", "f")
    base = doc.DoctorReport("6.18", "/proc/sys/fs/binfmt_misc", "mounted", False, 1, (info,))
    assert jsonable(base) == {"findings": [info.to_json()]} and exit_code(base) == 0
    fixed = doc.FixResult("entry-disabled", "qemu-arm", "enable", True, "enabled qemu-arm")
    sick = doc.DoctorReport("6.18", "/x", "mounted", False, 1, (warn,), (fixed,))
    assert jsonable(sick) == {"findings": [warn.to_json()], "fixes": [fixed.to_json()]}
    assert exit_code(sick) == 1
    with pytest.raises(UsageError):
        doc.run_doctor(doc.DoctorRequest(kernel="four"))
