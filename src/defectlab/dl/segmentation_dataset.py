"""A torch ``Dataset`` of semantic segmentation samples from a U-Net folder.

Reads a folder written by ``defectlab prepare --to unet`` (one split: ``OUT/train``, …) or by
:func:`defectlab.write_unet`: ``images/<key>.<ext>``, ``masks/<key>.png``, ``classes.json``.
Each sample is ``(image, mask)``:

``image``  float32 [C, H, W]  normalized as the prepared folder's ``manifest.json`` records
                              (:func:`defectlab.preparation.pipeline.normalize_image`; per-image
                              min-max when there is no manifest); C = ``channels``
``mask``   int64 [H, W]       class index, 0 = background (``classes.json``)

Augmentations (:class:`~defectlab.preparation.augment.Augment`) are applied on the fly to the
image and the mask together, *before* normalization: the geometric ones move the mask by the
center rule (no interpolation, no new class values), the intensity ones change the image
only. With a ``seed`` every sample's draw depends only on ``(seed, epoch, index)`` — call
:meth:`SegmentationDataset.set_epoch` each epoch for new draws; without a seed the draws come
from torch's random generator (seeded per ``DataLoader`` worker, so ``torch.manual_seed``
reproduces them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

try:
    import torch
    from torch.utils.data import Dataset as _TorchDataset
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch and torchvision: pip install 'defectlab[torch]'") from err

from ..errors import FormatError, ImageError, ParseError
from ..formats.classes_json import read_classes
from ..imaging.io import read_image, to_gray
from ..preparation.augment import Augment
from ..preparation.pipeline import MANIFEST, normalize_image, read_manifest
from ..preparation.tiling import stable_seed

__all__ = ["SegmentationDataset"]

#: File suffixes taken as images when matching ``images/<key>.*``.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class SegmentationDataset(_TorchDataset):
    """U-Net training samples ``(image float32 [C,H,W], mask int64 [H,W])`` from a folder.

    Parameters
    ----------
    root : str or Path
        A ``prepare --to unet`` output (then give ``split``), one of its split folders, or a
        ``write_unet`` folder.
    split : {"train", "val", "test"}, optional
        The split folder under ``root``.
    augment : Augment or str, optional
        E.g. ``"flip,rot90,noise=0:0.03"``; applied on the fly (see the module docstring).
    seed : int, optional
        Makes the augmentations a function of ``(seed, epoch, index)``.
    channels : int
        Channels of the image tensor: 1, or 3 (gray repeated; RGB images kept).
    normalization : dict or str, optional
        Overrides the manifest's (``"minmax"``, ``"none"``, or
        ``{"method": "meanstd", "mean": [...], "std": [...]}``).
    transforms : callable, optional
        ``transforms(image, mask) -> (image, mask)`` applied last, on
        ``tv_tensors.Image`` / ``tv_tensors.Mask`` (a ``torchvision.transforms.v2`` pipeline).

    Raises
    ------
    FormatError
        Not a U-Net folder (no ``masks/`` or ``classes.json``).
    ImageError
        A mask without its image, or an image whose size differs from its mask's.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
    >>> from defectlab.preparation.pipeline import prepare
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_synthetic_dataset(tmp / "export", n_images=2, config=SyntheticConfig(size_hw=(64, 96)))
    >>> _ = prepare(tmp / "export", tmp / "unet", tile=32, split="0.5,0.5", preview=False)
    >>> data = SegmentationDataset(tmp / "unet", split="train", augment="flip,rot90", seed=0)
    >>> image, mask = data[0]
    >>> image.dtype, tuple(image.shape), mask.dtype, tuple(mask.shape), data.num_classes
    (torch.float32, (1, 32, 32), torch.int64, (32, 32), 5)
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        augment: Augment | str | None = None,
        seed: int | None = None,
        channels: int = 1,
        normalization: Mapping[str, Any] | str | None = None,
        transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"expected channels 1 or 3, got {channels!r}")
        root = Path(root)
        folder = root / split if split is not None else root
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise FormatError(f"{folder}: no such folder" + (f"; {root} holds {found}" if found else ""))
        masks_dir, images_dir, classes_path = folder / "masks", folder / "images", folder / "classes.json"
        if not masks_dir.is_dir() or not classes_path.is_file():
            hint = " (targets/ suggests a Mask R-CNN output: use MaskRCNNDataset)" if (folder / "targets").is_dir() else ""
            split_hint = "" if split else " (a prepared folder: pass split='train')"
            raise FormatError(f"{folder}: expected a U-Net folder with masks/, images/ and classes.json{hint}{split_hint}")
        try:
            classes = read_classes(classes_path)
            self.classes: dict[int, str] = {int(k): str(v["name"]) for k, v in sorted(classes.items())}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ParseError(classes_path, f"expected {{index: {{\"name\": ...}}}} as write_unet writes ({err})") from err
        self.root = folder
        self.manifest: dict | None = None
        if (folder / MANIFEST).is_file() or (folder.parent / MANIFEST).is_file():
            self.manifest = read_manifest(folder)
        if normalization is not None:
            self.normalization = {"method": normalization} if isinstance(normalization, str) else dict(normalization)
        elif self.manifest is not None:
            self.normalization = dict(self.manifest["normalization"])
        else:
            self.normalization = {"method": "minmax"}
        normalize_image(np.zeros((1, 1), np.float32), self.normalization)  # refuse a bad spec now
        self.augment = Augment.parse(augment) if isinstance(augment, (str, list, tuple)) else augment
        self.seed = seed
        self.epoch = 0
        self.channels = channels
        self.transforms = transforms
        images: dict[str, list[Path]] = {}
        if images_dir.is_dir():
            for p in sorted(images_dir.rglob("*")):
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                    images.setdefault(p.relative_to(images_dir).with_suffix("").as_posix(), []).append(p)
        self._pairs: list[tuple[str, Path, Path]] = []
        for mask_path in sorted(masks_dir.rglob("*.png")):
            key = mask_path.relative_to(masks_dir).with_suffix("").as_posix()
            candidates = images.get(key, [])
            if len(candidates) != 1:
                what = "no image" if not candidates else f"several images {[c.name for c in candidates]}"
                raise ImageError(f"{mask_path}: {what} for it in {images_dir} (expected {key}.<ext>)")
            self._pairs.append((key, candidates[0], mask_path))

    @property
    def num_classes(self) -> int:
        """Number of classes including the background (the model's output channels)."""
        return len(self.classes)

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws for a new epoch (with a ``seed``)."""
        self.epoch = int(epoch)

    def key(self, index: int) -> str:
        """The sample's name (its path under ``images/`` without extension)."""
        return self._pairs[index][0]

    def __len__(self) -> int:
        return len(self._pairs)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        return np.random.default_rng(np.random.SeedSequence(stable_seed(self.seed, self.epoch, index)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        i = int(index) + (n if int(index) < 0 else 0)
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        key, image_path, mask_path = self._pairs[i]
        image = read_image(image_path)
        mask = read_image(mask_path)
        if mask.ndim != 2:
            raise ImageError(f"{mask_path}: expected a one-channel class-index mask, got shape {mask.shape}")
        if image.shape[:2] != mask.shape:
            raise ImageError(f"{image_path}: image is {image.shape[1]}x{image.shape[0]} (WxH) but its mask "
                             f"{mask_path.name} is {mask.shape[1]}x{mask.shape[0]}")
        if self.channels == 1 and image.ndim == 3:
            image = to_gray(image)
        if self.augment:
            res = self.augment(image.astype(np.float64), rng=self._rng(i), mask=mask)
            image, mask = res.image, res.mask
        x = normalize_image(image, self.normalization)
        x = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
        if x.shape[0] != self.channels:
            x = np.repeat(x[:1], self.channels, axis=0)
        img_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        mask_t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))
        if self.transforms is not None:
            from torchvision import tv_tensors

            return self.transforms(tv_tensors.Image(img_t), tv_tensors.Mask(mask_t))
        return img_t, mask_t

    def __repr__(self) -> str:
        return (f"SegmentationDataset({len(self)} samples from {str(self.root)!r}, classes={self.classes}, "
                f"normalization={self.normalization.get('method')!r}, augment={str(self.augment) if self.augment else None!r})")
