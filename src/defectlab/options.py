"""A verb's options, declared once: a frozen, slotted, validated dataclass per verb.

Every verb (``measure``, ``check``, ``prepare``, …) keeps its options in one dataclass whose
fields carry everything the library, the Python API and the command line need to know: the
default, the help text, the flag's spelling, the allowed choices and bounds, and how a
command-line string becomes the value. The library and the API take the dataclass (or its
field names as keywords, :meth:`Options.build`); the command line builds its options and the
defaults shown in ``--help`` from it (:mod:`defectlab.commands._options`). A new option is one
new field.

Declaring options::

    @dataclass(frozen=True, slots=True)
    class FooOptions(Options):
        verb: ClassVar[str] = "foo"

        radius_px: float = option(3.0, help="Radius of the thing, px.", cli="--radius", min=0)
        method: str = option("fast", help="How to do it.", choices=("fast", "exact"))

Field metadata (all optional but ``help``): ``cli`` (the flag, e.g. ``"--pixel-size"``; a bool
field may give ``"--a/--b"``; False keeps the field off the command line; default
``--<name-with-dashes>``), ``choices`` (allowed strings), ``min``/``max`` (inclusive bounds),
``above`` (an exclusive lower bound), ``convert`` (a callable normalizing any value the library
accepts, e.g. ``"0.38nm"`` → 0.38; idempotent; it raises ValueError saying what was expected), ``parse`` (a callable turning the
command-line string into a value, when ``convert`` alone does not), ``show`` (a callable turning
the default into the string the help shows and ``parse`` reads back), ``metavar``, ``multiple``
(a tuple-valued field whose flag repeats).

Examples
--------
>>> from dataclasses import dataclass
>>> from typing import ClassVar
>>> @dataclass(frozen=True, slots=True)
... class Demo(Options):
...     verb: ClassVar[str] = "demo"
...     ratio: float = option(0.5, help="A ratio.", above=0, max=1)
...     mode: str = option("a", help="A mode.", choices=("a", "b"))
>>> Demo(ratio=1).ratio, Demo.build(mode="b").mode
(1.0, 'b')
>>> Demo(ratio=0)
Traceback (most recent call last):
...
ValueError: demo: ratio: expected a number in (0, 1], got 0
>>> Demo.build(rato=0.2)
Traceback (most recent call last):
...
TypeError: demo: no option 'rato'; the options are ratio, mode
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar

__all__ = ["Options", "check_value", "flag", "label_tuple", "number_or_name", "option", "option_fields"]

T = TypeVar("T", bound="Options")

#: The metadata keys a field may carry (a typo is an error, not a silently ignored key).
METADATA_KEYS = frozenset({"help", "cli", "choices", "min", "max", "above", "convert", "parse", "show",
                           "metavar", "multiple"})


def option(
    default: Any = None,
    *,
    help: str,
    cli: str | bool | None = None,
    choices: Sequence[str] | None = None,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    convert: Callable[[Any], Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] | None = None,
    metavar: str | None = None,
    multiple: bool = False,
) -> Any:
    """A dataclass field of an :class:`Options` class, with what the CLI and the checks need.

    Parameters
    ----------
    default
        The default value (immutable: a tuple, not a list).
    help : str
        One or two plain sentences (no rich markup; the CLI shows them as written).
    cli : str, False or None
        The flag (``"--pixel-size"``; ``"--figures/--no-figures"`` for a bool with both);
        False: not on the command line; None: ``--<name with dashes>``.
    choices : sequence of str, optional
        The allowed values (listed in ``--help``).
    min, max, above : float, optional
        Inclusive bounds, and an exclusive lower bound.
    convert : callable, optional
        Normalizes a value the library accepts (raise ValueError with what was expected).
    parse : callable, optional
        Turns the command-line string into a value, before ``convert``.
    show : callable, optional
        The default as the command line writes it (``parse(show(default)) == default``).
    metavar : str, optional
        The value's placeholder in ``--help`` (``NM``, ``WxH``, …).
    multiple : bool
        A tuple of strings whose flag is repeated (``--cavity-label a --cavity-label b``).

    Returns
    -------
    dataclasses.Field
    """
    if not help or not help.strip():
        raise ValueError("option: expected a help text")
    meta = {"help": " ".join(help.split()), "cli": cli, "choices": tuple(choices) if choices else None,
            "min": min, "max": max, "above": above, "convert": convert, "parse": parse, "show": show,
            "metavar": metavar, "multiple": multiple}
    if isinstance(default, (list, dict, set)):
        raise ValueError(f"option: expected an immutable default, got {default!r}")
    return dataclasses.field(default=default, metadata=MappingProxyType(meta))


def flag(default: bool = False, *, help: str, cli: str | bool | None = None) -> Any:
    """A bool :func:`option` (on the command line ``--name`` or the spelling given in ``cli``)."""
    return option(bool(default), help=help, cli=cli)


def option_fields(cls: type[Options] | Options) -> tuple[dataclasses.Field, ...]:
    """The fields of an options class declared with :func:`option` (in declaration order)."""
    return tuple(f for f in dataclasses.fields(cls) if "help" in f.metadata)


def _bounds_text(lo: float | None, hi: float | None, open_lo: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if open_lo else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{'>' if open_lo else '>='} {lo:g}"
    return f"<= {hi:g}"


def _number(value: Any, kind: type) -> float | int:
    """``value`` as an int or a finite float, or a ValueError saying what was expected."""
    what = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ValueError(f"expected {what}, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected {what}, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    if kind is int:
        if not number.is_integer():
            raise ValueError(f"expected {what}, got {value!r}")
        return int(number)
    return number


def check_value(f: dataclasses.Field, value: Any) -> Any:
    """The value of option field ``f`` validated and normalized.

    Raises
    ------
    ValueError
        What was expected and what was given (without the field's name: the caller says
        which option it is, by its name in Python or its flag on the command line).
    """
    meta = f.metadata
    given = value
    if value is None:
        if f.default is None:
            return None
        raise ValueError("expected a value, got None")
    if meta["convert"] is not None:
        value = meta["convert"](value)
    elif meta["multiple"]:
        value = label_tuple(value)
    elif isinstance(f.default, bool):
        if not isinstance(value, bool):
            import numpy as np

            if not isinstance(value, np.bool_):
                raise ValueError(f"expected True or False, got {value!r}")
            value = bool(value)
    elif isinstance(f.default, (int, float)):
        value = _number(value, type(f.default))
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"expected one of {', '.join(meta['choices'])}; got {given!r}")
    lo, hi, above = meta["min"], meta["max"], meta["above"]
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and (lo, hi, above) != (None, None, None):
        low = above if above is not None else lo
        bad = (above is not None and not value > above) or (lo is not None and not value >= lo) \
            or (hi is not None and not value <= hi)
        if bad:
            raise ValueError(f"expected a number {_bounds_text(low, hi, above is not None)}, got {given!r}")
    return value


class Options:
    """Base of the options dataclasses: field validation, :meth:`build`, :meth:`to_dict`.

    A subclass is a ``@dataclass(frozen=True, slots=True)`` whose fields are made with
    :func:`option`; ``verb`` (a ClassVar) names it in error messages. Cross-field rules go in
    ``_validate(self)``, which runs after every field was checked.
    """

    __slots__ = ()
    verb: ClassVar[str] = "options"

    def __post_init__(self) -> None:
        for f in option_fields(self):
            unknown = set(f.metadata) - METADATA_KEYS
            if unknown:  # pragma: no cover - a declaration error
                raise TypeError(f"{type(self).__name__}.{f.name}: unknown option metadata {sorted(unknown)}")
            try:
                value = check_value(f, getattr(self, f.name))
            except ValueError as err:
                raise ValueError(f"{self.verb}: {f.name}: {err}") from None
            object.__setattr__(self, f.name, value)
        self._validate()

    def _validate(self) -> None:
        """Rules between fields (subclasses); raise ValueError."""

    @classmethod
    def build(cls: type[T], options: T | Mapping[str, Any] | None = None, /, **changes: Any) -> T:
        """``options`` (or the defaults) with ``changes`` applied; a TypeError for an unknown name.

        This is how library functions take both ``options=`` and the options' names as keywords:
        ``measure(ds, pixel_size="0.5nm")`` is ``measure(ds, MeasureOptions(pixel_size="0.5nm"))``.
        """
        if isinstance(options, Mapping):
            changes = {**options, **changes}
            options = None
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"{cls.verb}: expected {cls.__name__}, got {type(options).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for name in changes:
            if name not in names:
                raise TypeError(f"{cls.verb}: no option {name!r}; the options are {', '.join(names)}")
        if options is None:
            return cls(**changes)
        return dataclasses.replace(options, **changes) if changes else options

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` (validated again)."""
        return type(self).build(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values by field name (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# Converters shared by several verbs


def label_tuple(value: Any) -> tuple[str, ...] | None:
    """Label names as a tuple of non-empty strings; a comma-separated string is split.

    Examples
    --------
    >>> label_tuple(["bubble", " void "]), label_tuple("a,b"), label_tuple(())
    (('bubble', 'void'), ('a', 'b'), None)
    """
    items = value.split(",") if isinstance(value, str) else value
    try:
        names = tuple(str(v).strip() for v in items)
    except TypeError:
        raise ValueError(f"expected label names, got {value!r}") from None
    if any(not isinstance(v, str) for v in items) or any(not n for n in names):
        raise ValueError(f"expected non-empty label names, got {value!r}")
    return names or None


def number_or_name(value: Any) -> int | str:
    """A histogram bin rule: a positive bin count, or one of numpy's names ("auto", "fd", …).

    Examples
    --------
    >>> number_or_name("20"), number_or_name(20), number_or_name("fd")
    (20, 20, 'fd')
    """
    names = ("auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt")
    if isinstance(value, str) and value.strip().lower() in names:
        return value.strip().lower()
    try:
        n = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        n = None
    if n is None or n < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a number of bins >= 1 or one of {', '.join(names)}, got {value!r}")
    return n
