"""Overlay pictures: compared with the straightforward float64 blend and skimage's boundaries."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from defectlab.imaging.io import normalize_minmax
from defectlab.viz import _inner_boundaries, overlay


def reference_overlay(image, semantic, colors, alpha=0.4, outlines=None):
    """The overlay as first written: every pixel blended in floats, skimage's inner boundaries."""
    rgb = np.repeat((normalize_minmax(image) * 255.0)[..., None], 3, axis=2)
    lut = np.zeros((256, 3))
    lut[1 : len(colors) + 1] = colors
    fg = semantic > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * lut[semantic[fg]]
    if outlines is not None:
        edge = find_boundaries(outlines, mode="inner") & fg
        rgb[edge] = lut[semantic[edge]]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def test_inner_boundaries_are_skimages():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (1, 7), (6, 1), (37, 53)]:
        labels = rng.integers(0, 4, shape).astype(np.int32)
        labels[rng.random(shape) < 0.3] = 0
        assert np.array_equal(_inner_boundaries(labels), find_boundaries(labels, mode="inner"))
    blobs = np.zeros((40, 40), np.int32)
    blobs[5:20, 5:25], blobs[15:35, 20:38] = 1, 2
    assert np.array_equal(_inner_boundaries(blobs), find_boundaries(blobs, mode="inner"))


def test_overlay_is_the_float_blend_pixel_for_pixel():
    rng = np.random.default_rng(1)
    colors = [(255, 0, 0), (0, 200, 30), (10, 20, 250)]
    for image in (rng.integers(0, 255, (50, 70)).astype(np.uint8), rng.normal(0, 1, (50, 70)),
                  np.full((50, 70), 7, np.uint16)):
        semantic = rng.integers(0, 4, (50, 70)).astype(np.uint8)
        outlines = rng.integers(0, 6, (50, 70)).astype(np.int32) * (semantic > 0)
        for alpha, lines in ((0.4, outlines), (0.7, None)):
            got = overlay(image, semantic, colors, alpha=alpha, outlines=lines)
            assert got.dtype == np.uint8 and got.shape == (50, 70, 3)
            assert np.array_equal(got, reference_overlay(image, semantic, colors, alpha, lines))
    assert np.array_equal(overlay(np.zeros((3, 3)), np.zeros((3, 3), np.uint8), colors), np.zeros((3, 3, 3), np.uint8))
