"""``python -m defectlab.dl.stardist train|predict``: the star model's own command line.

Until the architecture registry lands (then it is ``defectlab train stardist`` and
``defectlab predict``, the architecture read from the model folder), these two commands are
the door to :func:`~defectlab.dl.stardist.train_stardist` and
:func:`~defectlab.dl.stardist.outputs.predict_star_images`. Options are
:class:`~defectlab.dl.stardist.train.StarTrainOptions`' fields, given as ``--set name=value``
(repeatable) beside the common ones; errors are one line and exit code 1.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])


def _parse_sets(sets: list[str]) -> dict[str, object]:
    import json

    from .train import StarTrainOptions

    fields = {f.name: f for f in dataclasses.fields(StarTrainOptions)}
    out: dict[str, object] = {}
    for item in sets:
        name, sep, raw = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise ValueError(f"--set {item!r}: expected name=value with a name among {', '.join(fields)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[name] = value
    return out


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="A labeling export (CVAT, COCO, …) with its images.")],
    out: Annotated[Path, typer.Option("--out", help="The model folder to write.")],
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Most epochs [30].")] = None,
    steps_per_epoch: Annotated[Optional[int], typer.Option("--steps-per-epoch", min=1, help="Batches per epoch [50].")] = None,
    time_budget: Annotated[Optional[float], typer.Option("--time-budget", help="Stop after this many seconds of training.")] = None,
    tile: Annotated[Optional[int], typer.Option(help="Training crop, px [256].")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    sets: Annotated[Optional[List[str]], typer.Option("--set", help="Any other training option: name=value.")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="Folder of the image files, if not beside the export.")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw training_curve.png.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
) -> None:
    """Train the star-convex instance model; writes a model folder with thresholds.json."""
    from defectlab.cli import console, fail
    from defectlab.errors import DefectlabError

    try:
        from .train import train_stardist

        opts = _parse_sets(sets or [])
        for key, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("time_budget_s", time_budget),
                           ("tile_size", tile)):
            if value is not None:
                opts[key] = value
        result = train_stardist(data, out, images=images, overwrite=overwrite, plot=not no_plot, device=device,
                                seed=seed, **opts)
    except (DefectlabError, ValueError, TypeError) as err:
        fail(err)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    best = result.best
    t = result.model.thresholds
    console.print(f"[green]trained[/] {len(result.history)} epochs; best epoch {result.best_epoch}: object F1 "
                  f"{best['val_f1']:.3f} -> {result.path}", highlight=False)
    console.print(f"  thresholds ({'tuned on the validation images' if t.get('tuned') else 'defaults'}): "
                  f"prob {t['prob']:g}, nms {t['nms']:g}" + (f"; object F1 {t['val_f1']:.3f}" if 'val_f1' in t else ""),
                  highlight=False)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A star model folder.")],
    images: Annotated[List[Path], typer.Argument(help="Image files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    prelabels: Annotated[Optional[List[str]], typer.Option("--prelabels", help="cvat and/or coco; repeat for both.")] = None,
    prob_thresh: Annotated[Optional[float], typer.Option("--prob-thresh", help="Least object probability [the model's].")] = None,
    nms_thresh: Annotated[Optional[float], typer.Option("--nms-thresh", help="Largest overlap of two kept stars [the model's].")] = None,
    tile: Annotated[Optional[int], typer.Option(help="Largest tile, px [1024].")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Predict micrographs: class masks, instance TIFFs, overlays, polygons, pre-labels."""
    from defectlab.cli import console, fail
    from defectlab.errors import DefectlabError

    try:
        from .model import load_star_model
        from .outputs import predict_star_images

        loaded = load_star_model(model, device=device)
        report = predict_star_images(loaded, images, out, prelabels=prelabels, prob_thresh=prob_thresh,
                                     nms_thresh=nms_thresh, tile=tile, overwrite=overwrite, progress=True)
    except (DefectlabError, ValueError) as err:
        fail(err)
    for note in getattr(loaded, "notes", []):
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"[green]predicted[/] {report}", highlight=False)
    lost = sum(im["overlap_px"] for im in report.images)
    if lost:
        console.print(f"  [yellow]note:[/] {lost} px covered by overlapping polygons keep only the surer instance in "
                      "instances/*.tif; polygons/*.json and the pre-labels keep both", highlight=False)
    if report.prelabels:
        console.print(f"  pre-labels for CVAT: {report.prelabels}", highlight=False)
    if report.prelabels_coco:
        console.print(f"  pre-labels as COCO: {report.prelabels_coco}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()
