"""Natural order of names: ``Frame-2`` before ``Frame-10`` (numbers compared as numbers).

Every listing of files or items that defectlab makes sorts this way — readers listing a folder,
image listings, split lists — so that the frames of an in-situ series come in their order
(``…-Frame-2.jpg, …-Frame-10.jpg, …-Frame-124.jpg``), not as text (``10, 124, 2``).

Examples
--------
>>> natural_sorted(["Frame-10.jpg", "Frame-2.jpg", "frame-1.jpg", "Frame-124.jpg"])
['frame-1.jpg', 'Frame-2.jpg', 'Frame-10.jpg', 'Frame-124.jpg']
"""

from __future__ import annotations

import re
from os import PathLike
from typing import Callable, Iterable, TypeVar

__all__ = ["natural_key", "natural_sorted"]

T = TypeVar("T")
_RUNS = re.compile(r"(\d+)")


def natural_key(name: str | PathLike) -> tuple:
    """A sort key: text runs compared case-insensitively, digit runs as numbers; the exact text
    breaks ties (so the order is total and the same on every machine)."""
    text = str(name).replace("\\", "/")
    parts = _RUNS.split(text)
    key = tuple((0, int(p), "") if k % 2 else (1, 0, p.casefold()) for k, p in enumerate(parts) if p)
    return key, text


def natural_sorted(items: Iterable[T], key: Callable[[T], str | PathLike] | None = None) -> list[T]:
    """``items`` in natural order (of ``key(item)``, default the item itself as a string)."""
    get = key if key is not None else (lambda x: x)  # type: ignore[assignment,return-value]
    return sorted(items, key=lambda x: natural_key(get(x)))  # type: ignore[arg-type]
