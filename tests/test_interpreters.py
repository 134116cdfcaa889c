"""Finding QEMU interpreters: pure decisions, a fake tree (--qemu-path), the real Debian layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pytest_subprocess import FakeProcess

from binfmtctl import interpreters as it
from binfmtctl import probe, table

HOST = "x86_64"  # decisions below are judged as on an x86_64 host, whatever runs the tests


def _exe(path: Path, data: bytes, mode: int = 0o755) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def static_x86_64() -> bytes:
    """A static x86_64 ELF (the x86_64 probe): stands in for a static qemu built for the host."""
    return probe.build_probe("x86_64")


# -- pure decisions --------------------------------------------------------------------------------
def test_candidate_order_default() -> None:
    paths = it.candidate_paths("aarch64")
    assert paths[:3] == [
        ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", "debian-binfmt-P"),
        ("/usr/bin/qemu-aarch64-static", "usr-bin-static"),
        ("/usr/bin/qemu-aarch64", "usr-bin"),
    ]
    assert ("/usr/local/bin/qemu-aarch64-static", "usr-local") in paths


def test_candidate_i486_uses_qemu_i386() -> None:
    assert it.binary_name("i486") == "qemu-i386"
    paths = [p for p, _ in it.candidate_paths("i486")]
    assert "/usr/libexec/qemu-binfmt/i386-binfmt-P" in paths
    assert "/usr/bin/qemu-i386-static" in paths


def test_candidate_qemu_path_is_exclusive() -> None:
    assert it.candidate_paths("riscv64", "/opt/q") == [
        ("/opt/q/qemu-riscv64-static", "qemu-path"),
        ("/opt/q/qemu-riscv64", "qemu-path"),
    ]
    assert it.candidate_paths("riscv64", "/opt/q", "") == [("/opt/q/qemu-riscv64", "qemu-path")]
    assert it.candidate_paths("s390x", "/opt/q", "-x") == [("/opt/q/qemu-s390x-x", "qemu-path")]


def test_expects_p_only_for_binfmt_p_names() -> None:
    assert it.expects_preserve_argv0("/usr/libexec/qemu-binfmt/arm-binfmt-P")
    assert not it.expects_preserve_argv0("/usr/bin/qemu-arm-static")
    assert not it.expects_preserve_argv0("/usr/bin/qemu-arm-binfmt-P/x")


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        (it.FileFacts("/x", exists=False), "missing"),
        (it.FileFacts("/x", exists=True, regular=False), "not-a-file"),
        (it.FileFacts("/x", True, True, executable=False), "not-executable"),
        (it.FileFacts("/x", True, True, True, "/x", elf_error="not an ELF"), "not-elf"),
        (it.FileFacts("/x", True, True, True, "/x", elf_arch="aarch64"), "wrong-arch"),
        (it.FileFacts("/x", True, True, True, "/x", elf_arch="x86_64", linkage="static"), "ok"),
        (it.FileFacts("/x", True, True, True, "/x", elf_arch="i386", linkage="static"), "ok"),
    ],
)
def test_judge(facts: it.FileFacts, status: str) -> None:
    assert it.judge(facts, HOST)[0] == status


def test_wrong_arch_reason_names_both() -> None:
    status, reason = it.judge(
        it.FileFacts("/x", True, True, True, "/x", elf_arch="aarch64"), "x86_64"
    )
    assert status == "wrong-arch" and "aarch64" in reason and "x86_64" in reason
    # an aarch64 host runs an aarch64 qemu; arm64 spelling is normalised
    assert (
        it.judge(it.FileFacts("/x", True, True, True, "/x", elf_arch="aarch64"), "arm64")[0] == "ok"
    )


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (
            "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022",
            "7.2.22",
        ),
        ("qemu-riscv64 version 9.0.0\n", "9.0.0"),
        ("qemu-x86_64 version 8.2.2 (qemu-8.2.2-1.fc40)", "8.2.2"),
        ("garbage", None),
        ("", None),
    ],
)
def test_parse_qemu_version(text: str, version: str | None) -> None:
    assert it.parse_qemu_version(text) == version


@pytest.mark.parametrize(
    ("os_release", "distro"),
    [
        ('ID=debian\nVERSION_ID="12"\n', "debian"),
        ("ID=ubuntu\nID_LIKE=debian\n", "debian"),
        ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "debian"),
        ("ID=fedora\n", "fedora"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "fedora"),
        ("ID=arch\n", "arch"),
        ("ID=alpine\n", None),
        ("", None),
    ],
)
def test_detect_distro(os_release: str, distro: str | None) -> None:
    assert it.detect_distro(it.parse_os_release(os_release)) == distro


def test_package_hints() -> None:
    assert it.package_hint("aarch64", "debian") == (
        "qemu-user-static",
        "apt-get install qemu-user-static",
    )
    pkg, cmd = it.package_hint("arm64", "fedora")
    assert pkg == "qemu-user-static-aarch64" and cmd == "dnf install qemu-user-static-aarch64"
    pkg, cmd = it.package_hint("riscv64", "arch")
    assert pkg == "qemu-user-static qemu-user-static-binfmt"
    assert cmd == "pacman -S qemu-user-static qemu-user-static-binfmt"
    pkg, cmd = it.package_hint("s390x", None)
    assert pkg == "qemu-user-static"
    assert "qemu-user-static-s390x" in cmd and "qemu-user-static-binfmt" in cmd


# -- a fake tree (--qemu-path) -----------------------------------------------------------------------
def test_fake_tree_static_found(tmp_path: Path) -> None:
    _exe(tmp_path / "qemu-aarch64-static", static_x86_64())
    info = it.find_interpreter("arm64", qemu_path=str(tmp_path), uname_m=HOST, distro="debian")
    assert info.found and info.path == str(tmp_path / "qemu-aarch64-static")
    assert info.static is True and info.arch == "x86_64" and not info.expects_p
    assert info.source == "qemu-path" and info.searched_only == str(tmp_path)
    assert [c.status for c in info.candidates] == ["ok", "missing"]


def test_fake_tree_dynamic(tmp_path: Path) -> None:
    true = shutil.which("true")
    assert true is not None
    shutil.copy(true, tmp_path / "qemu-riscv64")
    from binfmtctl.elf import read_elf

    host_true = read_elf(true)
    if host_true.linkage != "dynamic":
        pytest.skip("this host's true(1) is not dynamically linked")
    info = it.find_interpreter(
        "riscv64", qemu_path=str(tmp_path), uname_m=os.uname().machine, distro="debian"
    )
    assert info.found and info.static is False and info.linkage == "dynamic"
    assert info.loader == host_true.interpreter


def test_fake_tree_skips_unusable_and_reports_why(tmp_path: Path) -> None:
    _exe(tmp_path / "qemu-s390x-static", probe.build_probe("aarch64"))  # built for another CPU
    _exe(tmp_path / "qemu-s390x", static_x86_64())
    info = it.find_interpreter("s390x", qemu_path=str(tmp_path), uname_m=HOST, distro="debian")
    assert info.path == str(tmp_path / "qemu-s390x")
    assert [c.status for c in info.candidates] == ["wrong-arch", "ok"]
    assert "aarch64" in info.candidates[0].reason


def test_fake_tree_not_executable_and_script(tmp_path: Path) -> None:
    _exe(tmp_path / "qemu-ppc64le-static", static_x86_64(), mode=0o644)
    _exe(tmp_path / "qemu-ppc64le", b"#!/bin/sh\nexec true\n")
    info = it.find_interpreter("ppc64el", qemu_path=str(tmp_path), uname_m=HOST, distro="debian")
    assert not info.found
    assert [c.status for c in info.candidates] == ["not-executable", "not-elf"]
    message, fix = it.missing_message(info)
    assert "ppc64le" in message and "not executable" in message and "script" in message
    assert "apt-get install qemu-user-static" in fix and "--qemu-path" in fix


def test_fake_tree_suffix(tmp_path: Path) -> None:
    _exe(tmp_path / "qemu-mips64el-static", static_x86_64())
    _exe(tmp_path / "qemu-mips64el", static_x86_64())
    info = it.find_interpreter(
        "mips64le", qemu_path=str(tmp_path), qemu_suffix="", uname_m=HOST, distro="debian"
    )
    assert info.path == str(tmp_path / "qemu-mips64el")


def test_empty_dir_missing_names_package(tmp_path: Path) -> None:
    info = it.find_interpreter("aarch64", qemu_path=str(tmp_path), uname_m=HOST, distro="fedora")
    assert not info.found and info.package == "qemu-user-static-aarch64"
    message, fix = it.missing_message(info)
    assert str(tmp_path) in message and "dnf install qemu-user-static-aarch64" in fix


def test_symlinked_binfmt_p_resolves(tmp_path: Path) -> None:
    """A -binfmt-P symlink (Debian's layout) keeps its name (for P) and reports the real file."""
    real = _exe(tmp_path / "qemu-arm-static", static_x86_64())
    (tmp_path / "arm-binfmt-P").symlink_to(real.name)
    facts = it.gather_facts(str(tmp_path / "arm-binfmt-P"))
    info = it.choose(table.get_target("arm"), [(facts, "debian-binfmt-P")], HOST, "debian")
    assert info.path == str(tmp_path / "arm-binfmt-P") and info.expects_p
    assert info.real_path == str(real)


def test_version_is_lazy(tmp_path: Path, fp: FakeProcess) -> None:
    """Finding runs no process; version() runs `--version` once."""
    _exe(tmp_path / "qemu-hppa-static", static_x86_64())
    path = str(tmp_path / "qemu-hppa-static")
    fp.register([path, "--version"], stdout="qemu-hppa version 8.1.3 (x)\n")
    info = it.find_interpreter("hppa", qemu_path=str(tmp_path), uname_m=HOST, distro="debian")
    assert fp.call_count([path, "--version"]) == 0
    it.qemu_version.cache_clear()
    assert info.version() == "8.1.3"
    assert info.version() == "8.1.3"
    assert fp.call_count([path, "--version"]) == 1


# -- the real Debian layout --------------------------------------------------------------------------
debian_layout = pytest.mark.skipif(
    not os.path.exists("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    or os.uname().machine != "x86_64",
    reason="needs Debian's qemu-user-static on an x86_64 host",
)


@pytest.mark.qemu
@debian_layout
def test_real_debian_binfmt_p() -> None:
    info = it.find_interpreter("aarch64")
    assert info.path == "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"
    assert info.source == "debian-binfmt-P" and info.expects_p
    assert info.real_path == "/usr/bin/qemu-aarch64-static"
    assert info.static is True and info.arch == "x86_64"
    version = info.version()
    assert version is not None and version[0].isdigit()


@pytest.mark.qemu
@debian_layout
def test_real_debian_omitted_formats_fall_back_to_usr_bin() -> None:
    """Debian ships no -binfmt-P link for the host's own formats (amd64: i386, x86_64)."""
    info = it.find_interpreter("x86_64")
    assert info.path == "/usr/bin/qemu-x86_64-static" and not info.expects_p
    assert info.candidates[0].status == "missing"
    i486 = it.find_interpreter("i486")
    assert i486.path == "/usr/bin/qemu-i386-static"


@pytest.mark.qemu
@debian_layout
def test_real_find_all() -> None:
    found = it.find_all(table.targets())
    assert set(found) == {t.name for t in table.targets()}
    assert all(i.found for i in found.values())
    assert found["aarch64_be"].path == "/usr/bin/qemu-aarch64_be-static"
