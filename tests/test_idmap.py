"""Which ids `binfmtctl run` maps (pure decisions; the real build is tests/fleet/test_rootless.py)."""

from __future__ import annotations

from binfmtctl.idmap import Facts, engine_warning, parse_subids, plan_idmap
from binfmtctl.record import replace

SUB = "# comment\nalice:100000:65536\n1001:300000:1000\nbob:bad:1\nalice:500000:0\n"
ALICE = Facts(
    uid=1000,
    gid=1000,
    user="alice",
    subuid=SUB,
    subgid=SUB,
    newuidmap=True,
    newgidmap=True,
    map_auto=True,
)


def test_subordinate_ranges_by_name_or_uid_ignoring_junk() -> None:
    assert parse_subids(SUB, "alice", 1000) == [(100000, 65536)]
    assert parse_subids(SUB, "carol", 1001) == [(300000, 1000)]
    assert parse_subids(SUB, "bob", 1002) == []
    assert parse_subids(SUB, None, 1000) == []


def test_a_user_with_ranges_gets_podmans_own_mapping_and_environment() -> None:
    m = plan_idmap(ALICE)
    assert m.subordinate
    assert m.unshare_args == ("--map-auto", "--map-root-user")
    assert m.env == {
        "_CONTAINERS_USERNS_CONFIGURED": "done",
        "_CONTAINERS_ROOTLESS_UID": "1000",
        "_CONTAINERS_ROOTLESS_GID": "1000",
    }
    assert engine_warning(["podman", "build", "."], m) is None


def test_each_missing_piece_is_named_with_its_fix_and_only_the_caller_is_mapped() -> None:
    cases = [
        (replace(ALICE, subgid=""), "alice has no subordinate ids in /etc/subgid", "usermod"),
        (
            replace(ALICE, user="dave", uid=1003),
            "dave has no subordinate ids in /etc/subuid and /etc/subgid",
            "dave:100000:65536",
        ),
        (replace(ALICE, newgidmap=False), "newuidmap/newgidmap are not installed", "uidmap"),
        (replace(ALICE, map_auto=False), "--map-auto needs util-linux 2.38+", "util-linux"),
        (replace(ALICE, uid=0), "you are root", "normal user"),
    ]
    for facts, reason, fix in cases:
        m = plan_idmap(facts)
        assert not m.subordinate and m.unshare_args == ("--map-root-user",) and not m.env
        assert reason in m.reason and fix in m.fix, (m.reason, m.fix)
        warning = engine_warning(["/usr/bin/podman", "build"], m)
        assert warning is not None and reason in warning and fix in warning
        assert engine_warning(["make", "test"], m) is None
