"""HyperSpy signals: calibration from the axes, stacks, predictions as signals on the same
axes, and the metadata rosettasciio reads (``hs.load`` of a ``.hspy`` file) kept through to
``measure``.

Expected sizes come from pixel counts of discs drawn with scikit-image and the axes' scale.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import hyperspy.api as hs
from skimage.draw import disk

from defectlab.errors import ImageError
from defectlab.imaging.hyperspy import micrographs_from_signal, predict_signal
from defectlab.imaging.micrograph import CalibrationWarning, read_micrograph


def _signal(data: np.ndarray, scale: float = 0.5, units: str = "nm", title: str = "bubbles") -> object:
    s = hs.signals.Signal2D(data)
    for ax, name in zip(s.axes_manager.signal_axes, ("x", "y")):
        ax.scale, ax.units, ax.name, ax.offset = scale, units, name, 3.0
    s.metadata.General.title = title
    return s


@pytest.mark.parametrize("scale, units, nm", [(0.5, "nm", 0.5), (0.002, "µm", 2.0), (3.8, "Å", 0.38), (2e-9, "m", 2.0)])
def test_read_micrograph_takes_the_axes_calibration(scale, units, nm) -> None:
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    m = read_micrograph(_signal(img, scale, units))
    assert m.pixel_size_nm == pytest.approx(nm, rel=1e-9)
    assert m.metadata["calibration"] == "hyperspy" and m.metadata["title"] == "bubbles"
    np.testing.assert_array_equal(m.array, img)  # data (y, x): the signal axes are (x, y)


def test_uncalibrated_and_non_square_axes() -> None:
    m = read_micrograph(hs.signals.Signal2D(np.zeros((4, 4))))
    assert m.pixel_size_nm is None and "not a length" in m.metadata["why"]
    s = _signal(np.zeros((4, 4)))
    s.axes_manager.signal_axes[1].scale = 0.8
    with pytest.warns(CalibrationWarning, match="not square"):
        m = read_micrograph(s)
    assert m.pixel_size_nm == pytest.approx(math.sqrt(0.5 * 0.8))
    with pytest.warns(CalibrationWarning):  # the axes are read (and warned about) before the override wins
        assert read_micrograph(s, pixel_size="1nm").pixel_size_nm == 1.0


def test_a_stack_is_one_micrograph_per_navigation_position() -> None:
    data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    mics = micrographs_from_signal(_signal(data))
    assert [m.metadata["navigation_index"] for m in mics] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    np.testing.assert_array_equal(mics[4].array, data[1, 1])
    np.testing.assert_array_equal(read_micrograph(_signal(data), index=5).array, data[1, 2])
    with pytest.raises(ImageError, match="holds 6 2-D image"):
        read_micrograph(_signal(data), index=6)
    with pytest.raises(ImageError, match="Signal2D"):
        read_micrograph(hs.signals.Signal1D(np.zeros((3, 8))))


class _Discs:
    """A test double of a model: one disc of class 1 per image, radius ``r`` px at (cy, cx)."""

    classes = {1: "cavity"}
    colors_rgb = [(255, 0, 0)]

    def __init__(self, centers_radii) -> None:
        self.centers_radii = list(centers_radii)
        self.calls = 0

    def predict(self, image, **_):
        from defectlab.dl.predict import Prediction

        (cy, cx), r = self.centers_radii[self.calls]
        self.calls += 1
        sem = np.zeros(image.shape[:2], np.uint8)
        sem[disk((cy, cx), r, shape=sem.shape)] = 1
        return Prediction(sem, sem.astype(np.int32), np.array([1], np.uint8), np.array([1.0], np.float32), self.classes)


def test_predictions_are_signals_on_the_input_axes_and_measure_in_nm(tmp_path) -> None:
    data = np.random.default_rng(0).random((2, 64, 80)).astype(np.float32)
    s = _signal(data, scale=0.5)
    s.axes_manager.navigation_axes[0].name, s.axes_manager.navigation_axes[0].units = "time", "s"
    model = _Discs([((30, 40), 10), ((20, 25), 6)])
    out = predict_signal(model, s)
    for got in (out.classes, out.instances):
        assert got.data.shape == s.data.shape
        for a, b in zip(got.axes_manager._axes, s.axes_manager._axes):
            assert (a.name, a.scale, a.units, a.offset, a.navigate) == (b.name, b.scale, b.units, b.offset, b.navigate)
    assert out.classes.data.dtype == np.uint8 and out.classes.metadata.General.title == "bubbles classes"
    n0 = int(out.classes.data[0].sum())
    assert n0 == len(disk((30, 40), 10)[0])
    m = out.measure()
    rows = m.defects.rows()
    assert [r["image"] for r in rows] == ["bubbles[0]", "bubbles[1]"]
    assert rows[0]["area_px"] == n0 and rows[0]["area_nm2"] == pytest.approx(n0 * 0.25)
    assert rows[0]["diameter_nm"] == pytest.approx(2 * math.sqrt(n0 * 0.25 / math.pi))
    assert m.calibrated and m.settings["micrograph"]["title"] == "bubbles"


def test_what_rosettasciio_reads_is_kept_through_to_measure(tmp_path) -> None:
    img = np.zeros((64, 64), np.uint16)
    s = _signal(img, scale=0.25, units="nm", title="He bubbles 600C")
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    s.metadata.set_item("Acquisition_instrument.TEM.magnification", 50000.0)
    s.save(tmp_path / "a.hspy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = hs.load(tmp_path / "a.hspy")
    mic = read_micrograph(loaded)
    assert mic.pixel_size_nm == 0.25
    assert mic.metadata["hyperspy"]["Acquisition_instrument"]["TEM"]["beam_energy"] == 200.0
    out = predict_signal(_Discs([((32, 32), 8)]), loaded)
    m = out.measure(thickness="80nm")
    meta = m.settings["micrograph"]["metadata"]
    assert meta["General"]["title"] == "He bubbles 600C" and meta["Acquisition_instrument"]["TEM"]["magnification"] == 50000.0
    m.write(tmp_path / "report", figures=False)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["settings"]["micrograph"]["metadata"]["Acquisition_instrument"]["TEM"]["beam_energy"] == 200.0
    assert summary["images"][0]["pixel_size_nm"] == 0.25


def test_predict_signal_with_a_real_model() -> None:
    import torch

    from defectlab.dl.model_io import ClassInfo, Model, ModelConfig
    from defectlab.dl.unet import UNet, UNetConfig

    torch.manual_seed(0)
    net = UNet(UNetConfig(n_classes=2, base_filters=4, depth=2, bottleneck_dilations=(1,)))
    model = Model(net, ModelConfig.for_unet(net.config, classes=[ClassInfo(1, "cavity")], tile_size=64, overlap=16))
    data = np.random.default_rng(2).random((2, 40, 48)).astype(np.float32)
    out = predict_signal(model, _signal(data), engine="torch")
    for k in range(2):
        np.testing.assert_array_equal(out.classes.data[k], model.predict(data[k], engine="torch").semantic)
