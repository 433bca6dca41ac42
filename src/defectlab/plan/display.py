"""The plan and the fingerprint as short rich tables (rich is imported when they are drawn)."""

from __future__ import annotations

import math
from typing import Any

from .fingerprint import Fingerprint
from .planner import CHOICES, Plan

__all__ = ["plan_table", "fingerprint_table", "fingerprint_line"]


def _fmt(v: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(v) else f"{v:.{digits}g}"


def fingerprint_line(fp: Fingerprint) -> str:
    """One line: images, sizes, bit depth, pixel size."""
    sizes = sorted({f"{s.size_hw[1]}x{s.size_hw[0]}" for s in fp.images})
    nm = fp.pixel_sizes_nm
    cal = (f"{min(nm):.4g}–{max(nm):.4g} nm/px" if len(set(nm)) > 1 else f"{nm[0]:.4g} nm/px") if nm else "no pixel size"
    shown = ", ".join(sizes[:3]) + (f" … ({len(sizes)} sizes)" if len(sizes) > 3 else "")
    return (f"{fp.n_images} image(s) {shown} px, {fp.bit_depth}-bit {fp.dtype}, {cal}"
            + (f" ({len(nm)} of {fp.n_images} calibrated)" if nm and len(nm) < fp.n_images else ""))


def fingerprint_table(fp: Fingerprint) -> Any:
    """Per label: count, images, median and largest diameter, largest extent, touching, thin."""
    from rich.table import Table

    t = Table(title="Defects (px)")
    for col in ("label", "n", "images", "diam. median", "diam. max", "extent max", "touching", "line"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for c in fp.classes:
        if not c.count:
            continue
        t.add_row(c.name, str(c.count), str(c.images), _fmt(c.diameter_px.median), _fmt(c.diameter_px.max),
                  _fmt(c.extent_px.max), "–" if not math.isfinite(c.touching) else f"{c.touching:.0%}",
                  "yes" if c.thin else "")
    return t


def plan_table(plan: Plan) -> Any:
    """Choice, value, and why (``given`` for the choices taken from the options)."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="Plan", show_lines=False)
    t.add_column("choice", no_wrap=True)
    t.add_column("value", max_width=36, overflow="fold")
    t.add_column("why")
    for name in CHOICES:
        value = plan.value(name)
        why = plan.reasons.get(name, "")
        shown = escape(str(value))
        t.add_row(name, f"[bold]{shown}[/]" if name in plan.given else shown, escape(why))
    return t
