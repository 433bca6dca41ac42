"""The plan of sets whose answer is known before the planner runs.

Expected tiles come from the generator's radii (what the defects can span at most and at
least), not from the fingerprint; expected normalization values from the image files read
here; touching shares from how the shapes were placed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import defectlab
from defectlab.imaging.io import read_image
from defectlab.model import Dataset, Ellipse, Item, Label, Polyline
from defectlab.plan import Plan, PlanOptions, fingerprint, make_plan, parse_duration, plan_dataset
from defectlab.preparation.augment import Augment
from defectlab.preparation.synthetic_pretrain import PretrainConfig, make_pretrain_dataset

CAVITIES_ONLY = dict(loops=(0, 0), precipitates=(0, 0), lines=(0, 0))


def tiles_for_radius(r, *, context=3.0, multiple=32):
    """Every tile the rule "context × the largest extent, rounded up to a multiple of 32" can
    give for cavities of major radius ``r`` and minor radius 0.8 r … r at any rotation: the
    longer side of a rotated ellipse's bounding box is at least sqrt((rx² + ry²) / 2), and a
    pixel mask adds or loses at most one pixel across."""
    lo = 2 * math.sqrt((r * r + (0.8 * r) ** 2) / 2) - 1
    hi = 2 * r + 1
    return {math.ceil(context * e / multiple) * multiple for e in np.linspace(lo, hi, 200)}


@pytest.fixture(scope="module")
def sixteen_bit(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "cav16"
    cfg = PretrainConfig(size_hw=(256, 256), cavities=(4, 6), **CAVITIES_ONLY, cavity_radius_px=(26.0, 26.0),
                         bit_depths=(16,))
    make_pretrain_dataset(out, n_images=3, config=cfg, seed=1)
    return out


@pytest.fixture(scope="module")
def eight_bit(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "cav8"
    cfg = PretrainConfig(size_hw=(256, 320), cavities=(6, 10), **CAVITIES_ONLY, cavity_radius_px=(4.0, 4.0),
                         bit_depths=(8,))
    make_pretrain_dataset(out, n_images=2, config=cfg, seed=2)
    return out


def pixels_of(export):
    return [read_image(it.image) for it in defectlab.read(export)]


def test_tile_and_normalization_of_a_16_bit_set(sixteen_bit):
    fp, plan = plan_dataset(sixteen_bit)
    assert tiles_for_radius(26.0) == {160}  # the radius leaves one possible tile
    assert plan.tile_size == 160
    assert "the largest cavity spans" in plan.reasons["tile_size"]
    pixels = pixels_of(sixteen_bit)
    assert {p.dtype for p in pixels} == {np.dtype(np.uint16)}
    n = plan.normalization
    assert (n.method, n.scope, n.levels, n.bit_depth, n.dtype) == ("percentile", "image", (0.5, 99.5), 16, "uint16")
    lo, hi = np.percentile(np.concatenate([p.ravel() for p in pixels]).astype(np.float64), [0.5, 99.5])
    assert (n.dataset_lo, n.dataset_hi) == (pytest.approx(lo), pytest.approx(hi))
    assert hi - lo > 1000  # thousands of levels between the clipping points: 16 bits, not 8 scaled up
    assert "16-bit values go to the net as float32 at full depth" in plan.reasons["normalization"]
    # The overlap holds the largest cavity whole: at least its extent, 2 r + 1 at most.
    assert 2 * 0.9 * 26 - 1 <= plan.overlap <= 2 * 26 + 1 + 8


def test_tile_and_normalization_of_an_8_bit_set_of_small_defects(eight_bit):
    _, plan = plan_dataset(eight_bit)
    assert max(tiles_for_radius(4.0)) < 128  # the defects alone would ask for less than the floor
    assert plan.tile_size == 128
    assert "at least 128 px of context" in plan.reasons["tile_size"]
    n = plan.normalization
    assert (n.method, n.bit_depth, n.dtype) == ("percentile", 8, "uint8")
    lo, hi = np.percentile(np.concatenate([p.ravel() for p in pixels_of(eight_bit)]).astype(np.float64), [0.5, 99.5])
    assert (n.dataset_lo, n.dataset_hi) == (pytest.approx(lo), pytest.approx(hi))


def test_tile_is_never_larger_than_the_images(tmp_path):
    out = tmp_path / "big"
    cfg = PretrainConfig(size_hw=(176, 224), cavities=(1, 1), **CAVITIES_ONLY, cavity_radius_px=(40.0, 40.0),
                         bit_depths=(8,))
    make_pretrain_dataset(out, n_images=1, config=cfg, seed=0)
    _, plan = plan_dataset(out)
    assert min(tiles_for_radius(40.0)) > 176  # the rule alone would ask for more than the image
    assert plan.tile_size == 160  # 176 rounded down to a multiple of 32
    assert "the smallest image is 176 px across" in plan.reasons["tile_size"]


# ----------------------------------------------------------------------------------------
# Architecture: touching defects choose the instance model


def circles(centers, r):
    return tuple(Ellipse(label="cavity", cx=x, cy=y, rx=r, ry=r) for x, y in centers)


def blank_plan(shapes, size_hw=(200, 200), labels=(Label("cavity"),), **options):
    item = Item("a.png", size_hw, shapes)
    rng = np.random.default_rng(0)
    array = rng.integers(90, 110, size_hw).astype(np.uint8)
    fp = fingerprint(Dataset(labels, (item,)), arrays={"a.png": array})
    return fp, make_plan(fp, PlanOptions(**options))


def test_touching_defects_choose_the_instance_model():
    apart = [(20 + 30 * i, 20 + 40 * j) for i in range(5) for j in range(2)]  # 10 circles, 22 px gaps
    pairs = [(20, 150), (40, 150), (100, 150), (120, 150)]  # two pairs whose edges meet (10 + 10 = 20)
    fp, plan = blank_plan(circles(apart[:6] + pairs, 8.0 + 2.0))
    (cav,) = fp.classes
    assert cav.count == 10 and cav.touching == pytest.approx(4 / 10)
    assert plan.arch == "stardist" and "40% of the area defects touch" in plan.reasons["arch"]
    fp, plan = blank_plan(circles(apart, 8.0))
    assert fp.classes[0].touching == 0.0
    assert plan.arch == "unet"
    fp, plan = blank_plan(circles(apart[:6] + pairs, 10.0), touching=0.5)  # a higher threshold
    assert plan.arch == "unet"


def test_a_unet_of_defects_the_shipped_model_learned_starts_from_it():
    """The shipped U-Net's classes, read here from its own config.json: a set of bubbles (a
    cavity, by the field's names) fine-tunes it; one of another kind, or a star model, does not."""
    import json

    from defectlab.dl.shipped import SHIPPED

    shipped = [c["name"] for c in json.loads((SHIPPED["synthetic"] / "config.json").read_text())["classes"][1:]]
    assert "cavity" in shipped and "grain boundary" not in shipped
    apart = circles([(20 + 30 * i, 40) for i in range(5)], 8.0)
    bubbles = tuple(Ellipse(label="bubble", cx=e.cx, cy=e.cy, rx=e.rx, ry=e.ry) for e in apart)
    fp, plan = blank_plan(bubbles, labels=(Label("bubble"),))
    assert plan.arch == "unet" and plan.init == "synthetic" and "bench_finetune" in plan.reasons["init"]
    others = tuple(Ellipse(label="grain boundary", cx=e.cx, cy=e.cy, rx=e.rx, ry=e.ry) for e in apart)
    fp, plan = blank_plan(others, labels=(Label("grain boundary"),))
    assert plan.init == "scratch" and "no labeled class" in plan.reasons["init"]
    fp, plan = blank_plan(bubbles, labels=(Label("bubble"),), arch="stardist")
    assert plan.init == "scratch" and "no pretrained stardist" in plan.reasons["init"]
    fp, plan = blank_plan(bubbles, labels=(Label("bubble"),), init="scratch")
    assert plan.init == "scratch" and plan.reasons["init"] == "given" and "init" in plan.given


def test_lines_are_thin_and_left_to_the_semantic_head():
    lines = tuple(Polyline(label="line", points_xy=[(10, 10 + 20 * i), (180, 15 + 20 * i)]) for i in range(3))
    long_thin = (Ellipse(label="rod", cx=100, cy=100, rx=40, ry=2), Ellipse(label="rod", cx=100, cy=150, rx=40, ry=2))
    pair = circles([(40, 180), (60, 180)], 10.0)
    fp, plan = blank_plan(lines + long_thin + pair, labels=(Label("cavity"), Label("line"), Label("rod")))
    thin = {c.name: c.thin for c in fp.classes}
    assert thin == {"cavity": False, "line": True, "rod": True}
    assert plan.arch == "stardist" and "line, rod (lines) in its semantic head" in plan.reasons["arch"]
    # The long lines do not set the tile: the cavities (20 px) do.
    assert plan.tile_size == 128


# ----------------------------------------------------------------------------------------
# Augmentations, batch, steps, overrides


def test_augmentations_are_valid_exact_and_follow_the_measured_noise():
    rng = np.random.default_rng(1)
    sigma = 6.0
    array = np.clip(np.rint(128 + rng.normal(0, sigma, (256, 256))), 0, 255).astype(np.uint8)
    item = Item("a.png", (256, 256), circles([(60, 60), (150, 150)], 12.0))
    fp = fingerprint(Dataset((Label("cavity"),), (item,)), arrays={"a.png": array})
    (img,) = fp.images
    assert img.noise * (img.p_high - img.p_low) == pytest.approx(sigma, rel=0.05)  # Immerkær's estimate
    plan = make_plan(fp)
    ops = {op.name: op for op in Augment.parse(plan.augment).ops}
    assert {"flip", "rot90", "contrast", "gamma", "noise", "blur", "zoom"} <= set(ops)
    assert "rotate" not in ops  # rot90 gives the orientations without interpolating
    assert ops["noise"].hi == pytest.approx(img.noise, abs=0.001)
    assert ops["blur"].hi <= 0.1 * 24 + 1e-9  # a tenth of the 24 px diameter
    assert ops["zoom"].lo >= 0.9 and ops["zoom"].hi <= 1.1


def test_pixel_sizes_that_differ_widen_the_zoom(tmp_path):
    import tifffile

    from defectlab.formats.cvat_xml import write_cvat
    from defectlab.model import ImageSource

    items = []
    for name, nm in (("a.tif", 0.5), ("b.tif", 0.8)):
        tifffile.imwrite(tmp_path / name, np.full((128, 128), 100, np.uint8), imagej=True,
                         resolution=(1 / nm, 1 / nm), metadata={"unit": "nm"})
        items.append(Item(name, (128, 128), circles([(64, 64)], 10.0), image=ImageSource(tmp_path / name)))
    write_cvat(Dataset((Label("cavity"),), tuple(items)), tmp_path / "annotations.xml")
    fp, plan = plan_dataset(tmp_path / "annotations.xml", images=tmp_path)
    assert sorted(fp.pixel_sizes_nm) == [0.5, 0.8]
    zoom = {op.name: op for op in Augment.parse(plan.augment).ops}["zoom"]
    assert zoom.hi == pytest.approx(1.6) and zoom.lo == pytest.approx(1 / 1.6, rel=1e-3)


def test_steps_fill_the_time_budget_and_follow_a_measured_step():
    fp, plan = blank_plan(circles([(50, 50)], 10.0), time_budget_s=parse_duration("2min"), step_seconds=0.5)
    assert plan.steps == int(120 * 0.9 / 0.5) and plan.step_seconds_measured
    assert plan.schedule == "onecycle"
    faster = plan.with_step_seconds(0.25)
    assert faster.steps == int(120 * 0.9 / 0.25)
    assert "measured" in faster.reasons["steps"]
    fp, estimated = blank_plan(circles([(50, 50)], 10.0))
    assert not estimated.step_seconds_measured and estimated.budget_s == 600.0
    assert "estimated" in estimated.reasons["steps"]
    assert estimated.batch_size * estimated.tile_size ** 2 == pytest.approx(0.5e6, rel=0.25)


def test_every_choice_can_be_given():
    given = dict(tile_size=192, overlap=24, normalization="minmax", augment="flip", arch="unet", batch_size=3,
                 steps=77)
    pair = circles([(40, 100), (60, 100)], 10.0)
    fp, plan = blank_plan(pair, **given)
    for name, value in given.items():
        got = plan.normalization.method if name == "normalization" else getattr(plan, name)
        assert got == value, name
        assert plan.reasons[name] == "given"
    assert set(plan.given) == set(given)
    assert plan.reasons["schedule"] != "given"


def test_gpu_plans_bigger_batches():
    _, cpu = blank_plan(circles([(50, 50)], 10.0), size_hw=(512, 512))
    _, gpu = blank_plan(circles([(50, 50)], 10.0), size_hw=(512, 512), device="gpu")
    assert gpu.batch_size > cpu.batch_size and gpu.budget_s > cpu.budget_s
    assert PlanOptions(device="cuda:1").device == PlanOptions(device="mps").device == "gpu"


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="plan: tile_size: expected a number >= 32, got 16"):
        PlanOptions(tile_size=16)
    with pytest.raises(ValueError, match="plan: normalization: expected one of percentile, minmax"):
        PlanOptions(normalization="zscore")
    with pytest.raises(ValueError, match="unknown augmentation 'twist'"):
        PlanOptions(augment="flip,twist")
    with pytest.raises(ValueError, match="plan: time_budget_s: expected a duration with a unit such as 90s"):
        PlanOptions(time_budget_s="10")
    with pytest.raises(ValueError, match="plan: step_seconds: expected a number > 0"):
        PlanOptions(step_seconds=0)
    assert PlanOptions(time_budget_s="1h30min").time_budget_s == 5400.0
    assert PlanOptions(pixel_size="3.8 Å").pixel_size == pytest.approx(0.38)
    assert isinstance(make_plan(blank_plan(circles([(50, 50)], 10.0))[0]), Plan)
