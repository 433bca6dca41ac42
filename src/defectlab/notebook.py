"""Rich display in Jupyter: datasets as summary tables, micrographs with their labels, check
findings and predictions drawn over the image.

In a notebook::

    ds = defectlab.read("export.zip")
    ds                                  # summary table: labels with their colors, shapes by kind, sizes, notes
    defectlab.show(ds, 0)               # the micrograph with its labeled shapes
    result = defectlab.check(ds)
    result                              # findings by check, the first findings, per-label statistics
    show_findings(result)               # the first image with problems, problems outlined
    show_prediction(model.predict(image), image, truth=ds[0])

The HTML functions return strings (``Dataset._repr_html_`` and ``CheckResult._repr_html_``
call them); the drawing functions draw with matplotlib into ``ax`` (a new figure when None)
and return the Axes. Coordinates are defectlab's: pixel (column c, row r) covers
[c, c+1) × [r, r+1), so shapes are drawn exactly where the rasterizer puts them. Outlines
come from :func:`defectlab.raster.shape_polygons` (ellipses and boxes keep their rotation,
masks and dislocation lines are traced from their pixels), colors from the labels.

Long work shows progress bars through ``tqdm.auto`` (a widget in Jupyter, text elsewhere):
every :mod:`defectlab.api` function has ``progress=True``.

matplotlib is imported inside the drawing functions only: importing this module is light.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ._pages import esc as _e
from ._pages import html_table
from .model import Dataset, Item
from .model.display import register as register_display
from .model.labels import DEFAULT_COLORS
from .raster import DEFAULT_LINE_WIDTH

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .qc.result import CheckResult

__all__ = [
    "SEVERITY_COLORS", "check_html", "label_colors", "show", "show_findings", "show_prediction", "summary_html",
]

#: Outline colors of check findings by severity.
SEVERITY_COLORS: dict[str, str] = {"error": "#e41a1c", "warning": "#ff9f1c", "info": "#377eb8"}
#: Color of shapes whose label the dataset does not declare.
UNDECLARED_COLOR = "#9e9e9e"

_STYLE = ("<style>.defectlab table{border-collapse:collapse;margin:.3em 0}"
          ".defectlab th,.defectlab td{padding:.15em .6em;text-align:right;border-bottom:1px solid #ddd}"
          ".defectlab th:first-child,.defectlab td:first-child{text-align:left}"
          ".defectlab .left{text-align:left}</style>")


def _swatch(color: str) -> str:
    return (f'<span style="display:inline-block;width:.9em;height:.9em;background:{_e(color)};'
            'border:1px solid #555;vertical-align:middle;margin-right:.3em"></span>')


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> str:
    """An HTML table; cells are HTML already (escape them before)."""
    return html_table(header, rows, left=left)


def label_colors(dataset: Dataset) -> dict[str, str]:
    """Label name -> ``"#rrggbb"``: the label's color, or a default color by its position.

    Labels used by shapes but not declared get :data:`UNDECLARED_COLOR`.

    Examples
    --------
    >>> from defectlab.model import Dataset, Ellipse, Item, Label
    >>> ds = Dataset((Label("cavity", color="#61b21f"), Label("loop")),
    ...              (Item("a.png", (8, 8), (Ellipse(label="void", cx=4, cy=4, rx=2, ry=2),)),))
    >>> label_colors(ds)
    {'cavity': '#61b21f', 'loop': '#ff7f0e', 'void': '#9e9e9e'}
    """
    colors = {lab.name: "#{:02x}{:02x}{:02x}".format(*lab.rgb(i)) for i, lab in enumerate(dataset.labels)}
    for item in dataset.items:
        for shape in item.shapes:
            colors.setdefault(shape.label, UNDECLARED_COLOR)
    return colors


# ---------------------------------------------------------------------------------------------
# HTML


def summary_html(dataset: Dataset, *, max_notes: int = 10) -> str:
    """The summary table of a dataset, as HTML (what ``Dataset._repr_html_`` shows).

    Labels with their color swatches, edge convention and shapes by kind; image sizes;
    missing image files; the reader's notes (what was skipped, and why).

    Parameters
    ----------
    dataset : Dataset
    max_notes : int
        List at most this many notes (all are counted by code).

    Returns
    -------
    str
        An HTML fragment.

    Examples
    --------
    >>> from defectlab.model import Dataset, Ellipse, Item, Label, Polygon
    >>> ds = Dataset((Label("cavity", edge="inner"),), (Item("a.png", (64, 48), (
    ...     Ellipse(label="cavity", cx=10, cy=10, rx=4, ry=4),
    ...     Polygon(label="cavity", points_xy=[(1, 1), (5, 1), (5, 5)]))),))
    >>> page = summary_html(ds)
    >>> "48×64" in page, "<td>1</td><td>1</td><td>2</td>" in page
    (True, True)
    """
    counts = dataset.shape_counts()
    kinds = sorted({k for _, k in counts})
    colors = label_colors(dataset)
    declared = {lab.name for lab in dataset.labels}
    rows = []
    for i, lab in enumerate(dataset.labels, start=1):
        total = sum(n for (name, _), n in counts.items() if name == lab.name)
        rows.append([str(i), _swatch(colors[lab.name]) + _e(lab.name), _e(lab.edge or ""), _e(lab.type),
                     *[str(counts.get((lab.name, k), 0)) for k in kinds], str(total)])
    for name in sorted({name for name, _ in counts} - declared):
        total = sum(n for (nm, _), n in counts.items() if nm == name)
        rows.append(["–", _swatch(colors[name]) + _e(name) + " <i>(not declared)</i>", "", "",
                     *[str(counts.get((name, k), 0)) for k in kinds], str(total)])
    table = _table(["#", "label", "edge", "type", *kinds, "shapes"], rows, left=(0, 1, 2, 3))
    sizes = Counter(f"{it.size_hw[1]}×{it.size_hw[0]}" for it in dataset.items)
    missing = sum(1 for it in dataset.items if it.image is None)
    empty = sum(1 for it in dataset.items if not it.shapes)
    subsets = dataset.subsets()
    head = (f"<b>{_e(dataset.source or 'dataset')}</b>" + (f" ({_e(dataset.format)})" if dataset.format else "")
            + f": {len(dataset)} image{'s' if len(dataset) != 1 else ''}, {sum(counts.values())} shapes"
            + (f"; subsets {_e(', '.join(subsets))}" if subsets else ""))
    parts = [_STYLE, '<div class="defectlab">', f"<div>{head}</div>", table]
    if sizes:
        parts.append("<div>image sizes (W×H): " + ", ".join(f"{_e(s)} ×{n}" for s, n in sizes.most_common())
                     + "</div>")
    if empty:
        parts.append(f"<div>{empty} image(s) without shapes</div>")
    if missing:
        parts.append(f'<div style="color:#b35900">{missing} image file(s) not found (read with images=DIR)</div>')
    if dataset.notes:
        codes = Counter(n.code for n in dataset.notes)
        parts.append(f'<div style="color:#b35900">{len(dataset.notes)} note(s) on what was skipped or changed: '
                     + ", ".join(f"{_e(c)} ×{n}" for c, n in codes.most_common()) + "</div><ul>"
                     + "".join(f"<li>{_e(n)}</li>" for n in dataset.notes[:max_notes])
                     + (f"<li>… and {len(dataset.notes) - max_notes} more</li>" if len(dataset.notes) > max_notes
                        else "") + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def check_html(result: CheckResult, *, limit: int = 20) -> str:
    """What a check found, as HTML (what ``CheckResult._repr_html_`` shows).

    Counts by severity, findings by check with what each means, the first ``limit``
    findings, and per-label statistics (shapes, median pixel area, edge convention).

    Examples
    --------
    >>> from defectlab.model import Dataset, Ellipse, Item, Label
    >>> from defectlab.qc import check
    >>> disc = Ellipse(label="cavity", cx=20, cy=20, rx=6, ry=6)
    >>> result = check(Dataset((Label("cavity"),), (Item("a.png", (40, 40), (disc, disc)),)), use_images=False)
    >>> page = check_html(result)
    >>> "shape-duplicate" in page, "1 error(s)" in page
    (True, True)
    """
    from .qc.findings import CHECKS

    c = result.counts()
    ds = result.dataset
    head = (f"<b>{_e(ds.source or 'dataset')}</b>: {len(ds)} images checked, {result.images_read} read; "
            f'<span style="color:{SEVERITY_COLORS["error"]}">{c["error"]} error(s)</span>, '
            f'<span style="color:{SEVERITY_COLORS["warning"]}">{c["warning"]} warning(s)</span>, '
            f'<span style="color:{SEVERITY_COLORS["info"]}">{c["info"]} info</span>')
    parts = [_STYLE, '<div class="defectlab">', f"<div>{head}</div>"]
    by_code = result.by_code()
    if by_code:
        rows = [[_e(spec.severity), _e(code), str(by_code[code]), _e(spec.explanation)]
                for code, spec in CHECKS.items() if by_code.get(code)]
        parts.append(_table(["severity", "check", "count", "what it means"], rows, left=(0, 1, 3)))
        rows = [[f'<span style="color:{SEVERITY_COLORS[f.severity]}">{_e(f.severity)}</span>', _e(f.where()),
                 _e(f.code), _e(f.message)] for f in result.findings[:limit]]
        parts.append(_table(["severity", "where", "check", "message"], rows, left=(0, 1, 2, 3)))
        if len(result.findings) > limit:
            parts.append(f"<div>… and {len(result.findings) - limit} more (result.findings)</div>")
    else:
        parts.append("<div>no findings</div>")
    rows = []
    for s in result.stats.values():
        d = s.summary()
        med = d["area_px"]["median"]
        rows.append([_e(s.label), str(s.n_shapes), str(s.n_images), "" if med is None else f"{med:g}",
                     _e((s.edge or "") + (" (guessed)" if s.edge_how == "guess" else ""))])
    if rows:
        parts.append(_table(["label", "shapes", "images", "median area_px", "edge"], rows, left=(0, 4)))
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Drawing


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _figsize(size_hw: tuple[int, int], width: float = 6.0) -> tuple[float, float]:
    h, w = size_hw
    return width, max(2.0, min(3 * width, width * h / w))


def _item(dataset: Dataset, which: int | str) -> Item:
    if isinstance(which, str):
        for item in dataset.items:
            if which in (item.name, item.key):
                return item
        raise KeyError(f"no image {which!r} in the dataset; names are e.g. {[it.name for it in dataset.items[:5]]}")
    return dataset.items[which]


def _pixels(item: Item, image: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The micrograph to draw, and a note when its file was not found."""
    if image is not None:
        return np.asarray(image), ""
    if item.image is None:
        return np.zeros(item.size_hw, np.uint8), " (image file not found)"
    from .imaging.io import read_image

    return read_image(item.image), ""


def _imshow(ax: Axes, image: np.ndarray) -> None:
    """Draw the micrograph so that pixel (c, r) covers [c, c+1) x [r, r+1); gray with a robust range."""
    arr = np.asarray(image)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        lo, hi = (np.percentile(arr, [0.5, 99.5]) if arr.size else (0, 1))
        if not hi > lo:
            lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0)) + 1.0
        ax.imshow(arr, cmap="gray", vmin=lo, vmax=hi, extent=(0, w, h, 0), interpolation="nearest")
    else:
        ax.imshow(arr, extent=(0, w, h, 0), interpolation="nearest")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_shapes(ax: Axes, item: Item, colors: Mapping[str, str], *, linewidth: float, fill: bool, alpha: float,
                 linestyle: str = "-", line_width: float = DEFAULT_LINE_WIDTH,
                 only: Sequence[int] | None = None, color: str | None = None) -> set[str]:
    """Outline the item's shapes (or the ``only`` ones); returns the labels drawn."""
    from matplotlib.collections import LineCollection, PolyCollection

    from .raster import shape_polygons

    rings, ring_colors, lines, line_colors, points, point_colors = [], [], [], [], [], []
    drawn: set[str] = set()
    for k, shape in enumerate(item.shapes):
        if only is not None and k not in only:
            continue
        c = color or colors.get(shape.label, UNDECLARED_COLOR)
        if shape.kind == "polyline":
            lines.append(np.asarray(shape.points_xy, dtype=float))
            line_colors.append(c)
        elif shape.kind == "points":
            points.append(np.asarray(shape.points_xy, dtype=float))
            point_colors += [c] * len(shape.points_xy)
        elif shape.kind != "tag":
            found, _ = shape_polygons(shape, item.size_hw, line_width=line_width)
            rings += [np.asarray(r, dtype=float) for r in found]
            ring_colors += [c] * len(found)
        else:
            continue
        drawn.add(shape.label)
    if rings:
        if fill:
            ax.add_collection(PolyCollection(rings, facecolors=ring_colors, edgecolors="none", alpha=alpha))
        ax.add_collection(PolyCollection(rings, facecolors="none", edgecolors=ring_colors, linewidths=linewidth,
                                         linestyles=linestyle))
    if lines:
        ax.add_collection(LineCollection(lines, colors=line_colors, linewidths=linewidth * 1.5,
                                         linestyles=linestyle))
    if points:
        xy = np.concatenate(points)
        ax.scatter(xy[:, 0], xy[:, 1], s=12, c=point_colors, marker="+", linewidths=linewidth)
    return drawn


def _legend(ax: Axes, entries: Sequence[tuple[str, str, str]]) -> None:
    """A legend of (name, color, linestyle) lines."""
    if not entries:
        return
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linestyle=ls, linewidth=2, label=name) for name, c, ls in entries]
    ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.8)


def show(
    dataset: Dataset,
    index: int | str = 0,
    *,
    ax: Axes | None = None,
    image: np.ndarray | None = None,
    compare: Dataset | Item | None = None,
    compare_label: str = "compared",
    fill: bool = False,
    alpha: float = 0.3,
    linewidth: float = 1.2,
    legend: bool = True,
    title: bool = True,
    line_width: float = DEFAULT_LINE_WIDTH,
    figsize: tuple[float, float] | None = None,
) -> Axes:
    """Draw one micrograph of a dataset with its labeled shapes (matplotlib).

    Parameters
    ----------
    dataset : Dataset
    index : int or str
        The item's position, or its name (or key).
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    image : (H, W) or (H, W, 3) array, optional
        The pixels to draw under the shapes; default: the item's image file (black when it
        was not found).
    compare : Dataset or Item, optional
        Other shapes for the same image (another labeler's, predictions read back),
        drawn dashed in white; a Dataset is searched for the item's name.
    compare_label : str
        Their name in the legend.
    fill, alpha : bool, float
        Also fill the shapes, with this opacity.
    linewidth : float
        Outline width, points.
    legend, title : bool
        Draw a legend of the labels; title the image with its name and shape count.
    line_width : float
        Width in px of dislocation-line masks (for their outlines).
    figsize : (float, float), optional
        Size of a new figure, inches.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np
    >>> from defectlab.model import Dataset, Ellipse, Item, Label
    >>> ds = Dataset((Label("cavity"),), (Item("a.png", (64, 64), (Ellipse(label="cavity", cx=20, cy=30, rx=8, ry=5),)),))
    >>> ax = show(ds, 0, image=np.zeros((64, 64)))
    >>> ax.get_title(), len(ax.collections)
    ('a.png: 1 shape', 1)
    """
    item = _item(dataset, index)
    pixels, missing = _pixels(item, image)
    ax = _axes(ax, figsize or _figsize(item.size_hw))
    _imshow(ax, pixels)
    colors = label_colors(dataset)
    drawn = _draw_shapes(ax, item, colors, linewidth=linewidth, fill=fill, alpha=alpha, line_width=line_width)
    entries = [(name, colors[name], "-") for name in colors if name in drawn]
    if compare is not None:
        other = _item(compare, item.name) if isinstance(compare, Dataset) else compare
        if _draw_shapes(ax, other, {}, linewidth=linewidth, fill=False, alpha=alpha, linestyle="--",
                        line_width=line_width, color="white"):
            entries.append((compare_label, "white", "--"))
    if legend:
        _legend(ax, entries)
    if title:
        n = len(item.shapes)
        ax.set_title(f"{item.name}: {n} shape{'s' if n != 1 else ''}{missing}", fontsize="medium")
    return ax


def show_findings(
    result: CheckResult,
    image: int | str | None = None,
    *,
    ax: Axes | None = None,
    severities: Sequence[str] = ("error", "warning", "info"),
    linewidth: float = 1.0,
    labels: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Axes:
    """Draw a checked image with its findings: shapes at fault outlined thick, boxes by severity.

    Parameters
    ----------
    result : CheckResult
        From :func:`defectlab.check`.
    image : int, str or None
        The image (position or name); None: the first image with a finding of ``severities``.
    ax : matplotlib Axes, optional
    severities : sequence of str
        Which findings to draw.
    linewidth : float
        Width of the labels' outlines, points (findings are drawn twice as wide).
    labels : bool
        Also draw all labeled shapes, thin, in their label colors.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.axes.Axes
        Titled with the image name and its number of findings per severity.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from defectlab.model import Dataset, Ellipse, Item, Label
    >>> from defectlab.qc import check
    >>> disc = Ellipse(label="cavity", cx=20, cy=20, rx=6, ry=6)
    >>> result = check(Dataset((Label("cavity"),), (Item("a.png", (40, 40), (disc, disc)),)), use_images=False)
    >>> show_findings(result).get_title()
    'a.png: 1 error(s) (image file not found)'
    """
    from matplotlib.patches import Rectangle

    ds = result.dataset
    wanted = [f for f in result.findings if f.severity in severities]
    if image is None:
        names = [f.image for f in wanted if f.image is not None]
        if not names:
            raise ValueError(f"no finding of severity {', '.join(severities)} names an image")
        image = names[0]
    item = _item(ds, image)
    found = [f for f in wanted if f.image == item.name]
    pixels, missing = _pixels(item, None)
    ax = _axes(ax, figsize or _figsize(item.size_hw))
    _imshow(ax, pixels)
    colors = label_colors(ds)
    if labels:
        _draw_shapes(ax, item, colors, linewidth=linewidth, fill=False, alpha=0.0)
    for f in found:
        c = SEVERITY_COLORS[f.severity]
        at_fault = [k for k in ((f.shape,) if f.shape is not None else ()) + f.related if 0 <= k < len(item.shapes)]
        if at_fault:
            _draw_shapes(ax, item, colors, linewidth=2 * linewidth, fill=False, alpha=0.0, only=at_fault, color=c)
        if f.box_xyxy is not None:
            x1, y1, x2, y2 = f.box_xyxy
            ax.add_patch(Rectangle((x1 - 1, y1 - 1), x2 - x1 + 2, y2 - y1 + 2, fill=False, edgecolor=c,
                                   linewidth=linewidth, linestyle="--"))
            ax.text(x1 - 1, y1 - 2, f.code, color=c, fontsize="x-small", va="bottom", clip_on=True,
                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"})
    counts = Counter(f.severity for f in found)
    summary = ", ".join(f"{counts[s]} {s}(s)" if s != "info" else f"{counts[s]} info" for s in severities if counts[s])
    whole = sorted({f.code for f in found if f.box_xyxy is None and f.shape is None})
    ax.set_title(f"{item.name}: {summary or 'no findings'}{missing}" + (f"\n({', '.join(whole)})" if whole else ""),
                 fontsize="medium")
    _legend(ax, [(s, SEVERITY_COLORS[s], "-") for s in severities if counts[s]])
    return ax


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def show_prediction(
    prediction: Any,
    image: np.ndarray | None = None,
    *,
    ax: Axes | None = None,
    colors: Mapping[str, str] | None = None,
    truth: Item | None = None,
    alpha: float = 0.35,
    linewidth: float = 1.2,
    legend: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Axes:
    """Draw a prediction over its micrograph: classes filled, instance outlines, true labels dashed.

    Parameters
    ----------
    prediction : Prediction
        What ``model.predict(image)`` returned (anything with ``semantic`` (H, W) uint8,
        ``instances`` (H, W) int and ``classes`` {index: name}).
    image : (H, W) or (H, W, 3) array, optional
        The micrograph (black when None).
    ax : matplotlib Axes, optional
    colors : mapping, optional
        Class name -> ``"#rrggbb"`` (e.g. :func:`label_colors` of the training data);
        default colors by class index otherwise.
    truth : Item, optional
        The image's true labels, drawn as white dashed outlines.
    alpha : float
        Opacity of the class fill.
    linewidth : float
        Width of the true labels' outlines, points.
    legend : bool
    title : str, optional
        Default: the number of predicted instances per class.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> sem = np.zeros((32, 32), np.uint8); sem[4:10, 4:10] = 1
    >>> pred = SimpleNamespace(semantic=sem, instances=sem.astype(np.int32), classes={1: "cavity"})
    >>> show_prediction(pred).get_title()
    'predicted: 1 cavity'
    """
    from skimage.segmentation import find_boundaries

    semantic = np.asarray(prediction.semantic)
    instances = np.asarray(prediction.instances)
    classes: Mapping[int, str] = prediction.classes
    h, w = semantic.shape
    pixels = np.zeros((h, w), np.uint8) if image is None else np.asarray(image)
    if pixels.shape[:2] != (h, w):
        raise ValueError(f"expected an image of {h}x{w} (H x W) like the prediction, got shape {pixels.shape}")
    ax = _axes(ax, figsize or _figsize((h, w)))
    _imshow(ax, pixels)
    cmap = {i: (colors or {}).get(name) or DEFAULT_COLORS[(i - 1) % len(DEFAULT_COLORS)] for i, name in classes.items()}
    lut = np.zeros((256, 4), np.float64)
    for i, c in cmap.items():
        lut[i, :3] = np.asarray(_rgb(c)) / 255.0
        lut[i, 3] = alpha
    rgba = lut[semantic]
    edge = find_boundaries(instances, mode="inner") & (instances > 0)
    rgba[edge, 3] = 1.0
    ax.imshow(rgba, extent=(0, w, h, 0), interpolation="nearest")
    entries = [(name, cmap[i], "-") for i, name in classes.items() if np.any(semantic == i)]
    if truth is not None:
        if _draw_shapes(ax, truth, {}, linewidth=linewidth, fill=False, alpha=0.0, linestyle="--", color="white"):
            entries.append(("labels", "white", "--"))
    instance_classes = getattr(prediction, "instance_classes", None)
    if instance_classes is None:  # the class of each instance at its first pixel
        _, first = np.unique(instances[instances > 0], return_index=True)
        instance_classes = semantic[instances > 0][first]
    per_class = Counter(int(c) for c in np.asarray(instance_classes))
    if title is None:
        title = "predicted: " + (", ".join(f"{per_class[i]} {name}" for i, name in classes.items() if per_class[i])
                                 or "nothing")
    ax.set_title(title, fontsize="medium")
    if legend:
        _legend(ax, entries)
    return ax


# The data model knows no display code: this module registers its pictures and tables for it.
register_display("defectlab.model.dataset.Dataset", html=summary_html, show=show)
register_display("defectlab.qc.result.CheckResult", html=check_html)
