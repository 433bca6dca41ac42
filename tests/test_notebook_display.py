"""Rich display in Jupyter (:mod:`defectlab.notebook`): the summary tables hold the right numbers,
and the drawings put every shape exactly where its pixels are."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (tests draw off screen)

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import ndimage

from defectlab.model import Box, Dataset, Ellipse, Item, Label, Note, Points, Polygon, Polyline
from defectlab.model.labels import DEFAULT_COLORS
from defectlab.notebook import (SEVERITY_COLORS, UNDECLARED_COLOR, check_html, label_colors, show, show_findings,
                                show_prediction, summary_html)
from defectlab.qc import check


class _Tables(HTMLParser):
    """Every table of an HTML fragment as a list of rows of cell texts; the swatch colors seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.swatches: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "span" and "background:" in (attrs.get("style") or ""):
            self.swatches.append(attrs["style"].split("background:")[1].split(";")[0])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Tables:
    p = _Tables()
    p.feed(page)
    return p


@pytest.fixture
def dataset():
    shapes_a = (
        Ellipse(label="cavity", cx=20, cy=12, rx=5, ry=3, rotation_deg=30),
        Ellipse(label="cavity", cx=40, cy=30, rx=4, ry=4),
        Polygon(label="precipitate", points_xy=[(50, 5), (58, 6), (56, 14)]),
        Polyline(label="line", points_xy=[(2, 40), (20, 44), (30, 38)]),
        Points(label="cavity", points_xy=[(5, 5)]),
    )
    shapes_b = (Box(label="void", xyxy=(3, 3, 9, 8)),)  # "void" is not declared
    labels = (Label("cavity", color="#61b21f", edge="inner"), Label("precipitate"), Label("line"))
    items = (Item("a.png", (48, 64), shapes_a), Item("sub/b.png", (48, 64), shapes_b), Item("c.png", (30, 20)))
    notes = (Note("unlabeled-shape", "a <shape> without a label", item="a.png", where="line 9"),)
    return Dataset(labels, items, notes, source="export.xml", format="cvat")


def test_summary_table_counts_every_shape_by_label_and_kind(dataset):
    page = _parse(summary_html(dataset))
    (table,) = page.tables
    header, rows = table[0], table[1:]
    kinds = header[4:-1]
    expected = Counter((s.label, s.kind) for it in dataset.items for s in it.shapes)
    assert sorted(kinds) == sorted({k for _, k in expected})
    got = {}
    for row in rows:
        name = row[1].replace("(not declared)", "").strip()
        got[name] = dict(zip(kinds, map(int, row[4:-1])))
        assert int(row[-1]) == sum(n for (lab, _), n in expected.items() if lab == name)
    assert got == {lab: {k: expected.get((lab, k), 0) for k in kinds} for lab in ("cavity", "precipitate", "line", "void")}
    assert [r[2] for r in rows[:3]] == ["inner", "", ""]  # edge conventions


def test_summary_table_swatches_sizes_and_escaped_notes(dataset):
    page = summary_html(dataset)
    # declared colors, then the default colors by the label's position, then gray for undeclared labels
    assert _parse(page).swatches == ["#61b21f", DEFAULT_COLORS[1], DEFAULT_COLORS[2], UNDECLARED_COLOR]
    assert "64×48 ×2" in page and "20×30 ×1" in page
    assert "1 image(s) without shapes" in page and "3 image file(s) not found" in page
    assert "a &lt;shape&gt; without a label" in page and "<shape>" not in page


def test_label_colors():
    ds = Dataset((Label("a"), Label("b", color="#010203")), (Item("x.png", (4, 4), (Points(label="z", points_xy=[(1, 1)]),)),))
    assert label_colors(ds) == {"a": DEFAULT_COLORS[0], "b": "#010203", "z": UNDECLARED_COLOR}


def test_check_table_counts_every_finding():
    disc = Ellipse(label="cavity", cx=20, cy=20, rx=6, ry=6)
    bowtie = Polygon(label="cavity", points_xy=[(30, 30), (38, 38), (38, 30), (30, 38)])
    ds = Dataset((Label("cavity"), Label("unused")), (Item("a.png", (48, 48), (disc, disc, bowtie)),))
    result = check(ds, use_images=False)
    by_check, first, stats = _parse(check_html(result, limit=2)).tables
    assert {row[1]: int(row[2]) for row in by_check[1:]} == dict(Counter(f.code for f in result.findings))
    assert [row[2] for row in first[1:]] == [f.code for f in result.findings[:2]]
    assert {row[0]: int(row[1]) for row in stats[1:]} == {"cavity": 3, "unused": 0}


def _canvas_axes(size_hw, scale):
    """An Axes filling a figure of exactly ``scale`` figure pixels per image pixel."""
    h, w = size_hw
    fig = Figure(figsize=(w * scale / 100, h * scale / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    return fig, ax


def _rgba(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())


def test_show_puts_a_box_around_exactly_its_pixel():
    """Pixel (column 5, row 4) covers [5, 6) x [4, 5): a box drawn there must frame its bright square."""
    image = np.zeros((10, 10), np.uint8)
    image[4, 5] = 255
    ds = Dataset((Label("box", color="#ff0000"),), (Item("a.png", (10, 10), (Box(label="box", xyxy=(5, 4, 6, 5)),)),))
    scale = 20
    fig, ax = _canvas_axes((10, 10), scale)
    show(ds.with_items([Item("a.png", (10, 10))]), 0, ax=ax, image=image, legend=False, title=False)
    white = np.argwhere((_rgba(fig)[..., :3] > 250).all(axis=-1))
    # the bright pixel fills rows 4*20..5*20 and columns 5*20..6*20 of the canvas, no more
    assert white.min(axis=0).tolist() == [80, 100] and white.max(axis=0).tolist() == [99, 119]
    fig, ax = _canvas_axes((10, 10), scale)
    show(ds, 0, ax=ax, image=image, legend=False, title=False, linewidth=0.5)
    rgba = _rgba(fig)
    red = np.argwhere((rgba[..., 0] > 200) & (rgba[..., 1] < 80) & (rgba[..., 2] < 80))
    # the outline runs along those edges (a line about 1 canvas pixel wide, centered on them)
    assert red.min(axis=0).tolist() == pytest.approx([80, 100], abs=1)
    assert red.max(axis=0).tolist() == pytest.approx([100, 120], abs=1)


def test_show_draws_each_shape_with_its_geometry_and_color(dataset):
    ax = show(dataset, "a.png", image=np.zeros((48, 64)))
    assert ax.images[0].get_extent() == [0, 64, 48, 0]
    (polys,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    rings = polys.get_paths()
    assert len(rings) == 3  # two ellipses, one polygon
    colors = [to_hex(c) for c in polys.get_edgecolor()]
    assert colors == ["#61b21f", "#61b21f", DEFAULT_COLORS[1]]
    # the rotated ellipse: every vertex on (u/rx)^2 + (v/ry)^2 = 1 in its own frame
    e = dataset[0].shapes[0]
    t = np.deg2rad(e.rotation_deg)
    xy = rings[0].vertices
    u = (xy[:, 0] - e.cx) * np.cos(t) + (xy[:, 1] - e.cy) * np.sin(t)
    v = -(xy[:, 0] - e.cx) * np.sin(t) + (xy[:, 1] - e.cy) * np.cos(t)
    assert np.allclose((u / e.rx) ** 2 + (v / e.ry) ** 2, 1, atol=0.05)
    poly = rings[2].vertices[:3]
    assert np.allclose(poly, dataset[0].shapes[2].points_xy)
    assert np.allclose(lines.get_segments()[0], dataset[0].shapes[3].points_xy)
    (points,) = [c for c in ax.collections if c.get_offsets().shape == (1, 2) and c not in (polys, lines)]
    assert points.get_offsets().tolist() == [[5.0, 5.0]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cavity", "precipitate", "line"]
    assert ax.get_title() == "a.png: 5 shapes"


def test_show_compares_with_another_labeling(dataset):
    other = dataset.with_items([Item("a.png", (48, 64), (Ellipse(label="cavity", cx=21, cy=12, rx=5, ry=3),))])
    ax = show(dataset, 0, image=np.zeros((48, 64)), compare=other, compare_label="second labeler")
    dashed = [c for c in ax.collections if isinstance(c, PolyCollection) and to_hex(c.get_edgecolor()[0]) == "#ffffff"]
    assert len(dashed) == 1 and len(dashed[0].get_paths()) == 1
    assert ax.get_legend().get_texts()[-1].get_text() == "second labeler"


def test_show_findings_outlines_the_shapes_at_fault():
    disc = Ellipse(label="cavity", cx=20, cy=20, rx=6, ry=6)
    tiny = Ellipse(label="cavity", cx=40, cy=40, rx=1, ry=1)
    ds = Dataset((Label("cavity"),), (Item("a.png", (48, 48), (disc, disc, tiny)), Item("b.png", (48, 48), (disc,))))
    result = check(ds, use_images=False)
    on_a = [f for f in result.findings if f.image == "a.png"]
    assert {f.code for f in on_a} >= {"shape-duplicate", "shape-tiny"}
    ax = show_findings(result)
    assert ax.get_title().startswith("a.png: ")
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == sum(f.box_xyxy is not None for f in on_a)
    at_fault = {to_hex(c.get_edgecolor()[0]): len(c.get_paths()) for c in ax.collections
                if isinstance(c, PolyCollection) and to_hex(c.get_edgecolor()[0]) in SEVERITY_COLORS.values()}
    # the duplicate pair (2 shapes) in the error color, the tiny shape in the warning color
    assert at_fault == {SEVERITY_COLORS["error"]: 2, SEVERITY_COLORS["warning"]: 1}
    with pytest.raises(ValueError, match="no finding"):
        show_findings(check(Dataset((Label("cavity"),), (Item("b.png", (48, 48), (disc,)),)), use_images=False),
                      severities=("error",))


def test_show_prediction_fills_classes_and_outlines_instances():
    class Prediction:  # what model.predict returns, as far as drawing goes
        semantic = np.zeros((32, 32), np.uint8)
        instances = np.zeros((32, 32), np.int32)
        instance_classes = np.array([2], np.uint8)
        classes = {1: "cavity", 2: "loop"}

    Prediction.semantic[10:16, 10:16] = 2
    Prediction.instances[10:16, 10:16] = 1
    ax = show_prediction(Prediction(), np.zeros((32, 32)), colors={"loop": "#0000ff"}, alpha=0.25)
    rgba = ax.images[1].get_array()
    square = Prediction.instances > 0
    edge = square & ~ndimage.binary_erosion(square, structure=ndimage.generate_binary_structure(2, 1))
    assert edge.sum() == 6 * 4 - 4  # the perimeter of a 6 x 6 square
    assert np.all(rgba[edge, 3] == 1.0) and np.all(rgba[square & ~edge, 3] == 0.25) and np.all(rgba[~square, 3] == 0)
    assert np.allclose(rgba[square, :3], [0, 0, 1])
    assert ax.get_title() == "predicted: 1 loop"
    with pytest.raises(ValueError, match="expected an image of 32x32"):
        show_prediction(Prediction(), np.zeros((30, 32)))


def test_repr_outside_jupyter_is_a_short_summary(dataset):
    """``repr(ds)`` is one line with the counts (it was a dump of every shape, 19,700 characters on
    a real export), even for thousands of shapes."""
    text = repr(dataset)
    assert text == ("<Dataset cvat from 'export.xml': 3 image(s), 6 shape(s), labels [cavity, precipitate, line], "
                    "1 note(s)>")
    many = Item("big.png", (512, 512), tuple(Ellipse(label="cavity", cx=10 + i % 400, cy=10 + i // 400, rx=3, ry=3)
                                             for i in range(5000)))
    big = Dataset(dataset.labels, (many,) * 20)
    assert len(repr(big)) < 200 and "100000 shape(s)" in repr(big)
