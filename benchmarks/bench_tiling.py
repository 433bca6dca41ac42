"""Benchmark: cutting labeled micrographs into training tiles, defectlab vs the dense-mask approach.

Run::

    .venv/bin/python benchmarks/bench_tiling.py                     # both cases
    .venv/bin/python benchmarks/bench_tiling.py --case workshop --n-images 20
    .venv/bin/python benchmarks/bench_tiling.py --case large --large-size 4096
    .venv/bin/python benchmarks/bench_tiling.py --case prepare --frames 25 --frame-size 2048

Cases (synthetic TEM-like micrographs with exact labels, :mod:`defectlab.preparation.synthetic`):

* **workshop** — N 512×512 images (~26 defects each), window 256, stride 128 (9 tiles each), as
  in the workshop notebook;
* **large** — one 4096×4096 micrograph (a 2×2 mosaic of 2048×2048 synthetic images, ~1,660
  defects), window 256, stride 128 (961 tiles).

Both variants produce, for every tile, what U-Net and Mask R-CNN training need, in memory: the
tile's pixels, its semantic mask, and each instance's mask and box.

* **ours** — :func:`defectlab.preparation.tiling.tile_item` (each instance rasterized once in the
  source, cut by the windows, whole instances kept as translated geometry, cut ones as
  masks), then :func:`defectlab.raster.semantic_mask` and
  :func:`defectlab.raster.instances` per tile (sparse crops and boxes).
* **baseline** — the workshop notebook's way, with our exact rasterizer so that only the
  strategy differs: one full H×W uint8 mask per instance, stacked as H×W×N, the semantic mask
  painted per instance; per window, the stack is cropped, the instances with a pixel in the
  window kept (an H×W×n copy) and their boxes computed from the dense crops. It keeps every
  instance with at least one pixel (no visible-share rule, no clipped flag): less work than ours.

* **prepare** — ``defectlab prepare --to unet --tile 512`` (the library call
  :func:`defectlab.preparation.pipeline.prepare`, default options: previews on) beside
  ``defectlab convert --to unet`` (``read`` + ``write_unet``) of the same export: 25 micrographs
  of 2048×2048 (2×2 mosaics of synthetic images, ~420 defects each), the issue's in-situ set.
  The same pixels go out: convert copies the source PNGs and writes 25 masks, prepare writes
  400 tiles and their masks. Also prepare with ``preview=False``. Wall and CPU seconds (CPU time
  says more on a shared machine: the process, its threads and the worker processes it waited
  for, which convert's mask writer forks) and peak resident MB, each in a child process; the
  ratios to convert of both.

Each variant runs in a child process of its own (one JSON line out). "start MB" is the child's
resident memory after imports and reading the images and labels (not timed); the peak is reset
there (Linux ``/proc/self/clear_refs``), so "peak MB" is the highest resident memory during the
timed work. When the baseline's dense stack would not fit in half the
free memory it runs on the largest top-left square of the image that does (shapes wholly inside
it), and says so; its tiles/s there is optimistic, since its cost per tile grows with the number
of instances in the image.

Measured (development machine: 2 shared CPU cores, 24 GB, Python 3.11; one run, ~3 min)::

    case      variant            images instances  tiles  in tiles  seconds  tiles/s start MB  peak MB
    workshop  ours          20x 512x512       520    180      1307     1.12    160.4       53       55
    workshop  baseline      20x 512x512       520    180      1418     2.23     80.9       53       74
    large     ours         1x 4096x4096      1664    961      7263     2.78    345.5       65       95
    large     baseline     1x 2048x2048       416    225      1950    55.29      4.1       65     3403

On the 4096×4096 micrograph the baseline's H×W×N stack would take ~52 GiB, so it ran on the
top-left 2048×2048 quarter (416 defects; 1.6 GB stack, 3.3 GB peak above start); ours tiled the
whole image in 30 MB above start. The machine is shared: the same command measured ours at
92–101 tiles/s on the large case while other jobs ran.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TILE, STRIDE = 256, 128


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> float:
    """Resident MB now, after resetting the peak (Linux: ``/proc/self/clear_refs``), so that the
    peak measured later is the work's, not that of the imports before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    now = _status_mb("VmRSS")
    return now if now is not None else _rss_mb()


def _rss_mb() -> float:
    """Peak resident MB since the last reset (VmHWM), or of the whole process (ru_maxrss)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def _available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def _load(export: Path, crop: int | None):
    """Items and their pixels; with ``crop``, the top-left crop×crop square and the shapes wholly in it."""
    import defectlab
    from defectlab.imaging.io import read_image
    from defectlab.model import Item

    ds = defectlab.read(export)
    out = []
    for item in ds.items:
        pixels = read_image(item.image)
        if crop is not None:
            pixels = pixels[:crop, :crop]
            keep = []
            for s in item.shapes:
                x1, y1, x2, y2 = s.bbox_xyxy()
                if x1 >= 0 and y1 >= 0 and x2 <= crop - 2 and y2 <= crop - 2:
                    keep.append(s)
            item = Item(item.name, pixels.shape[:2], tuple(keep))
        out.append((item, pixels))
    return ds.class_index(), out


def run_ours(export: Path, crop: int | None) -> dict:
    from defectlab.preparation.tiling import tile_image, tile_item, tile_windows
    from defectlab.raster import instances, semantic_mask

    class_index, data = _load(export, crop)
    start = _reset_peak()
    t0 = time.perf_counter()
    n_tiles = n_inst = 0
    for item, pixels in data:
        tiles, _ = tile_item(item, tile_windows(item.size_hw, TILE, STRIDE), min_visible=0.25)
        for t in tiles:
            image = tile_image(pixels, t.window)
            sem = semantic_mask(t.item, class_index)
            inst, _ = instances(t.item, class_index)
            boxes = [i.box_xyxy for i in inst]
            n_tiles += 1
            n_inst += len(boxes)
            del image, sem
    seconds = time.perf_counter() - t0
    return {"variant": "ours", "seconds": seconds, "tiles": n_tiles, "tile_instances": n_inst,
            "instances": sum(len(it.shapes) for it, _ in data), "size": list(data[0][0].size_hw),
            "images": len(data), "start_mb": start, "peak_mb": _rss_mb()}


def run_baseline(export: Path, crop: int | None) -> dict:
    from defectlab.raster import rasterize

    class_index, data = _load(export, crop)
    start = _reset_peak()
    t0 = time.perf_counter()
    n_tiles = n_inst = 0
    held = 0
    for item, pixels in data:
        h, w = item.size_hw
        masks = []
        semantic = np.zeros((h, w), np.uint8)
        for s in item.shapes:
            if not (s.is_area or s.kind == "polyline"):
                continue
            crop_px = rasterize(s, (h, w))
            m = np.zeros((h, w), np.uint8)  # one full-image mask per instance, as the notebook does
            m[crop_px.slices] = crop_px.bitmap
            semantic[m > 0] = class_index[s.label]
            masks.append(m)
        stack = np.stack(masks, axis=-1) if masks else np.zeros((h, w, 0), np.uint8)  # H×W×N
        held = max(held, stack.nbytes)
        del masks
        ys = list(range(0, h - TILE + 1, STRIDE))
        xs = list(range(0, w - TILE + 1, STRIDE))
        for y in ys:
            for x in xs:
                image = pixels[y : y + TILE, x : x + TILE].copy()
                sem = semantic[y : y + TILE, x : x + TILE].copy()
                window = stack[y : y + TILE, x : x + TILE, :]
                present = window.reshape(-1, window.shape[-1]).any(axis=0)
                inst = window[:, :, present].copy()
                boxes = []
                for k in range(inst.shape[-1]):
                    rows = np.flatnonzero(inst[:, :, k].any(axis=1))
                    cols = np.flatnonzero(inst[:, :, k].any(axis=0))
                    boxes.append((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))
                n_tiles += 1
                n_inst += len(boxes)
                del image, sem, inst
        del stack
    seconds = time.perf_counter() - t0
    return {"variant": "baseline", "seconds": seconds, "tiles": n_tiles, "tile_instances": n_inst,
            "instances": sum(len(it.shapes) for it, _ in data), "size": list(data[0][0].size_hw),
            "images": len(data), "start_mb": start, "peak_mb": _rss_mb(), "stack_mb": held / 2**20}


def run_convert_or_prepare(variant: str, export: Path) -> dict:
    """``convert --to unet`` or ``prepare --to unet --tile 512`` of ``export`` into a temporary folder."""
    import defectlab
    from defectlab.preparation.pipeline import prepare

    out = Path(tempfile.mkdtemp(prefix="defectlab-bench-out-")) / "out"
    try:
        start = _reset_peak()
        t0, c0 = time.perf_counter(), _cpu_all()
        if variant == "convert":
            defectlab.write(defectlab.read(export), out, format="unet")
        else:
            prepare(export, out, to="unet", tile=512, progress=False, preview=variant == "prepare")
        seconds, cpu = time.perf_counter() - t0, _cpu_all() - c0
        files = sorted(p for p in out.rglob("*.png") if "preview" not in p.parts)
        return {"variant": variant, "seconds": seconds, "cpu": cpu, "start_mb": start, "peak_mb": _rss_mb(),
                "pngs": len(files), "mb_out": sum(p.stat().st_size for p in files) / 2**20}
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def _cpu_all() -> float:
    """CPU seconds of this process (all its threads) and of the child processes it has waited for."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _child(variant: str, export: Path, crop: int | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant, "--export", str(export)]
    if crop is not None:
        cmd += ["--crop", str(crop)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_workshop(work: Path, n: int, seed: int) -> Path:
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    export = work / "workshop"
    make_synthetic_dataset(export, n_images=n, config=SyntheticConfig(size_hw=(512, 512)), seed=seed)
    return export


def make_mosaics(work: Path, name: str, n: int, size: int, seed: int) -> Path:
    """``n`` size×size micrographs, each a 2×2 mosaic of synthetic images (their generator is
    quadratic in the number of defects) at the defect density of the 512 px default (~26 per
    512², ~420 per 2048²), written as a CVAT export ``work/name``."""
    from defectlab.formats.cvat_xml import write_cvat
    from defectlab.imaging.io import write_image
    from defectlab.model import Dataset, ImageSource, Item
    from defectlab.preparation.resize import affine_shape, translation
    from defectlab.preparation.synthetic import SYNTHETIC_LABELS, SyntheticConfig, synthetic_item

    half = size // 2
    f = (half / 512) ** 2
    cfg = SyntheticConfig(size_hw=(half, half), n_cavities=round(12 * f), n_loops=round(6 * f),
                          n_precipitates=round(6 * f), n_lines=round(2 * f))
    export = work / name
    (export / "images").mkdir(parents=True)
    items = []
    for i, frame in enumerate(np.random.SeedSequence(seed).spawn(n)):
        image = np.zeros((size, size), np.uint8)
        shapes = []
        for k, stream in enumerate(frame.spawn(4)):
            oy, ox = divmod(k, 2)
            tile, item = synthetic_item(np.random.default_rng(stream), cfg)
            image[oy * half : (oy + 1) * half, ox * half : (ox + 1) * half] = tile
            shapes += [affine_shape(s, translation(ox * half, oy * half)) for s in item.shapes]
        file = f"{name}_{i:03d}.png"
        write_image(export / "images" / file, image)
        items.append(Item(file, (size, size), tuple(shapes), image=ImageSource(export / "images" / file)))
    write_cvat(Dataset(SYNTHETIC_LABELS, tuple(items)), export / "annotations.xml")
    return export


def make_large(work: Path, size: int, seed: int) -> Path:
    """One size×size micrograph (:func:`make_mosaics`)."""
    return make_mosaics(work, "large", 1, size, seed)


def _row(case: str, r: dict) -> str:
    tps = r["tiles"] / r["seconds"] if r["seconds"] > 0 else float("inf")
    r["tps"] = tps
    size = f"{r['images']}x {r['size'][1]}x{r['size'][0]}"
    return (f"{case:<9} {r['variant']:<9} {size:>15} {r['instances']:>9} {r['tiles']:>6} {r['tile_instances']:>9} "
            f"{r['seconds']:>8.2f} {tps:>8.1f} {r['start_mb']:>8.0f} {r['peak_mb']:>8.0f}")


def main_driver(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="defectlab-bench-tiling-"))
    try:
        cases = []
        if args.case in ("all", "workshop"):
            t0 = time.perf_counter()
            cases.append(("workshop", make_workshop(work, args.n_images, args.seed)))
            print(f"generated {args.n_images} synthetic 512x512 images in {time.perf_counter() - t0:.1f} s")
        if args.case in ("all", "large"):
            t0 = time.perf_counter()
            cases.append(("large", make_large(work, args.large_size, args.seed)))
            print(f"generated a {args.large_size}x{args.large_size} mosaic in {time.perf_counter() - t0:.1f} s")
        if args.case in ("all", "prepare"):
            t0 = time.perf_counter()
            frames = make_mosaics(work, "frames", args.frames, args.frame_size, args.seed)
            print(f"generated {args.frames} {args.frame_size}x{args.frame_size} mosaics in {time.perf_counter() - t0:.1f} s")
            _prepare_case(frames)
        if not [c for c in cases if c[0] != "prepare"]:
            return
        head = (f"{'case':<9} {'variant':<9} {'images':>15} {'instances':>9} {'tiles':>6} {'in tiles':>9} "
                f"{'seconds':>8} {'tiles/s':>8} {'start MB':>8} {'peak MB':>8}")
        lines = []
        notes = []
        for case, export in cases:
            ours = _child("ours", export)
            n_inst = ours["instances"] / ours["images"]
            h, w = ours["size"]
            need_mb = 2 * h * w * n_inst / 2**20  # the list of masks and the stack exist together
            budget = 0.5 * _available_mb()
            crop = None
            if need_mb > budget:
                side = h
                while side > TILE and 2 * side * side * n_inst * (side * side) / (h * w) / 2**20 > budget:
                    side //= 2
                crop = side
                notes.append(f"{case}: the baseline's dense masks would take ~{need_mb / 1024:.1f} GiB per image; "
                             f"run on the top-left {side}x{side} (shapes wholly inside), where its tiles/s is "
                             f"optimistic")
            base = _child("baseline", export, crop)
            lines += [_row(case, ours), _row(case, base)]
            lines.append(f"{'':<9} speedup (tiles/s, ours / baseline): {ours['tps'] / base['tps']:.1f}x; "
                         f"peak above start: ours {ours['peak_mb'] - ours['start_mb']:.0f} MB, "
                         f"baseline {base['peak_mb'] - base['start_mb']:.0f} MB "
                         f"(its H×W×N stack: {base['stack_mb']:.0f} MB per image)")
        print()
        print(head)
        print("-" * len(head))
        for line in lines:
            print(line)
        for note in notes:
            print("note:", note)
        print("in tiles: instances summed over tiles (ours drops remainders under 25 % visible; "
              "the baseline keeps any with one pixel)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prepare_case(frames: Path) -> None:
    import os

    rows = [_child(v, frames) for v in ("convert", "prepare", "prepare-no-preview")]
    print(f"\nprepare vs convert, {frames.name}: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'variant':<20} {'seconds':>8} {'x convert':>9} {'cpu s':>8} {'x convert':>9} {'PNGs':>6} {'MB out':>7} "
          f"{'peak MB':>8}")
    wall, cpu = rows[0]["seconds"], rows[0]["cpu"]
    for r in rows:
        print(f"{r['variant']:<20} {r['seconds']:8.1f} {r['seconds'] / wall:8.1f}x {r['cpu']:8.1f} {r['cpu'] / cpu:8.1f}x "
              f"{r['pngs']:6d} {r['mb_out']:7.0f} {r['peak_mb'] - r['start_mb']:8.0f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", choices=["all", "workshop", "large", "prepare"], default="all")
    p.add_argument("--frames", type=int, default=25, help="prepare case: number of micrographs")
    p.add_argument("--frame-size", type=int, default=2048, help="prepare case: their side, px (even)")
    p.add_argument("--n-images", type=int, default=20, help="workshop case: number of 512x512 images")
    p.add_argument("--large-size", type=int, default=4096, help="large case: image side, px (even)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", choices=["ours", "baseline", "convert", "prepare", "prepare-no-preview"],
                   help=argparse.SUPPRESS)
    p.add_argument("--export", help=argparse.SUPPRESS)
    p.add_argument("--crop", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant in ("convert", "prepare", "prepare-no-preview"):
        print(json.dumps(run_convert_or_prepare(args.variant, Path(args.export))))
        return
    if args.variant:
        fn = run_ours if args.variant == "ours" else run_baseline
        print(json.dumps(fn(Path(args.export), args.crop)))
        return
    main_driver(args)


if __name__ == "__main__":
    main()
