"""`--root DIR` cannot escape DIR (issue 13, item 3), for real: an image whose owner
(uid 65534) planted symlinks out of it, absolute and ``../..``, then root runs
``persist enable`` and ``persist disable --purge`` on it. Nothing outside the image is
created or deleted. A FIFO named like the config or the unit does not hang ``persist
status --root``; a missing --root is an error, not created.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from binfmtctl import persist
from binfmtctl.rootfs import Root
from tests.conftest import User
from tests.conftest import host_cli as cli

UNIT = str(persist.unit_path("/")).lstrip("/")
LINK = str(persist.wants_link("/")).lstrip("/")
CONF = persist.DEFAULT_CONFIG.lstrip("/")


def tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def as_user(user: User, script: str, *args: str) -> None:
    p = user.run(["sh", "-c", script, "sh", *args], cwd="/")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_planted_etc_link_keeps_enable_and_purge_inside_the_image(user: User, how: str) -> None:
    work = user.workdir()
    work.chmod(0o755)
    image, outside = work / "image", work / "outside"
    # nobody owns the image and points its etc out of it, at files of their choosing
    as_user(
        user,
        'mkdir -p "$1" "$2/etc/systemd/system" "$2/etc/binfmt.d" && '
        'echo victim > "$2/etc/binfmt.d/zz-binfmtctl.conf" && echo victim > "$2/etc/systemd/system/binfmtctl.service" && '
        'ln -s "$3" "$1/etc"',
        str(image),
        str(outside),
        str(outside / "etc") if how == "absolute" else "../outside/etc",
    )
    before = {p: (outside / p).read_bytes() for p in tree(outside) if (outside / p).is_file()}
    p = cli("persist", "enable", "--root", str(image))
    assert p.returncode == 0, p.stderr
    assert {
        p: (outside / p).read_bytes() for p in tree(outside) if (outside / p).is_file()
    } == before
    assert not (outside / LINK).exists()
    # inside the image, the link means what it would mean booted: <image>/<target>
    inner = image / (str(outside.relative_to("/")) if how == "absolute" else "outside")
    assert (inner / UNIT).is_file() and (inner / CONF).is_file()
    assert os.readlink(inner / LINK) == "/etc/systemd/system/binfmtctl.service"
    st = cli("persist", "status", "--root", str(image), "--json")
    assert '"enabled": true' in st.stdout, st.stdout + st.stderr
    p = cli("persist", "disable", "--root", str(image), "--purge")
    assert p.returncode == 0, p.stderr
    assert {
        p: (outside / p).read_bytes() for p in tree(outside) if (outside / p).is_file()
    } == before
    assert not (inner / UNIT).exists() and not (inner / CONF).exists()


def test_a_planted_final_link_is_replaced_not_written_through(user: User) -> None:
    work = user.workdir()
    work.chmod(0o755)
    image, victim = work / "image", work / "victim"
    as_user(
        user,
        'mkdir -p "$1/etc/binfmt.d" "$1/etc/systemd/system" && echo victim > "$2" && '
        'ln -s "$2" "$1/etc/systemd/system/binfmtctl.service" && ln -s ../../../victim "$1/etc/binfmt.d/zz-binfmtctl.conf"',
        str(image),
        str(victim),
    )
    p = cli("persist", "enable", "--root", str(image))
    assert p.returncode == 0, p.stderr
    assert victim.read_text() == "victim\n"
    assert not (image / UNIT).is_symlink() and "ExecStart=" in (image / UNIT).read_text()
    p = cli("persist", "disable", "--root", str(image), "--purge")
    assert p.returncode == 0, p.stderr
    assert victim.read_text() == "victim\n"


@pytest.mark.parametrize("which", [CONF, UNIT])
def test_a_fifo_config_or_unit_is_reported_not_hung_on(tmp_path: Path, which: str) -> None:
    image = tmp_path / "image"
    (image / which).parent.mkdir(parents=True)
    os.mkfifo(image / which)
    p = cli("persist", "status", "--root", str(image), "--json")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "not a regular file (a FIFO)" in p.stdout


def test_a_missing_root_is_an_error_and_not_created(tmp_path: Path) -> None:
    for cmd in (("enable",), ("disable", "--purge"), ("status",)):
        p = cli("persist", *cmd, "--root", str(tmp_path / "nope"))
        assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr
        assert not (tmp_path / "nope").exists()


def test_root_resolves_dotdot_and_absolute_links_inside(tmp_path: Path) -> None:
    img = tmp_path / "img"
    (img / "a").mkdir(parents=True)
    (img / "a" / "up").symlink_to("../../../../..")
    (img / "a" / "abs").symlink_to("/a")
    (tmp_path / "secret").write_text("host")
    with Root(img) as r:
        r.write_atomic("a/up/secret", b"image")
        assert (img / "secret").read_text() == "image"
        assert r.read_bytes("a/abs/up/secret") == b"image"
    assert (tmp_path / "secret").read_text() == "host"


@pytest.mark.parametrize(
    "where",
    [UNIT, "etc/binfmt.d/x.conf", "etc/systemd/system/systemd-binfmt.service.d/wsl.conf"],
)
def test_doctor_root_does_not_hang_on_a_fifo(tmp_path: Path, where: str) -> None:
    image = tmp_path / "image"
    (image / where).parent.mkdir(parents=True)
    os.mkfifo(image / where)
    p = cli("doctor", "--root", str(image), "--json")
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr
    assert isinstance(json.loads(p.stdout)["findings"], list)


def test_doctor_with_a_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    p = cli("doctor", "--root", str(tmp_path / "nope"))
    assert p.returncode == 2 and "does not exist" in p.stderr
    assert not (tmp_path / "nope").exists()
