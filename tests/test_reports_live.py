"""The live-table, validate and run use cases return reports; the one renderer prints them.

The commands themselves are tested end to end (test_live, test_cli_*, test_rootless); these
pin what the reports carry: the checks before a write, the JSON of a write, and that a
refused write prints no outcome.
"""

from __future__ import annotations

import pytest

from binfmtctl import admission, validation
from binfmtctl.changes import Change
from binfmtctl.cli.render import changes as _changes  # noqa: F401  (registers the renderers)
from binfmtctl.cli.render import jsonable, render_text
from binfmtctl.entry import parse_register
from binfmtctl.errors import UsageError
from binfmtctl.plan import plan_register
from binfmtctl.rules import KernelProfile

ARM = r":qemu-arm:M::\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-arm-static:F"
PROFILE = KernelProfile.parse("6.18")


def test_a_batch_names_every_invalid_input_and_where() -> None:
    batch = admission.parse_batch([ARM.encode(), b":x:Q::ab::/bin/true:"], PROFILE)
    assert [e.name for e in batch.entries] == ["qemu-arm"]
    assert [(b.place, b.problems[0].field) for b in batch.invalid] == [("argument 2", "type")]
    assert batch.error() == ("1 of 2 entries is invalid; nothing was written", None)


def test_a_batch_refuses_a_name_given_twice() -> None:
    with pytest.raises(UsageError, match="also given at a:1"):
        admission.parse_batch([ARM.encode()] * 2, PROFILE, ["a:1", "a:2"])


def test_in_use_refuses_unless_forced_and_says_dry_run() -> None:
    e = parse_register(ARM, PROFILE)
    busy = (admission.Busy(e, ("pid",)),)
    assert admission.InUse(busy, force=True, dry_run=False).error() is None
    refusal = admission.InUse(busy, force=False, dry_run=True).error()
    assert refusal is not None and refusal[0] == "1 entry is in use; nothing was changed (dry run)"
    assert admission.InUse((), force=False, dry_run=False).error() is None


def test_validate_exits_1_when_any_input_is_invalid_and_its_json_is_the_verdicts() -> None:
    good = validation.judge([ARM.encode()], PROFILE)
    assert good.exit_code == 0
    mixed = validation.judge([ARM.encode(), b":x:M::"], PROFILE)
    assert mixed.exit_code == 1
    data = jsonable(mixed)
    assert [v["valid"] for v in data] == [True, False]


def test_a_write_renders_its_json_from_the_plan_only() -> None:
    actions = tuple(plan_register([parse_register(ARM, PROFILE)], []))
    change = Change("register", True, actions, refusal=("no", None))
    assert jsonable(change) == {"dry_run": True, "actions": [a.to_json() for a in actions]}


def test_a_refused_write_prints_the_plan_but_no_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    actions = tuple(plan_register([parse_register(ARM, PROFILE)], []))
    render_text(Change("register", False, actions, refusal=("refused", None)))
    out = capsys.readouterr().out
    assert out.startswith("register   qemu-arm") and "done:" not in out
    render_text(Change("register", False, actions))
    assert capsys.readouterr().out.splitlines()[-1] == "done: 1 change"
