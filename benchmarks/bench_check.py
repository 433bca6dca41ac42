"""Benchmark: ``defectlab check`` on synthetic 1024² micrographs, against a naive check.

Run::

    .venv/bin/python benchmarks/bench_check.py [--n-images 20] [--size 1024] [--seed 0]

What it does (see benchmarks/README.md):

1. writes N synthetic size×size micrographs as a CVAT export (defect counts scaled from the
   generator's 512² defaults by the area: at 1024², 48 cavities, 24 loops, 24 precipitates and 8
   dislocation lines asked per image), with overlapping defects allowed so that the overlap
   checks have work to do; not timed;
2. **ours**: ``defectlab.qc.check(path)`` — reading the export and the images, every check
   (images, labels, geometry, duplicates and overlaps, holes, solidity, edge convention,
   statistics) on tight per-shape pixel crops;
3. **baseline**: the same checks done naively: every shape rasterized into a full H×W mask,
   overlaps and duplicates as full-image ANDs of every same-label pair, the union and its holes on
   the full image, solidity with ``regionprops`` of each full-image mask; the edge profiles and
   the per-shape geometry tests are the same code as ours;
4. prints seconds per image for both, the speedup, and whether both found the same findings.

Both run in this process, one after the other, after a warm-up run of each on one image.

With ``--cli SRC [--cli SRC ...]`` (e.g. ``--n-images 25 --size 2048 --cli src --cli /tmp/before/src``)
it instead times ``defectlab check EXPORT --report FILE --json`` end to end, once per source tree
given (``PYTHONPATH=SRC``: this checkout beside an earlier one, made with ``git worktree add``), in
child processes one after the other: wall seconds, the peak memory of the whole process tree
(the sum of the processes' proportional set sizes, sampled every 0.1 s, so the pages that forked
workers share are counted once), the report's size, and whether every tree found the same findings.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np


def naive_check(dataset, config) -> list[tuple[str, str, int | None]]:
    """The same findings as ``defectlab.qc.check`` for the mask-based checks, from full-image masks.

    Returns (image, code, shape) for: shape-duplicate, overlap-heavy, overlap-hole, shape-concave,
    shape-tiny, shape-no-pixels, edge-off-convention (the checks whose cost depends on masks).
    """
    from scipy import ndimage
    from skimage.measure import regionprops

    from defectlab.imaging.io import read_image, to_gray
    from defectlab.model import Mask, Polygon
    from defectlab.qc.edges import resolve_edges, shape_edge_estimate
    from defectlab.qc.geometry import self_intersections
    from defectlab.raster import rasterize

    conventions = resolve_edges(dataset.labels)
    out = []
    for item in dataset.items:
        image = np.asarray(to_gray(read_image(item.image)), dtype=np.float64)
        h, w = item.size_hw
        masks = {}
        for i, s in enumerate(item.shapes):
            if s.is_area or s.kind == "polyline":
                full = np.zeros((h, w), dtype=bool)
                full |= rasterize(s, item.size_hw, line_width=config.line_width).to_full(item.size_hw)
                masks[i] = full
        areas = {i: int(m.sum()) for i, m in masks.items()}
        skip = set()
        for i, s in enumerate(item.shapes):
            if s.is_area and areas[i] == 0 and s.area() > 0:
                out.append((item.name, "shape-no-pixels", i))
                skip.add(i)
            elif s.is_area and 0 < areas[i] < config.min_area_px:
                out.append((item.name, "shape-tiny", i))
            if isinstance(s, Polygon) and len(self_intersections(s.points_xy)):
                skip.add(i)
        region = [i for i, s in enumerate(item.shapes) if s.is_area and areas[i]]
        for a in range(len(region)):
            for b in range(a + 1, len(region)):
                i, j = region[a], region[b]
                if item.shapes[i].label != item.shapes[j].label:
                    continue
                shared = int(np.count_nonzero(masks[i] & masks[j]))
                if not shared:
                    continue
                iou = shared / (areas[i] + areas[j] - shared)
                if iou > config.duplicate_iou:
                    out.append((item.name, "shape-duplicate", j))
                elif shared / min(areas[i], areas[j]) > config.overlap and not (
                        item.shapes[i].occluded or item.shapes[j].occluded):
                    out.append((item.name, "overlap-heavy", j))
        union = np.zeros((h, w), dtype=bool)
        for i in region:
            union |= masks[i]
        pockets = ndimage.binary_fill_holes(union) & ~union
        labels, n = ndimage.label(pockets)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        out += [(item.name, "overlap-hole", None)] * int(np.count_nonzero(sizes <= config.hole_area_px))
        for i in region:
            s = item.shapes[i]
            if isinstance(s, (Polygon, Mask)) and i not in skip and areas[i] >= 20:
                solidity = regionprops(masks[i].astype(np.uint8))[0].solidity
                if solidity < config.solidity and not s.occluded:
                    out.append((item.name, "shape-concave", i))
            edge, _ = conventions.get(s.label, (None, ""))
            if edge and i not in skip:
                est = shape_edge_estimate(image, s, item.size_hw, areas[i])
                if est is not None and est.resolved and est.depth >= 0.03:
                    off = est.offset(edge)
                    if not math.isnan(off) and abs(off) > config.edge_tolerance:
                        out.append((item.name, "edge-off-convention", i))
    return out


MASK_CODES = {"shape-duplicate", "overlap-heavy", "overlap-hole", "shape-concave", "shape-tiny", "shape-no-pixels",
              "edge-off-convention"}


def _tree_pss_mb(pid: int) -> float:
    """The summed PSS (MB) of a process and its descendants, from /proc."""
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def run_cli(src: Path, export: Path, report: Path) -> dict:
    """``defectlab check EXPORT --report REPORT --json`` with ``PYTHONPATH=src``: wall s, peak tree PSS, findings."""
    import json
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-c", "import sys; from defectlab.cli import app; sys.argv[0] = 'defectlab'; app()",
           "check", str(export), "--report", str(report), "--overwrite", "--fail-on", "never", "--json"]
    json_path = report.with_suffix(".json")  # a file, not a pipe: a full pipe would stall the child
    with open(json_path, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _tree_pss_mb(proc.pid))
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
    payload = json.loads(json_path.read_text())
    findings = sorted(json.dumps(f, sort_keys=True) for f in payload["findings"])
    return {"seconds": seconds, "peak_mb": peak, "report_mb": report.stat().st_size / 1e6, "findings": findings}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-images", type=int, default=20)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-overlap", action="store_true", help="place defects apart (fewer overlap findings)")
    p.add_argument("--workdir", type=Path, help="keep the data here")
    p.add_argument("--cli", type=Path, action="append", metavar="SRC",
                   help="time `defectlab check --report` end to end with PYTHONPATH=SRC (repeatable), no baseline")
    args = p.parse_args(argv)

    from defectlab.formats import read
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
    from defectlab.qc import check
    from defectlab.qc.options import CheckOptions as CheckConfig

    scale = (args.size / 512) ** 2
    cfg = SyntheticConfig(size_hw=(args.size, args.size), n_cavities=round(12 * scale), n_loops=round(6 * scale),
                          n_precipitates=round(6 * scale), n_lines=round(2 * scale),
                          allow_overlap=not args.no_overlap)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_check_"))
    export = work / "export"
    try:
        t0 = time.perf_counter()
        make_synthetic_dataset(export, n_images=args.n_images, config=cfg, seed=args.seed, overwrite=True)
        ds = read(export)
        n_shapes = sum(len(it.shapes) for it in ds)
        print(f"data: {len(ds)} images {args.size}x{args.size}, {n_shapes} shapes "
              f"({n_shapes / len(ds):.0f} per image), written in {time.perf_counter() - t0:.1f} s", flush=True)

        if args.cli:
            import os

            print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            runs = [(src, run_cli(src.resolve(), export, work / f"report_{k}.html")) for k, src in enumerate(args.cli)]
            print(f"\n{'source':40s} {'seconds':>8s} {'peak MB':>8s} {'report MB':>10s} {'findings':>9s}")
            print("-" * 79)
            for src, r in runs:
                print(f"{str(src)[-40:]:40s} {r['seconds']:8.2f} {r['peak_mb']:8.0f} {r['report_mb']:10.2f} "
                      f"{len(r['findings']):9d}")
            same = all(r["findings"] == runs[0][1]["findings"] for _, r in runs)
            print("\nsame findings in every run: " + ("yes" if same else "NO"))
            print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            return 0 if same else 1

        config = CheckConfig()
        check(ds.with_items(ds.items[:1]))  # warm-up: imports, caches
        naive_check(ds.with_items(ds.items[:1]), config)

        t0 = time.perf_counter()
        result = check(export)
        ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        naive = naive_check(read(export), config)
        base_s = time.perf_counter() - t0

        ours = Counter((f.image, f.code, f.shape) for f in result.findings if f.code in MASK_CODES)
        theirs = Counter(naive)
        by_code = Counter(code for _, code, _ in naive)
        print()
        print(f"{'variant':10s} {'images':>7s} {'seconds':>8s} {'s/image':>8s} {'findings':>9s}")
        print("-" * 46)
        print(f"{'ours':10s} {len(ds):7d} {ours_s:8.2f} {ours_s / len(ds):8.3f} {len(result.findings):9d}")
        print(f"{'baseline':10s} {len(ds):7d} {base_s:8.2f} {base_s / len(ds):8.3f} {len(naive):9d}")
        print(f"\nspeedup (s/image, baseline / ours): {base_s / ours_s:.1f}x")
        print("same mask-based findings in both: " + ("yes" if ours == theirs else "NO"))
        print("findings by code (ours): " + ", ".join(f"{c} {n}" for c, n in sorted(result.by_code().items())))
        print("mask-based findings by code (baseline): " + ", ".join(f"{c} {n}" for c, n in sorted(by_code.items())))
        return 0 if ours == theirs else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
