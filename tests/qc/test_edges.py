"""The edge-convention measurement: normals, profiles and band edges against analytic values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectlab.model import Ellipse, Label, Mask, Polygon
from defectlab.qc.edges import (boundary_normals, edge_profile, estimate_edge, guess_edge, resolve_edges,
                                shape_edge_estimate)


def test_boundary_normals_of_a_circle_point_outward_radially():
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    for sign in (1, -1):  # either orientation
        ring = np.stack([30 + 10 * np.cos(sign * t), 40 + 10 * np.sin(sign * t)], axis=1)
        pts, nrm = boundary_normals(ring, step_px=0.5)
        radial = (pts - [30, 40]) / np.hypot(*(pts - [30, 40]).T)[:, None]
        assert np.allclose(np.hypot(*nrm.T), 1.0)
        assert np.min(np.sum(nrm * radial, axis=1)) > 0.99
        perimeter = np.sum(np.hypot(*np.diff(np.vstack([ring, ring[:1]]), axis=0).T))
        assert len(pts) == round(perimeter / 0.5)


def test_edge_profile_samples_pixel_centers():
    image = np.arange(100, dtype=float).reshape(10, 10)  # value = 10 * row + col
    pts = np.array([[4.5, 3.5]])  # center of pixel (row 3, col 4)
    nrm = np.array([[1.0, 0.0]])
    prof = edge_profile(image, pts, nrm, np.array([-1.0, 0.0, 0.5, 1.0, 10.0]))
    assert prof[:4].tolist() == [33.0, 34.0, 34.5, 35.0]
    assert math.isnan(prof[4])  # outside the image


@pytest.mark.parametrize("inner, outer", [(0.0, 2.0), (1.3, 3.1), (-2.2, -0.4), (-1.0, 3.0)])
def test_estimate_edge_finds_the_half_depth_edges_of_a_blurred_band(inner, outer):
    from scipy.optimize import brentq
    from scipy.special import erf

    sigma = 0.8

    def band(t):  # a box band [inner, outer] blurred by a Gaussian of sigma
        return 0.5 * (erf((t - inner) / (sigma * 2**0.5)) - erf((t - outer) / (sigma * 2**0.5)))

    t = np.arange(-6, 9.001, 0.25)
    e = estimate_edge(t, 1.0 - 0.4 * band(t), search_px=(-5, 8))
    mid = (inner + outer) / 2
    assert e.resolved
    assert e.minimum_px == pytest.approx(mid, abs=0.05)
    assert e.depth == pytest.approx(0.4 * band(mid), abs=0.01)
    # the half-depth points of the blurred band, found analytically
    half = band(mid) / 2
    expect_in = brentq(lambda x: band(x) - half, mid - 6, mid)
    expect_out = brentq(lambda x: band(x) - half, mid, mid + 6)
    assert e.band_inner_px == pytest.approx(expect_in, abs=0.03)
    assert e.band_outer_px == pytest.approx(expect_out, abs=0.03)
    if outer - inner >= 4 * sigma:  # a band wider than the blur keeps its edges
        assert (e.band_inner_px, e.band_outer_px) == pytest.approx((inner, outer), abs=0.03)


def test_estimate_edge_without_a_band_is_unresolved():
    t = np.arange(-4, 9.001, 0.25)
    assert not estimate_edge(t, 2.0 - 0.1 * t, search_px=(-3, 8)).resolved  # only falls


def _ring_image(size, cx, cy, r_in, r_out, *, contrast=-0.4, background=1.0, supersample=8):
    """A dark annulus r_in <= r <= r_out drawn with exact pixel coverage (super-sampled)."""
    s = supersample
    y, x = (np.mgrid[0:size * s, 0:size * s] + 0.5) / s
    r = np.hypot(x - cx, y - cy)
    inside = ((r >= r_in) & (r <= r_out)).reshape(size, s, size, s).mean(axis=(1, 3))
    return background + contrast * inside


@pytest.mark.parametrize("kind", ["ellipse", "polygon", "mask"])
def test_offset_of_a_loop_drawn_at_either_edge(kind):
    size, cx, cy = 96, 48.3, 47.6
    image = _ring_image(size, cx, cy, 15.0, 18.0)

    def shape(r):
        if kind == "ellipse":
            return Ellipse(label="loop", cx=cx, cy=cy, rx=r, ry=r)
        if kind == "polygon":
            t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
            return Polygon(label="loop", points_xy=np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1))
        yy, xx = np.mgrid[0:size, 0:size] + 0.5
        return Mask(label="loop", bitmap=np.hypot(xx - cx, yy - cy) <= r)

    from defectlab.raster import rasterize

    for r, outer_offset, inner_offset in [(18.0, 0.0, -3.0), (15.0, 3.0, 0.0)]:
        s = shape(r)
        e = shape_edge_estimate(image, s, (size, size), rasterize(s, (size, size)).area)
        tol = 0.2 if kind != "mask" else 0.6  # a traced mask outline is the pixel staircase
        assert e.offset("outer") == pytest.approx(outer_offset, abs=tol)
        assert e.offset("inner") == pytest.approx(inner_offset, abs=tol)


def test_guesses_and_resolution():
    assert [guess_edge(n) for n in ("Bubble", "He bubbles", "cavity", "Cavities", "void", "Loop", "dislocation loop",
                                    "precipitate", "dislocation line")] == \
        ["inner", "inner", "inner", "inner", "inner", "outer", "outer", None, None]
    labels = (Label("bubble"), Label("loop", edge="inner"), Label("particle"))
    assert resolve_edges(labels) == {"bubble": ("inner", "guess"), "loop": ("inner", "label"),
                                     "particle": (None, "unknown")}
    assert resolve_edges(labels, {"particle": "outer", "loop": "outer"}) == {
        "bubble": ("inner", "guess"), "loop": ("outer", "given"), "particle": ("outer", "given")}


def test_batched_estimates_equal_one_shape_at_a_time():
    """edge_findings samples every shape of an image in one call: the same numbers as one call per shape,
    for shapes inside, across the border (NaN samples) and too small to have a profile (None)."""
    from defectlab.qc.edges import shape_edge_estimates
    from defectlab.raster import rasterize

    size = 128
    image = _ring_image(size, 60.2, 58.7, 15.0, 18.0) * _ring_image(size, 10.0, 100.0, 6.0, 8.0)
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    shapes = [Ellipse(label="loop", cx=60.2, cy=58.7, rx=17.0, ry=16.0, rotation_deg=20.0),
              Ellipse(label="loop", cx=4.0, cy=100.0, rx=8.0, ry=7.0),  # crosses the left edge
              Polygon(label="loop", points_xy=np.stack([10 + 7 * np.cos(t), 100 + 6 * np.sin(t)], axis=1)),
              Ellipse(label="loop", cx=90.0, cy=20.0, rx=1.0, ry=1.0),  # too small: None
              Mask(label="loop", bitmap=np.hypot(*(np.mgrid[0:size, 0:size] + 0.5 - [[[58.7]], [[60.2]]])) <= 15)]
    wanted = {i: (s, rasterize(s, (size, size)).area) for i, s in enumerate(shapes)}
    batched = shape_edge_estimates(image, wanted, (size, size))
    single = {i: shape_edge_estimate(image, s, (size, size), a) for i, (s, a) in wanted.items()}
    assert batched.keys() == single.keys()
    assert batched[3] is None and single[3] is None
    for i in (0, 1, 2, 4):
        assert batched[i] is not None
        np.testing.assert_array_equal(  # bit for bit, NaN where NaN
            [batched[i].minimum_px, batched[i].band_inner_px, batched[i].band_outer_px, batched[i].depth],
            [single[i].minimum_px, single[i].band_inner_px, single[i].band_outer_px, single[i].depth])


def test_boundary_normals_equal_the_rolled_central_differences():
    """The tangents by slices are np.roll's central differences, value for value."""
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 2 * np.pi, 23))
    ring = np.stack([30 + 9 * np.cos(t) + rng.normal(0, 0.3, 23), 20 + 5 * np.sin(t)], axis=1)[::-1]
    pts, nrm = boundary_normals(ring, step_px=0.7)
    tangent = np.roll(pts, -1, axis=0) - np.roll(pts, 1, axis=0)
    expected = -np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)  # clockwise in y-down pixels: sign -1
    expected /= np.hypot(expected[:, 0], expected[:, 1])[:, None]
    np.testing.assert_array_equal(nrm, expected)
