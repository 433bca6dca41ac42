"""The one builder of HTML pages and tables (check, measure, evaluate and batch reports, notebooks),
and the one number format of tables people read (HTML and terminal).

Examples
--------
>>> fmt(0.123456), fmt(float("nan")), fmt(None), fmt(12)
('0.1235', '–', '', '12')
>>> table([{"label": "a<b", "size_mean_nm": 1.5}], ["label", "size_mean_nm"])
"<table><thead><tr><th class='left' title='label'>label</th><th title='size_mean_nm'>mean (nm)</th></tr></thead><tbody><tr><td class='left'>a&lt;b</td><td>1.5</td></tr></tbody></table>"
>>> page("T", ["<p>x</p>"]).startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

import html
import math
import numbers
from typing import Any, Mapping, Sequence

__all__ = ["CSS", "esc", "figures", "fmt", "header", "html_table", "notes_list", "page", "scroll", "table"]

#: The style of every page: readable on a laptop (tables scroll inside their box, never the page).
CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1180px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}
th{background:#f3f3f3;font-weight:600;vertical-align:bottom;max-width:9em}
td:first-child,th:first-child,.left{text-align:left}
.figs img{max-width:48%;margin:0.3em}.note{color:#8a5a00}.failed{color:#b00}
code{background:#f3f3f3;padding:0 0.2em}"""

#: Column names of the measurement tables -> the header people read (units spelled out).
_HEADERS = {
    "count": "defects", "count_border": "at border", "count_sized": "sized", "n_true": "labels",
    "n_pred": "predicted", "density_per_um2": "per µm²", "density_per_px2": "per px²", "density_per_m3": "per m³",
    "area_fraction": "area fraction", "swelling_percent": "swelling %", "size_measure": "size measure",
    "image_area_px": "area (px)", "image_area_um2": "area (µm²)", "pixel_size_nm": "pixel size (nm)",
    "pixel_iou": "pixel IoU", "pixel_dice": "pixel Dice", "f1": "F1", "ap": "AP",
    "size_mean_error_percent": "size error %", "density_error_percent": "density error %",
    "ks_statistic": "KS statistic", "ks_pvalue": "KS p",
}


def esc(value: Any) -> str:
    """``value`` as HTML text (None is empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant digits, "–" where not finite, None empty."""
    if value is None:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return "–" if not math.isfinite(value) else f"{float(value):.{digits}g}"
    return str(value)


def header(column: str) -> str:
    """The header people read for a column name: ``size_mean_nm`` -> ``mean (nm)``."""
    if column in _HEADERS:
        return _HEADERS[column]
    text = column
    for unit in ("nm", "px", "um2", "nm2", "px2"):
        if text.endswith(f"_{unit}"):
            text = f"{text[: -len(unit) - 1]} ({unit.replace('um', 'µm').replace('2', '²')})"
            break
    for stem in ("size_", "density_"):
        if text.startswith(stem) and "(" in text:
            text = text[len(stem):]
    text = text.replace("_percent", " %").replace("_pred", " (pred)").replace("_true", " (true)")
    return text.replace("_", " ")


def html_table(header_cells: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int] = (0,),
               titles: Sequence[str] | None = None) -> str:
    """An HTML table whose cells are HTML already (escape them before); columns in ``left``
    are left-aligned, ``titles`` are the headers' tooltips."""
    def cell(tag: str, k: int, v: str, title: str = "") -> str:
        attrs = (" class='left'" if k in left else "") + (f" title='{esc(title)}'" if title else "")
        return f"<{tag}{attrs}>{v}</{tag}>"

    tips = list(titles) if titles is not None else [""] * len(header_cells)
    head = "".join(cell("th", k, h, t) for k, (h, t) in enumerate(zip(header_cells, tips)))
    body = "".join("<tr>" + "".join(cell("td", k, v) for k, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
          headers: Sequence[str] | None = None, digits: int = 4) -> str:
    """An HTML table of ``rows`` (mappings) in ``columns`` (default: the first row's keys).

    Headers are :func:`header` of each column (or ``headers``), with the column's own name as
    the tooltip; cells are :func:`fmt` and escaped.
    """
    if not rows:
        return "<p>(none)</p>"
    cols = list(columns) if columns is not None else list(rows[0])
    heads = list(headers) if headers is not None else [header(c) for c in cols]
    cells = [[esc(fmt(r.get(c), digits)) for c in cols] for r in rows]
    return html_table([esc(h) for h in heads], cells, titles=cols)


def scroll(html_text: str) -> str:
    """``html_text`` (a wide table) in a box that scrolls sideways instead of the page."""
    return f"<div class='scroll'>{html_text}</div>"


def figures(figs: Sequence[tuple[str, str]]) -> str:
    """The pictures ``(alt text, relative path)``, side by side."""
    return "<div class='figs'>" + "".join(f"<img src='{esc(f)}' alt='{esc(alt)}'>" for alt, f in figs) + "</div>"


def notes_list(notes: Sequence[Any], *, limit: int = 200, more: str = "summary.json") -> str:
    """The notes as a list (the first ``limit``; the rest are counted and found in ``more``)."""
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in list(notes)[:limit])
    rest = f"<p>… {len(notes) - limit} more in {esc(more)}</p>" if len(notes) > limit else ""
    return f"<h2>Notes</h2><ul class='note'>{items}</ul>{rest}"


def page(title: str, parts: Sequence[str], *, heading: bool = True, style: str = "", script: str = "") -> str:
    """A complete offline page: ``title``, the shared style (+ ``style``), the ``parts`` in order."""
    h1 = f"<h1>{esc(title)}</h1>" if heading else ""
    js = f"<script>{script}</script>" if script else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
            f"<style>{CSS}{style}</style></head><body>{h1}{''.join(parts)}{js}</body></html>")
