"""Benchmark: a CVAT export -> U-Net + Mask R-CNN training data, defectlab vs the workshop notebook.

Run::

    .venv/bin/python benchmarks/bench_convert.py [--n-images 50] [--size 1024] [--shapes 200]

What it does (see benchmarks/README.md):

1. writes N synthetic size×size micrographs with about ``--shapes`` exact shapes each as a
   CVAT for images 1.1 export, in a temporary folder;
2. **ours**: ``read_cvat`` -> ``write_unet`` + ``write_maskrcnn`` (what ``defectlab convert``
   does for both targets), in a child process of its own;
3. **baseline**: the workshop notebook's approach, in a child process of its own: parse the XML
   with ElementTree, truncate coordinates to int, one dense H×W mask per instance
   (``skimage.draw``), an H×W×N stack per image, every image's stack kept in a list, a
   semantic-mask PNG and an ``np.save`` of the stack per image;
4. **ours** again on the first N/2 images, to show that its peak memory does not grow with N;
5. prints seconds, images/s and peak RSS (``ru_maxrss`` of each child) per variant, the
   speedup, and the mean bias of each variant's pixel areas against the exact analytic areas.

Each variant runs as ``bench_convert.py --variant {ours,baseline} --export DIR --out DIR`` and
prints one JSON line, so the variants' memory does not mix.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np

#: The workshop parser's shape kinds; it skips everything else (polylines, points, masks).
BASELINE_KINDS = ("polygon", "ellipse", "box")


def _rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


# ---------------------------------------------------------------------------------------------
# The baseline: the workshop notebook's approach


def baseline_parse(xml_path: Path) -> tuple[list[str], list[dict]]:
    """ElementTree parse: label names, and per image {name, width, height, shapes[(kind, label, attrib)]}."""
    root = ET.parse(xml_path).getroot()
    labels = [el.findtext("name") for el in root.iter("label") if el.find("parent") is None]
    images = []
    for im in root.iter("image"):
        shapes = [(el.tag, el.get("label"), dict(el.attrib)) for el in im]
        images.append({"name": im.get("name"), "width": int(im.get("width")),
                       "height": int(im.get("height")), "shapes": shapes})
    return labels, images


def baseline_pixels(kind: str, a: dict, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """Row and column indices the notebook fills for one shape (duplicates possible); None if skipped.

    Vertices and ellipse parameters are truncated to int and used as pixel indices; polygons
    are filled *and* their outline drawn (like ``cv2.fillPoly`` + ``cv2.drawContours``);
    ellipses lose their rotation.
    """
    from skimage.draw import ellipse, polygon, polygon_perimeter

    if kind == "polygon":
        xy = [p.split(",") for p in a["points"].split(";")]
        cols = np.array([int(float(x)) for x, _ in xy])
        rows = np.array([int(float(y)) for _, y in xy])
    elif kind == "box":
        x1, y1, x2, y2 = (int(float(a[k])) for k in ("xtl", "ytl", "xbr", "ybr"))
        cols, rows = np.array([x1, x2, x2, x1]), np.array([y1, y1, y2, y2])
    elif kind == "ellipse":
        cx, cy, rx, ry = (int(float(a[k])) for k in ("cx", "cy", "rx", "ry"))
        if rx < 1 or ry < 1:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return ellipse(cy, cx, ry, rx, shape=size_hw)
    else:
        return None
    rr, cc = polygon(rows, cols, shape=size_hw)
    pr, pc = polygon_perimeter(rows, cols, shape=size_hw)
    return np.concatenate([rr, pr]), np.concatenate([cc, pc])


def run_baseline(export: Path, out: Path, max_images: int | None) -> dict:
    from PIL import Image

    t0 = time.perf_counter()
    labels, images = baseline_parse(export / "annotations.xml")
    if max_images is not None:
        images = images[:max_images]
    class_of = {name: i for i, name in enumerate(labels, start=1)}
    (out / "masks").mkdir(parents=True)
    (out / "instances").mkdir()
    all_stacks = []  # the notebook keeps every image's H×W×N array
    n_shapes = n_skipped = 0
    for im in images:
        h, w = im["height"], im["width"]
        dense = []
        semantic = np.zeros((h, w), np.uint8)
        for kind, label, attrib in im["shapes"]:
            pix = baseline_pixels(kind, attrib, (h, w))
            if pix is None:
                n_skipped += 1
                continue
            mask = np.zeros((h, w), dtype=np.uint8)
            mask[pix] = 1
            dense.append(mask)
            semantic[pix] = class_of[label]  # painted in file order, later on top
            n_shapes += 1
        stack = np.stack(dense, axis=-1) if dense else np.zeros((h, w, 0), np.uint8)
        stem = Path(im["name"]).stem
        Image.fromarray(semantic).save(out / "masks" / f"{stem}.png")
        np.save(out / "instances" / f"{stem}.npy", stack)
        all_stacks.append(stack)
        del dense
    seconds = time.perf_counter() - t0
    return {"variant": "baseline", "images": len(images), "shapes": n_shapes, "skipped": n_skipped,
            "seconds": seconds, "held_mb": sum(s.nbytes for s in all_stacks) / 2**20}


# ---------------------------------------------------------------------------------------------
# Ours


def run_ours(export: Path, out: Path, images: Path | None) -> dict:
    from defectlab.formats.cvat_xml import read_cvat
    from defectlab.formats.maskrcnn import write_maskrcnn
    from defectlab.formats.unet import write_unet

    t0 = time.perf_counter()
    ds = read_cvat(export, images=images)
    write_unet(ds, out / "unet")
    report = write_maskrcnn(ds, out / "maskrcnn")
    seconds = time.perf_counter() - t0
    return {"variant": "ours", "images": len(ds), "shapes": sum(len(it.shapes) for it in ds),
            "skipped": len(report.notes), "seconds": seconds}


def run_unet(export: Path, out: Path) -> dict:
    """What ``defectlab convert --to unet`` does: read the CVAT export, write masks + image copies."""
    from defectlab.formats.cvat_xml import read_cvat
    from defectlab.formats.unet import write_unet

    t0 = time.perf_counter()
    ds = read_cvat(export)
    write_unet(ds, out / "unet")
    seconds = time.perf_counter() - t0
    return {"variant": "unet", "images": len(ds), "shapes": sum(len(it.shapes) for it in ds), "skipped": 0,
            "seconds": seconds}


def run_datumaro(export: Path, out: Path) -> dict:
    """Datumaro's way to class-index masks: CVAT import -> polygons_to_masks -> VOC segmentation export
    (class and instance PNGs, images copied). Its CVAT reader keeps polylines as polylines, which no
    mask is drawn for: they are counted as skipped."""
    import datumaro as dm

    t0 = time.perf_counter()
    ds = dm.Dataset.import_from(str(export), "cvat")
    n_items = len(ds)
    shapes = sum(len(it.annotations) for it in ds)
    skipped = sum(a.type.name == "polyline" for it in ds for a in it.annotations)
    ds.transform("polygons_to_masks").export(str(out / "voc"), "voc_segmentation", save_media=True)
    seconds = time.perf_counter() - t0
    return {"variant": f"datumaro {dm.__version__}", "images": n_items, "shapes": shapes - skipped,
            "skipped": skipped, "seconds": seconds}


# ---------------------------------------------------------------------------------------------
# Areas: exact (analytic) vs each variant's pixel count


def area_bias(export: Path) -> dict[str, dict[str, float]]:
    """Relative area error (pixels − exact) / exact per kind and size, for ours and the baseline.

    Size classes use the radius of the disc of the same exact area, ``r = sqrt(area / pi)``.
    """
    from defectlab.formats.cvat_xml import read_cvat
    from defectlab.raster import rasterize

    ds = read_cvat(export)
    _, images = baseline_parse(export / "annotations.xml")
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for item, im in zip(ds.items, images):
        size_hw = item.size_hw
        raw = [(k, a) for k, _, a in im["shapes"] if k in BASELINE_KINDS]
        ours = [s for s in item.shapes if s.kind in BASELINE_KINDS]
        if len(raw) != len(ours):
            raise RuntimeError(f"{item.name}: {len(raw)} shapes in the XML, {len(ours)} read")
        for (kind, attrib), shape in zip(raw, ours):
            exact = shape.area()  # πab for ellipses, shoelace for polygons, w·h for boxes
            rr, cc = baseline_pixels(kind, attrib, size_hw)
            base = np.unique(rr.astype(np.int64) * size_hw[1] + cc).size
            mine = rasterize(shape, size_hw).area
            r_eq = math.sqrt(exact / math.pi)
            size = "r < 6 px" if r_eq < 6 else "6 <= r < 12 px" if r_eq < 12 else "r >= 12 px"
            for key in (f"{kind}, {size}", f"{kind}, all", "all shapes"):
                rows[key]["ours"].append((mine - exact) / exact)
                rows[key]["baseline"].append((base - exact) / exact)
    return {key: {"n": len(v["ours"]),
                  "ours_mean": float(np.mean(v["ours"])), "ours_abs": float(np.mean(np.abs(v["ours"]))),
                  "base_mean": float(np.mean(v["baseline"])), "base_abs": float(np.mean(np.abs(v["baseline"])))}
            for key, v in sorted(rows.items(), key=lambda kv: _bias_order(kv[0]))}


def _bias_order(key: str) -> tuple:
    kind, _, size = key.partition(", ")
    sizes = ["r < 6 px", "6 <= r < 12 px", "r >= 12 px", "all"]
    return (key == "all shapes", kind, sizes.index(size) if size in sizes else len(sizes))


# ---------------------------------------------------------------------------------------------
# The driver


def _child(variant: str, export: Path, out: Path, *, images: Path | None = None,
           max_images: int | None = None, pythonpath: str | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant,
           "--export", str(export), "--out", str(out)]
    if images is not None:
        cmd += ["--images", str(images)]
    if max_images is not None:
        cmd += ["--max-images", str(max_images)]
    env = None
    if pythonpath:  # datumaro from its own folder (pip install --target): its pins stay out of our venv
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([pythonpath, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)  # outputs can be large (the baseline's stacks)
    return result


def _available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def _synthetic_config(size: int, shapes: int):
    from defectlab.preparation.synthetic import SyntheticConfig

    f = shapes / 200  # the mix of the default: 120 cavities, 40 loops, 30 precipitates, 10 lines
    return SyntheticConfig(size_hw=(size, size), n_cavities=round(120 * f), n_loops=round(40 * f),
                           n_precipitates=round(30 * f), n_lines=round(10 * f))


def main_driver(args: argparse.Namespace) -> None:
    from defectlab.formats.cvat_xml import write_cvat
    from defectlab.preparation.synthetic import make_synthetic_dataset

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="defectlab-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        n, size = args.n_images, args.size
        export = work / "export"
        t0 = time.perf_counter()
        ds = make_synthetic_dataset(export, n_images=n, config=_synthetic_config(size, args.shapes),
                                    seed=args.seed, overwrite=True)
        per_image = [len(it.shapes) for it in ds]
        print(f"generated {n} synthetic {size}x{size} images in {time.perf_counter() - t0:.1f} s: "
              f"{sum(per_image)} shapes, {min(per_image)}-{max(per_image)} per image "
              f"(asked {args.shapes}); kinds: "
              + ", ".join(f"{k} {c}" for k, c in sorted(_kinds(ds).items())))

        if args.vs_datumaro:
            # datumaro 1.13's CVAT reader drops ellipses: both read an export where each ellipse is its
            # polygon (within 0.05 px), so that both draw the same shapes
            from defectlab.model import Ellipse, Polygon
            from defectlab.raster import ellipse_polygon

            polys = ds.with_items([replace(it, shapes=tuple(
                Polygon(label=sh.label, points_xy=ellipse_polygon(sh)) if isinstance(sh, Ellipse) else sh
                for sh in it.shapes)) for it in ds.items])
            export_poly = work / "export_polygons"
            export_poly.mkdir(exist_ok=True)
            write_cvat(polys, export_poly / "annotations.xml", overwrite=True)
            (export_poly / "images").symlink_to((export / "images").resolve(), target_is_directory=True) \
                if not (export_poly / "images").exists() else None
            results = [_child("unet", export_poly, work / "out_unet"),
                       _child("datumaro", export_poly, work / "out_dm", pythonpath=args.datumaro_path)]
            print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            _print_table(results)
            return
        half = max(1, n // 2)
        export_half = work / "export_half"
        export_half.mkdir(exist_ok=True)
        write_cvat(ds.with_items(ds.items[:half]), export_half / "annotations.xml")

        # the baseline holds every image's H×W×N uint8 stack: cap it to what memory allows
        mean_shapes = sum(per_image) / max(n, 1)
        per_image_mb = size * size * mean_shapes / 2**20
        budget = 0.5 * _available_mb() - 2 * per_image_mb  # one image's masks exist twice while stacked
        cap = args.baseline_max_images or max(1, min(n, int(budget // per_image_mb)))
        if cap < n:
            print(f"baseline: {n} images would hold ~{n * per_image_mb / 1024:.1f} GiB of dense masks; "
                  f"running it on the first {cap} (--baseline-max-images to change)")

        results = [
            _child("ours", export, work / "out_ours"),
            _child("baseline", export, work / "out_base", max_images=cap),
            _child("ours", export_half, work / "out_ours_half", images=export / "images"),
        ]
        _print_table(results)
        bias = area_bias(export)
        _print_bias(bias)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print(f"kept {work}")


def _kinds(ds) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for it in ds:
        for s in it.shapes:
            counts[s.kind] += 1
    return counts


def _print_table(results: list[dict]) -> None:
    print()
    head = f"{'variant':<16} {'images':>6} {'shapes':>7} {'skipped':>7} {'seconds':>8} {'images/s':>9} " \
           f"{'start MB':>9} {'peak RSS MB':>11}"
    print(head)
    print("-" * len(head))
    for r in results:
        r["ips"] = r["images"] / r["seconds"] if r["seconds"] > 0 else float("inf")
        print(f"{r['variant']:<16} {r['images']:>6} {r['shapes']:>7} {r['skipped']:>7} {r['seconds']:>8.2f} "
              f"{r['ips']:>9.2f} {r['start_mb']:>9.0f} {r['peak_mb']:>11.0f}")
    if len(results) == 2:  # --vs-datumaro
        print(f"\nspeedup (images/s, convert --to unet / datumaro): {results[0]['ips'] / results[1]['ips']:.1f}x")
        return
    ours, base, half = results
    print()
    print(f"speedup (images/s, ours / baseline): {ours['ips'] / base['ips']:.1f}x")
    print(f"peak RSS above start: ours {ours['peak_mb'] - ours['start_mb']:.1f} MB for {ours['images']} images, "
          f"{half['peak_mb'] - half['start_mb']:.1f} MB for {half['images']}; "
          f"baseline {base['peak_mb'] - base['start_mb']:.0f} MB for {base['images']} "
          f"(of which {base['held_mb']:.0f} MB are the kept stacks, "
          f"{base['held_mb'] / max(base['images'], 1):.0f} MB per image)")
    print("skipped: ours = degenerate-instance notes of write_maskrcnn; "
          "baseline = shapes its parser does not handle (polylines)")


def _print_bias(bias: dict[str, dict[str, float]]) -> None:
    print()
    print("pixel area vs exact analytic area (ellipse: pi*a*b, polygon: shoelace), mean over shapes")
    head = f"{'shapes':<24} {'n':>6} {'ours bias':>10} {'ours |err|':>11} {'baseline bias':>14} {'baseline |err|':>15}"
    print(head)
    print("-" * len(head))
    for key, v in bias.items():
        print(f"{key:<24} {v['n']:>6} {100 * v['ours_mean']:>+9.2f}% {100 * v['ours_abs']:>10.2f}% "
              f"{100 * v['base_mean']:>+13.2f}% {100 * v['base_abs']:>14.2f}%")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-images", type=int, default=50)
    p.add_argument("--size", type=int, default=1024, help="image side, px")
    p.add_argument("--shapes", type=int, default=200, help="shapes asked per image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="folder for the export and outputs (default: a temporary one, removed)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--baseline-max-images", type=int, default=None,
                   help="run the baseline on at most this many images (default: what half the free memory holds)")
    # child mode
    p.add_argument("--vs-datumaro", action="store_true",
                   help="only `convert --to unet` beside datumaro (CVAT -> polygons_to_masks -> voc_segmentation)")
    p.add_argument("--datumaro-path", help="a folder datumaro is installed in (pip install --target DIR datumaro), "
                                           "put first on the datumaro child's PYTHONPATH")
    p.add_argument("--variant", choices=["ours", "baseline", "unet", "datumaro"], help=argparse.SUPPRESS)
    p.add_argument("--export", help=argparse.SUPPRESS)
    p.add_argument("--images", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--max-images", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant is None:
        main_driver(args)
        return
    # child: import what the variant needs first, so that "start" is the interpreter + imports
    if args.variant in ("ours", "unet"):
        import defectlab.formats.cvat_xml, defectlab.formats.maskrcnn, defectlab.formats.unet  # noqa: F401,E401
    if args.variant == "datumaro":
        import datumaro  # noqa: F401
    import skimage.draw  # noqa: F401  (both: ours imports skimage indirectly; keep the start equal)
    from PIL import Image  # noqa: F401

    start_mb = _rss_mb()
    export, out = Path(args.export), Path(args.out)
    if args.variant == "ours":
        result = run_ours(export, out, Path(args.images) if args.images else None)
    elif args.variant == "unet":
        result = run_unet(export, out)
    elif args.variant == "datumaro":
        result = run_datumaro(export, out)
    else:
        result = run_baseline(export, out, args.max_images)
    result.update(start_mb=start_mb, peak_mb=_rss_mb(), pid=os.getpid())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
