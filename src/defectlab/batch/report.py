"""The run report of a batch: what ran, what was skipped, what failed and why.

Written at the end of every run — a completed one, one with failures, an interrupted one —
into ``out/_batch/`` (atomically, replacing the previous run's)::

    report.json        the run: task, scheduler, counts, every input's status, seconds,
                       worker, and for failures the error (and a traceback for unexpected ones)
    index.html         the same on one offline page, with the batch's statistics and figures
    defects.parquet    (measure, predict) every defect of the batch; defects.csv without pyarrow
    per_image.csv      (+ .parquet) statistics per image and label
    per_set.csv        (+ .parquet) statistics per label over the batch
    intervals.csv      (+ .parquet) 95 % confidence intervals of count, densities, mean size and
                       swelling per label (counting statistics, between images, and with an
                       ensemble model the spread between its members)
    summary.json       settings, calibration of each image, per-label statistics, histograms
    figures/size_histogram_<label>.png
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .._output import output_dir
from .._pages import esc, page, scroll, table
from .._pages import figures as figures_html
from ..measurement.report import intervals_html, json_ready, slug

__all__ = ["BatchReport", "STATUSES", "write_batch_folder"]

#: Every status an input can end a run with.
STATUSES = ("done", "unchanged", "skipped", "failed", "cancelled")

BATCH_DIR = "_batch"


@dataclass
class BatchReport:
    """What :func:`~defectlab.batch.run_batch` did.

    Attributes
    ----------
    task : str
        ``"measure"``, ``"predict"``, ``"convert"``.
    out : Path
        The output folder; each input's results are in ``out/<key>/``.
    units : list of dict
        Per input, in input order: ``key``, ``input``, ``status`` (``done``: processed now;
        ``unchanged``: its input was touched, not changed, the output kept; ``skipped``:
        already complete and current; ``failed``: see ``error``; ``cancelled``: the run was
        interrupted first), ``seconds``, ``worker``.
    run_id : str
        This run's id (in the records of the outputs it wrote).
    scheduler : str
        ``"local cluster (N workers)"``, ``"in-process"``, or the scheduler's address.
    seconds : float
        Wall time of the run.
    interrupted : bool
        The run was stopped (Ctrl-C) before every input was processed.
    measurement : Measurement or None
        The statistics of the whole batch (measure and predict).
    dashboard : str or None
        The Dask dashboard's address, when one was served.
    """

    task: str
    out: Path
    units: list[dict[str, Any]] = field(default_factory=list)
    run_id: str = ""
    scheduler: str = ""
    seconds: float = 0.0
    interrupted: bool = False
    measurement: Any = None
    dashboard: str | None = None
    summary_error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Inputs per status (every status listed)."""
        c = Counter(u["status"] for u in self.units)
        return {s: c.get(s, 0) for s in STATUSES}

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The inputs that failed, with their ``error``."""
        return [u for u in self.units if u["status"] == "failed"]

    @property
    def ok(self) -> bool:
        """True when every input is complete and current."""
        return not self.interrupted and all(u["status"] in ("done", "unchanged", "skipped") for u in self.units)

    @property
    def report_dir(self) -> Path:
        return self.out / BATCH_DIR

    def __str__(self) -> str:
        c = self.counts
        parts = [f"{c['done']} done"]
        if c["unchanged"] or c["skipped"]:
            parts.append(f"{c['skipped'] + c['unchanged']} already complete")
        parts.append(f"{c['failed']} failed")
        if c["cancelled"]:
            parts.append(f"{c['cancelled']} not run (interrupted)")
        return (f"{self.task}: {len(self.units)} input(s): " + ", ".join(parts)
                + f" in {self.seconds:.1f} s -> {self.out}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``report.json``)."""
        doc: dict[str, Any] = {
            "format": "defectlab-batch-report", "task": self.task, "out": str(self.out), "run_id": self.run_id,
            "scheduler": self.scheduler, "dashboard": self.dashboard, "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted, "counts": self.counts, "units": self.units,
        }
        if self.summary_error:
            doc["summary_error"] = self.summary_error
        if self.measurement is not None:
            doc["summary"] = {"images": len(self.measurement.images), "defects": len(self.measurement.defects),
                              "files": ["defects.parquet" if _parquet() else "defects.csv", "per_image.csv",
                                        "per_set.csv", "summary.json"]}
        return doc


def _parquet() -> bool:
    from ..measurement.table import has_parquet

    return has_parquet()


def _page(report: BatchReport, figures: Sequence[tuple[str, str]], tables: Sequence[str]) -> str:
    c = report.counts
    m = report.measurement
    parts = [f"<p>{len(report.units)} input(s) on {esc(report.scheduler)} in {report.seconds:.1f} s"
             + (" — <b>interrupted</b>" if report.interrupted else "") + f"; run {esc(report.run_id)}.</p>",
             table([{"status": s, "inputs": n} for s, n in c.items()], ["status", "inputs"])]
    failed = report.failed
    if failed:
        parts += [f"<h2 class='failed'>{len(failed)} failed</h2>",
                  scroll(table(failed[:1000], ["key", "input", "error_type", "error"]))]
    if report.summary_error:
        parts.append(f"<p class='failed'>statistics not computed: {esc(report.summary_error)}</p>")
    if m is not None:
        unit = "nm" if m.calibrated else "px"
        cols = ["label", "images", "count", "count_sized", "density_per_um2" if m.calibrated else "density_per_px2",
                "size_measure", f"size_mean_{unit}", f"size_std_{unit}", f"size_median_{unit}", "area_fraction"]
        if m.settings.get("thickness_nm") and m.calibrated:
            cols += ["density_per_m3", "swelling_percent"]
        parts += [f"<h2>Statistics of the batch</h2><p>{len(m.images)} image(s), {len(m.defects)} defect(s); sizes "
                  f"{'in nm' if m.calibrated else '<b>in px only: not every image has a pixel size</b>'}; "
                  f"border-touching defects {'in' if m.settings.get('include_border') else 'left out of'} sizes.</p>",
                  scroll(table(m.per_set.rows(), cols)),
                  intervals_html(m),
                  figures_html(figures),
                  "<p>Tables: " + ", ".join(f"<a href='{t}'>{t}</a>" for t in tables) + "</p>"]
    rows = [{**u, "seconds": u.get("seconds", math.nan)} for u in report.units[:1000]]
    parts += ["<h2>Inputs</h2>", scroll(table(rows, ["key", "status", "seconds", "worker", "input"])),
              f"<p>… {len(report.units) - 1000} more in report.json</p>" if len(report.units) > 1000 else "",
              "<p><a href='report.json'>report.json</a></p>"]
    return page(f"defectlab batch {report.task}", parts)


def write_batch_folder(report: BatchReport, *, figures: bool = True) -> Path:
    """Write ``out/_batch/`` (report, statistics, figures, index.html) atomically; returns it."""
    from ..measurement.report import size_histogram_figure

    folder = report.out / BATCH_DIR
    tables: list[str] = []
    figs: list[tuple[str, str]] = []
    with output_dir(folder, overwrite=True) as tmp:
        m = report.measurement
        if m is not None:
            if _parquet():
                m.defects.to_parquet(tmp / "defects.parquet")
                tables.append("defects.parquet")
            else:
                m.defects.to_csv(tmp / "defects.csv")
                tables.append("defects.csv")
            named = [("per_image", m.per_image), ("per_set", m.per_set)]
            if m.intervals is not None:
                named.append(("intervals", m.intervals))
            for name, table in named:
                table.to_csv(tmp / f"{name}.csv")
                tables.append(f"{name}.csv")
                if _parquet():
                    table.to_parquet(tmp / f"{name}.parquet")
                    tables.append(f"{name}.parquet")
            if figures and len(m.defects):
                (tmp / "figures").mkdir()
                for label, h in m.histograms.items():
                    if not sum(h["counts"]):
                        continue
                    name = f"figures/size_histogram_{slug(label)}.png"
                    size_histogram_figure(tmp / name, {"batch": h["counts"]}, h["edges"], unit=h["unit"],
                                          title=f"{label}: size distribution ({len(m.images)} images)",
                                          xlabel=h["size_measure"].replace("_", " "))
                    figs.append((label, name))
            summary = m.summary()
            summary["files"] = tables
            (tmp / "summary.json").write_text(json.dumps(json_ready(summary), indent=2, ensure_ascii=False),
                                              encoding="utf-8")
            tables.append("summary.json")
        (tmp / "report.json").write_text(json.dumps(json_ready(report.to_dict()), indent=2, ensure_ascii=False)
                                         + "\n", encoding="utf-8")
        (tmp / "index.html").write_text(_page(report, figs, tables), encoding="utf-8")
    return folder
