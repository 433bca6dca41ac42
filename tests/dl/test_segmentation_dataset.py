"""SegmentationDataset on prepared U-Net folders: tensors, normalization, joint augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import defectlab
from defectlab.dl.segmentation_dataset import SegmentationDataset
from defectlab.errors import FormatError
from defectlab.preparation.pipeline import prepare
from defectlab.preparation.resize import affine_item
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
from defectlab.raster import semantic_mask

CFG = SyntheticConfig(size_hw=(48, 80), n_cavities=4, n_loops=1, n_precipitates=1, n_lines=1,
                      loop_radius_px=(5.0, 9.0), precipitate_radius_px=(4.0, 7.0))


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seg") / "export"
    make_synthetic_dataset(path, n_images=3, config=CFG, seed=2)
    return path


@pytest.fixture(scope="module")
def prepared(export, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seg") / "unet"
    prepare(export, out, to="unet", tile=32, stride=24, split="0.67,0.33", normalization="meanstd", preview=False)
    return out


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_samples_are_the_files_normalized_as_the_manifest_says(prepared):
    data = SegmentationDataset(prepared, split="train")
    files = sorted((prepared / "train" / "images").glob("*.png"))
    assert len(data) == len(files) > 0 and data.num_classes == 5
    norm = json.loads((prepared / "manifest.json").read_text())["normalization"]
    assert data.normalization["method"] == "meanstd"
    for i in (0, len(data) - 1):
        image, mask = data[i]
        assert image.dtype == torch.float32 and tuple(image.shape) == (1, 32, 32)
        assert mask.dtype == torch.int64 and tuple(mask.shape) == (32, 32)
        raw = png(prepared / "train" / "images" / f"{data.key(i)}.png").astype(np.float64)
        want = (raw - norm["mean"][0]) / norm["std"][0]
        assert np.allclose(image[0].numpy(), want, atol=1e-5)
        assert np.array_equal(mask.numpy(), png(prepared / "train" / "masks" / f"{data.key(i)}.png"))


def test_minmax_override_and_three_channels(prepared):
    data = SegmentationDataset(prepared / "val", normalization="minmax", channels=3)
    image, _ = data[0]
    assert tuple(image.shape) == (3, 32, 32) and torch.equal(image[0], image[2])
    assert float(image.min()) == 0.0 and float(image.max()) == 1.0


def test_flip_of_image_and_mask_equals_the_mask_of_flipped_shapes(export, tmp_path):
    ds = defectlab.read(export)
    defectlab.write_unet(ds, tmp_path / "whole")
    data = SegmentationDataset(tmp_path / "whole", augment="flip", seed=0)
    plain = SegmentationDataset(tmp_path / "whole")
    h, w = CFG.size_hw
    flips = {
        (False, False): np.eye(2, 3), (True, False): np.array([[-1.0, 0, w], [0, 1, 0]]),
        (False, True): np.array([[1.0, 0, 0], [0, -1, h]]), (True, True): np.array([[-1.0, 0, w], [0, -1, h]]),
    }
    seen = set()
    for epoch in range(4):
        data.set_epoch(epoch)
        for i in range(len(data)):
            item = next(it for it in ds.items if it.stem == data.key(i))
            image, mask = data[i]
            base, _ = plain[i]
            # which flip happened: the image is exactly one of the four flips of the original
            (fh, fv), = [(a, b) for a in (False, True) for b in (False, True)
                         if torch.equal(image, base.flip(-1) if a and not b else base.flip(-2) if b and not a
                                        else base.flip(-1, -2) if a and b else base)]
            seen.add((fh, fv))
            moved = affine_item(item, flips[(fh, fv)], item.size_hw)
            assert np.array_equal(mask.numpy(), semantic_mask(moved, ds.class_index()))
    assert len(seen) >= 3


def test_seeded_draws_repeat_and_change_with_the_epoch(prepared):
    data = SegmentationDataset(prepared, split="train", augment="rotate,noise", seed=1)
    a, _ = data[0]
    b, _ = data[0]
    data.set_epoch(1)
    c, _ = data[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(0)
    unseeded = SegmentationDataset(prepared, split="train", augment="noise")
    x, _ = unseeded[0]
    torch.manual_seed(0)
    y, _ = unseeded[0]
    assert torch.equal(x, y)


def test_torchvision_transforms_and_a_dataloader(prepared):
    from torchvision.transforms import v2

    flip = v2.RandomHorizontalFlip(p=1.0)
    data = SegmentationDataset(prepared, split="train", transforms=flip)
    plain = SegmentationDataset(prepared, split="train")
    image, mask = data[0]
    base_image, base_mask = plain[0]
    assert torch.equal(image, base_image.flip(-1)) and torch.equal(mask, base_mask.flip(-1))
    loader = torch.utils.data.DataLoader(plain, batch_size=4, shuffle=False)
    images, masks = next(iter(loader))
    assert tuple(images.shape) == (4, 1, 32, 32) and tuple(masks.shape) == (4, 32, 32)


def test_clear_errors(prepared, export, tmp_path):
    with pytest.raises(FormatError, match="expected a U-Net folder.*pass split='train'"):
        SegmentationDataset(prepared)
    with pytest.raises(FormatError, match="no such folder.*holds \\['train', 'val'\\]"):
        SegmentationDataset(prepared, split="test")
    defectlab.write_maskrcnn(defectlab.read(export), tmp_path / "mrcnn")
    with pytest.raises(FormatError, match="Mask R-CNN output: use MaskRCNNDataset"):
        SegmentationDataset(tmp_path / "mrcnn")


def test_a_prepared_maskrcnn_split_trains_with_maskrcnn_dataset(export, tmp_path):
    from defectlab.dl import MaskRCNNDataset

    prepare(export, tmp_path / "mr", to="maskrcnn", tile=32, stride=24, split="0.67,0.33", preview=False)
    unet = tmp_path / "unet"
    prepare(export, unet, to="unet", tile=32, stride=24, split="0.67,0.33", min_visible=0.0, preview=False)
    data = MaskRCNNDataset(tmp_path / "mr" / "train")
    sem = SegmentationDataset(unet, split="train")
    assert len(data) == len(sem)
    for i in range(len(data)):
        image, target = data[i]
        assert tuple(image.shape[-2:]) == (32, 32)
        key = data.name(i)
        j = [sem.key(k) for k in range(len(sem))].index(key)
        _, mask = sem[j]
        # every instance pixel is a labeled pixel of the same tile (remainders may be dropped)
        covered = target["masks"].bool().any(dim=0)
        assert not (covered & (mask == 0)).any()
        for m, lab in zip(target["masks"].bool(), target["labels"]):
            assert (mask[m] == lab).float().mean() > 0.5  # mostly its own class (others may lie on top)
