"""``defectlab train`` and ``defectlab predict``: one command each, on CPU or GPU.

Thin wrappers over :func:`defectlab.dl.train.train_unet`, :func:`~defectlab.dl.train.train_maskrcnn`
and :func:`defectlab.dl.predict.predict_images` (same names, same defaults). torch is
imported only when a command runs.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from defectlab.raster.split import DEFAULT_NECK_RATIO


class Arch(str, Enum):
    unet = "unet"
    maskrcnn = "maskrcnn"


class Loss(str, Enum):
    ce = "ce"
    dice = "dice"
    ce_dice = "ce+dice"


class Backbone(str, Enum):
    resnet50 = "resnet50"
    resnet18 = "resnet18"


class Prelabels(str, Enum):
    cvat = "cvat"
    coco = "coco"


class Schedule(str, Enum):
    plateau = "plateau"
    onecycle = "onecycle"


class Engine(str, Enum):
    auto = "auto"
    torch = "torch"
    onnxruntime = "onnxruntime"
    onnxruntime_int8 = "onnxruntime-int8"


DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.")]


def train(
    arch: Annotated[Arch, typer.Argument(help="unet (semantic segmentation) or maskrcnn (instances).")],
    data: Annotated[Path, typer.Argument(help="A write_unet / write_maskrcnn folder, or any labeling export.")],
    out: Annotated[Path, typer.Option("--out", help="The model folder to write.")],
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Most epochs [unet 50, maskrcnn 20].")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Samples per step [unet 8, maskrcnn 2].")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate [unet 1e-3 Adam, maskrcnn 1e-4 AdamW].")] = None,
    loss: Annotated[Loss, typer.Option(help="unet: ce, dice or ce+dice.")] = Loss.ce_dice,
    val_split: Annotated[float, typer.Option("--val-split", help="Fraction of images held out (0: validate on the training images).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed (split, crops, initial weights).")] = 0,
    device: DeviceOpt = "auto",
    tile: Annotated[Optional[int], typer.Option(help="Training crop and prediction tile, px [unet 256, maskrcnn 512].")] = None,
    patience: Annotated[Optional[int], typer.Option(min=1, help="Epochs without improvement before stopping [unet 10, maskrcnn 5].")] = None,
    base_filters: Annotated[int, typer.Option("--base-filters", min=1, help="unet: filters of the first level (16: ~0.63 M parameters; 32, 64: wider).")] = 16,
    depth: Annotated[int, typer.Option(min=1, help="unet: number of poolings.")] = 3,
    backbone: Annotated[Backbone, typer.Option(help="maskrcnn: resnet50 or the lighter resnet18 (FPN).")] = Backbone.resnet50,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="maskrcnn: start from torchvision's weights (downloads once; needs internet). Default: from scratch.")] = False,
    steps_per_epoch: Annotated[Optional[int], typer.Option("--steps-per-epoch", min=1, help="Batches per epoch (default: about one pass over the pixels).")] = None,
    schedule: Annotated[Schedule, typer.Option(help="unet: learning rate: plateau (halve when validation stalls) or onecycle (warm up to --lr, anneal; best for short runs).")] = Schedule.plateau,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder holding the image files, if not beside the export.")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw training_curve.png.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
) -> None:
    """Train a U-Net or a Mask R-CNN on labeled micrographs; writes a model folder."""
    from defectlab.cli import console, fail
    from defectlab.errors import DefectlabError

    try:
        from defectlab.dl import train as dl_train
    except ImportError as err:
        fail(err)
    opts: dict = dict(val_split=val_split, seed=seed, device=device, images=images, overwrite=overwrite,
                      progress=True, plot=not no_plot)
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("tile_size", tile),
                       ("patience", patience), ("steps_per_epoch", steps_per_epoch)):
        if value is not None:
            opts[key] = value
    try:
        if arch is Arch.unet:
            result = dl_train.train_unet(data, out, loss=loss.value, base_filters=base_filters, depth=depth,
                                         schedule=schedule.value, **opts)
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the notes below say it
                result = dl_train.train_maskrcnn(data, out, backbone=backbone.value, pretrained=pretrained, **opts)
    except (DefectlabError, ValueError) as err:
        fail(err)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    best = result.best
    ious = ", ".join(f"{k} {v:.3f}" for k, v in best["val_iou"].items())
    console.print(f"[green]trained[/] {result}", highlight=False)
    console.print(f"  validation IoU at the best epoch: {ious or '-'}"
                  + (f"; object F1 {best['val_f1']:.3f}" if "val_f1" in best else ""), highlight=False)


def predict(
    model: Annotated[Path, typer.Argument(help="A model folder (config.json + weights.pt).")],
    images: Annotated[List[Path], typer.Argument(help="Image files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    tile: Annotated[Optional[int], typer.Option(help="Largest tile, px [unet: 1024 or the model's tile if larger; maskrcnn: the model's].")] = None,
    overlap: Annotated[Optional[int], typer.Option(help="Least tile overlap, px (default: the model's).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Tiles through the net at once [about 1 megapixel's worth].")] = None,
    engine: Annotated[Engine, typer.Option(help="unet: what runs the net; auto = ONNX Runtime on a CPU if installed, else PyTorch; onnxruntime-int8: 8-bit, faster, slightly different.")] = Engine.auto,
    neck_ratio: Annotated[float, typer.Option("--neck-ratio", min=0.01, max=1.0, help="unet: split touching objects whose neck is narrower than this x the smaller one's radius (higher splits more; overlapping bubbles: 0.9).")] = DEFAULT_NECK_RATIO,
    min_area: Annotated[int, typer.Option("--min-area", min=1, help="unet: objects under this many pixels get no instance (they stay in the class mask).")] = 4,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="unet: also write probabilities/<stem>.npy (C, H, W) float16.")] = False,
    prelabels: Annotated[Optional[List[Prelabels]], typer.Option("--prelabels", help="Also write pre-labels: cvat (CVAT for images 1.1 XML) and/or coco (COCO JSON); repeat for both.")] = None,
    device: DeviceOpt = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Predict micrographs of any size: class masks, instance TIFFs, overlays, pre-labels for CVAT."""
    from defectlab.cli import console, fail
    from defectlab.errors import DefectlabError

    try:
        from defectlab.dl.model_io import load_model
        from defectlab.dl.predict import predict_images
    except ImportError as err:
        fail(err)
    try:
        loaded = load_model(model, device=device)
        report = predict_images(loaded, images, out, tile=tile, overlap=overlap, batch_size=batch_size,
                                engine=engine.value, neck_ratio=neck_ratio, min_area_px=min_area, probabilities=probabilities, prelabels=[p.value for p in prelabels or []],
                                overwrite=overwrite, progress=True)
    except (DefectlabError, ValueError) as err:
        fail(err)
    console.print(f"[green]predicted[/] {report}", highlight=False)
    totals: dict[str, int] = {}
    for im in report.images:
        for name, n in im["instances"].items():
            totals[name] = totals.get(name, 0) + n
    console.print("  instances: " + ", ".join(f"{name} {n}" for name, n in totals.items()), highlight=False)
    if report.prelabels:
        console.print(f"  pre-labels for CVAT: {report.prelabels} (task → Actions → Upload annotations → CVAT 1.1)",
                      highlight=False)
    if report.prelabels_coco:
        console.print(f"  pre-labels as COCO: {report.prelabels_coco}", highlight=False)
    masks = [n for n in report.notes if n.code == "prelabel-mask"]
    if masks:
        console.print(f"  [yellow]note:[/] {len(masks)} instance(s) written as CVAT masks, not polygons "
                      f"(a hole, or several pieces), e.g. {masks[0].item} {masks[0].where}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``predict`` to the ``defectlab`` command line."""
    app.command("train")(train)
    app.command("predict")(predict)
