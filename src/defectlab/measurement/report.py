"""Files people look at: CSV (and Parquet) tables, a JSON summary, PNG figures, an HTML page.

``measure`` output folder::

    defects.csv        one row per defect (px and nm columns)
    per_image.csv      per image and label: counts, densities, sizes, area fraction, swelling
    per_set.csv        per label over all images
    intervals.csv      per label: 95 % confidence intervals of count, densities, mean size, swelling
    *.parquet          the same tables, when pyarrow is installed (pip install 'defectlab[parquet]')
    summary.json       settings, calibration of each image, per-label statistics, histograms, notes
    figures/size_histogram_<label>.png
    index.html         all of it on one page, offline (figures are files beside it)

``evaluate`` output folder: ``per_class.csv``, ``per_image.csv``, ``matches.csv``,
``pred_defects.csv``, ``true_defects.csv``, ``pred_stats.csv``, ``true_stats.csv`` (+ Parquet),
``summary.json``, ``figures/size_histogram_<label>.png`` (predictions vs labels on shared bins),
``figures/size_scatter_<label>.png`` (predicted vs true size of each matched defect), ``index.html``.

Everything is written into a temporary folder first and moved into place when complete
(:func:`defectlab._output.output_dir`): an existing output is replaced only with ``overwrite``.
Figures are drawn by matplotlib's Agg canvas without pyplot (imported inside the functions;
a notebook's own backend is left alone).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .._output import output_dir
from .._pages import esc, notes_list, page, scroll, table
from .._pages import figures as figures_html
from .table import Table, has_parquet

if TYPE_CHECKING:  # pragma: no cover
    from .evaluate import Evaluation
    from .run import Measurement

__all__ = ["write_measurement", "write_evaluation", "size_histogram_figure", "size_scatter_figure"]


def slug(name: str) -> str:
    """A label name made safe for a file name (``"dislocation line"`` -> ``"dislocation_line"``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "label"


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars, paths and non-finite floats made JSON-serialisable (NaN -> null)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_tables(folder: Path, tables: Mapping[str, Table]) -> list[str]:
    written = []
    parquet = has_parquet()
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv")
        written.append(f"{name}.csv")
        if parquet and len(table.columns):
            table.to_parquet(folder / f"{name}.parquet")
            written.append(f"{name}.parquet")
    return written


def _figure(size_in: tuple[float, float]):
    """A matplotlib Figure drawn by the Agg canvas, without pyplot (a notebook's backend is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size_in, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def size_histogram_figure(
    path: str | Path,
    series: Mapping[str, Sequence[int]],
    edges: Sequence[float],
    *,
    unit: str,
    title: str,
    xlabel: str = "size",
) -> None:
    """A PNG of one or more histograms on shared bin ``edges`` (counts per series name)."""
    fig = _figure((5.5, 3.6))
    ax = fig.subplots()
    e = np.asarray(edges, dtype=np.float64)
    colors = {"labels": "#1f77b4", "predictions": "#ff7f0e"}
    drawn = 0
    for i, (name, counts) in enumerate(series.items()):
        c = np.asarray(counts)
        if len(e) >= 2 and len(c) == len(e) - 1:
            if i == 0:  # the first series filled, the others as outlines over it
                ax.stairs(c, e, label=f"{name} (n={int(c.sum())})", fill=True, alpha=0.45, color=colors.get(name))
            else:
                ax.stairs(c, e, label=f"{name} (n={int(c.sum())})", linewidth=2.0, color=colors.get(name))
            drawn += 1
    ax.set_xlabel(f"{xlabel} ({unit})")
    ax.set_ylabel("defects")
    ax.set_title(title)
    if drawn:
        ax.legend(frameon=False)
    else:  # a label without sized defects: say so (a legend of nothing is matplotlib's UserWarning)
        ax.text(0.5, 0.5, "no sized defects", transform=ax.transAxes, ha="center", va="center", color="0.4")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.9)  # fixed margins: one draw, not two
    fig.savefig(path)


def size_scatter_figure(path: str | Path, true: Sequence[float], pred: Sequence[float], *, unit: str,
                        title: str, xlabel: str = "size") -> None:
    """A PNG of predicted vs true size per matched defect, with the line y = x."""
    fig = _figure((4.2, 4.0))
    ax = fig.subplots()
    t, p = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    ax.scatter(t, p, s=10, alpha=0.6, color="#1f77b4", edgecolors="none")
    finite = np.concatenate([t[np.isfinite(t)], p[np.isfinite(p)]])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", linewidth=1, linestyle="--", label="y = x")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.legend(frameon=False, loc="upper left")
    ax.set_xlabel(f"true {xlabel} ({unit})")
    ax.set_ylabel(f"predicted {xlabel} ({unit})")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="box")
    fig.subplots_adjust(left=0.17, right=0.96, bottom=0.13, top=0.9)
    fig.savefig(path)


def _settings_html(settings: Mapping[str, Any]) -> str:
    return table([{"setting": k, "value": "–" if v is None else str(v)} for k, v in settings.items()])


def _files_html(files: Sequence[str]) -> str:
    return ("<p>Tables: " + ", ".join(f"<a href='{esc(f)}'>{esc(f)}</a>" for f in files)
            + ", <a href='summary.json'>summary.json</a></p>")


def _size_label(measure: str) -> str:
    return {"diameter": "equivalent diameter", "major_axis": "major axis", "length": "length"}.get(measure, measure)


def intervals_html(m: "Measurement") -> str:
    """The confidence intervals of the per-label values, as 'value [lo, hi]' cells."""
    if m.intervals is None or not len(m.intervals):
        return ""
    unit = "nm" if m.calibrated else "px"
    values = ["count", "density_per_um2" if m.calibrated else "density_per_px2", f"size_mean_{unit}"]
    if m.settings.get("thickness_nm") and m.calibrated:
        values.insert(2, "density_per_m3")
    if any(math.isfinite(float(v)) for v in m.intervals["swelling_percent"]):
        values.append("swelling_percent")

    def cell(row: Mapping[str, Any], name: str) -> str:
        v, lo, hi = (float(row[name + k]) for k in ("", "_lo", "_hi"))
        return "-" if not math.isfinite(v) else f"{v:.4g} [{lo:.4g}, {hi:.4g}]"

    rows = [{"label": r["label"], **{name: cell(r, name) for name in values}, "count from": r["count_bound_by"]}
            for r in m.intervals.rows()]
    level = float(m.intervals.rows()[0]["level"])
    k = int(m.intervals.rows()[0]["members"])
    model = (f" Model uncertainty: each replicate first draws one of the {k} ensemble members that predicted these "
             "images, so the intervals hold the spread between them too; the values are the members' mean."
             if k > 1 else "")
    return (f"<h2>{level:.0%} confidence intervals</h2><p>Bootstrap over defects (counting statistics) and over "
            "images (variation between them, with 3 images or more); the count's interval is never narrower than "
            f"its Poisson interval.{model} <code>intervals.csv</code> holds every bound.</p>" + scroll(table(rows)))


def write_measurement(m: "Measurement", out: str | Path, *, overwrite: bool = False, figures: bool = True) -> Path:
    """Write a :class:`~defectlab.measurement.Measurement` into the folder ``out``; returns it."""
    src = m.settings.get("source")
    inputs = [src] if src and Path(str(src)).exists() else []
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        tables = {"defects": m.defects, "per_image": m.per_image, "per_set": m.per_set}
        if m.intervals is not None:
            tables["intervals"] = m.intervals
        files = _write_tables(tmp, tables)
        summary = m.summary()
        summary["files"] = files
        figs: list[tuple[str, str]] = []
        if figures:
            (tmp / "figures").mkdir()
            for label, h in m.histograms.items():
                name = f"figures/size_histogram_{slug(label)}.png"
                size_histogram_figure(tmp / name, {"labels": h["counts"]}, h["edges"], unit=h["unit"],
                                      title=f"{label}: size distribution", xlabel=_size_label(h["size_measure"]))
                figs.append((label, name))
            summary["figures"] = [f for _, f in figs]
        (tmp / "summary.json").write_text(json.dumps(json_ready(summary), indent=2, ensure_ascii=False),
                                          encoding="utf-8")
        unit = "nm" if m.calibrated else "px"
        cols = ["label", "images", "count", "count_border", "count_sized",
                "density_per_um2" if m.calibrated else "density_per_px2"]
        if m.settings.get("thickness_nm") and m.calibrated:
            cols.append("density_per_m3")
        cols += ["size_measure", f"size_mean_{unit}", f"size_std_{unit}", f"size_sem_{unit}", "area_fraction"]
        if any(math.isfinite(v) for v in m.per_set["swelling_percent"].astype(np.float64)) if len(m.per_set) else False:
            cols.append("swelling_percent")
        calib = [{"image": i.key, "pixel_size_nm": i.pixel_size_nm if i.pixel_size_nm else math.nan,
                  "calibration": i.calibration or "none"} for i in m.images]
        parts = [
            f"<p>{len(m.images)} image(s), {len(m.defects)} defect(s) from <code>{esc(src)}</code>. "
            f"Sizes {'in nm' if m.calibrated else '<b>in px only: no pixel size calibration</b>'}; defects touching "
            f"the image border are {'included in' if m.settings.get('include_border') else 'left out of'} size "
            f"statistics.</p>",
            "<h2>Per label</h2>", scroll(table(m.per_set.rows(), cols)),
            intervals_html(m),
            figures_html(figs),
            "<h2>Calibration</h2>", scroll(table(calib[:100])),
            "<h2>Settings</h2>", _settings_html(m.settings),
            _files_html(files),
            notes_list(m.notes),
        ]
        (tmp / "index.html").write_text(page("Defect measurements", parts), encoding="utf-8")
    return Path(out)


def write_evaluation(e: "Evaluation", out: str | Path, *, overwrite: bool = False, figures: bool = True) -> Path:
    """Write an :class:`~defectlab.measurement.Evaluation` into the folder ``out``; returns it."""
    inputs = [p for p in (e.settings.get("predictions"), e.settings.get("labels")) if p and Path(str(p)).exists()]
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        files = _write_tables(tmp, {
            "per_class": e.per_class, "per_image": e.per_image, "matches": e.matches,
            "pred_defects": e.pred_defects, "true_defects": e.true_defects,
            "pred_stats": e.pred_stats, "true_stats": e.true_stats,
        })
        summary = e.summary()
        summary["files"] = files
        figs: list[tuple[str, str]] = []
        unit = "nm" if e.calibrated else "px"
        if figures:
            (tmp / "figures").mkdir()
            for label, h in e.histograms.items():
                name = f"figures/size_histogram_{slug(label)}.png"
                size_histogram_figure(tmp / name, {"labels": h["true"], "predictions": h["pred"]}, h["edges"],
                                      unit=h["unit"], title=f"{label}: predictions vs labels",
                                      xlabel=_size_label(h["size_measure"]))
                figs.append((label, name))
                sel = e.matches["label"] == label if len(e.matches) else np.zeros(0, bool)
                if len(e.matches) and np.any(sel):
                    name = f"figures/size_scatter_{slug(label)}.png"
                    size_scatter_figure(tmp / name, e.matches[f"true_size_{unit}"][sel],
                                        e.matches[f"pred_size_{unit}"][sel], unit=unit,
                                        title=f"{label}: matched defects (IoU ≥ {e.iou_threshold:g})",
                                        xlabel=_size_label(str(e.matches["size_measure"][sel][0])))
                    figs.append((label, name))
            summary["figures"] = [f for _, f in figs]
        (tmp / "summary.json").write_text(json.dumps(json_ready(summary), indent=2, ensure_ascii=False),
                                          encoding="utf-8")
        o = e.overall
        overall = [{"score": k, "value": o[k]} for k in ("precision", "recall", "f1", "tp", "fp", "fn", "pixel_iou",
                                                          "pixel_dice", "mAP", "AP50", "AP75")]
        cols = ["label", "n_true", "n_pred", "tp", "fp", "fn", "precision", "recall", "f1", "pixel_iou", "pixel_dice",
                "ap"]
        science = [c for c in e.per_class.columns if c.startswith(("size_mean", "density", "area_fraction",
                                                                   "swelling", "ks_"))]
        parts = [
            f"<p>Objects match at <b>IoU ≥ {e.iou_threshold:g}</b> (one-to-one, Hungarian). "
            f"{o['images']} image(s). COCO mAP: IoU 0.50:0.95, maxDets {o['coco_max_dets']}. "
            f"Sizes {'in nm' if e.calibrated else '<b>in px only: no pixel size calibration</b>'}.</p>",
            "<h2>Overall</h2>", table(overall),
            "<h2>Per label</h2>", scroll(table(e.per_class.rows(), cols)),
            "<h2>Science numbers: predictions vs labels</h2>", scroll(table(e.per_class.rows(), ["label"] + science)),
            figures_html(figs),
            "<h2>Settings</h2>", _settings_html(e.settings),
            _files_html(files),
            notes_list(e.notes),
        ]
        (tmp / "index.html").write_text(page("Predictions vs labels", parts), encoding="utf-8")
    return Path(out)
