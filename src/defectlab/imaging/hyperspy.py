"""HyperSpy signals in, HyperSpy signals out: micrographs with calibrated axes.

HyperSpy's :class:`~hyperspy.signals.Signal2D` is what TEM people hold their micrographs in
(``hs.load("a.dm4")`` reads it through rosettasciio, with the calibration and the
microscope's metadata). defectlab reads one like a file and gives its predictions back as
signals on the same axes:

=======================================  ===================================================
``read_micrograph(signal)``              a :class:`~defectlab.imaging.micrograph.Micrograph`:
                                         pixel size from the signal axes' ``scale`` and
                                         ``units`` (any length unit; ``index=`` picks one
                                         image of a stack); ``metadata["hyperspy"]`` keeps
                                         the signal's metadata tree
``micrographs_from_signal(signal)``      every image of a stack (navigation axes), in order
``predict_signal(model, signal)``        :class:`SignalPrediction`: ``classes`` and
                                         ``instances`` signals with the input's axes (its
                                         navigation axes too) and names, the
                                         ``predictions``, and ``measure()``: sizes in nm
                                         with the signal's metadata kept in
                                         ``settings["micrograph"]`` and ``summary.json``
=======================================  ===================================================

HyperSpy orders a Signal2D's signal axes (x, y) and its data (…, y, x). The x and y axes'
scales must agree within 0.1 % (else their area-preserving mean, with a
:class:`~defectlab.imaging.micrograph.CalibrationWarning`); a unit that is not a length
(``1/nm`` of a diffraction pattern, ``<undefined>``) means no calibration.

``import defectlab`` does not import hyperspy; this module imports it only to build signals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import ImageError

__all__ = ["is_signal", "micrograph_from_signal", "micrographs_from_signal", "signal_like", "predict_signal",
           "SignalPrediction", "HYPERSPY_INSTALL"]

HYPERSPY_INSTALL = "pip install 'defectlab[hyperspy]' (or pip install hyperspy)"


def is_signal(obj: Any) -> bool:
    """True for a HyperSpy signal (checked without importing hyperspy)."""
    return type(obj).__module__.startswith("hyperspy") and hasattr(obj, "axes_manager") and hasattr(obj, "data")


def _check(signal: Any) -> None:
    if not is_signal(signal):
        raise ImageError(f"expected a HyperSpy Signal2D, got {type(signal).__name__}")
    if signal.axes_manager.signal_dimension != 2:
        raise ImageError(f"expected a HyperSpy Signal2D (2 signal axes: x, y), got a signal with "
                         f"{signal.axes_manager.signal_dimension} signal axes ({type(signal).__name__}); "
                         "use signal.as_signal2D((x_axis, y_axis)) first")


def _title(signal: Any) -> str:
    try:
        return str(signal.metadata.General.title or "")
    except AttributeError:
        return ""


def _calibration(signal: Any) -> tuple[float | None, dict[str, Any]]:
    from .micrograph import _square, unit_to_nm

    ax_x, ax_y = signal.axes_manager.signal_axes
    ux, uy = ax_x.units, ax_y.units
    meta: dict[str, Any] = {"format": "hyperspy", "unit": ux if isinstance(ux, str) else None,
                            "scale": float(ax_x.scale), "offset_xy": [float(ax_x.offset), float(ax_y.offset)]}
    if not getattr(ax_x, "is_uniform", True) or not getattr(ax_y, "is_uniform", True):
        meta.update(calibration=None, why="the signal axes are not uniform (no single pixel size)")
        return None, meta
    fx, fy = unit_to_nm(ux if isinstance(ux, str) else None), unit_to_nm(uy if isinstance(uy, str) else None)
    if fx is None or not ax_x.scale:
        meta.update(calibration=None, why=f"the x axis unit {ux!r} is not a length (scale {ax_x.scale!r})")
        return None, meta
    nm = _square(float(ax_x.scale) * fx, float(ax_y.scale) * fy if fy else None, "hyperspy")
    meta["calibration"] = "hyperspy"
    return nm, meta


def _metadata_tree(signal: Any) -> dict[str, Any]:
    """The signal's metadata as plain JSON-ready values (HyperSpy's own bookkeeping left out)."""
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items() if not str(k).startswith("_")}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (np.generic,)):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist() if v.size <= 64 else f"<array {v.dtype} {v.shape}>"
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        return str(v)

    try:
        return clean(signal.metadata.as_dictionary())
    except AttributeError:
        return {}


def _nav_indices(signal: Any) -> list[tuple[int, ...]]:
    """Indices into ``signal.data``'s leading (navigation) dimensions, in data order."""
    nav_ndim = signal.data.ndim - 2
    return list(np.ndindex(*signal.data.shape[:nav_ndim])) if nav_ndim else [()]


def micrographs_from_signal(signal: Any, *, pixel_size: str | float | None = None) -> list[Any]:
    """Every 2-D image of a Signal2D (one per navigation position) as a Micrograph.

    Examples
    --------
    >>> import numpy as np, hyperspy.api as hs
    >>> s = hs.signals.Signal2D(np.zeros((2, 4, 6), np.uint16))
    >>> for ax in s.axes_manager.signal_axes:
    ...     ax.scale, ax.units = 0.25, "nm"
    >>> [(m.size_hw, m.pixel_size_nm, m.metadata["navigation_index"]) for m in micrographs_from_signal(s)]
    [((4, 6), 0.25, [0]), ((4, 6), 0.25, [1])]
    """
    from .micrograph import Micrograph, parse_length

    _check(signal)
    nm, meta = _calibration(signal)
    meta["title"] = _title(signal)
    meta["hyperspy"] = _metadata_tree(signal)
    if pixel_size is not None:
        meta = {**meta, "file_pixel_size_nm": nm, "calibration": "override"}
        nm = parse_length(pixel_size, what="pixel size")
    out = []
    data = np.asarray(signal.data)
    for idx in _nav_indices(signal):
        source = f"hyperspy signal {meta['title']!r}" + (f"[{', '.join(map(str, idx))}]" if idx else "")
        out.append(Micrograph(np.asarray(data[idx]), nm, source, {**meta, "navigation_index": list(idx)}))
    return out


def micrograph_from_signal(signal: Any, *, pixel_size: str | float | None = None, index: int = 0) -> Any:
    """One image of a Signal2D (``index`` counts the navigation positions in data order)."""
    images = micrographs_from_signal(signal, pixel_size=pixel_size)
    if not 0 <= index < len(images):
        raise ImageError(f"the signal holds {len(images)} 2-D image(s); expected index 0..{len(images) - 1}, "
                         f"got {index}")
    return images[index]


def signal_like(data: np.ndarray, reference: Any, *, title: str, quantity: str | None = None) -> Any:
    """A Signal2D holding ``data`` (shaped like ``reference.data``) on ``reference``'s axes."""
    try:
        import hyperspy.api as hs
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"HyperSpy signals need hyperspy: {HYPERSPY_INSTALL}") from err
    if tuple(data.shape) != tuple(reference.data.shape):
        raise ValueError(f"expected data of shape {reference.data.shape}, got {data.shape}")
    axes = reference.axes_manager.as_dictionary()
    out = hs.signals.Signal2D(data, axes=[axes[k] for k in sorted(axes, key=lambda k: int(k.split("-")[1]))])
    out.metadata.General.title = title
    if quantity:
        out.metadata.set_item("Signal.quantity", quantity)
    return out


@dataclass
class SignalPrediction:
    """A model's predictions for every image of a Signal2D, as signals on its axes.

    Attributes
    ----------
    classes : Signal2D
        uint8 class index per pixel (0 = background), the input's shape and axes.
    instances : Signal2D
        int32 instance id per pixel (0 = background), numbered per image.
    predictions : list of Prediction
        One per image, in navigation (data) order.
    micrographs : list of Micrograph
        The images predicted, with their calibration and the signal's metadata.
    classes_names : dict
        Class index -> name.
    """

    classes: Any
    instances: Any
    predictions: list[Any]
    micrographs: list[Any]
    class_names: dict[int, str] = field(default_factory=dict)
    colors_rgb: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def pixel_size_nm(self) -> float | None:
        return self.micrographs[0].pixel_size_nm if self.micrographs else None

    def dataset(self, *, tolerance: float = 0.5) -> Any:
        """The predicted instances as a Dataset of polygons (one item per image), as pre-labels."""
        from ..dl.prelabels import prediction_item, prelabels_dataset
        from ..model import Label

        items, notes = [], []
        title = self.micrographs[0].metadata.get("title") or "signal" if self.micrographs else "signal"
        for k, (pred, mic) in enumerate(zip(self.predictions, self.micrographs)):
            idx = mic.metadata.get("navigation_index") or []
            name = f"{title}[{','.join(map(str, idx))}]" if idx else str(title)
            item, item_notes = prediction_item(pred.semantic, pred.instances, pred.instance_classes, name,
                                               self.class_names, tolerance=tolerance, item_id=k)
            items.append(item)
            notes += item_notes
        labels = [Label(n, color="#{:02x}{:02x}{:02x}".format(*self.colors_rgb[i - 1]) if self.colors_rgb else None)
                  for i, n in sorted(self.class_names.items())]
        return prelabels_dataset(items, labels, notes=notes)

    def measure(self, **options: Any) -> Any:
        """Measure the predicted defects in nm (the signal's pixel size), keeping its metadata.

        ``options`` go to :func:`defectlab.measurement.measure` (``thickness=``,
        ``include_border=``, …); ``pixel_size=`` overrides the axes' calibration.
        """
        from ..measurement import measure

        sizes = {m.pixel_size_nm for m in self.micrographs}
        nm = options.pop("pixel_size", None)
        if nm is None and len(sizes) == 1:
            nm = next(iter(sizes))
        m = measure(self.dataset(), pixel_size=nm, intensity=False, **options)
        first = self.micrographs[0].metadata if self.micrographs else {}
        m.settings["micrograph"] = {"title": first.get("title"), "calibration": first.get("calibration"),
                                    "unit": first.get("unit"), "scale": first.get("scale"),
                                    "metadata": first.get("hyperspy", {})}
        return m


def predict_signal(model: Any, signal: Any, *, pixel_size: str | float | None = None, progress: bool = False,
                   **options: Any) -> SignalPrediction:
    """Predict every image of a HyperSpy Signal2D with a model (``model.predict(image)``).

    Parameters
    ----------
    model : Model or BioimageioModel
        Anything with ``predict(image, **options) -> Prediction`` (a defectlab model, a
        bioimage.io package loaded with :func:`defectlab.dl.bioimageio.load_bioimageio`).
    signal : Signal2D
        One micrograph, or a stack (navigation axes: a tilt or time series, a map).
    pixel_size : str or float, optional
        Overrides the axes' calibration.
    progress : bool
        A progress bar over the images.
    **options
        Passed to ``model.predict``.

    Returns
    -------
    SignalPrediction
    """
    mics = micrographs_from_signal(signal, pixel_size=pixel_size)
    classes = np.zeros(signal.data.shape, dtype=np.uint8)
    instances = np.zeros(signal.data.shape, dtype=np.int32)
    preds = []
    it: Iterable[Any] = mics
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(mics, desc="predict", unit="img")
    for mic in it:
        pred = model.predict(mic.array, **options)
        idx = tuple(mic.metadata["navigation_index"])
        classes[idx] = pred.semantic
        instances[idx] = pred.instances
        preds.append(pred)
    title = _title(signal) or "micrograph"
    names = dict(getattr(model, "classes", {}) or {})
    colors = list(getattr(getattr(model, "config", None), "colors_rgb", None) or getattr(model, "colors_rgb", []) or [])
    return SignalPrediction(signal_like(classes, signal, title=f"{title} classes", quantity="class index"),
                            signal_like(instances, signal, title=f"{title} instances", quantity="instance id"),
                            preds, mics, names, colors)

