"""What the star-convex model's training job (:mod:`defectlab.dl.archs.stardist`, on the one
training loop :func:`defectlab.dl.train.train`) computes: the loss and the validation.

* **loss** (StarDist's, :func:`star_loss`): binary cross-entropy of the object probability, plus
  ``lambda_dist`` × the mean absolute error of the ray distances weighted by the true
  probability (the centers of objects count most), plus ``lambda_class`` × the
  cross-entropy of the class head.
* **validation** (:func:`validate_stars`): the validation images predicted whole (tiled, as in
  prediction) at the given thresholds (StarDist's defaults 0.5 / 0.4 during training), scored
  by object F1 at IoU 0.5 (:func:`~defectlab.dl.stardist.thresholds.match_stars`) and the
  foreground IoU; the candidates can be kept for the threshold tuning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...raster.nms import DEFAULT_NMS_THRESH
from .data import StarSample
from .net import StarNet, star_forward
from .predict import DEFAULT_PROB_THRESH, assemble, star_candidates
from .thresholds import f1_score, match_stars

__all__ = ["star_loss", "validate_stars"]


def star_loss(out: torch.Tensor, prob: torch.Tensor, dist: torch.Tensor, classes: torch.Tensor, *,
              lambda_dist: float = 0.2, lambda_class: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss (module docstring) of raw net outputs (B, 1 + K + C, h, w) and targets
    ``prob`` (B, h, w), ``dist`` (B, K, h, w), ``classes`` (B, h, w) int64; and its parts."""
    k = dist.shape[1]
    l_prob = F.binary_cross_entropy_with_logits(out[:, 0], prob)
    weight = prob[:, None]
    l_dist = (weight * (out[:, 1:1 + k] - dist).abs()).sum() / (weight.sum() * k + 1e-6)
    l_cls = F.cross_entropy(out[:, 1 + k:], classes)
    total = l_prob + lambda_dist * l_dist + lambda_class * l_cls
    return total, {"prob": float(l_prob.detach()), "dist": float(l_dist.detach()), "class": float(l_cls.detach())}


def validate_stars(net: StarNet, dev: torch.device, val: list[StarSample], classes: dict[int, str],
                   lines: list[int], tile: int, overlap: int, thresholds: tuple[float, float] | None = None,
                   keep_candidates: bool = False) -> tuple[dict[str, Any], list[Any]]:
    """``(scores, candidates)`` of ``net`` on the samples ``val`` (module docstring): ``val_f1``,
    ``val_tp`` / ``val_fp`` / ``val_fn``, ``val_iou`` / ``val_mean_iou`` (foreground), and each
    image's candidates if ``keep_candidates`` (else an empty list)."""
    cfg = net.config
    fwd = star_forward(net, dev)
    tp = fp = fn = 0
    inter = union = 0
    cands = []
    prob_t, nms_t = thresholds or (DEFAULT_PROB_THRESH, DEFAULT_NMS_THRESH)
    for s in val:
        cand = star_candidates(fwd, s.image, n_rays=cfg.n_rays, n_classes=cfg.n_classes, grid=cfg.grid,
                               multiple=cfg.multiple, tile=tile, overlap=overlap)
        pred = assemble(cand, classes, line_classes=lines, prob_thresh=prob_t, nms_thresh=nms_t)
        m = match_stars(pred.points_xy, pred.distances, s.crops, s.prob.shape)
        tp, fp, fn = tp + m["tp"], fp + m["fp"], fn + m["fn"]
        fg = pred.instances > 0
        truth = s.classes > 0
        inter += int(np.count_nonzero(fg & truth))
        union += int(np.count_nonzero(fg | truth))
        if keep_candidates:
            cands.append(cand)
    iou = inter / union if union else 1.0
    return {"val_f1": f1_score(tp, fp, fn), "val_tp": tp, "val_fp": fp, "val_fn": fn,
            "val_iou": {"objects": iou}, "val_mean_iou": iou}, cands
