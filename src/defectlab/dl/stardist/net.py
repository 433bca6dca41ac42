"""The star-convex instance net: a U-Net backbone with three heads, at 1/``grid`` resolution.

Layers (``f = base_filters``, ``g = grid``)::

    stem        conv3x3(f) BN ReLU at full resolution, then max-pool g (none for g = 1)
    backbone    defectlab's U-Net (:class:`~defectlab.dl.unet.UNet`) on the f-channel stem
                features, its 1x1 head giving ``head_filters`` features, then ReLU
    heads       1x1 convolutions: object probability (1, a logit), ray distances (K, px),
                classes (C logits, class 0 = background)

Output cell ``(i, j)`` stands for image pixel ``(g i, g j)`` (StarDist's grid convention):
its probability that the pixel is inside an object, near its center, and the distances from
the pixel's center to that object's boundary along the K rays of
:func:`defectlab.raster.stars.ray_angles`. The class head is a semantic head: every class,
dislocation lines included (which are not star-convex and so have no probability or
distance targets: prediction turns their class mask into instances).

``grid=2`` (the default) runs the backbone on a quarter of the pixels: about 4x faster than
the full-resolution U-Net, and NMS sees a quarter of the candidates; the distances keep
full-resolution px, so the polygons stay sub-pixel.

Examples
--------
>>> import torch
>>> net = StarNet(StarNetConfig(n_rays=16, n_classes=3, base_filters=4, depth=2, head_filters=8))
>>> net(torch.zeros(1, 1, 32, 48)).shape   # 1 + 16 + 3 channels at half resolution
torch.Size([1, 20, 16, 24])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from ..unet import UNet, UNetConfig

__all__ = ["StarNetConfig", "StarNet", "GRIDS", "star_forward"]

#: Output subsampling factors the net supports.
GRIDS = (1, 2, 4)


@dataclass(frozen=True, slots=True)
class StarNetConfig:
    """The shape of a :class:`StarNet`.

    Parameters
    ----------
    n_rays : int
        ``K`` ray distances per pixel; a multiple of 4 (so that 90° rotations and flips of
        training crops permute the rays exactly). 32 by default.
    n_classes : int
        Class-head outputs including the background (>= 2).
    grid : int
        Output subsampling: 1, 2 or 4.
    in_channels, base_filters, depth, bottleneck_dilations
        As :class:`~defectlab.dl.unet.UNetConfig` (the backbone runs at 1/grid resolution).
    head_filters : int
        Features between the backbone and the heads.
    """

    n_rays: int = 32
    n_classes: int = 2
    grid: int = 2
    in_channels: int = 1
    base_filters: int = 16
    depth: int = 3
    bottleneck_dilations: tuple[int, ...] = field(default=(1, 2, 4))
    head_filters: int = 64

    def __post_init__(self) -> None:
        for name, low in (("n_rays", 4), ("n_classes", 2), ("in_channels", 1), ("base_filters", 1),
                          ("depth", 1), ("head_filters", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"star net config: expected an integer {name} >= {low}, got {v!r}")
        if self.n_rays % 4:
            raise ValueError(f"star net config: expected n_rays a multiple of 4, got {self.n_rays}")
        if self.grid not in GRIDS:
            raise ValueError(f"star net config: expected grid in {GRIDS}, got {self.grid!r}")
        object.__setattr__(self, "bottleneck_dilations", tuple(self.bottleneck_dilations))
        self.backbone()  # validates the dilations

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (``grid * 2 ** depth``)."""
        return self.grid * 2**self.depth

    @property
    def n_outputs(self) -> int:
        return 1 + self.n_rays + self.n_classes

    def backbone(self) -> UNetConfig:
        return UNetConfig(n_classes=max(2, self.head_filters), in_channels=self.base_filters,
                          base_filters=self.base_filters, depth=self.depth,
                          bottleneck_dilations=self.bottleneck_dilations)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bottleneck_dilations"] = list(self.bottleneck_dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StarNetConfig":
        """The inverse of :meth:`to_dict`; ValueError naming an unknown key."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"star net config: unknown key {sorted(unknown)[0]!r}; known keys {sorted(known)}")
        return cls(**d)


class StarNet(nn.Module):
    """(B, in_channels, H, W) float32 → (B, 1 + K + C, H / grid, W / grid) raw outputs:
    probability logit, ray distances (px), class logits. ``H`` and ``W`` must be multiples
    of :attr:`multiple`."""

    def __init__(self, config: StarNetConfig) -> None:
        super().__init__()
        self.config = config
        f = config.base_filters
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, f, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(f), nn.ReLU(inplace=True)]
        if config.grid > 1:
            layers.append(nn.MaxPool2d(config.grid))
        self.stem = nn.Sequential(*layers)
        self.backbone = UNet(config.backbone())
        self.features = nn.ReLU(inplace=True)
        self.heads = nn.Conv2d(config.backbone().n_classes, config.n_outputs, 1)

    @property
    def multiple(self) -> int:
        return self.config.multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        if h % m or w % m:
            raise ValueError(f"star net input must have height and width multiples of {m} (grid * 2**depth), "
                             f"got {h}x{w}; pad the image (the tiled predictor does)")
        return self.heads(self.features(self.backbone(self.stem(x))))

    def init_distances(self, mean_distance: float) -> None:
        """Start the distance head at ``mean_distance`` px (the training targets' mean): the
        net then learns shapes, not first the scale."""
        k = self.config.n_rays
        with torch.no_grad():
            self.heads.bias[1:1 + k].fill_(float(mean_distance))


def star_forward(net: StarNet, device: torch.device, *, channels_last: bool = True):
    """``(B, 1, h, w) float32 -> (B, 1 + K + C, h/g, w/g) float32`` with the probability through a
    sigmoid, distances clipped at 0 and the classes through a softmax (numpy in, numpy out)."""
    net.eval()
    channels_last = channels_last and device.type == "cpu"
    if channels_last:
        net.to(memory_format=torch.channels_last)
    k = net.config.n_rays

    def forward(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = net(x).float()
            out = torch.cat([torch.sigmoid(out[:, :1]), out[:, 1:1 + k].clamp_min(0),
                             torch.softmax(out[:, 1 + k:], dim=1)], dim=1)
        return out.cpu().numpy()

    return forward
