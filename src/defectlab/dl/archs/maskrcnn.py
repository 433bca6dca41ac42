"""The Mask R-CNN architecture: torchvision's Mask R-CNN for instances (``defectlab train maskrcnn``).

* **net**: ``torchvision`` Mask R-CNN with a ResNet-50-FPN (``backbone="resnet50"``: the
  layout of ``maskrcnn_resnet50_fpn``, state dicts interchangeable) or a lighter
  ResNet-18-FPN backbone; no resizing (tiles of the training tile size), small anchors
  (:func:`default_params`). Offline by default: ``pretrained=False`` trains **from scratch**
  (and says so); ``pretrained=True`` starts from torchvision's COCO (ResNet-50) or ImageNet
  (ResNet-18) weights, downloaded once — for users who are online.
* **data**: :class:`~defectlab.dl.MaskRCNNDataset` samples (a ``write_maskrcnn`` folder, or
  a Dataset rasterized per image), cropped at random to the tile size and flipped.
* **step**: the sum of torchvision's losses; AdamW (weight decay 1e-4).
* **validation**: each validation image predicted as :meth:`MaskRCNNArchitecture.predict`
  does; class IoU of the masks and object F1 (a prediction matches a true object at mask
  IoU >= 0.5). The best epoch is the one with the highest mean IoU + F1.
* **prediction**: images cut into tiles of the training tile size (never resized: a tile is
  exactly what the net saw in training), and each detection is kept by the one tile whose
  central region holds its box center, so objects on tile borders are found once.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from ...errors import DatasetError, FormatError
from ...model import Dataset
from ...options import Options, flag, option
from ...raster import DEFAULT_LINE_WIDTH
from ..data import Source, TrainingData, class_info, classes_from_json, sha256
from ..metrics import iou_counts, object_f1
from ..model_io import ClassInfo, ModelConfig
from ..options import PredictOptions
from ..predict import Prediction
from ..tiles import TilePlan, TileSource, mirror_index, tile_plan
from . import register
from .base import Architecture, Job, ParamError, Setup

if TYPE_CHECKING:  # pragma: no cover
    from ..model_io import Model

__all__ = ["BACKBONES", "MaskRCNNArchitecture", "MaskRCNNParams", "default_params", "model_config"]

#: The backbones of :func:`default_params`.
BACKBONES = ("resnet50", "resnet18")


@dataclass(frozen=True, slots=True)
class MaskRCNNParams(Options):
    """Mask R-CNN's own training options."""

    verb: ClassVar[str] = "train maskrcnn"

    backbone: str = option("resnet50", help="resnet50, or the lighter resnet18 (both with an FPN).", choices=BACKBONES)
    pretrained: bool = flag(help="Start from torchvision's weights (downloaded once; needs internet). Default: from "
                                 "scratch.", cli="--pretrained")


def default_params(n_classes: int, *, backbone: str = "resnet50", tile_size: int = 512,
                   pretrained: bool = False) -> dict[str, Any]:
    """Mask R-CNN settings for micrographs: no resizing (tiles of ``tile_size``), small anchors.

    ``n_classes`` includes the background. Pretrained models keep ImageNet's mean/std and
    torchvision's frozen BatchNorm; models from scratch normalize around gray 0.5 and train
    their BatchNorm.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"expected backbone {' or '.join(BACKBONES)}, got {backbone!r}")
    return {
        "backbone": backbone,
        "num_classes": int(n_classes),
        "min_size": int(tile_size),
        "max_size": int(tile_size),
        "anchor_sizes": [8, 16, 32, 64, 128],
        "image_mean": [0.485, 0.456, 0.406] if pretrained else [0.5, 0.5, 0.5],
        "image_std": [0.229, 0.224, 0.225] if pretrained else [0.25, 0.25, 0.25],
        "frozen_batchnorm": bool(pretrained),
        "detections_per_tile": 300,
        # proposals scale with the tile's area (torchvision's defaults are for 800-1333 px photos)
        "rpn_post_nms_top_n_train": int(min(2000, max(200, tile_size * tile_size // 128))),
        "rpn_post_nms_top_n_test": int(min(1000, max(100, tile_size * tile_size // 256))),
        "pretrained": bool(pretrained),
    }


def model_config(params: Mapping[str, Any], *, classes: Sequence[ClassInfo], tile_size: int = 512, overlap: int = 64,
                 training: Mapping[str, Any] | None = None) -> ModelConfig:
    """The config of a Mask R-CNN model (``params``: :func:`default_params`); ``classes`` are
    the foreground classes (from index 1)."""
    return MaskRCNNArchitecture().model_config(params, classes=classes, tile_size=tile_size, overlap=overlap,
                                               training=training)


def _build(p: Mapping[str, Any], *, pretrained: bool) -> nn.Module:
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.misc import FrozenBatchNorm2d

    n = int(p["num_classes"])
    anchors = AnchorGenerator(sizes=tuple((int(s),) for s in p["anchor_sizes"]),
                              aspect_ratios=((0.5, 1.0, 2.0),) * len(p["anchor_sizes"]))
    kwargs = dict(min_size=p["min_size"], max_size=p["max_size"], image_mean=p["image_mean"],
                  image_std=p["image_std"], rpn_anchor_generator=anchors,
                  box_detections_per_img=int(p.get("detections_per_tile", 300)),
                  rpn_post_nms_top_n_train=int(p.get("rpn_post_nms_top_n_train", 2000)),
                  rpn_post_nms_top_n_test=int(p.get("rpn_post_nms_top_n_test", 1000)),
                  rpn_pre_nms_top_n_train=int(p.get("rpn_post_nms_top_n_train", 2000)),
                  rpn_pre_nms_top_n_test=int(p.get("rpn_post_nms_top_n_test", 1000)))
    norm = FrozenBatchNorm2d if p.get("frozen_batchnorm") else nn.BatchNorm2d
    backbone_weights = None
    if pretrained and p["backbone"] == "resnet18":
        from torchvision.models import ResNet18_Weights

        backbone_weights = ResNet18_Weights.DEFAULT
    backbone = resnet_fpn_backbone(backbone_name=p["backbone"], weights=backbone_weights, norm_layer=norm,
                                   trainable_layers=3 if pretrained else 5)
    if pretrained and p["backbone"] == "resnet50":
        from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
        from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

        net = MaskRCNN(backbone, num_classes=91, **kwargs)
        state = MaskRCNN_ResNet50_FPN_Weights.DEFAULT.get_state_dict(progress=True, check_hash=True)
        net.load_state_dict(state)
        net.roi_heads.box_predictor = FastRCNNPredictor(net.roi_heads.box_predictor.cls_score.in_features, n)
        net.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, n)
        return net
    return MaskRCNN(backbone, num_classes=n, **kwargs)


# ---------------------------------------------------------------------------------------------
# Prediction: tiles without resizing, each detection kept once


def predict_instances(model: Model, image: np.ndarray, *, overlap: int, score_threshold: float,
                      mask_threshold: float, progress: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(semantic, instances, instance_classes, scores)`` of a Mask R-CNN model on an image of any size."""
    norm = TileSource(np.asarray(image), model.config.normalizer(np.asarray(image)))
    h, w = norm.image.shape[:2]
    t = int(model.config.tile_size)
    multiple = 32 if t % 32 == 0 else 1
    py = tile_plan(h, t, overlap, multiple, full_tiles=True)
    px = tile_plan(w, t, overlap, multiple, full_tiles=True)
    net = model.net.eval()
    heads = net.roi_heads
    saved = heads.score_thresh
    heads.score_thresh = max(saved, score_threshold)  # the mask head runs only on the boxes kept
    try:
        found = _tiles(net, model.device, norm, py, px, mask_threshold, progress)
    finally:
        heads.score_thresh = saved
    instances = np.zeros((h, w), dtype=np.int32)
    found.sort(key=lambda f: f[0])  # painted by score: the surest on top
    for i, (_, _, x, y, crop) in enumerate(found, start=1):
        region = instances[y:y + crop.shape[0], x:x + crop.shape[1]]
        region[crop] = i
    present = np.unique(instances)
    present = present[present > 0]
    relabel = np.zeros(len(found) + 1, dtype=np.int32)
    relabel[present] = np.arange(1, len(present) + 1)
    instances = relabel[instances]
    classes = np.array([found[i - 1][1] for i in present], dtype=np.uint8)
    scores = np.array([found[i - 1][0] for i in present], dtype=np.float32)
    lut = np.zeros(len(present) + 1, dtype=np.uint8)
    lut[1:] = classes
    return lut[instances], instances, classes, scores


def _tiles(net: nn.Module, device: torch.device, norm: TileSource, py: TilePlan, px: TilePlan,
           mask_threshold: float, progress: bool) -> list[tuple[float, int, int, int, np.ndarray]]:
    """Detections ``(score, class, x0, y0, bitmap)``, each from the one tile whose central
    region holds its box center (adjacent central regions tile the image exactly)."""
    h, w = norm.image.shape[:2]
    found: list[tuple[float, int, int, int, np.ndarray]] = []
    tiles = [(k, j) for k in range(py.n) for j in range(px.n)]
    it: Iterable[tuple[int, int]] = tiles
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(tiles, desc="tiles", unit="tile", leave=False)

    def core(p: TilePlan, i: int) -> tuple[float, float]:
        o = i * p.stride
        lo = -math.inf if i == 0 else o + (p.tile - p.stride) / 2
        hi = math.inf if i == p.n - 1 else o + (p.tile + p.stride) / 2
        return lo, hi

    for k, j in it:
        y0, x0 = k * py.stride, j * px.stride
        rows = mirror_index(np.arange(y0, y0 + py.tile), h)
        cols = mirror_index(np.arange(x0, x0 + px.tile), w)
        gray = torch.from_numpy(norm.tile(rows, cols))
        with torch.inference_mode():
            out = net([gray[None].repeat(3, 1, 1).to(device)])[0]
        (ylo, yhi), (xlo, xhi) = core(py, k), core(px, j)
        boxes = out["boxes"].cpu().numpy()
        scores = out["scores"].cpu().numpy()
        labels = out["labels"].cpu().numpy()
        if not len(boxes):
            continue
        masks = out["masks"][:, 0].cpu().numpy()
        for b in range(len(boxes)):
            cx, cy = x0 + (boxes[b, 0] + boxes[b, 2]) / 2, y0 + (boxes[b, 1] + boxes[b, 3]) / 2
            if not (ylo <= cy < yhi and xlo <= cx < xhi):
                continue
            m = masks[b] > mask_threshold
            m[max(0, h - y0):, :] = False  # the mirrored part beyond the image
            m[:, max(0, w - x0):] = False
            rr, cc = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            if rr.size == 0:
                continue
            crop = m[rr[0]:rr[-1] + 1, cc[0]:cc[-1] + 1]
            found.append((float(scores[b]), int(labels[b]), x0 + int(cc[0]), y0 + int(rr[0]), crop))
    return found


# ---------------------------------------------------------------------------------------------
# Training


class _RandomCrop:
    """Crop an (image, target) sample to ``size`` px, flip at random; boxes recomputed from masks."""

    def __init__(self, size: int, augment: bool) -> None:
        self.size, self.augment = size, augment

    def __call__(self, image: Any, target: dict[str, Any], rng: np.random.Generator
                 ) -> tuple[torch.Tensor, dict[str, Any]]:
        image = torch.as_tensor(image).as_subclass(torch.Tensor)
        masks = torch.as_tensor(target["masks"]).as_subclass(torch.Tensor)
        h, w = image.shape[-2:]
        s = self.size
        r0 = int(rng.integers(0, h - s + 1)) if h > s else 0
        c0 = int(rng.integers(0, w - s + 1)) if w > s else 0
        image, masks = image[:, r0:r0 + s, c0:c0 + s], masks[:, r0:r0 + s, c0:c0 + s]
        if self.augment:
            if rng.random() < 0.5:
                image, masks = image.flip(-1), masks.flip(-1)
            if rng.random() < 0.5:
                image, masks = image.flip(-2), masks.flip(-2)
        keep = masks.flatten(1).bool().any(1) if len(masks) else torch.zeros(0, dtype=torch.bool)
        masks = masks[keep]
        labels = torch.as_tensor(target["labels"]).as_subclass(torch.Tensor)[keep]
        boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
        for i, mk in enumerate(masks):
            rows = torch.nonzero(mk.any(1)).flatten()
            cols = torch.nonzero(mk.any(0)).flatten()
            boxes[i] = torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)
        out = {"boxes": boxes, "labels": labels, "masks": masks.contiguous(),
               "image_id": target["image_id"], "area": masks.flatten(1).sum(1).float() if len(masks)
               else torch.zeros(0), "iscrowd": torch.zeros(len(masks), dtype=torch.int64)}
        return image.contiguous(), out


def _truth(target: dict[str, Any], size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(semantic uint8, instances int32) painted from a Mask R-CNN target."""
    sem = np.zeros(size_hw, dtype=np.uint8)
    inst = np.zeros(size_hw, dtype=np.int32)
    masks = np.asarray(target["masks"]).astype(bool)
    labels = np.asarray(target["labels"])
    for i, (mk, lab) in enumerate(zip(masks, labels), start=1):
        sem[mk] = lab
        inst[mk] = i
    return sem, inst


class _MaskRCNNJob(Job):
    def __init__(self, arch: MaskRCNNArchitecture, setup: Setup) -> None:
        options, params = setup.options, setup.params
        backbone, pretrained = params.backbone, params.pretrained  # type: ignore[attr-defined]
        smallest = min(min(s) for s in setup.train_sizes_hw + setup.val_sizes_hw)
        tile = min(int(options.tile_size), smallest // 32 * 32)
        if tile < 32:
            raise DatasetError(f"Mask R-CNN needs images of at least 32x32 px; the smallest is {smallest} px")
        overlap = 64 if options.overlap is None else int(options.overlap)
        net_params = default_params(len(setup.classes) + 1, backbone=backbone, tile_size=tile, pretrained=pretrained)
        self.config = arch.model_config(net_params, classes=setup.classes, tile_size=tile,
                                        overlap=min(overlap, tile // 2 // 32 * 32))
        if pretrained:
            try:
                net = arch.build_net(self.config, pretrained=True)
            except Exception as err:  # download errors come in many types
                raise FormatError(
                    f"could not get torchvision's pretrained {backbone} weights ({type(err).__name__}: {err}); they "
                    "are downloaded once and need internet — train without --pretrained to start from scratch"
                ) from err
            setup.notes.append(f"started from torchvision's pretrained weights "
                               f"({'COCO' if backbone == 'resnet50' else 'ImageNet'})")
        else:
            net = arch.build_net(self.config)
            setup.notes.append(f"trained from scratch (no pretrained weights: offline default); {backbone}-FPN "
                               "learns slower this way — use pretrained=True (--pretrained) when online")
            warnings.warn("Mask R-CNN: training from scratch (pretrained=False); pass pretrained=True when online "
                          "for faster, better training", UserWarning, stacklevel=4)
        self.net = net.to(setup.device)
        self.device = setup.device
        self.title = f"Mask R-CNN ({backbone})"
        self.backbone, self.pretrained = backbone, pretrained
        self.train_s, self.val_s = setup.train, setup.val
        self.val_sizes = setup.val_sizes_hw
        self.crop = _RandomCrop(tile, options.augment)
        self.sample_pixels = tile * tile
        self.n_classes = len(setup.classes) + 1

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW([p for p in self.net.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
        picks = rng.choice(len(self.train_s), size=batch_size, replace=True)
        batch = [self.crop(*self.train_s[int(p)], rng) for p in picks]
        imgs = [b[0].to(self.device) for b in batch]
        tgts = [{k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in b[1].items()} for b in batch]
        return imgs, tgts

    def loss(self, batch: tuple[list[torch.Tensor], list[dict[str, Any]]]) -> torch.Tensor:
        return sum(self.net(*batch).values())

    def validate(self, model: Model) -> dict[str, Any]:
        inter = np.zeros(self.n_classes)
        union = np.zeros(self.n_classes)
        f1s = []
        for i in range(len(self.val_s)):
            image, target = self.val_s[i]
            gray = image[0].numpy()  # normalized already: its own min and max are 0 and 1
            sem, inst, _, _ = predict_instances(model, gray, overlap=self.config.overlap, score_threshold=0.5,
                                                mask_threshold=0.5)
            tsem, tinst = _truth(target, gray.shape)
            i_, u_ = iou_counts(sem, tsem, self.n_classes)
            inter += i_
            union += u_
            f1s.append(object_f1(inst, tinst)["f1"])
        classes = self.config.classes[1:]
        ious = {c.name: float(inter[c.index] / union[c.index]) for c in classes if union[c.index] > 0}
        return {"val_loss": None, "val_iou": ious, "val_mean_iou": float(np.mean(list(ious.values()))) if ious else 0.0,
                "val_f1": float(np.mean(f1s))}

    def score(self, entry: dict[str, Any]) -> float:
        return float(entry["val_mean_iou"] + entry["val_f1"])

    def info(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "pretrained": self.pretrained}


@register
class MaskRCNNArchitecture(Architecture):
    """``maskrcnn``: torchvision's Mask R-CNN, trained from scratch offline (see the module docstring)."""

    name: ClassVar[str] = "maskrcnn"
    title: ClassVar[str] = "Mask R-CNN"
    summary: ClassVar[str] = "torchvision's Mask R-CNN: instances (a box, a class and a mask per defect)."
    Params: ClassVar[type[Options]] = MaskRCNNParams
    defaults: ClassVar[Mapping[str, Any]] = {"epochs": 20, "batch_size": 2, "lr": 1e-4, "schedule": "constant",
                                             "tile_size": 512, "patience": 5}
    channels: ClassVar[int] = 3
    class_weights: ClassVar[str | None] = "roi_heads.box_predictor.cls_score.weight"
    reads: ClassVar[str] = "maskrcnn"

    def check_params(self, params: Mapping[str, Any]) -> int:
        backbone = params.get("backbone")
        if backbone not in BACKBONES:
            raise ParamError(f"expected backbone {' or '.join(BACKBONES)}, got {backbone!r}", key="backbone")
        return params.get("num_classes")  # type: ignore[return-value]

    def build_net(self, config: ModelConfig, *, pretrained: bool = False) -> nn.Module:
        return _build(config.params, pretrained=pretrained)

    def load_data(self, source: Source, *, line_width: float = DEFAULT_LINE_WIDTH) -> TrainingData:
        from ..maskrcnn_dataset import MaskRCNNDataset

        notes = []
        if source.folder is not None:
            if source.kind != self.reads:
                raise source.refuse(self.title, self.reads)
            root = source.folder
            base = MaskRCNNDataset(root)
            classes = classes_from_json(root / "classes.json")
            entries = [(p.relative_to(root).as_posix(), sha256(p.read_bytes()), "")
                       for p in sorted(root.rglob("*")) if p.is_file()]
        else:
            ds: Dataset = source.dataset  # type: ignore[assignment]
            if not ds.items:
                raise DatasetError(f"{source.description}: no images to train on")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # degenerate shapes are reported in notes below
                base = MaskRCNNDataset(ds, line_width=line_width)
                skipped = base.collect_notes()
            if skipped:
                notes.append(f"{len(skipped)} shape(s) cover no pixel center and are not instances")
            classes = [class_info(i, lab) for i, lab in enumerate(ds.labels, start=1)]
            entries = [(it.key, sha256(it.image.read_bytes()), "") for it in ds.items if it.image]
        n = len(base)
        return TrainingData(base, [base.name(i) for i in range(n)], [base.get_height_and_width(i) for i in range(n)],
                            classes, entries, source.description, notes)

    def start(self, setup: Setup) -> Job:
        return _MaskRCNNJob(self, setup)

    def predict(self, model: Model, image: np.ndarray, options: PredictOptions, *,
                probabilities_dtype: Any = np.float32, progress: bool = False) -> Prediction:
        if options.probabilities:
            raise ValueError("Mask R-CNN gives instances with scores, not per-pixel class probabilities; "
                             "use a U-Net model for probabilities")
        if options.engine.startswith("onnxruntime"):
            raise ValueError(f"the {options.engine} engine runs nets exported to ONNX; a Mask R-CNN runs on "
                             "PyTorch (engine 'torch' or 'auto')")
        overlap = model.config.overlap if options.overlap is None else options.overlap
        sem, inst, cls, scores = predict_instances(model, image, overlap=overlap,
                                                   score_threshold=options.score_threshold,
                                                   mask_threshold=options.mask_threshold, progress=progress)
        return Prediction(sem, inst, cls, scores, model.config.class_names)
