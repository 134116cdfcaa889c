"""A rollback step that fails is reported, not swallowed (systemd-binfmt's ", ignoring").

The failure is real: in a private binfmt_misc, an entry registered with F has its
interpreter deleted (the kernel keeps it open, so the entry still works). A replace
whose new registration the kernel refuses must put the old entry back, and that
re-registration fails too (F opens the interpreter, which is gone): the error says so.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from binfmtctl.sandbox import Sandbox
from tests.conftest import ROOT, register_raw

MNT = "/proc/sys/fs/binfmt_misc"
MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00"

#: runs inside the sandbox: replace 'pinned' by an entry the kernel refuses, through
#: BinfmtMisc.apply (all or nothing) or apply_each (the boot path); prints the outcome
SCRIPT = """
import json, sys
from binfmtctl.binfmt_misc import BinfmtMisc
from binfmtctl.entry import parse_register
from binfmtctl.errors import BinfmtctlError, error_line
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.plan import Action

mnt, state, old_line, new_line, how = sys.argv[1:]
profile = KernelProfile.current_default()
bm = BinfmtMisc(mnt, state_dir=state, profile=profile)
old, new = parse_register(old_line, profile), parse_register(new_line, profile)
action = Action("replace", new, old=old)
if how == "apply":
    try:
        bm.apply([action])
        err = None
    except BinfmtctlError as e:
        err = e
else:
    [(_, err)] = bm.apply_each([action])
print(json.dumps({
    "warnings": list(err.warnings) if err else None,
    "line": error_line(err) if err else None,
    "names": bm.names(),
}))
"""


def replace_refused(box: Sandbox, tmp_path: Path, how: str) -> dict[str, object]:
    interp = tmp_path / "pinned-interp"
    shutil.copy("/bin/true", interp)
    old = f":pinned:M::{MAGIC}::{interp}:F"
    register_raw(box, old)
    interp.unlink()  # the kernel holds it open: the entry works, but cannot be registered again
    new = f":pinned:M::{MAGIC}::{tmp_path}/no-such-qemu:F"
    p = box.run(
        [sys.executable, "-c", SCRIPT, MNT, str(tmp_path / "state"), old, new, how],
        env={"PYTHONPATH": str(ROOT)},
    )
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    result: dict[str, object] = json.loads(p.stdout)
    return result


def test_a_failed_put_back_is_reported_after_the_error(sandbox: Sandbox, tmp_path: Path) -> None:
    got = replace_refused(sandbox, tmp_path, "apply")
    warnings = got["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    assert warnings[0].startswith("could not put 'pinned' back as it was (")
    assert "ENOENT" in warnings[0] and "ignoring" in warnings[0]
    line = str(got["line"])
    # the error first (the kernel refused the new entry), then what the rollback could not undo
    assert line.startswith("Error: the kernel refused 'pinned'")
    assert line.endswith("\nwarning: " + warnings[0])
    assert "pinned" not in got["names"]  # truly gone: the warning is not a false alarm


def test_the_boot_path_reports_it_in_the_failed_item(sandbox: Sandbox, tmp_path: Path) -> None:
    got = replace_refused(sandbox, tmp_path, "apply_each")
    warnings = got["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    assert "could not put 'pinned' back" in warnings[0] and "ignoring" in warnings[0]
    assert "pinned" not in got["names"]


def test_a_clean_rollback_reports_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    """The old entry's interpreter still exists: it is put back, and no warning is made up."""
    interp = tmp_path / "kept-interp"
    shutil.copy("/bin/true", interp)
    old = f":kept:M::{MAGIC}::{interp}:F"
    register_raw(sandbox, old)
    new = f":kept:M::{MAGIC}::{tmp_path}/no-such-qemu:F"
    p = sandbox.run(
        [sys.executable, "-c", SCRIPT, MNT, str(tmp_path / "state"), old, new, "apply"],
        env={"PYTHONPATH": str(ROOT)},
    )
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    got = json.loads(p.stdout)
    assert got["warnings"] == [] and "warning:" not in got["line"]
    assert got["line"].startswith("Error: the kernel refused 'kept'")
    assert "kept" in got["names"]
