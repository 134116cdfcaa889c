"""binfmtctl.record behaves as the standard library's dataclasses, for what binfmtctl uses.

Conformance, not unit tests: every class shape below is built twice, once with
``dataclasses`` and once with ``binfmtctl.record``, by the same function (so both have the
same names and qualnames), and the two are driven the same way and compared: what
construction gives (or the TypeError it raises, message included), defaults and factories,
``==``, ``hash``, ``repr``, frozen assignment, ``replace``, ``fields`` and their metadata,
inheritance, ``__post_init__``, and what is refused when the class is defined.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binfmtctl import record
from tests.conftest import ROOT

STD = SimpleNamespace(
    dataclass=dataclasses.dataclass,
    field=dataclasses.field,
    fields=dataclasses.fields,
    replace=dataclasses.replace,
    is_dataclass=dataclasses.is_dataclass,
    FrozenInstanceError=dataclasses.FrozenInstanceError,
    MISSING=dataclasses.MISSING,
)
REC = SimpleNamespace(
    dataclass=record.dataclass,
    field=record.field,
    fields=record.fields,
    replace=record.replace,
    is_dataclass=record.is_dataclass,
    FrozenInstanceError=record.FrozenInstanceError,
    MISSING=record.MISSING,
)


def _sorted_flags(flags: str) -> str:
    return "".join(sorted(set(flags)))


def build(m: Any) -> dict[str, type]:
    """The class shapes binfmtctl defines, with the implementation ``m``."""
    dc, field = m.dataclass, m.field

    @dc
    class Mutable:  # rules.Verdict, persist.apply.ApplyReport: lists by factory, unhashable
        a: int
        b: str = "x"
        items: list[int] = field(default_factory=list)

    @dc(frozen=True)
    class Frozen:  # most reports: defaults, metadata, compare/repr switched off
        a: int
        b: str = "x"
        c: tuple[int, ...] = ()
        d: dict[str, int] = field(default_factory=dict, compare=False)
        hidden: bool = field(default=False, metadata={"json": False})
        secret: str = field(default="s", repr=False)
        memo: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
        # hijack.NativeSamples: a cache that is no parameter
        cache: dict[str, int] = field(
            default_factory=dict, init=False, repr=False, compare=False, hash=False
        )
        late: int = field(default=5, init=False)

    @dc(frozen=True)
    class Base:
        a: int
        b: str = "x"

        def describe(self) -> str:
            return f"{self.a}/{self.b}"

    @dc(frozen=True)
    class Child(Base):  # inheritance: base fields first, a default overridden
        c: int = 0
        b: str = "child"

    @dc(frozen=True)
    class Normalised:  # entry.Entry: __post_init__ fixing fields of a frozen record
        flags: str
        offset: int = 0

        def __post_init__(self) -> None:
            object.__setattr__(self, "flags", _sorted_flags(self.flags))
            if self.offset < 0:
                raise ValueError("offset < 0")

    @dc
    class OwnHash:  # a __hash__ written in the body is kept
        a: int

        def __hash__(self) -> int:
            return 7

    @dc(frozen=True)
    class OwnEq:  # an __eq__ written in the body is kept (and so is no hash)
        a: int
        b: int = 0

        def __eq__(self, other: object) -> bool:
            return isinstance(other, OwnEq) and self.a == other.a

    @dc(eq=False)
    class Identity:
        a: int

    @dc(unsafe_hash=True)
    class Unsafe:
        a: int
        b: str = field(default="", hash=False)

    @dc(frozen=True)
    class Empty:
        pass

    @dc(frozen=True)
    class Nested:
        inner: Frozen
        more: tuple[Base, ...] = ()

    return {k: v for k, v in locals().items() if isinstance(v, type)}


CLASSES = {"std": build(STD), "rec": build(REC)}
SHAPES = sorted(CLASSES["std"])


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or (exception type name, message): what calling ``fn`` did."""
    try:
        return ("ok", fn())
    except Exception as e:
        return (type(e).__name__, str(e))


def state(obj: Any, m: Any) -> Any:
    """A record as plain data: its class name and field values (nested records too)."""
    if m.is_dataclass(obj) and not isinstance(obj, type):
        return (
            type(obj).__qualname__,
            [(f.name, state(getattr(obj, f.name), m)) for f in m.fields(obj)],
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)([state(x, m) for x in obj])
    return obj


def both(shape: str, fn: Callable[[type, Any], Any]) -> tuple[Any, Any]:
    """``fn(cls, implementation)`` for the stdlib's class and for record's, as outcomes
    with the records turned to plain data."""
    got = []
    for kind, m in (("std", STD), ("rec", REC)):
        kind_outcome = outcome(lambda kind=kind, m=m: fn(CLASSES[kind][shape], m))
        got.append((kind_outcome[0], state(kind_outcome[1], m)))
    return got[0], got[1]


def same(shape: str, fn: Callable[[type, Any], Any]) -> Any:
    std, rec = both(shape, fn)
    assert std == rec, (shape, std, rec)
    return std


values = st.one_of(
    st.integers(-3, 3),
    st.text(max_size=3),
    st.none(),
    st.tuples(st.integers(0, 2)),
    st.lists(st.integers(0, 2), max_size=2),
    st.frozensets(st.integers(0, 2), max_size=2),
)
#: argument lists, right or wrong in number and names, to construct with
calls = st.tuples(
    st.lists(values, max_size=5),
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d", "items", "flags", "offset", "x"]), values, max_size=3
    ),
)


@pytest.mark.parametrize("shape", SHAPES)
@given(call=calls)
def test_construction_is_the_same(shape: str, call: tuple[list[Any], dict[str, Any]]) -> None:
    args, kwargs = call
    same(shape, lambda c, m: c(*args, **kwargs))


@pytest.mark.parametrize("shape", SHAPES)
@given(one=calls, other=calls)
def test_eq_hash_repr_are_the_same(shape: str, one: Any, other: Any) -> None:
    def pair(c: type, m: Any) -> tuple[Any, Any]:
        return c(*one[0], **one[1]), c(*other[0], **other[1])

    def compare(c: type, m: Any) -> Any:
        x, y = pair(c, m)
        h = outcome(lambda: hash(x))
        if h == ("ok", object.__hash__(x)):
            h = ("ok", "by identity")
        return (x == y, x != y, x == x, x == object(), y == x, h, repr(x))

    same(shape, compare)


@pytest.mark.parametrize("shape", SHAPES)
@given(
    call=calls,
    changes=st.dictionaries(
        st.sampled_from(["a", "b", "c", "z", "cache", "late"]), values, max_size=2
    ),
)
def test_replace_is_the_same(shape: str, call: Any, changes: dict[str, Any]) -> None:
    same(shape, lambda c, m: m.replace(c(*call[0], **call[1]), **changes))


@pytest.mark.parametrize("shape", SHAPES)
@given(name=st.sampled_from(["a", "b", "flags", "new"]), value=values)
def test_frozen_assignment_is_the_same(shape: str, name: str, value: Any) -> None:
    def assign(c: type, m: Any) -> Any:
        obj = c(*([1] if m.fields(c) and m.fields(c)[0].default is m.MISSING else []))
        err = outcome(lambda: setattr(obj, name, value))
        gone = outcome(lambda: delattr(obj, name))
        return err, gone, state(obj, m)

    std, _ = both(shape, assign)
    same(shape, assign)
    if std[1][0] == "FrozenInstanceError":  # and the error is an AttributeError both ways
        with pytest.raises(AttributeError):
            setattr(
                CLASSES["rec"][shape](1) if shape != "Empty" else CLASSES["rec"][shape](),
                name,
                value,
            )


@pytest.mark.parametrize("shape", SHAPES)
def test_fields_and_class_attributes_are_the_same(shape: str) -> None:
    def describe(c: type, m: Any) -> Any:
        def default(f: Any) -> Any:
            return "MISSING" if f.default is m.MISSING else f.default

        fs = m.fields(c)
        required = [f for f in fs if f.default is m.MISSING and f.default_factory is m.MISSING]
        return (
            [
                (f.name, f.type, default(f), f.default_factory is m.MISSING, f.init, f.repr)
                for f in fs
            ],
            [(f.hash, f.compare, dict(f.metadata), type(f.metadata).__name__) for f in fs],
            {
                n: outcome(lambda n=n: getattr(c, n))
                for n in ("a", "b", "d", "memo", "cache", "late")
            },
            c.__match_args__,  # type: ignore[attr-defined]
            [n for n in ("__init__", "__repr__", "__eq__", "__hash__") if n in c.__dict__],
            c.__dict__.get("__hash__", "absent") is None,
            m.is_dataclass(c),
            [f.name for f in m.fields(c(*[1] * len(required)))],
        )

    same(shape, describe)


def test_factories_are_called_per_instance() -> None:
    for m, classes in ((STD, CLASSES["std"]), (REC, CLASSES["rec"])):
        x, y = classes["Mutable"](1), classes["Mutable"](2)
        x.items.append(1)
        assert y.items == [] and x.items == [1], m
        assert classes["Child"](1).describe() == "1/child"


def test_what_is_not_a_dataclass() -> None:
    for m in (STD, REC):
        assert not m.is_dataclass(object()) and not m.is_dataclass(int)
        assert outcome(lambda m=m: m.fields(object()))[0] == "TypeError"
        assert outcome(lambda m=m: m.replace(3))[0] == "TypeError"
    # and the two kinds are not mistaken for each other
    assert not dataclasses.is_dataclass(CLASSES["rec"]["Frozen"])
    assert not record.is_dataclass(CLASSES["std"]["Frozen"])


def definition(m: Any, what: str) -> tuple[str, Any]:
    """What defining a class that breaks a dataclass rule does."""
    dc, field = m.dataclass, m.field

    def define() -> Any:
        if what == "mutable default":

            @dc
            class A:
                a: list[int] = []  # noqa: RUF012

        elif what == "non-default after default":

            @dc
            class B:
                a: int = 0
                b: int  # type: ignore[misc]

        elif what == "frozen from non-frozen":

            @dc
            class C:
                a: int

            @dc(frozen=True)
            class D(C):
                b: int = 0

        elif what == "non-frozen from frozen":

            @dc(frozen=True)
            class E:
                a: int

            @dc
            class F(E):
                b: int = 0

        elif what == "both defaults":
            field(default=1, default_factory=list)
        elif what == "field without annotation":

            @dc
            class G:
                a = field(default=1)

        return "defined"

    return outcome(define)


@pytest.mark.parametrize(
    "what",
    [
        "mutable default",
        "non-default after default",
        "frozen from non-frozen",
        "non-frozen from frozen",
        "both defaults",
        "field without annotation",
    ],
)
def test_refused_definitions_are_the_same(what: str) -> None:
    std = definition(STD, what)
    assert std[0] in ("TypeError", "ValueError")
    assert definition(REC, what) == std


def test_what_record_does_not_do_is_refused() -> None:
    for option in ("order", "slots", "kw_only"):
        with pytest.raises(TypeError, match="not supported"):
            record.dataclass(**{option: True})


def test_a_recursive_repr_is_cut_as_the_stdlib_cuts_it() -> None:
    got = []
    for m in (STD, REC):

        @m.dataclass
        class Loop:
            items: list[Any]

        x = Loop([])
        x.items.append(x)
        got.append(repr(x))
    assert (
        got[0]
        == got[1]
        == "test_a_recursive_repr_is_cut_as_the_stdlib_cuts_it.<locals>.Loop(items=[...])"
    )


def test_record_imports_nothing() -> None:
    """Nothing but itself (and modules built into the interpreter, ``__future__``)."""
    code = (
        "import sys; before = set(sys.modules); import binfmtctl.record; "
        "print(sorted(set(sys.modules) - before - set(sys.builtin_module_names)))"
    )
    p = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert p.stdout.strip() == "['__future__', 'binfmtctl', 'binfmtctl.record']", p.stdout
