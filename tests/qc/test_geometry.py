"""Single-shape geometry checks: self-intersection against an exact brute-force reference,
degenerate shapes, coordinates outside the image, tiny shapes."""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from defectlab.model import Box, Dataset, Ellipse, Item, Label, Mask, Points, Polygon, Polyline
from defectlab.qc import check
from defectlab.qc.geometry import self_intersections


# ------------------------------------------------------------------------------------------
# An independent reference: exact rational arithmetic, one pair of segments at a time


def _dedup(points):
    pts = [tuple(p) for p in points]
    out = [p for k, p in enumerate(pts) if p != pts[k - 1]]
    return out if out else pts[:1]


def _segment_overlap(p, q, r, s):
    """The common part of closed segments p-q and r-s: None, ("point", pt) or ("segment", length²)."""
    p, q, r, s = ([Fraction(c) for c in v] for v in (p, q, r, s))
    d1 = (q[0] - p[0], q[1] - p[1])
    d2 = (s[0] - r[0], s[1] - r[1])
    den = d1[0] * d2[1] - d1[1] * d2[0]
    w = (r[0] - p[0], r[1] - p[1])
    if den != 0:
        t = (w[0] * d2[1] - w[1] * d2[0]) / den
        u = (w[0] * d1[1] - w[1] * d1[0]) / den
        if 0 <= t <= 1 and 0 <= u <= 1:
            return ("point", (p[0] + t * d1[0], p[1] + t * d1[1]))
        return None
    if w[0] * d1[1] - w[1] * d1[0] != 0:
        return None  # parallel, not on one line
    # collinear: project on the longer direction
    axis = 0 if abs(d1[0]) + abs(d2[0]) > 0 else 1
    a0, a1 = sorted((p[axis], q[axis]))
    b0, b1 = sorted((r[axis], s[axis]))
    lo, hi = max(a0, b0), min(a1, b1)
    if lo > hi:
        return None
    return ("segment", hi - lo) if hi > lo else ("point", None)


def reference_self_intersections(points) -> set[tuple[int, int]]:
    pts = _dedup(points)
    n = len(pts)
    if n < 3:
        return set()
    edges = [(pts[k], pts[(k + 1) % n]) for k in range(n)]
    hits = set()
    for i, j in combinations(range(n), 2):
        common = _segment_overlap(*edges[i], *edges[j])
        if common is None:
            continue
        adjacent = j == i + 1 or (i == 0 and j == n - 1)
        if adjacent and common[0] == "point":
            continue  # only their shared vertex
        hits.add((i, j))
    return hits


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=3, max_size=9))
def test_self_intersections_match_an_exact_reference(points):
    pts = np.array(points, dtype=np.float64)
    got = {tuple(p) for p in self_intersections(pts).tolist()}
    assert got == reference_self_intersections(points)


@pytest.mark.parametrize("points, expected", [
    ([(0, 0), (4, 0), (4, 4), (0, 4)], set()),                       # square
    ([(0, 0), (4, 4), (4, 0), (0, 4)], {(0, 2)}),                    # bow tie
    ([(0, 0), (4, 0), (4, 4), (2, 0)], {(0, 2), (0, 3)}),            # vertex 3 on edge 0; edge 3 runs back along it
    ([(0, 0), (4, 0), (2, 0), (2, 3)], {(0, 1), (0, 2)}),            # spike back along edge 0, then off it
    ([(0, 0), (3, 0), (3, 3), (0, 3), (0, 0), (0, 0)], set()),       # repeated closing vertices only
])
def test_self_intersections_known_cases(points, expected):
    assert {tuple(p) for p in self_intersections(np.array(points, float)).tolist()} == expected
    assert reference_self_intersections(points) == expected


def test_self_intersections_scale_with_real_coordinates():
    # a star polygon {5/2}: 5 crossings; the same shape shifted far from the origin
    t = np.pi / 2 + 2 * np.pi * np.arange(5) * 2 / 5
    star = np.stack([100 * np.cos(t), 100 * np.sin(t)], axis=1)
    assert len(self_intersections(star)) == 5
    assert len(self_intersections(star + 1e4)) == 5


# ------------------------------------------------------------------------------------------
# Findings of single shapes


def _codes(dataset, **kw):
    result = check(dataset, use_images=False, **kw)
    return {(f.code, f.shape) for f in result.findings}


def _one(*shapes, size_hw=(64, 64), labels=("precipitate",)):
    return Dataset(tuple(Label(n) for n in labels), (Item("a.png", size_hw, shapes),))


def test_clean_shapes_give_no_findings():
    ds = _one(
        Polygon(label="precipitate", points_xy=[(5, 5), (20, 5), (20, 18), (5, 18)]),
        Ellipse(label="precipitate", cx=40, cy=40, rx=8, ry=5, rotation_deg=30),
        Box(label="precipitate", xyxy=(30, 5, 45, 15), rotation_deg=10),
        Mask(label="precipitate", bitmap=np.ones((5, 6), bool), left=50, top=50),
        Polyline(label="line", points_xy=[(2, 60), (20, 50)]),
        Points(label="marker", points_xy=[(10, 40)]),
        labels=("precipitate", "line", "marker"),
    )
    assert _codes(ds) == set()


def test_degenerate_shapes_get_the_most_specific_code():
    ds = _one(
        Polygon(label="precipitate", points_xy=[(5, 5), (20, 20), (5, 5)]),                # 2 distinct vertices
        Polygon(label="precipitate", points_xy=[(5, 30), (15, 30), (25, 30)]),             # collinear: no area
        Polygon(label="precipitate", points_xy=[(30, 30.6), (50, 30.6), (50, 30.9)]),      # sliver between centers
        Mask(label="precipitate", bitmap=np.zeros((4, 4), bool), left=3, top=40),          # no pixel set
        Ellipse(label="precipitate", cx=40, cy=50, rx=0.3, ry=0.3),                       # covers no center
        Ellipse(label="precipitate", cx=40, cy=10, rx=3, ry=0),                           # zero radius
        Polyline(label="line", points_xy=[(60, 60), (60, 60)]),                            # a point
        labels=("precipitate", "line"),
    )
    assert _codes(ds) == {
        ("shape-too-few-vertices", 0), ("shape-zero-area", 1), ("shape-no-pixels", 2), ("shape-zero-area", 3),
        ("shape-no-pixels", 4), ("shape-zero-area", 5), ("shape-too-few-vertices", 6),
    }


def test_outside_the_image_and_tiny_shapes():
    ds = _one(
        Polygon(label="precipitate", points_xy=[(-5, 10), (10, 10), (10, 20)]),            # 5 px out on the left
        Polygon(label="precipitate", points_xy=[(0, 30), (10, 30), (10, 40), (0.0, 40)]),  # on the border: fine
        Ellipse(label="precipitate", cx=62, cy=40, rx=4, ry=4),                           # 2 px out on the right
        Ellipse(label="precipitate", cx=90, cy=40, rx=4, ry=4),                           # entirely outside
        Box(label="precipitate", xyxy=(30, 30, 32, 31.5)),                               # 2 x 1.5 px: tiny
        Mask(label="precipitate", bitmap=np.ones((4, 4), bool), left=61, top=5),          # 1 px beyond: tolerated
    )
    result = check(ds, use_images=False)
    got = {(f.code, f.shape): f for f in result.findings}
    assert set(got) == {("shape-outside-image", 0), ("shape-outside-image", 2), ("shape-outside-image", 3),
                        ("shape-no-pixels", 3), ("shape-tiny", 4)}
    assert got[("shape-outside-image", 0)].value == pytest.approx(5.0)
    assert got[("shape-outside-image", 2)].value == pytest.approx(2.0)
    assert got[("shape-tiny", 4)].value == 2  # centers (30.5, 30.5) and (31.5, 30.5)
    # thresholds are the caller's
    assert ("shape-tiny", 4) not in _codes(ds, min_area_px=2)
    assert ("shape-outside-image", 2) not in _codes(ds, outside_tolerance_px=2.5)


def test_self_intersecting_polygon_is_an_error():
    ds = _one(Polygon(label="precipitate", points_xy=[(10, 10), (30, 30), (30, 10), (10, 30)]))
    result = check(ds, use_images=False)
    assert [(f.code, f.severity, f.shape) for f in result.findings] == [("shape-self-intersecting", "error", 0)]
    assert result.failed("error")


def test_labels_undeclared_unused_and_kind_mismatch():
    ds = Dataset(
        (Label("cavity"), Label("loop", type="ellipse"), Label("precipitate"), Label("dislocation line")),
        (Item("a.png", (64, 64), (
            Polyline(label="cavity", points_xy=[(5, 5), (20, 20)]),                       # a line cannot be a cavity
            Polygon(label="loop", points_xy=[(30, 30), (40, 30), (40, 40)]),               # declared as ellipses
            Ellipse(label="dirt", cx=50, cy=10, rx=4, ry=4),                              # not declared
            Polyline(label="dislocation line", points_xy=[(5, 50), (30, 60)]),
        )),),
    )
    result = check(ds, use_images=False)
    assert {(f.code, f.shape, f.label) for f in result.findings} == {
        ("shape-kind-mismatch", 0, "cavity"), ("shape-kind-mismatch", 1, "loop"),
        ("label-undeclared", 2, "dirt"), ("label-unused", None, "precipitate"),
    }
