"""Tiling: windows, and labels cut consistently with the pixels.

Expectations come from the source item rasterized whole (the rasterizer is not under test
here) and from brute-force numpy over dense per-instance masks, never from the tiler.
"""

from __future__ import annotations

import numpy as np
import pytest

from defectlab.errors import DatasetError
from defectlab.model import Box, Ellipse, Item, Mask, Points, Polygon, Polyline, Tag
from defectlab.preparation.tiling import Window, tile_image, tile_item, tile_name, tile_windows
from defectlab.raster import instance_labels, rasterize, semantic_mask

CLASSES = {"cavity": 1, "loop": 2, "precipitate": 3, "line": 4}
LINE_WIDTH = 3.0


def random_item(rng: np.random.Generator, size_hw=(150, 230), n=40, *, overlap=True) -> Item:
    """Shapes of every area kind at random sub-pixel places, some past the image border,
    each tagged with its index in attribute ``id``."""
    h, w = size_hw
    shapes = []
    for k in range(n):
        kind = k % 6
        cx, cy = rng.uniform(-10, w + 10), rng.uniform(-10, h + 10)
        attrs = {"id": str(k)}
        z = int(rng.integers(0, 3)) if overlap else 0
        if kind == 0:
            shapes.append(Ellipse(label="cavity", cx=cx, cy=cy, rx=rng.uniform(1, 12), ry=rng.uniform(1, 12),
                                  rotation_deg=rng.uniform(0, 180), attributes=attrs, z_order=z))
        elif kind == 1:
            r = rng.uniform(3, 20)
            t = np.sort(rng.uniform(0, 2 * np.pi, 7))
            rad = r * rng.uniform(0.6, 1.0, 7)
            shapes.append(Polygon(label="precipitate", points_xy=np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], 1),
                                  attributes=attrs, z_order=z))
        elif kind == 2:
            x1, y1 = cx, cy
            shapes.append(Box(label="loop", xyxy=(x1, y1, x1 + rng.uniform(2, 30), y1 + rng.uniform(2, 30)),
                              rotation_deg=rng.choice([0.0, rng.uniform(0, 90)]), attributes=attrs, z_order=z))
        elif kind == 3:
            pts = np.cumsum(rng.normal(0, 15, (5, 2)), axis=0) + [cx, cy]
            shapes.append(Polyline(label="line", points_xy=pts, attributes=attrs, z_order=z))
        elif kind == 4:
            bm = rng.random((int(rng.integers(2, 15)), int(rng.integers(2, 15)))) < 0.6
            shapes.append(Mask(label="cavity", bitmap=bm, left=int(cx) - 5, top=int(cy) - 5, attributes=attrs, z_order=z))
        else:
            shapes.append(Ellipse(label="loop", cx=cx, cy=cy, rx=rng.uniform(20, 60), ry=rng.uniform(3, 8),
                                  rotation_deg=rng.uniform(0, 180), attributes=attrs, z_order=z))
    return Item("sub/img.png", size_hw, tuple(shapes))


def dense_instances(item: Item) -> dict[str, np.ndarray]:
    """id -> (H, W) bool, every instance rasterized whole in the source."""
    out = {}
    for s in item.shapes:
        if s.is_area or s.kind == "polyline":
            crop = rasterize(s, item.size_hw, line_width=LINE_WIDTH)
            if crop.area:
                out[s.attributes["id"]] = crop.to_full(item.size_hw)
    return out


# -- windows --------------------------------------------------------------------------------------


def test_windows_workshop_case_positions():
    wins = tile_windows((512, 512), 256, 128)
    assert [(w.x0, w.y0) for w in wins] == [(x, y) for y in (0, 128, 256) for x in (0, 128, 256)]


@pytest.mark.parametrize("size_hw,tile,stride,pad,xs,ys", [
    ((300, 700), 256, 128, False, [0, 128, 256, 384, 444], [0, 44]),   # last window moved back inside
    ((300, 700), 256, 128, True, [0, 128, 256, 384, 512], [0, 128]),    # regular steps, runs past the border
    ((100, 90), 128, 64, True, [0], [0]),                               # smaller than a tile: one padded tile
    ((256, 512), (128, 256), None, False, [0, 256], [0, 128]),          # no stride: no overlap
])
def test_window_starts(size_hw, tile, stride, pad, xs, ys):
    wins = tile_windows(size_hw, tile, stride, pad=pad)
    assert sorted({w.x0 for w in wins}) == xs and sorted({w.y0 for w in wins}) == ys
    assert len(wins) == len(xs) * len(ys)


def test_windows_cover_the_image_exactly_once_or_more():
    for size_hw in [(150, 230), (97, 301), (256, 256)]:
        cover = np.zeros(size_hw, int)
        for w in tile_windows(size_hw, 64, 48):
            x1, y1, x2, y2 = w.xyxy
            assert 0 <= x1 and 0 <= y1 and x2 <= size_hw[1] and y2 <= size_hw[0]
            cover[y1:y2, x1:x2] += 1
        assert cover.min() >= 1


def test_image_smaller_than_tile_needs_pad():
    with pytest.raises(DatasetError, match=r"90x100 \(WxH\) image is smaller than a 128x128 tile.*--pad"):
        tile_windows((100, 90), 128)


def test_windows_within_rectangles_stay_inside_their_union():
    rects = [(0, 0, 512, 256), (0, 256, 256, 512)]  # an L
    wins = tile_windows((512, 512), 256, 128, within=rects)
    # by hand: every lattice window that misses the bottom-right quadrant
    assert sorted((w.x0, w.y0) for w in wins) == [(0, 0), (0, 128), (0, 256), (128, 0), (256, 0)]


def test_tile_names_sort_and_keep_folders():
    assert tile_name("a/b.tif", Window(5, 40, 8, 8), (100, 1000)) == "a/b_x0005_y040.tif"
    assert tile_name("noext", Window(0, 0, 8, 8), (10, 10), ".png") == "noext_x00_y00.png"


# -- pixels -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pad", [False, True])
def test_image_tiles_reassemble_to_the_image(pad):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 65535, (150, 230), dtype=np.uint16)
    back = np.full(image.shape, -1, dtype=np.int64)
    for w in tile_windows(image.shape, 64, 48, pad=pad):
        t = tile_image(image, w, fill=7)
        assert t.shape == (64, 64) and t.dtype == np.uint16
        x1, y1, x2, y2 = w.xyxy
        inside = t[: min(y2, 150) - y1, : min(x2, 230) - x1]
        region = back[y1:y2, x1:x2]
        assert np.all((region == -1) | (region == inside))  # overlapping tiles agree
        back[y1:y2, x1:x2] = inside
        assert np.all(t[min(y2, 150) - y1 :, :] == 7) and np.all(t[:, min(x2, 230) - x1 :] == 7)
    assert np.array_equal(back, image)


def test_rgb_tiles():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    t = tile_image(image, Window(20, 10, 16, 16), fill=0)
    assert t.shape == (16, 16, 3)
    assert np.array_equal(t[:10, :10], image[10:20, 20:30]) and not t[10:].any() and not t[:, 10:].any()


# -- labels -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,pad", [(0, False), (1, True), (2, False)])
def test_tile_semantic_masks_reassemble_to_the_source_mask(seed, pad):
    item = random_item(np.random.default_rng(seed))
    source = semantic_mask(item, CLASSES, line_width=LINE_WIDTH)
    ids = instance_labels(item, line_width=LINE_WIDTH)
    wins = tile_windows(item.size_hw, 64, 48, pad=pad)
    tiles, _ = tile_item(item, wins, min_visible=0.0, line_width=LINE_WIDTH)
    back = np.full(item.size_hw, 255, dtype=np.uint8)
    for t in tiles:
        x1, y1, x2, y2 = t.window.xyxy
        tm = semantic_mask(t.item, CLASSES, line_width=LINE_WIDTH)
        ih, iw = min(y2, item.size_hw[0]) - y1, min(x2, item.size_hw[1]) - x1
        assert np.array_equal(tm[:ih, :iw], source[y1:y2, x1:x2])
        assert not tm[ih:].any() and not tm[:, iw:].any()  # nothing in the padding
        # the topmost instance of each pixel is the same source shape
        tid = instance_labels(t.item, line_width=LINE_WIDTH)[:ih, :iw]
        shape_ids = np.array([-1] + [int(s.attributes.get("id", -1)) for s in t.item.shapes])
        src_ids = np.array([-1] + [int(s.attributes["id"]) for s in item.shapes])
        assert np.array_equal(shape_ids[tid], src_ids[ids[y1:y2, x1:x2]])
        back[y1 : y1 + ih, x1 : x1 + iw] = tm[:ih, :iw]
    assert np.array_equal(back, source)


def test_every_instance_pixel_is_in_some_tile_instance():
    item = random_item(np.random.default_rng(5), n=60)
    truth = dense_instances(item)
    found = {k: np.zeros(item.size_hw, bool) for k in truth}
    tiles, notes = tile_item(item, tile_windows(item.size_hw, 64, 48), min_visible=0.0, line_width=LINE_WIDTH)
    for t in tiles:
        x1, y1 = t.window.x0, t.window.y0
        for s in t.item.shapes:
            crop = rasterize(s, t.item.size_hw, line_width=LINE_WIDTH)
            full = np.zeros(item.size_hw, bool)
            full[y1 + crop.y0 : y1 + crop.y0 + crop.bitmap.shape[0],
                 x1 + crop.x0 : x1 + crop.x0 + crop.bitmap.shape[1]] = crop.bitmap
            k = s.attributes["id"]
            assert not (full & ~truth[k]).any()  # a tile instance never shows pixels its source lacks
            found[k] |= full
    for k, mask in truth.items():
        assert np.array_equal(found[k], mask), f"instance {k}"
    # shapes with no pixel in the image are reported, not silently lost
    assert len(notes) == sum(1 for s in item.shapes if s.attributes["id"] not in truth)


def brute_reference(mask: np.ndarray, win_hw: tuple[int, int]) -> int:
    """Most pixels of ``mask`` any win_hw window shows: every position, by plain slicing."""
    ys, xs = np.nonzero(mask)
    if ys.max() - ys.min() < win_hw[0] and xs.max() - xs.min() < win_hw[1]:
        return int(mask.sum())
    h, w = mask.shape
    best = 0
    for y in range(-win_hw[0] + 1, h):
        for x in range(-win_hw[1] + 1, w):
            best = max(best, int(mask[max(y, 0) : y + win_hw[0], max(x, 0) : x + win_hw[1]].sum()))
    return best


@pytest.mark.parametrize("min_visible", [0.25, 0.6])
def test_instance_counts_per_tile_match_brute_force(min_visible):
    rng = np.random.default_rng(11)
    item = random_item(rng, size_hw=(96, 128), n=30)
    truth = dense_instances(item)
    labels = {s.attributes["id"]: s.label for s in item.shapes}
    refs = {k: brute_reference(m, (40, 40)) for k, m in truth.items()}
    wins = tile_windows(item.size_hw, 40, 24)
    tiles, _ = tile_item(item, wins, min_visible=min_visible, line_width=LINE_WIDTH)
    assert len(tiles) == len(wins)
    for t in tiles:
        x1, y1, x2, y2 = t.window.xyxy
        kept, clipped, dropped = set(), set(), set()
        for k, m in truth.items():
            visible = int(m[y1:y2, x1:x2].sum())
            if visible == 0:
                continue
            if visible == m.sum():
                kept.add(k)
            elif visible >= min_visible * refs[k]:
                kept.add(k)
                clipped.add(k)
            else:
                dropped.add(k)
        got = {s.attributes["id"] for s in t.item.shapes}
        assert got == kept
        assert {s.attributes["id"] for s in t.item.shapes if s.attributes.get("clipped") == "1"} == clipped
        assert all(isinstance(s, Mask) for s in t.item.shapes if s.attributes["id"] in clipped)
        want_dropped: dict[str, int] = {}
        for k in dropped:
            want_dropped[labels[k]] = want_dropped.get(labels[k], 0) + 1
        assert t.dropped == want_dropped
        assert t.is_empty == (not kept)


def test_whole_instances_keep_their_geometry_translated():
    e = Ellipse(label="cavity", cx=70.3, cy=40.7, rx=5.2, ry=3.1, rotation_deg=33.0)
    p = Polygon(label="precipitate", points_xy=[(90.1, 10.2), (99.7, 12.9), (95.0, 20.3)])
    b = Box(label="loop", xyxy=(10.5, 70.25, 20.75, 79.5), rotation_deg=12.0)
    item = Item("a.png", (128, 128), (e, p, b))
    (t,), _ = tile_item(item, [Window(64, 0, 64, 64)])
    te, tp = t.item.shapes
    assert isinstance(te, Ellipse) and (te.cx, te.cy, te.rx, te.ry, te.rotation_deg) == (70.3 - 64, 40.7, 5.2, 3.1, 33.0)
    assert isinstance(tp, Polygon) and np.array_equal(tp.points_xy, np.array(p.points_xy) - [64, 0])
    (t2,), _ = tile_item(item, [Window(0, 64, 64, 64)])
    (tb,) = t2.item.shapes
    assert isinstance(tb, Box) and tb.xyxy == (10.5, 70.25 - 64, 20.75, 79.5 - 64) and tb.rotation_deg == 12.0


def test_clipped_instance_is_its_visible_pixels_with_a_flag():
    e = Ellipse(label="cavity", cx=64.0, cy=30.0, rx=10.0, ry=10.0, attributes={"note": "x"}, z_order=2, group=7)
    item = Item("a.png", (128, 128), (e,))
    full = rasterize(e, (128, 128)).to_full((128, 128))
    (left, right), _ = tile_item(item, [Window(0, 0, 64, 64), Window(64, 0, 64, 64)], min_visible=0.0)
    for t in (left, right):
        (m,) = t.item.shapes
        assert isinstance(m, Mask) and m.attributes == {"note": "x", "clipped": "1"}
        assert (m.label, m.z_order, m.group) == ("cavity", 2, 7)
        x1, y1, x2, y2 = t.window.xyxy
        assert np.array_equal(rasterize(m, (64, 64)).to_full((64, 64)), full[y1:y2, x1:x2])
        # its box is that of what is visible
        rows, cols = np.nonzero(full[y1:y2, x1:x2])
        assert m.bbox_xyxy() == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


def test_long_line_is_not_dropped_from_every_tile():
    line = Polyline(label="line", points_xy=[(2.0, 60.5), (250.0, 62.5)], attributes={"id": "0"})
    item = Item("a.png", (128, 256), (line,))
    tiles, _ = tile_item(item, tile_windows(item.size_hw, 64, 64), min_visible=0.5, line_width=LINE_WIDTH)
    holding = [t for t in tiles if t.item.shapes]
    # the line crosses 4 tile columns; each tile shows about a quarter of it (< min_visible of
    # its whole area) but about all any 64-px window can show, so no piece is dropped
    full = rasterize(line, (128, 256), line_width=LINE_WIDTH).area
    shown = [rasterize(t.item.shapes[0], (64, 64), line_width=LINE_WIDTH).area for t in holding]
    assert len({t.window.x0 for t in holding}) == 4 and max(shown) < 0.5 * full
    assert not any(t.dropped for t in tiles)


def test_points_and_tags():
    pts = Points(label="cavity", points_xy=[(5, 5), (40, 5), (41, 41)], names=("a", "b", "c"))
    tag = Tag(label="cavity")
    item = Item("a.png", (64, 64), (pts, tag))
    (t0, t1), _ = tile_item(item, [Window(0, 0, 32, 32), Window(32, 0, 32, 32)])
    p0, g0 = t0.item.shapes
    assert p0.points_xy.tolist() == [[5.0, 5.0]] and p0.names == ("a",) and p0.attributes["clipped"] == "1"
    assert isinstance(g0, Tag) and t0.is_empty
    p1, _ = t1.item.shapes
    assert p1.points_xy.tolist() == [[8.0, 5.0]] and p1.names == ("b",)


def test_bad_min_visible():
    with pytest.raises(ValueError, match="min_visible between 0 and 1"):
        tile_item(Item("a.png", (8, 8)), [Window(0, 0, 8, 8)], min_visible=1.5)


def test_prepared_unet_tiles_are_the_source_pixels_and_mask_cut_by_their_windows(tmp_path):
    """What ``prepare --to unet`` writes, file by file: each tile's image is the source's pixels
    in its window (decoded, exactly) and its mask the source's whole-image mask cut by the
    window (``min_visible=0``: no remainder dropped). The window is read from the tile's name."""
    import re

    import defectlab
    from defectlab.imaging.io import read_image
    from defectlab.preparation.pipeline import prepare
    from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "export", n_images=2, seed=3,
                           config=SyntheticConfig(size_hw=(160, 224), allow_overlap=True))
    ds = defectlab.read(tmp_path / "export")
    index = ds.class_index()
    prepare(tmp_path / "export", tmp_path / "out", to="unet", tile=96, stride=64, min_visible=0, seed=1,
            preview=False)
    sources = {it.name.rsplit(".", 1)[0]: it for it in ds.items}
    seen = 0
    for image_path in sorted((tmp_path / "out").glob("*/images/*.png")):
        stem, x0, y0 = re.fullmatch(r"(.+)_x(\d+)_y(\d+)", image_path.stem).groups()
        item = sources[stem]
        rows, cols = slice(int(y0), int(y0) + 96), slice(int(x0), int(x0) + 96)
        assert np.array_equal(read_image(image_path), read_image(item.image)[rows, cols])
        mask = read_image(image_path.parent.parent / "masks" / image_path.name)
        assert np.array_equal(mask, semantic_mask(item, index, line_width=defectlab.raster.DEFAULT_LINE_WIDTH)[rows, cols])
        seen += 1
    assert seen == 2 * 2 * 3  # per image, rows start at 0, 64 (160 px) and columns at 0, 64, 128 (224 px)


# -- moving whole instances without rasterizing them again ----------------------------------------


def test_shifts_said_exact_are_exact():
    """_exact_shift against exact rational arithmetic, on values near the window offsets, halves,
    tiny and huge values."""
    from fractions import Fraction

    from defectlab.preparation.tiling import _exact_shift

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-50, 5000, 3000), rng.integers(0, 5000, 500) + 0.5,
                             rng.integers(0, 5000, 500) * (1 + 1e-16), [0.0, 1e-300, 2.0**52, 2.0**53 + 2, 255.99999999999997]])
    said = 0
    for v in values.tolist():
        for by in (0, 1, 256, 512, 1536, 4096, int(v)):
            if _exact_shift(v, by):
                said += 1
                assert Fraction(v - by) == Fraction(v) - by, (v, by)
    assert said > 10000


def test_whole_ellipses_moved_without_rasterizing_cover_the_same_pixels():
    """Where tiling takes an ellipse's pixels as moved without rasterizing it in the tile
    (_moves_exactly), rasterizing it there gives exactly those pixels: 20,000 ellipses with
    sub-pixel, half-pixel (ties on the window bounds) and large coordinates, in windows at many
    offsets, some running past the canvas."""
    from defectlab.preparation.resize import translate_shape
    from defectlab.preparation.tiling import _moves_exactly

    rng = np.random.default_rng(1)
    canvas = (5000, 6000)
    proven = checked = 0
    for k in range(20000):
        if k % 3 == 0:  # centers and radii on halves: window bounds and boundary pixels are exact ties
            cx, cy = rng.integers(0, 6000) + 0.5, rng.integers(0, 5000) + 0.5
            rx, ry, rot = float(rng.integers(1, 12)), float(rng.integers(1, 12)), float(rng.choice([0, 90]))
        else:
            cx, cy = rng.uniform(-5, 6005), rng.uniform(-5, 5005)
            rx, ry, rot = rng.uniform(0.3, 25), rng.uniform(0.3, 25), rng.uniform(0, 180)
        e = Ellipse(label="cavity", cx=cx, cy=cy, rx=rx, ry=ry, rotation_deg=rot)
        src = rasterize(e, canvas).tight()
        if not src.area:
            continue
        bx1, by1, bx2, by2 = src.box_xyxy()
        size = int(rng.choice([64, 256, 512]))
        x0 = max(bx2 - size, 0) + int(rng.integers(0, max(1, min(bx1, 6000 - size) - max(bx2 - size, 0) + 1)))
        y0 = max(by2 - size, 0) + int(rng.integers(0, max(1, min(by1, 5000 - size) - max(by2 - size, 0) + 1)))
        if k % 5 == 0:  # a padded window at the canvas border
            x0 = max(min(bx1, 6000 - size // 2), 0)
        win = Window(x0, y0, size, size)
        if not (bx1 >= x0 and by1 >= y0 and bx2 <= x0 + size and by2 <= y0 + size):
            continue  # not whole in this window
        moved = translate_shape(e, -x0, -y0)
        checked += 1
        if _moves_exactly(e, moved, x0, y0, win, canvas):
            proven += 1
            tile = rasterize(moved, (size, size)).tight()
            assert (tile.x0 + x0, tile.y0 + y0) == (src.x0, src.y0) and np.array_equal(tile.bitmap, src.bitmap), e
    assert checked > 10000 and proven > 0.9 * checked


def test_an_ellipse_cut_by_the_canvas_in_a_padded_window_keeps_only_its_canvas_pixels():
    """Past the canvas border a padded window holds no label: the ellipse the canvas cuts is not
    taken as moved whole (it would cover the padding), but checked and kept as its pixels."""
    item = Item("a.png", (40, 50), (Ellipse(label="cavity", cx=47.0, cy=20.0, rx=6, ry=4),
                                   Mask(label="loop", bitmap=np.ones((3, 8), bool), left=45, top=5)))
    (tile,), _ = tile_item(item, [Window(32, 0, 32, 32)], min_visible=0.0)
    tm = semantic_mask(tile.item, CLASSES)
    assert not tm[:, 18:].any()
    assert np.array_equal(tm[:, :18], semantic_mask(item, CLASSES)[0:32, 32:50])
    assert [s.kind for s in tile.item.shapes] == ["mask", "mask"]


def test_tiles_from_crops_handed_in_are_the_tiles_without():
    item = random_item(np.random.default_rng(3))
    wins = tile_windows(item.size_hw, 64, 48, pad=True)
    crops = {i: rasterize(s, item.size_hw, line_width=LINE_WIDTH) for i, s in enumerate(item.shapes)
             if s.is_area or s.kind == "polyline"}
    plain, _ = tile_item(item, wins, min_visible=0.3, line_width=LINE_WIDTH)
    handed, _ = tile_item(item, wins, min_visible=0.3, line_width=LINE_WIDTH, crops=crops)
    for a, b in zip(plain, handed):
        assert (a.clipped, a.dropped) == (b.clipped, b.dropped)
        assert np.array_equal(semantic_mask(a.item, CLASSES, line_width=LINE_WIDTH),
                              semantic_mask(b.item, CLASSES, line_width=LINE_WIDTH))
