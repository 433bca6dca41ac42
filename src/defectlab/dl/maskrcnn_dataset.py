"""A torch ``Dataset`` of Mask R-CNN samples, built one image at a time.

Each sample is ``(image, target)`` the way torchvision's detection models
(``maskrcnn_resnet50_fpn``, ``MaskRCNN``, ``FasterRCNN``) and its detection
references (``engine.train_one_epoch``, ``coco_utils.convert_to_coco_api``) take it:

``image``     float32 [C, H, W]  min-max normalized per image to [0, 1]; C = ``channels``
                                 (a grayscale micrograph repeated to 3 channels by default)
``boxes``     float32 [N, 4]     x1, y1, x2, y2: pixel edges of each instance's pixels
                                 (0 <= x1 < x2 <= W, 0 <= y1 < y2 <= H; never degenerate)
``labels``    int64 [N]          class index from 1 per real class (0 is background)
``masks``     uint8 [N, H, W]    0/1, one per instance
``image_id``  int                the sample's index in this dataset (unique; torchvision >= 0.16
                                 takes a plain int, as in its detection tutorial and references)
``area``      float32 [N]        pixel count of each instance
``iscrowd``   int64 [N]          zeros

An image without instances gives ``boxes`` [0, 4], ``labels`` [0], ``masks`` [0, H, W]:
torchvision trains on it as a negative example.

Shapes that cover no pixel center (too small, or outside the image) cannot be instances —
their box would be degenerate and torchvision refuses those. They are left out of the target,
never silently: each one becomes a :class:`~defectlab.model.Note` in :attr:`MaskRCNNDataset.notes`
and each image holding any gets one :class:`DegenerateInstanceWarning`.

Memory: nothing dataset-wide is dense. The dataset holds the shapes (or the file paths);
dense masks are built in ``__getitem__`` for that one image only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

try:
    import torch
    from torch.utils.data import Dataset as _TorchDataset
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "defectlab.dl needs torch and torchvision: pip install 'defectlab[torch]'"
    ) from err

from ..errors import FormatError, ImageError, ParseError
from ..formats.classes_json import read_classes
from ..formats.maskrcnn import instance_target, read_target
from ..imaging.io import normalize_minmax, read_image
from ..model import Dataset, ImageSource, Item, Note
from ..raster import DEFAULT_LINE_WIDTH

__all__ = ["MaskRCNNDataset", "DegenerateInstanceWarning"]

#: File suffixes taken as images when matching ``images/<key>.*`` in a written folder.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class DegenerateInstanceWarning(UserWarning):
    """A shape covers no pixel center and was left out of an image's target (see ``notes``)."""


@dataclass(frozen=True, slots=True)
class _FolderEntry:
    """One image of a ``write_maskrcnn`` folder: its key, target file, image file and size."""

    key: str
    target: Path
    image: Path
    size_hw: tuple[int, int]


Sample = tuple["torch.Tensor", dict[str, Any]]


class MaskRCNNDataset(_TorchDataset):
    """Mask R-CNN training samples from a :class:`~defectlab.model.Dataset` or a written folder.

    Parameters
    ----------
    source : Dataset or str or Path
        Either a dataset in memory (e.g. from ``defectlab.read``), whose items must have
        their image files found (``Item.image``); targets are rasterized exactly, per item,
        in ``__getitem__``. Or a folder written by
        :func:`defectlab.formats.maskrcnn.write_maskrcnn` (``classes.json``,
        ``targets/<key>.npz``, ``images/<key>.<ext>``); targets are read from it.
    visible_only : bool
        (Dataset only) Keep only the visible part of each instance — the pixels not covered
        by shapes painted above it. A folder keeps the choice it was written with.
    line_width : float
        (Dataset only) Width in px of the masks of polylines (e.g. dislocation lines).
    channels : {3, 1}
        Channels of the image tensor: 3 (the grayscale image repeated, what torchvision's
        ImageNet-style backbones take) or 1.
    transforms : callable, optional
        ``transforms(image, target) -> (image, target)``, applied last — e.g. a
        ``torchvision.transforms.v2.Compose``. Before the call the image, boxes and masks are
        wrapped as ``tv_tensors.Image``, ``tv_tensors.BoundingBoxes`` (XYXY, with the canvas
        size) and ``tv_tensors.Mask``, so geometric v2 transforms move them together; end the
        pipeline with ``v2.ToPureTensor()`` for plain tensors. A transform that crops can
        make boxes degenerate; ``v2.SanitizeBoundingBoxes`` drops those without telling.

    Attributes
    ----------
    notes : list of Note
        The degenerate shapes found so far, in item order, one note each (code
        ``"degenerate-instance"``). Filled as items are built (each item once); with a
        ``DataLoader`` using worker processes the notes stay in the workers — call
        :meth:`collect_notes` in the main process to get all of them up front.

    Raises
    ------
    ImageError
        An item of the dataset has no image file, or a folder's target has no image
        beside it in ``images/``.
    FormatError
        A folder that is not the output of ``write_maskrcnn``.
    ParseError
        A folder's ``classes.json`` or target file cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from defectlab.imaging.io import write_image
    >>> from defectlab.model import Dataset, Ellipse, ImageSource, Item, Label
    >>> png = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> write_image(png, np.zeros((32, 32), np.uint8))
    >>> ds = Dataset(labels=(Label("cavity"), Label("loop")),
    ...              items=(Item("a.png", (32, 32), (Ellipse(label="loop", cx=10, cy=10, rx=4, ry=3),),
    ...                          image=ImageSource(png)),))
    >>> data = MaskRCNNDataset(ds)
    >>> image, target = data[0]
    >>> tuple(image.shape), target["labels"].tolist(), tuple(target["masks"].shape)
    ((3, 32, 32), [2], (1, 32, 32))
    >>> data.classes
    {1: 'cavity', 2: 'loop'}

    Training with torchvision::

        loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True,
                                             collate_fn=MaskRCNNDataset.collate_fn)
        for images, targets in loader:
            losses = model(list(images), list(targets))
    """

    def __init__(
        self,
        source: Dataset | str | Path,
        *,
        visible_only: bool = False,
        line_width: float = DEFAULT_LINE_WIDTH,
        channels: int = 3,
        transforms: Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]] | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"expected channels 1 or 3, got {channels!r}")
        if not line_width > 0:
            raise ValueError(f"expected a positive line_width, got {line_width!r}")
        self.channels = channels
        self.visible_only = bool(visible_only)
        self.line_width = float(line_width)
        self.transforms = transforms
        self._notes: dict[int, list[Note]] = {}
        self._dataset: Dataset | None = None
        self._entries: list[_FolderEntry] = []
        self.root: Path | None = None
        if isinstance(source, Dataset):
            self._init_dataset(source)
        elif isinstance(source, (str, Path)):
            if self.visible_only or self.line_width != DEFAULT_LINE_WIDTH:
                raise ValueError(
                    "visible_only and line_width apply to a Dataset; a written folder keeps "
                    "the ones it was written with (write_maskrcnn(..., visible_only=, line_width=))"
                )
            self._init_folder(Path(source))
        else:
            raise TypeError(
                f"expected a defectlab Dataset or a folder path, got {type(source).__name__}"
            )

    # -- construction -------------------------------------------------------------------

    def _init_dataset(self, dataset: Dataset) -> None:
        missing = [it.name for it in dataset.items if it.image is None]
        if missing:
            raise ImageError(
                f"{len(missing)} image file(s) not found, e.g. {missing[:3]}; "
                "read the export with images=DIR (--images DIR) or copy them beside it"
            )
        gone = [str(it.image) for it in dataset.items
                if it.image.member is None and not it.image.path.is_file()]
        if gone:
            raise ImageError(f"{len(gone)} image file(s) do not exist, e.g. {gone[:3]}")
        self._dataset = dataset
        self._class_index = dataset.class_index()
        self._classes = {i: name for name, i in self._class_index.items()}

    def _init_folder(self, root: Path) -> None:
        self.root = root
        if not root.is_dir():
            raise FormatError(f"{root}: not a folder; expected the output of write_maskrcnn")
        classes_path, targets_dir, images_dir = root / "classes.json", root / "targets", root / "images"
        if not classes_path.is_file():
            raise FormatError(
                f"{root}: no classes.json; expected the output of write_maskrcnn "
                "(classes.json, targets/<key>.npz, images/<key>.<ext>)"
            )
        if not targets_dir.is_dir():
            others = sorted(p.name for p in root.iterdir() if p.name != "classes.json")
            if others:  # write_maskrcnn of an empty dataset leaves classes.json alone
                hint = " (masks/ suggests a U-Net output)" if "masks" in others else ""
                raise FormatError(
                    f"{root}: no targets/ folder{hint}; expected the output of write_maskrcnn "
                    f"(classes.json, targets/<key>.npz, images/<key>.<ext>), found {others[:5]}"
                )
        try:
            classes = read_classes(classes_path)
            self._classes = {i: str(v["name"]) for i, v in sorted(classes.items()) if i != 0}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ParseError(
                classes_path, f"expected {{index: {{\"name\": ...}}}} as written by write_maskrcnn ({err})"
            ) from err
        if sorted(self._classes) != list(range(1, len(self._classes) + 1)):
            raise ParseError(classes_path, f"expected class indices 1..N, got {sorted(self._classes)}")
        self._class_index = {name: i for i, name in self._classes.items()}

        images = self._index_images(images_dir)
        found: list[tuple[int, str, _FolderEntry]] = []
        targets = sorted(targets_dir.rglob("*.npz")) if targets_dir.is_dir() else []
        for path in targets:
            key = path.relative_to(targets_dir).with_suffix("").as_posix()
            stored_id, size_hw = self._peek_target(path)
            candidates = images.get(key, [])
            if not candidates:
                raise ImageError(
                    f"{path}: no image {images_dir / key}.<ext> beside it "
                    f"(looked for {', '.join(IMAGE_SUFFIXES)})"
                )
            if len(candidates) > 1:
                raise ImageError(
                    f"{path}: several images match {key!r}: {[c.name for c in candidates]}; keep one"
                )
            found.append((stored_id, key, _FolderEntry(key, path, candidates[0], size_hw)))
        # the order write_maskrcnn wrote them in (its image_id), so index i here is item i there
        found.sort(key=lambda t: (t[0], t[1]))
        self._entries = [entry for _, _, entry in found]

    @staticmethod
    def _index_images(images_dir: Path) -> dict[str, list[Path]]:
        images: dict[str, list[Path]] = {}
        if images_dir.is_dir():
            for p in sorted(images_dir.rglob("*")):
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                    key = p.relative_to(images_dir).with_suffix("").as_posix()
                    images.setdefault(key, []).append(p)
        return images

    @staticmethod
    def _peek_target(path: Path) -> tuple[int, tuple[int, int]]:
        """The stored image_id and size_hw of a target file, without reading its masks."""
        try:
            with np.load(path, allow_pickle=False) as z:
                size = tuple(int(v) for v in z["size_hw"])
                stored_id = int(z["image_id"])
        except (OSError, KeyError, ValueError) as err:
            raise ParseError(path, f"not a defectlab Mask R-CNN target file ({err})") from err
        if len(size) != 2:
            raise ParseError(path, f"expected size_hw with 2 numbers, got {size}")
        return stored_id, (size[0], size[1])

    # -- the Dataset protocol ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._dataset) if self._dataset is not None else len(self._entries)

    def __getitem__(self, index: int) -> Sample:
        """The ``(image, target)`` of image ``index``; see the module docstring for the keys."""
        i = self._check_index(index)
        if self._dataset is not None:
            item = self._dataset.items[i]
            np_target, notes = instance_target(
                item, self._class_index, image_id=i, visible_only=self.visible_only,
                line_width=self.line_width, dense=True,
            )
            self._record(i, item, notes)
            name, size_hw, image_src = item.name, item.size_hw, item.image
        else:
            entry = self._entries[i]
            np_target = read_target(entry.target, dense=True)
            name, size_hw, image_src = entry.key, entry.size_hw, ImageSource(entry.image)
        image = self._load_image(image_src, size_hw, name)
        target: dict[str, Any] = {
            "boxes": torch.from_numpy(np.ascontiguousarray(np_target["boxes"], dtype=np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(np.ascontiguousarray(np_target["labels"], dtype=np.int64)),
            "masks": torch.from_numpy(np.ascontiguousarray(np_target["masks"], dtype=np.uint8)),
            "image_id": i,
            "area": torch.from_numpy(np.ascontiguousarray(np_target["area"], dtype=np.float32)),
            "iscrowd": torch.from_numpy(np.ascontiguousarray(np_target["iscrowd"], dtype=np.int64)),
        }
        if self.transforms is not None:
            return self._apply_transforms(image, target)
        return image, target

    def _check_index(self, index: int) -> int:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} images")
        return i

    def _load_image(self, src: ImageSource, size_hw: tuple[int, int], name: str) -> torch.Tensor:
        pixels = read_image(src)
        if pixels.shape[:2] != tuple(size_hw):
            raise ImageError(
                f"{src}: image is {pixels.shape[1]}x{pixels.shape[0]} (WxH) but the labels of "
                f"{name!r} are for {size_hw[1]}x{size_hw[0]}"
            )
        gray = torch.from_numpy(normalize_minmax(pixels))  # (H, W) float32 in [0, 1]
        return gray.unsqueeze(0).repeat(self.channels, 1, 1)

    def _record(self, i: int, item: Item, notes: list[Note]) -> None:
        if i in self._notes:
            return
        self._notes[i] = list(notes)
        if notes:
            where = ", ".join(n.where or "?" for n in notes)
            warnings.warn(
                f"{item.name}: {len(notes)} shape(s) cover no pixel center and are not in the "
                f"target ({where}); see MaskRCNNDataset.notes",
                DegenerateInstanceWarning,
                stacklevel=3,
            )

    def _apply_transforms(self, image: torch.Tensor, target: dict[str, Any]) -> Sample:
        from torchvision import tv_tensors

        h, w = image.shape[-2:]
        target = dict(target)
        target["boxes"] = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(h, w))
        target["masks"] = tv_tensors.Mask(target["masks"])
        return self.transforms(tv_tensors.Image(image), target)

    # -- information ------------------------------------------------------------------------

    @property
    def classes(self) -> dict[int, str]:
        """Class index -> label name, from 1 (0, the background, is not listed).

        A model for this dataset has ``num_classes = len(dataset.classes) + 1``.
        """
        return dict(self._classes)

    @property
    def notes(self) -> list[Note]:
        """Notes on the degenerate shapes of the items built so far (see the class docstring)."""
        return [note for i in sorted(self._notes) for note in self._notes[i]]

    def collect_notes(self) -> list[Note]:
        """Check every item now (sparse crops only, no image read) and return all notes.

        For a written folder there is nothing to check: degenerate shapes were left out
        when it was written, and the ``WriteReport`` of ``write_maskrcnn`` lists them.
        """
        if self._dataset is not None:
            for i, item in enumerate(self._dataset.items):
                if i not in self._notes:
                    _, notes = instance_target(
                        item, self._class_index, image_id=i, visible_only=self.visible_only,
                        line_width=self.line_width,
                    )
                    self._record(i, item, notes)
        return self.notes

    def name(self, index: int) -> str:
        """The image name of sample ``index`` (an item's name, or a folder's key)."""
        i = self._check_index(index)
        return self._dataset.items[i].name if self._dataset is not None else self._entries[i].key

    def get_height_and_width(self, index: int) -> tuple[int, int]:
        """``(H, W)`` of sample ``index`` without reading it (torchvision's aspect-ratio grouping)."""
        i = self._check_index(index)
        return self._dataset.items[i].size_hw if self._dataset is not None else self._entries[i].size_hw

    @staticmethod
    def collate_fn(batch: list[Sample]) -> tuple[tuple[Any, ...], ...]:
        """``DataLoader`` collate for detection: ``(images, targets)`` as tuples, not stacked."""
        return tuple(zip(*batch))

    def __repr__(self) -> str:
        src = f"folder {str(self.root)!r}" if self.root is not None else "a Dataset"
        return f"MaskRCNNDataset({len(self)} images from {src}, classes={self._classes})"
