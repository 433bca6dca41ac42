"""``defectlab track``: the CLI door to :mod:`defectlab.tracking` (light at import time)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``track`` to the ``defectlab`` app."""

    @app.command()
    def track(
        source: Annotated[Path, typer.Argument(help="Per-frame objects: a defectlab predict folder, a CVAT video "
                                                    "export (its tracks are the truth to score against), or any "
                                                    "per-frame labeling export.")],
        out: Annotated[Path, typer.Option("--out", help="Output folder: tracks, frames, events, pre-labels, "
                                                        "mot.txt, figures, overlay.gif, index.html.")],
        frames: Annotated[Optional[Path], typer.Option("--frames", help="The frames (folder, TIFF/DM4/EMD/SER stack, "
                                                                         "MP4/AVI): calibration, interval, overlay.")] = None,
        images: Annotated[Optional[Path], typer.Option("--images", help="Folder of the export's image files, if not beside it.")] = None,
        max_displacement: Annotated[str, typer.Option("--max-displacement", help="Farthest a defect moves between frames "
                                                      "after drift correction: 5px, or 3nm.")] = "5px",
        gap: Annotated[int, typer.Option("--gap", min=0, help="Frames a defect may be missed and keep its id.")] = 2,
        merges: Annotated[bool, typer.Option("--merges/--no-merges", help="Find coalescences.")] = True,
        splits: Annotated[bool, typer.Option("--splits/--no-splits", help="Find splits.")] = True,
        per_class: Annotated[bool, typer.Option("--per-class/--all-classes", help="Link each class on its own.")] = True,
        drift: Annotated[str, typer.Option("--drift", help="Remove the specimen drift before linking: auto or none.")] = "auto",
        pixel_size: Annotated[Optional[str], typer.Option("--pixel-size", help="Pixel size: 0.38nm (overrides the files').")] = None,
        frame_interval: Annotated[Optional[str], typer.Option("--frame-interval", help="Time between frames: 0.5s, 40ms, 25fps.")] = None,
        prelabel_shape: Annotated[str, typer.Option("--prelabel-shape", help="CVAT track pre-labels: ellipse or as-read.")] = "ellipse",
        overlay: Annotated[bool, typer.Option("--overlay/--no-overlay", help="Write overlay.gif and the gallery.")] = True,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    ) -> None:
        """Link defects over the frames of a video: tracks, lifetimes, growth rates, fates, CVAT track pre-labels."""
        from ..cli import console, fail
        from ..errors import DefectlabError

        try:
            from ..tracking.link import LinkOptions
            from ..tracking.run import TrackOptions, track as run

            link_opts = LinkOptions(max_displacement=max_displacement, gap_frames=gap, merges=merges, splits=splits,
                                    per_class=per_class, drift=drift)
            opts = TrackOptions(pixel_size=pixel_size, frame_interval=frame_interval, prelabel_shape=prelabel_shape,
                                overlay=overlay)
            result = run(source, options=link_opts, track_options=opts, frames=frames, images=images)
            result.write(out, overwrite=overwrite, inputs=[p for p in (frames, images) if p is not None])
        except (DefectlabError, ValueError) as err:
            fail(err)
        s = result.summary()
        console.print(f"{s['frames']} frames, {s['tracks']} tracks ({', '.join(f'{k} {v}' for k, v in s['fates'].items())}), "
                      f"{s['merges']} merges, {s['splits']} splits", highlight=False)
        if result.scores:
            sc = result.scores
            console.print(f"against the export's own tracks: MOTA {sc['MOTA']:.4f}, IDF1 {sc['IDF1']:.4f}, "
                          f"HOTA {sc['HOTA']:.4f}, ID switches {sc['IDSW']}", highlight=False)
        for note in result.notes[:5]:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        console.print(f"[green]wrote[/] -> {out}/index.html", highlight=False)
