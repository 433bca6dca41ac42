"""Small helpers the JSON-based readers share."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

__all__ = ["json_pointer", "item_name"]


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
