"""Items (one per image) and datasets (labels + items + what was skipped on read)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

from .display import renderer
from .labels import Label
from .shapes import Shape

__all__ = ["ImageSource", "Item", "Note", "Dataset"]


@dataclass(frozen=True, slots=True)
class ImageSource:
    """Where an item's pixels are: a file, or a ``member`` inside a zip archive ``path``."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.member).suffix if self.member else self.path.suffix

    def exists(self) -> bool:
        if self.member is None:
            return self.path.is_file()
        import zipfile

        try:
            with zipfile.ZipFile(self.path) as zf:
                zf.getinfo(self.member)
            return True
        except (KeyError, OSError, zipfile.BadZipFile):
            return False

    def read_bytes(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        from ..safe_zip import SafeZip  # size and compression-ratio limits apply

        with SafeZip(self.path) as zf:
            return zf.read(self.member)


@dataclass(frozen=True, slots=True)
class Item:
    """One image and the shapes drawn on it.

    Parameters
    ----------
    name : str
        The image name as written in the export (may contain folders, e.g. ``"a/b.png"``).
    size_hw : (int, int)
        Image height and width in pixels, as declared by the export.
    shapes : tuple of Shape
        In file order.
    image : ImageSource, optional
        Where the pixels are; None when the image file was not found.
    subset : str, optional
        The subset (split) the export put the image in ("Train", ...).
    id : int, optional
        The image or frame id in the export.
    """

    name: str
    size_hw: tuple[int, int]
    shapes: tuple[Shape, ...] = ()
    image: ImageSource | None = None
    subset: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.size_hw)
        if h <= 0 or w <= 0:
            raise ValueError(f"item {self.name!r}: expected a positive size_hw, got {self.size_hw!r}")
        object.__setattr__(self, "size_hw", (h, w))
        object.__setattr__(self, "shapes", tuple(self.shapes))

    @property
    def stem(self) -> str:
        """The name without extension, as a POSIX path (``"sub/img"`` for ``"sub/img.png"``)."""
        p = PurePosixPath(self.name.replace("\\", "/"))
        return str(p.with_suffix("")) if p.suffix else str(p)

    @property
    def key(self) -> str:
        """A unique output name: ``"<subset>/<stem>"`` when the item has a subset, else the stem."""
        return f"{self.subset}/{self.stem}" if self.subset else self.stem


@dataclass(frozen=True, slots=True)
class Note:
    """Something a reader or writer skipped or changed, and why — never done silently.

    ``code`` and ``message`` say what; ``item`` (an item's name) and ``where`` (free text:
    ``"line 12"``, a JSON pointer) say where, for people. A lenient read (``lenient=True``) also
    fills ``file``, ``line`` and ``shape`` (the index in ``item.shapes`` of a shape kept despite the
    problem; None for one left out) for :func:`defectlab.qc.check` to turn into findings.
    """

    code: str
    message: str
    item: str | None = None
    where: str | None = None
    file: str | None = None
    line: int | None = None
    shape: int | None = None

    def __str__(self) -> str:
        place = " ".join(p for p in (self.item, self.where) if p)
        return f"[{self.code}] {place + ': ' if place else ''}{self.message}"


@dataclass(frozen=True, slots=True)
class Dataset:
    """Labels and items, with the notes of what was skipped when reading.

    Examples
    --------
    >>> from defectlab.model import Dataset, Item, Label, Ellipse
    >>> ds = Dataset(labels=(Label("cavity"),),
    ...              items=(Item("a.png", (64, 64), (Ellipse(label="cavity", cx=10, cy=10, rx=4, ry=4),)),))
    >>> len(ds), ds.class_index()
    (1, {'cavity': 1})
    """

    labels: tuple[Label, ...]
    items: tuple[Item, ...]
    notes: tuple[Note, ...] = ()
    source: str | None = None
    format: str | None = None
    _by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "notes", tuple(self.notes))
        names = [lab.name for lab in self.labels]
        dup = [n for n, c in Counter(names).items() if c > 1]
        if dup:
            raise ValueError(f"dataset: expected unique label names, got {dup[0]!r} twice")
        self._by_name.update({lab.name: lab for lab in self.labels})

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __getitem__(self, index: int) -> Item:
        return self.items[index]

    def _repr_html_(self) -> str | None:
        draw = renderer(self, "html")
        return draw(self) if draw is not None else None

    def __repr__(self) -> str:
        """A one-line summary (the items and their shapes are many; ``ds.items`` holds them)."""
        n_shapes = sum(len(it.shapes) for it in self.items)
        labels = ", ".join(lab.name for lab in self.labels[:6]) + (", …" if len(self.labels) > 6 else "")
        parts = [f"{len(self.items)} image(s)", f"{n_shapes} shape(s)", f"labels [{labels}]"]
        if self.notes:
            parts.append(f"{len(self.notes)} note(s)")
        where = f" from {self.source!r}" if self.source else ""
        return f"<Dataset{' ' + self.format if self.format else ''}{where}: {', '.join(parts)}>"

    def show(self, index: int | str = 0, **options):
        """Draw item ``index`` (or the item called so) with its labeled shapes (matplotlib)."""
        draw = renderer(self, "show")
        if draw is None:  # pragma: no cover - defectlab.notebook registers it on import defectlab
            raise RuntimeError("no display registered for a Dataset (import defectlab.notebook)")
        return draw(self, index, **options)

    def label(self, name: str) -> Label:
        """The label called ``name``; KeyError naming the known labels otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no label {name!r}; labels are {list(self._by_name)}") from None

    def class_index(self) -> dict[str, int]:
        """Label name -> class index, from 1 in label order (0 is background)."""
        return {lab.name: i for i, lab in enumerate(self.labels, start=1)}

    def subsets(self) -> list[str]:
        """The subsets present, in order of first appearance."""
        return list(dict.fromkeys(it.subset for it in self.items if it.subset))

    def shape_counts(self) -> Counter:
        """Counter of ``(label, kind)`` over all shapes."""
        return Counter((s.label, s.kind) for it in self.items for s in it.shapes)

    def with_items(self, items: Sequence[Item]) -> "Dataset":
        """A copy holding other items (labels, notes and source kept)."""
        return replace(self, items=tuple(items))

    def with_edges(self, edges: dict[str, str]) -> "Dataset":
        """A copy with labeling conventions set, e.g. ``{"cavity": "inner", "loop": "outer"}``."""
        unknown = set(edges) - set(self._by_name)
        if unknown:
            raise KeyError(f"no label {sorted(unknown)[0]!r}; labels are {list(self._by_name)}")
        labels = tuple(replace(lab, edge=edges.get(lab.name, lab.edge)) for lab in self.labels)
        return replace(self, labels=labels)
