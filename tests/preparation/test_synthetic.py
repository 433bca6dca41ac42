"""Tests of synthetic micrographs.

Every expected value here is computed independently of the code under test: shapes are
turned into pixel masks by sampling their boundary parametrically and testing pixel
centers with ``skimage.measure.points_in_poly``; lines by ``skimage.draw.line`` and a
dilation. None of the renderer's own inside tests are used.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.draw import line as draw_line
from skimage.measure import points_in_poly

from defectlab.errors import OutputError
from defectlab.model import Ellipse, Item, Polygon, Polyline, Shape
from defectlab.preparation.synthetic import (
    INTENSITY_RANGE,
    SYNTHETIC_LABELS,
    SyntheticConfig,
    make_synthetic_dataset,
    synthetic_item,
)

CLEAN = dict(noise=0.0, dose=math.inf)  # no read noise, no shot noise
SMALL = SyntheticConfig(size_hw=(160, 200), n_cavities=6, n_loops=3, n_precipitates=3, n_lines=1)


# ----------------------------------------------------------------------------------------
# Independent pixel masks (pixel (c, r) is in a shape when its center (c+.5, r+.5) is)


def ellipse_outline(e: Ellipse, grow: float = 0.0, n: int = 720) -> np.ndarray:
    """(n, 2) boundary points of the ellipse with both radii changed by ``grow``.

    Parametric form, rotated clockwise on screen (y down) as the data model documents."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    a, b = (e.rx + grow) * np.cos(t), (e.ry + grow) * np.sin(t)
    th = np.radians(e.rotation_deg)
    return np.stack([e.cx + a * np.cos(th) - b * np.sin(th), e.cy + a * np.sin(th) + b * np.cos(th)], axis=1)


def polygon_mask(points_xy: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    mask = np.zeros((h, w), dtype=bool)
    c0, r0 = (max(0, int(np.floor(v)) - 1) for v in points_xy.min(axis=0))
    c1, r1 = int(np.ceil(points_xy[:, 0].max())) + 1, int(np.ceil(points_xy[:, 1].max())) + 1
    c1, r1 = min(w, c1), min(h, r1)
    if c1 <= c0 or r1 <= r0:
        return mask
    cc, rr = np.meshgrid(np.arange(c0, c1), np.arange(r0, r1))
    centers = np.stack([cc.ravel() + 0.5, rr.ravel() + 0.5], axis=1)
    mask[r0:r1, c0:c1] = points_in_poly(centers, points_xy).reshape(cc.shape)
    return mask


def ellipse_mask(e: Ellipse, size_hw: tuple[int, int], grow: float = 0.0) -> np.ndarray:
    if min(e.rx, e.ry) + grow <= 0:
        return np.zeros(size_hw, dtype=bool)
    return polygon_mask(ellipse_outline(e, grow), size_hw)


def line_mask(p: Polyline, size_hw: tuple[int, int], dilate: int = 1) -> np.ndarray:
    mask = np.zeros(size_hw, dtype=bool)
    pts = np.floor(p.points_xy).astype(int)
    for (c0, r0), (c1, r1) in zip(pts[:-1], pts[1:]):
        rr, cc = draw_line(r0, c0, r1, c1)
        mask[rr, cc] = True
    return ndimage.binary_dilation(mask, iterations=dilate) if dilate else mask


def footprint(shape: Shape, size_hw: tuple[int, int]) -> np.ndarray:
    """Pixels a defect darkens or brightens: the label, plus a 2 px rim around cavities."""
    if isinstance(shape, Ellipse):
        return ellipse_mask(shape, size_hw, grow=2.0 if shape.label == "cavity" else 0.0)
    if isinstance(shape, Polygon):
        return polygon_mask(shape.points_xy, size_hw)
    assert isinstance(shape, Polyline)
    return line_mask(shape, size_hw)


def mean_gray(image: np.ndarray, mask: np.ndarray) -> float:
    assert mask.any(), "empty band"
    return float(image[mask].mean())


def by_label(item: Item, label: str) -> list[Shape]:
    return [s for s in item.shapes if s.label == label]


# ----------------------------------------------------------------------------------------
# Basic output


def test_image_and_item_basics() -> None:
    image, item = synthetic_item(np.random.default_rng(0), SMALL, name="x.png")
    assert image.shape == (160, 200) and image.dtype == np.uint8
    assert item.name == "x.png" and item.size_hw == (160, 200) and item.image is None
    assert Counter(s.label for s in item.shapes) == {"cavity": 6, "loop": 3, "precipitate": 3, "dislocation line": 1}
    # Listed in label order.
    order = [lab.name for lab in SYNTHETIC_LABELS]
    ranks = [order.index(s.label) for s in item.shapes]
    assert ranks == sorted(ranks)
    assert all(s.z_order == 0 for s in item.shapes)
    # Background sits near the middle of the fixed gray scale (intensity 1.0).
    lo, hi = INTENSITY_RANGE
    assert abs(np.median(image) - (1.0 - lo) / (hi - lo) * 255) < 20


def test_labels() -> None:
    labels = {lab.name: lab for lab in SYNTHETIC_LABELS}
    assert list(labels) == ["cavity", "loop", "precipitate", "dislocation line"]
    assert labels["cavity"].edge == "inner" and labels["loop"].edge == "outer"
    assert labels["dislocation line"].type == "polyline"
    assert all(lab.color for lab in SYNTHETIC_LABELS)


def test_shape_kinds_and_parameters() -> None:
    _, item = synthetic_item(np.random.default_rng(7), SyntheticConfig(size_hw=(512, 512)))
    kinds = {"cavity": Ellipse, "loop": Ellipse, "precipitate": Polygon, "dislocation line": Polyline}
    for s in item.shapes:
        assert type(s) is kinds[s.label]
    for c in by_label(item, "cavity"):
        assert 3.0 - 0.01 <= c.rx <= 14.0 + 0.01
        assert 0.8 - 0.002 <= c.ry / c.rx <= 1.0
    for lp in by_label(item, "loop"):
        assert 8.0 - 0.01 <= lp.rx <= 25.0 + 0.01
    for p in by_label(item, "precipitate"):
        assert 10 <= len(p.points_xy) <= 24
        r = np.hypot(*(p.points_xy - p.points_xy.mean(axis=0)).T)
        assert r.max() / r.min() < 1.25 / 0.75 * 1.6  # star-shaped blob, not a sliver
    for ln in by_label(item, "dislocation line"):
        assert 4 <= len(ln.points_xy) <= 8
    # Sub-pixel coordinates, rounded to 0.01 px (what CVAT writes).
    centers = np.array([[c.cx, c.cy] for c in by_label(item, "cavity")])
    assert np.any(centers != np.round(centers))
    assert np.array_equal(centers, np.round(centers, 2))


def test_determinism() -> None:
    a_img, a_item = synthetic_item(np.random.default_rng(42), SMALL)
    b_img, b_item = synthetic_item(np.random.default_rng(42), SMALL)
    c_img, c_item = synthetic_item(np.random.default_rng(43), SMALL)
    assert np.array_equal(a_img, b_img)
    assert a_item == b_item
    assert not np.array_equal(a_img, c_img)
    assert a_item.shapes != c_item.shapes


# ----------------------------------------------------------------------------------------
# Placement


def assert_inside_and_apart(item: Item, *, apart: bool) -> None:
    h, w = item.size_hw
    count = np.zeros((h, w), dtype=np.int32)
    for s in item.shapes:
        x1, y1, x2, y2 = s.bbox_xyxy()
        assert x1 >= 2 and y1 >= 2 and x2 <= w - 2 and y2 <= h - 2, s
        if isinstance(s, Ellipse) and s.label == "cavity":  # its rim, too
            x1, y1, x2, y2 = s.replace(rx=s.rx + 2, ry=s.ry + 2).bbox_xyxy()
            assert x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h, s
        count += footprint(s, (h, w))
    if apart:
        assert count.max() <= 1


def test_inside_and_no_overlap_default() -> None:
    for seed in range(3):
        _, item = synthetic_item(np.random.default_rng(seed), SyntheticConfig())
        assert len(item.shapes) == 26
        assert_inside_and_apart(item, apart=True)


def test_benchmark_config_places_everything_apart() -> None:
    cfg = SyntheticConfig(size_hw=(1024, 1024), n_cavities=120, n_loops=40, n_precipitates=30, n_lines=10)
    image, item = synthetic_item(np.random.default_rng(0), cfg)
    assert image.shape == (1024, 1024)
    assert len(item.shapes) == 200
    assert_inside_and_apart(item, apart=True)


def test_crowded_gives_fewer_defects_without_overlap() -> None:
    cfg = SyntheticConfig(size_hw=(64, 64), n_cavities=200, n_loops=5, n_precipitates=5, n_lines=2)
    _, item = synthetic_item(np.random.default_rng(0), cfg)
    assert 0 < len(item.shapes) < 212
    assert_inside_and_apart(item, apart=True)


def test_defect_larger_than_image_is_left_out() -> None:
    cfg = SyntheticConfig(size_hw=(16, 16), n_cavities=1, n_loops=1, n_precipitates=0, n_lines=0,
                          cavity_radius_px=(3, 3), loop_radius_px=(20, 30))
    _, item = synthetic_item(np.random.default_rng(0), cfg)
    assert [s.label for s in item.shapes] == ["cavity"]


def test_allow_overlap_sets_increasing_z() -> None:
    cfg = SyntheticConfig(size_hw=(96, 96), n_cavities=30, n_loops=10, n_precipitates=10, n_lines=3,
                          allow_overlap=True)
    _, item = synthetic_item(np.random.default_rng(0), cfg)
    assert len(item.shapes) == 53
    assert sorted(s.z_order for s in item.shapes) == list(range(53))
    assert_inside_and_apart(item, apart=False)
    count = sum(footprint(s, item.size_hw).astype(int) for s in item.shapes)
    assert count.max() > 1  # so crowded that some do overlap


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(40, 120),
    w=st.integers(40, 120),
    counts=st.tuples(*(st.integers(0, 8) for _ in range(4))),
)
def test_property_inside_and_apart(seed: int, h: int, w: int, counts: tuple[int, int, int, int]) -> None:
    cfg = SyntheticConfig(size_hw=(h, w), n_cavities=counts[0], n_loops=counts[1],
                          n_precipitates=counts[2], n_lines=counts[3])
    image, item = synthetic_item(np.random.default_rng(seed), cfg)
    assert image.shape == (h, w)
    assert_inside_and_apart(item, apart=True)


# ----------------------------------------------------------------------------------------
# Contrast follows the labeling conventions


def band_means(image: np.ndarray, e: Ellipse, inner: tuple[float, float], outer: tuple[float, float]):
    """Mean gray in the bands between grown ellipses: ``inner`` and ``outer`` are (from, to) growths."""
    hw = image.shape

    def band(a: float, b: float) -> np.ndarray:
        return ellipse_mask(e, hw, b) & ~ellipse_mask(e, hw, a)

    return mean_gray(image, band(*inner)), mean_gray(image, band(*outer))


def others_mask(item: Item, skip: Shape) -> np.ndarray:
    m = np.zeros(item.size_hw, dtype=bool)
    for s in item.shapes:
        if s is not skip:
            m |= footprint(s, item.size_hw)
    return ndimage.binary_dilation(m, iterations=2)


@pytest.fixture(scope="module")
def clean() -> tuple[np.ndarray, Item]:
    return synthetic_item(np.random.default_rng(3), SyntheticConfig(size_hw=(384, 384), **CLEAN))


def test_cavity_dark_rim_is_just_outside_the_label(clean) -> None:
    image, item = clean
    cavities = by_label(item, "cavity")
    assert cavities
    for c in cavities:
        just_inside, just_outside = band_means(image, c, (-1.0, 0.0), (0.0, 1.0))
        assert just_outside < just_inside - 10, c
        # Interior brighter than the background around the cavity.
        hw = item.size_hw
        core = ellipse_mask(c, hw, -1.5)
        ring = ellipse_mask(c, hw, 8.0) & ~ellipse_mask(c, hw, 4.0) & ~others_mask(item, c)
        if core.any() and ring.sum() > 20:
            assert mean_gray(image, core) > mean_gray(image, ring), c


def test_loop_dark_ring_is_just_inside_the_label(clean) -> None:
    image, item = clean
    loops = by_label(item, "loop")
    assert loops
    for lp in loops:
        just_inside, just_outside = band_means(image, lp, (-1.0, 0.0), (0.0, 1.0))
        assert just_inside < just_outside - 10, lp
        # The interior (well inside the 2-3 px ring) is about background.
        hw = item.size_hw
        interior = ellipse_mask(lp, hw, -5.0)
        ring = ellipse_mask(lp, hw, 8.0) & ~ellipse_mask(lp, hw, 4.0) & ~others_mask(item, lp)
        if interior.sum() > 10 and ring.sum() > 20:
            assert abs(mean_gray(image, interior) - mean_gray(image, ring)) < 8, lp


def test_precipitate_is_dark_blob(clean) -> None:
    image, item = clean
    precipitates = by_label(item, "precipitate")
    assert precipitates
    for p in precipitates:
        inside = polygon_mask(p.points_xy, item.size_hw)
        ring = (ndimage.binary_dilation(inside, iterations=5) & ~ndimage.binary_dilation(inside, iterations=2)
                & ~others_mask(item, p))
        assert mean_gray(image, inside) < mean_gray(image, ring) - 25, p


def test_dislocation_line_is_dark(clean) -> None:
    image, item = clean
    lines = by_label(item, "dislocation line")
    assert lines
    for ln in lines:
        on = line_mask(ln, item.size_hw, dilate=0)
        near = line_mask(ln, item.size_hw, dilate=6) & ~line_mask(ln, item.size_hw, dilate=3) & ~others_mask(item, ln)
        assert mean_gray(image, on) < mean_gray(image, near) - 15, ln


def test_precipitate_darkness_matches_polygon_area() -> None:
    """Sub-pixel consistency: the darkness a precipitate removes, divided by its darkness
    per pixel, is its area — the shoelace area of the label — within a few percent."""
    cfg = SyntheticConfig(size_hw=(256, 256), n_cavities=0, n_loops=0, n_precipitates=8, n_lines=0,
                          blur_px=0.0, **CLEAN)
    ratios = []
    for seed in range(3):
        image, item = synthetic_item(np.random.default_rng(seed), cfg)
        gray = image.astype(np.float64)
        for p in item.shapes:
            inside = polygon_mask(p.points_xy, item.size_hw)
            core = ndimage.binary_erosion(inside, iterations=2)
            near = ndimage.binary_dilation(inside, iterations=2)
            ring = ndimage.binary_dilation(inside, iterations=6) & ~near & ~others_mask(item, p)
            if core.sum() < 10:
                continue
            bg = gray[ring].mean()
            per_px = bg - gray[core].mean()
            ratios.append((bg - gray[near]).sum() / per_px / p.area())
    assert len(ratios) > 10
    assert abs(np.mean(ratios) - 1.0) < 0.03


def test_contrast_with_default_noise_on_average() -> None:
    diffs: dict[str, list[float]] = {"cavity": [], "loop": [], "precipitate": []}
    for seed in range(3):
        image, item = synthetic_item(np.random.default_rng(100 + seed), SyntheticConfig())
        for c in by_label(item, "cavity"):
            inside, outside = band_means(image, c, (-1.0, 0.0), (0.0, 1.0))
            diffs["cavity"].append(outside - inside)
        for lp in by_label(item, "loop"):
            inside, outside = band_means(image, lp, (-1.0, 0.0), (0.0, 1.0))
            diffs["loop"].append(inside - outside)
        for p in by_label(item, "precipitate"):
            inside = polygon_mask(p.points_xy, item.size_hw)
            ring = ndimage.binary_dilation(inside, iterations=5) & ~ndimage.binary_dilation(inside, iterations=2)
            diffs["precipitate"].append(mean_gray(image, inside) - mean_gray(image, ring))
    for name, d in diffs.items():
        assert len(d) >= 10
        assert np.mean(d) < -10, name


def test_noise_and_blur_change_the_image() -> None:
    rng_seed = 5
    clean_img, clean_item = synthetic_item(np.random.default_rng(rng_seed), SyntheticConfig(size_hw=(96, 96), **CLEAN))
    noisy_img, noisy_item = synthetic_item(np.random.default_rng(rng_seed), SyntheticConfig(size_hw=(96, 96)))
    assert clean_item == noisy_item  # imaging does not move defects
    residual = noisy_img.astype(float) - clean_img.astype(float)
    # Read noise 0.05 x 1.6 and shot noise sqrt(1/200) in intensity, in gray levels.
    lo, hi = INTENSITY_RANGE
    expected = math.hypot(0.05 * (hi - lo), math.sqrt(1 / 200)) * 255 / (hi - lo)
    assert 0.8 * expected < residual.std() < 1.2 * expected


# ----------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(size_hw=(4, 100)), "size_hw"),
        (dict(size_hw=(100,)), "size_hw"),
        (dict(n_cavities=-1), "n_cavities"),
        (dict(n_loops=1.5), "n_loops"),
        (dict(cavity_radius_px=(5.0, 2.0)), "cavity_radius_px"),
        (dict(loop_radius_px=(0.2, 2.0)), "loop_radius_px"),
        (dict(precipitate_radius_px=(1.0,)), "precipitate_radius_px"),
        (dict(noise=-0.1), "noise"),
        (dict(blur_px=float("nan")), "blur_px"),
        (dict(dose=0.0), "dose"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**kwargs)


def test_config_normalizes() -> None:
    cfg = SyntheticConfig(size_hw=[64.0, 32], n_cavities=3.0, cavity_radius_px=[2, 4])
    assert cfg.size_hw == (64, 32) and cfg.n_cavities == 3 and cfg.cavity_radius_px == (2.0, 4.0)
    assert SyntheticConfig(dose=math.inf).dose == math.inf


# ----------------------------------------------------------------------------------------
# Writing a dataset

TINY = SyntheticConfig(size_hw=(64, 80), n_cavities=3, n_loops=1, n_precipitates=1, n_lines=1)


def test_make_dataset_writes_images_and_cvat(tmp_path: Path) -> None:
    from defectlab.formats.cvat_xml import read_cvat
    from defectlab.imaging.io import read_image

    out = tmp_path / "synth"
    ds = make_synthetic_dataset(out, n_images=3, config=TINY, seed=1)
    assert ds.labels == SYNTHETIC_LABELS
    assert [it.name for it in ds] == ["synthetic_000.png", "synthetic_001.png", "synthetic_002.png"]
    assert (out / "annotations.xml").is_file()
    for it in ds:
        assert it.image is not None and it.image.path == out / "images" / it.name
        assert read_image(it.image).shape == (64, 80)
        assert it.size_hw == (64, 80)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]  # no temporary folder left

    back = read_cvat(out / "annotations.xml")
    # CVAT keeps names, colors and types; it has no place for the edge convention.
    assert [(lab.name, lab.color, lab.type) for lab in back.labels] == [
        (lab.name, lab.color, lab.type) for lab in SYNTHETIC_LABELS
    ]
    assert back.with_edges({"cavity": "inner", "loop": "outer"}).labels == SYNTHETIC_LABELS
    assert [it.name for it in back] == [it.name for it in ds]
    for it, got in zip(ds, back):
        assert got.size_hw == it.size_hw
        assert got.shapes == it.shapes  # exact: coordinates, source, z_order
        assert got.image is not None and got.image.path.resolve() == it.image.path.resolve()


def test_make_dataset_matches_synthetic_item_streams(tmp_path: Path) -> None:
    from defectlab.imaging.io import read_image

    ds3 = make_synthetic_dataset(tmp_path / "a", n_images=3, config=TINY, seed=9)
    ds2 = make_synthetic_dataset(tmp_path / "b", n_images=2, config=TINY, seed=9)
    for a, b in zip(ds3, ds2):  # image i does not depend on n_images
        assert a.shapes == b.shapes
        assert np.array_equal(read_image(a.image), read_image(b.image))
    # Image i is synthetic_item with stream i of SeedSequence(seed).
    stream = np.random.SeedSequence(9).spawn(3)[2]
    image, item = synthetic_item(np.random.default_rng(stream), TINY)
    assert item.shapes == ds3[2].shapes
    assert np.array_equal(read_image(ds3[2].image), image)


def test_make_dataset_tiff(tmp_path: Path) -> None:
    from defectlab.imaging.io import read_image

    ds = make_synthetic_dataset(tmp_path / "t", n_images=1, config=TINY, image_format="tif")
    assert ds[0].name == "synthetic_000.tif"
    img = read_image(ds[0].image)
    assert img.shape == (64, 80) and img.dtype == np.uint8


def test_make_dataset_refuses_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not empty"):
        make_synthetic_dataset(out, n_images=1, config=TINY)
    assert (out / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]

    ds = make_synthetic_dataset(out, n_images=1, config=TINY, overwrite=True)
    assert not (out / "keep.txt").exists() and ds[0].image.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_make_dataset_into_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    make_synthetic_dataset(out, n_images=1, config=TINY)
    assert (out / "images" / "synthetic_000.png").is_file()


def test_make_dataset_rejects_file_and_bad_format(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        make_synthetic_dataset(f, n_images=1, config=TINY)
    with pytest.raises(ValueError, match="image_format"):
        make_synthetic_dataset(tmp_path / "x", n_images=1, config=TINY, image_format="jpg")


def test_make_dataset_notes_missing_defects(tmp_path: Path) -> None:
    cfg = SyntheticConfig(size_hw=(48, 48), n_cavities=100, n_loops=0, n_precipitates=0, n_lines=0)
    ds = make_synthetic_dataset(tmp_path / "c", n_images=2, config=cfg)
    assert [n.code for n in ds.notes] == ["synthetic-fewer-defects"] * 2
    assert ds.notes[0].item == "synthetic_000.png" and "of 100 cavity" in ds.notes[0].message
