"""``train --auto`` (the default): the plan's normalization reaches the net at full bit depth and
prediction repeats it; options given win over the plan; ``--no-auto`` is training as before;
the sampler's augmentations keep the masks; the command line prints the plan and writes plan.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from defectlab.cli import app  # noqa: E402
from defectlab.dl import archs  # noqa: E402
from defectlab.dl.archs.base import augment_crop  # noqa: E402
from defectlab.dl.data import Source  # noqa: E402
from defectlab.dl.model_io import load_model  # noqa: E402
from defectlab.dl.train import train_unet  # noqa: E402
from defectlab.imaging.io import read_image, write_image  # noqa: E402
from defectlab.model import Dataset, ImageSource, Item  # noqa: E402
from defectlab.preparation.augment import Augment  # noqa: E402
from defectlab.preparation.synthetic import SYNTHETIC_LABELS, SyntheticConfig, synthetic_item  # noqa: E402

TINY = dict(base_filters=4, depth=2, bottleneck_dilations=(1,), epochs=1, max_steps=2, val_split=0, progress=False,
            plot=False, device="cpu")
HOT = 65535


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sixteen_bit(tmp_path, n: int = 2, size: int = 64) -> Dataset:
    """n synthetic cavity micrographs as 16-bit PNGs: gray values spread over 0…40000 and one hot pixel."""
    rng = np.random.default_rng(3)
    cfg = SyntheticConfig(size_hw=(size, size), n_cavities=3, n_loops=0, n_precipitates=0, n_lines=0,
                          cavity_radius_px=(4, 8))
    items = []
    for k in range(n):
        image, item = synthetic_item(rng, cfg, name=f"img_{k}.png")
        gray = image.astype(np.float64) if image.ndim == 2 else image.mean(axis=-1)
        spread = (gray - gray.min()) / (gray.max() - gray.min()) * 38000 + 1000 + rng.normal(0, 300, gray.shape)
        pixels = np.clip(spread, 0, 40000).astype(np.uint16)
        pixels[7, 11] = HOT
        path = tmp_path / item.name
        write_image(path, pixels)
        items.append(Item(item.name, item.size_hw, item.shapes, image=ImageSource(path)))
    return Dataset(SYNTHETIC_LABELS[:1], tuple(items), source=str(tmp_path))


def percentile_scaled(pixels: np.ndarray) -> np.ndarray:
    """The plan's normalization computed independently: float64 percentiles 0.5 and 99.5, clipped."""
    x = pixels.astype(np.float64)
    lo, hi = np.percentile(x, [0.5, 99.5])
    return np.clip((x - lo) / (hi - lo), 0, 1)


def test_16_bit_data_reach_the_net_percentile_clipped_at_full_depth(tmp_path):
    ds = sixteen_bit(tmp_path)
    raw = read_image(ds.items[0].image)
    assert raw.dtype.kind in "ui" and raw.max() == HOT  # the file kept its depth
    run = train_unet(ds, tmp_path / "model", auto=True, **TINY)
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["normalization"] == {"method": "percentile", "scope": "image", "channels": 1,
                                    "percentiles": [0.5, 99.5]}
    assert cfg["training"]["auto"] is True and cfg["training"]["planned"]["normalization"] == "percentile"
    assert run.plan is not None and run.plan.normalization.bit_depth == 16
    # the samples training draws its crops from, normalized as config.json says
    unet = archs.get("unet")
    data = unet.load_data(Source("16-bit", dataset=ds), normalization=cfg["normalization"])
    for sample, item in zip(data.samples, ds.items):
        pixels = read_image(item.image)
        expected = percentile_scaled(pixels)
        assert np.abs(sample.image.astype(np.float64) - expected).max() < 1e-5
        assert len(np.unique(sample.image)) > 1024  # far more than the 256 levels 8 bits would keep
        # the hot pixel does not squeeze the rest: the content spans [0, 1] (min-max: below 40000/65535)
        assert np.percentile(sample.image, 99) > 0.9
        assert np.percentile(pixels / HOT, 99) < 40000 / HOT + 1e-3
    # the crops the net saw (calibration.npy keeps some, as float16): in [0, 1], thousands of levels
    crops = np.load(tmp_path / "model" / "calibration.npy")
    assert crops.min() >= 0 and crops.max() <= 1 and len(np.unique(crops)) > 1000


def test_predict_normalizes_a_new_image_as_training_did(tmp_path):
    ds = sixteen_bit(tmp_path, n=2)
    train_unet(ds, tmp_path / "model", auto=True, **TINY)
    model = load_model(tmp_path / "model", device="cpu")
    pixels = read_image(ds.items[1].image)
    pred = model.predict(pixels, engine="torch", probabilities=True)
    x = torch.from_numpy(percentile_scaled(pixels).astype(np.float32))[None, None]
    with torch.no_grad():
        probs = torch.softmax(model.net.eval()(x), dim=1)[0].numpy()
    assert np.abs(pred.probabilities - probs).max() < 1e-4
    # an old min-max folder still predicts min-max: the same net under the other normalization differs
    minmax = torch.from_numpy((pixels / pixels.max()).astype(np.float32))[None, None]
    with torch.no_grad():
        other = torch.softmax(model.net(minmax), dim=1)[0].numpy()
    assert np.abs(other - probs).max() > 1e-3


def test_given_options_win_over_the_plan_and_no_auto_is_training_as_before(tmp_path):
    ds = sixteen_bit(tmp_path, size=96)
    run = train_unet(ds, tmp_path / "given", tile_size=32, batch_size=3, auto=True, **TINY)
    doc = json.loads((tmp_path / "given" / "plan.json").read_text())
    assert doc["plan"]["tile_size"] == 32 and doc["plan"]["batch_size"] == 3
    assert {"tile_size", "batch_size", "arch"} <= set(doc["plan"]["given"])
    assert doc["plan"]["reasons"]["tile_size"] == "given" and "normalization" not in doc["plan"]["given"]
    assert doc["fingerprint"]["bit_depth"] == 16
    cfg = json.loads((tmp_path / "given" / "config.json").read_text())
    assert cfg["tile_size"] == 32 and cfg["training"]["batch_size"] == 3
    assert cfg["training"]["schedule"] == "onecycle" == run.plan.schedule  # planned, not given
    assert cfg["training"]["augmentations"] == str(Augment.parse(run.plan.augment)) and "gamma" in run.plan.augment
    # what was planned, not given: the plan's tile for 96 px images (at most the smallest side, a multiple of 32)
    planned = train_unet(ds, tmp_path / "planned", **TINY)  # --auto is the default
    assert planned.plan.tile_size == json.loads((tmp_path / "planned" / "config.json").read_text())["tile_size"]
    assert planned.plan.tile_size == 96 and "tile_size" not in planned.plan.given
    # without auto (--no-auto): min-max, the architecture's defaults, no plan
    train_unet(ds, tmp_path / "off", auto=False, **TINY)
    off = json.loads((tmp_path / "off" / "config.json").read_text())
    assert off["normalization"] == {"method": "minmax", "scope": "image", "channels": 1}
    assert off["training"]["auto"] is False and off["training"]["schedule"] == "plateau"
    assert off["training"]["augmentations"] == "flip,rot90" and off["tile_size"] == 256 // 32 * 32
    assert not (tmp_path / "off" / "plan.json").exists()


def test_intensity_augmentation_keeps_the_mask_and_the_range():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (48, 48)).astype(np.float32)
    mask = (rng.uniform(0, 1, (48, 48)) > 0.7).astype(np.uint8)
    aug = Augment.parse("contrast=0.5:2,gamma=0.5:2,noise=0:0.2,blur=0:1")
    changed = 0
    for _ in range(20):
        img, msk = augment_crop(image, mask, aug, rng)
        assert img.dtype == np.float32 and img.shape == image.shape
        assert img.min() >= 0 and img.max() <= 1
        assert np.array_equal(msk, mask)
        changed += bool(np.abs(img - image).max() > 1e-3)
    assert changed == 20
    # flips and turns move the mask with the image, exactly
    coded = mask.astype(np.float32) * 0.5 + 0.25
    for _ in range(8):
        img, msk = augment_crop(coded, mask, Augment.parse("flip,rot90"), rng)
        assert np.array_equal(img, msk.astype(np.float32) * 0.5 + 0.25)


def test_cli_train_prints_the_plan_and_writes_plan_json(tmp_path):
    from defectlab.formats.cvat_xml import write_cvat

    ds = sixteen_bit(tmp_path)
    export = tmp_path / "export"
    (export / "images").mkdir(parents=True)
    for item in ds:
        (export / "images" / item.name).write_bytes(item.image.path.read_bytes())
    write_cvat(ds, export / "annotations.xml")
    res = CliRunner().invoke(app, ["train", "unet", str(export), "--out", str(tmp_path / "model"), "--max-steps", "2",
                                   "--epochs", "1", "--batch-size", "2", "--base-filters", "4", "--depth", "2",
                                   "--val-split", "0", "--no-plot", "--device", "cpu", "--auto"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Plan" in res.output and "tile_size" in res.output and "percentile 0.5–99.5 per image" in res.output
    doc = json.loads((tmp_path / "model" / "plan.json").read_text())
    assert doc["plan"]["given"] == ["arch", "batch_size"] and doc["plan"]["batch_size"] == 2
    assert doc["fingerprint"]["bit_depth"] == 16
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["training"]["auto"] is True and cfg["tile_size"] == doc["plan"]["tile_size"]
    res = CliRunner().invoke(app, ["train", "unet", str(export), "--out", str(tmp_path / "off"), "--max-steps", "1",
                                   "--epochs", "1", "--base-filters", "4", "--depth", "2", "--tile", "64", "--no-auto",
                                   "--val-split", "0", "--no-plot", "--device", "cpu"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Plan" not in res.output and not (tmp_path / "off" / "plan.json").exists()


def test_the_plan_fine_tunes_the_shipped_unet_unless_told_or_the_net_differs(tmp_path):
    """A cavity set with --auto: the default net shape starts from the shipped weights (its
    config records the warm start); --init scratch, or a net of another shape, trains from scratch
    (the latter with a note), and a plan.json without an init (older) still loads."""
    from defectlab.plan import read_plan

    ds = sixteen_bit(tmp_path, size=64)
    quick = {k: v for k, v in TINY.items() if k not in ("base_filters", "depth", "bottleneck_dilations")}
    quick["max_steps"] = 1
    run = train_unet(ds, tmp_path / "auto", auto=True, tile_size=64, **quick)
    cfg = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert run.plan.init == "synthetic" and cfg["training"]["init"]["from"] == "the shipped 'synthetic' model"
    assert cfg["training"]["init"]["copied_classes"] == ["background", "cavity"]
    train_unet(ds, tmp_path / "scratch", auto=True, init="scratch", tile_size=64, **quick)
    cfg = json.loads((tmp_path / "scratch" / "config.json").read_text())
    assert cfg["training"]["init"] is None and "init" in cfg["training"]["given"]
    small = train_unet(ds, tmp_path / "small", auto=True, tile_size=64, **TINY)
    assert json.loads((tmp_path / "small" / "config.json").read_text())["training"]["init"] is None
    assert any("does not fit this net" in n for n in small.notes)
    doc = json.loads((tmp_path / "auto" / "plan.json").read_text())
    del doc["plan"]["init"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert read_plan(tmp_path / "old.json")[0].init == "scratch"


def test_a_planned_training_with_a_budget_is_ended_by_the_budget_not_by_an_epoch_cap(tmp_path):
    ds = sixteen_bit(tmp_path, size=64)
    tiny = {k: v for k, v in TINY.items() if k not in ("epochs", "max_steps")}  # epochs, steps: the plan's
    lrs = []
    run = train_unet(ds, tmp_path / "m", time_budget_s="15s", min_steps=1, callback=lambda e: lrs.append(e["lr"]),
                     **tiny)
    # this tiny net's 50 epochs (the unplanned default cap) took 5 s here: only the budget may end a
    # planned training, and the one-cycle schedule fitted to the budget has annealed by then
    assert run.out_of_time and not run.stopped_early
    assert lrs[-1] < 0.1 * max(lrs)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["training"]["epochs_run"] == len(run.history)
