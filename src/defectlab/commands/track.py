"""``defectlab track``: the CLI door to :mod:`defectlab.tracking`.

Its options are :class:`~defectlab.tracking.link.LinkOptions` (linking) and
:class:`~defectlab.tracking.run.TrackOptions` (calibration, interval, outputs), turned into
flags by :func:`~defectlab.commands._options.with_options`. Light at import time: the options
modules import numpy only; the library is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..tracking.link import LinkOptions
from ..tracking.run import TrackOptions
from ._console import console, fail
from ._options import with_options

_SOURCE = ("Per-frame objects: a defectlab predict folder, a CVAT video export (its tracks are the truth to score "
           "against), or any per-frame labeling export.")
_OUT = "Output folder: tracks, frames, events, CVAT track pre-labels, mot.txt, figures, overlay.gif, index.html."
_FRAMES = "The frames (folder, TIFF/DM4/EMD/SER stack, MP4/AVI): calibration, frame interval, overlay."


def register(app: typer.Typer) -> None:
    """Add ``track`` to the ``defectlab`` app."""

    @app.command()
    @with_options(link=LinkOptions, options=TrackOptions)
    def track(
        source: Annotated[Path, typer.Argument(help=_SOURCE, metavar="SOURCE")],
        out: Annotated[Path, typer.Option("--out", help=_OUT, metavar="DIR")],
        link: LinkOptions,
        options: TrackOptions,
        frames: Annotated[Optional[Path], typer.Option("--frames", help=_FRAMES, metavar="PATH")] = None,
        images: Annotated[Optional[Path], typer.Option("--images", help="Folder of the export's image files, if "
                                                                         "not beside it.", metavar="DIR")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
    ) -> None:
        """Link defects over the frames of a video: tracks, lifetimes, growth rates, fates, CVAT track pre-labels."""
        from ..errors import DefectlabError
        from ..tracking.run import track as run

        try:
            result = run(source, options=link, track_options=options, frames=frames, images=images)
            result.write(out, overwrite=overwrite, inputs=[p for p in (frames, images) if p is not None])
        except (DefectlabError, ValueError) as err:
            fail(err)
        s = result.summary()
        console.print(f"{s['frames']} frames, {s['tracks']} tracks ("
                      + ", ".join(f"{k} {v}" for k, v in s["fates"].items())
                      + f"), {s['merges']} merges, {s['splits']} splits", highlight=False)
        if result.scores:
            sc = result.scores
            console.print(f"against the export's own tracks: MOTA {sc['MOTA']:.4f}, IDF1 {sc['IDF1']:.4f}, "
                          f"HOTA {sc['HOTA']:.4f}, ID switches {sc['IDSW']}", highlight=False, soft_wrap=True)
        for note in result.notes[:5]:
            console.print(f"[yellow]note:[/] {note}", highlight=False, markup=False)
        console.print(f"[green]wrote[/] -> {out}/index.html", highlight=False)

    @app.command("synth-video")
    def synth_video(
        out: Annotated[Path, typer.Argument(help="Folder to write images/frame_*.png, annotations.xml (CVAT for "
                                                 "video 1.1, the true tracks), truth.csv, video.json into.",
                                            metavar="OUT")],
        frames: Annotated[int, typer.Option("--frames", min=1, help="Frames of the video.")] = 40,
        size: Annotated[int, typer.Option("--size", min=32, help="Frame width and height, px.")] = 256,
        defects: Annotated[int, typer.Option("--defects", min=0, help="About how many defects a frame holds.")] = 20,
        merges: Annotated[int, typer.Option("--merges", min=0, help="Coalescences of two cavities.")] = 1,
        splits: Annotated[int, typer.Option("--splits", min=0, help="Splits of a cavity into two.")] = 0,
        noise_free: Annotated[bool, typer.Option("--noise-free", help="No blur, shot or read noise.")] = False,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
    ) -> None:
        """Generate a synthetic in-situ video (drift, growth, appearance, coalescence) with its true tracks."""
        from ..errors import DefectlabError
        from ..preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video

        try:
            imaging = {"noise": 0.0, "dose": float("inf"), "blur_px": 0.0} if noise_free else {}
            cfg = SyntheticVideoConfig(size_hw=(size, size), n_frames=frames, n_defects=defects, n_merges=merges,
                                       n_splits=splits, **imaging)
            video = make_synthetic_video(out, cfg, seed=seed, overwrite=overwrite)
        except (DefectlabError, ValueError) as err:
            fail(err)
        console.print(f"[green]wrote[/] {frames} frames ({size}x{size}) with {len(video.tracks)} true tracks -> {out}",
                      highlight=False)

    from .batch import batch_app

    @batch_app.command("track")
    @with_options(link=LinkOptions, options=TrackOptions)
    def batch_track(
        source: Annotated[Path, typer.Argument(help=_SOURCE, metavar="SOURCE")],
        out: Annotated[Path, typer.Option("--out", help=_OUT, metavar="DIR")],
        link: LinkOptions,
        options: TrackOptions,
        chunk_frames: Annotated[int, typer.Option("--chunk-frames", min=1, help="Frames per chunk linked as one Dask "
                                                                               "task.")] = 500,
        scheduler: Annotated[str, typer.Option("--scheduler", help="threads, processes, sync, or a Dask scheduler "
                                                                   "address tcp://host:8786.")] = "threads",
        frames: Annotated[Optional[Path], typer.Option("--frames", help=_FRAMES, metavar="PATH")] = None,
        images: Annotated[Optional[Path], typer.Option("--images", help="Folder of the export's image files, if "
                                                                         "not beside it.", metavar="DIR")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
    ) -> None:
        """A long video in chunks of frames on Dask, linked across chunk borders; a rerun reuses the chunks done
        (kept in OUT.chunks/)."""
        from ..errors import DefectlabError
        from ..tracking.run import track as run

        work = out.with_name(out.name + ".chunks")
        try:
            result = run(source, options=link, track_options=options, frames=frames, images=images,
                         chunk_frames=chunk_frames, scheduler=scheduler, work=work)
            result.write(out, overwrite=overwrite, inputs=[p for p in (frames, images) if p is not None])
        except (DefectlabError, ValueError) as err:
            fail(err)
        s = result.summary()
        console.print(f"{s['frames']} frames in chunks of {chunk_frames}, {s['tracks']} tracks -> {out}/index.html "
                      f"(chunks kept in {work})", highlight=False)


def evaluate_tracks_command(predictions: Path, labels: Path, out: Path, *, iou: float, overwrite: bool) -> bool:
    """``defectlab evaluate`` on two CVAT video exports with tracks: score the tracks, print, write; True when done.

    False (nothing done) when the two are not both track exports: ``evaluate`` then scores objects per image.
    """
    from ..errors import DefectlabError
    from ..tracking.evaluation import evaluate_tracks, is_track_pair

    if not is_track_pair(predictions, labels):
        return False
    try:
        s = evaluate_tracks(predictions, labels, iou=iou, out=out, overwrite=overwrite).overall
    except (DefectlabError, ValueError) as err:
        fail(err)
    console.print(f"tracks at IoU ≥ {iou:g}: MOTA {s['MOTA']:.4f}, IDF1 {s['IDF1']:.4f}, HOTA {s['HOTA']:.4f}, "
                  f"ID switches {s['IDSW']}, tracks {s['n_pred_tracks']} predicted / {s['n_true_tracks']} true, "
                  f"growth-rate error {100 * s['growth_rate_error']:.2f} %, lifetime KS {s['lifetime_ks']:.3f}",
                  highlight=False, soft_wrap=True)
    console.print(f"[green]wrote[/] -> {out}/track_scores.json", highlight=False)
    return True
