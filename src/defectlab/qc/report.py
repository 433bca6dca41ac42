"""The offline HTML report of a check: one self-contained file, no network.

Everything is inside the file: pictures are base64 ``data:`` URIs (micrographs and their crops
as JPEG, which keeps a report of 25 frames of 2048² at a few MB where PNG made 39 MB; plots as
PNG), decoded lazily by the browser; the style and the few lines of script that sort the
findings table are inline; nothing is loaded from a CDN.

What it shows
-------------
* the counts by severity, the thresholds, and each label's edge convention (marked when it
  was guessed from the label's name);
* a sortable table of every finding, linking to its picture;
* per label: counts, pixel areas, solidity and edge offsets, with histograms (matplotlib,
  rendered with Agg without touching pyplot's backend; without matplotlib — the ``plot``
  extra — the report says so and leaves them out);
* per image with findings: the micrograph with every shape outlined in its label's color, the
  findings' places boxed and numbered in their severity's color, and a zoomed picture of each
  finding; images without findings get a picture too, up to ``max_clean_pictures`` of them (the
  others are listed by name), so that a large clean export does not make a huge file.
"""

from __future__ import annotations

import base64
import io
import math
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .._output import umask
from .._parallel import ordered_map
from .._pages import esc as _e
from .._pages import page
from ..errors import OutputError
from ..model import Ellipse, Item, Points, Shape
from .findings import CHECKS, SEVERITIES, Finding

if TYPE_CHECKING:  # pragma: no cover
    from .result import CheckResult

__all__ = ["write_report", "render_report", "item_picture"]

#: Outline colors of the severities (RGB).
SEVERITY_RGB: dict[str, tuple[int, int, int]] = {
    "error": (230, 30, 30), "warning": (255, 170, 0), "info": (60, 160, 255),
}
_THUMB_PX = 180  # size of a finding's zoomed picture
_MAX_CROPS = 24  # zoomed pictures per image; the findings after them are boxed in the image's picture
_MAX_CAPTIONS = 100  # findings captioned one by one per image; the others are counted
_MIN_PICTURE_PX = 512  # smaller images are drawn enlarged to about this size


#: JPEG quality of the micrographs' pictures: outlines and numbers stay sharp to the eye.
_JPEG_QUALITY = 75


def _jpeg_uri(rgb: np.ndarray) -> str:
    """A micrograph picture as a JPEG ``data:`` URI (a tenth of the PNG of a noisy TEM image)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=_JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _gray_u8(item: Item) -> np.ndarray:
    """The micrograph as (H, W) uint8, min-max stretched; dark gray when it cannot be read."""
    from ..errors import ImageError
    from ..imaging.io import normalize_minmax, read_image

    if item.image is not None:
        try:
            pixels = read_image(item.image)
            if pixels.shape[:2] == item.size_hw:
                return np.round(normalize_minmax(pixels) * 255).astype(np.uint8)
        except ImageError:
            pass
    return np.full(item.size_hw, 40, dtype=np.uint8)


def _outlines(shape: Shape, size_hw: tuple[int, int], line_width: float) -> tuple[list[np.ndarray], bool]:
    """Rings to draw for a shape (closed=True), or the polyline itself (closed=False)."""
    from ..raster import ellipse_polygon, shape_polygons

    if shape.kind == "polyline":
        return [np.asarray(shape.points_xy)], False
    if isinstance(shape, Points):
        return [np.asarray(shape.points_xy)], False
    if isinstance(shape, Ellipse):
        return [ellipse_polygon(shape, tolerance=0.25)], True
    if shape.is_area:
        rings, _ = shape_polygons(shape, size_hw, line_width=line_width)
        return rings, True
    return [], True


def item_picture(
    gray: np.ndarray,
    item: Item,
    colors: dict[str, tuple[int, int, int]],
    findings: Iterable[tuple[int, Finding]] = (),
    *,
    window_xyxy: tuple[float, float, float, float] | None = None,
    scale: float = 1.0,
    line_width: float = 3.0,
    focus: set[int] | None = None,
) -> np.ndarray:
    """Draw an item's shapes and findings over its micrograph.

    Parameters
    ----------
    gray : (H, W) uint8
        The micrograph.
    item : Item
    colors : dict
        Label name -> (r, g, b).
    findings : iterable of (number, Finding)
        Boxed and numbered in their severity's color; their shapes are drawn thicker.
    window_xyxy : (x1, y1, x2, y2), optional
        The part of the image to draw, px (default: all of it).
    scale : float
        Output pixels per image pixel.
    line_width : float
        Polyline mask width (for tracing polylines' outlines).
    focus : set of int, optional
        Shapes to draw thicker (default: the shapes of ``findings``).

    Returns
    -------
    (h, w, 3) uint8
    """
    from PIL import Image, ImageDraw, ImageFont

    h_img, w_img = gray.shape
    x1, y1, x2, y2 = window_xyxy or (0.0, 0.0, float(w_img), float(h_img))
    c1, r1 = max(0, int(math.floor(x1))), max(0, int(math.floor(y1)))
    c2, r2 = min(w_img, int(math.ceil(x2))), min(h_img, int(math.ceil(y2)))
    patch = gray[r1:r2, c1:c2]
    out_w, out_h = max(1, int(round((c2 - c1) * scale))), max(1, int(round((r2 - r1) * scale)))
    resample = Image.NEAREST if scale >= 1 else Image.BILINEAR
    canvas = Image.fromarray(patch).resize((out_w, out_h), resample).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    sx, sy = out_w / max(c2 - c1, 1), out_h / max(r2 - r1, 1)

    def to_px(xy: np.ndarray) -> list[tuple[float, float]]:
        return [((x - c1) * sx, (y - r1) * sy) for x, y in np.asarray(xy, dtype=np.float64)]

    findings = list(findings)
    thick = focus if focus is not None else {
        i for _, f in findings for i in ((f.shape,) if f.shape is not None else ()) + f.related}
    wide = max(2, int(round(2 * max(scale, 1) ** 0.5)))
    for index, shape in enumerate(item.shapes):
        if shape.kind == "tag":
            continue
        bx1, by1, bx2, by2 = shape.bbox_xyxy()
        if bx2 < c1 or by2 < r1 or bx1 > c2 or by1 > r2:
            continue
        color = colors.get(shape.label, (255, 255, 255))
        rings, closed = _outlines(shape, item.size_hw, line_width)
        width = wide if index in thick else 1
        for ring in rings:
            pts = to_px(ring)
            if isinstance(shape, Points):
                for x, y in pts:
                    draw.ellipse((x - 2, y - 2, x + 2, y + 2), outline=color, width=width)
            elif len(pts) >= 2:
                draw.line(pts + (pts[:1] if closed else []), fill=color, width=width)
    try:
        font = ImageFont.load_default(size=max(10, int(12 * max(scale, 1) ** 0.5)))
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    for number, f in findings:
        if f.box_xyxy is None:
            continue
        color = SEVERITY_RGB[f.severity]
        fx1, fy1, fx2, fy2 = f.box_xyxy
        pad = 3
        (px1, py1), (px2, py2) = to_px(np.array([[fx1 - pad, fy1 - pad], [fx2 + pad, fy2 + pad]]))
        draw.rectangle((px1, py1, px2, py2), outline=color, width=2)
        draw.text((px1 + 1, max(0, py1 - 14)), str(number), fill=color, font=font)
    return np.asarray(canvas)


def _figure_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _stats_figures(result: "CheckResult", colors: dict[str, tuple[int, int, int]]) -> list[tuple[str, str]]:
    """(title, PNG data URI) of the size, solidity and edge-offset histograms."""
    # a bare Figure renders with Agg and leaves pyplot's (a notebook's) backend alone
    from matplotlib.figure import Figure

    def subplots():
        fig = Figure(figsize=(7, 3.2))
        return fig, fig.subplots()

    def rgb(name: str) -> tuple[float, float, float]:
        r, g, b = colors.get(name, (128, 128, 128))
        return r / 255, g / 255, b / 255

    figs = []
    sizes = {n: s.area_px for n, s in result.stats.items() if s.area_px.size}
    if sizes:
        fig, ax = subplots()
        lo = max(1.0, min(float(a.min()) for a in sizes.values()))
        hi = max(float(a.max()) for a in sizes.values())
        bins = np.geomspace(lo, max(hi, lo * 1.01), 30)
        for name, a in sizes.items():
            ax.hist(a, bins=bins, histtype="step", linewidth=1.8, color=rgb(name), label=f"{name} ({a.size})")
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("area_px (pixels covered, log scale)")
        ax.set_ylabel("shapes")
        ax.legend(fontsize=8)
        ax.set_title("Size distribution per label")
        figs.append(("Sizes", _figure_uri(fig)))
    offsets = {n: s.edge_offset_px for n, s in result.stats.items() if s.edge_offset_px.size}
    if offsets:
        fig, ax = subplots()
        tol = result.config.edge_tolerance
        allv = np.concatenate(list(offsets.values()))
        span = max(tol + 1.0, float(np.abs(allv).max()) + 0.5)
        bins = np.linspace(-span, span, 41)
        ax.axvspan(-tol, tol, color="0.9", label=f"tolerance ±{tol:g} px")
        for name, v in offsets.items():
            edge = result.edges.get(name, (None, ""))[0]
            ax.hist(v, bins=bins, histtype="step", linewidth=1.8, color=rgb(name), label=f"{name}: {edge} edge ({v.size})")
        ax.set_xlabel("offset_px of the band's conventional edge from the drawn boundary (+ = outside)")
        ax.set_ylabel("shapes")
        ax.legend(fontsize=8)
        ax.set_title("Edge convention: where the dark band's edge lies")
        figs.append(("Edge offsets", _figure_uri(fig)))
    sols = {n: s.solidity for n, s in result.stats.items() if s.solidity.size}
    if sols:
        fig, ax = subplots()
        bins = np.linspace(min(0.5, min(float(v.min()) for v in sols.values())), 1.0, 41)
        ax.axvline(result.config.solidity, color="k", linestyle="--", label=f"threshold {result.config.solidity:g}")
        for name, v in sols.items():
            ax.hist(v, bins=bins, histtype="step", linewidth=1.8, color=rgb(name), label=f"{name} ({v.size})")
        ax.set_xlabel("solidity (pixel area / convex hull area)")
        ax.set_ylabel("shapes")
        ax.legend(fontsize=8)
        ax.set_title("Solidity of polygons and masks")
        figs.append(("Solidity", _figure_uri(fig)))
    return figs


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3;white-space:nowrap}th.sortable{cursor:pointer}th.sortable:after{content:" \\2195";color:#999}
td.code{white-space:nowrap}
.sev{font-weight:600;border-radius:3px;padding:0 .4em;color:#fff}
.error{background:#e61e1e}.warning{background:#f0a000}.info{background:#3ca0ff}
.guess{color:#b25d00;font-style:italic}.num{text-align:right}
.pictures{display:flex;flex-wrap:wrap;gap:.6em}.pictures figure{margin:0}
figure figcaption{font-size:.8em;max-width:%dpx}
img.micro{max-width:100%%;height:auto;border:1px solid #999}
section.item{margin-bottom:2em}.muted{color:#777}
details{margin:.5em 0}summary{cursor:pointer;color:#555}
""" % _THUMB_PX

_SCRIPT = """
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent.trim(); }
    var n = Number(v);
    return v !== "" && !isNaN(n) ? n : v.toLowerCase();
  }
  var tables = document.querySelectorAll("table.sortable-table");
  document.body.setAttribute("data-sortable-tables", String(tables.length));
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.querySelectorAll("th.sortable");
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = th.getAttribute("data-dir") !== "asc";
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (typeof x === typeof y) { return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); }
          return (typeof x === "number" ? -1 : 1) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", asc ? "asc" : "desc");
      });
    });
  });
})();
"""


def render_report(result: "CheckResult", *, max_picture_px: int = 800, max_clean_pictures: int = 6,
                  max_rows_per_code: int = 200, progress: bool = False) -> str:
    """The report as one HTML string (see :func:`write_report`)."""
    from ..progress import progress_iter

    ds = result.dataset
    colors = {lab.name: lab.rgb(i) for i, lab in enumerate(ds.labels)}
    for k, name in enumerate(n for n in result.stats if n not in colors):
        colors[name] = (255, 255, 255) if k == 0 else (200, 200, 200)
    numbered = list(enumerate(result.findings, start=1))
    item_index = {it.name: k for k, it in enumerate(ds.items)}
    counts = result.counts()
    by_image: dict[str, list[tuple[int, Finding]]] = {}
    for n, f in numbered:
        if f.image is not None:
            by_image.setdefault(f.image, []).append((n, f))
    # the findings table lists the first max_rows_per_code findings of each check
    per_code: Counter[str] = Counter()
    listed: set[int] = set()
    for n, f in numbered:
        per_code[f.code] += 1
        if per_code[f.code] <= max_rows_per_code:
            listed.add(n)
    clean_left = max_clean_pictures
    unpictured: list[str] = []
    pictured: list[tuple[int, Item, list[tuple[int, Finding]], set[int]]] = []
    for k, item in enumerate(ds.items):
        mine = by_image.get(item.name, [])
        if not mine:
            if clean_left <= 0:
                unpictured.append(item.name)
                continue
            clean_left -= 1
        pictured.append((k, item, mine, {n for n, _ in mine if n in listed}))
    # an image's findings after the first _MAX_CAPTIONS are boxed in its picture, not captioned one by one
    captioned = {n: pos < _MAX_CAPTIONS for mine in by_image.values() for pos, (n, _) in enumerate(mine)}
    # the images' sections (reading, drawing, JPEG) are made in worker processes (workers, default
    # every core) while this one renders the tables and the histograms; they come back in order
    with ordered_map(_item_section, pictured, n_items=len(pictured), workers=result.config.workers,
                     shared=(colors, result.config.line_width, max_picture_px)) as drawn:
        parts = _head_parts(result, numbered, item_index, counts, colors, captioned, listed, max_rows_per_code)
        sections = "".join(progress_iter(drawn, total=len(pictured), desc="report", enabled=progress))
    add = parts.append
    add("<h2 id='images'>Images</h2>")
    add(sections)
    if unpictured:
        add(f"<p class='muted'>{len(unpictured)} more images without findings: "
            + ", ".join(_e(n) for n in unpictured) + "</p>")
    return page(f"defectlab check: {ds.source or 'dataset'}", parts, heading=False, style=_STYLE, script=_SCRIPT)


def _head_parts(result: "CheckResult", numbered: list[tuple[int, Finding]], item_index: dict[str, int],
                counts: dict[str, int], colors: dict[str, tuple[int, int, int]], captioned: dict[int, bool],
                listed: set[int], max_rows_per_code: int) -> list[str]:
    """The report down to the images: counts, edge conventions, findings, checks, statistics."""
    ds = result.dataset
    parts: list[str] = []
    add = parts.append
    add(f"<h1>Labeling check</h1><p><b>{_e(ds.source or 'dataset')}</b>{f' ({_e(ds.format)})' if ds.format else ''}: "
        f"{len(ds)} images, {result.images_read} read, "
        f"{sum(len(it.shapes) for it in ds.items)} shapes.</p><p>")
    add(" ".join(f"<span class='sev {s}'>{counts[s]} {s}{'s' if counts[s] != 1 and s != 'info' else ''}</span>"
                 for s in SEVERITIES))
    add("</p><p class='muted'><a href='#findings'>Findings</a> · <a href='#checks'>Checks</a> · "
        "<a href='#stats'>Statistics</a> · <a href='#images'>Images</a></p>")

    add("<h2>Edge conventions</h2><table><tr><th>label</th><th>edge</th><th>from</th></tr>")
    for name, (edge, how) in result.edges.items():
        what = {"given": "given (--edge / edges=)", "label": "the export",
                "guess": "<span class='guess'>guessed from the name; set it with --edge</span>",
                "unknown": "<span class='muted'>unknown: not edge-checked</span>"}[how]
        add(f"<tr><td>{_e(name)}</td><td>{_e(edge or '—')}</td><td>{what}</td></tr>")
    add("</table>")

    add("<h2 id='findings'>Findings</h2>")
    if not numbered:
        add("<p>No findings.</p>")
    else:
        add("<table class='sortable-table'><thead><tr>"
            + "".join(f"<th class='sortable'>{h}</th>" for h in ("#", "severity", "code", "image", "shape", "label",
                                                                   "message"))
            + "</tr></thead><tbody>")
        for n, f in numbered:
            if n not in listed:
                continue
            k = item_index.get(f.image)
            where = f"f-{n}" if captioned.get(n, True) else f"img-{k}"
            image = (f"<a href='#{where}'>{_e(f.image)}</a>" if k is not None else _e(f.image or "export"))
            add(f"<tr id='row-{n}'><td class='num'>{n}</td>"
                f"<td data-sort='{SEVERITIES.index(f.severity)}'><span class='sev {f.severity}'>{f.severity}</span></td>"
                f"<td class='code' title='{_e(f.spec.explanation)}'>{_e(f.code)}</td><td>{image}</td>"
                f"<td class='num'>{'' if f.shape is None else f.shape}</td><td>{_e(f.label)}</td>"
                f"<td>{_e(f.message)}</td></tr>")
        add("</tbody></table>")
        capped = {code: n - max_rows_per_code for code, n in Counter(f.code for _, f in numbered).items()
                  if n > max_rows_per_code}
        if capped:  # thousands of one kind make a page no one reads: the first of each, the rest counted
            add("<p class='muted'>Listed: the first " + str(max_rows_per_code) + " findings of each check. Not listed: "
                + ", ".join(f"{n} more {_e(code)}" for code, n in capped.items())
                + " (boxed and numbered in the images' pictures; every finding is in "
                "<code>defectlab check --json</code>).</p>")

    # what was found and how to fix it first; the checks that found nothing folded away, so that
    # the statistics and the pictures are not pushed a screen further down
    by_code = result.by_code()
    head = ("<table><tr><th>code</th><th>severity</th><th>found</th><th>what it means</th>"
            "<th>how to fix</th></tr>")

    def check_rows(codes: list[str]) -> str:
        return "".join(
            f"<tr><td class='code'>{_e(code)}</td><td><span class='sev {CHECKS[code].severity}'>"
            f"{CHECKS[code].severity}</span></td><td class='num'>{by_code.get(code, 0)}</td>"
            f"<td>{_e(CHECKS[code].explanation)}</td><td>{_e(CHECKS[code].fix)}</td></tr>" for code in codes)

    found = [code for code in CHECKS if by_code.get(code)]
    quiet = [code for code in CHECKS if not by_code.get(code)]
    add("<h2 id='checks'>Checks</h2>")
    if found:
        add(head + check_rows(found) + "</table>")
    if quiet:
        add(f"<details><summary>{len(quiet)} {'other ' if found else ''}checks found nothing</summary>"
            + head + check_rows(quiet) + "</table></details>")
    cfg = result.config.to_dict()
    add("<p class='muted'>Thresholds: " + ", ".join(
        f"{_e(k)} = {_e(v) if v is not None else 'each set’s most common size' if k == 'image_size_hw' else 'none'}"
        for k, v in cfg.items()) + "</p>")

    add("<h2 id='stats'>Statistics per label</h2><table><tr><th>label</th><th>shapes</th><th>images</th><th>kinds</th>"
        "<th>area_px min</th><th>median</th><th>max</th><th>solidity median</th><th>edge</th>"
        "<th>edge offset_px median</th></tr>")
    for s in result.stats.values():
        d = s.summary()
        a = d["area_px"]
        off = d["edge_offset_px_median"]
        add(f"<tr><td>{_e(s.label)}</td><td class='num'>{s.n_shapes}</td><td class='num'>{s.n_images}</td>"
            f"<td>{_e(', '.join(f'{k} {v}' for k, v in s.kinds.items()))}</td>"
            + "".join(f"<td class='num'>{'' if a[q] is None else f'{a[q]:g}'}</td>" for q in ("min", "median", "max"))
            + f"<td class='num'>{'' if d['solidity_median'] is None else d['solidity_median']}</td>"
            f"<td>{_e(s.edge or '')}{' (guess)' if s.edge_how == 'guess' else ''}</td>"
            f"<td class='num'>{'' if off is None else f'{off:+.2f} ({s.edge_offset_px.size} measured)'}</td></tr>")
    add("</table>")
    try:
        figures = _stats_figures(result, colors)
    except ImportError:  # matplotlib is the optional "plot" extra
        add("<p class='muted'>The histograms need matplotlib: <code>pip install 'defectlab[plot]'</code>.</p>")
        figures = []
    add("<div class='pictures'>")
    for title, uri in figures:
        add(f"<figure><img class='plot' alt='{_e(title)}' src='{uri}'></figure>")
    add("</div>")

    return parts


def _item_section(colors: dict[str, tuple[int, int, int]], line_width: float, max_picture_px: int,
                  job: tuple[int, Item, list[tuple[int, Finding]], set[int]]) -> str:
    """One image's section: its picture with every shape and finding, and its findings' zoomed pictures
    (``job``: the image's index, the item, its numbered findings, those listed in the findings table)."""
    k, item, mine, listed = job
    h, w = item.size_hw
    gray = _gray_u8(item)
    scale = min(1.0, max_picture_px / max(h, w))
    # small images are shown enlarged by whole pixels (the PNG keeps the image's size) so that
    # shapes and finding numbers can be seen
    small = min(_MIN_PICTURE_PX, max_picture_px)
    zoom = min(8, small // max(h, w)) if max(h, w) < small else 1
    enlarge = f" width='{w * zoom}' style='image-rendering:pixelated'" if zoom > 1 else ""
    picture = item_picture(gray, item, colors, mine, scale=scale, line_width=line_width)
    parts = [f"<section class='item' id='img-{k}'><h3>{_e(item.name)}</h3>"
             f"<p class='muted'>{w}x{h} (WxH), {len(item.shapes)} shapes, {len(mine)} findings</p>"
             f"<img class='micro' alt='{_e(item.name)}'{enlarge} loading='lazy' decoding='async' "
             f"src='{_jpeg_uri(picture)}'>"]
    add = parts.append
    if mine:
        add("<div class='pictures'>")
        for k_found, (n, f) in enumerate(mine[:_MAX_CAPTIONS]):
            add(f"<figure id='f-{n}'>")
            if f.box_xyxy is not None and k_found < _MAX_CROPS:
                add(f"<img alt='finding {n}' loading='lazy' decoding='async' "
                    f"src='{_jpeg_uri(_thumbnail(gray, item, colors, n, f, line_width))}'>")
            number = f"<a href='#row-{n}'>#{n}</a>" if n in listed else f"#{n}"
            add(f"<figcaption>{number} <span class='sev {f.severity}'>{f.severity}</span> "
                f"{_e(f.code)}{'' if f.shape is None else f' (shape {f.shape})'}: {_e(f.message)}"
                "</figcaption></figure>")
        add("</div>")
        if len(mine) > _MAX_CAPTIONS:
            add(f"<p class='muted'>{len(mine) - _MAX_CAPTIONS} more findings in this image (numbers "
                f"{mine[_MAX_CAPTIONS][0]} and after), boxed and numbered in the picture above.</p>")
        if sum(f.box_xyxy is not None for _, f in mine) > _MAX_CROPS:
            add(f"<p class='muted'>Zoomed pictures of the first {_MAX_CROPS} findings; the others are boxed "
                "and numbered in the picture above.</p>")
    add("</section>")
    return "".join(parts)


def _thumbnail(gray: np.ndarray, item: Item, colors, number: int, f: Finding, line_width: float) -> np.ndarray:
    x1, y1, x2, y2 = f.box_xyxy
    h, w = item.size_hw
    side = max(x2 - x1, y2 - y1, 8.0) + 16.0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    wx1, wy1 = max(0.0, cx - side / 2), max(0.0, cy - side / 2)
    wx2, wy2 = min(float(w), cx + side / 2), min(float(h), cy + side / 2)
    scale = _THUMB_PX / max(wx2 - wx1, wy2 - wy1, 1.0)
    return item_picture(gray, item, colors, [(number, f)], window_xyxy=(wx1, wy1, wx2, wy2), scale=scale,
                        line_width=line_width)


def write_report(result: "CheckResult", path: str | Path, *, overwrite: bool = False, max_picture_px: int = 800,
                 max_clean_pictures: int = 6, max_rows_per_code: int = 200, progress: bool = False) -> Path:
    """Write the check's report as one self-contained HTML file.

    Parameters
    ----------
    result : CheckResult
    path : str or Path
        The ``.html`` file to write (atomically: a temporary file beside it, renamed).
    overwrite : bool
        Replace an existing file.
    max_picture_px : int
        Longest side of each image's picture; larger images are scaled down.
    max_clean_pictures : int
        Pictures of at most this many images without findings (every image with findings
        gets one).
    max_rows_per_code : int
        The findings table lists at most this many findings of each check (code); the others are
        counted below it, and boxed and numbered in their images' pictures.
    progress : bool
        Show a progress bar over the images.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputError
        ``path`` exists and ``overwrite`` is False, or is a folder, or is the export itself.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; expected a file name such as report.html")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")
    source = result.dataset.source
    if source and Path(source).exists() and Path(source).resolve() == path.resolve():
        raise OutputError(f"{path}: is the export being checked; choose another report file")
    text = render_report(result, max_picture_px=max_picture_px, max_clean_pictures=max_clean_pictures,
                         max_rows_per_code=max_rows_per_code, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
