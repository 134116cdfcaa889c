"""The trust walk (binfmtctl.trust): unit cases on planted trees, and a differential
property test against the real file system (os.stat / os.path.realpath as the oracle)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binfmtctl.trust import MAX_HOPS, Node, check, walk

DIR, FILE = 0o40755, 0o100755
LINK = 0o120777
NOBODY = 65534


def tree() -> dict[str, Node]:
    return {
        "/": Node(0, DIR),
        "/usr": Node(0, DIR),
        "/usr/bin": Node(0, DIR),
        "/usr/bin/qemu": Node(0, FILE),
        "/tmp": Node(0, 0o41777),
        "/srv": Node(0, DIR),
    }


def test_root_owned_path_is_trusted() -> None:
    v = walk("/usr/bin/qemu", tree().get)
    assert v.trusted and v.resolved == "/usr/bin/qemu" and not v.missing


def test_nobody_owned_symlink_is_named() -> None:
    t = tree()
    t["/tmp/q"] = Node(NOBODY, LINK, "/usr/bin/qemu")
    v = walk("/tmp/q", t.get)
    assert not v.trusted and v.component == "/tmp/q"
    assert "symlink /tmp/q is owned by uid 65534" in v.reason and "repoint" in v.reason
    assert "/usr/bin/qemu" in v.fix


def test_root_symlink_in_sticky_tmp_to_root_file_is_trusted() -> None:
    t = tree()
    t["/tmp/q"] = Node(0, LINK, "/usr/bin/qemu")
    assert walk("/tmp/q", t.get).trusted


def test_nobody_owned_directory_on_the_way() -> None:
    t = tree()
    t["/tmp/x"] = Node(NOBODY, DIR)
    t["/tmp/x/q"] = Node(0, LINK, "/usr/bin/qemu")  # even a root link: the dir is theirs
    v = walk("/tmp/x/q", t.get)
    assert v.component == "/tmp/x" and "owned by uid 65534" in v.reason


def test_directory_reached_through_a_link_is_checked() -> None:
    t = tree()
    t["/srv/w"] = Node(0, 0o40777)  # world-writable, not sticky
    t["/srv/w/qemu"] = Node(0, FILE)
    t["/usr/bin/q"] = Node(0, LINK, "../../srv/w/qemu")  # relative, with ..
    v = walk("/usr/bin/q", t.get)
    assert v.component == "/srv/w" and "writable by group and others (mode 0777)" in v.reason


def test_group_writable_file_and_nobody_owned_file() -> None:
    t = tree()
    t["/usr/bin/g"] = Node(0, 0o100775)
    t["/usr/bin/n"] = Node(NOBODY, FILE)
    assert "writable by its group" in walk("/usr/bin/g", t.get).reason
    assert "owned by uid 65534" in walk("/usr/bin/n", t.get).reason


def test_sticky_dir_must_be_root_owned() -> None:
    t = tree()
    t["/srv/s"] = Node(NOBODY, 0o41777)
    t["/srv/s/q"] = Node(0, FILE)
    assert walk("/srv/s/q", t.get).component == "/srv/s"


def test_missing_under_a_dir_others_can_create_in() -> None:
    v = walk("/tmp/nope/qemu", tree().get)
    assert v.component == "/tmp/nope" and "does not exist" in v.reason and "/tmp lets" in v.reason


def test_missing_under_a_root_only_dir_is_only_missing() -> None:
    v = walk("/usr/bin/nope", tree().get)
    assert v.trusted and v.missing
    w = walk("/usr/bin/qemu/below", tree().get)  # ENOTDIR: nobody can make it resolve
    assert w.trusted and w.missing


def test_symlink_loop_gives_up() -> None:
    t = tree()
    t["/usr/bin/a"] = Node(0, LINK, "b")
    t["/usr/bin/b"] = Node(0, LINK, "/usr/bin/a")
    v = walk("/usr/bin/a", t.get)
    assert not v.trusted and f"more than {MAX_HOPS} symlinks" in v.reason


def test_dot_dot_above_root_and_dots_resolve_lexically() -> None:
    v = walk("/../../usr/./bin/../bin/qemu", tree().get)
    assert v.trusted and v.resolved == "/usr/bin/qemu"


def test_relative_interpreter_is_untrusted() -> None:
    v = walk("qemu", tree().get)
    assert not v.trusted and "relative" in v.reason


def test_writable_root_directory() -> None:
    t = tree()
    t["/"] = Node(0, 0o40777)
    assert walk("/usr/bin/qemu", t.get).component == "/"


# -- differential: the walk resolves exactly as the kernel does ----------------------------------
NAMES = ("a", "b", "c")
targets = st.one_of(
    st.sampled_from(NAMES),
    st.builds("/".join, st.lists(st.sampled_from((*NAMES, "..", ".")), min_size=1, max_size=4)),
)
layout = st.dictionaries(
    st.builds("/".join, st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)),
    st.one_of(st.just("dir"), st.just("file"), targets.map(lambda t: "link:" + t)),
    max_size=8,
)


def build(base: Path, spec: dict[str, str]) -> None:
    for rel, kind in sorted(spec.items(), key=lambda kv: kv[0].count("/")):
        p = base / rel
        if not p.parent.is_dir() or p.parent.is_symlink() or os.path.lexists(p):
            continue
        if kind == "dir":
            p.mkdir()
        elif kind == "file":
            p.write_bytes(b"")
        else:
            target = kind[5:]
            p.symlink_to(target if not target.startswith("/") else base / target.lstrip("/"))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=layout, query=st.lists(st.sampled_from((*NAMES, "..", ".")), min_size=1, max_size=5))
def test_walk_agrees_with_the_kernel(
    tmp_path: Path, spec: dict[str, str], query: list[str]
) -> None:
    base = Path(tempfile.mkdtemp(dir=os.path.realpath(tmp_path)))
    os.chmod(base, 0o755)
    build(base, spec)
    path = str(base) + "/" + "/".join(query)
    v = check(path)
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            assert not v.trusted and "symlinks" in v.reason, v
            return
        assert e.errno in (errno.ENOENT, errno.ENOTDIR), e
        if v.trusted:
            assert v.missing, v  # the tree is root-owned 0755: missing is all it can be
        else:  # `..` led out of the tree, to a directory anyone can create in (/tmp)
            assert "does not exist" in v.reason and v.component is not None, v
            assert not os.path.lexists(v.component)
            parent = os.stat(os.path.dirname(v.component))
            assert parent.st_uid != 0 or parent.st_mode & 0o022, v
        return
    if not v.trusted:  # `..` led out of the tree to something another user owns or can write
        assert v.component is not None and not v.component.startswith(str(base)), v
        st_ = os.lstat(v.component)
        assert st_.st_uid != 0 or st_.st_mode & 0o022, v
        return
    assert not v.missing, v
    assert v.resolved == os.path.realpath(path)
