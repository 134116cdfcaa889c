"""binfmtctl run: rootless emulation. The decisions first (pure), then the real thing as nobody.

The live tests run ``binfmtctl run`` as a real unprivileged user: when the suite runs as root
(CI) they drop to uid/gid 65534 with ``setpriv``; as any other user they run as that user.
Python and the dependencies usually live where nobody cannot read them (here /root/.pyenv,
mode 0700), so a session fixture copies binfmtctl and its dependencies into a world-readable
directory and finds a Python that uid 65534 can execute (the running one, else the system's).
Nothing is ever mounted or written on the host's /proc/sys/fs/binfmt_misc: every registration
happens in the namespace ``run`` creates, and each live test checks the host table afterwards.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from binfmtctl import install as inst
from binfmtctl import interpreters as it
from binfmtctl import probe, rootless, table
from binfmtctl.binfmt_misc import DEFAULT_MOUNT
from binfmtctl.entry import parse_register
from binfmtctl.rootless import Availability, Facts
from binfmtctl.rules import KernelProfile
from binfmtctl.sandbox import Sandbox, Trial
from tests.conftest import NOBODY, ROOT, User, host_table, require_sandbox

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

K6_18 = KernelProfile((6, 18))
LOADER = "/lib64/ld-linux-x86-64.so.2"
SYSCTL_MAX = "user.max_user_namespaces"
SYSCTL_CLONE = "kernel.unprivileged_userns_clone"
SYSCTL_AA = "kernel.apparmor_restrict_unprivileged_userns"


# == availability (pure) ==========================================================================
def facts(
    release: str = "6.18.44",
    euid: int = 1000,
    sysctls: Mapping[str, str] | None = None,
    trial: Trial | None = None,
    **kw: bool,
) -> Facts:
    return Facts(release, euid, f"uid {euid}", dict(sysctls or {}), trial=trial, **kw)


def test_available_when_the_trial_mounts() -> None:
    ok, reason, fix = rootless.availability(facts(trial=Trial(0, "")))
    assert ok
    assert "6.18" in reason and "tried" in reason
    assert "binfmtctl run" in fix


@pytest.mark.parametrize("release", ["6.6.30", "5.15.0-91-generic", "4.4.0", "2.6.78-fc"])
def test_refused_before_linux_6_7(release: str) -> None:
    a = rootless.availability(facts(release, trial=None))
    assert not a.available
    major_minor = ".".join(release.split(".")[:2])
    assert f"Linux {major_minor}" in a.reason and "6.7" in a.reason
    assert "upgrade" in a.fix and "sudo binfmtctl install" in a.fix


def test_linux_6_7_is_enough() -> None:
    assert rootless.availability(facts("6.7.0", trial=Trial(0, ""))).available


def test_refused_without_unshare() -> None:
    a = rootless.availability(facts(unshare=False))
    assert not a.available and "unshare" in a.reason and "util-linux" in a.fix


def test_max_user_namespaces_zero_refuses_everyone_even_root() -> None:
    for euid in (0, 1000):
        a = rootless.availability(facts(euid=euid, sysctls={SYSCTL_MAX: "0"}))
        assert not a.available
        assert "user.max_user_namespaces = 0" in a.reason
        assert "sysctl -w user.max_user_namespaces=" in a.fix


def test_max_user_namespaces_zero_inside_a_container_says_where_to_fix() -> None:
    trial = Trial(1, "unshare: unshare failed: No space left on device\n")
    a = rootless.availability(facts(euid=0, sysctls={SYSCTL_MAX: "0"}, trial=trial, nested=True))
    assert not a.available
    assert "user.max_user_namespaces = 0" in a.reason
    assert "already runs in a user namespace" in a.fix


def test_unprivileged_userns_clone_binds_users_not_root() -> None:
    off = {SYSCTL_CLONE: "0", SYSCTL_MAX: "15000"}
    a = rootless.availability(facts(euid=1000, sysctls=off))
    assert not a.available
    assert "kernel.unprivileged_userns_clone = 0" in a.reason
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in a.fix
    assert rootless.availability(facts(euid=0, sysctls=off)).available


def test_apparmor_restriction_refuses_users() -> None:
    aa = {SYSCTL_AA: "1"}
    a = rootless.availability(facts(euid=1000, sysctls=aa))
    assert not a.available
    assert "AppArmor" in a.reason and "apparmor_restrict_unprivileged_userns = 1" in a.reason
    assert "apparmor_restrict_unprivileged_userns=0" in a.fix and "profile" in a.fix
    # Ubuntu's symptom: the namespace is created, writing the uid map is denied
    trial = Trial(1, "unshare: write failed /proc/self/uid_map: Operation not permitted\n")
    b = rootless.availability(facts(euid=1000, sysctls=aa, trial=trial))
    assert not b.available and "AppArmor" in b.reason
    # a namespace without capabilities: the mount is what fails
    trial = Trial(32, "mount: /proc/sys/fs/binfmt_misc: permission denied.\n")
    c = rootless.availability(facts(euid=1000, sysctls=aa, trial=trial))
    assert not c.available and "AppArmor" in c.reason


def test_a_successful_trial_beats_a_restrictive_looking_sysctl() -> None:
    """An AppArmor profile may allow this program: the trial is the ground truth."""
    a = rootless.availability(facts(euid=1000, sysctls={SYSCTL_AA: "1"}, trial=Trial(0, "")))
    assert a.available


def test_seccomp_or_unknown_unshare_failure_is_explained() -> None:
    trial = Trial(1, "unshare: unshare failed: Operation not permitted\n")
    a = rootless.availability(facts(trial=trial))
    assert not a.available
    assert "Operation not permitted" in a.reason
    assert "seccomp" in a.fix


def test_kernel_without_binfmt_misc() -> None:
    trial = Trial(32, "mount: /proc/sys/fs/binfmt_misc: unknown filesystem type 'binfmt_misc'.\n")
    a = rootless.availability(facts(trial=trial))
    assert not a.available and "no binfmt_misc" in a.reason and "modprobe binfmt_misc" in a.fix


def test_mount_denied_by_a_security_module() -> None:
    trial = Trial(32, "mount: /proc/sys/fs/binfmt_misc: permission denied.\n")
    a = rootless.availability(facts(trial=trial))
    assert not a.available
    assert "mounting binfmt_misc in it failed" in a.reason and "permission denied" in a.reason
    assert "seccomp" in a.fix or "AppArmor" in a.fix


def test_availability_is_a_named_tuple_with_json() -> None:
    a = rootless.availability(facts(trial=Trial(0, "")))
    assert isinstance(a, tuple) and isinstance(a, Availability)
    assert a.to_json() == {"available": True, "reason": a.reason, "fix": a.fix}


# == the run plan (pure) ==========================================================================
def interp(target: str, *, static: bool = True, binfmt_p: bool = True) -> it.InterpreterInfo:
    """An interpreter as found on an x86_64 Debian host (facts made up, decision real)."""
    t = table.get_target(target)
    short = t.interpreter.removeprefix("qemu-")
    path = f"/usr/libexec/qemu-binfmt/{short}-binfmt-P" if binfmt_p else f"/opt/q/{t.interpreter}"
    f = it.FileFacts(
        path,
        True,
        True,
        True,
        path,
        elf_arch="x86_64",
        linkage="static" if static else "dynamic",
        loader=None if static else LOADER,
    )
    return it.choose(t, [(f, "test")], "x86_64", "debian")


def missing(target: str) -> it.InterpreterInfo:
    t = table.get_target(target)
    gone = it.FileFacts(f"/empty/{t.interpreter}-static", exists=False)
    return it.choose(t, [(gone, "qemu-path")], "x86_64", "debian", "/empty")


def plan(
    requested: Sequence[str],
    infos: Mapping[str, it.InterpreterInfo],
    *,
    allow_dynamic: bool = False,
) -> rootless.RunPlan:
    """What prepare_run does, with the interpreters made up."""
    chosen, skipped = inst.resolve_targets(
        list(requested), "x86_64", available=lambda t: t.name in infos and infos[t.name].found
    )
    plans = inst.plan_targets(chosen, {t.name: infos[t.name] for t in chosen}, K6_18)
    return rootless.plan_run(
        requested, plans, skipped, allow_dynamic=allow_dynamic, install_hint="apt-get install X"
    )


def test_named_targets_get_install_s_entries() -> None:
    rp = plan(
        ["arm64", "linux/riscv64"], {"aarch64": interp("aarch64"), "riscv64": interp("riscv64")}
    )
    assert rp.ok and not rp.refusals
    assert [e.name for e in rp.entries] == ["qemu-aarch64", "qemu-riscv64"]
    assert rp.targets == ["aarch64", "riscv64"]
    t = table.get_target("aarch64")
    a = rp.entries[0]
    assert (a.magic, a.mask, a.flags) == (t.magic, t.mask, "PF")
    assert a.interpreter == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    plain = plan(["s390x"], {"s390x": interp("s390x", binfmt_p=False)})
    assert plain.entries[0].flags == "F"  # P only where the interpreter expects it


def test_run_takes_a_buildx_comma_list() -> None:
    """run -t linux/arm64,riscv64: the list's targets are named ones (a missing interpreter for
    one refuses the run, as for -t given twice)."""
    infos = {"aarch64": interp("aarch64"), "riscv64": interp("riscv64")}
    rp = plan(["linux/arm64,riscv64"], infos)
    assert rp.ok and rp.targets == ["aarch64", "riscv64"]
    assert rootless.named_targets(["linux/arm64, riscv64", "qemu-s*"]) == {"aarch64", "riscv64"}
    rp = plan(
        ["linux/arm64,riscv64"], {"aarch64": interp("aarch64"), "riscv64": missing("riscv64")}
    )
    assert not rp.ok and [r.target for r in rp.refusals] == ["riscv64"]


def test_named_target_without_interpreter_refuses_the_run() -> None:
    rp = plan(["aarch64", "riscv64"], {"aarch64": interp("aarch64"), "riscv64": missing("riscv64")})
    assert not rp.ok
    [r] = rp.refusals
    assert r.target == "riscv64"
    assert "no usable QEMU interpreter for riscv64 in /empty" in r.reason
    assert "apt-get install" in r.fix and "--qemu-path" in r.fix


def test_all_skips_targets_without_interpreter_and_the_host_family() -> None:
    rp = plan(["all"], {"aarch64": interp("aarch64"), "s390x": interp("s390x")})
    assert rp.ok
    assert rp.targets == sorted(rp.targets, key=[t.name for t in table.targets()].index)
    assert set(rp.targets) == {"aarch64", "s390x"}
    reasons = {s.name: s.reason for s in rp.skipped}
    assert "x86_64" in next(k for k in reasons if "i386" in k)
    assert any("no QEMU interpreter installed" in r for r in reasons.values())


def test_named_dynamic_interpreter_is_refused_and_says_what_happens() -> None:
    rp = plan(["aarch64"], {"aarch64": interp("aarch64", static=False, binfmt_p=False)})
    assert not rp.ok
    [r] = rp.refusals
    assert r.target == "aarch64"
    assert "dynamically linked" in r.reason and LOADER in r.reason
    assert "F" in r.reason and "container or chroot" in r.reason
    assert "would work" in r.reason  # fine on this filesystem
    assert "qemu-user-static" in r.fix and "--allow-dynamic" in r.fix


def test_allow_dynamic_registers_it() -> None:
    infos = {"aarch64": interp("aarch64", static=False, binfmt_p=False)}
    rp = plan(["aarch64"], infos, allow_dynamic=True)
    assert rp.ok and [e.name for e in rp.entries] == ["qemu-aarch64"]
    assert rp.entries[0].flags == "F"


def test_all_skips_a_dynamic_interpreter_with_the_reason() -> None:
    infos = {"aarch64": interp("aarch64"), "s390x": interp("s390x", static=False)}
    rp = plan(["all"], infos)
    assert rp.ok and rp.targets == ["aarch64"]
    s = next(s for s in rp.skipped if s.name == "s390x")
    assert "dynamically linked" in s.reason and not s.refused and "--allow-dynamic" in s.fix


def test_host_family_named_is_refused_without_a_force_hint() -> None:
    rp = plan(["x86_64", "aarch64"], {"aarch64": interp("aarch64")})
    assert not rp.ok
    [r] = rp.refusals
    assert r.target == "x86_64" and "natively" in r.reason
    assert "--force" not in r.fix and "drop --target x86_64" in r.fix


def test_nothing_to_emulate_is_refused() -> None:
    rp = plan(["all"], {})
    assert not rp.ok and not rp.entries
    [r] = rp.refusals
    assert "no usable QEMU interpreter" in r.reason and "apt-get install X" in r.fix


def test_unknown_target_is_a_usage_error() -> None:
    with pytest.raises(table.UnknownTargetError):
        rootless.named_targets(["arm46"])


def test_plan_json() -> None:
    rp = plan(["aarch64"], {"aarch64": interp("aarch64")})
    j = rp.to_json()
    assert j["ok"] is True and j["refusals"] == []
    [reg] = j["register"]
    assert parse_register(reg.encode(), HOST) == rp.entries[0]
    assert j["targets"][0]["registered"] is True


def test_inner_argv_carries_the_exact_entries() -> None:
    rp = plan(["aarch64", "riscv64"], {"aarch64": interp("aarch64"), "riscv64": interp("riscv64")})
    argv = rootless.inner_argv(["py", "-m", "binfmtctl"], rp.entries, ["sh", "-c", "--x"])
    assert argv[:5] == ["py", "-m", "binfmtctl", "_sandbox-init", "--rootless"]
    assert argv[-4:] == ["--", "sh", "-c", "--x"]
    hexes = [argv[i + 1] for i, a in enumerate(argv) if a == "--entry-hex"]
    assert [parse_register(bytes.fromhex(h), HOST) for h in hexes] == list(rp.entries)


# == COMMAND could not be executed (pure) =========================================================
def test_not_found_is_127() -> None:
    status, msg, fix = rootless.explain_exec_failure("mkae", errno.ENOENT, exists=False)
    assert status == 127 and "mkae: command not found" in msg and "PATH" in fix
    status, msg, _ = rootless.explain_exec_failure("./a.out", errno.ENOENT, exists=False)
    assert status == 127 and "no such file" in msg


def test_existing_file_with_missing_loader_is_127_and_explained() -> None:
    status, msg, fix = rootless.explain_exec_failure("./app", errno.ENOENT, exists=True)
    assert status == 127 and "loader" in msg and "loader" in fix


def test_foreign_program_without_its_target_names_the_option() -> None:
    status, msg, fix = rootless.explain_exec_failure(
        "./hello", errno.ENOEXEC, exists=True, foreign="riscv64", registered=["aarch64"]
    )
    assert status == 126
    assert "riscv64 program" in msg and "did not register riscv64" in msg
    assert "--target riscv64" in fix


def test_other_exec_failures_are_126() -> None:
    status, msg, _ = rootless.explain_exec_failure("./x", errno.ENOEXEC, exists=True)
    assert status == 126 and "exec format error" in msg and "#!" in msg
    status, msg, fix = rootless.explain_exec_failure("./x", errno.EACCES, exists=True)
    assert status == 126 and "permission denied" in msg and "chmod +x" in fix
    status, msg, _ = rootless.explain_exec_failure(
        "./x", errno.ETXTBSY, exists=True, strerror="Text file busy"
    )
    assert status == 126 and "Text file busy" in msg


# == a dynamically linked interpreter, without a toolchain ========================================
def dynamic_forwarder(target: str) -> bytes:
    """A dynamically linked x86-64 executable (PT_INTERP = glibc's loader) that execs ``target``
    with its own argv and environment: a real dynamic "QEMU" wrapping the static one."""
    base, ehsize, phentsize, phnum = 0x400000, 64, 56, 4
    interp = LOADER.encode() + b"\0"
    interp_off = ehsize + phnum * phentsize
    dyn_off = (interp_off + len(interp) + 7) & ~7
    strtab_off = dyn_off + 5 * 16
    symtab_off = strtab_off + 8
    # DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_NULL: the least glibc's loader accepts
    dyn = struct.pack(
        "<qQqQqQqQqQ", 5, base + strtab_off, 6, base + symtab_off, 10, 1, 11, 24, 0, 0
    )
    tables = dyn + b"\0" * 8 + b"\0" * 24  # an empty string table, the null symbol
    code_off = dyn_off + len(tables)
    code = bytearray()
    code += b"\x48\x8b\x3c\x24"  # mov rdi, [rsp]          argc
    code += b"\x48\x8d\x74\x24\x08"  # lea rsi, [rsp+8]    argv
    code += b"\x48\x8d\x54\xfe\x08"  # lea rdx, [rsi+rdi*8+8]  envp
    lea = len(code)
    code += b"\x48\x8d\x3d\0\0\0\0"  # lea rdi, [rip+path]
    code += b"\xb8\x3b\x00\x00\x00\x0f\x05"  # execve(path, argv, envp)
    code += b"\xbf\x7f\x00\x00\x00\xb8\xe7\x00\x00\x00\x0f\x05"  # exit_group(127)
    code[lea + 3 : lea + 7] = struct.pack("<i", len(code) - (lea + 7))
    code += target.encode() + b"\0"
    total = code_off + len(code)
    ident = b"\x7fELF\x02\x01\x01".ljust(16, b"\0")
    head = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,
        62,
        1,
        base + code_off,
        ehsize,
        0,
        0,
        ehsize,
        phentsize,
        phnum,
        64,
        0,
        0,
    )

    def ph(kind: int, flags: int, off: int, size: int, align: int) -> bytes:
        return struct.pack("<IIQQQQQQ", kind, flags, off, base + off, base + off, size, size, align)

    phdrs = (
        ph(1, 5, 0, total, 0x1000)  # PT_LOAD r-x, everything
        + ph(3, 4, interp_off, len(interp), 1)  # PT_INTERP
        + ph(2, 6, dyn_off, len(dyn), 8)  # PT_DYNAMIC
        + ph(0x6474E551, 6, 0, 0, 16)  # PT_GNU_STACK rw-
    )
    image = (head + phdrs + interp).ljust(dyn_off, b"\0") + tables + bytes(code)
    assert len(image) == total
    return image


# == live, as an unprivileged user =================================================================
needs_qemu = pytest.mark.skipif(
    not os.path.exists("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    or os.uname().machine != "x86_64",
    reason="needs Debian's qemu-user-static on an x86_64 host",
)
STATIC_QEMU = "/usr/bin/qemu-aarch64-static"
FOREIGN = ["aarch64", "riscv64", "s390x", "arm", "ppc64le", "mips64el"]


@pytest.fixture(scope="session")
def rootless_ok(user: User) -> None:
    """Fail (CI) or skip (elsewhere) where this host forbids rootless emulation, with why."""
    p = user.run(
        [
            user.python,
            "-c",
            "from binfmtctl import rootless as r; "
            "a = r.availability(r.gather_facts(unprivileged=False)); "
            "print(int(a.available)); print(a.reason); print(a.fix)",
        ]
    )
    assert p.returncode == 0, p.stderr
    ok, reason, fix = p.stdout.splitlines()[:3]
    require_sandbox(None if ok == "1" else (reason, fix))


@pytest.fixture(scope="session")
def probes(user: User) -> Path:
    """binfmtctl's probe per target, where the user can read and run them."""
    d = user.base / "probes"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    for t in [*FOREIGN, "x86_64"]:
        probe.write_probe(t, d)
    return d


def state_dirs(uid: int, tmp: str | None = None) -> set[str]:
    """binfmtctl state directories ``uid`` owns in ``tmp`` (default: the temporary directory)."""
    tmp = tmp or tempfile.gettempdir()
    out = set()
    for n in os.listdir(tmp):
        if n.startswith("binfmtctl-state-"):
            try:
                if os.lstat(os.path.join(tmp, n)).st_uid == uid:
                    out.add(n)
            except OSError:
                continue
    return out


def clean(p: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert "Traceback" not in p.stderr, p.stderr
    return p


F = TypeVar("F", bound=Callable[..., object])


def live(fn: F) -> F:
    """A test of the real thing: the kernel, Debian's QEMU, the unprivileged user."""
    for mark in (
        pytest.mark.usefixtures("rootless_ok"),
        needs_qemu,
        pytest.mark.qemu,
        pytest.mark.sandbox,
    ):
        fn = mark(fn)
    return fn


def test_the_user_is_really_unprivileged(user: User) -> None:
    p = user.run(["sh", "-c", "id -u; grep CapEff /proc/self/status; touch x"])
    uid, caps = p.stdout.splitlines()[:2]
    assert int(uid) != 0 and int(uid) == user.uid
    assert caps.split()[1] == "0000000000000000"
    assert p.returncode != 0 and "Permission denied" in p.stderr  # base is not the user's


@pytest.mark.parametrize("target", ["aarch64", "riscv64"])
@live
def test_run_prints_the_probe_markers(user: User, probes: Path, target: str) -> None:
    p = clean(
        user.binfmtctl(
            "run",
            "--target",
            "aarch64",
            "--target",
            "riscv64",
            "--",
            str(probes / f"probe-{target}"),
        )
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.encode() == probe.marker(target)
    assert p.stderr == ""  # quiet: stdout and stderr belong to COMMAND


@live
def test_a_shell_script_runs_several_foreign_binaries(user: User, probes: Path) -> None:
    """Default targets (every installed QEMU, minus the host's family); COMMAND's children."""
    script = user.base / "several.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        + "".join(f'"{probes}/probe-{t}"\n' for t in FOREIGN)
        + f'"{probes}/probe-x86_64"\n'  # native binaries still run natively
        + "echo all-done\n"
    )
    script.chmod(0o755)
    p = clean(user.binfmtctl("run", "--", str(script)))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines == [probe.marker(t).decode().strip() for t in [*FOREIGN, "x86_64"]] + ["all-done"]


@live
def test_exit_status_of_command_is_returned(user: User, probes: Path) -> None:
    p = clean(user.binfmtctl("run", "-t", "arm64", "--", "sh", "-c", "exit 42"))
    assert p.returncode == 42
    p = clean(
        user.binfmtctl(
            "run", "-t", "arm64", "--", "sh", "-c", f"{probes}/probe-aarch64 >/dev/null; exit 3"
        )
    )
    assert p.returncode == 3
    for status in (1, 2):  # the statuses binfmtctl uses elsewhere pass through untouched
        assert (
            user.binfmtctl("run", "-t", "arm64", "--", "sh", "-c", f"exit {status}").returncode
            == status
        )
    # a signal too: the chain is exec all the way down, COMMAND is the process
    p = user.binfmtctl("run", "-t", "arm64", "--", "sh", "-c", "kill -TERM $$")
    assert p.returncode == -15


@live
def test_cwd_environment_stdin_and_files_pass_through(user: User) -> None:
    work = user.workdir()
    p = clean(
        user.binfmtctl(
            "run",
            "-t",
            "arm64",
            "--",
            "sh",
            "-c",
            'pwd; echo "$MARK"; id -u; cat; echo made > inside.txt; echo "$BINFMTCTL_SANDBOX"',
            cwd=work,
            env={"MARK": "the user's env"},
            input="from stdin\n",
        )
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [str(work), "the user's env", "0", "from stdin", "1"]
    made = work / "inside.txt"
    assert made.read_text() == "made\n"
    assert made.stat().st_uid == user.uid  # root inside, the user outside


@live
def test_children_inherit_a_nested_namespace_and_a_chroot(user: User, probes: Path) -> None:
    """A container-like child: its own user namespace without its own binfmt_misc, and a
    root directory without QEMU (F: the kernel opened the interpreter at registration)."""
    jail = user.workdir()
    shutil.copy(probes / "probe-riscv64", jail / "probe-riscv64")
    script = (
        f'unshare --user --map-root-user --mount "{probes}/probe-aarch64"; '
        f'chroot "{jail}" /probe-riscv64'
    )
    p = clean(user.binfmtctl("run", "-t", "arm64", "-t", "riscv64", "--", "sh", "-c", script))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["binfmtctl-probe:aarch64", "binfmtctl-probe:riscv64"]


@live
def test_command_not_found_127_not_executable_126(user: User, probes: Path) -> None:
    p = clean(user.binfmtctl("run", "-t", "arm64", "--", "no-such-command-xyz"))
    assert p.returncode == 127
    assert "no-such-command-xyz: command not found" in p.stderr and "fix:" in p.stderr
    plain = user.base / "not-executable"
    plain.write_text("#!/bin/sh\necho ran\n")
    plain.chmod(0o644)
    p = clean(user.binfmtctl("run", "-t", "arm64", "--", str(plain)))
    assert p.returncode == 126 and "permission denied" in p.stderr and p.stdout == ""


@live
def test_foreign_binary_of_an_unregistered_target_says_which(user: User, probes: Path) -> None:
    p = clean(user.binfmtctl("run", "-t", "arm64", "--", str(probes / "probe-riscv64")))
    assert p.returncode == 126
    assert "riscv64 program" in p.stderr and "--target riscv64" in p.stderr


@live
def test_refused_when_no_interpreter_in_qemu_path(user: User) -> None:
    empty = user.workdir()
    p = clean(
        user.binfmtctl(
            "run", "--qemu-path", str(empty), "-t", "arm64", "--", "sh", "-c", "echo RAN"
        )
    )
    assert p.returncode == 125 and p.stdout == ""
    assert f"no usable QEMU interpreter for aarch64 in {empty}" in p.stderr
    assert "fix:" in p.stderr and "--qemu-path" in p.stderr
    p = clean(user.binfmtctl("run", "--qemu-path", str(empty), "--", "sh", "-c", "echo RAN"))
    assert p.returncode == 125 and p.stdout == "" and "nothing to emulate" in p.stderr


@live
def test_dynamic_interpreter_refused_and_what_happens_with_it(user: User, probes: Path) -> None:
    qdir = user.base / "dynamic-qemu"
    qdir.mkdir(mode=0o755, exist_ok=True)
    fwd = qdir / "qemu-aarch64"
    fwd.write_bytes(dynamic_forwarder(STATIC_QEMU))
    fwd.chmod(0o755)
    aarch64 = str(probes / "probe-aarch64")
    # it really is a working, dynamically linked QEMU
    assert user.run([str(fwd), aarch64]).stdout.encode() == probe.marker("aarch64")
    assert user.binfmtctl("which", "--json", str(fwd)).stdout.count('"static": false') == 1

    args = ["run", "--qemu-path", str(qdir), "-t", "arm64"]
    p = clean(user.binfmtctl(*args, "--", "sh", "-c", "echo RAN"))
    assert p.returncode == 125 and p.stdout == ""
    assert "dynamically linked" in p.stderr and LOADER in p.stderr
    assert "container or chroot" in p.stderr and "--allow-dynamic" in p.stderr

    # what the refusal says happens: fine on this filesystem, broken in a chroot
    jail = user.workdir()
    shutil.copy(aarch64, jail / "probe-aarch64")
    script = f'{aarch64}; chroot "{jail}" /probe-aarch64; echo "chroot status $?"'
    p = clean(user.binfmtctl(*args, "--allow-dynamic", "--", "sh", "-c", script))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["binfmtctl-probe:aarch64", "chroot status 127"]
    assert "No such file or directory" in p.stderr
    # the same chroot with the static QEMU works
    p = clean(user.binfmtctl("run", "-t", "arm64", "--", "sh", "-c", script))
    marker = probe.marker("aarch64").decode().strip()
    assert p.stdout.splitlines() == [marker, marker, "chroot status 0"]


@live
def test_refused_when_user_namespaces_are_exhausted(user: User) -> None:
    """user.max_user_namespaces = 0, set for real in a user namespace the test owns."""
    inner = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" -m binfmtctl run -t arm64 -- sh -c "echo RAN"'
    p = clean(user.run(["unshare", "--user", "--map-root-user", "sh", "-c", inner, user.python]))
    assert p.returncode == 125, p.stderr
    assert p.stdout == ""
    assert "user.max_user_namespaces = 0" in p.stderr
    assert "fix:" in p.stderr and "max_user_namespaces" in p.stderr.split("fix:")[1]


@live
def test_refused_on_a_kernel_older_than_6_7(user: User) -> None:
    """setarch --uname-2.6 makes uname(2) report 2.6.x: the old-kernel refusal for real."""
    argv = ["setarch", os.uname().machine, "--uname-2.6", user.python, "-m", "binfmtctl"]
    p = clean(user.run([*argv, "run", "-t", "arm64", "--", "sh", "-c", "echo RAN"]))
    assert p.returncode == 125 and p.stdout == ""
    assert "Linux 2.6" in p.stderr and "6.7" in p.stderr and "fix: upgrade" in p.stderr


@live
@pytest.mark.parametrize(
    "args, expect",
    [
        ([], "give the command to run"),
        (["--bogus", "--", "true"], "No such option"),
        (["-t", "arm46", "--", "true"], "unknown target 'arm46'"),
        (["-t", "x86_64", "--", "true"], "natively"),
        (["--json", "--", "true"], "--dry-run"),
    ],
)
def test_binfmtctl_s_own_failures_are_125(user: User, args: list[str], expect: str) -> None:
    p = clean(user.binfmtctl("run", *args))
    assert p.returncode == 125, p.stderr
    assert expect in p.stderr and p.stdout == ""


@live
def test_dry_run_json(user: User) -> None:
    import json

    p = clean(user.binfmtctl("run", "--dry-run", "--json", "-t", "arm64", "-t", "riscv64"))
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["availability"]["available"] is True
    assert j["ok"] is True and j["refusals"] == []
    assert [parse_register(r.encode(), HOST).name for r in j["register"]] == [
        "qemu-aarch64",
        "qemu-riscv64",
    ]
    p = clean(user.binfmtctl("run", "--dry-run", "--json", "--qemu-path", "/nonexistent-dir"))
    assert p.returncode == 125 and json.loads(p.stdout)["ok"] is False


@live
def test_host_table_is_unchanged_and_nothing_is_left_behind(user: User, probes: Path) -> None:
    before = host_table()
    # a temporary directory of this run's own: other runs (parallel suites) use /tmp too
    tmp = user.workdir()
    p = clean(
        user.binfmtctl(
            "run",
            "--",
            "sh",
            "-c",
            f"ls {DEFAULT_MOUNT}; ls -d $TMPDIR/binfmtctl-state-*; {probes}/probe-s390x",
            env={"TMPDIR": str(tmp)},
        )
    )
    assert p.returncode == 0, p.stderr
    inside = p.stdout.splitlines()
    assert "qemu-aarch64" in inside and "register" in inside  # the private table was populated
    assert any(f"{tmp}/binfmtctl-state-" in line for line in inside)  # made while it ran
    assert host_table() == before
    assert state_dirs(user.uid, str(tmp)) == set()
    assert list(tmp.iterdir()) == []


@pytest.mark.sandbox
@needs_qemu
def test_doctor_facing_availability_on_this_host() -> None:
    """What doctor will call: as root, the answer is for an unprivileged user (tried as 65534)."""
    f = rootless.gather_facts()
    a = rootless.availability(f)
    if os.geteuid() == 0:
        assert f.euid == NOBODY and "unprivileged" in f.user
    assert f.trial is not None
    require_sandbox(None if a.available else (a.reason, a.fix))
    assert a.available and f.trial.ok and "tried" in a.reason


@live
def test_all_skips_a_dynamic_qemu_with_a_warning_and_runs_the_rest(
    user: User, probes: Path
) -> None:
    qdir = user.workdir()
    fwd = qdir / "qemu-aarch64"
    fwd.write_bytes(dynamic_forwarder(STATIC_QEMU))
    fwd.chmod(0o755)
    (qdir / "qemu-riscv64").symlink_to("/usr/bin/qemu-riscv64-static")
    p = clean(user.binfmtctl("run", "--qemu-path", str(qdir), "--", str(probes / "probe-riscv64")))
    assert p.returncode == 0, p.stderr
    assert p.stdout.encode() == probe.marker("riscv64")
    assert "skipped  aarch64" in p.stderr and "dynamically linked" in p.stderr
    p = clean(user.binfmtctl("run", "--qemu-path", str(qdir), "--", str(probes / "probe-aarch64")))
    assert p.returncode == 126 and "--target aarch64" in p.stderr


@live
def test_verbose_reports_on_stderr_only(user: User, probes: Path) -> None:
    p = clean(user.binfmtctl("run", "-v", "-t", "arm64", "--", str(probes / "probe-aarch64")))
    assert p.returncode == 0
    assert p.stdout.encode() == probe.marker("aarch64")
    assert "qemu-aarch64" in p.stderr and "/usr/libexec/qemu-binfmt/aarch64-binfmt-P" in p.stderr
    assert "not root on the host" in p.stderr


@live
def test_a_failure_inside_the_namespace_is_125_too(user: User) -> None:
    """The registration step inside the namespace (normally pre-checked outside) failing:
    an F entry whose interpreter does not exist."""
    bad = b":bmx-test:M::BMX1::/nonexistent/qemu:F".hex()
    inner = [user.python, "-m", "binfmtctl", "_sandbox-init", "--rootless", "--entry-hex", bad]
    tmp = user.workdir()  # this run's own: parallel suites use /tmp too
    p = clean(
        user.run(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--mount",
                *inner,
                "--",
                "sh",
                "-c",
                "echo RAN",
            ],
            env={"TMPDIR": str(tmp)},
        )
    )
    assert p.returncode == 125, p.stderr
    assert p.stdout == "" and "/nonexistent/qemu" in p.stderr and "fix:" in p.stderr
    assert state_dirs(user.uid, str(tmp)) == set()


@live
def test_gather_facts_where_uid_65534_does_not_exist(user: User) -> None:
    """Root of a user namespace that maps only itself (a container): the trial as 65534 is
    impossible, so it is tried as this user, and the answer says for whom."""
    code = (
        "from binfmtctl import rootless as r; f = r.gather_facts(); a = r.availability(f); "
        "print(f.euid, f.trial, f.nested, a.available); print(a.reason)"
    )
    p = clean(user.run(["unshare", "--user", "--map-root-user", user.python, "-c", code]))
    assert p.returncode == 0, p.stderr
    first, reason = p.stdout.splitlines()
    # uid 65534 cannot be become here, so the trial runs as this user and says so
    assert first == "0 Trial(returncode=0, stderr='') True True"
    assert "(tried)" in reason and "root of a user namespace" in reason


@live
def test_an_inherited_binfmt_misc_mount_is_never_written(user: User, probes: Path) -> None:
    """A new mount namespace starts with a copy of its parent's binfmt_misc mount; writing
    through it would reach the parent's table (the host's, on a host that has it mounted).
    Simulated safely: an outer namespace with its own populated instance runs `run`."""
    script = (
        f"mount -t binfmt_misc binfmt_misc {DEFAULT_MOUNT} && "
        f'echo ":outer-marker:M::BMX9::/bin/true:" > {DEFAULT_MOUNT}/register && '
        f'"$0" -m binfmtctl run -t arm64 -- sh -c "ls {DEFAULT_MOUNT}; $1"; '
        f'echo "status $?"; ls {DEFAULT_MOUNT}'
    )
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, user.python]
    p = clean(user.run([*argv, str(probes / "probe-aarch64")]))
    assert p.returncode == 0, p.stderr
    inside, outside = p.stdout.split("status 0\n")
    assert inside.splitlines() == ["qemu-aarch64", "register", "status", "binfmtctl-probe:aarch64"]
    assert sorted(outside.splitlines()) == ["outer-marker", "register", "status"]


def test_availability_inside_a_namespace_without_uid_65534(sandbox: Sandbox) -> None:
    """In a user namespace that maps only root, setpriv cannot become 65534: the
    answer falls back to this user instead of blaming a security module."""
    code = "from binfmtctl import rootless as r; a = r.availability(r.gather_facts()); print(a.available, a.reason)"
    p = sandbox.run([sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert out.startswith("True"), out
    assert "security module" not in out
    assert "(tried)" in out and "uid 65534" not in out, out
