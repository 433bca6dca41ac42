"""nnU-Net v2's 2-D configuration on a folder of PNGs, with a wall-clock training budget: the peer
of ``bench_auto.py --nnunet``.

Run with the Python of ``.venv-nnunet`` (``make bench-nnunet-env``), never the project's: this
file imports nnunetv2 and torch, nothing of defectlab::

    .venv-nnunet/bin/python benchmarks/peer_nnunet.py DATA --out OUT --budget 600

``DATA`` holds ``train/images/*.png`` and ``train/masks/*.png`` (the same names; class index per
pixel, 0 = background), ``test/images/*.png`` and ``classes.json`` (``{"bubble": 1, ...}``). The
script

1. writes nnU-Net's raw dataset ``Dataset<ID>_<name>/{imagesTr,labelsTr,dataset.json}`` (2-D
   PNGs read by its ``NaturalImage2DIO``; one channel named ``"TEM"``, so z-score normalization)
   under ``OUT/nnunet/raw``; ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` point
   into ``OUT/nnunet``;
2. runs nnU-Net's fingerprint extraction, experiment planning and preprocessing of the ``2d``
   configuration (``nnunetv2.experiment_planning.plan_and_preprocess_api``: what
   ``nnUNetv2_plan_and_preprocess -c 2d`` does);
3. trains configuration ``2d``, fold ``all``, on the CPU with :class:`nnUNetTrainerBudget`:
   nnU-Net's own trainer (its plans, patch size, batch size, augmentation, Dice + CE loss with
   deep supervision, SGD with its poly schedule over 1000 epochs of 250 iterations) of which
   only the stopping changes: after every training or validation iteration it looks at the
   clock, and once ``--budget`` seconds have passed since training started it stops, and saves
   ``checkpoint_final.pth`` as a finished training does (the learning rate therefore never got
   far down its 1000-epoch schedule);
4. predicts ``test/images`` with ``nnUNetPredictor`` from that checkpoint (its defaults: sliding
   window, step 0.5, Gaussian weighting, test-time mirroring) and writes ``OUT/masks/<name>.png``
   (class index);
5. prints and writes ``OUT/summary.json``: epochs and iterations done, minutes of
   preprocessing, training and prediction, the plan's patch and batch size.

Trainer and predictor are driven through nnU-Net's Python API (the trainer class is passed as an
object, not looked up by name, so nothing is copied into nnU-Net's package).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

#: The dataset id nnU-Net's folders are named by (Dataset<ID>_<name>).
DATASET_ID = 517


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path, help="folder with train/images, train/masks, test/images, classes.json")
    p.add_argument("--out", type=Path, required=True, help="output folder (masks/, summary.json, nnunet/)")
    p.add_argument("--budget", type=float, required=True, help="training wall-clock seconds")
    p.add_argument("--name", default="defectlab", help="dataset name (letters, digits, _)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")),
                   help="torch threads (default: OMP_NUM_THREADS or 2)")
    p.add_argument("--da-processes", type=int, default=1,
                   help="nnU-Net's augmentation worker processes (nnUNet_n_proc_DA; 0 = in the training process)")
    args = p.parse_args(argv)
    for sub in ("train/images", "train/masks", "test/images"):
        if not (args.data / sub).is_dir():
            p.error(f"{args.data / sub}: no such folder")
    if not (args.data / "classes.json").is_file():
        p.error(f"{args.data / 'classes.json'}: no such file (label name -> class index)")
    if args.budget <= 0:
        p.error(f"--budget must be > 0, got {args.budget}")
    return args


def write_raw(data: Path, raw: Path, name: str) -> tuple[Path, dict[str, str]]:
    """nnU-Net's raw dataset of ``data/train``; its folder and case id -> image name of the test images
    (copied to ``raw/../test_input`` as ``<case>_0000.png``)."""
    folder = raw / f"Dataset{DATASET_ID:03d}_{name}"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    images = sorted((data / "train" / "images").glob("*.png"))
    if not images:
        raise SystemExit(f"{data / 'train' / 'images'}: no PNG images")
    for i, image in enumerate(images):
        mask = data / "train" / "masks" / image.name
        if not mask.is_file():
            raise SystemExit(f"{mask}: no mask for training image {image.name}")
        shutil.copyfile(image, folder / "imagesTr" / f"case_{i:03d}_0000.png")
        shutil.copyfile(mask, folder / "labelsTr" / f"case_{i:03d}.png")
    classes = json.loads((data / "classes.json").read_text())
    labels = {"background": 0, **{str(k): int(v) for k, v in sorted(classes.items(), key=lambda kv: kv[1])}}
    if sorted(labels.values()) != list(range(len(labels))):
        raise SystemExit(f"{data / 'classes.json'}: class indices must be 1..N, got {classes}")
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    generate_dataset_json(str(folder), channel_names={0: "TEM"}, labels=labels, num_training_cases=len(images),
                          file_ending=".png", dataset_name=folder.name, overwrite_image_reader_writer="NaturalImage2DIO")
    test_in = raw.parent / "test_input"
    test_in.mkdir()
    cases = {}
    for i, image in enumerate(sorted((data / "test" / "images").glob("*.png"))):
        case = f"test_{i:03d}"
        shutil.copyfile(image, test_in / f"{case}_0000.png")
        cases[case] = image.name
    if not cases:
        raise SystemExit(f"{data / 'test' / 'images'}: no PNG images")
    return folder, cases


def budget_trainer(budget_s: float):
    """nnU-Net's trainer class with a wall-clock stop (everything else its own)."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class nnUNetTrainerBudget(nnUNetTrainer):
        """``nnUNetTrainer.run_training``, stopped ``budget_s`` seconds after it began."""

        budget_seconds = budget_s

        def run_training(self):
            start = time.perf_counter()
            self.iterations_done = 0
            self.epochs_done = 0
            self.stopped_by_budget = False

            def over() -> bool:
                return time.perf_counter() - start >= self.budget_seconds

            self.on_train_start()
            for _epoch in range(self.current_epoch, self.num_epochs):
                self.on_epoch_start()
                self.on_train_epoch_start()
                train_outputs = []
                for _ in range(self.num_iterations_per_epoch):
                    train_outputs.append(self.train_step(next(self.dataloader_train)))
                    self.iterations_done += 1
                    if over():
                        break
                self.on_train_epoch_end(train_outputs)
                if over() and len(train_outputs) < self.num_iterations_per_epoch:
                    self.stopped_by_budget = True  # a partial epoch: no validation pass, no epoch end
                    break
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    val_outputs = []
                    for _ in range(self.num_val_iterations_per_epoch):
                        val_outputs.append(self.validation_step(next(self.dataloader_val)))
                        if over():
                            break
                    self.on_validation_epoch_end(val_outputs)
                self.on_epoch_end()
                self.epochs_done += 1
                if over():
                    self.stopped_by_budget = True
                    break
            self.on_train_end()  # saves checkpoint_final.pth
            self.train_seconds = time.perf_counter() - start

    return nnUNetTrainerBudget


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = args.out
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"--out {out}: exists and is not empty")
    base = out / "nnunet"
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        (base / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(base / sub)  # nnunetv2.paths reads them on import
    os.environ["nnUNet_n_proc_DA"] = str(args.da_processes)
    os.environ.setdefault("nnUNet_compile", "f")

    import torch

    torch.set_num_threads(args.threads)
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                      preprocess)
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    raw_folder, cases = write_raw(args.data, base / "raw", args.name)
    t0 = time.perf_counter()
    extract_fingerprints([DATASET_ID], num_processes=1, check_dataset_integrity=True, show_progress_bar=False)
    plan_experiments([DATASET_ID])
    preprocess([DATASET_ID], configurations=("2d",), num_processes=(1,), show_progress_bar=False)
    prep_s = time.perf_counter() - t0

    from batchgenerators.utilities.file_and_folder_operations import load_json

    name = convert_id_to_dataset_name(DATASET_ID)
    pre = base / "preprocessed" / name
    plans = load_json(str(pre / "nnUNetPlans.json"))
    dataset_json = load_json(str(pre / "dataset.json"))
    plans["continue_training"] = False  # as nnunetv2.run.run_training.get_trainer_from_args sets it
    trainer_cls = budget_trainer(args.budget)
    trainer = trainer_cls(plans=plans, configuration="2d", fold="all", dataset_json=dataset_json,
                          device=torch.device("cpu"))
    trainer.run_training()
    cfg = plans["configurations"]["2d"]
    print(f"nnU-Net 2d: {trainer.iterations_done} training iterations ({trainer.epochs_done} full epochs of "
          f"{trainer.num_iterations_per_epoch}; nnU-Net's default is {trainer.num_epochs} epochs), "
          f"{trainer.train_seconds / 60:.1f} min; patch {cfg['patch_size']}, batch {cfg['batch_size']}", flush=True)

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    t1 = time.perf_counter()
    checkpoint = torch.load(Path(trainer.output_folder) / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
    predictor = nnUNetPredictor(device=torch.device("cpu"), perform_everything_on_device=False, allow_tqdm=False)
    trainer.set_deep_supervision_enabled(False)  # as its perform_actual_validation does: one output
    network = trainer.network._orig_mod if hasattr(trainer.network, "_orig_mod") else trainer.network
    network.load_state_dict(checkpoint["network_weights"])
    plans_manager = PlansManager(plans)
    predictor.manual_initialization(network, plans_manager, plans_manager.get_configuration("2d"),
                                    [checkpoint["network_weights"]], dataset_json, type(trainer).__name__,
                                    checkpoint.get("inference_allowed_mirroring_axes"))
    pred_dir = base / "predictions"
    predictor.predict_from_files(str(base / "test_input"), str(pred_dir), save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=1, num_processes_segmentation_export=1)
    masks = out / "masks"
    masks.mkdir()
    for case, image_name in cases.items():
        shutil.copyfile(pred_dir / f"{case}.png", masks / image_name)
    predict_s = time.perf_counter() - t1
    summary = {"iterations": trainer.iterations_done, "epochs": trainer.epochs_done,
               "iterations_per_epoch": trainer.num_iterations_per_epoch, "default_epochs": trainer.num_epochs,
               "stopped_by_budget": trainer.stopped_by_budget, "budget_s": args.budget,
               "preprocess_minutes": prep_s / 60, "train_minutes": trainer.train_seconds / 60,
               "predict_minutes": predict_s / 60, "patch_size": cfg["patch_size"], "batch_size": cfg["batch_size"],
               "torch_threads": torch.get_num_threads(), "nnunetv2": _version("nnunetv2"), "torch": torch.__version__}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary), flush=True)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
