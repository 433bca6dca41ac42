"""Progress bars for long loops (terminal or notebook), off when not wanted."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

__all__ = ["progress_iter"]

T = TypeVar("T")


def progress_iter(items: Iterable[T], *, total: int, desc: str, enabled: bool) -> Iterator[T]:
    """``items`` with a progress bar (terminal or notebook) when ``enabled``."""
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="img")
