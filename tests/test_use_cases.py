"""The use cases behind install, test, which, scan, gen and write-probe return reports.

Called in-process, without click: a dry run against a table that is not mounted (nothing
is written anywhere), files in tmp_path. The CLI tests check the same reports printed."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from binfmtctl import emulation, probe, table
from binfmtctl.binfmt_misc import BinfmtMisc
from binfmtctl.cli.render import jsonable
from binfmtctl.entry import Entry
from binfmtctl.errors import BinfmtctlError
from binfmtctl.rules import KernelProfile
from binfmtctl.scan import scan
from binfmtctl.which import LiveTable, which

INSTALL_KEYS = ["dry_run", "kernel", "ok", "changes", "persisted", "targets", "skipped", "test"]


def _install(
    tmp_path: Path, args: Sequence[str], **opts: object
) -> tuple[emulation.InstallReport, list[list[str]]]:
    seen: list[list[str]] = []
    report = emulation.install(
        BinfmtMisc(str(tmp_path / "not-mounted"), state_dir=str(tmp_path / "state")),
        args,
        KernelProfile.parse("6.18"),
        emulation.InstallOptions(dry_run=True, **opts),  # type: ignore[arg-type]
        safety=lambda entries: seen.append([e.name for e in entries]),
        uname_m="x86_64",
    )
    return report, seen


def test_install_dry_run_plans_and_checks_safety_first(tmp_path: Path) -> None:
    report, seen = _install(tmp_path, ["arm64", "riscv64"])
    assert (report.outcome, report.ok, report.exit_code, report.changes) == (
        "installed",
        True,
        0,
        0,
    )
    assert seen == [["qemu-aarch64", "qemu-riscv64"]]  # the safety check saw every entry
    assert [p.action for p in report.targets] == ["add", "add"]  # nothing live: all added
    data = jsonable(report)
    assert list(data) == INSTALL_KEYS  # design.md's shape, derived from the fields
    assert data["test"] is None and data["targets"][0]["target"] == "aarch64"
    assert not (tmp_path / "not-mounted").exists()  # a dry run mounts and writes nothing


def test_install_of_the_hosts_own_platform_is_nothing_to_do(tmp_path: Path) -> None:
    report, seen = _install(tmp_path, ["linux/amd64"])
    assert (report.outcome, report.ok, report.exit_code) == ("native", True, 0)
    assert seen == [] and report.targets == ()
    assert [s.name for s in report.skipped] == ["x86_64"] and report.skipped[0].native


def test_install_failure_keeps_message_and_fix_apart(tmp_path: Path) -> None:
    report, _ = _install(tmp_path, ["aarch64"], qemu_path=str(tmp_path))  # no QEMU there
    assert (report.ok, report.exit_code) == (False, 1)
    assert report.message == "1 of 1 target not working: aarch64"
    assert report.fix == "see the FAILED lines above"
    assert "message" not in jsonable(report) and "fix" not in jsonable(report)
    assert report.targets[0].error is not None and str(tmp_path) in report.targets[0].error


def test_an_empty_probe_matrix_fails() -> None:
    assert emulation.ProbeMatrix(()).exit_code == 1
    assert jsonable(emulation.ProbeMatrix(())) == {"targets": []}


def _aarch64_entry(flags: str) -> Entry:
    return table.get_target("aarch64").entry("/nonexistent/qemu-aarch64", flags)


def test_which_says_an_exec_without_f_would_fail(tmp_path: Path) -> None:
    path = probe.write_probe("aarch64", tmp_path)
    live = LiveTable((_aarch64_entry(""),), True, None)
    report = which(
        [str(path), str(tmp_path / "gone")],
        live,
        exec_check=lambda interp: "ENOENT",
        scope_fix=lambda fix: fix + " --scoped",
    )
    ran, gone = report.verdicts
    assert (ran.verdict, gone.verdict) == ("would-fail", "unreadable")
    assert report.exit_code == 1
    rows = jsonable(report)
    assert rows[0]["handler"]["name"] == "qemu-aarch64"
    assert rows[0]["exec_fails"]["fix"].endswith(" --scoped") and "error" not in rows[0]
    assert set(rows[1]) == {"path", "elf", "handler", "native", "near_misses", "error"}


def test_which_with_f_runs(tmp_path: Path) -> None:
    path = probe.write_probe("aarch64", tmp_path)
    report = which([str(path)], LiveTable((_aarch64_entry("F"),), True, None), exec_check=str)
    assert report.verdicts[0].verdict == "runs" and report.exit_code == 0


def test_scan_counts_and_reports_progress(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        probe.write_probe("aarch64", tmp_path / name)
    (tmp_path / "notes.txt").write_text("text\n")
    (tmp_path / "lib.a").write_bytes(b"!<arch>\n")
    calls: list[tuple[int, int, bool]] = []
    note = "binfmt_misc is not mounted"
    summary = scan(
        [str(tmp_path)],
        LiveTable((), True, note),
        examples=1,
        exec_check=lambda interp: None,
        progress=lambda files, elfs, done: calls.append((files, elfs, done)),
    )
    assert (summary.files, summary.elf, summary.unreadable) == (4, 2, 0)
    assert dict(summary.by_arch) == {"aarch64": 2} and dict(summary.by_handler) == {"none": 2}
    assert dict(summary.not_executable) == {"archive": 1}
    assert summary.unrunnable == 2 and len(summary.unrunnable_examples) == 1
    assert summary.notes == (note,)
    assert calls[-1] == (4, 2, True) and [c[2] for c in calls].count(True) == 1


def test_gen_report_json_leaves_the_binfmt_d_text_out() -> None:
    gen = table.generate("linux/arm64", flags="FP", binfmt_d=True)
    assert gen.binfmt_d.startswith("#") and gen.register in gen.binfmt_d
    data = jsonable(gen)
    assert list(data) == ["target", "description", "register", "entry"]
    assert data["target"] == "aarch64" and data["register"].endswith(":PF")


def test_save_probe_writes_whole_executable_files(tmp_path: Path) -> None:
    written = probe.save_probe("arm64", str(tmp_path))
    assert written.path == tmp_path / "probe-aarch64" and written.target == "aarch64"
    assert written.path.read_bytes() == probe.build_probe("aarch64")
    assert stat.S_IMODE(written.path.stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["probe-aarch64"]  # no temporary left
    assert written.expected_output == "binfmtctl-probe:aarch64"
    with pytest.raises(BinfmtctlError) as err:
        probe.save_probe("arm64", str(tmp_path / "probe-aarch64"))
    assert err.value.fix is not None and err.value.fix.startswith("mkdir -p ")


def test_the_use_cases_do_not_load_click() -> None:
    code = (
        "import sys\n"
        "import binfmtctl.emulation, binfmtctl.scan, binfmtctl.which, binfmtctl.probe\n"
        "import binfmtctl.table\n"
        "print('click' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.stdout.strip() == "False", p.stdout + p.stderr
