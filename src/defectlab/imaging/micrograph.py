"""Micrographs with their calibration: the pixel array and the pixel size in nm.

Where the pixel size comes from, by file type (the first one found wins):

=====================  ============================================================================
file                   calibration read
=====================  ============================================================================
.tif / .tiff           1. ImageJ: ``unit`` in the ImageJ description and ``XResolution`` (pixels per
                          unit; ImageJ's ``spacing`` is the z step of stacks, not the pixel width)
                       2. FEI/Thermo SEM/FIB (tags 34680/34682, tifffile's ``fei_metadata``):
                          ``[Scan] PixelWidth`` (then ``[EScan]``, ``[IScan]``), in metres
                       3. Zeiss SEM (tag 34118, tifffile's ``sem_metadata``): ``ap_pixel_size`` or
                          ``ap_image_pixel_size``, value with its unit
                       4. ``XResolution`` with ``ResolutionUnit`` cm, mm, µm or inch — except the
                          display resolutions image editors write by default (72, 96, 300 … dpi),
                          which are not a calibration and are ignored (the metadata says so)
.dm3 / .dm4            Gatan DigitalMicrograph, through rosettasciio (``rsciio.digitalmicrograph``)
.ser / .emi            FEI/Thermo TIA, through rosettasciio (``rsciio.tia``)
.emd                   Velox or Berkeley (NCEM) EMD, through rosettasciio (``rsciio.emd``)
.png, .jpg, others     none: these files carry no microscope calibration
=====================  ============================================================================

rosettasciio returns each dataset as ``{"data", "axes": [{"name", "scale", "offset",
"units", "size", "navigate"}, …], "metadata", "original_metadata"}``; the two signal axes
(``navigate`` False) of a 2-D image give the pixel size as ``scale`` in ``units``. Units are
converted to nm whatever the file uses: m, cm, mm, µm (um, micron), nm, Å (A, angstrom), pm.
A unit that is not a length (``1/nm`` of a diffraction pattern, ``px``, empty) means no
calibration. Non-square pixels (x and y scales differing by more than 0.1 %) get the
area-preserving ``sqrt(sx · sy)`` and a :class:`CalibrationWarning`.

An explicit pixel size always wins: ``read_micrograph(path, pixel_size="0.38nm")`` (the CLI's
``--pixel-size 0.38nm``). Lengths are parsed by :func:`parse_length`.

Examples
--------
>>> parse_length("0.38nm"), parse_length("3.8 Å"), parse_length("0.5 um"), parse_length(2)
(0.38, 0.38, 500.0, 2.0)
>>> import tempfile, pathlib, numpy as np, tifffile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "a.tif"
>>> tifffile.imwrite(path, np.zeros((8, 8), np.uint16), imagej=True,
...                  resolution=(1 / 0.25, 1 / 0.25), metadata={"unit": "nm"})
>>> m = read_micrograph(path)
>>> m.pixel_size_nm, m.metadata["calibration"], m.array.shape
(0.25, 'imagej', (8, 8))
"""

from __future__ import annotations

import io
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ImageError
from ..model import ImageSource

__all__ = [
    "CalibrationWarning",
    "Micrograph",
    "MICROSCOPE_SUFFIXES",
    "parse_length",
    "read_micrograph",
    "read_pixel_size",
    "unit_to_nm",
]


class CalibrationWarning(UserWarning):
    """A micrograph has no usable pixel size (results in px), or a doubtful one."""


#: nm per unit, by normalized unit name.
_NM_PER_UNIT: dict[str, float] = {
    "m": 1e9, "meter": 1e9, "meters": 1e9, "metre": 1e9, "metres": 1e9,
    "cm": 1e7, "centimeter": 1e7, "centimeters": 1e7, "centimetre": 1e7, "centimetres": 1e7,
    "mm": 1e6, "millimeter": 1e6, "millimeters": 1e6, "millimetre": 1e6, "millimetres": 1e6,
    "µm": 1e3, "um": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometers": 1e3,
    "micrometre": 1e3, "micrometres": 1e3,
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "å": 0.1, "a": 0.1, "ang": 0.1, "angstrom": 0.1, "angstroms": 0.1, "ångström": 0.1,
    "pm": 1e-3, "picometer": 1e-3, "picometers": 1e-3, "picometre": 1e-3, "picometres": 1e-3,
    "inch": 25.4e6, "inches": 25.4e6, "in": 25.4e6,
}

#: Suffixes read through rosettasciio, and the rosettasciio module for each.
MICROSCOPE_SUFFIXES: dict[str, str] = {
    ".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph",
    ".ser": "tia", ".emi": "tia", ".emd": "emd",
}
_TIFF = {".tif", ".tiff"}
#: Resolutions (dots per inch) that image editors write by default: not a calibration.
_DISPLAY_DPI = (72.0, 96.0, 100.0, 150.0, 200.0, 240.0, 300.0, 600.0, 1200.0)
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")


def _normalize_unit(unit: str) -> str:
    u = unit.strip().replace("\u03bc", "\u00b5").replace("\u212b", "\u00c5")  # Greek mu, angstrom sign
    if u.lower().startswith("\\u00b5"):  # ImageJ writes µ as an escape in its description
        u = "\u00b5" + u[6:]
    return u.lower()


def unit_to_nm(unit: str | None) -> float | None:
    """nm per ``unit`` (a length unit name or symbol), or None when ``unit`` is not a length.

    Examples
    --------
    >>> unit_to_nm("µm"), unit_to_nm("Å"), unit_to_nm("micron"), unit_to_nm("1/nm")
    (1000.0, 0.1, 1000.0, None)
    """
    if not isinstance(unit, str):
        return None
    return _NM_PER_UNIT.get(_normalize_unit(unit))


def parse_length(value: str | float | int, *, what: str = "length") -> float:
    """A length in nm from ``"0.38nm"``, ``"3.8 Å"``, ``"0.5um"``, ``"80 nm"`` or a number (nm).

    Parameters
    ----------
    value : str or number
        A positive number followed by a unit (m, cm, mm, µm/um/micron, nm, Å/A/angstrom, pm);
        a bare number is taken as nm.
    what : str
        What the length is, for the error message ("pixel size", "thickness").

    Returns
    -------
    float
        The length in nm (> 0, finite).

    Raises
    ------
    ValueError
        Not a positive length, or an unknown unit; the message says what was expected.

    Examples
    --------
    >>> parse_length("0.38nm"), parse_length("3.8A"), parse_length("1e-9 m"), parse_length("80 nm")
    (0.38, 0.38, 1.0, 80.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a {what} like '0.38nm', got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        number, factor = float(value), 1.0
    elif isinstance(value, str):
        m = _NUMBER.match(value)
        if m is None:
            raise ValueError(f"expected a {what} like '0.38nm' or '3.8 Å', got {value!r}")
        number = float(m.group(1))
        unit = m.group(2)
        if unit:
            f = unit_to_nm(unit)
            if f is None:
                raise ValueError(
                    f"expected a {what} with a length unit (m, mm, µm, um, nm, Å, A, pm), got {value!r}"
                )
            factor = f
        else:
            factor = 1.0
    else:
        raise ValueError(f"expected a {what} like '0.38nm', got {value!r}")
    nm = number * factor
    if not (math.isfinite(nm) and nm > 0):
        raise ValueError(f"expected a positive, finite {what}, got {value!r}")
    return _tidy(nm)


def _tidy(nm: float) -> float:
    """``nm`` to 12 significant digits: 3.8 × 0.1 is 0.38, not 0.38000000000000006."""
    return float(f"{nm:.12g}")


@dataclass(frozen=True, slots=True)
class Micrograph:
    """A micrograph's pixels and calibration.

    Parameters
    ----------
    array : ndarray
        (H, W) grayscale or (H, W, 3) color, in the file's dtype.
    pixel_size_nm : float or None
        Width of one pixel in nm; None when the file gives no calibration.
    source : str
        Where it was read from.
    metadata : dict
        ``calibration``: where the pixel size came from (``"override"``, ``"imagej"``,
        ``"fei"``, ``"zeiss-sem"``, ``"tiff-resolution"``, ``"digitalmicrograph"``, ``"tia"``,
        ``"emd"``) or None; ``unit`` and ``scale``: the file's own values; ``why`` when
        there is no calibration; ``format``; vendor details.
    """

    array: np.ndarray
    pixel_size_nm: float | None
    source: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def size_hw(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.array.shape[0]), int(self.array.shape[1])


def _source(source: ImageSource | str | Path) -> ImageSource:
    return source if isinstance(source, ImageSource) else ImageSource(Path(source))


def read_micrograph(
    source: ImageSource | str | Path | Any,
    *,
    pixel_size: str | float | None = None,
    index: int = 0,
) -> Micrograph:
    """Read a micrograph and its pixel size (nm).

    Parameters
    ----------
    source : ImageSource, str, Path or HyperSpy Signal2D
        A PNG/JPEG/TIFF, DM3/DM4, SER/EMI or EMD file, or a member of a zip archive; or a
        HyperSpy Signal2D (its axes' calibration, see :mod:`defectlab.imaging.hyperspy`).
    pixel_size : str or float, optional
        Overrides the file's calibration: ``"0.38nm"``, ``"3.8 Å"``, or a number in nm.
    index : int
        Which 2-D image of a file holding several (EMD, DM), or of a signal's stack, to read, from 0.

    Returns
    -------
    Micrograph
        ``array`` (H, W) or (H, W, 3); ``pixel_size_nm`` None when the file has no calibration
        (``metadata["why"]`` says why).

    Raises
    ------
    ImageError
        Missing or unreadable file, no 2-D image in it, or rosettasciio missing for a
        microscope format (``pip install 'defectlab[microscope]'``).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "b.tif"
    >>> tifffile.imwrite(path, np.zeros((8, 8), np.uint8), imagej=True, resolution=(4, 4), metadata={"unit": "nm"})
    >>> read_micrograph(path).pixel_size_nm, read_micrograph(path, pixel_size="3.8 Å").pixel_size_nm
    (0.25, 0.38)
    """
    from .hyperspy import is_signal

    if is_signal(source):
        from .hyperspy import micrograph_from_signal

        return micrograph_from_signal(source, pixel_size=pixel_size, index=index)
    src = _source(source)
    override = None if pixel_size is None else parse_length(pixel_size, what="pixel size")
    suffix = src.suffix.lower()
    if suffix in MICROSCOPE_SUFFIXES:
        array, nm, meta = _read_rsciio(src, suffix, index=index)
    elif suffix in _TIFF:
        array, nm, meta = _read_tiff(src, pixels=True)
    else:
        from .io import read_image

        array = read_image(src)
        nm, meta = None, {"format": suffix.lstrip(".") or "image", "calibration": None,
                          "why": f"{suffix or 'this'} files carry no microscope calibration"}
    if override is not None:
        meta = {**meta, "file_pixel_size_nm": nm, "calibration": "override"}
        nm = override
    return Micrograph(array, nm, str(src), meta)


def read_pixel_size(source: ImageSource | str | Path, *, index: int = 0) -> tuple[float | None, dict[str, Any]]:
    """The pixel size in nm of a micrograph file (None if uncalibrated), and how it was found.

    Reads only the header of TIFF files; other files are read whole.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.tif"
    >>> tifffile.imwrite(path, np.zeros((4, 4), np.uint8), imagej=True,
    ...                  resolution=(1 / 0.002, 1 / 0.002), metadata={"unit": "micron"})
    >>> read_pixel_size(path)[0]
    2.0
    """
    src = _source(source)
    suffix = src.suffix.lower()
    if suffix in _TIFF:
        _, nm, meta = _read_tiff(src, pixels=False)
        return nm, meta
    if suffix in MICROSCOPE_SUFFIXES:
        _, nm, meta = _read_rsciio(src, suffix, index=index)
        return nm, meta
    if not src.exists():
        raise ImageError(f"{src}: no such image file")
    return None, {"format": suffix.lstrip("."), "calibration": None,
                  "why": f"{suffix or 'this'} files carry no microscope calibration"}


# ---------------------------------------------------------------------------------------------
# TIFF


def _ratio(value: Any) -> float | None:
    try:
        if isinstance(value, tuple) and len(value) == 2:
            num, den = value
            return float(num) / float(den) if den else None
        return float(value)
    except (TypeError, ValueError):
        return None


def _read_tiff(src: ImageSource, *, pixels: bool) -> tuple[np.ndarray | None, float | None, dict[str, Any]]:
    import tifffile

    try:
        handle: Any = io.BytesIO(src.read_bytes()) if src.member else src.path
    except (OSError, KeyError) as err:
        raise ImageError(f"{src}: cannot read image file ({err})") from err
    if not src.member and not src.path.is_file():
        raise ImageError(f"{src}: no such image file")
    try:
        with tifffile.TiffFile(handle) as tf:
            page = tf.pages.first
            array = page.asarray() if pixels else None
            nm, meta = _tiff_calibration(tf, page)
    except ImageError:
        raise
    except Exception as err:  # tifffile raises many types for broken files
        raise ImageError(f"{src}: not a readable TIFF ({type(err).__name__}: {err})") from err
    if array is not None and array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    meta["format"] = "tiff"
    return array, nm, meta


def _tiff_calibration(tf: Any, page: Any) -> tuple[float | None, dict[str, Any]]:
    tags = page.tags
    xres = _ratio(tags["XResolution"].value) if "XResolution" in tags else None
    yres = _ratio(tags["YResolution"].value) if "YResolution" in tags else None
    skipped: list[str] = []

    ij = tf.imagej_metadata
    if ij and ij.get("unit") not in (None, "", "pixel", "pixels"):
        unit = str(ij["unit"])
        factor = unit_to_nm(unit)
        if factor is not None and xres:
            sy = factor / yres if yres else None
            nm = _square(factor / xres, sy, "imagej")
            return nm, {"calibration": "imagej", "unit": unit, "scale": 1.0 / xres}
        skipped.append(f"ImageJ unit {unit!r} is not a length or has no XResolution")

    fei = tf.fei_metadata
    if fei:
        for section in ("Scan", "EScan", "IScan"):
            part = fei.get(section) or {}
            width = _ratio(part.get("PixelWidth"))
            if width and width > 0:
                height = _ratio(part.get("PixelHeight"))
                nm = _square(width * 1e9, height * 1e9 if height else None, "fei")
                return nm, {"calibration": "fei", "unit": "m", "scale": width, "section": section}
        skipped.append("FEI metadata without [Scan] PixelWidth")

    sem = tf.sem_metadata
    if sem:
        for key in ("ap_pixel_size", "ap_image_pixel_size"):
            entry = sem.get(key)
            if isinstance(entry, tuple) and len(entry) >= 2:
                text = f"{entry[1]} {entry[2]}" if len(entry) >= 3 else str(entry[1])
                try:
                    nm = parse_length(text, what="pixel size")
                except ValueError:
                    skipped.append(f"Zeiss {key} {text!r} is not a length")
                    continue
                return nm, {"calibration": "zeiss-sem", "unit": entry[2] if len(entry) >= 3 else "nm",
                            "scale": entry[1], "key": key}

    if xres and "ResolutionUnit" in tags:
        unit_code = int(tags["ResolutionUnit"].value)
        per_nm = {2: 25.4e6, 3: 1e7, 4: 1e6, 5: 1e3}.get(unit_code)  # inch, cm, mm, µm (tifffile)
        if per_nm is not None:
            dpi = xres * 25.4e6 / per_nm
            if any(abs(dpi - d) < 0.01 for d in _DISPLAY_DPI):
                skipped.append(f"XResolution {dpi:g} dpi is a display resolution, not a calibration")
            else:
                sy = per_nm / yres if yres else None
                nm = _square(per_nm / xres, sy, "tiff-resolution")
                return nm, {"calibration": "tiff-resolution", "unit": {2: "inch", 3: "cm", 4: "mm", 5: "µm"}[unit_code],
                            "scale": 1.0 / xres}
    why = "; ".join(skipped) or "the TIFF has no ImageJ, vendor or physical resolution calibration"
    return None, {"calibration": None, "why": why}


def _square(sx_nm: float, sy_nm: float | None, where: str) -> float:
    """One pixel size from x and y scales (nm); the area-preserving mean when they differ."""
    sx_nm = _tidy(abs(sx_nm))
    if sy_nm is None or not math.isfinite(sy_nm) or sy_nm == 0:
        return sx_nm
    sy_nm = _tidy(abs(sy_nm))
    if abs(sx_nm - sy_nm) > 1e-3 * max(sx_nm, sy_nm):
        warnings.warn(
            f"{where}: pixels are not square (x {sx_nm:g} nm, y {sy_nm:g} nm); using sqrt(x·y) = "
            f"{math.sqrt(sx_nm * sy_nm):g} nm, which keeps areas right but not lengths along x or y",
            CalibrationWarning, stacklevel=4,
        )
        return _tidy(math.sqrt(sx_nm * sy_nm))
    return sx_nm


# ---------------------------------------------------------------------------------------------
# rosettasciio: DM3/DM4, SER/EMI, EMD


def _is_image(d: Mapping[str, Any]) -> bool:
    data = d.get("data")
    axes = [a for a in d.get("axes", ()) if not a.get("navigate", False)]
    return data is not None and np.ndim(data) == 2 and len(axes) == 2


def _rgb(data: np.ndarray) -> np.ndarray:
    if data.dtype.names:  # DigitalMicrograph RGB images come as a structured dtype
        names = [n for n in ("R", "G", "B") if n in data.dtype.names]
        if len(names) == 3:
            return np.stack([data[n] for n in names], axis=-1)
    return np.asarray(data)


def _read_rsciio(src: ImageSource, suffix: str, *, index: int) -> tuple[np.ndarray, float | None, dict[str, Any]]:
    import importlib

    module = MICROSCOPE_SUFFIXES[suffix]
    try:
        reader = importlib.import_module(f"rsciio.{module}").file_reader
    except ImportError as err:
        raise ImageError(
            f"{src}: reading {suffix} files needs rosettasciio; install it with "
            f"pip install 'defectlab[microscope]' (or pip install rosettasciio)"
        ) from err
    if not src.exists():
        raise ImageError(f"{src}: no such image file")
    tmp_dir = None
    try:
        if src.member:  # rosettasciio reads files by name: extract the member first
            tmp_dir = tempfile.mkdtemp(prefix="defectlab-")
            path = os.path.join(tmp_dir, "image" + suffix)
            with open(path, "wb") as fh:
                fh.write(src.read_bytes())
        else:
            path = str(src.path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rosettasciio's own chatter; our notes say what matters
            datasets = reader(path)
    except ImageError:
        raise
    except Exception as err:  # the readers raise many types for broken files
        raise ImageError(f"{src}: not a readable {suffix} file ({type(err).__name__}: {err})") from err
    finally:
        if tmp_dir is not None:
            import shutil

            shutil.rmtree(tmp_dir, ignore_errors=True)
    images = [d for d in datasets if _is_image(d)]
    if not images:
        found = ", ".join(f"{np.ndim(d.get('data'))}-D" for d in datasets) or "nothing"
        raise ImageError(f"{src}: holds no single 2-D image (found {found}); defectlab measures 2-D micrographs")
    if not 0 <= index < len(images):
        raise ImageError(f"{src}: holds {len(images)} 2-D image(s); expected index 0..{len(images) - 1}, got {index}")
    d = images[index]
    array = _rgb(np.asarray(d["data"]))
    signal = [a for a in d["axes"] if not a.get("navigate", False)]
    by_name = {str(a.get("name", "")).lower(): a for a in signal}
    ax_y, ax_x = (by_name["y"], by_name["x"]) if {"x", "y"} <= set(by_name) else (signal[0], signal[1])
    meta: dict[str, Any] = {"format": module, "images_in_file": len(images), "index": index}
    title = d.get("metadata", {}).get("General", {}).get("title")
    if title:
        meta["title"] = title
    ux, uy = ax_x.get("units"), ax_y.get("units")
    fx, fy = unit_to_nm(ux), unit_to_nm(uy)
    sx, sy = _ratio(ax_x.get("scale")), _ratio(ax_y.get("scale"))
    meta.update(unit=ux, scale=sx)
    if fx is None or not sx:
        meta.update(calibration=None, why=f"the x axis unit {ux!r} is not a length (scale {sx!r})")
        return array, None, meta
    nm = _square(sx * fx, sy * fy if (fy and sy) else None, module)
    meta["calibration"] = module
    return array, nm, meta
