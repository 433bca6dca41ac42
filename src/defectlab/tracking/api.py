"""``defectlab.track(...)``: the Python door to ``defectlab track`` (same names and defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["track"]


def track(
    source: Any,
    *,
    out: str | Path | None = None,
    frames: Any = None,
    images: str | Path | None = None,
    max_displacement: str | float = "5px",
    gap: int = 2,
    merges: bool = True,
    splits: bool = True,
    per_class: bool = True,
    drift: str = "auto",
    pixel_size: str | float | None = None,
    frame_interval: str | float | None = None,
    prelabel_shape: str = "ellipse",
    fill_gaps: bool = True,
    overlay: bool = True,
    overwrite: bool = False,
) -> Any:
    """Link the defects of an in-situ video into tracks and measure their kinetics.

    The Python door to ``defectlab track SOURCE --out OUT``; see
    :func:`defectlab.tracking.run.track` and :class:`defectlab.tracking.link.LinkOptions`.

    Parameters
    ----------
    source : Dataset, str or Path
        A ``defectlab predict`` folder of the frames, a CVAT video export (its tracks are the
        truth the result is scored against), or any per-frame export.
    out : str or Path, optional
        Also write the output folder (tables, pre-labels, ``mot.txt``, figures, ``overlay.gif``,
        ``index.html``).
    frames : str, Path or FrameSequence, optional
        The frames (folder, TIFF/DM4/EMD/SER stack, MP4/AVI) for calibration, interval, overlay.
    images : str or Path, optional
        Folder of the export's image files.
    max_displacement, gap, merges, splits, per_class, drift
        Linking (``--max-displacement 5px``, ``--gap 2``, ``--merges``, ``--splits``,
        ``--per-class``, ``--drift auto``).
    pixel_size, frame_interval : str or float, optional
        ``"0.5nm"``, ``"0.5s"``: override the files' values.
    prelabel_shape : {"ellipse", "as-read"}
        Shape of the CVAT track pre-labels.
    fill_gaps, overlay, overwrite : bool
        Interpolate missed frames; draw the overlay; replace ``out``.

    Returns
    -------
    TrackResult
        ``tracks`` (a table per track), ``kinetics`` (``track_frames``, ``frames``),
        ``linked`` (a track id per detection, fates, parents, children), ``scores``.

    Examples
    --------
    >>> import tempfile, pathlib, defectlab
    >>> from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_synthetic_video(tmp / "video", SyntheticVideoConfig(size_hw=(96, 96), n_frames=8, n_defects=5,
    ...                                                            n_merges=0), seed=0)
    >>> r = defectlab.track(tmp / "video", pixel_size="0.5nm", frame_interval="0.5s", overlay=False)
    >>> r.scores["IDF1"], r.kinetics.length_unit, r.kinetics.time_unit
    (1.0, 'nm', 's')
    """
    from .link import LinkOptions
    from .run import TrackOptions
    from .run import track as run

    link = LinkOptions.build(max_displacement=max_displacement, gap_frames=gap, merges=merges, splits=splits,
                             per_class=per_class, drift=drift)
    opts = TrackOptions.build(pixel_size=pixel_size, frame_interval=frame_interval, prelabel_shape=prelabel_shape,
                              fill_gaps=fill_gaps, overlay=overlay)
    result = run(source, options=link, track_options=opts, frames=frames, images=images)
    if out is not None:
        result.write(out, overwrite=overwrite)
    return result
