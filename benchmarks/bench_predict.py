"""Benchmark: tiled, blended U-Net prediction vs whole-image and plain-tile baselines, in one run.

Run::

    .venv/bin/python benchmarks/bench_predict.py                  # 4096 x 4096, a quickly trained default U-Net
    .venv/bin/python benchmarks/bench_predict.py --size 2048 --model MODEL_DIR

What it does:

1. **model**: the default U-Net (16 filters, 3 poolings, ~0.63 M parameters), trained for a
   minute or two on synthetic micrographs (so that its output has real structure for the seam
   measurement), or ``--model DIR``. Not timed.
2. **image**: one synthetic ``size`` x ``size`` micrograph (defect density of the 512 px default,
   defects placed independently).
3. Three variants, each in a child process of its own (so peak memory does not mix), each
   printing one JSON line with its seconds and peak RSS (``VmHWM``):

   * ``ours``   — :func:`defectlab.dl.predict.predict_image` with its defaults: tiles of at
     most 1024 px sized to waste the least, >= 64 px overlap, raised-cosine blending, about a
     megapixel of tiles per batch, ONNX Runtime on the CPU (:mod:`defectlab.dl.engine`), one
     tile row of accumulators at a time;
   * ``whole``  — the naive baseline: the whole normalized image through the same net at once
     (plain PyTorch eager, ``torch.inference_mode``), arg-max;
   * ``tiles``  — the other naive baseline: non-overlapping 256 px tiles, no blending, eager,
     4 per batch.

4. **seams**: each variant's classes and foreground probability against the whole-image
   result (the reference where it fits in memory): the share of pixels whose class differs,
   in a 4 px band around the 256 px tile grid and elsewhere; and the mean step of the
   foreground probability across the grid lines divided by the mean step across all other
   lines (1.0 = no seam).
5. **1024 x 1024**: seconds per image of ours (default engine; the torch engine; the torch
   engine with 256 px tiles, the earlier default; the opt-in ``onnxruntime-int8`` engine and
   the share of pixels where its class equals float32's) vs plain eager whole-image inference
   of the same net (the issue's figure: <= 0.5 s per 1024² image on a 2-core CPU), median of
   3 runs.
6. **the limit** (``--limit``, also run by default): this machine's throughput of a 3×3
   convolution (128 → 128 channels, 256², batch 1) in each engine — PyTorch channels-last and
   ONNX Runtime, same threads as prediction — as GFLOP/s; the default U-Net's FLOPs per 1024²
   image counted by ``torch.utils.flop_counter.FlopCounterMode``; then per engine the net alone
   on one 1024² input and ``Model.predict`` end to end (instances included), each as seconds and
   as the fraction of that engine's conv limit it reaches (FLOPs / seconds / limit).
7. **scaling** (``--scaling 512,1024,2048,4096[,8192]``): ``Model.predict`` (default engine,
   instances included) on one synthetic image of each size, each in a child process: seconds
   and peak memory (VmHWM), and the 4096²/1024² time ratio (16 = linear in the pixels).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GRID = 256


def _rss_mb() -> float:
    """Peak resident memory of this process, MB. On Linux from ``VmHWM`` (``ru_maxrss`` keeps the
    parent's peak across fork + exec, and the parent trained a model)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


# ---------------------------------------------------------------------------------------------
# child processes: one variant each


def _normalized(image: np.ndarray) -> np.ndarray:
    from defectlab.imaging.io import normalize_minmax

    return normalize_minmax(image)


def run_variant(variant: str, model_dir: Path, image_path: Path, out: Path) -> None:
    import torch

    from defectlab.dl.model_io import load_model
    from defectlab.imaging.io import read_image

    model = load_model(model_dir, device="cpu")
    net = model.net.eval()
    image = read_image(image_path)
    start_mb = _rss_mb()
    t0 = time.perf_counter()
    if variant == "ours":
        pred = model.predict(image, probabilities=True, probabilities_dtype=np.float16, split=False)
        sem, fg = pred.semantic, 1.0 - pred.probabilities[0].astype(np.float32)
    elif variant == "whole":
        h, w = image.shape[:2]
        m = net.multiple
        x = np.pad(_normalized(image), ((0, -h % m), (0, -w % m)), mode="symmetric")
        with torch.inference_mode():
            probs = torch.softmax(net(torch.from_numpy(x)[None, None]), dim=1)[0, :, :h, :w]
        sem = probs.argmax(0).numpy().astype(np.uint8)
        fg = (1.0 - probs[0]).numpy()
        del probs
    elif variant == "tiles":
        h, w = image.shape[:2]
        x = np.pad(_normalized(image), ((0, -h % GRID), (0, -w % GRID)), mode="symmetric")
        sem = np.empty(x.shape, np.uint8)
        fg = np.empty(x.shape, np.float32)
        origins = [(r, c) for r in range(0, x.shape[0], GRID) for c in range(0, x.shape[1], GRID)]
        with torch.inference_mode():
            for i in range(0, len(origins), 4):
                batch = origins[i:i + 4]
                xb = torch.from_numpy(np.stack([x[r:r + GRID, c:c + GRID] for r, c in batch])[:, None])
                probs = torch.softmax(net(xb), dim=1)
                for (r, c), p in zip(batch, probs):
                    sem[r:r + GRID, c:c + GRID] = p.argmax(0).numpy()
                    fg[r:r + GRID, c:c + GRID] = (1.0 - p[0]).numpy()
        sem, fg = sem[:h, :w], fg[:h, :w]
    else:
        raise SystemExit(f"unknown variant {variant}")
    seconds = time.perf_counter() - t0
    peak_mb = _rss_mb()
    np.save(out.with_suffix(".sem.npy"), sem)
    np.save(out.with_suffix(".fg.npy"), fg.astype(np.float16))
    print(json.dumps({"variant": variant, "seconds": seconds, "start_mb": start_mb, "peak_mb": peak_mb,
                      "threads": torch.get_num_threads()}))


def run_1024(model_dir: Path, repeats: int) -> None:
    import torch

    from defectlab.dl.model_io import load_model
    from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item

    image, _ = synthetic_item(np.random.default_rng(7), SyntheticConfig(
        size_hw=(1024, 1024), n_cavities=48, n_loops=24, n_precipitates=24, n_lines=8, allow_overlap=True))
    model = load_model(model_dir, device="cpu")
    plain = load_model(model_dir, device="cpu").net.eval()  # untouched memory format
    x = torch.from_numpy(_normalized(image))[None, None]

    def eager() -> None:
        with torch.inference_mode():
            torch.softmax(plain(x), dim=1).argmax(1)

    def ours() -> None:
        model.predict(image, split=False)

    def ours_torch() -> None:
        model.predict(image, split=False, engine="torch")

    def ours_256() -> None:  # the settings before ONNX Runtime and large tiles
        model.predict(image, split=False, engine="torch", tile_size=256, batch_size=4)

    def ours_int8() -> None:  # opt-in: quantized to 8 bits, calibrated on the model's training crops
        model.predict(image, split=False, engine="onnxruntime-int8")

    def ours_instances() -> None:
        model.predict(image)

    fp32 = model.predict(image, split=False)
    out = {"engine": fp32.engine}
    variants = [("eager_whole", eager), ("ours", ours), ("ours_torch", ours_torch), ("ours_256", ours_256),
                ("ours_with_instances", ours_instances)]
    if model.calibration is not None:
        variants.append(("ours_int8", ours_int8))
        out["int8_same_class"] = float((model.predict(image, split=False, engine="onnxruntime-int8").semantic
                                        == fp32.semantic).mean())
    for name, fn in variants:
        out[name] = _median_time(fn, repeats)
    out["threads"] = torch.get_num_threads()
    print(json.dumps(out))


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_limit(model_dir: Path, repeats: int) -> None:
    """Conv GFLOP/s per engine, the net's FLOPs, the net and predict as fractions of the limit."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from defectlab.dl.engine import make_forward
    from defectlab.dl.model_io import load_model
    from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item

    c, side = 128, 256
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).eval()
    xc = np.random.default_rng(0).random((1, c, side, side), dtype=np.float32)
    conv_flops = 2 * c * c * 9 * side * side
    out: dict = {"threads": torch.get_num_threads(), "conv": f"3x3 {c}->{c} ch, {side}x{side}"}
    limit = {}
    for engine in ("torch", "onnxruntime"):
        f = make_forward(conv, torch.device("cpu"), engine=engine, example_shape=(1, c, 32, 32))
        limit[engine] = conv_flops / _median_time(lambda: f(xc), repeats) / 1e9
    out["limit_gflops"] = limit

    image, _ = synthetic_item(np.random.default_rng(7), SyntheticConfig(
        size_hw=(1024, 1024), n_cavities=48, n_loops=24, n_precipitates=24, n_lines=8, allow_overlap=True))
    model = load_model(model_dir, device="cpu")
    net = model.net.eval()
    x = _normalized(image).astype(np.float32)[None, None]
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(torch.from_numpy(x))
    net_flops = counter.get_total_flops()
    out["net_gflop_1024"] = net_flops / 1e9
    from defectlab.dl.engine import softmax_forward

    rows = {}
    for engine in ("torch", "onnxruntime"):
        f = softmax_forward(load_model(model_dir, device="cpu").net.eval(), torch.device("cpu"), engine=engine)
        net_s = _median_time(lambda: f(x), repeats)
        pred_s = _median_time(lambda: model.predict(image, engine=engine), repeats)
        rows[engine] = {"net_s": net_s, "predict_s": pred_s,
                        "net_fraction": net_flops / net_s / 1e9 / limit[engine],
                        "predict_fraction": net_flops / pred_s / 1e9 / limit[engine]}
    out["engines"] = rows
    print(json.dumps(out))


def run_scaling_one(model_dir: Path, size: int) -> None:
    from defectlab.dl.model_io import load_model
    from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item

    scale = (size / 512) ** 2
    image, _ = synthetic_item(np.random.default_rng(5), SyntheticConfig(
        size_hw=(size, size), n_cavities=round(12 * scale), n_loops=round(6 * scale),
        n_precipitates=round(6 * scale), n_lines=round(2 * scale), allow_overlap=True))
    model = load_model(model_dir, device="cpu")
    model.predict(image[:256, :256])  # warm-up: the engine's session, imports
    start_mb = _rss_mb()
    t0 = time.perf_counter()
    pred = model.predict(image)
    seconds = time.perf_counter() - t0
    print(json.dumps({"size": size, "seconds": seconds, "start_mb": start_mb, "peak_mb": _rss_mb(),
                      "engine": pred.engine}))


def print_limit(model_dir: Path, repeats: int) -> None:
    t = _child(["--limit-child", "--model", str(model_dir), "--repeats", str(repeats)])
    if "error" in t:
        print(f"\nlimit measurement failed: {t['error']}")
        return
    print(f"\nthe limit ({t['threads']} threads; load average {os.getloadavg()[0]:.2f}): {t['conv']} conv "
          + ", ".join(f"{e} {g:.1f} GFLOP/s" for e, g in t["limit_gflops"].items()))
    print(f"default U-Net: {t['net_gflop_1024']:.1f} GFLOP per 1024² image (FlopCounterMode)")
    print(f"{'engine':12} {'net s':>7} {'of limit':>9} {'predict s':>10} {'of limit':>9} {'predict/net':>12}")
    for e, r in t["engines"].items():
        print(f"{e:12} {r['net_s']:7.2f} {100 * r['net_fraction']:8.0f}% {r['predict_s']:10.2f} "
              f"{100 * r['predict_fraction']:8.0f}% {r['predict_s'] / r['net_s']:11.2f}x")


def print_scaling(model_dir: Path, sizes: list[int]) -> None:
    print(f"\npredict end to end by size (default engine, instances included; load average "
          f"{os.getloadavg()[0]:.2f}):")
    print(f"{'size':>6} {'seconds':>8} {'s/MP':>6} {'peak MB':>8}")
    times = {}
    for size in sizes:
        r = _child(["--scaling-child", str(size), "--model", str(model_dir)])
        if "error" in r:
            print(f"{size:6d} failed: {r['error']}")
            continue
        times[size] = r["seconds"]
        print(f"{size:6d} {r['seconds']:8.2f} {r['seconds'] / (size * size / 1e6):6.2f} {r['peak_mb']:8.0f}"
              f"   ({r['engine']})", flush=True)
    if 4096 in times and 1024 in times:
        print(f"4096² / 1024² time: {times[4096] / times[1024]:.1f}x (16x = linear in the pixels)")


# ---------------------------------------------------------------------------------------------
# the parent


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _train_model(work: Path, epochs: int) -> Path:
    from defectlab.dl.train import train_unet
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    ds = make_synthetic_dataset(work / "train_export", n_images=6, config=SyntheticConfig(size_hw=(512, 512)), seed=1)
    t0 = time.perf_counter()
    result = train_unet(ds, work / "model", epochs=epochs, batch_size=8, val_split=0.2, seed=0, progress=True,
                        plot=False)
    print(f"trained the default U-Net in {time.perf_counter() - t0:.0f} s: {result}", flush=True)
    return work / "model"


def _grid_lines(variant: str, length: int, model_dir: Path) -> list[int]:
    """Where a variant's tiles start or end along an axis of ``length`` px (seams would sit there)."""
    if variant == "tiles":
        return list(range(GRID, length, GRID))
    if variant == "whole":
        return []
    from defectlab.dl.model_io import load_model
    from defectlab.dl.tiles import tile_plan

    model = load_model(model_dir, device="cpu")
    p = tile_plan(length, model.arch.tile(model), model.config.overlap, model.net.multiple)
    return sorted({v for o in p.origins for v in (o, o + p.tile) if 0 < v < length})


def _seams(sem: np.ndarray, fg: np.ndarray, ref_sem: np.ndarray | None, lines: list[int]) -> dict:
    """Class differences near the tile lines and elsewhere; probability steps across them."""
    h, w = sem.shape
    near_rows = np.zeros(h, bool)
    near_cols = np.zeros(w, bool)
    for g in lines:
        near_rows[max(0, g - 2):g + 2] = True
        near_cols[max(0, g - 2):g + 2] = True
    band = near_rows[:, None] | near_cols[None, :]
    out: dict = {"lines": len(lines)}
    if ref_sem is not None:
        diff = sem != ref_sem
        out["differ_band"] = float(diff[band].mean()) if band.any() else float("nan")
        out["differ_elsewhere"] = float(diff[~band].mean())
    if not lines:
        out["seam_ratio"] = float("nan")
        return out
    fg = fg.astype(np.float32)
    step_x = np.abs(np.diff(fg, axis=1))  # step between column c-1 and c sits at index c-1
    step_y = np.abs(np.diff(fg, axis=0))
    on_x = np.zeros(w - 1, bool)
    on_x[[g - 1 for g in lines if g < w]] = True
    on_y = np.zeros(h - 1, bool)
    on_y[[g - 1 for g in lines if g < h]] = True
    grid = np.concatenate([step_x[:, on_x].ravel(), step_y[on_y, :].ravel()])
    other = np.concatenate([step_x[:, ~on_x].ravel(), step_y[~on_y, :].ravel()])
    out["seam_ratio"] = float(grid.mean() / max(other.mean(), 1e-12))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="side of the square test image, px")
    ap.add_argument("--model", type=Path, help="a U-Net model folder (default: train one quickly)")
    ap.add_argument("--train-epochs", type=int, default=6, help="epochs of the quick training")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the 1024 x 1024 timing")
    ap.add_argument("--skip-whole", action="store_true", help="skip the whole-image baseline (memory)")
    ap.add_argument("--workdir", type=Path, help="keep everything here")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--timing-1024", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--limit", action="store_true", help="only the limit: conv GFLOP/s, net FLOPs, fractions")
    ap.add_argument("--scaling", help="only predict by size: comma-separated sides, e.g. 512,1024,2048,4096,8192")
    ap.add_argument("--limit-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scaling-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.limit_child:
        run_limit(args.model, args.repeats)
        return
    if args.scaling_child:
        run_scaling_one(args.model, args.scaling_child)
        return
    if args.limit or args.scaling:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
        work.mkdir(parents=True, exist_ok=True)
        model_dir = args.model or _train_model(work, args.train_epochs)
        if args.limit:
            print_limit(model_dir, args.repeats)
        if args.scaling:
            print_scaling(model_dir, [int(v) for v in args.scaling.split(",")])
        return
    if args.variant:
        run_variant(args.variant, args.model, args.image, args.out)
        return
    if args.timing_1024:
        run_1024(args.model, args.repeats)
        return

    from defectlab.imaging.io import write_image
    from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = args.model or _train_model(work, args.train_epochs)
    scale = (args.size / 512) ** 2
    # overlapping placement: the non-overlapping one searches for room and is slow for thousands of defects
    cfg = SyntheticConfig(size_hw=(args.size, args.size), n_cavities=round(12 * scale), n_loops=round(6 * scale),
                          n_precipitates=round(6 * scale), n_lines=round(2 * scale), allow_overlap=True)
    image, _ = synthetic_item(np.random.default_rng(3), cfg)
    image_path = work / "image.png"
    write_image(image_path, image)
    mp = args.size * args.size / 1e6
    print(f"image {args.size} x {args.size} ({mp:.1f} MP), model {model_dir}, {os.cpu_count()} CPU(s)", flush=True)

    variants = ["ours", "tiles"] + ([] if args.skip_whole else ["whole"])
    results = {}
    for v in variants:
        results[v] = _child(["--variant", v, "--model", str(model_dir), "--image", str(image_path),
                             "--out", str(work / v)])
        print(f"  {v}: {results[v]}", flush=True)
    ref = None
    if "whole" in results and "error" not in results["whole"]:
        ref = np.load(work / "whole.sem.npy")
    print()
    print(f"{'variant':8} {'seconds':>8} {'MP/s':>7} {'start MB':>9} {'peak MB':>8} {'class differs':>14} "
          f"{'(elsewhere)':>12} {'seam ratio':>11}")
    print("-" * 84)
    for v in variants:
        r = results[v]
        if "error" in r:
            print(f"{v:8} failed: {r['error']}")
            continue
        s = _seams(np.load(work / f"{v}.sem.npy"), np.load(work / f"{v}.fg.npy"), ref,
                   _grid_lines(v, args.size, model_dir))
        band = f"{100 * s['differ_band']:.3f}%" if "differ_band" in s and s["lines"] else "-"
        other = f"{100 * s['differ_elsewhere']:.3f}%" if "differ_elsewhere" in s else "-"
        print(f"{v:8} {r['seconds']:8.2f} {mp / r['seconds']:7.2f} {r['start_mb']:9.0f} {r['peak_mb']:8.0f} "
              f"{band:>14} {other:>12} {s['seam_ratio']:11.2f}")
    print("\n(class differs: share of pixels whose class differs from the whole-image prediction, in a 4 px band "
          "around the lines where the variant's tiles start or end, and elsewhere; seam ratio: mean "
          "foreground-probability step across those lines / across all other lines, 1.0 = no seam)")
    t = _child(["--timing-1024", "--model", str(model_dir), "--repeats", str(args.repeats)])
    if "error" in t:
        print(f"\n1024 x 1024 timing failed: {t['error']}")
        return
    print(f"\n1024 x 1024, median of {args.repeats} ({t['threads']} torch threads):")
    print(f"  plain eager, whole image at once          {t['eager_whole']:.2f} s")
    for key, what in (("ours", f"ours, default ({t['engine']}, tiles <= 1024)"),
                      ("ours_torch", "ours, torch engine (channels-last)"),
                      ("ours_256", "ours, torch engine, 256 px tiles x 4")):
        print(f"  {what:41} {t[key]:.2f} s   speedup vs eager {t['eager_whole'] / t[key]:.2f}x")
    print(f"  ours + instances (watershed split)        {t['ours_with_instances']:.2f} s")
    if "ours_int8" in t:
        print(f"  ours, onnxruntime-int8 (opt-in)           {t['ours_int8']:.2f} s   speedup vs eager "
              f"{t['eager_whole'] / t['ours_int8']:.2f}x; same class as float32 on "
              f"{100 * t['int8_same_class']:.2f} % of the pixels")
    print_limit(model_dir, args.repeats)

if __name__ == "__main__":
    main()
