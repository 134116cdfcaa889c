"""Mount-state decisions (pure): what binfmtctl tells apart before touching anything."""

from __future__ import annotations

import pytest

from binfmtctl.binfmt_misc import filesystems_has_binfmt, mount_state, parse_mountinfo

P = "/proc/sys/fs/binfmt_misc"
MOUNTED = (
    f"36 25 0:33 / {P} rw,nosuid,nodev,noexec,relatime shared:15 - binfmt_misc binfmt_misc rw\n"
)
AUTOFS = f"35 25 0:32 / {P} rw,relatime shared:14 - autofs systemd-1 rw,fd=29,pgrp=1,timeout=0\n"
RO = f"36 25 0:33 / {P} ro,nosuid shared:15 - binfmt_misc binfmt_misc ro\n"
FS = "nodev\tsysfs\nnodev\tbinfmt_misc\n"


@pytest.mark.parametrize(
    ("mountinfo", "filesystems", "exists", "state", "ro"),
    [
        pytest.param(MOUNTED, FS, True, "mounted", False, id="mounted"),
        pytest.param(AUTOFS, FS, True, "automount", False, id="untriggered-automount"),
        pytest.param(AUTOFS + MOUNTED, FS, True, "mounted", False, id="triggered-automount"),
        pytest.param(RO, FS, True, "mounted", True, id="read-only"),
        pytest.param("", FS, True, "not-mounted", False, id="not-mounted"),
        pytest.param("", "nodev\tsysfs\n", True, "unsupported", False, id="no-binfmt-in-kernel"),
        pytest.param("", FS, False, "missing", False, id="no-directory"),
    ],
)
def test_mount_state(mountinfo: str, filesystems: str, exists: bool, state: str, ro: bool) -> None:
    st = mount_state(P, mountinfo, filesystems, exists)
    assert (st.state, st.read_only) == (state, ro)


def test_mountinfo_escapes_and_other_paths() -> None:
    line = "40 25 0:40 / /tmp/with\\040space rw - binfmt_misc binfmt_misc rw\n"
    assert parse_mountinfo(line, "/tmp/with space") == ("binfmt_misc", "rw,rw")
    assert parse_mountinfo(line, P) is None
    assert filesystems_has_binfmt(FS) and not filesystems_has_binfmt("nodev\tbinfmt_misc_x\n")
