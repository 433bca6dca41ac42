"""The checks that need a GPU: train and predict a U-Net and a Mask R-CNN on CUDA, the same
model's predictions on the CPU, and per-image times. CI never has a GPU; run this by hand on
a machine with one::

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu_results        # ~5 min on one H100/H200
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --quick      # the same code path on a CPU

What it does, each step timed and printed as one JSON line (and all of them in
``OUT/gpu_check.json``):

1. **env**: torch version, the device's name, CUDA/cuDNN versions.
2. **unet**: synthetic micrographs (``--n-train`` of 512², ``--n-test`` more with another
   seed) → ``train_unet(device=…)`` → ``defectlab.predict`` on the device with CVAT
   pre-labels → ``defectlab.evaluate`` against the test images' true labels (pixel IoU,
   object F1 at IoU ≥ 0.5). The same model is then loaded on the CPU and predicts the test
   images again (ONNX Runtime and PyTorch engines): the share of pixels whose class differs
   from the GPU's. Last, a 1024² image: seconds per image on the device for ours (tiled) and
   for plain eager inference of the whole image, median of 5.
3. **maskrcnn**: the same for a ResNet-18-FPN Mask R-CNN (from scratch), with its per-image
   time for a 1024² micrograph on the device and on 2 CPU threads.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

RESULTS: dict[str, object] = {}


def report(step: str, **values: object) -> None:
    RESULTS[step] = values
    print(json.dumps({"step": step, **values}, default=str), flush=True)


def median_time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def data(work: Path, n_train: int, n_test: int):
    import defectlab

    train = defectlab.synthetic(work / "train", n=n_train, size=512, seed=0)
    test = defectlab.synthetic(work / "test", n=n_test, size=512, seed=1)
    return train, test


def score(model, work: Path, name: str, test_dir: Path) -> dict:
    import defectlab

    t0 = time.perf_counter()
    rep = defectlab.predict(model, test_dir / "images", work / f"pred_{name}", prelabels="cvat", progress=False)
    seconds = time.perf_counter() - t0
    ev = defectlab.evaluate(rep.prelabels, test_dir, progress=False, figures=False)
    o = ev.overall
    return {"predict_s_per_image": round(seconds / len(rep.images), 3), "pixel_iou": round(o["pixel_iou"], 4),
            "precision": round(o["precision"], 4), "recall": round(o["recall"], 4), "f1": round(o["f1"], 4),
            "engine": rep.images[0].get("engine")}


def class_differs(model_dir: Path, test_dir: Path, ref_dir: Path, engine: str) -> float:
    from PIL import Image

    from defectlab.dl.model_io import load_model

    cpu = load_model(model_dir, device="cpu")
    diffs = []
    for p in sorted((test_dir / "images").glob("*.png")):
        sem = cpu.predict(p, engine=engine, split=False).semantic
        ref = np.asarray(Image.open(ref_dir / "masks" / p.name))
        diffs.append(float((sem != ref).mean()))
    return float(np.mean(diffs))


def big_image():
    from defectlab.preparation.synthetic import SyntheticConfig, synthetic_item

    image, _ = synthetic_item(np.random.default_rng(7), SyntheticConfig(
        size_hw=(1024, 1024), n_cavities=48, n_loops=24, n_precipitates=24, n_lines=8, allow_overlap=True))
    return image


def check_unet(work: Path, train, test_dir: Path, device: str, epochs: int) -> None:
    import torch

    import defectlab
    from defectlab.imaging.io import normalize_minmax

    t0 = time.perf_counter()
    run = defectlab.train_unet(train, work / "unet", epochs=epochs, device=device, progress=False, plot=True)
    train_s = time.perf_counter() - t0
    model = run.model
    report("unet_train", device=str(model.device), seconds=round(train_s, 1), epochs=len(run.history),
           best_val_iou=round(max(h["val_mean_iou"] for h in run.history), 4))
    report("unet_predict_device", **score(model, work, "unet", test_dir))
    for engine in ("onnxruntime", "torch"):
        report(f"unet_cpu_{engine}_vs_device", class_differs=class_differs(work / "unet", test_dir,
                                                                           work / "pred_unet", engine))
    image = big_image()
    dev = model.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    x = torch.from_numpy(normalize_minmax(image))[None, None].to(dev)
    plain = defectlab.load_model(work / "unet", device=device).net.eval()

    def eager():
        with torch.inference_mode():
            torch.softmax(plain(x), dim=1).argmax(1).cpu()

    report("unet_1024", device=str(dev),
           ours_s=round(median_time(lambda: model.predict(image, split=False), 5, sync), 4),
           ours_with_instances_s=round(median_time(lambda: model.predict(image), 5, sync), 4),
           eager_whole_s=round(median_time(eager, 5, sync), 4))


def check_maskrcnn(work: Path, train, test_dir: Path, device: str, epochs: int) -> None:
    import torch

    import defectlab

    t0 = time.perf_counter()
    run = defectlab.train_maskrcnn(train, work / "maskrcnn", epochs=epochs, device=device, backbone="resnet18",
                                   progress=False, plot=True)
    report("maskrcnn_train", device=str(run.model.device), seconds=round(time.perf_counter() - t0, 1),
           epochs=len(run.history), last=run.history[-1])
    report("maskrcnn_predict_device", **score(run.model, work, "maskrcnn", test_dir))
    image = big_image()
    dev = run.model.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    pred = run.model.predict(image)
    out = {"device": str(dev), "instances": pred.n_instances,
           "device_s": round(median_time(lambda: run.model.predict(image), 3, sync), 3)}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cpu = defectlab.load_model(work / "maskrcnn", device="cpu")
        t0 = time.perf_counter()
        cpu.predict(image)
        out["cpu_2_threads_s"] = round(time.perf_counter() - t0, 2)
    finally:
        torch.set_num_threads(threads)
    report("maskrcnn_1024", **out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, help="write gpu_check.json and the training curves here")
    ap.add_argument("--n-train", type=int, default=8)
    ap.add_argument("--n-test", type=int, default=6)
    ap.add_argument("--unet-epochs", type=int, default=30)
    ap.add_argument("--maskrcnn-epochs", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="2 images each, 1 epoch: the code path only")
    ap.add_argument("--skip", nargs="*", default=[], choices=["unet", "maskrcnn"])
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.unet_epochs, args.maskrcnn_epochs = 2, 2, 1, 1

    import torch

    env = {"torch": torch.__version__, "device": args.device}
    if torch.cuda.is_available():
        env |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version()}
    report("env", **env)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    train, test = data(work, args.n_train, args.n_test)
    for name, fn, epochs in (("unet", check_unet, args.unet_epochs), ("maskrcnn", check_maskrcnn,
                                                                       args.maskrcnn_epochs)):
        if name in args.skip:
            continue
        try:
            fn(work, train, work / "test", args.device, epochs)
        except Exception:  # noqa: BLE001 - report and go on to the next check
            report(f"{name}_failed", error=traceback.format_exc())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(json.dumps(RESULTS, indent=2, default=str) + "\n")
        for name in ("unet", "maskrcnn"):
            curve = work / name / "training_curve.png"
            if curve.exists():
                (args.out / f"{name}_training_curve.png").write_bytes(curve.read_bytes())


if __name__ == "__main__":
    main()
