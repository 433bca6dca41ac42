"""Frame sequences of in-situ TEM videos: one array per frame, a time per frame, a pixel size.

Where the frames come from, and where their time step and calibration are read:

================================  =================================================================
source                            frames, frame interval, pixel size
================================  =================================================================
a folder of image files           every PNG/TIFF/JPEG/BMP/DM3/DM4/SER/EMD file in it, in *natural*
                                  order of their names (``Frame-2`` before ``Frame-10``: runs of
                                  digits compare as numbers); no interval in the files; the pixel
                                  size of the first frame (:func:`~defectlab.imaging.micrograph.read_pixel_size`)
a multi-page TIFF (.tif/.tiff)    the pages of its first series, (T, H, W) or (T, H, W, 3); ImageJ
                                  hyperstacks' ``finterval`` (s) is the interval; the calibration
                                  as for one TIFF (ImageJ, FEI, Zeiss, resolution tags)
a DM3/DM4/SER/EMD stack           through rosettasciio: the first dataset with one navigation axis
                                  and two signal axes; the navigation axis's ``scale`` in a time
                                  unit (s, ms, µs, min) is the interval; the signal axes' scale in
                                  a length unit is the pixel size
an MP4/AVI/MOV/MKV video          through imageio's FFmpeg plugin (imageio-ffmpeg, which ships the
                                  ffmpeg binary); the interval is ``1 / fps`` of the container;
                                  no calibration (videos carry none)
================================  =================================================================

An explicit ``frame_interval`` (the CLI's ``--frame-interval 0.5s``) and ``pixel_size``
(``--pixel-size 0.38nm``) always win over the files' values. Frames are read one at a time,
when asked for, so a long video never sits in memory whole (stacks in a TIFF or a
microscope file are memory-mapped where the reader allows).

Examples
--------
>>> sorted(["Frame-10.png", "Frame-2.png", "Frame-1.png"], key=natural_key)
['Frame-1.png', 'Frame-2.png', 'Frame-10.png']
>>> parse_interval("0.5s"), parse_interval("200 ms"), parse_interval("10fps"), parse_interval(2)
(0.5, 0.2, 0.1, 2.0)
>>> import tempfile, pathlib, numpy as np, tifffile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "stack.tif"
>>> tifffile.imwrite(path, np.zeros((3, 16, 16), np.uint8), imagej=True, resolution=(2.0, 2.0),
...                  metadata={"unit": "nm", "finterval": 0.25, "axes": "TYX"})
>>> seq = open_frames(path)
>>> len(seq), seq.size_hw, seq.interval_s, seq.pixel_size_nm, seq[2].shape
(3, (16, 16), 0.25, 0.5, (16, 16))
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..errors import ImageError
from ..ordering import natural_key
from .micrograph import MICROSCOPE_SUFFIXES, _square, _tiff_calibration, parse_length, read_micrograph, unit_to_nm

__all__ = ["FrameSequence", "FRAME_SUFFIXES", "VIDEO_SUFFIXES", "natural_key", "open_frames", "parse_interval",
           "write_frames"]

#: Image files a folder of frames may hold (any case).
FRAME_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", *MICROSCOPE_SUFFIXES)
#: Video containers read through FFmpeg.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv")
_TIFF = (".tif", ".tiff")

#: Seconds per time unit, by normalized unit name.
_S_PER_UNIT = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
               "millisecond": 1e-3, "milliseconds": 1e-3, "µs": 1e-6, "us": 1e-6, "microsecond": 1e-6,
               "microseconds": 1e-6, "min": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hour": 3600.0}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")


def _time_unit(unit: str | None) -> float | None:
    if not isinstance(unit, str):
        return None
    return _S_PER_UNIT.get(unit.strip().replace("\u03bc", "\u00b5").lower())


def parse_interval(value: str | float | int) -> float:
    """A frame interval in seconds from ``"0.5s"``, ``"200ms"``, ``"10fps"``, or a number (s).

    Raises
    ------
    ValueError
        Not a positive time, or an unknown unit; the message says what was expected.

    Examples
    --------
    >>> parse_interval("0.04 s"), parse_interval("25 fps"), parse_interval("1.5min")
    (0.04, 0.04, 90.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a frame interval like '0.5s', got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _NUMBER.match(value)
        if m is None:
            raise ValueError(f"expected a frame interval like '0.5s', '200ms' or '25fps', got {value!r}")
        number, unit = float(m.group(1)), m.group(2).strip()
        if unit.lower() in ("fps", "hz", "/s", "frames/s"):
            seconds = 1.0 / number if number > 0 else math.nan
        elif unit == "":
            seconds = number
        else:
            factor = _time_unit(unit)
            if factor is None:
                raise ValueError(f"expected a frame interval with a time unit (s, ms, µs, min) or fps, got {value!r}")
            seconds = number * factor
    else:
        raise ValueError(f"expected a frame interval like '0.5s', got {value!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"expected a positive, finite frame interval, got {value!r}")
    return float(f"{seconds:.12g}")


@dataclass(frozen=True)
class FrameSequence:
    """The frames of a video or stack, read one at a time.

    Parameters
    ----------
    source : str
        The folder or file the frames come from.
    names : tuple of str
        One name per frame, in frame order (file names for a folder, ``frame_000000`` … else).
    size_hw : (int, int)
        Height and width of the frames, px.
    interval_s : float or None
        Time between frames, s; None when neither the files nor the caller give it.
    pixel_size_nm : float or None
        Width of a pixel, nm; None when uncalibrated.
    metadata : dict
        ``kind`` (``"folder"``, ``"tiff-stack"``, ``"rsciio-stack"``, ``"video"``),
        ``interval_from`` and ``calibration`` (where each value came from), vendor details.

    Indexing gives frame ``i`` as an (H, W) or (H, W, 3) array in the file's dtype.
    """

    source: str
    names: tuple[str, ...]
    size_hw: tuple[int, int]
    interval_s: float | None
    pixel_size_nm: float | None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    _read: Callable[[int], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        n = len(self.names)
        if not -n <= index < n:
            raise IndexError(f"{self.source}: frame {index} out of range (0..{n - 1})")
        if self._read is None:
            raise ImageError(f"{self.source}: a FrameSequence made by hand has no reader; use open_frames()")
        return self._read(index % n)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self.names)):
            yield self[i]

    def times_s(self) -> np.ndarray | None:
        """(T,) float64 time of each frame from the first, s; None without an interval."""
        if self.interval_s is None:
            return None
        return np.arange(len(self.names), dtype=np.float64) * self.interval_s


def open_frames(
    source: str | Path,
    *,
    frame_interval: str | float | None = None,
    pixel_size: str | float | None = None,
) -> FrameSequence:
    """Open a folder of frames, a multi-page TIFF, a microscope stack or a video.

    Parameters
    ----------
    source : str or Path
        A folder of image files (natural order of names), a ``.tif`` stack, a DM3/DM4/SER/EMD
        stack, or an MP4/AVI/MOV/MKV video.
    frame_interval : str or float, optional
        Overrides the files' interval: ``"0.5s"``, ``"40ms"``, ``"25fps"``, a number in s.
    pixel_size : str or float, optional
        Overrides the files' calibration: ``"0.38nm"``, a number in nm.

    Returns
    -------
    FrameSequence

    Raises
    ------
    ImageError
        No such file or folder, a folder with no frames, an unreadable stack or video, a
        stack that is not a sequence of 2-D frames, or frames of different sizes (the
        message names the first frame that differs).
    ValueError
        A ``frame_interval`` or ``pixel_size`` that is not a positive time or length.
    """
    path = Path(source)
    interval = None if frame_interval is None else parse_interval(frame_interval)
    override = None if pixel_size is None else parse_length(pixel_size, what="pixel size")
    if path.is_dir():
        seq = _open_folder(path)
    elif not path.is_file():
        raise ImageError(f"{path}: no such file or folder of frames")
    elif path.suffix.lower() in _TIFF:
        seq = _open_tiff(path)
    elif path.suffix.lower() in MICROSCOPE_SUFFIXES:
        seq = _open_rsciio(path)
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        seq = _open_video(path)
    else:
        raise ImageError(f"{path}: not a folder of frames, a TIFF stack, a DM3/DM4/SER/EMD stack or a video "
                         f"({', '.join(VIDEO_SUFFIXES)})")
    meta = dict(seq.metadata)
    changes: dict[str, Any] = {}
    if interval is not None:
        meta.update(interval_from="override", file_interval_s=seq.interval_s)
        changes["interval_s"] = interval
    if override is not None:
        meta.update(calibration="override", file_pixel_size_nm=seq.pixel_size_nm)
        changes["pixel_size_nm"] = override
    from dataclasses import replace

    return replace(seq, metadata=meta, **changes)


def _open_folder(folder: Path) -> FrameSequence:
    from .micrograph import read_pixel_size

    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise ImageError(f"{folder}: holds no frames (image files {', '.join(FRAME_SUFFIXES)})")
    first = read_micrograph(files[0])
    size_hw = first.size_hw
    nm, meta = read_pixel_size(files[0])

    def read(i: int) -> np.ndarray:
        arr = read_micrograph(files[i]).array
        if arr.shape[:2] != size_hw:
            raise ImageError(f"{files[i]}: frame {i} is {arr.shape[1]}x{arr.shape[0]} px, the first frame "
                             f"{files[0].name} is {size_hw[1]}x{size_hw[0]}; frames of one video have one size")
        return arr

    return FrameSequence(str(folder), tuple(p.name for p in files), size_hw, None, nm,
                         {"kind": "folder", "interval_from": None, "calibration": meta.get("calibration"),
                          "files": [str(p) for p in files]}, read)


def _open_tiff(path: Path) -> FrameSequence:
    import tifffile

    try:
        tf = tifffile.TiffFile(path)
    except Exception as err:  # tifffile raises many types for broken files
        raise ImageError(f"{path}: not a readable TIFF ({type(err).__name__}: {err})") from err
    with tf:
        series = tf.series[0]
        shape, axes = tuple(series.shape), series.axes
        nm, cal = _tiff_calibration(tf, tf.pages.first)
        ij = tf.imagej_metadata or {}
    rgb = len(shape) >= 3 and axes.endswith("S") and shape[-1] in (3, 4)
    frame_shape = shape[-3:] if rgb else shape[-2:]
    if len(shape) - len(frame_shape) > 1 and int(np.prod(shape[:-len(frame_shape)])) != max(shape[:-len(frame_shape)]):
        raise ImageError(f"{path}: a {axes} stack of shape {shape}; expected one sequence of 2-D frames (T, Y, X)")
    n = int(np.prod(shape[:-len(frame_shape)])) if len(shape) > len(frame_shape) else 1
    interval = None
    interval_from = None
    fi = ij.get("finterval")
    if fi is not None:
        try:
            interval = parse_interval(float(fi))
            interval_from = "imagej-finterval"
        except (TypeError, ValueError):
            interval = None
    data = tifffile.memmap(path) if _memmappable(path) else None

    def read(i: int) -> np.ndarray:
        if data is not None:
            arr = np.asarray(data.reshape((n, *frame_shape))[i])
        else:
            arr = tifffile.imread(path, key=i) if n > 1 else tifffile.imread(path)
            arr = arr.reshape(frame_shape)
        return arr[..., :3] if rgb and arr.shape[-1] == 4 else arr

    return FrameSequence(str(path), tuple(f"frame_{i:06d}" for i in range(n)), (int(frame_shape[0]), int(frame_shape[1])),
                         interval, nm, {"kind": "tiff-stack", "axes": axes, "interval_from": interval_from, **cal}, read)


def _memmappable(path: Path) -> bool:
    import tifffile

    try:
        tifffile.memmap(path)
        return True
    except (ValueError, OSError):  # compressed or tiled pages: read page by page instead
        return False


def _open_rsciio(path: Path) -> FrameSequence:
    import importlib

    module = MICROSCOPE_SUFFIXES[path.suffix.lower()]
    try:
        reader = importlib.import_module(f"rsciio.{module}").file_reader
    except ImportError as err:
        raise ImageError(f"{path}: reading {path.suffix} stacks needs rosettasciio; install it with "
                         "pip install 'defectlab[microscope]'") from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            datasets = reader(str(path), lazy=True)
    except Exception as err:  # the readers raise many types for broken files
        raise ImageError(f"{path}: not a readable {path.suffix} file ({type(err).__name__}: {err})") from err
    stacks = [d for d in datasets if np.ndim(d.get("data")) == 3
              and sum(not a.get("navigate", False) for a in d.get("axes", ())) == 2]
    if not stacks:
        found = ", ".join(f"{np.ndim(d.get('data'))}-D" for d in datasets) or "nothing"
        raise ImageError(f"{path}: holds no stack of 2-D frames (found {found}); expected one navigation axis "
                         "(time) and two signal axes")
    d = stacks[0]
    axes = list(d["axes"])
    nav = next(a for a in axes if a.get("navigate", False))
    signal = [a for a in axes if not a.get("navigate", False)]
    data = d["data"]
    n = int(data.shape[0])
    interval, interval_from = None, None
    factor = _time_unit(nav.get("units"))
    scale = nav.get("scale")
    if factor is not None and scale:
        interval, interval_from = parse_interval(float(scale) * factor), module
    fx, fy = unit_to_nm(signal[-1].get("units")), unit_to_nm(signal[0].get("units"))
    sx, sy = signal[-1].get("scale"), signal[0].get("scale")
    nm = _square(float(sx) * fx, float(sy) * fy if (fy and sy) else None, module) if (fx and sx) else None

    def read(i: int) -> np.ndarray:
        return np.asarray(data[i])

    return FrameSequence(str(path), tuple(f"frame_{i:06d}" for i in range(n)), (int(data.shape[1]), int(data.shape[2])),
                         interval, nm, {"kind": "rsciio-stack", "format": module, "interval_from": interval_from,
                                        "calibration": module if nm else None,
                                        "time_unit": nav.get("units")}, read)


def _open_video(path: Path) -> FrameSequence:
    try:
        import imageio.v2 as iio

        reader = iio.get_reader(path, "ffmpeg")
        meta = reader.get_meta_data()
        n = int(reader.count_frames())
    except ImportError as err:
        raise ImageError(f"{path}: reading videos needs imageio with imageio-ffmpeg; install it with "
                         "pip install 'defectlab[track]'") from err
    except Exception as err:  # ffmpeg's errors come in many types
        raise ImageError(f"{path}: not a readable video ({type(err).__name__}: {err})") from err
    if n == 0:
        raise ImageError(f"{path}: the video holds no frames")
    w, h = meta.get("size") or meta.get("source_size")
    fps = meta.get("fps")
    interval = parse_interval(f"{fps} fps") if fps and math.isfinite(fps) and fps > 0 else None

    def read(i: int) -> np.ndarray:
        arr = np.asarray(reader.get_data(i))
        if arr.ndim == 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            return arr[..., 0]  # a grayscale micrograph stored as RGB by the codec
        return arr

    return FrameSequence(str(path), tuple(f"frame_{i:06d}" for i in range(n)), (int(h), int(w)), interval, None,
                         {"kind": "video", "codec": meta.get("codec"), "fps": fps,
                          "interval_from": "fps" if interval else None, "calibration": None,
                          "why": "videos carry no microscope calibration"}, read)


def write_frames(frames: FrameSequence, out: str | Path, *, overwrite: bool = False, progress: bool = False) -> list[Path]:
    """Write every frame as ``out/frame_000000.png`` … (8- or 16-bit PNG), e.g. to predict them.

    Frames of another dtype are scaled to uint16 by the sequence's first frame's range.
    Written atomically (:func:`defectlab._output.output_dir`).

    Returns
    -------
    list of Path
        The files written, in frame order.
    """
    from .._output import output_dir
    from .io import write_image

    paths = []
    lo = hi = None
    with output_dir(out, overwrite=overwrite, inputs=[frames.source]) as tmp:
        it: Any = range(len(frames))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="frames", unit="frame")
        for i in it:
            arr = frames[i]
            if arr.dtype not in (np.uint8, np.uint16):
                if lo is None:
                    lo, hi = float(np.min(arr)), float(np.max(arr))
                arr = np.clip((arr.astype(np.float64) - lo) / max(hi - lo, 1e-12) * 65535, 0, 65535).astype(np.uint16)
            name = f"frame_{i:06d}.png"
            write_image(tmp / name, arr)
            paths.append(Path(out) / name)
    return paths
