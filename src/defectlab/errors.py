"""The errors defectlab raises.

One small hierarchy: catch :class:`DefectlabError` to catch everything the library
raises on purpose. A :class:`ParseError` always names the file and the place in it
(a line and column for XML and text, a JSON pointer for JSON) and says what was expected.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DefectlabError",
    "ParseError",
    "FormatError",
    "ImageError",
    "OutputError",
    "DatasetError",
]


class DefectlabError(Exception):
    """Base class of every error defectlab raises on purpose."""


class ParseError(DefectlabError, ValueError):
    """A labeling export could not be read.

    Parameters
    ----------
    path : str or Path
        The file that was being read (for an archive: ``archive.zip!member``).
    message : str
        What was found and what was expected.
    line : int, optional
        1-based line number in the file.
    column : int, optional
        1-based column number in the file.
    where : str, optional
        Any other location, e.g. an XML element path or a JSON pointer.

    Examples
    --------
    >>> err = ParseError("labels.xml", "expected a number for 'cx', got 'abc'", line=12)
    >>> str(err)
    "labels.xml, line 12: expected a number for 'cx', got 'abc'"
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        where: str | None = None,
    ) -> None:
        self.path = str(path)
        self.message = message
        self.line = line
        self.column = column
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        place = self.path
        if self.line is not None:
            place += f", line {self.line}"
            if self.column is not None:
                place += f", column {self.column}"
        if self.where:
            place += f" ({self.where})"
        return f"{place}: {self.message}"

    def __reduce__(self):  # keep the error picklable (multiprocessing, dask)
        return (
            _rebuild_parse_error,
            (self.path, self.message, self.line, self.column, self.where),
        )


def _rebuild_parse_error(path, message, line, column, where):  # pragma: no cover - pickling
    return ParseError(path, message, line=line, column=column, where=where)


class FormatError(DefectlabError, ValueError):
    """The format of a path could not be recognised, or is not supported for the request."""


class ImageError(DefectlabError, OSError):
    """An image file is missing, unreadable, or does not match its annotation."""


class OutputError(DefectlabError, OSError):
    """An output could not be written (exists already, would overwrite input, ...)."""


class DatasetError(DefectlabError, ValueError):
    """A dataset cannot be used for the requested output (sizes differ, too many classes, ...)."""
