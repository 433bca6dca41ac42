"""Benchmark: instances from a class mask (``raster.split.split_instances``), whole-image vs per component.

Run::

    .venv/bin/python benchmarks/bench_postprocess.py                    # all three parts
    .venv/bin/python benchmarks/bench_postprocess.py --part speed
    .venv/bin/python benchmarks/bench_postprocess.py --part scaling --sizes 512,1024,2048

* **ours** — :func:`defectlab.raster.split.split_instances`: one multi-label distance transform,
  markers from the component pixels' windows, one watershed, saddles as labeled statistics;
* **reference** — the per-component implementation it replaced (``peak_local_max``, watershed
  and merging per connected component, in a Python loop), kept verbatim in
  ``tests/raster/split_reference.py``.

Both are called as ``defectlab.dl.predict`` calls them: every class split but the dislocation
lines (the synthetic label set's class 4), ``min_area_px=1``.

Parts:

1. **speed** — three 1024² masks: *20 objects*, the exact class mask of a synthetic micrograph
   (20 defects of the four kinds placed independently, so some touch); *7,000 specks* and
   *6,500 blobs*, what a U-Net makes of noise: smoothed noise above a threshold, classes in
   patches (so specks of two classes touch); the blobs are larger, many with several maxima.
   Seconds: ours the median of 3, the reference one run.
2. **agreement** — on synthetic micrographs (1024², 60 defects placed independently: touching
   and overlapping cavities, loops, precipitates, lines) and on the workshop's own U-Net mask of
   ``DL_for_Microscopy_Train_Img_1`` (37 labeled bubbles, ``../shared/data/workshop``): objects
   found, the share of connected components that both cut into the same parts, and object F1 at
   IoU 0.5 against the labels' instances (the exact shapes; for the workshop mask, its CVAT
   polygons), ours beside the reference.
3. **scaling** — 512² … 8192² masks at the speck density of part 1 (the 1024² pattern of part 1
   mirrored into a mosaic): seconds (wall and CPU; "x 1024²" is the CPU time over that of 1024²)
   and the peak of the memory the call allocates (``tracemalloc``, numpy arrays included; a
   second, traced call), each size in a child process of its own; the reference up to 2048². This is the post-processing's share of
   ``predict`` at each size (the net's share is measured in ``bench_predict.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SPLIT = [1, 2, 3]  # synthetic labels: cavity, loop, precipitate; not 4, the dislocation lines


def specks(size: int, seed: int = 0, sigma: float = 1.6, above: float = 1.45) -> np.ndarray:
    """(size, size) uint8 class mask of noise that a U-Net calls defects: smoothed noise above
    ``above`` standard deviations, four classes in 32 px patches. The defaults make ~7,200 specks
    per 1024² (7 % of the pixels); ``sigma=2, above=0.85`` ~6,500 larger blobs (20 %)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    base = 1024
    noise = ndimage.gaussian_filter(rng.normal(size=(base, base)), sigma)
    patches = rng.integers(1, 5, size=(base // 32, base // 32)).astype(np.uint8)
    classes = np.repeat(np.repeat(patches, 32, axis=0), 32, axis=1)  # 32 px patches of one class
    tile = np.where(noise > above * noise.std(), classes, 0).astype(np.uint8)
    reps = -(-size // base)
    mosaic = np.block([[tile[:, ::-1] if j % 2 else tile for j in range(reps)] for _ in range(reps)])
    for i in range(1, reps):  # mirrored tiles meet in mirror symmetry: break it
        mosaic[i * base] = 0
        mosaic[:, i * base] = 0
    return np.ascontiguousarray(mosaic[:size, :size])


def micrograph(size: int, n: int, seed: int):
    """The exact class mask and instance ids of a synthetic micrograph with ``n`` defects."""
    from defectlab.preparation.synthetic import SYNTHETIC_LABELS, SyntheticConfig, synthetic_item
    from defectlab.raster import instance_labels, semantic_mask

    per = max(n // 10, 1)
    cfg = SyntheticConfig(size_hw=(size, size), n_cavities=4 * per, n_loops=2 * per, n_precipitates=3 * per,
                          n_lines=n - 9 * per, allow_overlap=True)
    _, item = synthetic_item(np.random.default_rng(seed), cfg)
    index = {label.name: i for i, label in enumerate(SYNTHETIC_LABELS, start=1)}
    return semantic_mask(item, index), instance_labels(item)


def workshop(shared: Path):
    """The workshop notebook's U-Net mask of Img_1 and the instance ids of its CVAT polygons."""
    import defectlab
    from defectlab.raster import instance_labels

    mask = np.load(shared / "workshop" / "DL_for_Microscopy_Train_Img_1_unet_mask.npy")[0]
    ds = defectlab.read(shared / "workshop" / "DL_for_Microscopy_Train_Lab_1.xml")
    return (mask > 0).astype(np.uint8), instance_labels(ds.items[0])


def ours(sem: np.ndarray) -> np.ndarray:
    from defectlab.raster.split import split_instances

    return split_instances(sem, split=SPLIT)[0]


def reference(sem: np.ndarray) -> np.ndarray:
    from raster.split_reference import split_instances

    return split_instances(sem, split=SPLIT)[0]


def object_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """F1 of the one-to-one matches at IoU >= 0.5 (``measurement.evaluate.match_instances``)."""
    from defectlab.measurement.evaluate import match_instances

    sel = (pred > 0) | (true > 0)
    pairs, inter = np.unique(np.stack([pred[sel], true[sel]]), axis=1, return_counts=True)
    p_ids, p_area = np.unique(pred[pred > 0], return_counts=True)
    t_ids, t_area = np.unique(true[true > 0], return_counts=True)
    iou = np.zeros((len(p_ids), len(t_ids)))
    both = (pairs[0] > 0) & (pairs[1] > 0)
    i, j = np.searchsorted(p_ids, pairs[0][both]), np.searchsorted(t_ids, pairs[1][both])
    iou[i, j] = inter[both] / (p_area[i] + t_area[j] - inter[both])
    tp = len(match_instances(iou))
    return 2 * tp / (len(p_ids) + len(t_ids)) if len(p_ids) + len(t_ids) else 1.0


def same_parts(sem: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Share of the connected components (per class, 8-connected) that a and b cut alike."""
    from scipy import ndimage

    same = total = 0
    for cls in np.unique(sem[sem > 0]):
        comps, n = ndimage.label(sem == cls, structure=np.ones((3, 3)))
        sel = comps > 0
        triples = np.unique(np.stack([comps[sel], a[sel], b[sel]]), axis=1)
        parts = [np.bincount(np.unique(triples[rows], axis=1)[0], minlength=n + 1) for rows in ([0, 1], [0, 2], [0, 1, 2])]
        same += int(np.sum((parts[0] == parts[2]) & (parts[1] == parts[2]))) - 1  # less the background's 0 == 0
        total += n
    return same / total if total else 1.0


def warm_up() -> None:
    """A first call of each variant on two touching discs, so that imports are not timed."""
    yy, xx = np.mgrid[:40, :60] + 0.5
    sem = (((xx - 18) ** 2 + (yy - 20) ** 2 <= 100) | ((xx - 36) ** 2 + (yy - 20) ** 2 <= 100)).astype(np.uint8)
    ours(sem)
    reference(sem)


def timed(fn, sem: np.ndarray, repeats: int) -> tuple[float, float, np.ndarray]:
    """Median wall and CPU seconds of ``repeats`` calls (CPU time says more on a shared machine)."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(sem)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu)), out


def part_speed() -> None:
    warm_up()
    print("\n1. speed, 1024² class masks (seconds per image)")
    print(f"{'mask':16s} {'objects':>8s} {'ours s':>8s} {'ours cpu':>8s} {'ref s':>8s} {'ref cpu':>8s} "
          f"{'ref/ours':>9s} {'same parts':>10s}")
    for name, sem in (("20 objects", micrograph(1024, 20, seed=1)[0]), ("7,000 specks", specks(1024)),
                      ("6,500 blobs", specks(1024, sigma=2.0, above=0.85))):
        t_ours, c_ours, a = timed(ours, sem, 3)
        t_ref, c_ref, b = timed(reference, sem, 1)
        print(f"{name:16s} {int(a.max()):8d} {t_ours:8.3f} {c_ours:8.3f} {t_ref:8.3f} {c_ref:8.3f} "
              f"{c_ref / c_ours:8.1f}x {same_parts(sem, a, b):10.4f}")


def part_agreement(shared: Path) -> None:
    print("\n2. agreement: objects, components cut alike, object F1 at IoU 0.5 against the labels")
    print(f"{'mask':28s} {'labels':>7s} {'ours':>6s} {'ref':>6s} {'same parts':>10s} {'F1 ours':>8s} {'F1 ref':>8s}")
    cases = [(f"synthetic 1024² seed {s}", *micrograph(1024, 60, seed=s)) for s in range(3)]
    if (shared / "workshop").is_dir():
        cases.append(("workshop Img_1 U-Net mask", *workshop(shared)))
    for name, sem, truth in cases:
        a, b = ours(sem), reference(sem)
        print(f"{name:28s} {len(np.unique(truth)) - 1:7d} {int(a.max()):6d} {int(b.max()):6d} "
              f"{same_parts(sem, a, b):10.4f} {object_f1(a, truth):8.4f} {object_f1(b, truth):8.4f}")


def child(variant: str, size: int) -> dict:
    sem = specks(size)
    fn = ours if variant == "ours" else reference
    warm_up()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(sem)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    tracemalloc.start()  # a second call, traced: the peak of the arrays it allocates
    fn(sem)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"variant": variant, "size": size, "objects": int(out.max()), "seconds": seconds, "cpu": cpu,
            "peak_mb": peak / 2**20}


def part_scaling(sizes: list[int], ref_max: int) -> None:
    print("\n3. scaling, specks at 7,000 per 1024² (each run in a child process)")
    print(f"{'size':>6s} {'variant':>9s} {'objects':>9s} {'seconds':>8s} {'cpu s':>8s} {'x 1024²':>8s} "
          f"{'peak MB':>8s} {'MB/Mpx':>7s}")
    base: dict[str, float] = {}
    for size in sizes:
        for variant in ("ours", "reference"):
            if variant == "reference" and size > ref_max:
                continue
            out = subprocess.run([sys.executable, __file__, "--child", variant, str(size)], check=True,
                                 capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            if size == 1024:
                base[variant] = r["cpu"]
            ratio = f"{r['cpu'] / base[variant]:8.2f}" if variant in base else f"{'':8s}"
            print(f"{size:6d} {variant:>9s} {r['objects']:9d} {r['seconds']:8.3f} {r['cpu']:8.3f} {ratio} {r['peak_mb']:8.0f} "
                  f"{r['peak_mb'] / (size * size / 1e6):7.1f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("speed", "agreement", "scaling", "all"), default="all")
    p.add_argument("--sizes", default="512,1024,2048,4096,8192")
    p.add_argument("--reference-max", type=int, default=2048, help="largest size the reference runs at")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    import os

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.part in ("speed", "all"):
        part_speed()
    if args.part in ("agreement", "all"):
        part_agreement(args.shared)
    if args.part in ("scaling", "all"):
        part_scaling([int(s) for s in args.sizes.split(",")], args.reference_max)


if __name__ == "__main__":
    main()
