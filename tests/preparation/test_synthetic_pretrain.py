"""Pretraining micrographs: each imaging effect is measured on the pixels.

Expected values come from the imaging conditions given (the inputs) and from computations
made here: radial profiles across a cavity's labeled edge, a least-squares fit of the
background's log intensity, scipy's own Gaussian filter, the variance of Poisson counts, a
twin image drawn from the same seed without the effect.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

import defectlab
from defectlab.errors import OutputError
from defectlab.preparation.synthetic import SYNTHETIC_LABELS
from defectlab.preparation.synthetic_pretrain import (
    IMAGING_FILE,
    Imaging,
    PretrainConfig,
    draw_imaging,
    make_pretrain_dataset,
    pretrain_item,
)

#: No noise, no blur, no gradient: only what a test turns on.
CLEAN = Imaging(focus="under", fringe_contrast=0.3, fringe_width_px=1.0, cavity_brightness=0.0, contrast=1.0,
                thickness_gradient=0.0, blur_px=0.0, dose=math.inf, read_noise=0.0, background_level=0.4,
                gain=0.3, bit_depth=16)
NOTHING = dict(cavities=(0, 0), loops=(0, 0), precipitates=(0, 0), lines=(0, 0))


def intensity(image, imaging):
    """Gray values back to intensity, inverting the detector mapping of the imaging conditions."""
    top = 2 ** imaging.bit_depth - 1
    return (image.astype(np.float64) / top - imaging.background_level) / imaging.gain + 1.0


def edge_distance(e, size_hw):
    """Approximate signed distance (px) of every pixel center from ellipse ``e``'s edge (< 0 inside)."""
    yy, xx = np.mgrid[0:size_hw[0], 0:size_hw[1]] + 0.5
    t = math.radians(e.rotation_deg)
    dx, dy = xx - e.cx, yy - e.cy
    u, v = dx * math.cos(t) + dy * math.sin(t), dy * math.cos(t) - dx * math.sin(t)
    return (np.hypot(u / e.rx, v / e.ry) - 1.0) * math.sqrt(e.rx * e.ry)


# ----------------------------------------------------------------------------------------
# Defocus: Fresnel fringes at the labeled cavity edge


@pytest.mark.parametrize("width", [0.7, 1.5])
@pytest.mark.parametrize("focus", ["under", "over"])
def test_fresnel_fringe_just_outside_the_labeled_edge(focus, width):
    cfg = PretrainConfig(size_hw=(96, 96), **{**NOTHING, "cavities": (1, 1)}, cavity_radius_px=(16.0, 16.0))
    imaging = replace(CLEAN, focus=focus, fringe_width_px=width)
    image, item, _ = pretrain_item(5, cfg, imaging=imaging)
    (e,) = item.shapes
    assert e.label == "cavity" and e.rx == 16.0
    i = intensity(image, imaging)
    d = edge_distance(e, cfg.size_hw)
    background = i[(d > 8) & (d < 14)].mean()
    starts = np.arange(-8.0, 10.0, 0.5)
    profile = np.array([i[(d >= a) & (d < a + 0.5)].mean() for a in starts])
    ring = i[(d >= 0) & (d < 2)].mean() / background
    inside = i[d < -6].mean() / background
    extreme = starts[np.argmin(profile) if focus == "under" else np.argmax(profile)]
    assert -0.5 <= extreme <= 2.0  # the fringe sits at the label's edge, on the outside
    if focus == "under":  # bright cavity, dark fringe
        assert ring < 1 - 0.3 * imaging.fringe_contrast and inside > 1.01
    else:  # dark cavity, bright fringe
        assert ring > 1 + 0.3 * imaging.fringe_contrast and inside < 0.99


def test_no_fringe_and_no_contrast_without_a_cavity():
    cfg = PretrainConfig(size_hw=(64, 64), **NOTHING)
    image, item, _ = pretrain_item(1, cfg, imaging=CLEAN)
    i = intensity(image, CLEAN)
    assert item.shapes == ()
    # Only the generator's faint illumination fall-off and 2 % texture remain.
    assert i.std() < 0.06 and abs(np.median(i) - 1.0) < 0.1


# ----------------------------------------------------------------------------------------
# Thickness gradient, contrast, point spread, noise, bit depth


@pytest.mark.parametrize("angle", [0.0, 30.0, 135.0])
def test_thickness_gradient_is_an_exponential_ramp_along_its_direction(angle):
    cfg = PretrainConfig(size_hw=(80, 120), **NOTHING)
    flat, _, _ = pretrain_item(2, cfg, imaging=CLEAN)
    ramp, _, imaging = pretrain_item(2, cfg, imaging=replace(CLEAN, thickness_gradient=0.6, gradient_deg=angle))
    ratio = np.log(intensity(ramp, imaging) / intensity(flat, CLEAN))  # the generator's own background cancels
    h, w = cfg.size_hw
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    a = np.column_stack([xx.ravel() - w / 2, yy.ravel() - h / 2, np.ones(h * w)])
    gx, gy, _ = np.linalg.lstsq(a, ratio.ravel(), rcond=None)[0]
    t = math.radians(angle)
    extent = abs(w * math.cos(t)) + abs(h * math.sin(t))
    assert math.degrees(math.atan2(-gy, -gx)) % 360 == pytest.approx(angle, abs=1.0)  # darker along +direction
    assert math.hypot(gx, gy) * extent == pytest.approx(0.6, rel=0.02)  # ln(I_max / I_min) across the field


def test_contrast_scales_every_defect_against_the_background():
    cfg = PretrainConfig(size_hw=(128, 128), **{**NOTHING, "precipitates": (3, 3)})
    found = {}
    for k in (0.5, 1.0, 1.5):
        image, item, imaging = pretrain_item(4, cfg, imaging=replace(CLEAN, contrast=k))
        i = intensity(image, imaging)
        inside = defectlab.semantic_mask(item, {"precipitate": 1}) == 1
        far = ~ndimage.binary_dilation(inside, iterations=6)
        found[k] = 1.0 - i[ndimage.binary_erosion(inside, iterations=2)].mean() / np.median(i[far])
    assert found[1.0] > 0.2  # the generator's dark precipitates: 30-45 % darker
    assert found[0.5] / found[1.0] == pytest.approx(0.5, rel=0.1)
    assert found[1.5] / found[1.0] == pytest.approx(1.5, rel=0.1)


def test_point_spread_is_a_gaussian_blur_of_the_intensity():
    cfg = PretrainConfig(size_hw=(96, 96), **{**NOTHING, "cavities": (3, 3), "loops": (1, 1)})
    sharp, _, _ = pretrain_item(6, cfg, imaging=CLEAN)
    blurred, _, imaging = pretrain_item(6, cfg, imaging=replace(CLEAN, blur_px=1.5))
    want = ndimage.gaussian_filter(intensity(sharp, CLEAN), 1.5, mode="nearest")
    got = intensity(blurred, imaging)
    step = 1.0 / (65535 * CLEAN.gain)  # one gray level, in intensity
    assert np.abs(got - want).max() < 3 * step


def test_shot_and_read_noise_have_the_variance_of_their_model():
    cfg = PretrainConfig(size_hw=(128, 128), **{**NOTHING, "cavities": (4, 4)})
    clean, _, _ = pretrain_item(7, cfg, imaging=CLEAN)
    i0 = intensity(clean, CLEAN)
    shot, _, im_shot = pretrain_item(7, cfg, imaging=replace(CLEAN, dose=50.0))
    # Poisson counts of mean I·dose, divided by the dose: variance I / dose.
    z = (intensity(shot, im_shot) - i0) / np.sqrt(i0 / 50.0)
    assert abs(z.mean()) < 0.05 and z.var() == pytest.approx(1.0, rel=0.06)
    read, _, im_read = pretrain_item(7, cfg, imaging=replace(CLEAN, read_noise=0.02))
    diff = read.astype(np.float64) - clean.astype(np.float64)  # gray levels
    assert diff.std() == pytest.approx(0.02 * 65535, rel=0.05)


@pytest.mark.parametrize("depth", [8, 16])
def test_bit_depth(depth):
    cfg = PretrainConfig(size_hw=(96, 96), **{**NOTHING, "cavities": (2, 2)})
    imaging = replace(CLEAN, bit_depth=depth, dose=500.0, read_noise=0.002, blur_px=0.8)
    image, _, _ = pretrain_item(8, cfg, imaging=imaging)
    assert image.dtype == (np.uint8 if depth == 8 else np.uint16)
    levels = len(np.unique(image))
    if depth == 16:
        assert levels > 2000  # thousands of gray levels, not 256 scaled up
    else:
        assert levels <= 256


# ----------------------------------------------------------------------------------------
# Drawing the conditions, and the dataset on disk


def test_conditions_are_drawn_from_the_ranges():
    cfg = PretrainConfig()
    rng = np.random.default_rng(0)
    drawn = [draw_imaging(rng, cfg) for _ in range(400)]
    focus = Counter(d.focus for d in drawn)
    depths = Counter(d.bit_depth for d in drawn)
    assert 150 < focus["over"] < 250 and 150 < depths[16] < 250
    for name in ("fringe_contrast", "contrast", "blur_px", "dose", "thickness_gradient", "read_noise"):
        lo, hi = getattr(cfg, name)
        values = np.array([getattr(d, name) for d in drawn])
        assert values.min() >= lo and values.max() <= hi
        assert values.min() < lo + 0.2 * (hi - lo) and values.max() > hi - 0.2 * (hi - lo)  # wide, not a point
    doses = np.log([d.dose for d in drawn])
    assert np.median(doses) == pytest.approx(np.mean(np.log(cfg.dose)), abs=0.4)  # log-uniform


def test_dataset_holds_every_class_and_both_depths(tmp_path):
    cfg = PretrainConfig(size_hw=(128, 128), cavities=(3, 6), loops=(1, 2), precipitates=(1, 2), lines=(1, 1))
    out = tmp_path / "pretrain"
    ds = make_pretrain_dataset(out, n_images=6, config=cfg, seed=3)
    back = defectlab.read(out)
    assert [lab.name for lab in back.labels] == [lab.name for lab in SYNTHETIC_LABELS]
    assert Counter(s.label for it in back for s in it.shapes) == Counter(s.label for it in ds for s in it.shapes)
    assert set(Counter(s.label for it in ds for s in it.shapes)) == {lab.name for lab in SYNTHETIC_LABELS}
    record = json.loads((out / IMAGING_FILE).read_text())
    assert sorted(record) == sorted(it.name for it in ds)
    depths = {r["bit_depth"] for r in record.values()}
    assert depths == {8, 16}
    for it in back:
        pixels = defectlab.imaging.io.read_image(it.image)
        want = np.uint8 if record[it.name]["bit_depth"] == 8 else np.uint16
        assert pixels.dtype == want and pixels.shape == it.size_hw
        assert it.name.endswith(".png" if want is np.uint8 else ".tif")
    # Labels are the exact shapes pretrain_item made for the same stream.
    stream = np.random.SeedSequence(3).spawn(6)[2]
    _, item, _ = pretrain_item(stream, cfg)
    assert back.items[2].shapes == item.shapes


def test_dataset_refuses_to_replace_without_overwrite(tmp_path):
    out = tmp_path / "p"
    cfg = PretrainConfig(size_hw=(32, 32), **NOTHING)
    make_pretrain_dataset(out, n_images=1, config=cfg)
    with pytest.raises(OutputError, match="not empty"):
        make_pretrain_dataset(out, n_images=2, config=cfg)
    assert len(list((out / "images").iterdir())) == 1
    make_pretrain_dataset(out, n_images=2, config=cfg, overwrite=True)
    assert len(list((out / "images").iterdir())) == 2


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="bit_depths from"):
        PretrainConfig(bit_depths=(12,))
    with pytest.raises(ValueError, match="whole numbers for cavities"):
        PretrainConfig(cavities=(0, 2.5))
    with pytest.raises(ValueError, match="cavity_radius_px with 1 <= min <= max"):
        PretrainConfig(cavity_radius_px=(5, 2))
    with pytest.raises(ValueError, match="focus 'under' or 'over'"):
        Imaging(focus="in")
    with pytest.raises(ValueError, match="finite blur_px >= 0"):
        Imaging(blur_px=-1)
