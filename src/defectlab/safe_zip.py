"""Safe reading of zip archives (the ``.zip`` files labeling tools download), without extracting.

An archive is checked when it is opened: a member whose name is absolute, holds a ``..``
component, a NUL or a drive letter, or that is a symbolic link, makes the whole archive
refused — no honest export has one. A member is checked again when it is read: its declared
size must stay under :attr:`~defectlab.limits.Limits.max_file_bytes` and its compression
ratio under :attr:`~defectlab.limits.Limits.max_compression_ratio` (zip bombs; see
:mod:`defectlab.limits`), and reading stops as soon as more bytes come out than the archive
declared.

Nothing is ever written to disk: images in an archive are referenced as
``ImageSource(path=archive, member="images/x.png")``.

Examples
--------
>>> import io, zipfile
>>> buf = io.BytesIO()
>>> with zipfile.ZipFile(buf, "w") as zf:
...     zf.writestr("annotations.xml", "<annotations/>")
>>> with SafeZip(buf, "demo.zip") as z:
...     z.names(), z.read("annotations.xml")
(['annotations.xml'], b'<annotations/>')
"""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, BinaryIO

from .errors import ParseError
from .limits import DEFAULTS, current, hint

__all__ = ["SafeZip", "MAX_MEMBER_BYTES", "MAX_COMPRESSION_RATIO", "MAX_MEMBERS", "is_zip"]

#: A fixed largest uncompressed member size (bytes) that replaces
#: :attr:`defectlab.limits.Limits.max_file_bytes` (1 GiB by default) when set; None: the limit.
MAX_MEMBER_BYTES: int | None = None
#: The default largest ratio of uncompressed to compressed size of a member that is read
#: (the limit in force: :attr:`defectlab.limits.Limits.max_compression_ratio`). Real XML
#: exports compress 5-50x; deflate cannot exceed ~1030x; zip bombs sit near that limit.
MAX_COMPRESSION_RATIO = DEFAULTS.max_compression_ratio
#: The ratio check applies only to members larger than this (small files say nothing).
RATIO_CHECK_MIN_BYTES = 1 << 20
#: Most members an archive may list.
MAX_MEMBERS = 1_000_000


def is_zip(path: str | Path) -> bool:
    """True when ``path`` is a file that ends like a zip archive (its end-of-central-directory
    record), or one that starts with a zip member whose directory Python cannot read (a
    multi-disk or damaged zip64 record: :class:`SafeZip` then says why it is refused)."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error):
        try:
            with open(path, "rb") as fh:
                return fh.read(4) == b"PK\x03\x04"
        except OSError:
            return False


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if not name:
        return "its name is empty"
    if "\x00" in name:
        return "its name holds a NUL character"
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[0].isalpha() and posix[1] == ":"):
        return "its name is an absolute path"
    if ".." in posix.split("/"):
        return "its name climbs out of the archive with '..'"
    mode = info.external_attr >> 16  # Unix mode bits, when the archiver stored them
    if stat.S_ISLNK(mode):
        return "it is a symbolic link"
    return None


class _LimitedReader:
    """A read-only view of a zip member that refuses to yield more than ``limit`` bytes."""

    def __init__(self, raw: IO[bytes], limit: int, display: str) -> None:
        self._raw = raw
        self._left = limit
        self._display = display

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n if n is not None and n >= 0 else self._left + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
            raise ParseError(self._display, f"cannot read the member ({err})") from err
        self._left -= len(data)
        if self._left < 0:
            raise ParseError(
                self._display, "the member holds more data than the archive declares: refusing it"
            )
        return data

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "_LimitedReader":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class SafeZip:
    """A zip archive opened for safe reading.

    Parameters
    ----------
    path : str, Path or binary file object
        The archive.
    display : str, optional
        The name used in error messages (defaults to ``str(path)``).

    Raises
    ------
    ParseError
        The file is not a readable zip archive, lists more than :data:`MAX_MEMBERS`
        members, or holds an unsafe member (absolute path, ``..``, symbolic link); the
        message names the archive and the member.
    """

    def __init__(self, path: str | Path | BinaryIO, display: str | None = None) -> None:
        self.display = display or str(path)
        try:
            self._zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError, struct.error) as err:
            raise ParseError(self.display, f"not a readable zip archive ({err})") from err
        try:
            infos = self._zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise ParseError(
                    self.display, f"the archive lists {len(infos)} members, more than {MAX_MEMBERS}"
                )
            for info in infos:
                reason = _unsafe_reason(info)
                if reason:
                    raise ParseError(
                        f"{self.display}!{info.filename}", f"refusing the archive: the member {reason}"
                    )
            self._infos = {info.filename: info for info in infos if not info.is_dir()}
        except BaseException:
            self._zf.close()
            raise

    def __enter__(self) -> "SafeZip":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zf.close()

    def names(self) -> list[str]:
        """The file members (folders left out), in archive order."""
        return list(self._infos)

    def __contains__(self, member: str) -> bool:
        return member in self._infos

    def _check(self, member: str) -> zipfile.ZipInfo:
        where = f"{self.display}!{member}"
        info = self._infos.get(member)
        if info is None:
            raise ParseError(self.display, f"no member {member!r} in the archive")
        limits = current()
        max_bytes = MAX_MEMBER_BYTES if MAX_MEMBER_BYTES is not None else limits.max_file_bytes
        if info.file_size > max_bytes:
            raise ParseError(
                where,
                f"refusing a member of {info.file_size} bytes uncompressed "
                f"(the limit is {max_bytes}; {hint('max_file_bytes')})",
            )
        if info.file_size > RATIO_CHECK_MIN_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise ParseError(
                    where,
                    f"refusing a member compressed {ratio:.0f}:1 ({info.file_size} bytes from "
                    f"{info.compress_size}; the limit is {limits.max_compression_ratio:g}:1): a zip bomb? "
                    f"({hint('max_compression_ratio')})",
                )
        return info

    def check_all(self) -> None:
        """Check every member's size and compression ratio (ParseError on the first over a limit)."""
        for member in self._infos:
            self._check(member)

    def open(self, member: str) -> _LimitedReader:
        """A file-like object (``read(n)`` only) over the checked member's bytes.

        Raises
        ------
        ParseError
            No such member, or its size or compression ratio is over the limits.
        """
        info = self._check(member)
        where = f"{self.display}!{member}"
        try:
            raw = self._zf.open(info)
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as err:
            raise ParseError(where, f"cannot read the member ({err})") from err
        return _LimitedReader(raw, info.file_size, where)

    def read(self, member: str) -> bytes:
        """All bytes of the checked member (see :meth:`open`)."""
        with self.open(member) as reader:
            return reader.read()
