"""napari dock widgets: predict the current image with a model, measure the current layers in nm.

Both are magicgui containers that napari docks (``Plugins » defectlab``); both keep their
last result (``last_prediction``, ``last_measurement``) for a notebook or a test to read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, LineEdit, PushButton, Table

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["PredictWidget", "MeasureWidget", "load_any_model"]


def load_any_model(path: str | Path) -> Any:
    """A defectlab model folder, or a bioimage.io package (``.zip`` / ``rdf.yaml``)."""
    p = Path(path)
    if p.is_dir() and (p / "config.json").is_file():
        from ..dl.model_io import load_model

        return load_model(p)
    from ..dl.bioimageio import load_bioimageio

    return load_bioimageio(p)


def _layers_of(viewer: Any, kind: str) -> list[Any]:
    return [layer for layer in viewer.layers if layer._type_string == kind]


class PredictWidget(Container):
    """Pick a model folder (or bioimage.io package) and an image layer; *Predict* adds the
    class mask and the instances as Labels layers on the image's grid and scale."""

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        self.viewer = napari_viewer
        self.model_path = LineEdit(label="model", tooltip="a defectlab model folder or a bioimage.io package (.zip)")
        self.image = ComboBox(label="image", choices=self._images)
        self.run = PushButton(text="Predict")
        self.status = Label(value="")
        super().__init__(widgets=[self.model_path, self.image, self.run, self.status])
        self.run.changed.connect(self.predict)
        napari_viewer.layers.events.inserted.connect(lambda *_: self.image.reset_choices())
        napari_viewer.layers.events.removed.connect(lambda *_: self.image.reset_choices())
        self._model: tuple[str, Any] | None = None
        self.last_prediction: Any = None

    def _images(self, *_: Any) -> list[Any]:
        return _layers_of(self.viewer, "image")

    def predict(self, *_: Any) -> Any:
        """Run the model on the chosen image layer; returns the Prediction."""
        from ..errors import DefectlabError

        path = str(self.model_path.value or "").strip()
        layer = self.image.value
        if not path or layer is None:
            self.status.value = "choose a model and an image layer"
            return None
        try:
            if self._model is None or self._model[0] != path:
                self._model = (path, load_any_model(path))
            model = self._model[1]
            data = np.asarray(layer.data)
            pred = model.predict(data[..., :3] if data.ndim == 3 and data.shape[-1] in (3, 4) else data)
        except (DefectlabError, OSError, ValueError) as err:
            self.status.value = f"error: {err}"
            raise
        colors = getattr(getattr(model, "config", None), "colors_rgb", None) or getattr(model, "colors_rgb", [])
        color_map = {0: None, **{i + 1: np.array([*c, 255]) / 255 for i, c in enumerate(colors)}}
        meta = {"defectlab": {"prediction": True, "classes": dict(model.classes),
                              "pixel_size_nm": (layer.metadata.get("defectlab") or {}).get("pixel_size_nm"),
                              "item": (layer.metadata.get("defectlab") or {}).get("item", layer.name)}}
        kw = {"scale": layer.scale, "translate": layer.translate, "metadata": meta}
        try:
            from napari.utils.colormaps import DirectLabelColormap

            kw["colormap"] = DirectLabelColormap(color_dict={None: "transparent", **color_map})
        except (ImportError, TypeError, ValueError):  # older napari: its own label colors
            pass
        self.viewer.add_labels(pred.semantic, name=f"{layer.name} classes", **kw)
        self.viewer.add_labels(pred.instances, name=f"{layer.name} instances", scale=layer.scale,
                               translate=layer.translate, metadata=meta, visible=False)
        counts = ", ".join(f"{n} {k}" for k, n in pred.counts().items())
        self.status.value = f"{pred.n_instances} instances ({counts}) in {pred.seconds:.1f} s"
        self.last_prediction = pred
        return pred


class MeasureWidget(Container):
    """Measure the Shapes layers and predicted Labels layers on screen, in nm.

    The pixel size comes from the layers (their image's calibration), or from the box;
    *Measure* fills a table per label (count, mean size, density, area fraction).
    """

    def __init__(self, napari_viewer: "napari.viewer.Viewer") -> None:
        self.viewer = napari_viewer
        self.pixel_size = FloatSpinBox(label="pixel size (nm)", value=0.0, min=0.0, max=1e6, step=0.01,
                                       tooltip="0: take it from the layers' calibration")
        self.run = PushButton(text="Measure")
        self.table = Table(value={"label": [], "count": []})
        self.status = Label(value="")
        super().__init__(widgets=[self.pixel_size, self.run, self.status, self.table])
        self.run.changed.connect(self.measure)
        self.last_measurement: Any = None

    def dataset(self) -> tuple[Any, float | None]:
        """The dataset the visible layers hold, and their pixel size in nm (None if unknown)."""
        from ..dl.prelabels import prediction_item, prelabels_dataset
        from ..model import Dataset, Label as DLabel
        from ._layers import META, layers_dataset

        drawn = [layer.as_layer_data_tuple() for layer in self.viewer.layers
                 if layer.visible and layer._type_string in ("shapes", "points")]
        nm = None
        for layer in self.viewer.layers:
            nm = nm or (layer.metadata.get(META) or {}).get("pixel_size_nm")
        parts = []
        if drawn:
            parts.append(layers_dataset(drawn))
        for layer in _layers_of(self.viewer, "labels"):
            meta = layer.metadata.get(META) or {}
            if not layer.visible or not meta.get("prediction") or layer.name.endswith(" instances"):
                continue
            inst_layer = next((lyr for lyr in _layers_of(self.viewer, "labels")
                               if lyr.name == layer.name[:-len(" classes")] + " instances"), None)
            semantic = np.asarray(layer.data)
            from scipy import ndimage

            if inst_layer is not None:
                instances = np.asarray(inst_layer.data).astype(np.int32)
            else:
                instances, _ = ndimage.label(semantic > 0)
            ids = np.arange(1, int(instances.max()) + 1)
            classes = np.asarray(ndimage.maximum(semantic, instances, ids), dtype=np.uint8) if len(ids) else \
                np.zeros(0, np.uint8)
            names = {int(k): v for k, v in meta.get("classes", {}).items()}
            item, _ = prediction_item(semantic, instances, classes, str(meta.get("item", layer.name)), names,
                                      tolerance=0.0)
            parts.append(prelabels_dataset([item], [DLabel(n) for _, n in sorted(names.items())]))
        if not parts:
            return Dataset((), ()), nm
        labels: dict[str, Any] = {}
        items = []
        for ds in parts:
            for lab in ds.labels:
                labels.setdefault(lab.name, lab)
            items += list(ds.items)
        return Dataset(tuple(labels.values()), tuple(items), source="napari", format="napari"), nm

    def measure(self, *_: Any) -> Any:
        """Measure; returns the :class:`~defectlab.measurement.Measurement`."""
        from ..measurement import measure

        ds, nm = self.dataset()
        if not len(ds):
            self.status.value = "no Shapes layer or predicted Labels layer to measure"
            return None
        if self.pixel_size.value:
            nm = float(self.pixel_size.value)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = measure(ds, pixel_size=nm, intensity=False)
        unit = "nm" if m.calibrated else "px"
        rows = m.per_set.rows()
        cols = ["label", "count", f"size_mean_{unit}", f"size_std_{unit}",
                "density_per_um2" if m.calibrated else "density_per_px2", "area_fraction"]
        self.table.value = {c: [r.get(c) for r in rows] for c in cols}
        self.status.value = f"{len(m.defects)} defects, sizes in {unit}" + ("" if m.calibrated else
                                                                            " (no pixel size: give one above)")
        self.last_measurement = m
        return m
