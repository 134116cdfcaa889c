"""The image entrypoint's pure parts: tonistiigi/binfmt's flags, lists and status JSON."""

from __future__ import annotations

import pytest

from binfmtctl.compat_tonistiigi import (
    Passthrough,
    Request,
    expand_install,
    install_report,
    parse_argv,
    select_uninstall,
    status_json,
)
from binfmtctl.errors import UsageError


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ([], Request()),
        (["--install", "all"], Request(install="all")),
        (["-install=arm64,riscv64"], Request(install="arm64,riscv64")),
        (["--uninstall", "qemu-*", "--install", "arm64"], Request("arm64", "qemu-*")),
        (["-mount", "/x"], Request(mount="/x")),
        (["-version"], Request(version=True)),
    ],
)
def test_tonistiigi_flags_in_go_syntax(argv: list[str], want: Request) -> None:
    assert parse_argv(argv) == want


@pytest.mark.parametrize(
    "argv",
    [["doctor"], ["status", "--json"], ["--mount", "/x", "doctor"], ["--help"], ["--version"]],
)
def test_anything_else_is_a_binfmtctl_command_line(argv: list[str]) -> None:
    assert parse_argv(argv) == Passthrough(argv)


def test_a_flag_without_its_value_is_a_usage_error_naming_the_fix() -> None:
    with pytest.raises(UsageError, match="flag needs an argument: --install") as e:
        parse_argv(["--install"])
    assert "arm64,riscv64" in str(e.value)


def test_install_lists_mix_platforms_aliases_and_globs() -> None:
    assert expand_install("linux/arm64, arm64,riscv64,,linux/arm/v7,qemu-s390x") == [
        "aarch64",
        "riscv64",
        "arm",
        "s390x",
    ]
    assert expand_install("qemu-mips64*") == ["mips64", "mips64el"]
    assert expand_install("arm64,all") == ["all"]
    assert expand_install("linux/arm64/v9") == ["aarch64"]  # a variant the table does not list


@pytest.mark.parametrize("spec", ["nosuch", "qemu-nosuch*", "linux/nosuch"])
def test_install_names_that_name_nothing_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        expand_install(spec)


def test_uninstall_selects_like_tonistiigi_but_never_wslinterop() -> None:
    live = ["qemu-aarch64", "WSLInterop", "python3.11", "qemu-riscv64"]
    assert select_uninstall("qemu-*", live) == (["qemu-aarch64", "qemu-riscv64"], [])
    assert select_uninstall("*", live) == (["qemu-aarch64", "python3.11", "qemu-riscv64"], [])
    assert select_uninstall("aarch64,linux/riscv64,nope", live) == (
        ["qemu-aarch64", "qemu-riscv64"],
        ["nope"],
    )
    assert select_uninstall("python3.11", live) == (["python3.11"], [])


def test_status_lists_the_host_platform_first_and_only_enabled_entries() -> None:
    out = status_json(
        [("qemu-riscv64", True), ("qemu-aarch64", True), ("qemu-s390x", False)],
        "x86_64",
        ["i386", "aarch64", "riscv64"],
    )
    assert out == {
        "supported": ["linux/amd64", "linux/386", "linux/arm64", "linux/riscv64"],
        "emulators": ["qemu-aarch64", "qemu-riscv64"],
    }


def test_install_report_fails_on_a_refusal_a_failed_target_or_a_failed_probe() -> None:
    ok_target = {"target": "aarch64", "entry": "qemu-aarch64", "flags": "F", "action": "add"}
    bad = {"target": "s390x", "error": "no QEMU interpreter", "fix": "apt-get install x"}
    lines, ok = install_report(
        {
            "ok": True,
            "targets": [ok_target, {**ok_target, "target": "riscv64"}],
            "test": {"targets": [{"target": "riscv64", "ok": False, "error": "exit 1"}]},
        },
        ["aarch64", "riscv64"],
    )
    assert lines[0] == "installing: aarch64 OK (qemu-aarch64, flags F)"
    assert "installing: riscv64 error: registered, but the test failed: exit 1" in lines
    assert not ok
    lines, ok = install_report({"ok": False, "targets": [bad]}, ["s390x"])
    assert not ok
    assert lines == ["installing: s390x error: no QEMU interpreter (fix: apt-get install x)"]
    lines, ok = install_report(
        {
            "ok": False,
            "targets": [],
            "skipped": [{"name": "x86_64", "refused": True, "reason": "r"}],
        },
        ["x86_64"],
    )
    assert (lines, ok) == (["installing: x86_64 error: r"], False)
