"""Command-line options built from an options dataclass (:mod:`defectlab.options`).

A command names the options classes it takes, and gets an instance of each::

    @app.command()
    @with_options(options=MeasureOptions)
    def measure(source: ..., out: ..., *, options: MeasureOptions) -> None:
        run(source, options)

:func:`with_options` replaces the ``options`` parameter by one typer option per field: its flag
(``cli``), its help text, the choices it lists, its default (shown in ``--help`` from the same
field), and on the way back the field's ``parse``, then the dataclass's own validation. A bad
value ends in one line naming the flag (``--size: expected one of diameter, major_axis; got
'radius'``), exit code 1.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Annotated, Any, Callable, List, Optional

import typer

from ..options import Options, check_value, choices_of, is_flag, number_kind, option_fields

__all__ = ["cli_fields", "flag_of", "from_cli", "with_options"]

#: Choices listed in the placeholder (``[a|b|c]``, never wrapped) up to this length; longer lists
#: go in the help text.
_SHORT_CHOICES = 60


def cli_fields(cls: type[Options], exclude: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are command-line options (not ``cli=False``, not excluded)."""
    unknown = set(exclude) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)}")
    return [f for f in option_fields(cls) if f.metadata["cli"] is not False and f.name not in exclude]


def flag_of(f: dataclasses.Field) -> str:
    """The flag of field ``f`` (the first spelling: ``--figures`` of ``--figures/--no-figures``)."""
    return _decls(f).split("/")[0]


def _decls(f: dataclasses.Field) -> str:
    cli = f.metadata["cli"]
    if cli:
        return cli
    name = "--" + f.name.replace("_", "-")
    return f"{name}/--no-{name[2:]}" if isinstance(f.default, bool) else name


def _kind(f: dataclasses.Field) -> str:
    meta = f.metadata
    if is_flag(f) and meta["parse"] is None:
        return "bool"  # a flag (with a default of None: neither spelling given)
    if meta["multiple"]:
        return "multiple"
    kind = number_kind(f)
    if kind is not None and meta["parse"] is None and meta["convert"] is None and meta["choices"] is None:
        return "int" if kind is int else "float"
    return "str"


def _shown(f: dataclasses.Field) -> str | None:
    """The default as the command line writes it."""
    if f.default is None:
        return None
    show = f.metadata["show"]
    return show(f.default) if show is not None else str(f.default)


def _help(f: dataclasses.Field) -> tuple[str, str | None]:
    """(help text, placeholder) of field ``f``: the choices in one of them."""
    meta = f.metadata
    text, metavar = meta["help"], meta["metavar"]
    choices = choices_of(f)
    if choices:
        listed = "|".join(choices)
        if len(listed) + 2 <= _SHORT_CHOICES:
            metavar = f"[{listed}]"
        else:
            metavar = metavar or "NAME"
            text = f"{text} One of: {', '.join(choices)}."
    kind = _kind(f)
    if metavar is None and kind != "bool":
        metavar = {"int": "INTEGER", "float": "NUMBER", "multiple": "TEXT"}.get(kind, "TEXT")
    return text, metavar


def _parameter(f: dataclasses.Field) -> inspect.Parameter:
    text, metavar = _help(f)
    kind = _kind(f)
    if kind == "bool":
        annotation: Any = bool if isinstance(f.default, bool) else Optional[bool]
        default: Any = f.default
    elif kind == "multiple":
        annotation, default = Optional[List[str]], None
    elif kind in ("int", "float"):
        annotation = int if kind == "int" else float
        annotation, default = (annotation if f.default is not None else Optional[annotation]), f.default
    else:
        annotation, default = Optional[str], _shown(f)
    info = typer.Option(_decls(f), help=text, metavar=metavar if kind != "bool" else None,
                        show_default=default is not None and not (kind == "bool" and "/" not in _decls(f)))
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, info])


def from_cli(cls: type[Options], values: dict[str, Any], exclude: tuple[str, ...] = ()) -> Options:
    """The options instance from the command line's ``values`` (field name -> what typer parsed).

    Raises
    ------
    ValueError
        A value is not what its option expects; the message starts with the flag.
    """
    fields = {f.name: f for f in cli_fields(cls, exclude)}
    checked: dict[str, Any] = {}
    for name, value in values.items():
        f = fields[name]
        try:
            if f.metadata["multiple"]:
                value = tuple(value) if value else None
            elif f.metadata["parse"] is not None and isinstance(value, str):
                value = f.metadata["parse"](value)
            checked[name] = check_value(f, value)
        except ValueError as err:
            raise ValueError(f"{flag_of(f)}: {err}") from None
    return cls(**checked)


def with_options(exclude: tuple[str, ...] = (), **classes: type[Options]) -> Callable[[Callable], Callable]:
    """Give a command one typer option per field of each options class, and the instances.

    Parameters
    ----------
    exclude : tuple of str
        Field names (of any of the classes) left off the command line (they keep their defaults).
    **classes
        Parameter name of the command -> options class; the command's parameter of that name
        receives the instance.

    Returns
    -------
    A decorator for a command function (apply it under ``@app.command()``).
    """

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        missing = [name for name in classes if name not in sig.parameters]
        if missing:
            raise TypeError(f"{fn.__name__} has no parameter {missing}")
        owned = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in classes.items()}
        unknown = set(exclude).difference(*owned.values())
        if unknown:
            raise TypeError(f"{fn.__name__}: no options class has a field {sorted(unknown)}")
        excluded = {name: tuple(e for e in exclude if e in owned[name]) for name in classes}
        generated: dict[str, list[str]] = {}
        taken = {name for name in sig.parameters if name not in classes}
        params: list[inspect.Parameter] = []
        for name, p in sig.parameters.items():  # each options parameter becomes its fields, in place
            if name not in classes:
                params.append(p)
                continue
            fields = cli_fields(classes[name], excluded[name])
            clash = [f.name for f in fields if f.name in taken]
            if clash:
                raise TypeError(f"{fn.__name__}: option {clash} of {classes[name].__name__} clashes with a parameter")
            taken |= {f.name for f in fields}
            generated[name] = [f.name for f in fields]
            params += [_parameter(f) for f in fields]
        positional = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params
                      if p.default is inspect.Parameter.empty]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params
                   if p.default is not inspect.Parameter.empty]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            import warnings

            from ._console import fail, warn

            built = {}
            with warnings.catch_warnings(record=True) as caught:  # e.g. a length without its unit
                warnings.simplefilter("always", UserWarning)
                for pname, names in generated.items():
                    try:
                        built[pname] = from_cli(classes[pname], {n: kwargs.pop(n) for n in names}, excluded[pname])
                    except ValueError as err:
                        fail(err)
            for w in caught:
                warn(str(w.message))
            return fn(**kwargs, **built)

        del command.__wrapped__  # typer reads __signature__, not the wrapped function's
        command.__signature__ = sig.replace(parameters=positional + keyword)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in positional + keyword}
        return command

    return decorate
