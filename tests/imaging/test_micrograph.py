"""Micrographs with calibration: files written here with their writers' own calibration fields
(tifffile for TIFF tags, h5py following the EMD specs, the TIA SER layout by struct), read back."""

from __future__ import annotations

import json
import math
import struct
import warnings
import zipfile

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from defectlab.errors import ImageError
from defectlab.imaging.micrograph import (
    CalibrationWarning,
    parse_length,
    read_micrograph,
    read_pixel_size,
    unit_to_nm,
)
from defectlab.model import ImageSource

IMG = (np.arange(6 * 8, dtype=np.uint16) * 37 % 1000).reshape(6, 8)  # not symmetric: catches flips and transposes


# ---------------------------------------------------------------------------------------------
# Lengths and units


@pytest.mark.parametrize("text, nm", [
    ("0.38nm", 0.38), ("0.38 nm", 0.38), ("3.8 Å", 0.38), ("3.8Å", 0.38), ("3.8A", 0.38),
    ("3.8 angstrom", 0.38), ("380pm", 0.38), ("0.00038um", 0.38), ("0.00038 µm", 0.38),
    ("0.00038 \u03bcm", 0.38),  # Greek mu, as some files write it
    ("0.00038 micron", 0.38), ("3.8e-10 m", 0.38), ("3.8E-10m", 0.38), ("80 nm", 80.0), ("0.5", 0.5),
    (".5nm", 0.5), (2, 2.0), (0.38, 0.38),
])
def test_parse_length(text, nm):
    assert parse_length(text) == pytest.approx(nm, rel=1e-12)


@pytest.mark.parametrize("bad, match", [
    ("abc", "expected a length like"), ("-1nm", "positive"), ("0 nm", "positive"),
    ("1 furlong", "length unit"), ("1/nm", "length unit"), (True, "expected a length"),
    (float("nan"), "positive, finite"), (None, "expected a length"),
])
def test_parse_length_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_length(bad)


def test_parse_length_names_what_it_parses():
    with pytest.raises(ValueError, match="thickness"):
        parse_length("eighty", what="thickness")


@pytest.mark.parametrize("unit, nm", [
    ("m", 1e9), ("meters", 1e9), ("mm", 1e6), ("µm", 1e3), ("\u03bcm", 1e3), ("\\u00B5m", 1e3), ("um", 1e3),
    ("micron", 1e3), ("nm", 1.0), ("NM", 1.0), ("Å", 0.1), ("\u212b", 0.1), ("A", 0.1), ("pm", 1e-3),
])
def test_unit_to_nm(unit, nm):
    assert unit_to_nm(unit) == nm


@pytest.mark.parametrize("unit", ["1/nm", "1 / nm", "px", "pixel", "", "<undefined>", None, "s"])
def test_unit_to_nm_of_non_lengths_is_none(unit):
    assert unit_to_nm(unit) is None


# ---------------------------------------------------------------------------------------------
# TIFF


def test_imagej_tiff_in_nm(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMG, imagej=True, resolution=(1 / 0.38, 1 / 0.38), metadata={"unit": "nm"})
    m = read_micrograph(path)
    assert m.pixel_size_nm == pytest.approx(0.38, rel=1e-9)
    assert m.metadata["calibration"] == "imagej"
    np.testing.assert_array_equal(m.array, IMG)
    assert m.size_hw == (6, 8)


@pytest.mark.parametrize("unit", ["micron", "\\u00B5m", "um"])
def test_imagej_tiff_in_microns(tmp_path, unit):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMG, imagej=True, resolution=(400.0, 400.0), metadata={"unit": unit})  # 400 px per µm
    assert read_pixel_size(path)[0] == pytest.approx(2.5, rel=1e-12)


def test_imagej_tiff_without_a_length_unit_is_uncalibrated(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMG, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "pixel"})
    nm, meta = read_pixel_size(path)
    assert nm is None and meta["calibration"] is None


def test_fei_tiff_tag(tmp_path):
    path = tmp_path / "fei.tif"
    text = "[User]\r\nDate=01/02/2024\r\n[Scan]\r\nPixelWidth=1.5e-009\r\nPixelHeight=1.5e-009\r\n"
    tifffile.imwrite(path, IMG, extratags=[(34682, "s", 0, text, True)])  # FEI_HELIOS
    nm, meta = read_pixel_size(path)
    assert nm == pytest.approx(1.5, rel=1e-12)
    assert meta["calibration"] == "fei" and meta["section"] == "Scan"


def test_zeiss_sem_tiff_tag(tmp_path):
    path = tmp_path / "zeiss.tif"
    text = "0\r\n1\r\nAP_PIXEL_SIZE\r\nPixel Size = 2.5 nm\r\nDP_NAME\r\nName = test\r\n"
    tifffile.imwrite(path, IMG, extratags=[(34118, "s", 0, text, True)])  # CZ_SEM
    nm, meta = read_pixel_size(path)
    assert nm == pytest.approx(2.5) and meta["calibration"] == "zeiss-sem"


def test_tiff_resolution_in_centimetres(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMG, resolution=(2e7, 2e7), resolutionunit="CENTIMETER")  # 2e7 px/cm = 0.5 nm
    assert read_pixel_size(path)[0] == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("dpi", [72, 96, 300])
def test_tiff_display_dpi_is_not_a_calibration(tmp_path, dpi):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMG, resolution=(dpi, dpi), resolutionunit="INCH")
    nm, meta = read_pixel_size(path)
    assert nm is None and "display resolution" in meta["why"]


def test_non_square_pixels_warn_and_keep_the_area(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMG, imagej=True, resolution=(1 / 0.5, 1 / 2.0), metadata={"unit": "nm"})
    with pytest.warns(CalibrationWarning, match="not square"):
        nm, _ = read_pixel_size(path)
    assert nm == pytest.approx(1.0)  # sqrt(0.5 × 2.0): the pixel area is right


def test_png_has_no_calibration(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(IMG.astype(np.uint8)).save(path)
    m = read_micrograph(path)
    assert m.pixel_size_nm is None and "no microscope calibration" in m.metadata["why"]
    np.testing.assert_array_equal(m.array, IMG.astype(np.uint8))


def test_an_explicit_pixel_size_wins(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, IMG, imagej=True, resolution=(1.0, 1.0), metadata={"unit": "nm"})
    m = read_micrograph(path, pixel_size="3.8 Å")
    assert m.pixel_size_nm == pytest.approx(0.38)
    assert m.metadata["calibration"] == "override" and m.metadata["file_pixel_size_nm"] == 1.0


def test_tiff_inside_a_zip(tmp_path):
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, IMG, imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={"unit": "nm"})
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tif, "images/a.tif")
    m = read_micrograph(ImageSource(archive, "images/a.tif"))
    assert m.pixel_size_nm == pytest.approx(0.25)


def test_missing_and_broken_files_raise_image_errors(tmp_path):
    with pytest.raises(ImageError, match="nope.tif"):
        read_micrograph(tmp_path / "nope.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(ImageError, match="bad.tif: not a readable TIFF"):
        read_micrograph(bad)
    dm = tmp_path / "broken.dm3"
    dm.write_bytes(b"\x00" * 64)
    with pytest.raises(ImageError, match="broken.dm3: not a readable .dm3 file"):
        read_micrograph(dm)


# ---------------------------------------------------------------------------------------------
# rosettasciio formats: EMD (Berkeley/NCEM and Velox) and TIA SER, written by the test


def write_ncem_emd(path, image, scale, units):
    """Berkeley EMD: a group with ``emd_group_type = 1``, ``data`` and one ``dimN`` vector per
    axis. As ncempy and rosettasciio store it, the data is column-major: ``data`` is the image
    transposed (x, y), ``dim1`` the x coordinates, ``dim2`` the y coordinates."""
    h, w = image.shape
    with h5py.File(path, "w") as f:
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        g = f.create_group("data/micrograph")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=image.T)
        d1 = g.create_dataset("dim1", data=np.arange(w) * scale)
        d1.attrs["name"], d1.attrs["units"] = "x", units
        d2 = g.create_dataset("dim2", data=np.arange(h) * scale)
        d2.attrs["name"], d2.attrs["units"] = "y", units


@pytest.mark.parametrize("scale, units, nm", [(0.5, "[n_m]", 0.5), (3.8, "[Å]", 0.38)])
def test_berkeley_emd(tmp_path, scale, units, nm):
    path = tmp_path / "a.emd"
    write_ncem_emd(path, IMG, scale, units)
    m = read_micrograph(path)
    assert m.pixel_size_nm == pytest.approx(nm, rel=1e-9)
    assert m.metadata["calibration"] == "emd"
    np.testing.assert_array_equal(m.array, IMG)


def test_velox_emd(tmp_path):
    """Velox EMD: ``Version`` (JSON), ``Data/Image/<id>/Data`` (H, W, frames) and ``Metadata``
    (JSON bytes, zero-padded, one column per frame) whose ``BinaryResult.PixelSize`` is in
    ``PixelUnitX`` (metres)."""
    path = tmp_path / "velox.emd"
    md = {"BinaryResult": {"PixelSize": {"width": "2.5e-10", "height": "2.5e-10"}, "PixelUnitX": "m",
                           "PixelUnitY": "m", "Offset": {"x": "0", "y": "0"}, "DetectorIndex": "0"},
          "Detectors": {"Detector-0": {"DetectorName": "BM-Ceta"}},
          "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}}, "Scan": {}}
    raw = np.frombuffer(json.dumps(md).encode(), np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=np.array([json.dumps({"format": "Velox", "version": "11"}).encode()]))
        g = f.create_group("Data/Image/6fdbde41eecc4375b45cd86bd2be17c0")
        g.create_dataset("Data", data=IMG[:, :, None])
        meta = np.zeros((len(raw) + 16, 1), np.uint8)
        meta[: len(raw), 0] = raw
        g.create_dataset("Metadata", data=meta)
    m = read_micrograph(path)
    assert m.pixel_size_nm == pytest.approx(0.25, rel=1e-9)
    np.testing.assert_array_equal(m.array, IMG)


def write_ser(path, image, delta_m):
    """A TIA .ser holding one 2-D image (Boothroyd's description of the format): header
    (byte order 0x4949, series id 0x0197, version 0x0210, data type 0x4122 = 2-D, tag type
    0x4152 = time), one dimension array, the offset arrays, then the element: calibration
    (offset, delta in metres, element) for x and y, data type, size x, size y, and the pixels
    stored bottom row first."""
    h, w = image.shape
    dim = struct.pack("<IddII", 1, 0.0, 1.0, 0, 0) + struct.pack("<I", 0)
    head_len = struct.calcsize("<HHHIIIIII")
    offsets_at = head_len + len(dim)
    data_at = offsets_at + 8
    element = struct.pack("<ddIddIHII", 0.0, delta_m, 0, 0.0, delta_m, 0, 2, w, h) + image[::-1].astype("<u2").tobytes()
    tag_at = data_at + len(element)
    header = struct.pack("<HHHIIIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, 1, 1, offsets_at, 1)
    path.write_bytes(header + dim + struct.pack("<II", data_at, tag_at) + element + struct.pack("<HHI", 0x4152, 0, 0))


def test_tia_ser(tmp_path):
    path = tmp_path / "a.ser"
    write_ser(path, IMG, 3.8e-10)
    m = read_micrograph(path)
    assert m.pixel_size_nm == pytest.approx(0.38, rel=1e-9)
    assert m.metadata["calibration"] == "tia"
    np.testing.assert_array_equal(m.array, IMG)


def test_emd_without_length_units_is_uncalibrated(tmp_path):
    path = tmp_path / "a.emd"
    write_ncem_emd(path, IMG, 0.01, "[1_/_n_m]")  # a diffraction pattern: reciprocal length
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        m = read_micrograph(path)
    assert m.pixel_size_nm is None and "not a length" in m.metadata["why"]
    assert math.isfinite(float(m.array.sum()))
