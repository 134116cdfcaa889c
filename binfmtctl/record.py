"""Records: the part of the :mod:`dataclasses` API binfmtctl uses, built without ``exec``.

Why it exists (numbers from the pyenv 3.11 interpreter the project ships on, where
``python -c pass`` costs about 10 ms of CPU): ``import dataclasses`` alone costs 10 to
19 ms, because it imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``,
``enum``, ``re``, ``functools``), and every ``@dataclass`` then compiles its ``__init__``,
``__repr__``, ``__eq__`` and ``__hash__`` from source with ``exec``: about 0.2 ms a
class, times the dozens of classes a command line defines. A short command
(``binfmtctl validate ENTRY``) spent more time defining classes than judging its input.
Here the same methods are closures over the class's field list: defining a class costs a
few microseconds and this module imports nothing.

For the type checker this module *is* :mod:`dataclasses`: under ``TYPE_CHECKING`` it
re-exports the real names, so mypy (strict) and its dataclass plugin see real dataclasses
and keep checking every constructor, ``replace`` call and frozen assignment. At runtime
the names below behave as the standard library's do, for what the package uses
(``tests/test_record.py`` builds the same class shapes both ways and compares them):

* ``@dataclass`` and ``@dataclass(frozen=True)`` (also ``init=``, ``repr=``, ``eq=``,
  ``unsafe_hash=``; anything else, e.g. ``order`` or ``slots``, is refused with TypeError);
* ``field(default=, default_factory=, init=, repr=, hash=, compare=, metadata=)``;
* ``fields()``, ``replace()``, ``is_dataclass()``, ``FrozenInstanceError``, ``MISSING``;
* ``__init__`` (positional or keyword, defaults, factories called per instance, the
  same TypeErrors), ``__post_init__``, inheritance (base fields first, frozen and
  non-frozen not mixed), ``__repr__`` ``C(a=1, b='x')`` without ``repr=False`` fields,
  ``__eq__`` on the compared fields of the same class, ``__hash__`` as the standard
  library decides it (frozen+eq: hash of the compared fields; eq without frozen:
  unhashable; a ``__hash__`` written in the class body is kept), ``__match_args__``.

Differences that do not matter here: the stdlib's functions do not know these classes
(``dataclasses.fields(entry)`` raises TypeError: use this module's), ``__init__`` has the
signature ``(*args, **kwargs)``, a class without a docstring gets none, and ``ClassVar``
is recognised only as a string annotation (``from __future__ import annotations``, as
every module of the package has). ``InitVar``, ``kw_only``, ``order``, ``slots`` are not
supported. Instances are built with one ``__dict__`` update (``init=False`` fields with a
factory last), not one ``__setattr__`` per field.
"""

from __future__ import annotations

# the C accessor, without the pure-Python ``operator`` module around it
from _operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from dataclasses import MISSING as MISSING
    from dataclasses import Field as Field
    from dataclasses import FrozenInstanceError as FrozenInstanceError
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
    from dataclasses import fields as fields
    from dataclasses import is_dataclass as is_dataclass
    from dataclasses import replace as replace
    from typing import Any

#: the class attribute holding a record class's fields, by name, in order
FIELDS = "__record_fields__"
#: ``types.MappingProxyType`` without importing ``types``
_Proxy = type(type.__dict__)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()
_EMPTY: Mapping[str, Any] = _Proxy({})


class _FrozenInstanceError(AttributeError):
    """Assigning to or deleting a field of a frozen record."""


_FrozenInstanceError.__name__ = _FrozenInstanceError.__qualname__ = "FrozenInstanceError"


class _Field:
    """One field: what ``field()`` returns and what ``fields()`` lists."""

    def __init__(
        self,
        default: Any,
        default_factory: Any,
        init: bool,
        repr: bool,
        hash: bool | None,
        compare: bool,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.metadata = _EMPTY if metadata is None else _Proxy(dict(metadata))
        self.kw_only = False
        self._classvar = False

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r},type={self.type!r},default={self.default!r},"
            f"default_factory={self.default_factory!r},init={self.init!r},repr={self.repr!r},"
            f"hash={self.hash!r},compare={self.compare!r},metadata={self.metadata!r})"
        )


_Field.__name__ = _Field.__qualname__ = "Field"


def _field(
    *,
    default: Any = _MISSING,
    default_factory: Any = _MISSING,
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, init, repr, hash, compare, metadata)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else ""
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


def _own_fields(cls: type) -> list[_Field]:
    """The fields the class body of ``cls`` declares, in order; class attributes fixed up."""
    # the class's own annotations (inspect.get_annotations is what this module avoids)
    annotations: dict[str, Any] = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    out = []
    for name, annotation in annotations.items():
        value = cls.__dict__.get(name, _MISSING)
        f = (
            value
            if isinstance(value, _Field)
            else _Field(value, _MISSING, True, True, None, True, None)
        )
        f.name, f.type = name, annotation
        if _is_classvar(annotation):
            if f.default_factory is not _MISSING:
                raise TypeError(f"field {name} cannot have a default factory")
            f._classvar = True
        elif f.default is not _MISSING and type(f.default).__hash__ is None:
            raise ValueError(
                f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory"
            )
        if isinstance(value, _Field):
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        out.append(f)
    for name, value in cls.__dict__.items():
        if isinstance(value, _Field) and name not in annotations:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    return out


def _bind(
    cls: type,
    fs: tuple[_Field, ...],
    index: dict[str, int],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> list[Any]:
    """The field values of ``cls(*args, **kwargs)``, in field order, as the stdlib's
    generated ``__init__`` binds them (defaults, factories, the same TypeErrors)."""
    n = len(fs)
    where = f"{cls.__qualname__}.__init__()"
    for key in kwargs:  # in CPython's order: the keywords, then the count, then what is missing
        i = index.get(key)
        if i is None:
            raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
        if i < len(args):
            raise TypeError(f"{where} got multiple values for argument {key!r}")
    if len(args) > n:  # CPython's wording, counting self
        required = 1 + sum(f.default is _MISSING and f.default_factory is _MISSING for f in fs)
        takes = f"from {required} to {n + 1}" if required <= n else f"{n + 1}"
        s = "s" if required <= n or n else ""
        raise TypeError(
            f"{where} takes {takes} positional argument{s} but {len(args) + 1} were given"
        )
    values: list[Any] = [*args, *[_UNSET] * (n - len(args))]
    for key, value in kwargs.items():
        values[index[key]] = value
    missing = []
    for i in range(len(args), n):
        if values[i] is _UNSET:
            f = fs[i]
            if f.default_factory is not _MISSING:
                values[i] = f.default_factory()
            elif f.default is not _MISSING:
                values[i] = f.default
            else:
                missing.append(repr(f.name))
    if missing:
        names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
        s = "s" if len(missing) > 1 else ""
        raise TypeError(f"{where} missing {len(missing)} required positional argument{s}: {names}")
    return values


_UNSET: Any = object()


def _make_init(cls: type, every: tuple[_Field, ...]) -> Callable[..., None]:
    """``__init__``: all positional arguments given is the fast case (one dict update);
    anything else is bound by :func:`_bind`. ``init=False`` fields are no parameters: those
    with a factory get its value, the others read the class attribute."""
    fs = tuple(f for f in every if f.init)
    names = tuple(f.name for f in fs)
    n = len(names)
    index = {name: i for i, name in enumerate(names)}
    made = tuple(
        (f.name, f.default_factory)
        for f in every
        if not f.init and f.default_factory is not _MISSING
    )
    post_init = hasattr(cls, "__post_init__")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs or len(args) != n:
            args = _bind(cls, fs, index, args, kwargs)  # type: ignore[assignment]
        d = self.__dict__
        d.update(zip(names, args, strict=True))
        for name, factory in made:
            d[name] = factory()
        if post_init:
            self.__post_init__()

    return __init__


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the tuple of the ``names`` attributes of its argument (the
    tuple the stdlib's generated methods build), fast: operator.attrgetter in C."""
    if not names:
        return lambda obj: ()
    get = attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (get(obj),)
    return get


_repr_running: set[int] = set()


def _make_repr(fs: tuple[_Field, ...]) -> Callable[[Any], str]:
    names = tuple(f.name for f in fs if f.repr)
    get = _getter(names)

    def __repr__(self: Any) -> str:
        key = id(self)
        if key in _repr_running:  # a record that contains itself (reprlib's guard)
            return "..."
        _repr_running.add(key)
        try:
            shown = ", ".join([f"{n}={v!r}" for n, v in zip(names, get(self), strict=True)])
        finally:
            _repr_running.discard(key)
        return f"{self.__class__.__qualname__}({shown})"

    return __repr__


def _make_eq(fs: tuple[_Field, ...]) -> Callable[[Any, object], Any]:
    get = _getter(tuple(f.name for f in fs if f.compare))

    def __eq__(self: Any, other: object) -> Any:
        if other.__class__ is self.__class__:
            return get(self) == get(other)
        return NotImplemented

    return __eq__


def _make_hash(fs: tuple[_Field, ...]) -> Callable[[Any], int]:
    get = _getter(tuple(f.name for f in fs if (f.compare if f.hash is None else f.hash)))

    def __hash__(self: Any) -> int:
        return hash(get(self))

    return __hash__


def _make_frozen(
    cls: Any, names: frozenset[str]
) -> tuple[Callable[..., None], Callable[..., None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise _FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise _FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


def _set_new(cls: type, name: str, value: Any) -> bool:
    """Add a method the class body does not define itself (as the stdlib does)."""
    if name in cls.__dict__:
        return True
    value.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, value)
    return False


def _process(
    cls: Any,
    init: bool,
    repr: bool,
    eq: bool,
    frozen: bool,
    unsafe_hash: bool,
) -> Any:
    every: dict[str, _Field] = {}
    bases_frozen = []
    for base in cls.__mro__[-1:0:-1]:
        base_fields = base.__dict__.get(FIELDS)
        if base_fields is not None:
            every.update(base_fields)
            bases_frozen.append(base.__dict__["__record_frozen__"])
    if bases_frozen and any(bases_frozen) and not frozen:
        raise TypeError("cannot inherit non-frozen dataclass from a frozen one")
    if bases_frozen and not any(bases_frozen) and frozen:
        raise TypeError("cannot inherit frozen dataclass from a non-frozen one")
    for f in _own_fields(cls):
        every[f.name] = f
    setattr(cls, FIELDS, every)
    cls.__record_frozen__ = frozen
    fs = tuple(f for f in every.values() if not f._classvar)
    seen_default = False
    for f in fs:
        if not f.init:
            continue
        if f.default is not _MISSING or f.default_factory is not _MISSING:
            seen_default = True
        elif seen_default and init:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    if init:
        _set_new(cls, "__init__", _make_init(cls, fs))
    if repr:
        _set_new(cls, "__repr__", _make_repr(fs))
    if eq:
        _set_new(cls, "__eq__", _make_eq(fs))
    if frozen:
        setattr_, delattr_ = _make_frozen(cls, frozenset(f.name for f in fs))
        if _set_new(cls, "__setattr__", setattr_) or _set_new(cls, "__delattr__", delattr_):
            raise TypeError(f"Cannot overwrite attribute __setattr__ in class {cls.__name__}")
    own_hash = cls.__dict__.get("__hash__", _MISSING)
    explicit_hash = not (own_hash is _MISSING or (own_hash is None and "__eq__" in cls.__dict__))
    if unsafe_hash:
        if explicit_hash:
            raise TypeError(f"Cannot overwrite attribute __hash__ in class {cls.__name__}")
        cls.__hash__ = _make_hash(fs)
    elif eq and not explicit_hash:
        if frozen:
            hash_ = _make_hash(fs)
            hash_.__qualname__ = f"{cls.__qualname__}.__hash__"
            cls.__hash__ = hash_
        else:
            cls.__hash__ = None
    if "__match_args__" not in cls.__dict__:
        cls.__match_args__ = tuple(f.name for f in fs if f.init)  # type: ignore[misc]
    return cls


_OPTIONS = frozenset(("init", "repr", "eq", "frozen", "unsafe_hash"))


def _dataclass(cls: type | None = None, /, **options: bool) -> Any:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(
            f"binfmtctl.record: dataclass({', '.join(sorted(unknown))}=...) is not supported"
        )

    def wrap(c: type) -> Any:
        return _process(
            c,
            init=options.get("init", True),
            repr=options.get("repr", True),
            eq=options.get("eq", True),
            frozen=options.get("frozen", False),
            unsafe_hash=options.get("unsafe_hash", False),
        )

    return wrap if cls is None else wrap(cls)


def _fields(class_or_instance: Any) -> tuple[_Field, ...]:
    every = getattr(class_or_instance, FIELDS, None)
    if every is None:
        raise TypeError("must be called with a dataclass type or instance")
    return tuple(f for f in every.values() if not f._classvar)


def _is_dataclass(obj: Any) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return hasattr(cls, FIELDS)


def _replace(obj: Any, /, **changes: Any) -> Any:
    if isinstance(obj, type) or not hasattr(obj, FIELDS):
        raise TypeError("replace() should be called on dataclass instances")
    for f in _fields(obj):
        if not f.init:
            if f.name in changes:
                raise ValueError(
                    f"field {f.name} is declared with init=False, it cannot be specified with replace()"
                )
        elif f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


if not TYPE_CHECKING:
    MISSING = _MISSING
    Field = _Field
    FrozenInstanceError = _FrozenInstanceError
    dataclass = _dataclass
    field = _field
    fields = _fields
    is_dataclass = _is_dataclass
    replace = _replace
