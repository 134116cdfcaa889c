"""``status`` imports what it uses: doctor's per-entry checks and the entries' facts, not the
host-wide doctor, the install planner, the other commands, or a third-party library but click
(the module set of a real run, in a sandbox with live entries, one of them in trouble)."""

from __future__ import annotations

import json

from binfmtctl.sandbox import Sandbox
from tests.conftest import AARCH64, S390X_GONE, WSL, register_raw
from tests.test_fastpath import run_path

#: what a status run must not load (each was loaded before, or is easy to pull in again)
UNUSED = {
    "psutil",  # processes are read from /proc (binfmtctl.usage)
    "yaml",
    "_yaml",
    "elftools",  # the struct ELF reader answers for QEMU's static interpreters
    "subprocess",
    "tempfile",
    "shutil",
    "binfmtctl.install",
    "binfmtctl.doctor.gather",
    "binfmtctl.doctor.gather_boot",
    "binfmtctl.doctor.checks",
    "binfmtctl.doctor.checks_host",
    "binfmtctl.doctor.checks_persistence",
    "binfmtctl.doctor.fix",
    "binfmtctl.doctor.run",
    "binfmtctl.doctor.image",
    "binfmtctl.persist",
    "binfmtctl.cli.validate",
    "binfmtctl.cli.inspect",
    "binfmtctl.cli.emulate",
    "binfmtctl.cli.persist",
    "binfmtctl.cli.doctor",
    "binfmtctl.control_files",  # only when names are given (`status register`)
    "click.shell_completion",  # only when completing
    "pathlib",  # the table is found and read with os.path (resources.shipped)
    "difflib",  # suggestions only for a name that is not found
}


def test_status_imports_only_what_it_uses(sandbox: Sandbox) -> None:
    for line in (S390X_GONE.removesuffix("F"), WSL, AARCH64):  # s390x: interpreter gone, no F
        register_raw(sandbox, line)
    outputs = {}
    for args in (("status", "--json"), ("status",)):
        code, outputs[args[-1]], err, modules = run_path("click", *args, box=sandbox)
        assert code == 0, err
        assert not UNUSED & modules, sorted(UNUSED & modules)
        assert {"binfmtctl.health", "binfmtctl.doctor.checks_entries"} <= modules  # it ran them
    rows = {e["name"]: e for e in json.loads(outputs["--json"])["entries"]}
    assert rows["qemu-s390x"]["health"] == "interpreter-missing"
    assert rows["WSLInterop"]["kind"]["kind"] != "qemu"
    assert rows["qemu-aarch64"]["kind"]["target"] == "aarch64"
    assert "interpreter-missing" in outputs["status"]
