"""Resize or pad images to one size, moving the labels' *geometry* exactly.

Labels are shapes, so a resize scales the shapes — it does not resample masks. A polygon's
vertices are scaled; an ellipse stays an ellipse (any affine map takes an ellipse to an
ellipse, whose radii and rotation are computed exactly); an axis-aligned box stays a box;
a rotated box under unequal x and y scales becomes the polygon of its mapped corners (a
parallelogram, exactly). A :class:`~defectlab.model.Mask` is a union of pixel squares: its
image under the map is rasterized by the same center rule as every other shape — a target
pixel is set when its center maps back into a set source pixel.

The maps are affine, ``[x', y'] = A @ [x, y] + t``, written as one (2, 3) float64 matrix
``[A | t]`` in the coordinate convention of :mod:`defectlab.model.shapes` (``(0, 0)`` is
the top-left corner of the top-left pixel). :mod:`defectlab.preparation.augment` uses the same
functions for flips, rotations and zooms.

Examples
--------
>>> import numpy as np
>>> from defectlab.model import Ellipse, Item
>>> item = Item("a.png", (100, 200), (Ellipse(label="cavity", cx=50, cy=40, rx=10, ry=5),))
>>> small = resize_item(item, (50, 100))
>>> small.size_hw, small.shapes[0].cx, small.shapes[0].rx
((50, 100), 25.0, 5.0)
>>> image, padded = fit(np.zeros((100, 200), np.uint8), item, (256, 256), mode="pad", align="center")
>>> image.shape, padded.shapes[0].cx, padded.shapes[0].cy
((256, 256), 78.0, 118.0)
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

from ..model import Box, Ellipse, Item, Mask, Points, Polygon, Polyline, Shape, Tag

__all__ = [
    "identity", "translation", "scaling", "affine_shape", "translate_shape", "affine_item", "is_pixel_exact",
    "warp_image", "warp_mask", "resize_item", "resize_image", "pad_item", "pad_image", "fit",
]

FitMode = Literal["scale", "pad", "letterbox"]


# -- matrices ----------------------------------------------------------------------------------


def identity() -> np.ndarray:
    """The (2, 3) identity map."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def translation(dx: float, dy: float) -> np.ndarray:
    """The (2, 3) map ``(x, y) -> (x + dx, y + dy)``."""
    return np.array([[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)]])


def scaling(sx: float, sy: float) -> np.ndarray:
    """The (2, 3) map ``(x, y) -> (sx x, sy y)`` (about the image's top-left corner)."""
    return np.array([[float(sx), 0.0, 0.0], [0.0, float(sy), 0.0]])


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"expected a finite (2, 3) affine matrix [A | t], got shape {m.shape}")
    if abs(np.linalg.det(m[:, :2])) < 1e-12:
        raise ValueError("expected an invertible affine map, got a singular one")
    return m


def _inverse(m: np.ndarray) -> np.ndarray:
    a_inv = np.linalg.inv(m[:, :2])
    return np.hstack([a_inv, -(a_inv @ m[:, 2:])])


def is_pixel_exact(matrix: np.ndarray) -> bool:
    """True when the map moves whole pixels onto whole pixels: flips, 90° turns, integer shifts.

    Such a map is applied to images by moving pixels (no interpolation), so it is exact.

    Examples
    --------
    >>> is_pixel_exact(np.array([[0.0, -1.0, 64.0], [1.0, 0.0, 0.0]])), is_pixel_exact(scaling(2, 2))
    (True, False)
    """
    m = np.asarray(matrix, dtype=np.float64)
    a = m[:, :2]
    perm = np.all(np.isin(a, (-1.0, 0.0, 1.0))) and np.all(np.abs(a).sum(axis=0) == 1) \
        and np.all(np.abs(a).sum(axis=1) == 1)
    return bool(perm and np.all(m[:, 2] == np.round(m[:, 2])))


# -- shapes ------------------------------------------------------------------------------------


def _apply(m: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    return points_xy @ m[:, :2].T + m[:, 2]


def _angle_deg(vx: float, vy: float) -> float:
    """Direction of (vx, vy) in degrees, clockwise on screen, reduced to [0, 180)."""
    return math.degrees(math.atan2(vy, vx)) % 180.0


def _axes(a: np.ndarray, rotation_deg: float, hx: float, hy: float) -> tuple[np.ndarray, np.ndarray]:
    """Images under ``a`` of the shape's two half-axes (hx along its rotated x axis, hy along y)."""
    if rotation_deg == 0.0:
        return a[:, 0] * hx, a[:, 1] * hy
    t = math.radians(rotation_deg)
    c, s = math.cos(t), math.sin(t)
    return a @ np.array([c * hx, s * hx]), a @ np.array([-s * hy, c * hy])


def _orthogonal(u: np.ndarray, v: np.ndarray) -> bool:
    return abs(float(u @ v)) <= 1e-12 * float(np.hypot(*u) * np.hypot(*v)) + 1e-300


def _affine_ellipse(e: Ellipse, m: np.ndarray) -> Ellipse:
    cx, cy = _apply(m, np.array([[e.cx, e.cy]]))[0]
    a = m[:, :2]
    u, v = _axes(a, e.rotation_deg, e.rx, e.ry)
    if _orthogonal(u, v):
        rx, ry = float(np.hypot(*u)), float(np.hypot(*v))
        rot = _angle_deg(*u) if rx > 0 else _angle_deg(*v) - 90.0
    else:  # the image of the unit circle under B = [u v]: radii are B's singular values
        uu, ss, _ = np.linalg.svd(np.stack([u, v], axis=1))
        rx, ry = float(ss[0]), float(ss[1])
        rot = _angle_deg(uu[0, 0], uu[1, 0])
    rot %= 180.0
    if rot == 90.0:  # exactly a quarter turn: an axis-aligned ellipse with its radii swapped
        rx, ry, rot = ry, rx, 0.0
    return e.replace(cx=float(cx), cy=float(cy), rx=rx, ry=ry, rotation_deg=rot)


def _affine_box(b: Box, m: np.ndarray) -> Shape:
    a = m[:, :2]
    if b.rotation_deg == 0.0 and np.count_nonzero(a) == 2 and np.all(np.abs(a).sum(axis=0) > 0):
        # axis-aligned map of an axis-aligned box: its corners give the box exactly
        x1, y1, x2, y2 = b.xyxy
        pts = _apply(m, np.array([[x1, y1], [x2, y2]]))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return b.replace(xyxy=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), rotation_deg=0.0)
    x1, y1, x2, y2 = b.xyxy
    u, v = _axes(a, b.rotation_deg, (x2 - x1) / 2, (y2 - y1) / 2)
    if not _orthogonal(u, v):  # a rotated box under unequal scales is a parallelogram
        return Polygon(points_xy=_apply(m, b.corners_xy()), **_common(b))
    cx, cy = _apply(m, np.array([[(x1 + x2) / 2, (y1 + y2) / 2]]))[0]
    hw, hh = float(np.hypot(*u)), float(np.hypot(*v))
    rot = _angle_deg(*u) if hw > 0 else _angle_deg(*v) - 90.0
    rot %= 180.0
    if rot == 90.0:
        hw, hh, rot = hh, hw, 0.0
    return b.replace(xyxy=(cx - hw, cy - hh, cx + hw, cy + hh), rotation_deg=rot)


def _common(shape: Shape) -> dict:
    return {"label": shape.label, "z_order": shape.z_order, "occluded": shape.occluded,
            "group": shape.group, "source": shape.source, "attributes": dict(shape.attributes)}


def _affine_mask(mk: Mask, m: np.ndarray) -> Shape:
    h, w = mk.bitmap.shape
    if h == 0 or w == 0 or not mk.bitmap.any():
        return mk.replace(bitmap=np.zeros((0, 0), bool), left=0, top=0)
    x0, y0 = mk.left, mk.top
    corners = _apply(m, np.array([[x0, y0], [x0 + w, y0], [x0, y0 + h], [x0 + w, y0 + h]], dtype=np.float64))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    c0, r0 = math.floor(lo[0]), math.floor(lo[1])
    c1, r1 = math.ceil(hi[0]), math.ceil(hi[1])
    inv = _inverse(m)
    cols = np.arange(c0, c1, dtype=np.float64) + 0.5
    rows = np.arange(r0, r1, dtype=np.float64) + 0.5
    sx = inv[0, 0] * cols[None, :] + inv[0, 1] * rows[:, None] + inv[0, 2]
    sy = inv[1, 0] * cols[None, :] + inv[1, 1] * rows[:, None] + inv[1, 2]
    ci = np.floor(sx).astype(np.int64) - x0
    ri = np.floor(sy).astype(np.int64) - y0
    ok = (ci >= 0) & (ci < w) & (ri >= 0) & (ri < h)
    out = np.zeros(ok.shape, dtype=bool)
    out[ok] = mk.bitmap[ri[ok], ci[ok]]
    return mk.replace(bitmap=out, left=c0, top=r0)


def translate_shape(shape: Shape, dx: float, dy: float) -> Shape:
    """``shape`` moved by ``(dx, dy)`` px: every coordinate shifted, rotations and radii untouched.

    What :func:`affine_shape` does with :func:`translation` ``(dx, dy)``, without building and
    checking a matrix (tiling moves every shape of every tile this way). A mask moved by whole
    pixels keeps its bitmap.

    Examples
    --------
    >>> from defectlab.model import Ellipse
    >>> e = translate_shape(Ellipse(label="cavity", cx=10.5, cy=20, rx=3, ry=2), -8, -16)
    >>> e.cx, e.cy, e.rx
    (2.5, 4.0, 3.0)
    """
    if isinstance(shape, (Polygon, Polyline, Points)):
        return shape.replace(points_xy=shape.points_xy + np.array([dx, dy]))
    if isinstance(shape, Ellipse):
        return shape.replace(cx=shape.cx + dx, cy=shape.cy + dy)
    if isinstance(shape, Box):
        x1, y1, x2, y2 = shape.xyxy
        return shape.replace(xyxy=(x1 + dx, y1 + dy, x2 + dx, y2 + dy))
    if isinstance(shape, Mask):
        if dx == int(dx) and dy == int(dy):
            return shape.replace(left=shape.left + int(dx), top=shape.top + int(dy))
        return _affine_mask(shape, translation(dx, dy))
    if isinstance(shape, Tag):
        return shape
    raise TypeError(f"affine_shape: expected a Shape, got {type(shape).__name__}")


def affine_shape(shape: Shape, matrix: np.ndarray) -> Shape:
    """``shape`` moved by the affine map ``matrix`` (2, 3), exactly.

    Polygons, polylines and points map their vertices; ellipses stay ellipses; boxes stay
    boxes unless unequal scales shear a rotated one into a parallelogram (then a
    :class:`Polygon` of its corners); masks are re-rasterized by the center rule (see the
    module docstring); tags are unchanged. The annotation fields (label, z_order, ...) are
    kept. Polyline widths are a rasterization setting in pixels and are not scaled.

    Examples
    --------
    >>> from defectlab.model import Ellipse
    >>> turn = np.array([[0.0, -1.0, 64.0], [1.0, 0.0, 0.0]])   # 90° clockwise in a 64-px-high image
    >>> e = affine_shape(Ellipse(label="loop", cx=10, cy=20, rx=6, ry=2), turn)
    >>> e.cx, e.cy, e.rx, e.ry, e.rotation_deg
    (44.0, 10.0, 2.0, 6.0, 0.0)
    """
    m = _check_matrix(matrix)
    if np.array_equal(m[:, :2], np.eye(2)):
        return translate_shape(shape, float(m[0, 2]), float(m[1, 2]))
    if isinstance(shape, (Polygon, Polyline, Points)):
        return shape.replace(points_xy=_apply(m, shape.points_xy))
    if isinstance(shape, Ellipse):
        return _affine_ellipse(shape, m)
    if isinstance(shape, Box):
        return _affine_box(shape, m)
    if isinstance(shape, Mask):
        return _affine_mask(shape, m)
    if isinstance(shape, Tag):
        return shape
    raise TypeError(f"affine_shape: expected a Shape, got {type(shape).__name__}")


def affine_item(item: Item, matrix: np.ndarray, size_hw: tuple[int, int]) -> Item:
    """An item whose shapes are moved by ``matrix``, declared with the new ``size_hw``.

    Shapes are not clipped to the new canvas (the rasterizer clips them); the image source
    is dropped, since the pixels changed.
    """
    m = _check_matrix(matrix)
    return Item(item.name, size_hw, tuple(affine_shape(s, m) for s in item.shapes),
                image=None, subset=item.subset, id=item.id)


# -- pixels ------------------------------------------------------------------------------------


def _source_coords(m: np.ndarray, out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Source (x, y) of every output pixel center, each (H', W') float64."""
    inv = _inverse(m)
    cols = np.arange(out_hw[1], dtype=np.float64)[None, :] + 0.5
    rows = np.arange(out_hw[0], dtype=np.float64)[:, None] + 0.5
    return (inv[0, 0] * cols + inv[0, 1] * rows + inv[0, 2],
            inv[1, 0] * cols + inv[1, 1] * rows + inv[1, 2])


def warp_mask(mask: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int], *, fill: int = 0) -> np.ndarray:
    """A label image (class indices, instance ids, bools) moved by ``matrix``, by the center rule.

    Output pixel ``(r, c)`` takes the value of the source pixel its center maps back into
    (``fill`` when that falls outside): the same rule as :func:`affine_shape` for a
    :class:`Mask`, and exact — nothing is interpolated.

    Parameters
    ----------
    mask : (H, W) array
    matrix : (2, 3) float array
        Source -> output coordinates.
    out_hw : (int, int)
        Output height and width.

    Returns
    -------
    (H', W') array of ``mask.dtype``

    Examples
    --------
    >>> m = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> flip = np.array([[-1.0, 0.0, 3.0], [0.0, 1.0, 0.0]])
    >>> warp_mask(m, flip, (2, 3)).tolist()
    [[2, 1, 0], [5, 4, 3]]
    """
    m = _check_matrix(matrix)
    src = np.asarray(mask)
    sx, sy = _source_coords(m, out_hw)
    ci = np.floor(sx).astype(np.int64)
    ri = np.floor(sy).astype(np.int64)
    ok = (ci >= 0) & (ci < src.shape[1]) & (ri >= 0) & (ri < src.shape[0])
    out = np.full((*out_hw, *src.shape[2:]), fill, dtype=src.dtype)
    out[ok] = src[ri[ok], ci[ok]]
    return out


def warp_image(
    image: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int], *, fill: float = 0.0
) -> np.ndarray:
    """An image moved by ``matrix``: pixels moved exactly for flips, 90° turns and integer
    shifts, bilinear interpolation otherwise (``fill`` outside the source).

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
    matrix : (2, 3) float array
        Source -> output coordinates, with pixel (c, r) centered at (c + 0.5, r + 0.5).
    out_hw : (int, int)
    fill : float
        Value of output pixels whose center maps outside the source.

    Returns
    -------
    ndarray
        ``image.dtype`` for exact moves, float64 after interpolation.

    Examples
    --------
    >>> img = np.arange(12.0).reshape(3, 4)
    >>> bool((warp_image(img, translation(0.5, 0), (3, 4))[:, 1:] == (img[:, :-1] + img[:, 1:]) / 2).all())
    True
    """
    m = _check_matrix(matrix)
    img = np.asarray(image)
    if is_pixel_exact(m):
        return warp_mask(img, m, out_hw, fill=fill)
    from scipy import ndimage

    inv = _inverse(m)
    # output index (row, col) -> source index: (y - .5, x - .5) of the mapped center
    a = inv[:, :2]
    mat_rc = np.array([[a[1, 1], a[1, 0]], [a[0, 1], a[0, 0]]])
    off_xy = a @ np.array([0.5, 0.5]) + inv[:, 2] - 0.5
    offset = np.array([off_xy[1], off_xy[0]])
    planes = img[..., None] if img.ndim == 2 else img
    out = np.stack([
        ndimage.affine_transform(planes[..., k].astype(np.float64), mat_rc, offset=offset,
                                 output_shape=tuple(out_hw), order=1, mode="constant", cval=float(fill))
        for k in range(planes.shape[-1])
    ], axis=-1)
    return out[..., 0] if img.ndim == 2 else out


# -- resize, pad, fit ----------------------------------------------------------------------------


def _check_size(size_hw: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size_hw)
    except (TypeError, ValueError):
        raise ValueError(f"expected size_hw as (height, width), got {size_hw!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"expected a positive size_hw, got {size_hw!r}")
    return h, w


def resize_item(item: Item, size_hw: Sequence[int]) -> Item:
    """The item's shapes scaled to an image of ``size_hw`` (x by W'/W, y by H'/H), exactly."""
    h, w = _check_size(size_hw)
    return affine_item(item, scaling(w / item.size_hw[1], h / item.size_hw[0]), (h, w))


def resize_image(image: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """``image`` resampled to ``size_hw`` (antialiased when shrinking), in its own dtype.

    Pixel centers map as the shapes do: source center ``x`` goes to ``x · W'/W``.
    """
    from skimage.transform import resize

    h, w = _check_size(size_hw)
    img = np.asarray(image)
    shrink = h < img.shape[0] or w < img.shape[1]
    out = resize(img.astype(np.float64), (h, w, *img.shape[2:]), order=1, mode="edge",
                 anti_aliasing=shrink, preserve_range=True)
    return _to_dtype(out, img.dtype)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return values >= 0.5
    return values.astype(dtype)


def _pad_offset(size_hw: tuple[int, int], target_hw: tuple[int, int], align: str) -> tuple[int, int]:
    dh, dw = target_hw[0] - size_hw[0], target_hw[1] - size_hw[1]
    if dh < 0 or dw < 0:
        raise ValueError(
            f"cannot pad a {size_hw[1]}x{size_hw[0]} (WxH) image to the smaller {target_hw[1]}x{target_hw[0]}"
        )
    if align == "top-left":
        return 0, 0
    if align == "center":
        return dw // 2, dh // 2
    raise ValueError(f"expected align 'top-left' or 'center', got {align!r}")


def pad_item(item: Item, size_hw: Sequence[int], *, align: str = "top-left") -> Item:
    """The item on a larger canvas of ``size_hw``: shapes shifted by the (integer) padding."""
    h, w = _check_size(size_hw)
    dx, dy = _pad_offset(item.size_hw, (h, w), align)
    return affine_item(item, translation(dx, dy), (h, w))


def pad_image(image: np.ndarray, size_hw: Sequence[int], *, align: str = "top-left", fill: float = 0) -> np.ndarray:
    """``image`` on a larger canvas of ``size_hw`` filled with ``fill``; see :func:`pad_item`."""
    h, w = _check_size(size_hw)
    img = np.asarray(image)
    dx, dy = _pad_offset(img.shape[:2], (h, w), align)
    out = np.full((h, w, *img.shape[2:]), fill, dtype=img.dtype)
    out[dy : dy + img.shape[0], dx : dx + img.shape[1]] = img
    return out


def fit(
    image: np.ndarray,
    item: Item,
    size_hw: Sequence[int],
    *,
    mode: FitMode = "scale",
    align: str = "top-left",
    fill: float = 0,
) -> tuple[np.ndarray, Item]:
    """Bring an image and its labels to ``size_hw`` together.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        The item's pixels.
    item : Item
    size_hw : (int, int)
        Target height and width.
    mode : {"scale", "pad", "letterbox"}
        ``scale``: resize to exactly ``size_hw`` (aspect ratio may change; pixel sizes then
        differ in x and y). ``pad``: keep the pixels and pad (the image must not be larger).
        ``letterbox``: scale by one factor so the image fits, then pad (pixel size changes by
        that factor, the same in x and y).
    align : {"top-left", "center"}
        Where the image sits on a padded canvas; centered offsets are whole pixels
        (the extra pixel of an odd padding goes right / down).
    fill : float
        Value of padded pixels.

    Returns
    -------
    image : ndarray
        (H', W'[, C]) in the input dtype.
    item : Item
        The shapes moved exactly (see the module docstring), ``size_hw`` set.
    """
    h, w = _check_size(size_hw)
    if np.asarray(image).shape[:2] != item.size_hw:
        raise ValueError(f"{item.name}: image is {image.shape[1]}x{image.shape[0]} (WxH) but the labels are "
                         f"for {item.size_hw[1]}x{item.size_hw[0]}")
    if mode == "scale":
        return resize_image(image, (h, w)), resize_item(item, (h, w))
    if mode == "pad":
        return pad_image(image, (h, w), align=align, fill=fill), pad_item(item, (h, w), align=align)
    if mode == "letterbox":
        s = min(h / item.size_hw[0], w / item.size_hw[1])
        inner = (max(1, round(item.size_hw[0] * s)), max(1, round(item.size_hw[1] * s)))
        scaled_img, scaled = resize_image(image, inner), resize_item(item, inner)
        return (pad_image(scaled_img, (h, w), align=align, fill=fill),
                pad_item(scaled, (h, w), align=align))
    raise ValueError(f"expected mode 'scale', 'pad' or 'letterbox', got {mode!r}")
