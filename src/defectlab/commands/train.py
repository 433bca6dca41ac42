"""``defectlab train <arch>`` and ``defectlab predict``: one command each, on CPU or GPU.

``train`` is a group with one command per registered architecture
(:func:`defectlab.dl.archs.names`): ``defectlab train unet DATA --out OUT``. Each command's
options are :class:`~defectlab.dl.options.TrainOptions` with that architecture's defaults
(``Architecture.options_class``) and its own ``Architecture.Params``, turned into flags by
:func:`~defectlab.commands._options.with_options`, so ``defectlab train unet --help`` shows
the U-Net's defaults. The commands are built when first asked for: listing the names needs no
torch, and ``defectlab --help`` never imports it. ``predict``'s options are
:class:`~defectlab.dl.options.PredictOptions`. Both are thin wrappers over
:func:`defectlab.dl.train.train` and :func:`defectlab.dl.predict.predict_images`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer
from typer.core import TyperGroup

from ..dl.options import PredictOptions
from . import finish
from ._console import console, fail
from ._options import with_options


class Prelabels(str, Enum):
    cvat = "cvat"
    coco = "coco"


_DEVICE = "auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps."
Images = Annotated[Optional[Path], typer.Option("--images", help="Folder holding the image files, if not beside the "
                                                                 "export.", metavar="DIR")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")]


def _print_folds(result: Any) -> None:
    """``train --folds``: a row per fold (what it validated on, its scores), then the pooled mean ± sd."""
    from rich.markup import escape
    from rich.table import Table

    for fold in result.folds:
        for note in fold.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    summary = result.summary
    classes = list(summary["pooled"]["val_iou"])
    table = Table(title="cross-validation: each model scored on the images it never saw (names: ensemble.json)",
                  title_justify="left")
    for name in ("fold", "validated on", *[f"IoU {c}" for c in classes], "mean IoU", "count error", "size error"):
        table.add_column(escape(name), justify="left" if name in ("fold", "validated on") else "right")

    def cell(value: Any, pct: bool = False) -> str:
        return "–" if value is None else f"{value:.1%}" if pct else f"{value:.3f}"

    for m in summary["members"]:
        n = len(m["validated_on"])
        where = m["strip"] or f"{n} image{'s' if n > 1 else ''}"
        table.add_row(m["name"], escape(where), *[cell(m["val_iou"].get(c)) for c in classes],
                      cell(m["val_mean_iou"]), cell(m["count_error"], True), cell(m["size_error"], True))
    pooled = summary["pooled"]

    def spread(s: dict[str, Any], pct: bool = False) -> str:
        return "–" if s["mean"] is None else f"{cell(s['mean'], pct)} ± {cell(s['sd'], pct)}"

    table.add_row("[bold]mean ± sd[/]", "", *[spread(pooled["val_iou"][c]) for c in classes],
                  spread(pooled["val_mean_iou"]), spread(pooled["count_error"], True),
                  spread(pooled["size_error"], True))
    console.print(table)
    chosen = result.model.postprocess
    if chosen:
        from ..dl.postprocess import min_areas

        least, by_class = min_areas(chosen)
        names = result.model.config.class_names
        areas = ", ".join(f"{names[c]} {a} px" for c, a in sorted(by_class.items()) if c in names)
        console.print(f"  minimum object area (the median of the folds' choices): {escape(areas) or f'{least} px'}",
                      highlight=False)
    console.print(f"[green]trained[/] {escape(str(result))}; predict with the folder: its models' mean, with "
                  "uncertainty maps from their disagreement", highlight=False)


def _print_result(result: Any) -> None:
    from rich.markup import escape

    if hasattr(result, "folds"):
        _print_folds(result)
        return
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    best = result.best
    ious = ", ".join(f"{k} {v:.3f}" for k, v in best["val_iou"].items())
    extra = "".join(f"; {k[4:]} {v:.3f}" for k, v in best.items()
                    if k.startswith("val_") and k not in ("val_loss", "val_iou", "val_mean_iou"))
    console.print(f"[green]trained[/] {escape(str(result))}", highlight=False)
    console.print(f"  validation IoU at the best epoch: {escape(ious) or '-'}{extra}", highlight=False)
    chosen = getattr(result.model, "postprocess", None)
    if chosen:
        from ..dl.postprocess import min_areas

        least, by_class = min_areas(chosen)
        names = result.model.config.class_names
        areas = ", ".join(f"{names[c]} {a} px" for c, a in sorted(by_class.items()) if c in names)
        others = f"; {least} px for the others" if set(names) - set(by_class) else ""
        console.print(f"  minimum object area {escape(areas) or f'{least} px'}{others}, chosen on the validation "
                      f"images: count error {chosen['count_error']:.1%}, size error {chosen['size_error']:.1%} (the "
                      f"default {chosen['default_min_area_px']} px: {chosen['default_count_error']:.1%}, "
                      f"{chosen['default_size_error']:.1%})", highlight=False)


def _explicit(ctx: typer.Context, options: Any) -> Any:
    """The :class:`~defectlab.dl.options.TrainOptions` of the flags given on the command line:
    those left off stay None (the architecture's default, or with ``--auto`` the plan's)."""
    import dataclasses

    from ..dl.options import TrainOptions

    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    return TrainOptions(**{f.name: getattr(options, f.name) for f in dataclasses.fields(TrainOptions)
                           if given(f.name)})


def _print_plan(plan: Any) -> None:
    """The plan ``train --auto`` trains with: choice, value, why (given ones in bold)."""
    from ..plan.display import plan_table

    console.print(plan_table(plan))


def train_command(name: str) -> typer.Typer:
    """A one-command Typer app: ``defectlab train <name>`` for the registered architecture ``name``."""
    from ..dl import archs

    arch = archs.get(name)
    sub = typer.Typer(add_completion=False, rich_markup_mode=None)

    @sub.command(name, help=f"Train a {arch.title} on labeled micrographs; writes a model folder. {arch.summary}",
                 short_help=arch.summary)
    @with_options(options=arch.options_class(), params=arch.Params)
    def command(
        ctx: typer.Context,
        data: Annotated[Path, typer.Argument(help="A labeling export, a written training folder (write_unet / "
                                                  "write_maskrcnn), or a prepare root (trains on train/, validates "
                                                  "on val/).", metavar="DATA")],
        out: Annotated[Path, typer.Option("--out", help="The model folder to write.", metavar="DIR")],
        options: Any,
        params: Any,
        images: Images = None,
        no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw the training curve picture.")] = False,
        overwrite: Overwrite = False,
    ) -> None:
        import warnings

        from ..dl.train import train
        from ..errors import DefectlabError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # what they say is in the notes printed below
                result = train(arch, data, out, _explicit(ctx, options), params, images=images, overwrite=overwrite,
                               progress=True, plot=not no_plot, on_plan=_print_plan)
        except (DefectlabError, ValueError) as err:
            fail(err)
        _print_result(result)

    return sub


class _ArchGroup(TyperGroup):
    """``defectlab train``: a command per registered architecture, built when first asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        from ..dl import archs

        return list(archs.names())

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from ..dl import archs

        if cmd_name not in archs.names():
            return None
        made = self.commands.get(cmd_name)
        if made is None:
            try:
                made = finish(typer.main.get_command(train_command(cmd_name)))
            except ImportError as err:
                fail(err)
            self.commands[cmd_name] = made
        return made


def predict(
    model: Annotated[Path, typer.Argument(help="A model folder (config.json + weights.pt).", metavar="MODEL")],
    images: Annotated[List[Path], typer.Argument(help="Image files or folders (searched recursively).",
                                                 metavar="IMAGES...")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.", metavar="DIR")],
    options: PredictOptions,
    prelabels: Annotated[Optional[List[Prelabels]], typer.Option(
        "--prelabels", help="Also write pre-labels: cvat (CVAT for images 1.1 XML) and/or coco (COCO JSON); repeat "
                            "for both.")] = None,
    device: Annotated[str, typer.Option("--device", help=_DEVICE, metavar="DEVICE")] = "auto",
    overwrite: Overwrite = False,
) -> None:
    """Predict micrographs of any size: class masks, instance TIFFs, overlays, pre-labels for CVAT."""
    from rich.markup import escape

    from ..errors import DefectlabError

    try:
        from ..dl.model_io import load_model
        from ..dl.predict import predict_images
    except ImportError as err:
        fail(err)
    try:
        loaded = load_model(model, device=device)
        report = predict_images(loaded, images, out, options, prelabels=[p.value for p in prelabels or []],
                                overwrite=overwrite, progress=True)
    except (DefectlabError, ValueError) as err:
        fail(err)
    console.print(f"[green]predicted[/] {escape(str(report))}", highlight=False)
    totals: dict[str, int] = {}
    for im in report.images:
        for name, n in im["instances"].items():
            totals[name] = totals.get(name, 0) + n
    console.print("  instances: " + escape(", ".join(f"{name} {n}" for name, n in totals.items())), highlight=False)
    if report.prelabels:
        console.print(f"  pre-labels for CVAT: {escape(str(report.prelabels))} (task → Actions → Upload annotations "
                      "→ CVAT 1.1)", highlight=False)
    if report.prelabels_coco:
        console.print(f"  pre-labels as COCO: {escape(str(report.prelabels_coco))}", highlight=False)
    lost = sum(im.get("overlap_px", 0) for im in report.images)
    if lost:
        console.print(f"  [yellow]note:[/] {lost} px covered by overlapping polygons keep only the surer instance in "
                      "instances/*.tif; polygons/*.json and the pre-labels keep both", highlight=False)
    lines = [c.name for c in loaded.config.classes[1:] if c.is_line and loaded.architecture == "stardist"]
    if lines:
        console.print(f"  [yellow]note:[/] {escape(', '.join(lines))}: line classes get no polygons from a star "
                      "model (class mask only); train a U-Net for them: defectlab train unet", highlight=False)
    rel = [im["reliability"] for im in report.images if "reliability" in im]
    if rel:
        members = len(getattr(loaded, "members", ()))
        source = " and ".join((["test-time augmentation"] if options.tta else [])
                              + ([f"the ensemble's {members} models"] if members else []))
        console.print(f"  reliability ({source}: 1 = all sure of one class): mean {sum(rel) / len(rel):.3f}, "
                      f"lowest {min(rel):.3f}; uncertainty maps in {escape(str(report.out / 'uncertainty'))}",
                      highlight=False)
    for note in report.unlike:
        console.print(f"  [yellow]note:[/] {escape(note)}", highlight=False)
    masks = [n for n in report.notes if n.code == "prelabel-mask"]
    if masks:
        console.print(f"  [yellow]note:[/] {len(masks)} instance(s) written as CVAT masks, not polygons "
                      f"(a hole, or several pieces), e.g. {escape(str(masks[0].item))} {masks[0].where}",
                      highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``train`` (a group: one command per architecture) and ``predict`` to the ``defectlab`` app."""
    from ..dl import archs

    group = typer.Typer(cls=_ArchGroup, name="train", no_args_is_help=True, rich_markup_mode=None,
                        help="Train a model on labeled micrographs; writes a model folder.\n\n"
                             f"Architectures: {', '.join(archs.names())}; each has its own options "
                             "(defectlab train ARCH --help).")
    app.add_typer(group)
    app.command("predict")(with_options(options=PredictOptions)(predict))
