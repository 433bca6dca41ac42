"""Reading an annotation file's bytes and text safely; shared by every reader.

* :func:`read_file` refuses a file over :attr:`defectlab.limits.Limits.max_file_bytes`
  before reading it, and turns OS errors into :class:`~defectlab.errors.ParseError`;
* :func:`decode_text` accepts UTF-8 (with or without a byte-order mark) and names what it
  found otherwise — UTF-16/UTF-32 (by their byte-order mark, or the NUL bytes of one without
  it), or the first byte that is not UTF-8 with its line and column (Latin-1 or
  Windows-1252 text, a binary file).

Examples
--------
>>> decode_text("h\u00e9".encode(), "a.txt")
'hé'
>>> decode_text("h\u00e9".encode("utf-16"), "a.txt")
Traceback (most recent call last):
...
defectlab.errors.ParseError: a.txt: not UTF-8 text: UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8
>>> decode_text(b"ok\\nh\\xe9", "b.txt")
Traceback (most recent call last):
...
defectlab.errors.ParseError: b.txt: not UTF-8 text: the byte 0xe9 at line 2, column 2 is not UTF-8 (Latin-1 or Windows-1252 text? save it as UTF-8)
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import ParseError
from ..limits import check_file_bytes

__all__ = ["read_file", "decode_text", "SNIFF_BYTES"]

#: How many bytes of a file a format's ``sniff`` reads to recognise it.
SNIFF_BYTES = 4096

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)


def read_file(path: str | Path, display: str | None = None) -> bytes:
    """All bytes of the file ``path``, refused over ``max_file_bytes``.

    Raises
    ------
    ParseError
        The file cannot be read (missing, a folder, no permission) or is over the limit;
        the message names ``display`` (default: ``path``).
    """
    name = display or str(path)
    try:
        with open(path, "rb") as fh:
            size = _size(fh)
            try:
                check_file_bytes(size)
            except ValueError as err:
                raise ParseError(name, str(err)) from None
            return fh.read()
    except OSError as err:
        raise ParseError(name, f"cannot read the file ({err.strerror or err})") from err


def _size(fh) -> int:
    import os

    return os.fstat(fh.fileno()).st_size


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def decode_text(data: bytes, display: str, *, expected: str | None = None) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark dropped).

    Parameters
    ----------
    data : bytes
        The file's bytes.
    display : str
        The file name for messages.
    expected : str, optional
        What the file should be, appended to messages (``"a COCO JSON file"``).

    Raises
    ------
    ParseError
        UTF-16/UTF-32 text, NUL bytes, or bytes that are not UTF-8, with the line and column
        of the first bad byte.
    """
    tail = f"; expected {expected}" if expected else ""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise ParseError(display, f"not UTF-8 text: {name} (it starts with a {name} byte-order mark); "
                             f"save it as UTF-8{tail}")
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = _line_col(data, nul)
        raise ParseError(display, f"not UTF-8 text: a NUL byte at line {line}, column {column} (UTF-16 text "
                         f"without a byte-order mark, or a binary file){tail}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line, column = _line_col(data, err.start)
        bad = data[err.start]
        raise ParseError(
            display, f"not UTF-8 text: the byte {bad:#04x} at line {line}, column {column} is not UTF-8 "
            f"(Latin-1 or Windows-1252 text? save it as UTF-8){tail}",
        ) from None
    return text
