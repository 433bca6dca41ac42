"""Augmentations for microscopy images that move the labels with the pixels.

Geometric augmentations are one affine map (:mod:`defectlab.preparation.resize`) applied to the
image *and* to the labels: to the shapes exactly (an ellipse stays an ellipse, boxes are
recomputed from what stays visible), or to a label image by the center rule (no
interpolation, no new class values). Flips, 90° turns and integer shifts move whole pixels
and are exact for the image too; other rotations and zooms interpolate the image
(bilinear) and fill what comes from outside it with the image's median. Instances pushed
partly out of the canvas are clipped and flagged as in tiling, and dropped (counted) below
``min_visible``.

Intensity augmentations change the image only. They work in units of the image's own range
(``u = (x - min) / (max - min)``), so the same settings suit 8-bit, 16-bit and float
micrographs, and are applied in a fixed, physical order whatever order they are listed in:
background gradient, contrast, gamma, brightness, blur (the microscope's point spread),
Poisson (shot) noise, Gaussian (read) noise, salt & pepper (hot and dead pixels).

========== ============ ======================================================= ==============
name       default      what                                                    unit
========== ============ ======================================================= ==============
flip       —            horizontal and vertical flips, each with probability ½
rot90      —            a turn by 0, 90, 180 or 270° (non-square images swap W, H)
rotate     -180:180     rotation about the center                               degrees
zoom       0.8:1.25     scaling about the center (log-uniform)                  factor
jitter     -4:4         shift in x and in y (whole pixels, so exact)            px
gradient   0:0.2        linear background ramp in a random direction            range
contrast   0.7:1.3      scaling about the mean                                  factor
gamma      0.7:1.4      ``u ** gamma`` (log-uniform)
brightness -0.1:0.1     offset                                                  range
blur       0:1.5        Gaussian blur                                           px (sigma)
poisson    20:500       shot noise with this many counts at the top of the range counts
noise      0:0.05       Gaussian noise                                          range (sigma)
saltpepper 0:0.01       share of pixels set to the image's min or max
========== ============ ======================================================= ==============

A spec string lists them: ``"flip,rot90,rotate=-30:30,noise=0:0.03@0.5"`` — a range after
``=``, and after ``@`` the probability that the augmentation is applied at all (default 1).
Every draw comes from the generator passed in, in a fixed order, so a seed reproduces it.

Examples
--------
>>> import numpy as np
>>> from defectlab.model import Ellipse, Item
>>> aug = Augment.parse("flip,rot90,noise=0:0.02")
>>> item = Item("t.png", (64, 64), (Ellipse(label="cavity", cx=20, cy=30, rx=5, ry=3),))
>>> out = aug(np.full((64, 64), 100, np.uint8), item, rng=np.random.default_rng(0))
>>> out.image.shape, out.image.dtype, out.item.shapes[0].kind, out.dropped
((64, 64), dtype('uint8'), 'ellipse', {})
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..model import Item, Shape
from ..raster import DEFAULT_LINE_WIDTH
from .resize import affine_shape, is_pixel_exact, translate_shape, warp_image, warp_mask
from .tiling import DEFAULT_MIN_VISIBLE, Window, clip_shapes

__all__ = ["AUGMENTATIONS", "Op", "Augment", "AugmentParams", "Augmented", "apply_intensity"]


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: str  # "geometric" or "intensity"
    lo: float
    hi: float
    log: bool = False
    has_range: bool = True


#: Every augmentation by name, in the order they are applied; see the module docstring.
AUGMENTATIONS: dict[str, _Spec] = {
    "flip": _Spec("geometric", 0, 0, has_range=False),
    "rot90": _Spec("geometric", 0, 0, has_range=False),
    "rotate": _Spec("geometric", -180.0, 180.0),
    "zoom": _Spec("geometric", 0.8, 1.25, log=True),
    "jitter": _Spec("geometric", -4.0, 4.0),
    "gradient": _Spec("intensity", 0.0, 0.2),
    "contrast": _Spec("intensity", 0.7, 1.3),
    "gamma": _Spec("intensity", 0.7, 1.4, log=True),
    "brightness": _Spec("intensity", -0.1, 0.1),
    "blur": _Spec("intensity", 0.0, 1.5),
    "poisson": _Spec("intensity", 20.0, 500.0, log=True),
    "noise": _Spec("intensity", 0.0, 0.05),
    "saltpepper": _Spec("intensity", 0.0, 0.01),
}

_POSITIVE = {"zoom", "gamma", "poisson", "contrast"}
_NON_NEGATIVE = {"gradient", "blur", "noise", "saltpepper"}


@dataclass(frozen=True, slots=True)
class Op:
    """One augmentation: its name, the range its strength is drawn from, and its probability."""

    name: str
    lo: float = 0.0
    hi: float = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.name!r}; known: {', '.join(AUGMENTATIONS)}")
        lo, hi, p = float(self.lo), float(self.hi), float(self.p)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"augmentation {self.name!r}: expected a range lo <= hi, got {self.lo}:{self.hi}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation {self.name!r}: expected a probability in [0, 1], got {self.p}")
        if self.name in _POSITIVE and lo <= 0:
            raise ValueError(f"augmentation {self.name!r}: expected a range above 0, got {lo}:{hi}")
        if self.name in _NON_NEGATIVE and lo < 0:
            raise ValueError(f"augmentation {self.name!r}: expected a range >= 0, got {lo}:{hi}")
        if self.name == "saltpepper" and hi > 1:
            raise ValueError(f"augmentation 'saltpepper': expected a share of pixels <= 1, got {hi}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "p", p)

    def __str__(self) -> str:
        text = self.name
        if AUGMENTATIONS[self.name].has_range:
            text += f"={self.lo:g}:{self.hi:g}"
        return text + (f"@{self.p:g}" if self.p != 1.0 else "")


@dataclass(frozen=True, slots=True)
class AugmentParams:
    """The concrete draw for one sample: the affine map, the output size, intensity steps."""

    matrix: np.ndarray  # (2, 3) source -> output
    out_hw: tuple[int, int]
    intensity: tuple[tuple[str, float], ...]
    gradient_angle: float = 0.0

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.matrix, [[1, 0, 0], [0, 1, 0]]))


@dataclass
class Augmented:
    """The result of :meth:`Augment.__call__`.

    Attributes
    ----------
    image : ndarray
        (H', W'[, C]) in the input dtype (integer images rounded and clipped to the dtype).
    item : Item or None
        The shapes moved exactly, clipped to the canvas (``"clipped": "1"``).
    mask : ndarray or None
        The label image moved by the center rule.
    params : AugmentParams
    dropped : dict
        Label -> instances dropped (pushed out of the canvas, or below ``min_visible``).
    """

    image: np.ndarray
    item: Item | None
    mask: np.ndarray | None
    params: AugmentParams
    dropped: dict = field(default_factory=dict)


def _parse_op(token: str) -> Op:
    text = token.strip()
    p = 1.0
    if "@" in text:
        text, _, p_text = text.partition("@")
        try:
            p = float(p_text)
        except ValueError:
            raise ValueError(f"augmentation {token!r}: expected a probability after '@', got {p_text!r}") from None
    name, eq, rng_text = text.partition("=")
    name = name.strip().lower().replace("-", "").replace("_", "").replace("&", "")
    aliases = {"flips": "flip", "rotation": "rotate", "rot": "rotate", "gauss": "noise", "gaussian": "noise",
               "saltandpepper": "saltpepper", "sp": "saltpepper", "background": "gradient", "shift": "jitter"}
    name = aliases.get(name, name)
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r} in {token!r}; known: {', '.join(AUGMENTATIONS)}")
    spec = AUGMENTATIONS[name]
    lo, hi = spec.lo, spec.hi
    if eq:
        if not spec.has_range:
            raise ValueError(f"augmentation {name!r} takes no range, got {token!r}")
        parts = rng_text.split(":")
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise ValueError(f"augmentation {token!r}: expected a range like {name}=lo:hi") from None
        if len(values) == 1:
            lo, hi = (-abs(values[0]), abs(values[0])) if name in ("rotate", "jitter", "brightness") else (values[0], values[0])
        elif len(values) == 2:
            lo, hi = values
        else:
            raise ValueError(f"augmentation {token!r}: expected a range like {name}=lo:hi")
    return Op(name, lo, hi, p)


@dataclass(frozen=True)
class Augment:
    """A set of augmentations with their ranges; call it to augment one sample.

    Parameters
    ----------
    ops : sequence of Op
        Applied in the fixed order of :data:`AUGMENTATIONS`, whatever the order given.
    min_visible : float
        Share of an instance that must stay in the canvas for it to be kept (as in tiling).
    line_width : float
        Width in px of polyline masks (for clipping).

    Examples
    --------
    >>> aug = Augment.parse("rotate=-30:30@0.5, zoom, noise")
    >>> str(aug)
    'rotate=-30:30@0.5,zoom=0.8:1.25,noise=0:0.05'
    """

    ops: tuple[Op, ...] = ()
    min_visible: float = DEFAULT_MIN_VISIBLE
    line_width: float = DEFAULT_LINE_WIDTH

    def __post_init__(self) -> None:
        order = list(AUGMENTATIONS)
        ops = sorted(self.ops, key=lambda op: order.index(op.name))
        names = [op.name for op in ops]
        dup = [n for n, c in Counter(names).items() if c > 1]
        if dup:
            raise ValueError(f"augmentation {dup[0]!r} is listed twice")
        object.__setattr__(self, "ops", tuple(ops))

    @classmethod
    def parse(cls, spec: str | Sequence[str] | None, **kwargs) -> "Augment":
        """An :class:`Augment` from ``"flip,rot90,noise=0:0.05@0.5"`` or a list of such tokens."""
        if spec is None:
            return cls((), **kwargs)
        tokens = spec.split(",") if isinstance(spec, str) else [t for s in spec for t in str(s).split(",")]
        return cls(tuple(_parse_op(t) for t in tokens if t.strip()), **kwargs)

    def __str__(self) -> str:
        return ",".join(str(op) for op in self.ops)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def to_json(self) -> dict:
        """The ops with their ranges and probabilities, for a manifest."""
        return {"ops": [{"name": op.name, "range": [op.lo, op.hi] if AUGMENTATIONS[op.name].has_range else None,
                         "p": op.p} for op in self.ops],
                "order": "fixed: " + ", ".join(AUGMENTATIONS),
                "min_visible": self.min_visible, "line_width": self.line_width}

    # -- drawing --------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, size_hw: Sequence[int]) -> AugmentParams:
        """Draw one set of parameters for an image of ``size_hw``.

        Every op draws the same numbers from ``rng`` whether or not it ends up applied, so
        the draws of one op do not shift those of the others.
        """
        h, w = (int(v) for v in size_hw)
        flip_h = flip_v = False
        k = 0
        angle, zoom, dx, dy = 0.0, 1.0, 0, 0
        intensity: list[tuple[str, float]] = []
        gradient_angle = 0.0
        for op in self.ops:
            apply = bool(rng.random() < op.p)
            spec = AUGMENTATIONS[op.name]
            if op.name == "flip":
                fh, fv = rng.random(2) < 0.5
                flip_h, flip_v = (bool(fh), bool(fv)) if apply else (False, False)
                continue
            if op.name == "rot90":
                kk = int(rng.integers(0, 4))
                k = kk if apply else 0
                continue
            if op.name == "jitter":
                lo, hi = math.ceil(op.lo), math.floor(op.hi)
                shift = rng.integers(lo, hi + 1, size=2) if hi >= lo else np.zeros(2, np.int64)
                dx, dy = (int(shift[0]), int(shift[1])) if apply else (0, 0)
                continue
            u = float(rng.random())
            value = (math.exp(math.log(op.lo) + u * (math.log(op.hi) - math.log(op.lo))) if spec.log
                     else op.lo + u * (op.hi - op.lo))
            if op.name == "gradient":
                theta = float(rng.uniform(0, 2 * math.pi))
                if apply:
                    gradient_angle = theta
            if not apply:
                continue
            if op.name == "rotate":
                angle = value
            elif op.name == "zoom":
                zoom = value
            else:
                intensity.append((op.name, value))
        out_hw = (w, h) if k % 2 else (h, w)
        # center the output on the input: x' = c_out + shift + R90^k R(angle) Z F (x - c_in)
        a = np.diag([-1.0 if flip_h else 1.0, -1.0 if flip_v else 1.0])
        a = zoom * a if zoom != 1.0 else a
        if angle:
            t = math.radians(angle)
            a = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]) @ a
        a = np.linalg.matrix_power(np.array([[0.0, -1.0], [1.0, 0.0]]), k) @ a
        c_in = np.array([w / 2.0, h / 2.0])
        c_out = np.array([out_hw[1] / 2.0, out_hw[0] / 2.0])
        t_vec = c_out + np.array([dx, dy], dtype=np.float64) - a @ c_in
        matrix = np.hstack([a, t_vec[:, None]])
        return AugmentParams(matrix, out_hw, tuple(intensity), gradient_angle)

    def __call__(
        self,
        image: np.ndarray,
        item: Item | None = None,
        *,
        rng: np.random.Generator,
        mask: np.ndarray | None = None,
        params: AugmentParams | None = None,
    ) -> Augmented:
        """Augment one image with its shapes (``item``) and/or its label image (``mask``).

        Parameters
        ----------
        image : (H, W) or (H, W, C) array
        item : Item, optional
            The image's shapes (``size_hw`` = the image's).
        rng : numpy.random.Generator
            Source of every random draw.
        mask : (H, W) array, optional
            A label image (class indices or instance ids), moved by the center rule.
        params : AugmentParams, optional
            Use these instead of drawing new ones (e.g. to apply one draw to two things).

        Returns
        -------
        Augmented
        """
        img = np.asarray(image)
        if item is not None and img.shape[:2] != item.size_hw:
            raise ValueError(f"{item.name}: image is {img.shape[1]}x{img.shape[0]} (WxH) but the labels are for "
                             f"{item.size_hw[1]}x{item.size_hw[0]}")
        if mask is not None and np.shape(mask)[:2] != img.shape[:2]:
            raise ValueError(f"expected a mask of the image's size {img.shape[:2]}, got {np.shape(mask)}")
        p = params if params is not None else self.sample(rng, img.shape[:2])
        if p.is_identity and p.out_hw == img.shape[:2]:
            out_img = img.copy()
        else:
            fill = float(np.median(img)) if img.size else 0.0
            out_img = warp_image(img, p.matrix, p.out_hw, fill=fill)
        if p.intensity:
            out_img = apply_intensity(out_img, p.intensity, rng, gradient_angle=p.gradient_angle)
        out_img = _to_dtype(out_img, img.dtype)
        out_item, dropped = (None, {}) if item is None else self._move_item(item, p)
        out_mask = None if mask is None else warp_mask(np.asarray(mask), p.matrix, p.out_hw, fill=0)
        return Augmented(out_img, out_item, out_mask, p, dropped)

    def _move_item(self, item: Item, p: AugmentParams) -> tuple[Item, dict]:
        if p.is_identity and p.out_hw == item.size_hw:
            return item, {}
        moved: list[Shape] = [affine_shape(s, p.matrix) for s in item.shapes]
        # put every shape on a canvas that holds it, so that clipping knows each one's full area
        lo = np.array([0.0, 0.0])
        hi = np.array([float(p.out_hw[1]), float(p.out_hw[0])])
        for s in moved:
            if s.kind == "tag":
                continue
            x1, y1, x2, y2 = s.bbox_xyxy()
            pad = self.line_width / 2 + 1 if s.kind == "polyline" else 1
            lo = np.minimum(lo, [x1 - pad, y1 - pad])
            hi = np.maximum(hi, [x2 + pad, y2 + pad])
        ox, oy = int(-math.floor(lo[0])), int(-math.floor(lo[1]))
        canvas = (int(math.ceil(hi[1])) + oy, int(math.ceil(hi[0])) + ox)
        shifted = [s if s.kind == "tag" else translate_shape(s, ox, oy) for s in moved]
        window = Window(ox, oy, p.out_hw[0], p.out_hw[1])
        (res,), notes = clip_shapes(shifted, canvas, [window], min_visible=self.min_visible,
                                    line_width=self.line_width, item_name=item.name)
        n_in = Counter(s.label for s in item.shapes if s.is_area or s.kind == "polyline")
        n_out = Counter(s.label for s in res.shapes if s.is_area or s.kind == "polyline")
        degenerate = Counter(shifted[int(n.where.split()[-1])].label for n in notes if n.where)
        gone = n_in - n_out - degenerate  # pushed out of the canvas, or dropped as too small
        out = Item(item.name, p.out_hw, tuple(res.shapes), image=None, subset=item.subset, id=item.id)
        return out, dict(gone)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if values.dtype == dtype:
        return values
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return values >= 0.5
    return values.astype(dtype)


def apply_intensity(
    image: np.ndarray,
    steps: Sequence[tuple[str, float]],
    rng: np.random.Generator,
    *,
    gradient_angle: float = 0.0,
) -> np.ndarray:
    """Intensity augmentations (image only), in units of the image's range; float64 out.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
    steps : sequence of (name, value)
        E.g. ``[("contrast", 1.2), ("noise", 0.02)]``, applied in the order given.
    rng : numpy.random.Generator
        For the noises.
    gradient_angle : float
        Direction of the background ramp, radians.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.linspace(0, 100, 50).reshape(5, 10)
    >>> out = apply_intensity(img, [("contrast", 2.0)], np.random.default_rng(0))
    >>> round(float(out.mean()), 6) == round(float(img.mean()), 6), round(float(out.std() / img.std()), 6)
    (True, 2.0)
    """
    x = np.asarray(image, dtype=np.float64)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    u = (x - lo) / span
    h, w = u.shape[:2]
    extra = (None,) * (u.ndim - 2)
    for name, v in steps:
        if name == "gradient":
            xs = (np.arange(w) + 0.5 - w / 2) / max(h, w)
            ys = (np.arange(h) + 0.5 - h / 2) / max(h, w)
            ramp = math.cos(gradient_angle) * xs[None, :] + math.sin(gradient_angle) * ys[:, None]
            u = u + v * ramp[(..., *extra)]
        elif name == "contrast":
            m = float(u.mean())
            u = m + v * (u - m)
        elif name == "gamma":
            u = np.clip(u, 0.0, None) ** v
        elif name == "brightness":
            u = u + v
        elif name == "blur":
            if v > 0:
                from scipy import ndimage

                u = ndimage.gaussian_filter(u, sigma=(v, v) + (0,) * (u.ndim - 2), mode="reflect")
        elif name == "poisson":
            u = rng.poisson(np.clip(u, 0.0, None) * v) / v
        elif name == "noise":
            u = u + rng.normal(0.0, v, u.shape) if v > 0 else u
        elif name == "saltpepper":
            hit = rng.random((h, w)) < v
            salt = rng.random((h, w)) < 0.5
            u = u.copy()
            u[hit & salt] = 1.0
            u[hit & ~salt] = 0.0
        else:
            raise ValueError(f"unknown intensity augmentation {name!r}")
    return lo + u * span
