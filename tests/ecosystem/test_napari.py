"""The napari plugin in napari itself (its ``make_napari_viewer`` fixture, offscreen): open an
export, edit a shape, save it, read it back; predict and measure from the dock widgets.

napari's pixel centers sit at integer coordinates, ours at half-integers: every expected
coordinate below is the shape's own minus 0.5, (row, col).
"""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import pytest

import defectlab
from defectlab.model import Box, Dataset, Ellipse, Item, Label, Points, Polygon, Polyline
from defectlab.raster import semantic_mask


@pytest.fixture
def export(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "export"
    (folder / "images").mkdir(parents=True)
    Image.fromarray((np.random.default_rng(0).random((60, 80)) * 255).astype(np.uint8)).save(folder / "images" / "a.png")
    shapes = (
        Polygon(label="cavity", points_xy=[(10.5, 10.5), (20.0, 10.5), (15.25, 22.0)]),
        Ellipse(label="cavity", cx=40.0, cy=30.0, rx=6.0, ry=3.0, rotation_deg=30.0),
        Box(label="loop", xyxy=(50.0, 5.0, 70.0, 15.0)),
        Polyline(label="line", points_xy=[(5.0, 50.0), (30.0, 55.5)]),
        Points(label="point", points_xy=[(60.5, 45.5), (62.5, 47.5)]),
    )
    labels = (Label("cavity", color="#ff0000", edge="inner"), Label("loop", color="#00ff00", edge="outer"),
              Label("line", color="#0000ff", type="polyline"), Label("point", color="#ffff00", type="points"))
    defectlab.write(Dataset(labels, (Item("a.png", (60, 80), shapes),)), folder / "annotations.xml", format="cvat")
    return folder


def test_the_manifest_validates_with_npe2(defectlab_plugin) -> None:
    m = defectlab_plugin
    assert m.name == "defectlab"
    assert {w.display_name for w in m.contributions.widgets} == {"Predict defects", "Measure defects (nm)"}
    m.validate_imports()  # every python_name imports and exists


def test_open_edit_save_read_back(make_napari_viewer, headless_gl, defectlab_plugin, export, tmp_path) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open(str(export / "annotations.xml"), plugin="defectlab")
    names = [layer.name for layer in layers]
    assert names == ["a.png", "cavity", "loop", "line", "point points"]
    image, cavity, loop, line, points = layers
    assert image.data.shape == (60, 80)
    assert cavity.shape_type == ["polygon", "ellipse"] and loop.shape_type == ["rectangle"]
    np.testing.assert_allclose(cavity.data[0], [[10.0, 10.0], [10.0, 19.5], [21.5, 14.75]])  # (y, x) - 0.5
    np.testing.assert_allclose(cavity.edge_color[0], [1, 0, 0, 1])
    np.testing.assert_allclose(points.data, [[45.0, 60.0], [47.0, 62.0]])
    # edit: move the polygon's first vertex, as a user dragging it would
    data = [d.copy() for d in cavity.data]
    data[0][0] = [12.0, 8.0]
    cavity.data = data
    out = tmp_path / "edited.xml"
    written = napari.save_layers(str(out), [cavity, loop, line, points], plugin="defectlab")
    assert [Path(p) for p in written] == [out]
    back = defectlab.read(out)
    assert [lab.name for lab in back.labels] == ["cavity", "loop", "line", "point"]
    (item,) = back.items
    assert item.name == "a.png" and item.size_hw == (60, 80)
    polygon, ellipse, box, polyline, pts = item.shapes
    tol = 1e-4  # napari keeps vertices as float32: measured up to 3.3e-6 px (and 3.3e-6 degrees) here
    np.testing.assert_allclose(polygon.points_xy, [[8.5, 12.5], [20.0, 10.5], [15.25, 22.0]], atol=tol)
    np.testing.assert_allclose([ellipse.cx, ellipse.cy, ellipse.rx, ellipse.ry, ellipse.rotation_deg],
                               [40.0, 30.0, 6.0, 3.0, 30.0], atol=tol)
    assert box.xyxy == pytest.approx((50.0, 5.0, 70.0, 15.0), abs=tol) and box.rotation_deg == 0
    np.testing.assert_allclose(polyline.points_xy, [[5.0, 50.0], [30.0, 55.5]], atol=tol)
    np.testing.assert_allclose(pts.points_xy, [[60.5, 45.5], [62.5, 47.5]], atol=tol)
    assert back.label("cavity").color == "#ff0000"
    # COCO too: the unedited shapes give the same pixels as the export
    coco = tmp_path / "edited.json"
    napari.save_layers(str(coco), [loop], plugin="defectlab")
    ds = defectlab.read(coco)
    original = defectlab.read(export)
    loops = Item("a.png", (60, 80), tuple(s for s in original[0].shapes if s.label == "loop"))
    np.testing.assert_array_equal(semantic_mask(ds[0], {"loop": 1}), semantic_mask(loops, {"loop": 1}))


def test_predict_and_measure_widgets(make_napari_viewer, headless_gl, defectlab_plugin, tmp_path) -> None:
    import torch

    from defectlab.dl.model_io import ClassInfo, Model, ModelConfig, save_model
    from defectlab.dl.unet import UNet, UNetConfig
    from defectlab.napari._widgets import MeasureWidget, PredictWidget

    torch.manual_seed(0)
    net = UNet(UNetConfig(n_classes=2, base_filters=4, depth=2, bottleneck_dilations=(1,)))
    model = save_model(Model(net, ModelConfig.for_unet(net.config, classes=[ClassInfo(1, "cavity")], tile_size=64,
                                                       overlap=16)), tmp_path / "model")
    viewer = make_napari_viewer()
    image = (np.random.default_rng(1).random((48, 64)) * 255).astype(np.uint8)
    viewer.add_image(image, name="micrograph")
    w = PredictWidget(viewer)
    w.model_path.value = str(tmp_path / "model")
    w.image.value = viewer.layers["micrograph"]
    pred = w.predict()
    expected = model.predict(image)
    np.testing.assert_array_equal(viewer.layers["micrograph classes"].data, expected.semantic)
    np.testing.assert_array_equal(viewer.layers["micrograph instances"].data, pred.instances)
    # measure: a drawn disc-like polygon and the prediction, at 0.5 nm per pixel
    viewer.add_shapes([np.array([[10.0, 10.0], [10.0, 30.0], [30.0, 30.0], [30.0, 10.0]])], shape_type="polygon",
                      name="cavity")
    m_w = MeasureWidget(viewer)
    m_w.pixel_size.value = 0.5
    m = m_w.measure()
    rows = [r for r in m.defects.rows() if r["image"] == "image"]
    assert len(rows) == 1 and rows[0]["area_px"] == 400 and rows[0]["area_nm2"] == pytest.approx(100.0)
    predicted = [r for r in m.defects.rows() if r["image"] == "micrograph"]
    assert len(predicted) == expected.n_instances
    assert sum(r["area_px"] for r in predicted) == int(np.count_nonzero(expected.instances))
    assert m_w.table.shape[0] == len(m.per_set)


def test_the_reader_declines_what_defectlab_does_not_read(tmp_path) -> None:
    from defectlab.napari._reader import get_reader

    (tmp_path / "notes.txt").write_text("not labels")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader([str(tmp_path / "a"), str(tmp_path / "b")]) is None


def test_layer_data_round_trip_without_a_viewer() -> None:
    """The conversion alone (no Qt): every shape type there and back; a mask as its outline."""
    from defectlab.model import Mask
    from defectlab.napari._layers import dataset_layers, layers_dataset

    blob = np.zeros((5, 6), bool)
    blob[1:4, 1:5] = True
    shapes = (Box(label="c", xyxy=(2, 3, 12, 9), rotation_deg=20), Mask(label="c", bitmap=blob, left=20, top=10),
              Points(label="c", points_xy=[(1.5, 1.5)]), Points(label="c", points_xy=[(3.5, 3.5), (4.5, 4.5)]))
    ds = Dataset((Label("c"),), (Item("x.tif", (40, 40), shapes),))
    layers, notes = dataset_layers(ds, pixel_size_nm=0.5)
    assert [kind for *_, kind in layers] == ["shapes", "points"] and layers[0][1]["scale"] == (0.5, 0.5)
    back = layers_dataset(layers)
    box, outline, p1, p2 = back[0].shapes
    np.testing.assert_allclose(np.sort(box.corners_xy(), 0), np.sort(shapes[0].corners_xy(), 0), atol=1e-9)
    np.testing.assert_array_equal(semantic_mask(Item("x", (40, 40), (outline,)), {"c": 1}),
                                  semantic_mask(Item("x", (40, 40), (shapes[1],)), {"c": 1}))
    assert (p1.points_xy.tolist(), p2.points_xy.tolist()) == ([[1.5, 1.5]], [[3.5, 3.5], [4.5, 4.5]])
    assert back[0].size_hw == (40, 40) and notes == []
