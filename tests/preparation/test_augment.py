"""Augmentations and exact geometric maps (resize, pad): labels move with the pixels.

Expectations: numpy's own flips and turns, torchvision.transforms.v2 (an independent
implementation), analytic ellipse and intensity facts, and synthetic micrographs whose
defects are drawn from known shapes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectlab.model import Box, Ellipse, Item, Mask, Polygon, Polyline
from defectlab.preparation.augment import Augment, AugmentParams, apply_intensity
from defectlab.preparation.resize import (affine_shape, fit, pad_item, resize_item, scaling, translation,
                                      warp_image, warp_mask)
from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item
from defectlab.raster import rasterize, semantic_mask

CLASSES = {"cavity": 1, "loop": 2, "precipitate": 3, "line": 4}
LINE_WIDTH = 3.0


def random_item(rng: np.random.Generator, size_hw, n: int) -> Item:
    """Ellipses, polygons, rotated boxes, polylines and masks at random sub-pixel places."""
    h, w = size_hw
    shapes = []
    for k in range(n):
        cx, cy, z = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5), int(rng.integers(0, 3))
        kind = k % 5
        if kind == 0:
            shapes.append(Ellipse(label="cavity", cx=cx, cy=cy, rx=rng.uniform(1, 9), ry=rng.uniform(1, 9),
                                  rotation_deg=rng.uniform(0, 180), z_order=z))
        elif kind == 1:
            t = np.sort(rng.uniform(0, 2 * np.pi, 6))
            r = rng.uniform(3, 12) * rng.uniform(0.6, 1.0, 6)
            shapes.append(Polygon(label="precipitate", points_xy=np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1),
                                  z_order=z))
        elif kind == 2:
            shapes.append(Box(label="loop", xyxy=(cx, cy, cx + rng.uniform(2, 15), cy + rng.uniform(2, 15)),
                              rotation_deg=rng.uniform(0, 90), z_order=z))
        elif kind == 3:
            shapes.append(Polyline(label="line", points_xy=np.cumsum(rng.normal(0, 8, (4, 2)), 0) + [cx, cy], z_order=z))
        else:
            shapes.append(Mask(label="cavity", bitmap=rng.random((6, 9)) < 0.6, left=int(cx) - 3, top=int(cy) - 3,
                               z_order=z))
    return Item("t.png", size_hw, tuple(shapes))


def params(matrix, out_hw, intensity=()):
    return AugmentParams(np.asarray(matrix, dtype=np.float64), tuple(out_hw), tuple(intensity))


def exact_maps(h: int, w: int):
    """(name, matrix, out_hw, numpy function) for the flips and turns of an h×w image."""
    return [
        ("hflip", [[-1, 0, w], [0, 1, 0]], (h, w), lambda a: a[:, ::-1]),
        ("vflip", [[1, 0, 0], [0, -1, h]], (h, w), lambda a: a[::-1, :]),
        ("rot180", [[-1, 0, w], [0, -1, h]], (h, w), lambda a: a[::-1, ::-1]),
        ("cw90", [[0, -1, h], [1, 0, 0]], (w, h), lambda a: np.rot90(a, k=-1)),   # clockwise on screen
        ("ccw90", [[0, 1, 0], [-1, 0, w]], (w, h), lambda a: np.rot90(a, k=1)),
        ("transpose", [[0, 1, 0], [1, 0, 0]], (w, h), lambda a: a.T),
    ]


# -- spec -----------------------------------------------------------------------------------------


def test_parse_spec_ranges_probabilities_and_order():
    aug = Augment.parse("noise=0:0.03@0.5, flip, rotate=20, zoom=0.9:1.1")
    assert [op.name for op in aug.ops] == ["flip", "rotate", "zoom", "noise"]  # the fixed order
    rot = next(op for op in aug.ops if op.name == "rotate")
    noise = aug.ops[-1]
    assert (rot.lo, rot.hi) == (-20.0, 20.0) and (noise.lo, noise.hi, noise.p) == (0.0, 0.03, 0.5)
    assert str(Augment.parse(str(aug))) == str(aug)


def test_parse_errors_name_what_is_expected():
    with pytest.raises(ValueError, match="unknown augmentation 'sharpen'.*known: flip, rot90"):
        Augment.parse("flip,sharpen")
    with pytest.raises(ValueError, match="'zoom': expected a range above 0"):
        Augment.parse("zoom=0:2")
    with pytest.raises(ValueError, match="probability in \\[0, 1\\]"):
        Augment.parse("noise@2")
    with pytest.raises(ValueError, match="'flip' takes no range"):
        Augment.parse("flip=1:2")
    with pytest.raises(ValueError, match="listed twice"):
        Augment.parse("noise,gauss")


# -- exact maps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size_hw", [(40, 64), (64, 64), (37, 53)])
def test_flips_and_turns_are_exact_on_image_mask_and_shapes(size_hw):
    h, w = size_hw
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size_hw, dtype=np.uint8)
    item = random_item(rng, size_hw, n=24)
    mask = semantic_mask(item, CLASSES, line_width=LINE_WIDTH)
    aug = Augment((), min_visible=0.0, line_width=LINE_WIDTH)
    for name, m, out_hw, fn in exact_maps(h, w):
        res = aug(image, item, rng=rng, mask=mask, params=params(m, out_hw))
        assert np.array_equal(res.image, fn(image)), name
        assert np.array_equal(res.mask, fn(mask)), name
        # the moved shapes, rasterized again, are the moved mask (random coordinates: no ties)
        assert res.item.size_hw == out_hw
        assert np.array_equal(semantic_mask(res.item, CLASSES, line_width=LINE_WIDTH), fn(mask)), name
        # whole shapes keep their kind: an ellipse stays an ellipse
        kinds_in = [s.kind for s in item.shapes if rasterize(s, size_hw, line_width=LINE_WIDTH).area
                    and "clipped" not in s.attributes]
        assert {"ellipse", "polygon", "polyline"} <= set(kinds_in)
        assert {"ellipse", "polygon", "polyline"} <= {s.kind for s in res.item.shapes}


def test_our_exact_maps_equal_torchvision():
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    h, w = 30, 50
    img = np.random.default_rng(1).integers(0, 255, (h, w), dtype=np.uint8)
    t = tv_tensors.Image(torch.from_numpy(img)[None])
    maps = {name: (m, out_hw) for name, m, out_hw, _ in exact_maps(h, w)}
    tv = {
        "hflip": F.horizontal_flip(t), "vflip": F.vertical_flip(t),
        "ccw90": F.rotate(t, 90, expand=True), "cw90": F.rotate(t, -90, expand=True),
    }
    for name, expected in tv.items():
        m, out_hw = maps[name]
        assert np.array_equal(warp_image(img, np.array(m, float), out_hw), expected[0].numpy()), name


def test_arbitrary_rotation_matches_torchvision_bilinear():
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    h, w = 64, 96
    yy, xx = np.mgrid[0:h, 0:w]
    img = (100 + 50 * np.sin(xx / 7.0) * np.cos(yy / 5.0)).astype(np.float32)  # smooth
    angle = 23.0  # ours: clockwise on screen; torchvision: counter-clockwise
    aug = Augment.parse("rotate=23:23")
    ours = aug(img, rng=np.random.default_rng(0)).image
    theirs = F.rotate(torch.from_numpy(img)[None], -angle, interpolation=InterpolationMode.BILINEAR)[0].numpy()
    inner = (slice(16, h - 16), slice(24, w - 24))  # away from the filled corners
    assert np.abs(ours[inner] - theirs[inner]).mean() < 0.5  # of a 100-px-range image


def test_same_seed_same_result_different_seed_different():
    item = random_item(np.random.default_rng(2), (64, 64), n=12)
    image = np.random.default_rng(3).integers(0, 255, (64, 64), dtype=np.uint8)
    aug = Augment.parse("flip,rot90,rotate,zoom,jitter,gradient,contrast,gamma,brightness,blur,poisson,noise,saltpepper")
    a = aug(image, item, rng=np.random.default_rng(42))
    b = aug(image, item, rng=np.random.default_rng(42))
    c = aug(image, item, rng=np.random.default_rng(43))
    assert np.array_equal(a.image, b.image) and a.item.shapes == b.item.shapes
    assert not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.uint8


def test_augmented_masks_cover_the_augmented_defects():
    """Noise-free synthetic precipitates (dark, filled exactly by their polygons): after a
    rotation, zoom and flip the dark pixels of the augmented image are where the moved
    polygons are."""
    cfg = SyntheticConfig(size_hw=(160, 200), n_cavities=0, n_loops=0, n_precipitates=8, n_lines=0,
                          precipitate_radius_px=(8.0, 14.0), noise=0.0, dose=math.inf, blur_px=0.0)
    image, item = synthetic_item(np.random.default_rng(7), cfg)
    background = np.median(image)
    for seed in range(3):
        aug = Augment.parse("flip,rotate=-40:40,zoom=0.9:1.2", min_visible=0.0)
        res = aug(image, item, rng=np.random.default_rng(seed))
        truth = semantic_mask(res.item, {"cavity": 1, "loop": 2, "precipitate": 3, "dislocation line": 4}) > 0
        dark = res.image < background - 25
        iou = (dark & truth).sum() / (dark | truth).sum()
        assert iou > 0.9, (seed, iou)
        assert truth.sum() > 0.5 * (semantic_mask(item, {"precipitate": 3}) > 0).sum()


def test_instances_pushed_out_are_clipped_or_dropped_and_counted():
    e_in = Ellipse(label="cavity", cx=32, cy=32, rx=4, ry=4)
    e_edge = Ellipse(label="cavity", cx=3.0, cy=32, rx=6, ry=6)
    e_out = Ellipse(label="loop", cx=2.5, cy=10, rx=1.5, ry=1.5)
    item = Item("t.png", (64, 64), (e_in, e_edge, e_out))
    shift = params(translation(-6, 0), (64, 64))
    # shifted left by 6 px the edge disc (r = 6) keeps the segment beyond its center's distance
    # d = 3 from the border: r² acos(d/r) − d √(r² − d²) = 22.1 px² of 113.1, i.e. 19.5 %
    share = (36 * math.acos(0.5) - 3 * math.sqrt(27)) / (math.pi * 36)
    assert 0.15 < share < 0.25
    blank = np.zeros((64, 64), np.uint8)
    strict = Augment((), min_visible=0.25)(blank, item, rng=np.random.default_rng(0), params=shift)
    assert strict.dropped == {"cavity": 1, "loop": 1}
    (e,) = strict.item.shapes
    assert isinstance(e, Ellipse) and (e.cx, e.cy) == (26.0, 32.0)
    loose = Augment((), min_visible=0.15)(blank, item, rng=np.random.default_rng(0), params=shift)
    assert loose.dropped == {"loop": 1}
    _, m = loose.item.shapes
    assert isinstance(m, Mask) and m.attributes["clipped"] == "1"
    moved = affine_shape(e_edge, translation(-6, 0))
    assert np.array_equal(rasterize(m, (64, 64)).to_full((64, 64)), rasterize(moved, (64, 64)).to_full((64, 64)))


# -- intensity ------------------------------------------------------------------------------------


def test_intensity_facts():
    rng = np.random.default_rng(0)
    img = rng.uniform(10, 210, (200, 300))
    lo, span = img.min(), img.max() - img.min()
    c = apply_intensity(img, [("contrast", 1.5)], rng)
    assert c.mean() == pytest.approx(img.mean()) and c.std() == pytest.approx(1.5 * img.std())
    g = apply_intensity(img, [("gamma", 2.0)], rng)
    assert np.allclose(g, lo + ((img - lo) / span) ** 2 * span)
    b = apply_intensity(img, [("brightness", 0.1)], rng)
    assert np.allclose(b - img, 0.1 * span)
    n = apply_intensity(img, [("noise", 0.05)], rng)
    assert (n - img).mean() == pytest.approx(0.0, abs=0.01 * span) and (n - img).std() == pytest.approx(0.05 * span, rel=0.03)
    ramp = np.tile(np.linspace(0, 100, 500), (400, 1))
    sp = apply_intensity(ramp, [("saltpepper", 0.02)], rng)
    changed = ~np.isclose(sp, ramp)
    assert abs(changed.mean() - 0.02) < 0.003  # binomial: sd 0.0002
    assert set(np.unique(sp[changed])) <= {0.0, 100.0}
    assert np.allclose(apply_intensity(ramp, [("blur", 1.0)], rng)[:, 10:-10], ramp[:, 10:-10])  # a ramp survives a symmetric blur
    two = np.zeros((300, 300))
    two[:, 150:] = 1.0  # range 1: u = the value
    p = apply_intensity(two, [("poisson", 50.0)], rng)[:, 150:]
    assert p.mean() == pytest.approx(1.0, rel=0.02) and p.var() == pytest.approx(1.0 / 50, rel=0.05)
    flat = np.full((400, 500), 50.0)  # a flat image has range 1 by convention
    row = apply_intensity(flat, [("gradient", 0.2)], rng, gradient_angle=0.0)[0]
    assert row[-1] - row[0] == pytest.approx(0.2 * 499 / 500)  # pixel centers across the width / max(H, W)


# -- resize, pad, fit -----------------------------------------------------------------------------


def test_resize_ellipse_exactly_under_unequal_scales():
    e = Ellipse(label="loop", cx=40, cy=30, rx=12, ry=5, rotation_deg=30)
    r = affine_shape(e, scaling(0.5, 2.0))
    assert isinstance(r, Ellipse) and r.area() == pytest.approx(e.area() * 1.0)
    # points on the ellipse map onto the new one: (u/rx)^2 + (v/ry)^2 == 1
    t = np.linspace(0, 2 * np.pi, 50)
    a = math.radians(30)
    x = 40 + 12 * np.cos(t) * math.cos(a) - 5 * np.sin(t) * math.sin(a)
    y = 30 + 12 * np.cos(t) * math.sin(a) + 5 * np.sin(t) * math.cos(a)
    x, y = 0.5 * x, 2.0 * y
    b = math.radians(r.rotation_deg)
    u = ((x - r.cx) * math.cos(b) + (y - r.cy) * math.sin(b)) / r.rx
    v = (-(x - r.cx) * math.sin(b) + (y - r.cy) * math.cos(b)) / r.ry
    assert np.allclose(u * u + v * v, 1.0)


def test_resize_boxes_polygons_and_masks():
    box = Box(label="loop", xyxy=(10, 20, 30, 25))
    rbox = Box(label="loop", xyxy=(10, 20, 30, 25), rotation_deg=20)
    poly = Polygon(label="p", points_xy=[(1, 1), (5, 1), (3, 4)])
    line = Polyline(label="l", points_xy=[(0, 0), (10, 10)])
    mask = Mask(label="c", bitmap=np.array([[1, 0], [1, 1]], bool), left=3, top=2)
    item = Item("a.png", (50, 40), (box, rbox, poly, line, mask))
    out = resize_item(item, (100, 120))  # x3, y2
    b, rb, p, ln, m = out.shapes
    assert isinstance(b, Box) and b.xyxy == (30.0, 40.0, 90.0, 50.0)
    assert isinstance(rb, Polygon) and np.allclose(rb.points_xy, rbox.corners_xy() * [3, 2])
    assert np.allclose(p.points_xy, np.array(poly.points_xy) * [3, 2])
    assert np.allclose(ln.points_xy, [[0, 0], [30, 20]])
    assert (m.left, m.top) == (9, 4) and np.array_equal(m.bitmap, np.kron(mask.bitmap, np.ones((2, 3), bool)))


def test_fit_modes_keep_labels_on_their_pixels():
    img = np.zeros((60, 80), np.uint8)
    img[20:30, 40:50] = 200
    item = Item("a.png", (60, 80), (Box(label="c", xyxy=(40, 20, 50, 30)),))
    for mode, size in (("scale", (120, 160)), ("pad", (64, 96)), ("letterbox", (100, 100))):
        out_img, out_item = fit(img, item, size, mode=mode, align="center")
        assert out_img.shape == size and out_item.size_hw == size
        inside = rasterize(out_item.shapes[0], size).to_full(size)
        bright = out_img > 100
        assert (bright & inside).sum() / (bright | inside).sum() > 0.9, mode
    padded = pad_item(item, (64, 96), align="center")
    assert padded.shapes[0].xyxy == (48.0, 22.0, 58.0, 32.0)
    with pytest.raises(ValueError, match="cannot pad a 80x60 \\(WxH\\) image to the smaller 70x50"):
        pad_item(item, (50, 70))


def test_warp_mask_never_invents_values():
    m = np.random.default_rng(0).integers(0, 4, (50, 70), dtype=np.uint8)
    a = math.radians(17)
    rot = np.array([[math.cos(a), -math.sin(a), 10], [math.sin(a), math.cos(a), -5]]) @ np.diag([1.2, 1.2, 1])
    out = warp_mask(m, rot, (50, 70))
    assert out.dtype == np.uint8 and set(np.unique(out)) <= set(np.unique(m)) | {0}
