"""Cut large micrographs into tiles, with every label kind cut consistently.

Windows
-------
:func:`tile_windows` lays windows of ``tile_hw`` at steps of ``stride_hw`` (row by row, top
to bottom). Without padding every window lies inside the image and the last row and column
are moved back to end at the image border, so the tiles cover the whole image (they overlap
a little more there). With ``pad=True`` the windows keep the regular steps and the last ones
run past the right and bottom border; :func:`tile_image` fills what lies outside the image
with ``fill``. An image smaller than a tile needs ``pad=True``.

Labels
------
A tile is a new :class:`~defectlab.model.Item` in tile coordinates (:func:`tile_item`).
Each instance (area shape or polyline) of the source is rasterized once in the source image
(:func:`defectlab.raster.rasterize`, the center rule) and compared with the window:

* **inside** — all its pixels are in the window: it keeps its geometry, translated by the
  integer window offset (polygon, ellipse, box, polyline exactly as drawn). A translation by
  whole pixels keeps the center rule exact; the translated shape is re-rasterized in the tile
  and checked against the source pixels, and falls back to a :class:`~defectlab.model.Mask`
  of those pixels in the rare case floating point rounding moved a pixel center lying
  exactly on an edge. Ellipses and masks skip that second rasterization where it is proven
  to give the same pixels (``_moves_exactly``: the center moved without rounding and the
  tested pixels moved with it; nothing the canvas cut off comes back in a padded window).
* **clipped** — only part of it is in the window: it becomes a :class:`Mask` of its visible
  pixels with the attribute ``"clipped": "1"``; its box, for every writer, is that of what is
  visible. A remainder showing less than ``min_visible`` of the instance is **dropped** and
  counted (``Tile.dropped``), never silently: the fraction is taken of the instance's pixel
  area, or, for an instance too large for one tile (a long dislocation line), of the most of
  it that any tile-sized window can show — so such an instance is not dropped from every tile.

Every label pixel of the source therefore lands in the same pixel of every tile that covers
it (with ``min_visible=0``), the tile's semantic mask is the source's mask cut by the window,
and paint order (``z_order``, file order) is kept. Points keep the points inside the window
(``"clipped": "1"`` when some were left out); tags go to every tile.

Examples
--------
>>> import numpy as np
>>> from defectlab.model import Ellipse, Item
>>> item = Item("a.png", (64, 96), (Ellipse(label="cavity", cx=30, cy=20, rx=6, ry=6),
...                                 Ellipse(label="cavity", cx=62, cy=40, rx=8, ry=8)))
>>> windows = tile_windows(item.size_hw, (32, 32), (16, 16))
>>> len(windows), windows[0], windows[-1]
(15, Window(x0=0, y0=0, h=32, w=32), Window(x0=64, y0=32, h=32, w=32))
>>> tiles, notes = tile_item(item, windows, min_visible=0.25)
>>> t = tiles[1]                                   # the window at x0=16, y0=0
>>> [(s.kind, s.attributes.get("clipped")) for s in t.item.shapes], t.item.shapes[0].cx
([('ellipse', None)], 14.0)
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import DatasetError
from ..model import Ellipse, Item, Mask, Note, Points, Shape, Tag
from ..raster import DEFAULT_LINE_WIDTH, Crop, rasterize
from ..raster.shapes import ellipse_window
from .resize import translate_shape

__all__ = [
    "Window", "Tile", "tile_windows", "tile_item", "tile_image", "clip_shapes", "ClipResult",
    "DEFAULT_MIN_VISIBLE", "tile_name", "stable_seed",
]

#: Default share of an instance a clipped remainder must show to be kept.
DEFAULT_MIN_VISIBLE = 0.25

#: Attribute set on instances cut by a tile border (and on augmented ones cut by the canvas).
CLIPPED = "clipped"


class Window(NamedTuple):
    """A tile's place in its source image: top-left pixel column ``x0``, row ``y0``, size ``h``×``w``."""

    x0: int
    y0: int
    h: int
    w: int

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)`` pixel edges (x2, y2 exclusive)."""
        return self.x0, self.y0, self.x0 + self.w, self.y0 + self.h


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile: its item (tile coordinates), where it came from, and what the border did.

    Attributes
    ----------
    item : Item
        ``size_hw`` = the window's size; shapes translated or clipped (module docstring).
    source : str
        The source item's name.
    window : Window
        Where the tile lies in the source image.
    clipped : dict
        Label -> number of instances cut by the tile border and kept (as masks).
    dropped : dict
        Label -> number of cut instances dropped as below ``min_visible``.
    """

    item: Item
    source: str
    window: Window
    clipped: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when no instance (area shape or polyline) is in the tile."""
        return not any(s.is_area or s.kind == "polyline" for s in self.item.shapes)


def _pair(value: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        h = w = int(value)
    else:
        try:
            h, w = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"expected {what} as an int or (height, width), got {value!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"expected a positive {what}, got {value!r}")
    return h, w


def _starts(lo: int, hi: int, tile: int, stride: int, pad: bool) -> list[int]:
    """Window starts covering [lo, hi) along one axis."""
    if hi - lo <= tile:
        return [lo] if pad or hi - lo == tile else []
    if pad:
        starts = [lo]
        while starts[-1] + tile < hi:
            starts.append(starts[-1] + stride)
        return starts
    starts = list(range(lo, hi - tile + 1, stride))
    if starts[-1] + tile < hi:
        starts.append(hi - tile)
    return starts


def tile_windows(
    size_hw: Sequence[int],
    tile_hw: int | Sequence[int],
    stride_hw: int | Sequence[int] | None = None,
    *,
    pad: bool = False,
    within: Iterable[Sequence[int]] | None = None,
) -> list[Window]:
    """The windows tiling an image, row by row.

    Parameters
    ----------
    size_hw : (int, int)
        Image height and width.
    tile_hw : int or (int, int)
        Tile height and width in px.
    stride_hw : int or (int, int), optional
        Step between windows; the tile size when omitted (no overlap).
    pad : bool
        Let the last windows run past the right/bottom border (to be filled) instead of
        moving them back inside; required when the image is smaller than a tile.
    within : iterable of (x1, y1, x2, y2), optional
        Non-overlapping rectangles (pixel edges) whose union the windows must stay inside —
        the regions of one split of a spatial split
        (:func:`defectlab.preparation.splits.spatial_split`). Windows are laid on the image's
        lattice and on each rectangle's own (so each rectangle is covered); ``pad`` does not
        apply.

    Returns
    -------
    list of Window
        Without padding, the union of the windows is exactly the image (or the rectangles).

    Raises
    ------
    DatasetError
        The image is smaller than a tile and ``pad`` is False.
    """
    h, w = _pair(size_hw, "size_hw")
    th, tw = _pair(tile_hw, "tile_hw")
    sh, sw = _pair(stride_hw if stride_hw is not None else (th, tw), "stride_hw")
    if not pad and (h < th or w < tw):
        raise DatasetError(
            f"a {w}x{h} (WxH) image is smaller than a {tw}x{th} tile; use a smaller tile or pad=True (--pad)"
        )
    if within is None:
        return [Window(x0, y0, th, tw) for y0 in _starts(0, h, th, sh, pad) for x0 in _starts(0, w, tw, sw, pad)]
    rects = [tuple(int(v) for v in r) for r in within]
    # candidates: the image's own lattice plus each rectangle's; kept when the window lies in
    # the union of the rectangles (which must not overlap: their intersections with it add up)
    xs = set(range(0, max(w - tw, 0) + 1, sw))
    ys = set(range(0, max(h - th, 0) + 1, sh))
    for x1, y1, x2, y2 in rects:
        xs.update(_starts(x1, x2, tw, sw, False))
        ys.update(_starts(y1, y2, th, sh, False))
    out: list[Window] = []
    for y0 in sorted(ys):
        for x0 in sorted(xs):
            covered = sum(max(0, min(x0 + tw, x2) - max(x0, x1)) * max(0, min(y0 + th, y2) - max(y0, y1))
                          for x1, y1, x2, y2 in rects)
            if covered == th * tw:
                out.append(Window(x0, y0, th, tw))
    out.sort(key=lambda win: (win.y0, win.x0))
    return out


def tile_image(image: np.ndarray, window: Window, *, fill: float = 0) -> np.ndarray:
    """The pixels of ``window`` (a copy), ``fill`` where the window runs past the image.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
    window : Window

    Returns
    -------
    (h, w) or (h, w, C) array of ``image.dtype``
    """
    img = np.asarray(image)
    x1, y1, x2, y2 = window.xyxy
    if x1 >= 0 and y1 >= 0 and x2 <= img.shape[1] and y2 <= img.shape[0]:
        return img[y1:y2, x1:x2].copy()
    out = np.full((window.h, window.w, *img.shape[2:]), fill, dtype=img.dtype)
    sx1, sy1 = max(x1, 0), max(y1, 0)
    sx2, sy2 = min(x2, img.shape[1]), min(y2, img.shape[0])
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = img[sy1:sy2, sx1:sx2]
    return out


def tile_name(name: str, window: Window, size_hw: Sequence[int], suffix: str | None = None) -> str:
    """``"<stem>_x<x0>_y<y0><suffix>"``, offsets zero-padded to the image's digits (sorts in order).

    >>> tile_name("sub/img.png", Window(128, 0, 256, 256), (512, 1024))
    'sub/img_x0128_y000.png'
    """
    stem, dot, ext = name.rpartition(".")
    if not dot or "/" in ext:
        stem, ext = name, ""
    suffix = suffix if suffix is not None else (f".{ext}" if ext else "")
    dx, dy = len(str(int(size_hw[1]))), len(str(int(size_hw[0])))
    return f"{stem}_x{window.x0:0{dx}d}_y{window.y0:0{dy}d}{suffix}"


# -- the clipping core ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Instance:
    index: int
    shape: Shape
    crop: Crop  # tight, in canvas pixels
    area: int  # pixels in the canvas
    ref: int  # the area min_visible is a share of


def _largest_window_sum(bitmap: np.ndarray, win_hw: tuple[int, int]) -> int:
    """Most set pixels any win_hw window (clipped to the bitmap) holds."""
    h, w = bitmap.shape
    wh, ww = min(win_hw[0], h), min(win_hw[1], w)
    s = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.cumsum(np.cumsum(bitmap, axis=0, dtype=np.int64), axis=1, out=s[1:, 1:])
    sums = s[wh:, ww:] - s[:-wh, ww:] - s[wh:, :-ww] + s[:-wh, :-ww]
    return int(sums.max())


@dataclass
class ClipResult:
    """The shapes of one window (window coordinates, file order) and what the border did."""

    shapes: list[Shape]
    clipped: Counter
    dropped: Counter


def _is_instance(shape: Shape) -> bool:
    return shape.is_area or shape.kind == "polyline"


def _same_pixels(a: Crop, b: Crop) -> bool:
    return (a.x0, a.y0) == (b.x0, b.y0) and a.bitmap.shape == b.bitmap.shape and np.array_equal(a.bitmap, b.bitmap)


def _exact_shift(value: float, by: int) -> bool:
    """``value - by`` is computed without rounding: a float below 2**52 moved by a whole number
    of pixels toward zero, by at most twice itself (``|value - by| <= |value|``), stays a
    multiple of its own spacing (at most 0.5) and no larger, so it is representable."""
    if by == 0:
        return True
    return abs(value) < 2.0**52 and (2.0 * value >= by if by > 0 else 2.0 * value <= by)


def _moves_exactly(shape: Shape, moved: Shape, x1: int, y1: int, win: Window, canvas_hw: tuple[int, int]) -> bool:
    """True when ``moved`` (``shape`` translated by ``(-x1, -y1)``) provably rasterizes in the
    window to the source pixels of ``shape``, moved — without rasterizing it; False: not proven.

    Ellipses (:func:`~defectlab.raster.shapes.ellipse_window`): the center moved exactly and
    the tested window moved by the same pixels. Masks: their bitmap moves as it is. For both,
    the pixels the source rasterization cut off at the canvas border must not reappear in the
    tile: the window lies in the canvas, or the source's tested pixels do. Other kinds (polygon
    crossings are interpolated at the vertices' magnitude, so they may round differently once
    moved) are checked by rasterizing.
    """
    h, w = canvas_hw
    in_canvas = win.x0 >= 0 and win.y0 >= 0 and win.x0 + win.w <= w and win.y0 + win.h <= h
    if isinstance(shape, Mask):
        bh, bw = shape.bitmap.shape
        return in_canvas or (shape.left >= 0 and shape.top >= 0 and shape.left + bw <= w and shape.top + bh <= h)
    if isinstance(shape, Ellipse) and isinstance(moved, Ellipse):
        if not (_exact_shift(shape.cx, x1) and _exact_shift(shape.cy, y1)):
            return False
        c0, r0, c1, r1 = ellipse_window(shape.cx, shape.cy, shape.rx, shape.ry, shape.rotation_deg)
        m0, n0, m1, n1 = ellipse_window(moved.cx, moved.cy, moved.rx, moved.ry, moved.rotation_deg)
        if (m0 + x1, n0 + y1, m1 + x1, n1 + y1) != (c0, r0, c1, r1):
            return False
        return in_canvas or (c0 >= 0 and r0 >= 0 and c1 < w and r1 < h)
    return False


def _clipped_mask(shape: Shape, bitmap: np.ndarray, left: int, top: int) -> Mask:
    attributes = dict(shape.attributes)
    attributes[CLIPPED] = "1"
    return Mask(bitmap=bitmap, left=left, top=top, label=shape.label, z_order=shape.z_order,
                occluded=shape.occluded, group=shape.group, source=shape.source, attributes=attributes)


def _points_in(shape: Points, win: Window) -> Points | None:
    pts = shape.points_xy
    x1, y1, x2, y2 = win.xyxy
    keep = (pts[:, 0] >= x1) & (pts[:, 0] < x2) & (pts[:, 1] >= y1) & (pts[:, 1] < y2)
    if not keep.any():
        return None
    moved = pts[keep] - np.array([x1, y1], dtype=np.float64)
    changes: dict = {"points_xy": moved}
    if not keep.all():
        changes["names"] = None if shape.names is None else tuple(n for n, k in zip(shape.names, keep) if k)
        changes["attributes"] = {**shape.attributes, CLIPPED: "1"}
    return shape.replace(**changes)


def clip_shapes(
    shapes: Sequence[Shape],
    canvas_hw: tuple[int, int],
    windows: Sequence[Window],
    *,
    min_visible: float = DEFAULT_MIN_VISIBLE,
    line_width: float = DEFAULT_LINE_WIDTH,
    item_name: str = "",
    crops: Mapping[int, Crop] | None = None,
) -> tuple[list[ClipResult], list[Note]]:
    """Cut ``shapes`` (on a canvas of ``canvas_hw``) by each window; see the module docstring.

    ``crops`` (shape index -> ``rasterize(shapes[i], canvas_hw, line_width=line_width)``, or
    its ``.tight()``) are instances the caller has already rasterized in the canvas; the
    others are rasterized here. Returns one :class:`ClipResult` per window, and notes on
    shapes that cover no pixel center of the canvas (degenerate: in no window).
    """
    if not 0.0 <= float(min_visible) <= 1.0:
        raise ValueError(f"expected min_visible between 0 and 1, got {min_visible!r}")
    notes: list[Note] = []
    insts: list[_Instance] = []
    others: list[tuple[int, Shape]] = []
    win_hw = (max(w.h for w in windows), max(w.w for w in windows)) if windows else (1, 1)
    for i, shape in enumerate(shapes):
        if not _is_instance(shape):
            others.append((i, shape))
            continue
        crop = crops.get(i) if crops is not None else None
        crop = (crop if crop is not None else rasterize(shape, canvas_hw, line_width=line_width)).tight()
        if crop.bitmap.size == 0:
            notes.append(Note("degenerate-instance",
                              f"{shape.kind} {shape.label!r} covers no pixel center; in no tile",
                              item=item_name or None, where=f"shape {i}"))
            continue
        area = crop.area
        bh, bw = crop.bitmap.shape
        ref = area if bh <= win_hw[0] and bw <= win_hw[1] else _largest_window_sum(crop.bitmap, win_hw)
        insts.append(_Instance(i, shape, crop, area, ref))
    if insts:
        boxes = np.array([(it.crop.x0, it.crop.y0, it.crop.x0 + it.crop.bitmap.shape[1],
                           it.crop.y0 + it.crop.bitmap.shape[0]) for it in insts], dtype=np.int64)
    else:
        boxes = np.zeros((0, 4), dtype=np.int64)
    results: list[ClipResult] = []
    for win in windows:
        x1, y1, x2, y2 = win.xyxy
        hit = np.flatnonzero((boxes[:, 0] < x2) & (boxes[:, 2] > x1) & (boxes[:, 1] < y2) & (boxes[:, 3] > y1))
        placed: list[tuple[int, Shape]] = []
        clipped: Counter = Counter()
        dropped: Counter = Counter()
        for k in hit.tolist():
            it = insts[k]
            bx1, by1, bx2, by2 = boxes[k].tolist()
            if bx1 >= x1 and by1 >= y1 and bx2 <= x2 and by2 <= y2:
                moved = translate_shape(it.shape, -x1, -y1)
                exact = _moves_exactly(it.shape, moved, x1, y1, win, canvas_hw)
                if not exact and not _same_pixels(rasterize(moved, (win.h, win.w), line_width=line_width).tight(),
                                                  Crop(bx1 - x1, by1 - y1, it.crop.bitmap)):
                    moved = Mask(bitmap=it.crop.bitmap, left=bx1 - x1, top=by1 - y1, label=it.shape.label,
                                 z_order=it.shape.z_order, occluded=it.shape.occluded, group=it.shape.group,
                                 source=it.shape.source, attributes=dict(it.shape.attributes))
                placed.append((it.index, moved))
                continue
            cx1, cy1 = max(bx1, x1), max(by1, y1)
            cx2, cy2 = min(bx2, x2), min(by2, y2)
            piece = Crop(cx1, cy1, it.crop.bitmap[cy1 - by1 : cy2 - by1, cx1 - bx1 : cx2 - bx1]).tight()
            visible = piece.area
            if visible == 0:
                continue
            if visible < min_visible * it.ref:
                dropped[it.shape.label] += 1
                continue
            clipped[it.shape.label] += 1
            placed.append((it.index, _clipped_mask(it.shape, piece.bitmap, piece.x0 - x1, piece.y0 - y1)))
        for i, shape in others:
            if isinstance(shape, Points):
                moved_pts = _points_in(shape, win)
                if moved_pts is not None:
                    placed.append((i, moved_pts))
            elif isinstance(shape, Tag):
                placed.append((i, shape))
        placed.sort(key=lambda t: t[0])
        results.append(ClipResult([s for _, s in placed], clipped, dropped))
    return results, notes


def tile_item(
    item: Item,
    windows: Sequence[Window],
    *,
    min_visible: float = DEFAULT_MIN_VISIBLE,
    line_width: float = DEFAULT_LINE_WIDTH,
    suffix: str | None = None,
    crops: Mapping[int, Crop] | None = None,
) -> tuple[list[Tile], list[Note]]:
    """Cut an item's labels by each window (see the module docstring).

    Parameters
    ----------
    item : Item
        The source image's shapes.
    windows : sequence of Window
        E.g. from :func:`tile_windows`.
    min_visible : float
        In [0, 1]: a clipped remainder showing less than this share of its instance is
        dropped and counted. 0 keeps every remainder (the tiles then hold every label pixel).
    line_width : float
        Width in px of polyline masks; the writers must use the same width.
    suffix : str, optional
        File suffix of the tile names (default: the source's).
    crops : mapping of shape index -> Crop, optional
        Instances already rasterized in the source image (see :func:`clip_shapes`).

    Returns
    -------
    tiles : list of Tile
        One per window, in window order, named by :func:`tile_name`; ``image`` unset.
    notes : list of Note
        Degenerate shapes (covering no pixel center), which are in no tile.
    """
    results, notes = clip_shapes(item.shapes, item.size_hw, windows, min_visible=min_visible,
                                 line_width=line_width, item_name=item.name, crops=crops)
    tiles = []
    for win, res in zip(windows, results):
        name = tile_name(item.name, win, item.size_hw, suffix)
        tile_item_ = Item(name, (win.h, win.w), tuple(res.shapes), subset=item.subset)
        tiles.append(Tile(tile_item_, item.name, win, dict(res.clipped), dict(res.dropped)))
    return tiles, notes


def stable_seed(*parts: object) -> list[int]:
    """Integers for ``numpy.random.SeedSequence`` from names and numbers, stable across runs.

    >>> stable_seed(0, "a.png") == [0, zlib.crc32(b"a.png")], stable_seed(-1)
    (True, [4294967295])
    """
    out = []
    for p in parts:
        if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
            out.append(int(p) % (1 << 32))
        else:
            out.append(zlib.crc32(str(p).encode("utf-8")))
    return out
