"""Datasets for the checks: clean synthetic exports, and exports with planted problems."""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.imaging.io import write_image
from defectlab.model import Dataset, Ellipse, ImageSource, Item, Mask, Polygon, Polyline
from defectlab.preparation.synthetic import SYNTHETIC_LABELS, SyntheticConfig, make_synthetic_dataset, synthetic_item
from defectlab.raster import ellipse_polygon

SMALL = SyntheticConfig(size_hw=(256, 256), n_cavities=8, n_loops=4, n_precipitates=4, n_lines=1)
EMPTY = SyntheticConfig(size_hw=(256, 256), n_cavities=0, n_loops=0, n_precipitates=0, n_lines=0)


@pytest.fixture(scope="session")
def clean_export(tmp_path_factory):
    """A synthetic CVAT export (folder with annotations.xml and images/), 4 images of 256²."""
    out = tmp_path_factory.mktemp("qc") / "clean"
    ds = make_synthetic_dataset(out, n_images=4, config=SMALL, seed=11)
    return out, ds


def disc(cx: float, cy: float, r: float, label: str = "precipitate") -> Polygon:
    """A polygon close to a disc (within 0.05 px, same area)."""
    return Polygon(label=label, points_xy=ellipse_polygon(Ellipse(label=label, cx=cx, cy=cy, rx=r, ry=r)))


def planted_shapes() -> tuple:
    """Shapes with one planted problem each (see the comments), laid out apart on 256²."""
    hexagon = np.array([[200, 30], [212, 35], [212, 48], [200, 53], [188, 48], [188, 35]], float)
    return (
        # 0-3: four discs around a small background pocket at (60, 60)
        disc(52, 52, 10), disc(68, 52, 10), disc(52, 68, 10), disc(68, 68, 10),
        # 4: a bow tie
        Polygon(label="precipitate", points_xy=[(120, 20), (140, 40), (140, 20), (120, 40)]),
        # 5, 6: the same hexagon twice, 0.1 px apart
        Polygon(label="precipitate", points_xy=hexagon),
        Polygon(label="precipitate", points_xy=hexagon + 0.1),
        # 7: a cavity drawn as a line
        Polyline(label="cavity", points_xy=[(20, 120), (60, 130)]),
        # 8: a polygon with 2 distinct vertices
        Polygon(label="precipitate", points_xy=[(100, 100), (110, 110), (100, 100)]),
        # 9: a mask with no pixel (and a mask where the label is declared as polygons only)
        Mask(label="precipitate", bitmap=np.zeros((5, 5), bool), left=130, top=100),
        # 10: a sliver between two rows of pixel centers
        Polygon(label="precipitate", points_xy=[(150, 100.6), (170, 100.6), (170, 100.9)]),
        # 11: 6 px outside the image on the left
        Polygon(label="precipitate", points_xy=[(-6, 160), (15, 160), (15, 180), (-6, 180)]),
        # 12: 3 pixels
        Polygon(label="precipitate", points_xy=[(40, 160), (43, 160), (40, 162)]),
        # 13: a dumbbell: two 12 px squares joined by a 2 px bridge
        Polygon(label="precipitate", points_xy=[(70, 150), (82, 150), (82, 155), (96, 155), (96, 150), (108, 150),
                                               (108, 162), (96, 162), (96, 157), (82, 157), (82, 162), (70, 162)]),
        # 14: an undeclared label
        Ellipse(label="dirt", cx=140, cy=160, rx=5, ry=5),
        # 15, 16: two discs 6 px apart, sharing ~60 % of each
        disc(190, 160, 10), disc(196, 160, 10),
    )


#: (code, shape) found on the planted image, in the order of the comments above.
PLANTED_EXPECTED = {
    ("overlap-hole", None), ("shape-self-intersecting", 4), ("shape-duplicate", 6), ("shape-kind-mismatch", 7),
    ("shape-too-few-vertices", 8), ("shape-zero-area", 9), ("shape-kind-mismatch", 9), ("shape-no-pixels", 10),
    ("shape-outside-image", 11),
    ("shape-tiny", 12), ("shape-concave", 13), ("label-undeclared", 14), ("overlap-heavy", 16),
}


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """A dataset with every kind of problem planted, and the (image, code, shape) expected.

    Images: ``planted.png`` (the shapes of :func:`planted_shapes` on an empty micrograph),
    ``edges.png`` (synthetic; two loops drawn 3 px inside their outer edge and one cavity
    2.5 px outside its inner edge), ``other_size.png`` (192 px high), ``wrong_file.png``
    (its file is cropped to 200 px high), ``missing.png`` (no file), ``empty.png`` (no
    shapes), ``clean_0.png`` and ``clean_1.png`` (untouched).
    """
    folder = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(5)
    items, expected = [], set()

    def add(name: str, image: np.ndarray | None, item_shapes, size_hw=(256, 256), write: np.ndarray | None = None):
        path = folder / name
        if image is not None:
            write_image(path, image if write is None else write)
        items.append(Item(name, size_hw, tuple(item_shapes), image=ImageSource(path)))

    image, _ = synthetic_item(rng, EMPTY)
    add("planted.png", image, planted_shapes())
    expected |= {("planted.png", code, shape) for code, shape in PLANTED_EXPECTED}

    edge_cfg = SyntheticConfig(size_hw=(256, 256), n_cavities=6, n_loops=4, n_precipitates=2, n_lines=1,
                               loop_radius_px=(12.0, 20.0))
    image, item = synthetic_item(rng, edge_cfg)
    loops = [i for i, s in enumerate(item.shapes) if s.label == "loop"][:2]
    cavity = [i for i, s in enumerate(item.shapes) if s.label == "cavity"][0]
    assert len(loops) == 2
    shapes = list(item.shapes)
    for i in loops:  # drawn along the ring's inner edge (the ring is 2-3 px thick)
        shapes[i] = shapes[i].replace(rx=shapes[i].rx - 3, ry=shapes[i].ry - 3)
    shapes[cavity] = shapes[cavity].replace(rx=shapes[cavity].rx + 2.5, ry=shapes[cavity].ry + 2.5)
    add("edges.png", image, shapes)
    expected |= {("edges.png", "edge-off-convention", i) for i in [*loops, cavity]}

    image, item = synthetic_item(rng, SyntheticConfig(size_hw=(192, 256), n_cavities=4, n_loops=1,
                                                      n_precipitates=1, n_lines=1))
    add("other_size.png", image, item.shapes, size_hw=(192, 256))
    expected.add(("other_size.png", "image-size-differs", None))

    image, item = synthetic_item(rng, SMALL)
    add("wrong_file.png", image, item.shapes, write=image[:200])
    expected.add(("wrong_file.png", "image-size-mismatch", None))

    _, item = synthetic_item(rng, SMALL)
    add("missing.png", None, item.shapes)
    expected.add(("missing.png", "image-missing", None))

    image, _ = synthetic_item(rng, EMPTY)
    add("empty.png", image, ())
    expected.add(("empty.png", "image-no-shapes", None))

    for k in range(2):
        image, item = synthetic_item(rng, SMALL)
        add(f"clean_{k}.png", image, item.shapes)
    return Dataset(SYNTHETIC_LABELS, tuple(items), source=str(folder)), expected
