"""Train the U-Net that ``defectlab train unet … --init synthetic`` starts from, reproducibly, offline.

Run from the repository root (about 15 CPU-minutes; a GPU takes a minute)::

    .venv/bin/python scripts/pretrain_synthetic.py --out /tmp/unet-synthetic
    .venv/bin/python scripts/pretrain_synthetic.py --out /tmp/unet-synthetic --install   # replace the shipped one

1. ``N`` (400) pretraining micrographs of 256² from :func:`defectlab.preparation.synthetic_pretrain.make_pretrain_dataset`
   (seed 0): cavities under and over focus, loops, precipitates, dislocation lines; contrast,
   shot and read noise, point spread, thickness gradients, 8- and 16-bit — with exact labels.
2. :func:`defectlab.train_unet` with the default net (16 filters, depth 3, dilated bottleneck),
   the recipe below (seed 0, no time budget: the same steps on any machine), 10 % of the
   images held out for validation.
3. With ``--install``: the model folder's ``config.json`` and its weights, stored as float16
   (half the size; ``--init`` loads them into float32 nets), replace
   ``src/defectlab/dl/weights/unet-synthetic/``; the README there records the validation IoU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

#: The recipe of the shipped weights.
RECIPE = dict(epochs=12, steps_per_epoch=50, batch_size=8, tile_size=256, lr=3e-3, schedule="onecycle",
              val_split=0.1, time_budget_s=float("inf"), patience=100, seed=0)
N_IMAGES = 400
SHIPPED = Path(__file__).resolve().parents[1] / "src" / "defectlab" / "dl" / "weights" / "unet-synthetic"


def install(model: Path, dest: Path = SHIPPED) -> Path:
    """Copy ``model``'s config and its weights as float16 into ``dest`` (replaced)."""
    import torch

    state = torch.load(model / "weights.pt", map_location="cpu", weights_only=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    dest.mkdir(parents=True, exist_ok=True)
    torch.save(half, dest / "weights.pt")
    config = json.loads((model / "config.json").read_text())
    config["training"].pop("train_images", None)  # 360 names: not needed to start from it
    config["training"].pop("val_images", None)
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--n-images", type=int, default=N_IMAGES)
    p.add_argument("--data", type=Path, help="keep the pretraining set here (default: a temporary folder)")
    p.add_argument("--install", action="store_true", help="replace the shipped weights with the result")
    args = p.parse_args()

    import defectlab
    from defectlab.preparation.synthetic_pretrain import make_pretrain_dataset

    tmp = Path(tempfile.mkdtemp(prefix="defectlab-pretrain-"))
    data = args.data or tmp / "pretrain"
    try:
        make_pretrain_dataset(data, n_images=args.n_images, seed=0, progress=True)
        run = defectlab.train_unet(data, args.out, **RECIPE)
        print(run)
        print("validation IoU at the best epoch:", run.best["val_iou"])
        if args.install:
            print("installed", install(args.out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
