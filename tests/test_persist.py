"""Persistence: the config, apply (the boot path), the unit, export / import, boot sources.

Pure parts are tested directly. Everything that registers runs for real in a private
binfmt_misc (the ``sandbox`` fixture; a simulated reboot is a second, fresh sandbox) and
checks the kernel's own entry files. Only the ``systemctl`` calls that need a running
systemd (this machine's PID 1 is not systemd) are faked, with pytest-subprocess, at
:func:`binfmtctl.persist.systemctl`; ``systemd-analyze verify`` and
``/lib/systemd/systemd-binfmt`` run for real.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from binfmtctl import hijack, persist
from binfmtctl.entry import Entry, parse_register, render_register
from binfmtctl.errors import BinfmtctlError, UsageError
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.sandbox import Sandbox
from binfmtctl.trust import Verdict
from tests.conftest import AARCH64, ROOT, S390X_GONE, WSL, host_cli, register_raw, run_cli, snapshot

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

MNT = "/proc/sys/fs/binfmt_misc"
SYSTEMD_BINFMT = next(
    (
        p
        for p in ("/lib/systemd/systemd-binfmt", "/usr/lib/systemd/systemd-binfmt")
        if os.path.exists(p)
    ),
    "/lib/systemd/systemd-binfmt",
)
PYTHON = r":python3.11:M::\xa7\x0d\x0d\x0a::/usr/bin/python3.11:"


def entry(line: str) -> Entry:
    return parse_register(line, HOST)


def systemd_binfmt(box: Sandbox, *files: str | Path) -> None:
    """The real systemd-binfmt, given files: registers them without flushing."""
    p = box.run([SYSTEMD_BINFMT, *map(str, files)])
    assert p.returncode == 0, p.stderr.decode()


def cli_env(config: Path, **extra: str) -> dict[str, str]:
    return {"BINFMTCTL_CONFIG": str(config), **extra}


# -- the config: pure edits --------------------------------------------------------------------------
def test_config_with_adds_replaces_keeps_identical_and_comments() -> None:
    text = b"# mine, keep me\n:t1:M::ABC::/bin/true:\n\n; also a comment\n:t2:E::foo::/bin/true:\n"
    new, change = persist.config_with(
        text,
        [
            entry(":t1:M::ABC::/bin/true:"),  # identical: line kept as written
            entry(":t2:E::bar::/bin/true:"),  # differs: replaced in place
            entry(":t3:M::XYZ::/bin/true:"),  # new: appended
        ],
        "cfg",
    )
    assert change.unchanged == ["t1"] and change.replaced == ["t2"] and change.added == ["t3"]
    assert new == (
        b"# mine, keep me\n:t1:M::ABC::/bin/true:\n\n; also a comment\n:t2:E::bar::/bin/true:\n"
        b":t3:M::XYZ::/bin/true:\n"
    )
    again, change2 = persist.config_with(new, [entry(":t3:M::XYZ::/bin/true:")])
    assert again == new and not change2.changed


def test_config_with_starts_a_new_config_with_the_header() -> None:
    new, change = persist.config_with(b"", [entry(AARCH64)])
    assert new.startswith(b"# binfmtctl's desired state")
    assert new.endswith(render_register(entry(AARCH64)) + b"\n")
    assert change.added == ["qemu-aarch64"]


def test_config_without_drops_every_definition_and_keeps_comments() -> None:
    text = b"# head\n:a:M::A::/bin/true:\n:b:M::B::/bin/true:\n:a:M::C::/bin/true:\n"
    new, change = persist.config_without(text, ["a", "zz"])
    assert new == b"# head\n:b:M::B::/bin/true:\n"
    assert change.removed == ["a"] and change.missing == ["zz"]
    empty, _ = persist.config_without(b":b:M::B::/bin/true:\n", ["b"])
    assert empty.startswith(b"# binfmtctl's desired state") and b":b:" not in empty


def test_parse_config_names_file_and_line_and_keeps_the_later_duplicate() -> None:
    text = b"# c\n:ok:M::AB::/bin/true:\n:bad:X::AB::/bin/true:\n:ok:M::CD::/bin/true:\n"
    entries, problems = persist.parse_config(text, "/etc/binfmt.d/zz-binfmtctl.conf")
    assert [e.magic for e in entries] == [b"CD"]
    assert [str(p).split(":", 2)[:2] for p in problems] == [
        ["/etc/binfmt.d/zz-binfmtctl.conf", "3"],
        ["/etc/binfmt.d/zz-binfmtctl.conf", "4"],
    ]
    assert "invalid rule (EINVAL): type" in problems[0].message
    assert "also defined on line 2" in problems[1].message


def test_read_config_raises_naming_file_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.conf"
    cfg.write_bytes(b":good:M::AB::/bin/true:\n:qemu-arm:M::\\x7fELF::/usr/bin/qemu-arm:Z\n")
    with pytest.raises(BinfmtctlError) as exc:
        persist.read_config(cfg)
    assert f"{cfg}:2: invalid rule" in exc.value.format_message()
    assert "fix:" in exc.value.format_message()
    assert persist.read_config(tmp_path / "missing.conf") == []


def test_write_config_is_atomic_root_owned_0644(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "binfmt.d" / "zz-binfmtctl.conf"
    old_umask = os.umask(0o077)  # the mode must not depend on the caller's umask
    try:
        persist.write_config(cfg, [entry(AARCH64), entry(PYTHON)])
    finally:
        os.umask(old_umask)
    st = cfg.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert [e.name for e in persist.read_config(cfg)] == ["qemu-aarch64", "python3.11"]
    assert os.listdir(cfg.parent) == ["zz-binfmtctl.conf"]  # no temp file left behind
    inode = st.st_ino
    persist.add_entries(cfg, [entry(WSL)])
    assert cfg.stat().st_ino != inode  # replaced by rename, never rewritten in place


def test_atomic_write_refuses_to_replace_a_dev_null_mask(tmp_path: Path) -> None:
    cfg = tmp_path / "zz-binfmtctl.conf"
    cfg.symlink_to(os.devnull)
    with pytest.raises(BinfmtctlError, match="masked"):
        persist.add_entries(cfg, [entry(WSL)])
    assert os.readlink(cfg) == os.devnull


def test_config_path_default_env_override_and_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINFMTCTL_CONFIG", raising=False)
    assert persist.config_path() == Path("/etc/binfmt.d/zz-binfmtctl.conf")
    assert persist.config_path("/img") == Path("/img/etc/binfmt.d/zz-binfmtctl.conf")
    monkeypatch.setenv("BINFMTCTL_CONFIG", "/etc/binfmtctl/x.conf")
    assert persist.config_path() == Path("/etc/binfmtctl/x.conf")
    assert persist.config_path("/img") == Path("/img/etc/binfmtctl/x.conf")
    assert persist.config_path("/img", "/img/etc/y.conf") == Path("/img/etc/y.conf")
    assert persist.unit_path("/img") == Path("/img/etc/systemd/system/binfmtctl.service")
    assert persist.UNIT_NAME == "binfmtctl.service"


def test_default_config_sorts_after_distro_binfmt_d_files() -> None:
    """systemd-binfmt applies files by name and the later same-named rule wins."""
    name = os.path.basename(persist.DEFAULT_CONFIG)
    distro = [f for f in os.listdir("/usr/lib/binfmt.d") if f.endswith(".conf")]
    assert distro and all(f < name for f in distro)


# -- apply: pure ---------------------------------------------------------------------------------------
def test_plan_apply_adds_keeps_replaces_and_ignores_other_names() -> None:
    config = [
        entry(":a:M::A::/bin/true:"),
        entry(":b:M::B::/bin/true:F"),
        entry(":c:M::C::/bin/true:"),
    ]
    live = [entry(WSL), entry(":b:M::B::/bin/true:"), entry(":c:M::C::/bin/true:")]
    actions = persist.plan_apply(config, live)
    assert [(a.kind, a.entry.name) for a in actions] == [
        ("add", "a"),
        ("replace", "b"),
        ("keep", "c"),
    ]
    assert actions[1].old == live[1] and "differs from the config" in actions[1].note
    assert all(a.entry.name != "WSLInterop" for a in actions)


def test_pending_mount_finds_a_late_file_system() -> None:
    fstab = "# comment\nUUID=1 / ext4 defaults 0 1\nUUID=2 /opt ext4 defaults 0 2\nnas:/x /mnt/nas nfs _netdev 0 0\n"
    mountinfo = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    assert persist.pending_mount("/opt/qemu/bin/qemu-aarch64-static", fstab, mountinfo) == "/opt"
    assert persist.pending_mount("/usr/bin/qemu-aarch64-static", fstab, mountinfo) is None
    mounted = mountinfo + "30 22 8:2 / /opt rw - ext4 /dev/sda2 rw\n"
    assert persist.pending_mount("/opt/qemu/bin/qemu-aarch64-static", fstab, mounted) is None
    assert persist.pending_mount("/mnt/nas/q", fstab, mountinfo) == "/mnt/nas"


def test_preflight_blocks_a_missing_f_interpreter_and_warns_without_f() -> None:
    missing = {"/opt/q/qemu-s390x-static", "/opt/q/lli"}
    entries = [
        entry(":qemu-s390x:M::\\x7fELF::/opt/q/qemu-s390x-static:F"),
        entry(":llvm:M::BC::/opt/q/lli:"),
        entry(AARCH64),
    ]
    blocked, warnings = persist.preflight(
        entries,
        exec_check=lambda p: "ENOENT" if p in missing else None,
        native=hijack.NativeSamples(),
        trust_of=lambda p: Verdict(p, p),
        late_mount=lambda p: "/opt" if p.startswith("/opt/") else None,
    )
    assert list(blocked) == ["qemu-s390x"]
    b = blocked["qemu-s390x"]
    assert "/opt/q/qemu-s390x-static is missing (ENOENT)" in b.message
    assert "RequiresMountsFor=/opt" in b.fix
    assert "llvm" in warnings and "registered anyway" in warnings["llvm"][0]
    fix = persist.missing_interpreter_fix(entries[0], None)
    assert "qemu-user-static" in fix and "persist remove qemu-s390x" in fix


def test_preflight_refuses_an_entry_that_matches_the_host() -> None:
    host = entry(":x86:M::\\x7fELF\\x02\\x01\\x01::/bin/true:")
    blocked, _ = persist.preflight(
        [host],
        exec_check=lambda p: None,
        native=hijack.gather(),
        trust_of=lambda p: Verdict(p, p),
        late_mount=lambda p: None,
    )
    assert "host's safety" in blocked["x86"].message and "--force" in blocked["x86"].fix
    forced, _ = persist.preflight(
        [host],
        exec_check=lambda p: None,
        native=hijack.gather(),
        trust_of=lambda p: Verdict(p, p),
        late_mount=lambda p: None,
        force=True,
    )
    assert forced == {}


# -- import / export formats -----------------------------------------------------------------------------
ADMIN_JAR = b"openjdk-17\nmagic\n0\nPK\\x03\\x04\n\n/usr/bin/jexec\n\nno\nno\nno\n"


def test_detect_format() -> None:
    assert persist.detect_format(b"# c\n" + AARCH64.encode() + b"\n") == "binfmt.d"
    assert (
        persist.detect_format(Path("/usr/share/binfmts/qemu-aarch64").read_bytes())
        == "update-binfmts"
    )
    assert persist.detect_format(ADMIN_JAR) == "binfmts-admin"
    assert persist.detect_format(b'{"entries": []}') == "json"


def test_parse_binfmts_admin_database_file() -> None:
    e = persist.parse_binfmts_admin("jar", ADMIN_JAR, HOST)
    assert (e.name, e.type, e.magic, e.interpreter, e.flags) == (
        "jar",
        "M",
        b"PK\x03\x04",
        "/usr/bin/jexec",
        "",
    )
    fex = b"fex\nmagic\n0\n\\x7fELF\\x02\n\\xff\\xff\\xff\\xff\\xff\n/usr/bin/FEXInterpreter\n\nyes\nyes\nyes\nexpose_interpreter optional\n"
    e2 = persist.parse_binfmts_admin("fex", fex, HOST)
    assert e2.flags == "POCF" and e2.mask == b"\xff" * 5
    ext = persist.parse_binfmts_admin("exe", b"wine\nextension\n\nexe\n\n/usr/bin/wine\n", HOST)
    assert (ext.type, ext.extension) == ("E", "exe")
    detector = persist.parse_binfmts_admin(
        "d", b"p\nmagic\n0\nMZ\n\n/usr/bin/x\n/usr/bin/detect\n", HOST
    )
    assert detector.interpreter == persist.RUN_DETECTORS


def test_update_binfmts_import_file_matches_debian_semantics() -> None:
    got, problems, _ = persist.parse_import(
        Path("/usr/share/binfmts/qemu-aarch64").read_bytes(), "/usr/share/binfmts/qemu-aarch64"
    )
    assert not problems
    assert got[0].entry.same_registration(
        entry(AARCH64)
    )  # credentials no, preserve yes, fix_binary yes


def test_export_json_and_update_binfmts_round_trip_through_import(tmp_path: Path) -> None:
    entries = [
        entry(AARCH64),
        entry(":t2:E::foo::/bin/true:"),
        entry(":t3:M:4:AB:\\xff\\x0f:/bin/true:PC"),
    ]
    js = persist.render_export(entries, "json", "test")[""]
    got, problems, _ = persist.parse_import(js, "x.json")
    assert not problems and [g.entry for g in got] == entries
    for name, data in persist.render_export(entries, "update-binfmts").items():
        (tmp_path / name).write_bytes(data)
    got2, problems2, _ = persist.read_import([str(tmp_path)])
    assert not problems2 and sorted(g.entry.name for g in got2) == sorted(e.name for e in entries)
    assert all(any(g.entry == e for g in got2) for e in entries)
    d = persist.render_export(entries, "binfmt.d", "test")[""]
    got3, problems3, _ = persist.parse_import(d, "x.conf")
    assert not problems3 and [g.entry for g in got3] == entries


def test_export_order_is_oldest_first_and_owned_by_default() -> None:
    live = [
        entry(":new:M::A::/bin/true:"),
        entry(WSL),
        entry(":old:M::B::/bin/true:"),
    ]  # newest first
    assert [e.name for e in persist.export_entries(live, ["new", "old"])] == ["old", "new"]
    assert [e.name for e in persist.export_entries(live, [], include_all=True)] == [
        "old",
        "WSLInterop",
        "new",
    ]


def test_read_import_refuses_a_name_defined_differently_by_two_sources(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text(AARCH64 + "\n")
    other = tmp_path / "b"
    other.mkdir()
    shutil.copy("/usr/share/binfmts/qemu-aarch64", other / "qemu-aarch64")
    (other / "qemu-aarch64").write_text(
        (other / "qemu-aarch64").read_text().replace("preserve yes", "preserve no")
    )
    _, problems, _ = persist.read_import([str(tmp_path / "a.conf"), str(other)])
    assert len(problems) == 1 and "qemu-aarch64" in problems[0].message
    assert "separate runs" in problems[0].fix


def test_read_import_binary_and_empty_inputs(tmp_path: Path) -> None:
    _, problems, _ = persist.read_import(["/bin/true"])
    assert [p.message for p in problems] == [
        "binary data, not a binfmt.d, update-binfmts or JSON file"
    ]
    (tmp_path / "empty.conf").write_text("# only a comment\n")
    with pytest.raises(UsageError, match="no entries in"):
        persist.read_import([str(tmp_path / "empty.conf")])
    (tmp_path / "d").mkdir()
    with pytest.raises(UsageError, match="nothing to import"):
        persist.read_import([str(tmp_path / "d")])


def test_import_files_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "b.conf").write_text(AARCH64 + "\n")
    (tmp_path / "a.conf").write_text(PYTHON + "\n")
    (tmp_path / "README").write_text("not a rule\n")
    (tmp_path / "old.conf~").write_text("x\n")
    (tmp_path / "masked.conf").symlink_to(os.devnull)
    assert [p.name for p in persist.import_files(str(tmp_path))] == ["a.conf", "b.conf"]
    with pytest.raises(UsageError, match="no such file"):
        persist.import_files(str(tmp_path / "nope"))


def test_uninstall_config_names() -> None:
    config = [entry(AARCH64), entry(PYTHON), entry(S390X_GONE)]
    assert persist.uninstall_config_names(["arm64"], [], config) == ["qemu-aarch64"]
    assert persist.uninstall_config_names(["python3.11"], [], config) == ["python3.11"]
    assert persist.uninstall_config_names(["all"], ["qemu-aarch64"], config) == [
        "qemu-aarch64",
        "qemu-s390x",
    ]
    assert persist.uninstall_config_names(["riscv64"], ["qemu-riscv64"], config) == []


# -- boot sources -------------------------------------------------------------------------------------
def _tree(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)


def test_persistent_sources_follow_systemd_override_and_mask_rules(tmp_path: Path) -> None:
    r = tmp_path
    arm_etc = AARCH64.replace(":PF", ":F")
    _tree(
        r,
        {
            "usr/lib/binfmt.d/qemu-aarch64.conf": AARCH64 + "\n",
            "etc/binfmt.d/qemu-aarch64.conf": arm_etc + "\n",  # same file name: overrides
            "usr/lib/binfmt.d/python3.11.conf": PYTHON + "\n",
            "usr/lib/binfmt.d/empty.conf": ":hidden:M::HH::/bin/true:\n",
            "run/binfmt.d/empty.conf": "",  # an empty file masks too
            "usr/lib/binfmt.d/bad.conf": ":broken:X::\n",  # refused by systemd-binfmt: no source
            "usr/share/qemu/binfmt.d/qemu-riscv64.conf": ":qemu-riscv64:M::\\x7fELF::/usr/bin/q:\n",
            "etc/binfmt.d/README": ":notconf:M::NN::/bin/true:\n",
            "etc/binfmt.d/zz-binfmtctl.conf": ":mine:M::MM::/bin/true:\n",
            "var/lib/binfmts/jar": ADMIN_JAR,
            "usr/share/binfmts/jar": Path("/usr/share/binfmts/jar").read_bytes(),
            "usr/share/binfmts/qemu-aarch64": Path("/usr/share/binfmts/qemu-aarch64").read_bytes(),
        },
    )
    (r / "etc/binfmt.d/python3.11.conf").symlink_to("/dev/null")  # masked
    # absolute symlinks resolve inside the root, as on the booted image
    (r / "usr/lib/binfmt.d/qemu-riscv64.conf").symlink_to(
        "/usr/share/qemu/binfmt.d/qemu-riscv64.conf"
    )
    (r / "lib").symlink_to("/usr/lib")
    sources = persist.persistent_sources(str(r))
    assert sources == {
        "jar": [f"{r}/var/lib/binfmts/jar", f"{r}/usr/share/binfmts/jar"],
        "mine": [f"{r}/etc/binfmt.d/zz-binfmtctl.conf"],
        "qemu-aarch64": [
            f"{r}/etc/binfmt.d/qemu-aarch64.conf",
            f"{r}/usr/share/binfmts/qemu-aarch64",
        ],
        "qemu-riscv64": [f"{r}/usr/lib/binfmt.d/qemu-riscv64.conf"],
    }
    kinds = {(s.name, s.kind) for s in persist.boot_sources(str(r))}
    assert ("mine", "binfmtctl") in kinds and ("jar", "update-binfmts") in kinds


def test_persistent_sources_on_this_host() -> None:
    sources = persist.persistent_sources()
    assert "/usr/lib/binfmt.d/qemu-aarch64.conf" in sources["qemu-aarch64"]
    assert "/usr/share/binfmts/qemu-aarch64" in sources["qemu-aarch64"]
    assert not any(p.startswith("/lib/") for paths in sources.values() for p in paths)


def test_persistent_sources_include_a_config_outside_binfmt_d(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINFMTCTL_CONFIG", "/etc/binfmtctl/binfmtctl.conf")
    _tree(tmp_path, {"etc/binfmtctl/binfmtctl.conf": WSL + "\n"})
    assert persist.persistent_sources(str(tmp_path)) == {
        "WSLInterop": [f"{tmp_path}/etc/binfmtctl/binfmtctl.conf"]
    }


# -- the unit ----------------------------------------------------------------------------------------
def test_unit_template_from_the_package_then_the_checkout(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "binfmtctl.service").write_text("[Service]\nExecStart=/x apply\n")
    assert (
        persist.locate_unit_template(pkg, tmp_path / "nowhere")
        == pkg / "data" / "binfmtctl.service"
    )
    found = persist.locate_unit_template(tmp_path / "empty", ROOT)
    assert found == ROOT / "systemd" / "binfmtctl.service"
    with pytest.raises(BinfmtctlError, match="reinstall"):
        persist.locate_unit_template(tmp_path / "empty", tmp_path / "nowhere")


def test_the_wheel_ships_the_unit() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    table = text.split("[tool.hatch.build.targets.wheel.force-include]", 1)[1].split("\n[", 1)[0]
    assert '"systemd/binfmtctl.service" = "binfmtctl/data/binfmtctl.service"' in table


def test_shipped_unit_has_the_required_ordering() -> None:
    text = (ROOT / "systemd" / "binfmtctl.service").read_text()
    after = " ".join(persist.unit_settings(text, "After"))
    before = " ".join(persist.unit_settings(text, "Before"))
    for unit in (
        "proc-sys-fs-binfmt_misc.automount",
        "proc-sys-fs-binfmt_misc.mount",
        "local-fs.target",
        "systemd-binfmt.service",
    ):
        assert unit in after
    for unit in ("docker.service", "containerd.service", "podman.service"):
        assert unit in before
    assert persist.unit_settings(text, "PartOf") == ["systemd-binfmt.service"]
    assert persist.unit_settings(text, "Type") == ["oneshot"]
    assert persist.unit_settings(text, "RemainAfterExit") == ["yes"]
    assert persist.unit_settings(text, "ExecStop") == []  # never a global flush on stop
    assert persist.unit_settings(text, "WantedBy") == [persist.WANTED_BY]


def test_render_unit_quotes_exec_start_and_round_trips() -> None:
    template = (ROOT / "systemd" / "binfmtctl.service").read_text()
    cmd = ["/opt/my tools/bin/python3", "-m", "binfmtctl"]
    text = persist.render_unit(
        template, cmd, config="/etc/bin fmt/100%.conf", env={"PYTHONPATH": "/src/a b"}
    )
    (line,) = persist.unit_settings(text, "ExecStart")
    assert (
        line == '"/opt/my tools/bin/python3" -m binfmtctl apply --config "/etc/bin fmt/100%%.conf"'
    )
    argv, env = persist.unit_exec(text)
    assert argv == [*cmd, "apply", "--config", "/etc/bin fmt/100%.conf"]
    assert env == {"PYTHONPATH": "/src/a b"}
    plain = persist.render_unit(template, ["/usr/bin/binfmtctl"], mount="/mnt/b")
    assert persist.unit_settings(plain, "ExecStart") == ["/usr/bin/binfmtctl --mount /mnt/b apply"]
    assert persist.unit_settings(plain, "Environment") == []


def test_self_command_prefers_the_running_console_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "bin" / "binfmtctl"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "persist", "enable"])
    assert persist.self_command() == ([str(script)], {})
    monkeypatch.setattr(sys, "argv", ["/somewhere/binfmtctl/__main__.py"])
    argv, env = persist.self_command()
    assert argv == [sys.executable, "-m", "binfmtctl"]
    assert env == {"PYTHONPATH": str(ROOT)}  # this checkout is not in site-packages


def test_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The shipped unit, with ExecStart= rendered for a real binfmtctl, verifies cleanly."""
    cmd, env = persist.self_command()
    text = persist.render_unit(persist.unit_template(), cmd, env=env)
    unit = tmp_path / persist.UNIT_NAME
    unit.write_text(text)
    p = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == "" and p.stdout == ""  # no warnings at all


def test_persist_enable_and_disable_on_an_offline_root(tmp_path: Path) -> None:
    root = tmp_path / "image"
    root.mkdir()
    p = host_cli("persist", "enable", "--root", str(root))
    assert p.returncode == 0, p.stderr
    unit = root / "etc/systemd/system/binfmtctl.service"
    link = root / "etc/systemd/system/sysinit.target.wants/binfmtctl.service"
    cfg = root / "etc/binfmt.d/zz-binfmtctl.conf"
    for f in (unit, cfg):
        st = f.stat()
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644, f
        assert (st.st_uid, st.st_gid) == (0, 0), f
    assert os.readlink(link) == "/etc/systemd/system/binfmtctl.service"  # as systemctl enable
    assert link.lstat().st_uid == 0
    for d in (link.parent, cfg.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755
    argv, env = persist.unit_exec(unit.read_text())
    assert argv == [sys.executable, "-m", "binfmtctl", "apply"]  # default config: no --config
    assert env == {"PYTHONPATH": str(ROOT)}
    assert "systemctl" not in p.stdout  # --root never runs systemctl
    assert f"ExecStart= runs {sys.executable}, which is not in {root}" in p.stdout
    v = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert v.returncode == 0 and v.stderr == "", v.stderr
    st = host_cli("persist", "status", "--root", str(root), "--json")
    assert st.returncode == 1, st.stdout  # this Python is not in the image
    status = json.loads(st.stdout)
    assert status["enabled"] is True and status["live"] is None
    assert [p["message"] for p in status["problems"]] == [
        f"the unit's ExecStart= program {sys.executable} is missing"
    ]
    # an image builder names the binfmtctl the image has
    stub = root / "usr/local/bin/binfmtctl"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    img = host_cli(
        "persist", "enable", "--root", str(root), "--binfmtctl", "/usr/local/bin/binfmtctl"
    )
    assert img.returncode == 0 and "which is not in" not in img.stdout
    assert persist.unit_exec(unit.read_text()) == (["/usr/local/bin/binfmtctl", "apply"], {})
    ok = host_cli("persist", "status", "--root", str(root), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["problems"] == []
    again = host_cli(
        "persist", "enable", "--root", str(root), "--binfmtctl", "/usr/local/bin/binfmtctl"
    )
    assert again.returncode == 0 and "already enabled" in again.stdout  # idempotent
    cfg.write_text(cfg.read_text() + AARCH64 + "\n")
    off = host_cli("persist", "disable", "--root", str(root))
    assert off.returncode == 0, off.stderr
    assert not unit.exists() and not link.is_symlink()
    assert cfg.exists() and "kept the config" in off.stdout  # the desired state is kept
    st2 = host_cli("persist", "status", "--root", str(root), "--json")
    assert st2.returncode == 1
    assert any("not installed" in p["message"] for p in json.loads(st2.stdout)["problems"])
    purge = host_cli("persist", "disable", "--root", str(root), "--purge")
    assert purge.returncode == 0 and not cfg.exists()


def test_persist_enable_root_renders_a_custom_config_path(tmp_path: Path) -> None:
    root = tmp_path / "image"
    root.mkdir()  # a missing --root is an error (tests/security/test_rootfs_escape.py)
    p = host_cli("persist", "enable", "--root", str(root), "--config", "/etc/binfmtctl/my.conf")
    assert p.returncode == 0, p.stderr
    argv, _ = persist.unit_exec((root / "etc/systemd/system/binfmtctl.service").read_text())
    assert argv[-3:] == ["apply", "--config", "/etc/binfmtctl/my.conf"]  # the path inside the image
    assert (root / "etc/binfmtctl/my.conf").is_file()


def test_persist_status_reports_a_unit_whose_binfmtctl_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "image"
    root.mkdir()
    persist.enable(str(root), command=["/opt/gone/bin/binfmtctl"], env={}, live=False)
    st = host_cli("persist", "status", "--root", str(root))
    assert st.returncode == 1
    assert "/opt/gone/bin/binfmtctl is missing" in st.stdout
    assert "persist enable" in st.stdout


# -- live systemctl (faked: PID 1 is not systemd here) ----------------------------------------------
def _booted(root: Path) -> Path:
    (root / "run/systemd/system").mkdir(parents=True)
    return root


def test_live_enable_runs_systemctl_through_the_choke_point(fp: Any, tmp_path: Path) -> None:
    root = _booted(tmp_path)
    fp.register(["systemctl", "daemon-reload"])
    fp.register(["systemctl", "enable", "--now", "binfmtctl.service"])
    report = persist.enable(str(root), live=True, command=["/usr/bin/binfmtctl"], env={})
    assert fp.call_count(["systemctl", "daemon-reload"]) == 1
    assert fp.call_count(["systemctl", "enable", "--now", "binfmtctl.service"]) == 1
    assert report.steps[-2:] == [
        "ran systemctl daemon-reload",
        "ran systemctl enable --now binfmtctl.service",
    ]
    assert (root / "etc/systemd/system/binfmtctl.service").is_file()
    fp.register(["systemctl", "stop", "binfmtctl.service"])
    fp.register(["systemctl", "daemon-reload"])
    off = persist.disable(str(root), live=True)
    assert fp.call_count(["systemctl", "stop", "binfmtctl.service"]) == 1
    assert off.steps[0] == "ran systemctl stop binfmtctl.service"
    assert off.steps[-1] == "ran systemctl daemon-reload"
    assert not (root / "etc/systemd/system/binfmtctl.service").exists()


def test_live_enable_without_systemd_as_pid1_skips_systemctl_with_a_note(
    fp: Any, tmp_path: Path
) -> None:
    # fp is active with nothing registered: any subprocess call would fail the test
    report = persist.enable(str(tmp_path), live=True, command=["/usr/bin/binfmtctl"], env={})
    assert any(
        "systemd is not the running init" in n and "binfmtctl apply" in n for n in report.notes
    )
    assert (tmp_path / "etc/systemd/system/sysinit.target.wants/binfmtctl.service").is_symlink()


def test_live_enable_reports_a_systemctl_failure(fp: Any, tmp_path: Path) -> None:
    root = _booted(tmp_path)
    fp.register(["systemctl", "daemon-reload"])
    fp.register(
        ["systemctl", "enable", "--now", "binfmtctl.service"],
        returncode=1,
        stderr="Job for binfmtctl.service failed.",
    )
    with pytest.raises(BinfmtctlError) as exc:
        persist.enable(str(root), live=True, command=["/usr/bin/binfmtctl"], env={})
    msg = exc.value.format_message()
    assert "Job for binfmtctl.service failed" in msg and "journalctl -u binfmtctl.service" in msg


# -- in a private binfmt_misc ------------------------------------------------------------------------
sandboxed = pytest.mark.sandbox


@sandboxed
def test_apply_registers_replaces_leaves_others_and_is_idempotent(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.conf"
    persist.write_config(cfg, [entry(AARCH64), entry(PYTHON)])
    register_raw(sandbox, WSL)
    register_raw(
        sandbox, PYTHON.replace("/usr/bin/python3.11:", "/usr/bin/python3.11:P")
    )  # differs
    plan = run_cli(sandbox, "apply", "--plan", "--json", env=cli_env(cfg))
    assert plan.returncode == 0, plan.stderr
    assert [(e["name"], e["action"], e["done"]) for e in json.loads(plan.stdout)["entries"]] == [
        ("qemu-aarch64", "add", False),
        ("python3.11", "replace", False),
    ]
    before = snapshot(sandbox)
    assert [n for n, _ in before] == ["python3.11", "WSLInterop"]  # --plan changed nothing
    p = run_cli(sandbox, "apply", env=cli_env(cfg))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "register         qemu-aarch64" in p.stdout and "replace          python3.11" in p.stdout
    after = dict(snapshot(sandbox))
    assert after["WSLInterop"] == dict(before)["WSLInterop"]  # left alone
    assert after["python3.11"].startswith("enabled\ninterpreter /usr/bin/python3.11\nflags: \n")
    assert "flags: PF" in after["qemu-aarch64"]
    table = snapshot(sandbox)
    again = run_cli(sandbox, "apply", "--json", env=cli_env(cfg))
    assert again.returncode == 0
    result = json.loads(again.stdout)
    assert result["changes"] == 0 and {e["action"] for e in result["entries"]} == {"keep"}
    assert snapshot(sandbox) == table


@sandboxed
def test_boot_with_a_missing_interpreter_applies_the_others(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.conf"
    llvm = ":llvm-gone:M::BC::/opt/gone/lli:"  # no F: the kernel takes it, with a warning
    persist.write_config(cfg, [entry(S390X_GONE), entry(AARCH64), entry(llvm)])
    p = run_cli(sandbox, "apply", env=cli_env(cfg))
    assert p.returncode == 1
    assert (
        "FAILED     qemu-s390x: interpreter /opt/gone/qemu-s390x-static is missing (ENOENT)"
        in p.stdout
    )
    assert "fix: install QEMU's static user-mode emulators again" in p.stdout
    assert "persist remove qemu-s390x" in p.stdout
    assert "warning: interpreter /opt/gone/lli is missing (ENOENT): registered anyway" in p.stdout
    assert "could not be applied: qemu-s390x; the others were applied" in p.stderr
    assert "Traceback" not in p.stderr
    assert sorted(n for n, _ in snapshot(sandbox)) == ["llvm-gone", "qemu-aarch64"]
    js = run_cli(sandbox, "apply", "--json", env=cli_env(cfg))
    assert js.returncode == 1 and json.loads(js.stdout)["failed"] == ["qemu-s390x"]


@sandboxed
def test_interpreter_on_a_late_file_system_then_mounted(sandbox: Sandbox, tmp_path: Path) -> None:
    """The boot race of systemd#21178: the F interpreter's file system is in fstab but not
    mounted yet. apply names the mount and the unit drop-in; once it is mounted, apply
    fills the gap. Both mounts happen in the sandbox's private mount namespace only."""
    os.chmod(tmp_path, 0o755)
    (tmp_path / "fstab").write_text("UUID=1 / ext4 defaults 0 1\nUUID=2 /srv ext4 nofail 0 2\n")
    late = tmp_path / "late" / "bin"
    late.mkdir(parents=True)
    (late / "qemu-s390x-static").symlink_to("/usr/bin/qemu-s390x-static")
    s390x = S390X_GONE.replace("/opt/gone/", "/srv/bin/")
    cfg = tmp_path / "c.conf"
    persist.write_config(cfg, [entry(AARCH64), entry(s390x)])
    assert sandbox.run(["mount", "--bind", str(tmp_path / "fstab"), "/etc/fstab"]).returncode == 0
    p = run_cli(sandbox, "apply", env=cli_env(cfg))
    assert p.returncode == 1
    assert "FAILED     qemu-s390x: interpreter /srv/bin/qemu-s390x-static is missing" in p.stdout
    assert "is on /srv, which is not mounted yet" in p.stdout
    assert "RequiresMountsFor=/srv" in p.stdout
    assert [n for n, _ in snapshot(sandbox)] == ["qemu-aarch64"]
    assert sandbox.run(["mount", "--bind", str(tmp_path / "late"), "/srv"]).returncode == 0
    p2 = run_cli(sandbox, "apply", env=cli_env(cfg))
    assert p2.returncode == 0, p2.stdout + p2.stderr
    assert (
        "register         qemu-s390x" in p2.stdout and "unchanged        qemu-aarch64" in p2.stdout
    )
    assert [n for n, _ in snapshot(sandbox)] == ["qemu-s390x", "qemu-aarch64"]


@sandboxed
def test_apply_with_an_invalid_config_line_applies_the_rest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.conf"
    cfg.write_text(f"# hand edited\n{AARCH64}\n:oops:M::\\x7fELF::/usr/bin/true:Q\n")
    p = run_cli(sandbox, "apply", env=cli_env(cfg))
    assert p.returncode == 1
    assert f"INVALID    {cfg}:3: invalid rule (EINVAL): flags" in p.stdout
    assert [n for n, _ in snapshot(sandbox)] == ["qemu-aarch64"]


@sandboxed
def test_apply_refuses_a_config_non_root_can_change(sandbox: Sandbox, tmp_path: Path) -> None:
    cfg = tmp_path / "c.conf"
    persist.write_config(cfg, [entry(AARCH64)])
    cfg.chmod(0o666)
    p = run_cli(sandbox, "apply", env=cli_env(cfg))
    assert p.returncode == 1 and "can be changed by a non-root user" in p.stderr
    assert f"chown root:root {cfg} && chmod go-w {cfg}" in p.stderr
    assert snapshot(sandbox) == []
    forced = run_cli(sandbox, "apply", "--force", env=cli_env(cfg))
    assert forced.returncode == 0 and [n for n, _ in snapshot(sandbox)] == ["qemu-aarch64"]


@sandboxed
def test_apply_with_no_config_is_a_no_op(sandbox: Sandbox, tmp_path: Path) -> None:
    register_raw(sandbox, WSL)
    p = run_cli(sandbox, "apply", env=cli_env(tmp_path / "none.conf"))
    assert p.returncode == 0 and "nothing to apply" in p.stdout
    assert [n for n, _ in snapshot(sandbox)] == ["WSLInterop"]


@sandboxed
def test_apply_boot_path_imports_no_heavy_modules(sandbox: Sandbox, tmp_path: Path) -> None:
    cfg = tmp_path / "c.conf"
    persist.write_config(cfg, [entry(AARCH64), entry(S390X_GONE)])  # the failure path too
    code = (
        "import sys, json\n"
        "from binfmtctl.cli import _run_main\n"
        "try:\n    _run_main(['apply'])\nexcept SystemExit as e:\n    rc = e.code\n"
        "print('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n"
    )
    p = sandbox.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT), "BINFMTCTL_CONFIG": str(cfg)},
    )
    out = p.stdout.decode()
    modules = set(json.loads(out.split("MODULES ", 1)[1]))
    assert "register         qemu-aarch64" in out  # it really applied
    assert not {"elftools", "psutil", "yaml"} & {m.split(".")[0] for m in modules}
    assert not {"binfmtctl.table", "binfmtctl.elf", "binfmtctl.install"} & modules
    assert [n for n, _ in snapshot(sandbox)] == ["qemu-aarch64"]


@sandboxed
def test_simulated_reboot_restores_the_table_and_keeps_others(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "conf" / "binfmtctl.conf"
    p = run_cli(
        sandbox, "install", "--persist", "aarch64", "riscv64", "--no-test", env=cli_env(cfg)
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"config {cfg}: added qemu-aarch64, qemu-riscv64" in p.stdout
    reg = run_cli(sandbox, "register", r":t-ext:E::bfx::/bin/true:", env=cli_env(cfg))
    assert reg.returncode == 0
    assert run_cli(sandbox, "persist", "save", "t-ext", env=cli_env(cfg)).returncode == 0
    installed = snapshot(sandbox)
    assert [n for n, _ in installed] == ["t-ext", "qemu-riscv64", "qemu-aarch64"]
    image = tmp_path / "image"
    image.mkdir()
    en = host_cli("persist", "enable", "--root", str(image), env=cli_env(cfg))
    assert en.returncode == 0, en.stderr
    unit_text = (image / "etc/systemd/system/binfmtctl.service").read_text()
    sandbox.stop()  # "reboot": the namespace and its binfmt_misc instance are gone

    # Parse ExecStart= and Environment= from the rendered unit as systemd would run them.
    exec_start = next(
        v for k, _, v in (ln.partition("=") for ln in unit_text.splitlines()) if k == "ExecStart"
    )
    argv = [w.replace("%%", "%") for w in shlex.split(exec_start)]
    unit_env = dict(
        a.partition("=")[::2]
        for k, _, v in (ln.partition("=") for ln in unit_text.splitlines())
        if k == "Environment"
        for a in shlex.split(v)
    )
    assert argv[-2:] == ["--config", str(cfg)] and os.path.isabs(argv[0])
    with Sandbox() as box:
        assert snapshot(box) == []  # a fresh, empty table
        register_raw(box, WSL)  # someone else's entry comes first at boot
        wsl = snapshot(box)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **unit_env}
        env["BINFMTCTL_STATE_DIR"] = box.state_dir  # /run/binfmtctl of the "booted" system
        env["BINFMTCTL_CACHE_DIR"] = str(tmp_path / "cache")  # its /var/cache/binfmtctl
        booted = subprocess.run(
            box.command(argv), capture_output=True, text=True, env=env, check=False
        )
        assert booted.returncode == 0, booted.stdout + booted.stderr
        table = snapshot(box)
        assert table[-1] == wsl[0]  # still there, untouched
        assert table[:-1] == installed  # identical entry texts, same match order
        again = subprocess.run(
            box.command(argv), capture_output=True, text=True, env=env, check=False
        )
        assert again.returncode == 0 and "0 registered, 0 replaced, 3 unchanged" in again.stdout
        owned = run_cli(box, "export", env=cli_env(cfg))
        assert owned.stdout.count("\n:") == 3  # apply recorded the restored entries as binfmtctl's


@sandboxed
def test_export_loaded_by_systemd_binfmt_gives_the_same_table(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.conf"
    p = run_cli(sandbox, "install", "aarch64", "s390x", "--no-test", env=cli_env(cfg))
    assert p.returncode == 0, p.stderr
    odd = [
        r":t-off:M:3:\x00\xffMZ:\xff\x0f\xff\xff:/bin/true:PC",
        r":t-ext:E::tar.gz::/bin/true:",
        ",t:colon,M,,AB,,/usr/bin/env,O",  # a name with the usual delimiter
    ]
    for line in odd:
        assert run_cli(sandbox, "register", line).returncode == 0
    register_raw(sandbox, WSL)  # not binfmtctl's: only in --all
    mine = snapshot(sandbox)
    exported = run_cli(sandbox, "export", env=cli_env(cfg))
    assert exported.returncode == 0
    (tmp_path / "owned.conf").write_text(exported.stdout)
    everything = run_cli(sandbox, "export", "--all", "-o", str(tmp_path / "all.conf"))
    assert everything.returncode == 0, everything.stderr
    assert stat.S_IMODE((tmp_path / "all.conf").stat().st_mode) == 0o644
    with Sandbox() as box:
        systemd_binfmt(box, tmp_path / "owned.conf")
        assert snapshot(box) == [item for item in mine if item[0] != "WSLInterop"]
    with Sandbox() as box:
        systemd_binfmt(box, tmp_path / "all.conf")
        assert snapshot(box) == mine


@sandboxed
def test_export_update_binfmts_needs_a_directory(sandbox: Sandbox, tmp_path: Path) -> None:
    for line in (AARCH64, PYTHON):
        assert run_cli(sandbox, "register", line).returncode == 0
    p = run_cli(sandbox, "export", "--format", "update-binfmts")
    assert p.returncode == 2 and "-o DIR" in p.stderr
    out = tmp_path / "binfmts"
    p2 = run_cli(sandbox, "export", "--format", "update-binfmts", "-o", str(out))
    assert p2.returncode == 0, p2.stderr
    assert sorted(os.listdir(out)) == ["python3.11", "qemu-aarch64"]
    assert "fix_binary yes" in (out / "qemu-aarch64").read_text()


def update_binfmts_enable_line(name: str, text: str) -> str:
    """What ``update-binfmts --enable`` writes to register for a format file (independent
    of binfmtctl's parser): ``:name:M|E:offset:magic:mask:interpreter:[C][P][F]``."""
    f = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    flags = "".join(
        letter
        for key, letter in (("credentials", "C"), ("preserve", "P"), ("fix_binary", "F"))
        if f.get(key) == "yes"
    )
    if "extension" in f:
        return f":{name}:E::{f['extension']}::{f['interpreter']}:{flags}"
    return f":{name}:M:{f.get('offset', '')}:{f['magic']}:{f.get('mask', '')}:{f['interpreter']}:{flags}"


@sandboxed
def test_import_usr_lib_binfmt_d_then_apply_matches_systemd_binfmt(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.conf"
    p = run_cli(sandbox, "import", "/usr/lib/binfmt.d", "--apply", env=cli_env(cfg))
    assert p.returncode == 0, p.stdout + p.stderr
    ours = snapshot(sandbox)
    files = sorted(Path("/usr/lib/binfmt.d").glob("*.conf"))
    assert len(ours) == sum(
        1
        for f in files
        for line in f.read_text().splitlines()
        if line.strip() and line[0] not in "#;"
    )
    with Sandbox() as box:
        systemd_binfmt(box, *files)
        assert snapshot(box) == ours


@sandboxed
def test_import_usr_share_binfmts_then_apply_matches_update_binfmts(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.conf"
    p = run_cli(sandbox, "import", "/usr/share/binfmts", "--apply", env=cli_env(cfg))
    assert p.returncode == 0, p.stdout + p.stderr
    ours = snapshot(sandbox)
    lines = [
        update_binfmts_enable_line(f.name, f.read_text())
        for f in sorted(Path("/usr/share/binfmts").iterdir())
    ]
    (tmp_path / "ub.conf").write_text("\n".join(lines) + "\n")
    with Sandbox() as box:
        systemd_binfmt(box, tmp_path / "ub.conf")
        assert snapshot(box) == ours
    assert len(ours) == len(lines)


QEMU_CONF_CPUS = {  # as qemu-binfmt-conf.sh spells them
    "aarch64": (
        r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
    "riscv64": (
        r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
        r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    ),
}


def qemu_binfmt_conf(mode: str, exportdir: Path, persistent: str, preserve: str) -> None:
    """What ``qemu-binfmt-conf.sh --qemu-path /usr/bin --qemu-suffix -static --persistent
    P --preserve-argv0 A (--systemd ALL | --debian) --exportdir DIR`` writes (its
    qemu_generate_register / qemu_generate_debian)."""
    exportdir.mkdir()
    for cpu, (magic, mask) in QEMU_CONF_CPUS.items():
        qemu = f"/usr/bin/qemu-{cpu}-static"
        if mode == "systemd":
            flags = ("F" if persistent == "yes" else "") + ("P" if preserve == "yes" else "")
            (exportdir / f"qemu-{cpu}.conf").write_text(
                f":qemu-{cpu}:M::{magic}:{mask}:{qemu}:{flags}\n"
            )
        else:
            (exportdir / f"qemu-{cpu}").write_text(
                f"package qemu-{cpu}\ninterpreter {qemu}\nmagic {magic}\nmask {mask}\n"
                f"credentials no\npreserve {preserve}\nfix_binary {persistent}\n"
            )


@sandboxed
def test_import_qemu_binfmt_conf_output_both_modes(sandbox: Sandbox, tmp_path: Path) -> None:
    qemu_binfmt_conf("systemd", tmp_path / "systemd", persistent="yes", preserve="no")
    qemu_binfmt_conf("debian", tmp_path / "debian", persistent="yes", preserve="no")
    for mode in ("systemd", "debian"):
        cfg = tmp_path / f"{mode}.conf"
        p = run_cli(sandbox, "import", str(tmp_path / mode), "--json", env=cli_env(cfg))
        assert p.returncode == 0, p.stdout + p.stderr
        assert json.loads(p.stdout)["config"]["added"] == ["qemu-aarch64", "qemu-riscv64"]
    assert persist.read_config(tmp_path / "systemd.conf") == persist.read_config(
        tmp_path / "debian.conf"
    )
    applied = run_cli(sandbox, "apply", env=cli_env(tmp_path / "debian.conf"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    ours = snapshot(sandbox)
    with Sandbox() as box:
        systemd_binfmt(box, *sorted((tmp_path / "systemd").iterdir()))
        assert snapshot(box) == ours
    assert [n for n, _ in ours] == ["qemu-riscv64", "qemu-aarch64"]


@sandboxed
def test_import_both_dirs_collide_in_one_run_and_the_later_run_wins(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.conf"
    both = run_cli(sandbox, "import", "/usr/lib/binfmt.d", "/usr/share/binfmts", env=cli_env(cfg))
    assert both.returncode == 1
    assert "qemu-aarch64" in both.stdout and "separate runs" in both.stdout
    assert "nothing was imported" in both.stderr and not cfg.exists()
    assert run_cli(sandbox, "import", "/usr/lib/binfmt.d", env=cli_env(cfg)).returncode == 0
    second = run_cli(sandbox, "import", "/usr/share/binfmts", "--apply", env=cli_env(cfg))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "replaced" in second.stdout
    aarch64 = dict(snapshot(sandbox))["qemu-aarch64"]
    assert "flags: PF" in aarch64  # /usr/share/binfmts (no O) won: it was imported last


@sandboxed
def test_import_refuses_bad_input_and_writes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    cfg = tmp_path / "c.conf"
    bad = tmp_path / "bad.conf"
    bad.write_text(f"{AARCH64}\n:x:M::\\x7fELF\\x02::/bin/true:FX\n")
    p = run_cli(sandbox, "import", str(bad), "--apply", env=cli_env(cfg))
    assert p.returncode == 1 and f"{bad}:2" in p.stdout and "Traceback" not in p.stderr
    assert not cfg.exists() and snapshot(sandbox) == []
    missing = run_cli(sandbox, "import", str(tmp_path / "nope"), env=cli_env(cfg))
    assert missing.returncode == 2 and "no such file" in missing.stderr


@sandboxed
def test_systemd_binfmt_loads_the_config_and_apply_claims_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """At boot systemd-binfmt registers the config first; apply then finds it in sync and
    records the entries as binfmtctl's (so export and uninstall all see them)."""
    cfg = tmp_path / "zz-binfmtctl.conf"
    persist.write_config(cfg, [entry(AARCH64)])
    systemd_binfmt(sandbox, cfg)
    assert run_cli(sandbox, "export", env=cli_env(cfg)).stdout.count("\n:") == 0
    p = run_cli(sandbox, "apply", env=cli_env(cfg))
    assert p.returncode == 0 and "unchanged        qemu-aarch64" in p.stdout
    assert run_cli(sandbox, "export", env=cli_env(cfg)).stdout.count("\n:") == 1
    un = run_cli(sandbox, "uninstall", "all", env=cli_env(cfg))
    assert un.returncode == 0 and "dropped qemu-aarch64 from binfmtctl's config" in un.stdout
    assert snapshot(sandbox) == [] and persist.read_config(cfg) == []


@sandboxed
def test_persist_add_remove_and_status_live(sandbox: Sandbox, tmp_path: Path) -> None:
    cfg = tmp_path / "c.conf"
    bad = run_cli(sandbox, "persist", "add", ":x:M::AB::/bin/true:Z", env=cli_env(cfg))
    assert bad.returncode == 1 and not cfg.exists()
    host = run_cli(
        sandbox, "persist", "add", ":x86:M::\\x7fELF\\x02\\x01\\x01::/bin/true:", env=cli_env(cfg)
    )
    assert host.returncode == 1 and "host's safety" in host.stderr and not cfg.exists()
    p = run_cli(sandbox, "persist", "add", AARCH64, "--apply", env=cli_env(cfg))
    assert p.returncode == 0, p.stdout + p.stderr
    assert [n for n, _ in snapshot(sandbox)] == ["qemu-aarch64"]
    st = json.loads(run_cli(sandbox, "persist", "status", "--json", env=cli_env(cfg)).stdout)
    assert st["config"]["entries"] == ["qemu-aarch64"] and st["live"]["in_sync"] == ["qemu-aarch64"]
    assert any("not installed" in pr["message"] for pr in st["problems"])  # no unit on this host
    nope = run_cli(sandbox, "persist", "remove", "qemu-aarch64", "nope", env=cli_env(cfg))
    assert nope.returncode == 1 and "'nope'" in nope.stderr
    assert [e.name for e in persist.read_config(cfg)] == ["qemu-aarch64"]
    rm = run_cli(sandbox, "persist", "remove", "qemu-aarch64", env=cli_env(cfg))
    assert rm.returncode == 0 and persist.read_config(cfg) == []
    assert [n for n, _ in snapshot(sandbox)] == ["qemu-aarch64"]  # the live table is not touched
