"""``plan.png``: what the tile and the overlap mean on the user's own micrograph.

Left: the micrograph holding the largest defect (normalized as the plan says), that defect's
box, and a planned training tile centered on it. Right: per label, the range of defect
extents (min to max, median marked) against the overlap and the tile divided by the context
factor (the largest extent a tile holds with its context). Drawn by matplotlib's Agg canvas
without pyplot (imported inside the function; ``pip install 'defectlab[plot]'``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..model import Dataset
from .fingerprint import Fingerprint
from .planner import Plan

__all__ = ["write_plan_figure", "PLAN_FIGURE"]

#: The file name of the figure beside ``plan.json``.
PLAN_FIGURE = "plan.png"


def _shown(image: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    from ..imaging.io import to_gray

    gray = to_gray(image).astype(np.float64)
    lo, hi = np.percentile(gray, levels)
    return np.clip((gray - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(gray)


def write_plan_figure(fp: Fingerprint, plan: Plan, dataset: Dataset, path: str | Path, *,
                      context: float = 3.0) -> Path | None:
    """Draw the figure into ``path`` (PNG); None when no labeled defect has a readable image.

    Parameters
    ----------
    fp, plan
        The fingerprint and the plan made from it.
    dataset : Dataset
        The set the fingerprint was measured on (for the micrograph's pixels).
    path : path
        The PNG to write (replaced).
    context : float
        The context factor the plan used (``PlanOptions.context``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..imaging.micrograph import read_micrograph

    shown = [c for c in fp.classes if c.count and c.largest_item is not None]
    areas = [c for c in shown if not c.thin] or shown
    if not areas:
        return None
    big = max(areas, key=lambda c: c.extent_px.max)
    items = {it.name: it for it in dataset.items}
    item = items.get(big.largest_item)
    if item is None or item.image is None:
        return None
    image = _shown(read_micrograph(item.image).array, plan.normalization.levels)
    fig = Figure(figsize=(11, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    ax.imshow(image, cmap="gray", interpolation="nearest")
    x1, y1, x2, y2 = big.largest_box_xyxy
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="#ff7f0e", linewidth=1.5,
                           label=f"largest {big.name}: {big.extent_px.max:g} px"))
    t = plan.tile_size
    h, w = image.shape
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    tx = min(max(cx - t / 2, 0), max(w - t, 0))
    ty = min(max(cy - t / 2, 0), max(h - t, 0))
    ax.add_patch(Rectangle((tx, ty), t, t, fill=False, edgecolor="#17becf", linewidth=2,
                           label=f"training tile {t} px"))
    ax.set_title(f"the planned tile around the largest defect\n{item.name}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    ax.set_axis_off()
    names = [c.name for c in shown]
    for k, c in enumerate(shown):
        e = c.extent_px
        color = "#d62728" if c.thin else "#1f77b4"
        bars.plot([e.min, e.max], [k, k], color=color, linewidth=6, solid_capstyle="butt", alpha=0.7)
        bars.plot([e.median], [k], marker="|", color="black", markersize=14)
        bars.text(e.max, k, f"  {c.count}" + (" (line)" if c.thin else ""), va="center", fontsize=8)
    bars.axvline(plan.overlap, color="#9467bd", linestyle="--", label=f"overlap {plan.overlap} px")
    bars.axvline(t / context, color="#17becf", label=f"tile / {context:g} = {t / context:.0f} px")
    bars.set_yticks(range(len(names)), names)
    bars.set_xlabel("defect extent, px (bar: min–max, tick: median)")
    top = max(max(c.extent_px.max for c in shown), t / context, plan.overlap)
    bars.set_xlim(0, top * 1.25 if math.isfinite(top) else 1)
    bars.set_ylim(-0.8, len(names) - 0.2)
    bars.invert_yaxis()
    bars.legend(loc="lower right", fontsize=8)
    bars.set_title(f"arch {plan.arch}, batch {plan.batch_size} × {t}², {plan.steps} steps", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
