"""The synthetic setting with touching and overlapping cavities and loops (``touching``).

Contacts are judged from the labels' own parameters (center distance against the sum of
the mean radii), overlaps from the exact rasterizer, not from the placement code.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from defectlab.model import Ellipse
from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item
from defectlab.raster import rasterize


def contacts(shapes) -> list[tuple[int, int, float]]:
    """(i, j, center distance / sum of mean radii) of every pair of ellipses closer than 1.1."""
    out = []
    for (i, a), (j, b) in itertools.combinations(enumerate(shapes), 2):
        if isinstance(a, Ellipse) and isinstance(b, Ellipse):
            ratio = math.hypot(a.cx - b.cx, a.cy - b.cy) / ((a.rx + a.ry) / 2 + (b.rx + b.ry) / 2)
            if ratio < 1.1:
                out.append((i, j, ratio))
    return out


def test_bubbles_touch_and_overlap() -> None:
    image, item = synthetic_item(np.random.default_rng(0), SyntheticConfig.bubbles())
    assert image.shape == (512, 512)
    assert {s.label for s in item.shapes} == {"cavity", "loop"}
    pairs = contacts(item.shapes)
    in_contact = {k for i, j, _ in pairs for k in (i, j)}
    assert len(in_contact) >= 0.4 * len(item.shapes)
    ratios = np.array([r for _, _, r in pairs])
    assert ratios.min() >= 0.6 * 0.99  # never (nearly) on top of each other
    assert (ratios < 0.9).sum() >= 5  # real overlaps, not only contacts
    count = sum(rasterize(s, item.size_hw).to_full(item.size_hw).astype(int) for s in item.shapes)
    assert count.max() == 2 or count.max() == 3
    # every defect inside the image, 2 px from its edge
    for s in item.shapes:
        x1, y1, x2, y2 = s.bbox_xyxy()
        assert x1 >= 2 and y1 >= 2 and x2 <= 510 and y2 <= 510


def test_touching_sets_z_order_and_is_deterministic() -> None:
    cfg = SyntheticConfig.bubbles((256, 256))
    a_img, a = synthetic_item(np.random.default_rng(5), cfg)
    b_img, b = synthetic_item(np.random.default_rng(5), cfg)
    assert np.array_equal(a_img, b_img) and a == b
    assert sorted(s.z_order for s in a.shapes) == list(range(len(a.shapes)))


def test_overlap_shows_the_upper_cavity() -> None:
    """Where two cavities overlap, the one with the higher z order is drawn on top: its dark
    rim crosses the lower one's bright interior."""
    cfg = SyntheticConfig.bubbles((512, 512), noise=0.0, dose=math.inf, blur_px=0.0, n_loops=0)
    image, item = synthetic_item(np.random.default_rng(2), cfg)
    checked = 0
    for i, j, ratio in contacts(item.shapes):
        lower, upper = sorted((item.shapes[i], item.shapes[j]), key=lambda s: s.z_order)
        if ratio > 0.85 or min(lower.rx, upper.rx) < 6:
            continue
        size = item.size_hw
        inside_lower = rasterize(lower.replace(rx=lower.rx - 1.5, ry=lower.ry - 1.5), size).to_full(size)
        rim_upper = (rasterize(upper.replace(rx=upper.rx + 1.2, ry=upper.ry + 1.2), size).to_full(size)
                     & ~rasterize(upper, size).to_full(size))
        crossing = inside_lower & rim_upper
        interior = inside_lower & ~rasterize(upper.replace(rx=upper.rx + 3, ry=upper.ry + 3), size).to_full(size)
        if crossing.sum() < 5 or interior.sum() < 20:
            continue
        assert image[crossing].mean() < image[interior].mean() - 20
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_touching_rejects_bad_values(value: float) -> None:
    with pytest.raises(ValueError, match="touching"):
        SyntheticConfig(touching=value)


def test_bubbles_preset_scales_and_takes_changes() -> None:
    cfg = SyntheticConfig.bubbles((1024, 512), n_loops=0, touching=0.3)
    assert cfg.n_cavities == 80 and cfg.n_loops == 0 and cfg.touching == 0.3
