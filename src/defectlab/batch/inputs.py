"""What a batch runs on: input specifications → sorted unique paths → units of work.

An input specification is one of

* a **file**: taken as it is;
* a **folder**: for micrographs, every image file in it, searched recursively (hidden files
  and folders, whose names start with ``.``, are left out); for labeling exports, the folder
  itself (an export is often a folder);
* a **glob** pattern (``frames/*.tif``, ``runs/**/*.dm4``; quote it in a shell): the paths it
  matches, each treated as above; for micrographs, matched files that are not images are
  left out;
* a **list file** (``.txt``, ``.lst``, ``.list``): one specification per line, relative to
  the list file's folder; blank lines and lines starting with ``#`` are ignored.

The result is sorted and without duplicates (two specifications naming the same file count
once), so the same inputs always give the same batch, whatever order they were given in.

A :class:`Unit` is one piece of work: its output folder name (``key``), the bytes that
identify its input (a file, a member of a zip, or a folder), and for measurements the
labeled :class:`~defectlab.model.Item` itself.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("b.png", "a.tif", "notes.md", "sub/c.png"):
...     (root / name).parent.mkdir(exist_ok=True)
...     _ = (root / name).write_bytes(b"")
>>> _ = (root / "list.txt").write_text("# frames\\nb.png\\nsub/c.png\\n")
>>> [p.relative_to(root).as_posix() for p in expand_inputs([root])]
['a.tif', 'b.png', 'sub/c.png']
>>> [p.name for p in expand_inputs([root / "list.txt", root / "b.png", str(root / "*.tif")])]
['a.tif', 'b.png', 'c.png']
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterable, Literal, Sequence

from ..errors import DefectlabError

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Item, Label

__all__ = [
    "BatchError", "IMAGE_SUFFIXES", "LIST_SUFFIXES", "RESERVED_KEYS", "Unit", "check_keys", "expand_inputs",
    "key_of",
]

#: File suffixes taken as micrographs when a folder or glob is expanded.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".dm3", ".dm4", ".ser", ".emd")
#: File suffixes read as lists of inputs.
LIST_SUFFIXES: tuple[str, ...] = (".txt", ".lst", ".list")
#: Names in the output folder that belong to the batch itself, not to an input.
RESERVED_KEYS: frozenset[str] = frozenset({"_batch"})

_GLOB = re.compile(r"[*?\[]")


class BatchError(DefectlabError):
    """A batch cannot start: inputs missing, output names colliding, no workers, …"""


@dataclass(frozen=True)
class Unit:
    """One piece of work of a batch.

    Attributes
    ----------
    key : str
        The output folder's name, ``out/<key>/``; unique in the batch.
    path : Path or None
        The file or folder whose bytes identify the input (a micrograph, an export); None
        when there is none (a labeled item whose image was not found).
    member : str or None
        A member of the zip archive ``path`` (its bytes identify the input instead).
    item : Item or None
        For measurements: the labeled item (its shapes travel with the unit).
    labels : tuple of Label
        For measurements: every label of the batch, in class order (class ids are the same
        in every unit).
    labels_sha256 : str or None
        Digest of the item's labels (part of what makes an output current).
    """

    key: str
    path: Path | None
    member: str | None = None
    item: "Item | None" = None
    labels: "tuple[Label, ...]" = ()
    labels_sha256: str | None = None

    @property
    def source(self) -> str:
        """The input as people name it: ``path``, ``archive.zip!member``, or the item's name."""
        if self.path is None:
            return self.item.name if self.item is not None else self.key
        return f"{self.path}!{self.member}" if self.member else str(self.path)


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _folder_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in suffixes and not _is_hidden(p, folder))
    if not files:
        raise BatchError(f"{folder}: no input files ({', '.join(suffixes)}) in this folder")
    return files


def _expand_one(spec: Path, kind: str, suffixes: Sequence[str], *, in_list: Path | None) -> list[Path]:
    where = f" (listed in {in_list})" if in_list else ""
    if spec.is_file() and spec.suffix.lower() in LIST_SUFFIXES and in_list is None:
        return _read_list(spec, kind, suffixes)
    if spec.is_dir():
        return [spec] if kind == "exports" else _folder_files(spec, suffixes)
    if spec.is_file():
        return [spec]
    if _GLOB.search(str(spec)):
        matches = sorted(Path(m) for m in glob.glob(str(spec), recursive=True))
        found: list[Path] = []
        for m in matches:
            if m.is_dir():
                found += [m] if kind == "exports" else _folder_files(m, suffixes)
            elif kind == "exports" or m.suffix.lower() in suffixes:
                found.append(m)
        if not found:
            raise BatchError(f"{spec}{where}: the pattern matches no input"
                             + ("" if kind == "exports" else f" ({', '.join(suffixes)})"))
        return found
    raise BatchError(f"{spec}{where}: no such file or folder")


def _read_list(path: Path, kind: str, suffixes: Sequence[str]) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BatchError(f"{path}: cannot read the list of inputs ({err})") from err
    found: list[Path] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        spec = Path(line).expanduser()
        if not spec.is_absolute():
            spec = path.parent / spec
        found += _expand_one(spec, kind, suffixes, in_list=path)
    if not found:
        raise BatchError(f"{path}: the list of inputs is empty")
    return found


def expand_inputs(
    specs: Iterable[str | Path],
    *,
    kind: Literal["micrographs", "exports"] = "micrographs",
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
) -> list[Path]:
    """Sorted unique absolute paths of the inputs that ``specs`` name (see the module docstring).

    Parameters
    ----------
    specs : iterable of str or Path
        Files, folders, glob patterns, list files.
    kind : {"micrographs", "exports"}
        ``"micrographs"``: folders are searched for files with ``suffixes``;
        ``"exports"``: a folder is one input (a labeling export).
    suffixes : sequence of str
        Lower-case file suffixes of micrographs.

    Raises
    ------
    BatchError
        A specification names nothing (the message says which, and from which list file),
        or no specification was given.
    """
    if kind not in ("micrographs", "exports"):
        raise ValueError(f"expected kind 'micrographs' or 'exports', got {kind!r}")
    if isinstance(specs, (str, Path)):
        specs = [specs]
    suffixes = tuple(s.lower() for s in suffixes)
    found: dict[Path, None] = {}
    n = 0
    for spec in specs:
        n += 1
        for p in _expand_one(Path(spec).expanduser(), kind, suffixes, in_list=None):
            found[p.absolute()] = None
    if n == 0:
        raise BatchError("no inputs given")
    return sorted(found, key=lambda p: p.as_posix())


def key_of(name: str) -> str:
    """An output folder name from an input's name: the stem, folders joined by ``__``.

    Examples
    --------
    >>> key_of("frame_0001.tif"), key_of("Train/a.png"), key_of("run1")
    ('frame_0001', 'Train__a', 'run1')
    """
    p = PurePosixPath(name.replace("\\", "/"))
    stem = str(p.with_suffix("")) if p.suffix else str(p)
    return stem.strip("/").replace("/", "__")


def check_keys(units: Sequence[Unit]) -> None:
    """Raise BatchError unless every unit has its own usable output name."""
    seen: dict[str, str] = {}
    for u in units:
        if not u.key or u.key.startswith(".") or u.key in RESERVED_KEYS or "/" in u.key or u.key in (".", ".."):
            raise BatchError(f"{u.source}: cannot be written as out/{u.key}/ (names starting with '.' and "
                             f"{', '.join(sorted(RESERVED_KEYS))} are reserved); rename the input")
        if u.key in seen:
            raise BatchError(f"{seen[u.key]} and {u.source} would both be written to out/{u.key}/; give them "
                             "different names, or run them into different --out folders")
        seen[u.key] = u.source
