"""Small helpers the JSON-based readers share: loading a document safely, numbers, pointers."""

from __future__ import annotations

import json
import math
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import ParseError
from ..limits import current, hint, nesting_depth
from ._text import decode_text

__all__ = ["json_pointer", "item_name", "load_json", "to_float"]

_HUGE_INT = re.compile(r"-?\d{4300,}")


def load_json(data: bytes, display: str, *, expected: str | None = None, line: int | None = None) -> Any:
    """Parse ``data`` (a whole file, or one NDJSON line) as UTF-8 JSON.

    Parameters
    ----------
    data : bytes
        The document.
    display : str
        The file name for messages.
    expected : str, optional
        What the file should be, for messages (``"a COCO JSON file"``).
    line : int, optional
        The line of ``data`` in its file (NDJSON), given to every error.

    Raises
    ------
    ParseError
        Not UTF-8 (see :func:`~defectlab.formats._text.decode_text`), not valid JSON (with
        the line and column), an integer of thousands of digits, or nesting deeper than
        :attr:`defectlab.limits.Limits.max_nesting_depth`. ``NaN`` and ``Infinity`` are read
        (Python's json does) and left to the readers' finiteness checks.

    Examples
    --------
    >>> load_json(b'{"a": [1, 2.5]}', "x.json")
    {'a': [1, 2.5]}
    >>> load_json(b'{"a": [[[[1]]]]}' , "x.json")["a"][0][0]
    [[1]]
    >>> load_json(b'{"a": 1,}', "x.json")
    Traceback (most recent call last):
    ...
    defectlab.errors.ParseError: x.json, line 1, column 9: not valid JSON: Expecting property name enclosed in double quotes
    """
    try:
        text = decode_text(data, display, expected=expected)
    except ParseError as err:
        if line is None:
            raise
        raise ParseError(display, err.message.replace("at line 1, ", "at "), line=line) from None
    limit = current().max_nesting_depth
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ParseError(display, f"not valid JSON: {err.msg}", line=line or err.lineno, column=err.colno) from None
    except RecursionError:
        raise ParseError(display, f"JSON nested deeper than the limit of {limit} levels ({hint('max_nesting_depth')})",
                         line=line) from None
    except ValueError as err:  # Python refuses integers of more than 4300 digits
        found = _HUGE_INT.search(text)
        place: dict[str, int | None] = {"line": line}
        if found is not None:
            before = text[: found.start()]
            place = {"line": line or before.count("\n") + 1, "column": found.start() - before.rfind("\n")}
        digits = len(found.group().lstrip("-")) if found else "thousands of"
        raise ParseError(display, f"a number of {digits} digits: not a size, id or coordinate ({err.__class__.__name__})",
                         **place) from None
    depth = nesting_depth(doc, stop=limit)
    if depth > limit:
        raise ParseError(display, f"JSON nested {depth}+ levels deep, over the limit of {limit} "
                         f"({hint('max_nesting_depth')})", line=line)
    return doc


def to_float(value: int | float) -> float:
    """``float(value)``, with integers beyond float range as ±inf instead of OverflowError.

    >>> to_float(3), to_float(-10**400)
    (3.0, -inf)
    """
    try:
        return float(value)
    except OverflowError:
        return -math.inf if value < 0 else math.inf


def json_pointer(parts: tuple) -> str:
    """A JSON pointer (RFC 6901) from keys and indices.

    >>> json_pointer(("annotations", 3, "a/b"))
    '/annotations/3/a~1b'
    """
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def item_name(name: str) -> str:
    """A relative POSIX item name: URL → its file name; absolute or climbing paths → basename.

    >>> item_name("https://host/a/b%20c.png"), item_name("../x/y.png"), item_name("sub/z.png")
    ('b c.png', 'y.png', 'sub/z.png')
    """
    posix = name.replace("\\", "/")
    if "://" in posix:
        posix = PurePosixPath(unquote(urlparse(posix).path)).name
    p = PurePosixPath(posix)
    if p.is_absolute() or ".." in p.parts or (len(posix) > 1 and posix[1] == ":"):
        return p.name
    return str(p)
