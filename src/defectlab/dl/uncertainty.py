"""Test-time augmentation and how sure a prediction is: per-pixel uncertainty, per-object, per image.

Test-time augmentation (``predict --tta``) runs each tile through the net in its 8 views
(the 4 rotations by 90°, each also mirrored left-right: the dihedral group of the square, the
symmetries a TEM micrograph's labels do not depend on), maps each view's class
probabilities back, and averages them. The per-pixel **uncertainty** is the entropy of that
average (the total predictive uncertainty)::

    u = H(mean_k p_k),     H(p) = -sum_c p_c ln p_c   (nats)

It is 0 only where all 8 views are sure of the same class, and at most ln C (C classes,
background included). It is high both where the net is unsure in every view and where the
views disagree. The disagreement alone — the views' mutual information ``H(mean_k p_k) -
mean_k H(p_k)``, BALD's score — was tried first and measured in
``benchmarks/bench_uncertainty.py``: it told wrong objects from right ones barely better than
chance (AUROC 0.64), where the plain confidence reached 0.98. Written as
``uncertainty/<stem>.tif`` (float32, nats) and a picture (``uncertainty/<stem>.png``).

**Reliability** of an image (:func:`reliability`) is ``1 - mean(u) / ln C`` over the predicted
defects and their boundaries (the predicted foreground grown by :data:`BOUNDARY_PX` px: where
an error changes the counts and sizes), over the whole image when nothing was predicted: 1
means every view was sure of the same class there, 0 that the averaged prediction is uniform.
**Per object** (:func:`object_uncertainty`): the mean of ``u`` over the object's pixels.

Examples
--------
>>> import numpy as np
>>> identity = lambda batch: np.concatenate([1 - batch, batch], axis=1)   # equivariant: p(fg) = the pixel
>>> x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
>>> out = tta_forward(identity)(x)
>>> h = -(identity(x) * np.log(identity(x))).sum(axis=1)               # every view the same: the plain entropy
>>> out.shape, bool(np.allclose(out[:, :2], identity(x), atol=1e-6)), bool(np.allclose(out[:, 2], h, atol=1e-5))
((2, 3, 8, 8), True, True)
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["BOUNDARY_PX", "N_VIEWS", "entropy_forward", "mean_forward", "object_uncertainty", "reliability",
           "tta_forward", "uncertainty_picture", "views"]

#: Views test-time augmentation averages (rotations by 0, 90, 180, 270°, each also mirrored).
N_VIEWS = 8
#: The reliability counts the predicted defects grown by this many px: their boundaries.
BOUNDARY_PX = 2
_EPS = 1e-12


def views(batch: np.ndarray) -> list[tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """The 8 views of a (B, C, h, w) batch, each with the map that takes an output of that
    view back to the batch's orientation.

    Examples
    --------
    >>> x = np.arange(6.0).reshape(1, 1, 2, 3)
    >>> all(np.array_equal(back(v), x) for v, back in views(x))
    True
    """
    out = []
    for k in range(4):
        for flip in (False, True):
            v = np.rot90(batch, k, axes=(2, 3))
            if flip:
                v = v[..., ::-1]

            def back(y: np.ndarray, k: int = k, flip: bool = flip) -> np.ndarray:
                if flip:
                    y = y[..., ::-1]
                return np.rot90(y, -k, axes=(2, 3))

            out.append((np.ascontiguousarray(v), back))
    return out


def tta_forward(forward: Callable[[np.ndarray], np.ndarray], n_classes: int | None = None
                ) -> Callable[[np.ndarray], np.ndarray]:
    """A forward that averages ``forward`` over the 8 views and appends the uncertainty.

    Parameters
    ----------
    forward : callable
        ``(B, 1, h, w) float32 -> (B, C, h, w) float32`` class probabilities; a fully
        convolutional net whose ``h`` and ``w`` may be swapped (a rotated tile).
    n_classes : int, optional
        When ``forward`` returns more than the class probabilities (an ensemble's members'
        own after them, :func:`mean_forward` with ``members=True``): the first ``n_classes``
        channels are the probabilities; the others are averaged over the views alike and
        kept after the uncertainty.

    Returns
    -------
    callable
        ``(B, 1, h, w) -> (B, C + 1, h, w) float32``: the mean probabilities, then their
        entropy (nats), for
        :func:`~defectlab.dl.tiles.predict_semantic` with ``extra=1`` (then the further
        channels, if any).
    """

    def run(batch: np.ndarray) -> np.ndarray:
        return _with_entropy(_mean(back(np.asarray(forward(view), dtype=np.float32)) for view, back in views(batch)),
                             n_classes)

    return run


def mean_forward(forwards: Sequence[Callable[[np.ndarray], np.ndarray]], *, members: bool = False
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """A forward that averages the class probabilities of ``forwards`` (an ensemble's members,
    :mod:`defectlab.dl.ensemble`) on the same batch.

    ``members``: append each forward's own probabilities after the mean, ``(B, C + K·C, h, w)``
    for K forwards — each member's prediction from the same net passes as the mean's
    (:func:`~defectlab.dl.tiles.predict_semantic` with ``groups=K``).

    Examples
    --------
    >>> a = lambda x: np.concatenate([1 - x, x], axis=1)
    >>> b = lambda x: np.concatenate([x, 1 - x], axis=1)
    >>> mean_forward([a, b])(np.zeros((1, 1, 2, 2), np.float32))[0, :, 0, 0].tolist()
    [0.5, 0.5]
    >>> mean_forward([a, b], members=True)(np.zeros((1, 1, 2, 2), np.float32))[0, :, 0, 0].tolist()
    [0.5, 0.5, 1.0, 0.0, 0.0, 1.0]
    """

    def run(batch: np.ndarray) -> np.ndarray:
        outs = [np.asarray(forward(batch), dtype=np.float32) for forward in forwards]
        mean = _mean(outs).astype(np.float32)
        return np.concatenate([mean, *outs], axis=1) if members else mean

    return run


def _mean(outputs: Iterable[np.ndarray]) -> np.ndarray:
    """The float64 mean of several forwards' outputs of one batch."""
    total, n = None, 0
    for out in outputs:
        p = np.asarray(out, dtype=np.float64)
        total, n = (p if total is None else total + p), n + 1
    return total / n


def entropy_forward(forward: Callable[[np.ndarray], np.ndarray], n_classes: int | None = None
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """``forward``'s class probabilities and their entropy (nats) appended: ``(B, C + 1, h, w)``,
    as :func:`tta_forward` gives; for an ensemble's averaged members (:func:`mean_forward`),
    whose entropy is high where they disagree. ``n_classes``: as for :func:`tta_forward`."""
    return lambda batch: _with_entropy(np.asarray(forward(batch), dtype=np.float64), n_classes)


def _with_entropy(out: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """The first ``n_classes`` channels of ``out`` (all by default), their entropy, then the rest."""
    mean, rest = (out, out[:, :0]) if n_classes is None else (out[:, :n_classes], out[:, n_classes:])
    h = -(mean * np.log(np.clip(mean, _EPS, 1.0))).sum(axis=1)
    return np.concatenate([mean, np.maximum(h, 0.0)[:, None], rest], axis=1).astype(np.float32)


def _region(semantic: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    fg = semantic > 0
    if not fg.any():
        return np.ones_like(fg)
    return ndimage.binary_dilation(fg, structure=np.ones((3, 3), bool), iterations=BOUNDARY_PX)


def reliability(semantic: np.ndarray, uncertainty: np.ndarray, n_classes: int) -> float:
    """``1 - mean(uncertainty) / ln(n_classes)`` over the predicted defects grown by
    :data:`BOUNDARY_PX` px (the whole image if none), in [0, 1].

    Parameters
    ----------
    semantic : (H, W) uint8
        The predicted classes, 0 = background.
    uncertainty : (H, W) float32
        Entropy of the views' mean class probabilities, nats.
    n_classes : int
        Classes, background included.

    Examples
    --------
    >>> sem = np.zeros((9, 9), np.uint8); sem[4, 4] = 1
    >>> u = np.zeros((9, 9), np.float32); u[0, 0] = 0.69    # far from the defect: not counted
    >>> reliability(sem, u, 2)
    1.0
    """
    u = uncertainty[_region(semantic)]
    return float(np.clip(1.0 - float(u.mean()) / math.log(max(n_classes, 2)), 0.0, 1.0))


def object_uncertainty(instances: np.ndarray, n: int, uncertainty: np.ndarray) -> np.ndarray:
    """(n,) float32: the mean uncertainty (nats) over each instance ``1..n``'s pixels."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    from scipy import ndimage

    return np.asarray(ndimage.mean(uncertainty, instances, index=np.arange(1, n + 1)), dtype=np.float32)


def uncertainty_picture(image: np.ndarray, uncertainty: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, W, 3) uint8: the uncertainty in the ``magma`` colormap over the gray micrograph.

    The color scale is fixed, 0 to ``ln(n_classes) / 2`` nats (pictures of different images
    compare); the color's opacity grows with the uncertainty, so sure regions show the image.
    """
    from matplotlib import colormaps

    from ..imaging.io import MinMax, to_gray

    gray = MinMax.fit(image)(to_gray(image))[..., None]
    a = np.clip(uncertainty / (0.5 * math.log(max(n_classes, 2))), 0.0, 1.0)
    color = colormaps["magma"](a)[..., :3]
    alpha = (0.25 + 0.65 * a)[..., None]
    return np.rint(255 * ((1 - alpha) * gray + alpha * color)).astype(np.uint8)
