"""install / uninstall / test: the pure policy, then end to end in a private binfmt_misc.

The end-to-end tests use Debian's real qemu-user-static and the sandbox fixture: every
registration happens in a fresh user-namespace instance, never in the host's table.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from binfmtctl import install as inst
from binfmtctl import interpreters as it
from binfmtctl import probe, table
from binfmtctl.entry import Entry, parse_register
from binfmtctl.errors import UsageError
from binfmtctl.plan import plan_register
from binfmtctl.rules import KernelProfile
from binfmtctl.sandbox import Sandbox
from tests.conftest import ROOT, register_raw, run_cli, snapshot

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

MNT = "/proc/sys/fs/binfmt_misc"
K4_4 = KernelProfile((4, 4))
K5_10 = KernelProfile((5, 10))
K6_1 = KernelProfile((6, 1))
LOADER = "/lib64/ld-linux-x86-64.so.2"


def interp(
    target: str = "aarch64", *, static: bool = True, binfmt_p: bool = True
) -> it.InterpreterInfo:
    """An interpreter as found on an x86_64 Debian host (facts made up, decision real)."""
    t = table.get_target(target)
    short = t.interpreter.removeprefix("qemu-")
    path = f"/usr/libexec/qemu-binfmt/{short}-binfmt-P" if binfmt_p else f"/usr/bin/{t.interpreter}"
    facts = it.FileFacts(
        path,
        True,
        True,
        True,
        f"/usr/bin/{t.interpreter}-static",
        elf_arch="x86_64",
        linkage="static" if static else "dynamic",
        loader=None if static else LOADER,
    )
    return it.choose(t, [(facts, "test")], "x86_64", "debian")


def missing(target: str = "aarch64") -> it.InterpreterInfo:
    t = table.get_target(target)
    return it.choose(
        t, [(it.FileFacts("/nowhere/x", exists=False), "qemu-path")], "x86_64", "debian"
    )


def texts(notes: list[inst.Note]) -> str:
    return "\n".join(str(n) for n in notes)


# -- flag policy -----------------------------------------------------------------------------------
def test_default_flags_debian_binfmt_p_static() -> None:
    flags, notes = inst.default_flags(K6_1, interp())
    assert flags == "PF"
    assert not [n for n in notes if n.level != "info"]


def test_default_flags_plain_static_no_p() -> None:
    flags, notes = inst.default_flags(K6_1, interp(binfmt_p=False))
    assert flags == "F"
    assert "P" not in texts(notes).split(":", 1)[0]


def test_default_flags_old_kernel_drops_f_with_note() -> None:
    flags, notes = inst.default_flags(K4_4, interp())
    assert flags == "P"
    warning = [n for n in notes if n.level == "warning"]
    assert warning and "4.4" in warning[0].text and "4.8" in warning[0].text
    assert "F" in warning[0].text


def test_default_flags_dynamic_interpreter_warns() -> None:
    flags, notes = inst.default_flags(K6_1, interp(static=False, binfmt_p=False))
    assert flags == "F"
    warnings = [n.text for n in notes if n.level == "warning"]
    assert len(warnings) == 1
    assert "dynamically linked" in warnings[0] and LOADER in warnings[0]
    assert "container" in warnings[0] and "chroot" in warnings[0]


def test_default_flags_dynamic_on_old_kernel() -> None:
    flags, notes = inst.default_flags(K4_4, interp(static=False, binfmt_p=False))
    assert flags == ""
    assert "dynamically linked" in texts(notes) and "4.8" in texts(notes)


def test_credentials_gives_oc() -> None:
    flags, notes = inst.default_flags(K6_1, interp(), credentials=True)
    assert flags == "POCF"
    flags, notes = inst.default_flags(K6_1, interp(binfmt_p=False), credentials=True)
    assert flags == "OCF"
    assert any(n.level == "warning" and "privilege" in n.text for n in notes)


def test_open_binary_only_on_request() -> None:
    assert "O" not in inst.default_flags(K6_1, interp())[0]
    assert inst.default_flags(K6_1, interp(binfmt_p=False), open_binary=True)[0] == "OF"


def test_explicit_flags_override_and_validate() -> None:
    assert inst.choose_flags(K6_1, interp(binfmt_p=False), "f")[0] == "F"
    assert inst.choose_flags(K6_1, interp(binfmt_p=False), "")[0] == ""
    assert inst.choose_flags(K6_1, interp(binfmt_p=False), "FC")[0] == "OCF"
    with pytest.raises(UsageError, match=r"4\.8"):
        inst.choose_flags(K4_4, interp(), "PF")
    with pytest.raises(UsageError, match="unknown flag"):
        inst.choose_flags(K6_1, interp(), "PFX")


def test_explicit_flags_without_p_for_binfmt_p_is_an_error() -> None:
    flags, notes = inst.choose_flags(K6_1, interp(), "F")
    assert flags == "F"
    assert any(n.level == "error" and "-binfmt-P" in n.text for n in notes)


def test_explicit_p_without_auxv_support_warns() -> None:
    _, notes = inst.choose_flags(K5_10, interp(binfmt_p=False), "PF")
    assert any(n.level == "warning" and "5.12" in n.text for n in notes)
    _, notes = inst.choose_flags(K6_1, interp(binfmt_p=False), "PF")
    assert not [n for n in notes if n.level == "warning"]


# -- target resolution ---------------------------------------------------------------------------
def names(targets: list[table.Target]) -> list[str]:
    return [t.name for t in targets]


def test_aliases_resolve_and_dedupe() -> None:
    got, skipped = inst.resolve_targets(
        ["arm64", "linux/arm64", "linux/arm/v7", "armhf", "ppc64el", "mips64le", "aarch64"],
        "x86_64",
    )
    assert names(got) == ["aarch64", "arm", "ppc64le", "mips64el"]
    assert skipped == []


def test_all_is_every_target_minus_host_family() -> None:
    got, skipped = inst.resolve_targets(["all"], "x86_64")
    assert not {"i386", "i486", "x86_64"} & set(names(got))
    assert len(got) == len(table.targets()) - 3
    assert len(skipped) == 1 and not skipped[0].refused
    assert "i386, i486, x86_64" in skipped[0].name and "natively" in skipped[0].reason


def test_all_only_with_an_interpreter() -> None:
    present = {"aarch64", "riscv64", "x86_64"}
    got, skipped = inst.resolve_targets(["all"], "x86_64", available=lambda t: t.name in present)
    assert names(got) == ["aarch64", "riscv64"]
    absent = [s for s in skipped if "no QEMU interpreter" in s.reason]
    assert absent and "s390x" in absent[0].name and "x86_64" not in absent[0].name


def test_all_on_arm64_host_skips_arm_family() -> None:
    got, _ = inst.resolve_targets(["all"], "aarch64")
    assert "arm" not in names(got) and "aarch64" not in names(got)
    assert "x86_64" in names(got) and "armeb" in names(got)


def test_host_family_refused_unless_forced() -> None:
    got, skipped = inst.resolve_targets(["x86_64", "aarch64"], "x86_64")
    assert names(got) == ["aarch64"]
    assert len(skipped) == 1 and skipped[0].refused and skipped[0].name == "x86_64"
    assert "hijack native binaries" in skipped[0].reason
    assert "natively" in skipped[0].reason and "--force" in skipped[0].fix
    got, skipped = inst.resolve_targets(["i386"], "x86_64")  # same family
    assert got == [] and skipped[0].refused
    got, skipped = inst.resolve_targets(["x86_64"], "x86_64", force=True)
    assert names(got) == ["x86_64"] and skipped == []
    got, skipped = inst.resolve_targets(["armhf"], "arm64")
    assert got == [] and skipped[0].refused


def test_install_skips_native_platforms_with_a_note() -> None:
    """install's policy (skip_native): a named platform the host runs natively is left out with
    a note, not a refusal of the batch; i386 on x86_64 too (the same family, run natively)."""
    got, skipped = inst.resolve_targets(
        ["linux/arm,linux/arm64,linux/amd64"], "x86_64", skip_native=True
    )
    assert names(got) == ["arm", "aarch64"]
    [s] = skipped
    assert s.name == "x86_64" and s.native and not s.refused
    assert "natively" in s.reason and "--force" in s.fix
    got, skipped = inst.resolve_targets(["i386", "riscv64"], "x86_64", skip_native=True)
    assert names(got) == ["riscv64"] and [x.name for x in skipped] == ["i386"]
    assert skipped[0].native and not skipped[0].refused and "x86" in skipped[0].reason
    got, skipped = inst.resolve_targets(["linux/386"], "x86_64", skip_native=True, force=True)
    assert names(got) == ["i386"] and skipped == []
    got, skipped = inst.resolve_targets(["linux/amd64,amd64,x86_64"], "x86_64", skip_native=True)
    assert got == [] and [x.name for x in skipped] == ["x86_64"]  # said once


@pytest.mark.parametrize(
    ("args", "tokens"),
    [
        (["linux/arm,linux/arm64,linux/amd64"], ["linux/arm", "linux/arm64", "linux/amd64"]),
        (["arm64, riscv64 ,", ",s390x"], ["arm64", "riscv64", "s390x"]),
        (["aarch64", "qemu-*"], ["aarch64", "qemu-*"]),
        ([",", " "], []),
    ],
)
def test_split_target_list(args: list[str], tokens: list[str]) -> None:
    assert inst.split_target_list(args) == tokens


def test_globs_match_names_aliases_and_entry_names() -> None:
    every = table.targets()
    assert inst.match_pattern("qemu-*", every) == every
    assert [t.name for t in inst.match_pattern("mips64*", every)] == ["mips64", "mips64el"]
    assert [t.name for t in inst.match_pattern("LINUX/ARM*", every)] == ["arm", "aarch64"]
    assert [t.name for t in inst.match_pattern("qemu-riscv??", every)] == ["riscv32", "riscv64"]
    assert inst.match_pattern("nothing*", every) == []
    assert inst.is_pattern("qemu-*") and inst.is_pattern("arm[6]4") and not inst.is_pattern("arm")


def test_a_glob_is_all_narrowed() -> None:
    """A glob behaves as `all` over what it matches: the host's family and targets without an
    interpreter are skipped (not refused); a glob matching nothing is a usage error."""
    got, skipped = inst.resolve_targets(
        ["qemu-*"], "x86_64", available=lambda t: t.name in {"aarch64", "x86_64", "s390x"}
    )
    assert names(got) == ["s390x", "aarch64"]
    assert not any(s.refused for s in skipped)
    assert any(s.native and "x86_64" in s.name for s in skipped)
    got, _ = inst.resolve_targets(["mips64*,riscv64"], "x86_64")
    assert names(got) == ["mips64", "mips64el", "riscv64"]
    with pytest.raises(UsageError) as e:
        inst.resolve_targets(["arm65*"], "x86_64")
    assert e.value.exit_code == 2 and "matches no QEMU target" in str(e.value)


def test_test_selection_takes_lists_and_globs_over_the_live_targets() -> None:
    live = ["aarch64", "arm", "riscv64"]
    assert inst.select_test_targets([], live) == live
    assert inst.select_test_targets(["linux/arm64,linux/arm/v7"], live) == ["aarch64", "arm"]
    assert inst.select_test_targets(["qemu-*"], live) == live  # what is installed
    assert inst.select_test_targets(["qemu-a*", "s390x"], live) == ["aarch64", "arm", "s390x"]
    with pytest.raises(UsageError):
        inst.select_test_targets(["arm65"], live)


def test_uninstall_takes_comma_lists_and_globs() -> None:
    a64 = table.get_target("aarch64").entry("/usr/bin/qemu-aarch64-static", "F")
    arm = table.get_target("arm").entry("/usr/bin/qemu-arm-static", "F")
    wsl = parse_register(b":WSLInterop:M::MZ::/init:PF", HOST)
    live = [a64, arm, wsl]
    names_, _ = inst.uninstall_selection(["qemu-aarch64,arm"], live, set())
    assert names_ == ["qemu-aarch64", "qemu-arm"]
    names_, notes = inst.uninstall_selection(["*"], live, {"qemu-arm"})
    assert names_ == ["qemu-aarch64", "qemu-arm"]  # a glob never takes WSLInterop
    assert any("WSLInterop" in n.text and "name it exactly" in n.text for n in notes)
    names_, notes = inst.uninstall_selection(["qemu-mips*"], live, set())
    assert names_ == [] and "nothing to remove" in notes[0].text


def test_ignore_family_skips_only_the_host_cpu() -> None:
    got, skipped = inst.resolve_targets(["riscv32"], "riscv64", ignore_family=True)
    assert names(got) == ["riscv32"] and skipped == []
    got, _ = inst.resolve_targets(["all"], "riscv64", ignore_family=True)
    assert "riscv32" in names(got) and "riscv64" not in names(got)


def test_unknown_target_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as e:
        inst.resolve_targets(["arm65"], "x86_64")
    assert e.value.exit_code == 2


# -- entries -----------------------------------------------------------------------------------------
def test_plan_targets_builds_qemu_entries() -> None:
    targets = [table.get_target("aarch64"), table.get_target("riscv64")]
    plans = inst.plan_targets(
        targets, {"aarch64": interp("aarch64"), "riscv64": interp("riscv64")}, K6_1
    )
    entries = inst.build_entries(plans)
    assert [e.name for e in entries] == ["qemu-aarch64", "qemu-riscv64"]
    t = table.get_target("riscv64")
    assert entries[1].magic == t.magic and entries[1].mask == t.mask
    assert entries[1].interpreter == "/usr/libexec/qemu-binfmt/riscv64-binfmt-P"
    assert entries[1].flags == "PF" and entries[1].offset == 0 and entries[1].type == "M"


def test_plan_targets_missing_interpreter_fails_with_package() -> None:
    targets = [table.get_target("aarch64"), table.get_target("s390x")]
    plans = inst.plan_targets(targets, {"aarch64": interp(), "s390x": missing("s390x")}, K6_1)
    assert plans[0].ok and not plans[1].ok
    assert plans[1].fix is not None and "qemu-user-static" in plans[1].fix
    assert [e.name for e in inst.build_entries(plans)] == ["qemu-aarch64"]


def test_plan_targets_rejects_unknown_flags_first() -> None:
    with pytest.raises(UsageError):
        inst.plan_targets([table.get_target("arm")], {"arm": interp("arm")}, K4_4, flags="F")


def test_attach_actions_conflict_fails_the_target() -> None:
    plans = inst.plan_targets([table.get_target("arm")], {"arm": interp("arm")}, K6_1)
    entry = inst.build_entries(plans)[0]
    stale = Entry(entry.name, "M", "/usr/bin/qemu-arm", "", 0, entry.magic, entry.mask)
    inst.attach_actions(plans, plan_register([entry], [stale]))
    assert plans[0].action == "conflict" and not plans[0].ok and "--replace" in (plans[0].fix or "")
    plans = inst.plan_targets([table.get_target("arm")], {"arm": interp("arm")}, K6_1)
    inst.attach_actions(plans, plan_register([entry], [stale], owned={entry.name}))
    assert plans[0].action == "replace" and plans[0].ok


def test_group_notes_once_per_text() -> None:
    targets = [table.get_target(n) for n in ("aarch64", "arm", "aarch64_be")]
    infos = {
        "aarch64": interp("aarch64"),
        "arm": interp("arm"),
        "aarch64_be": interp("aarch64_be", binfmt_p=False),
    }
    grouped = dict(
        (n.text, targets_)
        for n, targets_ in inst.group_notes(inst.plan_targets(targets, infos, K6_1))
    )
    assert grouped[inst.NOTE_P] == ["aarch64", "arm"]
    assert grouped[inst.NOTE_F] == ["aarch64", "arm", "aarch64_be"]


# -- uninstall selection -------------------------------------------------------------------------------
def _live() -> list[Entry]:
    aarch64 = table.get_target("aarch64").entry("/usr/bin/qemu-aarch64-static", "F")
    arm = table.get_target("arm").entry("/usr/bin/qemu-arm-static", "F")
    return [
        parse_register(":WSLInterop:M::MZ::/init:P", HOST),
        parse_register(r":python3.11:M::\xa7\x0d\x0d\x0a::/usr/bin/python3.11:", HOST),
        parse_register(":jar:E::jar::/usr/bin/jexec:", HOST),
        aarch64,
        arm,
    ]


def test_uninstall_all_is_only_owned_qemu() -> None:
    chosen, notes = inst.uninstall_selection(["all"], _live(), owned={"qemu-aarch64", "WSLInterop"})
    assert chosen == ["qemu-aarch64"]
    assert any("qemu-arm" in n.text for n in notes)


def test_uninstall_named() -> None:
    live = _live()
    assert inst.uninstall_selection(["arm64"], live, owned=())[0] == ["qemu-aarch64"]
    assert inst.uninstall_selection(["WSLInterop"], live, owned=())[0] == ["WSLInterop"]
    chosen, notes = inst.uninstall_selection(["riscv64"], live, owned=())
    assert chosen == [] and "not registered" in notes[0].text
    with pytest.raises(UsageError):
        inst.uninstall_selection(["nonsense"], live, owned=())
    with pytest.raises(UsageError):
        inst.uninstall_selection(["status"], live, owned=())


def test_live_qemu_targets() -> None:
    live = _live()
    assert inst.live_qemu_targets(live) == ["arm", "aarch64"]
    disabled = [
        Entry(**{**e.__dict__, "enabled": False}) if e.name == "qemu-arm" else e for e in live
    ]
    assert inst.live_qemu_targets(disabled) == ["aarch64"]


# -- dry run: no root, no mount ------------------------------------------------------------------------
@pytest.mark.qemu
def test_dry_run_without_root_or_mount(tmp_path: Path) -> None:
    if not os.path.exists("/usr/libexec/qemu-binfmt/aarch64-binfmt-P"):
        pytest.skip("needs Debian's qemu-user-static")
    argv = [sys.executable, "-m", "binfmtctl", "--mount", str(tmp_path / "absent")]
    argv += ["install", "--dry-run", "--kernel", "4.4", "aarch64"]
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv:
        # as nobody, where nobody can import the dependencies (not from a root-only venv)
        drop = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        check = [*drop, sys.executable, "-c", "import click, elftools, yaml"]
        if subprocess.run(check, capture_output=True, check=False).returncode == 0:
            os.chmod(tmp_path, 0o755)
            argv = [*drop, *argv]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BINFMTCTL_STATE_DIR": str(tmp_path / "state"),
    }
    p = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "would register" in p.stdout and "4.8" in p.stdout
    line = next(x.strip() for x in p.stdout.splitlines() if x.strip().startswith(":qemu-aarch64:"))
    assert parse_register(line, HOST).flags == "P"
    assert not (tmp_path / "absent").exists()


# -- end to end, in a private binfmt_misc ---------------------------------------------------------------
needs_qemu = pytest.mark.skipif(
    not os.path.exists("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    or os.uname().machine != "x86_64",
    reason="needs Debian's qemu-user-static on an x86_64 host",
)
SIX = ["aarch64", "arm", "riscv64", "s390x", "ppc64le", "mips64el"]


def sandbox_run(box: Sandbox, script: str) -> subprocess.CompletedProcess[str]:
    p = box.run(["sh", "-c", script])
    return subprocess.CompletedProcess(
        p.args, p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    )


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    """A fresh, empty private binfmt_misc (the conftest ``sandbox``)."""
    return sandbox


def assert_markers(stdout: str, targets: list[str]) -> None:
    for t in targets:
        assert probe.marker(t).decode().strip() in stdout, t
        row = next(line for line in stdout.splitlines() if line.split()[:1] == [t])
        assert row.split()[1] == "ok", row


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_install_six_and_matrix(box: Sandbox) -> None:
    p = run_cli(box, "install", *SIX)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_markers(p.stdout, SIX)
    names_ = [n for n, _ in snapshot(box)]
    assert sorted(names_) == sorted(f"qemu-{t}" for t in SIX)
    for name, text in snapshot(box):
        assert "flags: PF" in text and "-binfmt-P" in text, (name, text)


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_install_all(box: Sandbox) -> None:
    p = run_cli(box, "install", "all", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(p.stdout)
    want = [t.name for t in table.targets() if t.family != "i386"]
    assert [t["target"] for t in data["targets"]] == want
    assert all(t["ok"] and t["action"] == "add" for t in data["targets"])
    results = data["test"]["targets"]
    assert [r["target"] for r in results] == want
    assert all(r["ok"] and r["handler"] == f"qemu-{r['target']}" for r in results), results
    assert all(r["output"] == probe.marker(r["target"]).decode() for r in results)
    assert "x86_64" in data["skipped"][0]["name"] and not data["skipped"][0]["refused"]
    live = {n for n, _ in snapshot(box)}
    assert live == {f"qemu-{t}" for t in want}


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_second_install_is_a_noop(box: Sandbox) -> None:
    assert run_cli(box, "install", "aarch64", "riscv64").returncode == 0
    before = snapshot(box)
    p = run_cli(box, "install", "aarch64", "riscv64")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "nothing to do" in p.stdout
    assert "unchanged" in p.stdout
    assert snapshot(box) == before
    data = json.loads(run_cli(box, "install", "arm64", "riscv64", "--json", "--no-test").stdout)
    assert data["changes"] == 0 and [t["action"] for t in data["targets"]] == ["keep", "keep"]
    assert snapshot(box) == before


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_uninstall_leaves_foreign_entries(box: Sandbox) -> None:
    register_raw(box, ":WSLInterop:M::MZ::/init:P")
    wsl = dict(snapshot(box))["WSLInterop"]
    assert run_cli(box, "install", "aarch64", "s390x", "--no-test").returncode == 0
    p = run_cli(box, "uninstall", "all")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "removed qemu-aarch64" in p.stdout and "removed qemu-s390x" in p.stdout
    assert snapshot(box) == [("WSLInterop", wsl)]
    p = run_cli(box, "uninstall", "all")
    assert p.returncode == 0 and "nothing to remove" in p.stdout
    assert snapshot(box) == [("WSLInterop", wsl)]


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_uninstall_all_leaves_qemu_entries_it_did_not_register(box: Sandbox) -> None:
    t = table.get_target("arm")
    line = f":qemu-arm:M::{t.magic_text}:{t.mask_text}:/usr/bin/qemu-arm-static:F"
    register_raw(box, line)
    assert run_cli(box, "install", "riscv64", "--no-test").returncode == 0
    p = run_cli(box, "uninstall", "all")
    assert p.returncode == 0 and "left qemu-arm" in p.stdout
    assert [n for n, _ in snapshot(box)] == ["qemu-arm"]
    p = run_cli(box, "uninstall", "arm")  # named: removed
    assert p.returncode == 0 and snapshot(box) == []


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_native_platforms_skipped_not_refused(box: Sandbox) -> None:
    """The host's own platforms (x86_64, and i386 on x86_64) are skipped with a note: nothing
    is registered for them, and the rest of the batch is installed."""
    p = run_cli(box, "install", "x86_64")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "skipped  x86_64" in p.stdout and "natively" in p.stdout
    assert "nothing to do" in p.stdout and "Traceback" not in p.stderr
    assert snapshot(box) == []
    p = run_cli(box, "install", "aarch64", "i386", "--json", "--no-test")
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(p.stdout)
    assert [s["name"] for s in data["skipped"]] == ["i386"] and data["skipped"][0]["native"]
    assert [n for n, _ in snapshot(box)] == ["qemu-aarch64"]


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_buildx_platform_list_installs_tests_and_uninstalls(box: Sandbox) -> None:
    """The list users paste from `docker buildx build --platform`: comma lists everywhere."""
    p = run_cli(box, "install", "linux/arm,linux/arm64,linux/amd64")
    assert p.returncode == 0, p.stdout + p.stderr
    assert_markers(p.stdout, ["arm", "aarch64"])
    assert "skipped  x86_64" in p.stdout and "natively" in p.stdout
    assert sorted(n for n, _ in snapshot(box)) == ["qemu-aarch64", "qemu-arm"]
    p = run_cli(box, "test", "linux/arm64,linux/arm/v7")
    assert p.returncode == 0, p.stdout + p.stderr
    assert_markers(p.stdout, ["aarch64", "arm"])
    p = run_cli(box, "test", "qemu-*", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(r["target"] for r in json.loads(p.stdout)["targets"]) == ["aarch64", "arm"]
    p = run_cli(box, "install", "mips64*", "--no-test")  # a glob, as tonistiigi/binfmt takes
    assert p.returncode == 0, p.stdout + p.stderr
    assert {"qemu-mips64", "qemu-mips64el"} <= {n for n, _ in snapshot(box)}
    p = run_cli(box, "uninstall", "qemu-mips*,linux/arm/v7")
    assert p.returncode == 0, p.stdout + p.stderr
    assert [n for n, _ in snapshot(box)] == ["qemu-aarch64"]


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_dry_run_kernel_4_4(box: Sandbox) -> None:
    p = run_cli(box, "install", "--dry-run", "--kernel", "4.4", "aarch64")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [x.strip() for x in p.stdout.splitlines() if x.strip().startswith(":qemu-aarch64:")]
    assert len(lines) == 1
    entry = parse_register(lines[0], HOST)
    assert entry.flags == "P" and "F" not in entry.flags
    assert entry.interpreter == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    assert "4.8" in p.stdout and "no F flag" in p.stdout
    assert snapshot(box) == []
    p = run_cli(box, "install", "--kernel", "4.4", "aarch64")
    assert p.returncode == 2 and "--dry-run" in p.stderr


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_missing_interpreter_fails_with_package(box: Sandbox, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    os.chmod(tmp_path, 0o755)
    p = run_cli(box, "install", "--qemu-path", str(empty), "aarch64")
    assert p.returncode == 1
    assert "qemu-user-static" in p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert snapshot(box) == []


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_missing_one_installs_the_others(box: Sandbox, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    (tmp_path / "qemu-riscv64-static").symlink_to("/usr/bin/qemu-riscv64-static")
    p = run_cli(box, "install", "--qemu-path", str(tmp_path), "riscv64", "s390x", "--json")
    assert p.returncode == 1
    data = json.loads(p.stdout)
    by = {t["target"]: t for t in data["targets"]}
    assert by["riscv64"]["ok"] and by["riscv64"]["flags"] == "F"
    assert not by["s390x"]["ok"] and "qemu-user-static" in by["s390x"]["fix"]
    assert [r["target"] for r in data["test"]["targets"]] == ["riscv64"]
    assert data["test"]["targets"][0]["ok"]
    assert [n for n, _ in snapshot(box)] == ["qemu-riscv64"]


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_test_command_after_install(box: Sandbox) -> None:
    assert run_cli(box, "install", "aarch64", "riscv64", "--no-test").returncode == 0
    p = run_cli(box, "test", "aarch64", "riscv64")
    assert p.returncode == 0, p.stdout + p.stderr
    assert_markers(p.stdout, ["aarch64", "riscv64"])
    data = json.loads(run_cli(box, "test", "--json").stdout)
    assert data == {
        "targets": [
            {
                "target": t,
                "ok": True,
                "handler": f"qemu-{t}",
                "output": probe.marker(t).decode(),
                "error": None,
            }
            for t in ("aarch64", "riscv64")
        ]
    }


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_test_command_reports_failures(box: Sandbox) -> None:
    p = run_cli(box, "test", "s390x", "--json")
    assert p.returncode == 1
    (r,) = json.loads(p.stdout)["targets"]
    assert r["ok"] is False and r["handler"] is None and "ENOEXEC" in r["error"]
    p = run_cli(box, "test")
    assert p.returncode == 1 and "no enabled QEMU entry" in p.stderr
    # a -binfmt-P interpreter registered without P: QEMU refuses, the matrix says why
    t = table.get_target("arm")
    register_raw(
        box, f":qemu-arm:M::{t.magic_text}:{t.mask_text}:/usr/libexec/qemu-binfmt/arm-binfmt-P:F"
    )
    p = run_cli(box, "test", "--json")
    (r,) = json.loads(p.stdout)["targets"]
    assert p.returncode == 1 and r["handler"] == "qemu-arm" and not r["ok"]
    assert "binfmt-misc" in r["error"]


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_stale_entry_replaced_only_when_owned_or_replace(box: Sandbox) -> None:
    t = table.get_target("aarch64")
    stale = f":qemu-aarch64:M::{t.magic_text}:{t.mask_text}:/usr/bin/qemu-aarch64-static:F"
    register_raw(box, stale)
    before = snapshot(box)
    p = run_cli(box, "install", "aarch64")
    assert p.returncode == 1 and "--replace" in p.stdout + p.stderr
    assert snapshot(box) == before
    p = run_cli(box, "install", "aarch64", "--replace")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "-binfmt-P" in dict(snapshot(box))["qemu-aarch64"]
    # now binfmtctl owns it: a different plan replaces it without --replace
    p = run_cli(box, "install", "aarch64", "--qemu-path", "/usr/bin")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "interpreter /usr/bin/qemu-aarch64-static" in dict(snapshot(box))["qemu-aarch64"]


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_explicit_flags_and_credentials(box: Sandbox) -> None:
    p = run_cli(box, "install", "riscv64", "--credentials", "--no-test")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "flags: POCF" in dict(snapshot(box))["qemu-riscv64"]
    p = run_cli(box, "install", "s390x", "--flags", "F")  # -binfmt-P without P: refused
    assert p.returncode == 1 and "requires P" in p.stdout
    assert "qemu-s390x" not in dict(snapshot(box))
    p = run_cli(box, "install", "s390x", "--flags", "FZ")
    assert p.returncode == 2 and "Traceback" not in p.stderr


@pytest.mark.sandbox
@pytest.mark.qemu
@needs_qemu
def test_concurrent_installs_end_as_one(box: Sandbox) -> None:
    def one(_: int) -> subprocess.CompletedProcess[str]:
        return run_cli(box, "install", "aarch64", "riscv64", "s390x", "--no-test")

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    for r in results:
        assert r.returncode == 0, r.stdout + r.stderr
    assert sum("done: 3 entries" in r.stdout for r in results) == 1
    assert sorted(n for n, _ in snapshot(box)) == ["qemu-aarch64", "qemu-riscv64", "qemu-s390x"]
