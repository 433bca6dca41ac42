"""check() on the workshop's real CVAT export of He bubbles: findings against facts computed
here independently (scikit-image's point-in-polygon test on every pixel center)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import points_in_poly

from defectlab.formats import read
from defectlab.qc import check


@pytest.fixture(scope="module")
def workshop(shared_data):
    ds = read(shared_data / "workshop" / "DL_for_Microscopy_Train_Lab_1.xml")
    item = ds[0]
    h, w = item.size_hw
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    centers = np.stack([xx.ravel(), yy.ravel()], axis=1)
    masks = np.stack([points_in_poly(centers, s.points_xy).reshape(h, w) for s in item.shapes])
    return ds, masks, check(ds)


def test_the_export_and_the_independent_masks(workshop):
    ds, masks, result = workshop
    assert len(ds[0].shapes) == 37 and all(s.kind == "polygon" for s in ds[0].shapes)
    union = masks.any(axis=0).sum()
    assert 1 - union / masks.sum() == pytest.approx(0.115, abs=0.001)  # heavily overlapping polygons
    assert result.images_read == 1
    assert result.edges == {"bubble": ("inner", "guess")}


def test_heavy_overlaps_are_the_independently_computed_pairs(workshop):
    ds, masks, result = workshop
    area = masks.sum(axis=(1, 2))
    shared = np.einsum("ihw,jhw->ij", masks.astype(np.int64), masks.astype(np.int64))
    iou = shared / (area[:, None] + area[None, :] - shared)
    frac = shared / np.minimum(area[:, None], area[None, :])
    i, j = np.nonzero(np.triu(frac > 0.5, k=1))
    expected = {(int(b), int(a)) for a, b in zip(i, j)}  # (later shape, earlier shape)
    assert len(expected) == 3
    got = {(f.shape, f.related[0]) for f in result.findings if f.code == "overlap-heavy"}
    assert got == expected
    for f in result.findings:
        if f.code == "overlap-heavy":
            assert f.value == pytest.approx(frac[f.shape, f.related[0]])
    # no duplicates: the largest IoU between two shapes is far below 0.95
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.5
    assert not [f for f in result.findings if f.code == "shape-duplicate"]


def test_no_holes_no_geometry_errors(workshop):
    ds, masks, result = workshop
    union = masks.any(axis=0)
    assert not (ndimage.binary_fill_holes(union) & ~union).any()
    codes = {f.code for f in result.findings}
    assert "overlap-hole" not in codes
    assert result.counts()["error"] == 0
    assert not codes & {"shape-self-intersecting", "shape-outside-image", "shape-too-few-vertices", "shape-tiny",
                        "shape-concave", "image-size-mismatch"}


def test_size_outliers_against_an_independent_robust_z(workshop):
    ds, masks, result = workshop
    log = np.log(masks.sum(axis=(1, 2)).astype(float))
    z = (log - np.median(log)) / (1.4826 * np.median(np.abs(log - np.median(log))))
    expected = set(np.flatnonzero(np.abs(z) > 4).tolist())
    assert expected  # the two small bubbles cut by the image border
    assert {f.shape for f in result.findings if f.code == "size-outlier"} == expected


def test_edge_findings_follow_the_measured_offsets(workshop):
    ds, masks, result = workshop
    offsets = {r.shape: r.edge_offset_px for r in result.records if not np.isnan(r.edge_offset_px)}
    assert len(offsets) >= 20  # most bubbles show a dark rim within reach
    flagged = {f.shape for f in result.findings if f.code == "edge-off-convention"}
    assert flagged == {i for i, off in offsets.items() if abs(off) > result.config.edge_tolerance}
    # labelers drew these bubbles slightly outside the rim's inner edge: never inside it by > 1 px
    assert max(offsets.values()) < 1.0
    # the guess is said once (result.edges), not in each finding (#14.10: messages stay short)
    assert {how for _edge, how in result.edges.values()} == {"guess"}
    edge_findings = [f for f in result.findings if f.code == "edge-off-convention"]
    assert edge_findings and all(len(f.message) < 60 and "guessed" not in f.message for f in edge_findings)
    for f in edge_findings:  # each names its place: the center of the shape's bounds
        x1, y1, x2, y2 = ds[0].shapes[f.shape].bbox_xyxy()
        assert f.xy == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2))
