"""Decoding one label image and finding the objects in its array."""

from __future__ import annotations

import io
from typing import Mapping

import numpy as np

from ...errors import ParseError
from ...limits import check_size_hw
from ...model import ImageSource

# ---------------------------------------------------------------------------------------------
# Decoding one label image
# ---------------------------------------------------------------------------------------------


def _decode(data: bytes, suffix: str, display: str, *, palette_as_rgb: bool) -> np.ndarray:
    """(H, W) integer/bool labels, or (H, W, 3) uint8 colors for a color image.

    ``palette_as_rgb``: a palette PNG gives its colors (CVAT) instead of its indices.
    """
    try:
        if suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(io.BytesIO(data)) as tf:
                if not tf.pages:
                    raise ValueError("no image in the file")
                shape = tf.pages[0].shape
                if len(shape) >= 2:  # refused from the header, before decoding: its 2 largest sides
                    _check_decoded_size(tuple(sorted(shape)[-2:]), display)
                arr = tf.asarray()
        else:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                _check_decoded_size(im.size[::-1], display)
                mode = im.mode
                if mode == "P":
                    im = im.convert("RGB") if palette_as_rgb else im
                elif mode in ("RGBA", "LA", "PA"):
                    im = im.convert("RGB" if mode != "LA" else "L")
                elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    raise ParseError(display, f"expected a label image, got a {mode} color image")
                arr = np.asarray(im)
                if mode.startswith("I;16"):
                    arr = arr.astype(np.uint16)
    except ParseError:
        raise
    except Exception as err:  # decoders raise many types; report them all the same way
        raise ParseError(display, f"not a readable label image ({type(err).__name__}: {err})") from err
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8:
        arr = arr[..., :3]
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            arr = arr[..., 0]  # gray stored as RGB
    elif arr.ndim != 2:
        raise ParseError(display, f"expected a 2-D label image, got an array of shape {arr.shape}")
    if arr.dtype.kind == "f":
        raise ParseError(
            display,
            f"expected integer labels, got a {arr.dtype} (floating point) image; save label "
            "images with an integer type (uint8, uint16, int32)",
        )
    if arr.dtype.kind not in "biu":
        raise ParseError(display, f"expected integer labels, got a {arr.dtype} image")
    if arr.dtype.kind == "i" and arr.ndim == 2 and arr.size and arr.min() < 0:
        r, c = np.argwhere(arr < 0)[0]
        raise ParseError(
            display, f"expected labels >= 0, got {int(arr[r, c])}", where=f"pixel x={c}, y={r}",
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ParseError(display, f"expected a non-empty label image, got shape {arr.shape}")
    return arr


def _check_decoded_size(size_hw: tuple[int, ...], display: str) -> None:
    try:
        check_size_hw((int(size_hw[0]), int(size_hw[1])), "a label image")
    except ValueError as err:
        raise ParseError(display, str(err)) from None


def _is_wide(source: ImageSource) -> bool:
    """True when the label image holds more than 8 bits per pixel (from its header only)."""
    try:
        fh = io.BytesIO(source.read_bytes()) if source.member else source.path
        if source.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(fh) as tf:
                return np.dtype(tf.pages[0].dtype).itemsize > 1
        from PIL import Image

        with Image.open(fh) as im:
            return im.mode.startswith("I")
    except Exception:  # the full decode reports it properly
        return False


def _colors_to_index(
    rgb: np.ndarray, table: Mapping[int, int], display: str, what: str, ambiguous: Mapping[int, str]
) -> np.ndarray:
    """(H, W, 3) colors → (H, W) int64 indices through ``table`` (packed rgb → index)."""
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    values, inverse = np.unique(packed, return_inverse=True)
    lut = np.empty(len(values), dtype=np.int64)
    for k, v in enumerate(values.tolist()):
        if v in ambiguous:
            r, c = np.argwhere(inverse.reshape(packed.shape) == k)[0]
            raise ParseError(display, ambiguous[v], where=f"pixel x={c}, y={r}")
        if v not in table:
            r, c = np.argwhere(inverse.reshape(packed.shape) == k)[0]
            color = (v >> 16, (v >> 8) & 255, v & 255)
            raise ParseError(
                display, f"the color {color} is not {what}", where=f"pixel x={c}, y={r}",
            )
        lut[k] = table[v]
    return lut[inverse].reshape(packed.shape)


# ---------------------------------------------------------------------------------------------
# Objects from label arrays
# ---------------------------------------------------------------------------------------------


def _regions(ids: np.ndarray) -> list[tuple[int, int, int, np.ndarray]]:
    """(value, left, top, bitmap) of every non-zero value of ``ids``, by ascending value."""
    from scipy import ndimage

    top = int(ids.max()) if ids.size else 0
    if top <= max(4 * ids.size, 1 << 16):  # ids dense enough to index directly
        compact, values = ids.astype(np.intp, copy=False), None
    else:  # sparse, huge ids (e.g. hashes): number them 1..K first
        uniq, inverse = np.unique(ids, return_inverse=True)
        compact = inverse.reshape(ids.shape) + (0 if uniq[0] == 0 else 1)
        values = uniq if uniq[0] == 0 else np.concatenate([[0], uniq])
    out = []
    for k, sl in enumerate(ndimage.find_objects(compact), start=1):
        if sl is not None:
            value = k if values is None else int(values[k])
            out.append((value, sl[1].start, sl[0].start, compact[sl] == k))
    return out


def _components(classes: np.ndarray, connectivity: int) -> list[tuple[int, int, int, np.ndarray]]:
    """(class, left, top, bitmap) of every connected region of one non-zero class value."""
    from scipy import ndimage
    from skimage.measure import label as cc_label

    lab = cc_label(classes, background=0, connectivity=connectivity)
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is not None:
            bitmap = lab[sl] == k
            out.append((int(classes[sl][bitmap][0]), sl[1].start, sl[0].start, bitmap))
    return out


