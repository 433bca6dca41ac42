"""Draw the documentation's figures into ``docs/img/`` (committed; rerun after changing the rules).

    python docs/make_figures.py              # writes docs/img/rasterization.png, docs/img/conventions.png
    python docs/make_figures.py --out DIR    # somewhere else

The pictures are drawn from the library itself: the pixels of the rasterization figure are
what :func:`defectlab.rasterize` returns, and the conventions figure is a noise-free
synthetic micrograph with its exact labels. matplotlib's Agg canvas, no pyplot; the PNGs
carry no tool version, so an unchanged library redraws them byte for byte.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _figure(size_in: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size_in, dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    return path


def _grid(ax, h: int, w: int) -> None:
    for x in range(w + 1):
        ax.axvline(x, color="#bbbbbb", linewidth=0.6, zorder=1)
    for y in range(h + 1):
        ax.axhline(y, color="#bbbbbb", linewidth=0.6, zorder=1)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_xticks(range(0, w + 1, 2))
    ax.set_yticks(range(0, h + 1, 2))
    ax.tick_params(labelsize=7)


def _paint(ax, mask: np.ndarray, color: str, alpha: float = 0.45) -> None:
    from matplotlib.colors import to_rgba

    rgba = np.zeros(mask.shape + (4,))
    rgba[mask] = to_rgba(color, alpha)
    h, w = mask.shape
    ax.imshow(rgba, extent=(0, w, h, 0), interpolation="nearest", zorder=0)


def _centers(ax, masks: list[np.ndarray], colors: list[str]) -> None:
    h, w = masks[0].shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    covered = np.zeros((h, w), bool)
    for mask, color in zip(masks, colors):
        ax.scatter(xx[mask], yy[mask], s=9, color=color, zorder=4)
        covered |= mask
    ax.scatter(xx[~covered], yy[~covered], s=9, facecolors="none", edgecolors="#777777", linewidths=0.6, zorder=4)


def rasterization_figure(path: Path) -> Path:
    """Pixel centers decide: an ellipse and a polygon, and two boxes sharing an edge."""
    from matplotlib.patches import Polygon as PolygonPatch

    from defectlab import rasterize
    from defectlab.model import Box, Ellipse, Polygon
    from defectlab.raster import ellipse_polygon

    h, w = 10, 14
    fig = _figure((8.6, 3.6))
    left, right = fig.subplots(1, 2)

    ellipse = Ellipse(label="cavity", cx=4.3, cy=4.6, rx=3.4, ry=2.3, rotation_deg=30)
    polygon = Polygon(label="precipitate", points_xy=[(8.2, 1.3), (12.7, 2.1), (13.1, 7.4), (9.6, 8.8), (7.9, 5.2)])
    masks, colors = [], ["#1f77b4", "#2ca02c"]
    for shape, color in zip((ellipse, polygon), colors):
        crop = rasterize(shape, (h, w))
        mask = np.zeros((h, w), bool)
        mask[crop.slices] = crop.bitmap
        masks.append(mask)
        _paint(left, mask, color)
    _grid(left, h, w)
    left.add_patch(PolygonPatch(ellipse_polygon(ellipse, tolerance=0.01), closed=True, fill=False,
                                edgecolor=colors[0], linewidth=1.6, zorder=3))
    left.add_patch(PolygonPatch(polygon.points_xy, closed=True, fill=False, edgecolor=colors[1], linewidth=1.6,
                                zorder=3))
    _centers(left, masks, colors)
    left.set_title(f"a pixel is in a shape when its center is:\nellipse {masks[0].sum()} px "
                   f"(area {ellipse.area():.1f}), polygon {masks[1].sum()} px (area {polygon.area():.1f})",
                   fontsize=8)

    a = Box(label="a", xyxy=(1.5, 1.5, 6.5, 7.5))
    b = Box(label="b", xyxy=(6.5, 2.5, 12.5, 8.5))
    masks = []
    for shape, color in zip((a, b), ("#d62728", "#9467bd")):
        crop = rasterize(shape, (h, w))
        mask = np.zeros((h, w), bool)
        mask[crop.slices] = crop.bitmap
        masks.append(mask)
        _paint(right, mask, color)
        x1, y1, x2, y2 = shape.xyxy
        right.add_patch(PolygonPatch([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], closed=True, fill=False,
                                     edgecolor=color, linewidth=1.6, zorder=3))
    _grid(right, h, w)
    _centers(right, masks, ["#d62728", "#9467bd"])
    right.set_title("edges through pixel centers: a center on a left or top edge is in,\n"
                    f"on a right or bottom edge out; shared pixels: {int((masks[0] & masks[1]).sum())}",
                    fontsize=8)
    return _save(fig, path)


def conventions_figure(path: Path) -> Path:
    """A cavity (labeled at the inner edge of its dark rim) and a loop (at the outer edge of its dark ring)."""
    import math

    from matplotlib.patches import Polygon as PolygonPatch

    from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item
    from defectlab.raster import ellipse_polygon

    cfg = SyntheticConfig(size_hw=(96, 160), n_cavities=1, n_loops=1, n_precipitates=0, n_lines=0,
                          cavity_radius_px=(13, 13), loop_radius_px=(18, 18), noise=0.0, dose=math.inf)
    image, item = synthetic_item(np.random.default_rng(4), cfg)
    fig = _figure((8.6, 5.0))
    axes = fig.subplots(2, 2, height_ratios=(1.25, 1))
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]] + 0.5
    for col, name in enumerate(("cavity", "loop")):
        shape = next(s for s in item.shapes if s.label == name)
        top, bottom = axes[0, col], axes[1, col]
        r = max(shape.rx, shape.ry) + 7
        top.imshow(image, cmap="gray", extent=(0, image.shape[1], image.shape[0], 0), interpolation="nearest")
        top.add_patch(PolygonPatch(ellipse_polygon(shape, tolerance=0.01), closed=True, fill=False,
                                   edgecolor="#ffcc00", linewidth=1.4))
        top.set_xlim(shape.cx - r, shape.cx + r)
        top.set_ylim(shape.cy + r, shape.cy - r)
        top.set_axis_off()
        edge = "inner" if name == "cavity" else "outer"
        top.set_title(f"{name}: labeled along the {edge} edge of the dark band", fontsize=9)
        # gray value against the distance from the labeled outline, px (negative: inside)
        t = math.radians(shape.rotation_deg)
        dx, dy = xx - shape.cx, yy - shape.cy
        u, v = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
        rho = np.hypot(u / shape.rx, v / shape.ry)
        dist = (rho - 1) * math.sqrt(shape.rx * shape.ry)
        near = np.abs(dist) < 7
        bins = np.arange(-7, 7.01, 0.5)
        which = np.digitize(dist[near], bins)
        mean = [image[near][which == k].mean() if np.any(which == k) else np.nan for k in range(1, len(bins))]
        bottom.plot((bins[:-1] + bins[1:]) / 2, mean, "k.-")
        bottom.axvline(0, color="#ffcc00", linewidth=2, label="label")
        bottom.set_xlabel("distance from the label (px; < 0 inside)", fontsize=8)
        bottom.set_ylabel("mean gray value", fontsize=8)
        bottom.tick_params(labelsize=7)
        bottom.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description="Draw the documentation's figures.")
    parser.add_argument("--out", type=Path, default=HERE / "img", help="folder for the PNGs (default: docs/img)")
    args = parser.parse_args(argv)
    paths = [rasterization_figure(args.out / "rasterization.png"), conventions_figure(args.out / "conventions.png")]
    for p in paths:
        print(f"wrote {p}")
    return paths


if __name__ == "__main__":
    main()
