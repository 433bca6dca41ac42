"""The U-Net architecture: a small U-Net for multi-class semantic segmentation of micrographs.

``defectlab train unet``: the net (:class:`UNet`, :class:`UNetConfig`), its options
(:class:`UNetParams`: width, depth, dilations, and the loss) and its registration; training,
validation, tiled prediction and ONNX export are those of every per-pixel classifier
(:class:`~defectlab.dl.archs.base.SemanticArchitecture`).

The default net is the size of the workshop's: 16 base filters, 3 poolings, about 0.63 M
parameters, fast enough to train on a laptop CPU in minutes.

Architecture (``base_filters = f``, ``depth = d``)::

    level k = 0 .. d-1  (encoder)   conv3x3(f·2^k) BN ReLU, conv3x3(f·2^k) BN ReLU, maxpool 2
    bottleneck                      len(bottleneck_dilations) × [conv3x3(f·2^d, dilation) BN ReLU]
    level k = d-1 .. 0  (decoder)   convtranspose2x2 stride 2 (f·2^k), concat skip k,
                                    conv3x3(f·2^k) BN ReLU, conv3x3(f·2^k) BN ReLU
    head                            conv1x1 → n_classes logits (class 0 = background)

The 3×3 convolutions have no bias (the BatchNorm after each adds one). The dilated
bottleneck (dilations 1, 2, 4 by default) widens the receptive field at the coarsest
scale: each output pixel sees ±86 px of input (±54 px without dilation), enough to take in
a whole dislocation loop, at no cost in parameters.

Input height and width must be multiples of ``2 ** depth`` (:attr:`UNet.multiple`); the
tiled predictor (:mod:`defectlab.dl.tiles`) pads images for you.

Examples
--------
>>> import torch
>>> from defectlab.dl.archs.base import count_parameters
>>> net = UNet(UNetConfig(n_classes=3))
>>> count_parameters(net)
630195
>>> net(torch.zeros(1, 1, 64, 64)).shape
torch.Size([1, 3, 64, 64])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from ...options import Options, option
from ..model_io import ClassInfo, ModelConfig
from ..options import integer
from . import register
from .base import ParamError, SemanticArchitecture, SemanticParams

__all__ = ["UNet", "UNetArchitecture", "UNetConfig", "UNetParams", "model_config"]


@dataclass(frozen=True, slots=True)
class UNetConfig:
    """The shape of a :class:`UNet`.

    Parameters
    ----------
    n_classes : int
        Output classes including the background (class 0); >= 2.
    in_channels : int
        Image channels (1 for a grayscale micrograph).
    base_filters : int
        Filters of the first level; each level down doubles them. 16 is the small default,
        32 or 64 give wider nets (about 4× and 16× the parameters).
    depth : int
        Number of 2× poolings (3 by default: the coarsest features are 1/8 of the image).
    bottleneck_dilations : tuple of int
        One 3×3 convolution per entry in the bottleneck, with that dilation.

    Examples
    --------
    >>> UNetConfig(n_classes=2, base_filters=32).base_filters
    32
    """

    n_classes: int
    in_channels: int = 1
    base_filters: int = 16
    depth: int = 3
    bottleneck_dilations: tuple[int, ...] = field(default=(1, 2, 4))

    def __post_init__(self) -> None:
        for name, low in (("n_classes", 2), ("in_channels", 1), ("base_filters", 1), ("depth", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"U-Net config: expected an integer {name} >= {low}, got {v!r}")
        dil = tuple(self.bottleneck_dilations)
        if not dil or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dil):
            raise ValueError(f"U-Net config: expected bottleneck_dilations as positive integers, got {dil!r}")
        object.__setattr__(self, "bottleneck_dilations", dil)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``UNetConfig(**d)`` rebuilds it)."""
        d = asdict(self)
        d["bottleneck_dilations"] = list(self.bottleneck_dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UNetConfig":
        """The inverse of :meth:`to_dict`; ValueError naming an unknown key."""
        known = {"n_classes", "in_channels", "base_filters", "depth", "bottleneck_dilations"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"U-Net config: unknown key {sorted(unknown)[0]!r}; known keys {sorted(known)}")
        d = dict(d)
        if "bottleneck_dilations" in d:
            d["bottleneck_dilations"] = tuple(d["bottleneck_dilations"])
        return cls(**d)


def _conv_bn_relu(cin: int, cout: int, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn_relu(cin, cout), *_conv_bn_relu(cout, cout))


class UNet(nn.Module):
    """U-Net: (B, in_channels, H, W) float32 → (B, n_classes, H, W) logits.

    ``H`` and ``W`` must be multiples of :attr:`multiple` (``2 ** depth``).
    See the module docstring for the layers.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        f, d = config.base_filters, config.depth
        widths = [f * 2**k for k in range(d)]
        self.encoders = nn.ModuleList()
        cin = config.in_channels
        for w in widths:
            self.encoders.append(_double_conv(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        bottom = f * 2**d
        layers: list[nn.Module] = []
        for dil in config.bottleneck_dilations:
            layers += _conv_bn_relu(cin, bottom, dil)
            cin = bottom
        self.bottleneck = nn.Sequential(*layers)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths):
            self.ups.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.decoders.append(_double_conv(2 * w, w))
            cin = w
        self.head = nn.Conv2d(cin, config.n_classes, 1)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (``2 ** depth``)."""
        return 2**self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        if h % m or w % m:
            raise ValueError(
                f"U-Net input must have height and width multiples of {m} (2**depth), got {h}x{w}; "
                "pad the image (the tiled predictor does)"
            )
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def _dilations(value: Any) -> tuple[int, ...]:
    """``"1,2,4"`` or a sequence of positive integers -> a tuple of them."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        out = tuple(integer(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"expected positive integers like 1,2,4, got {value!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"expected positive integers like 1,2,4, got {value!r}")
    return out


@dataclass(frozen=True, slots=True)
class UNetParams(SemanticParams):
    """The U-Net's own training options (with the loss of every per-pixel classifier)."""

    verb: ClassVar[str] = "train unet"

    base_filters: int = option(16, help="Filters of the first level (16: about 0.63 M parameters; 32, 64: wider).",
                               cli="--base-filters", min=1)
    depth: int = option(3, help="Number of 2x poolings (the input is cut in tiles of multiples of 2**depth).", min=1)
    bottleneck_dilations: tuple[int, ...] = option(
        (1, 2, 4), help="One 3x3 convolution per entry in the bottleneck, with that dilation.",
        cli="--dilations", convert=_dilations, show=lambda d: ",".join(map(str, d)), metavar="D,D,...")


@register
class UNetArchitecture(SemanticArchitecture):
    """``unet``: semantic segmentation with a :class:`UNet`."""

    name: ClassVar[str] = "unet"
    title: ClassVar[str] = "U-Net"
    summary: ClassVar[str] = "Semantic segmentation (a class per pixel); instances split from the class mask."
    Params: ClassVar[type[Options]] = UNetParams

    def net_params(self, n_classes: int, params: Options) -> dict[str, Any]:
        p: UNetParams = params  # type: ignore[assignment]
        return UNetConfig(n_classes=n_classes, base_filters=p.base_filters, depth=p.depth,
                          bottleneck_dilations=p.bottleneck_dilations).to_dict()

    def multiple(self, params: Mapping[str, Any]) -> int:
        return 2 ** int(params.get("depth", 3))

    def check_params(self, params: Mapping[str, Any]) -> int:
        try:
            return UNetConfig.from_dict(dict(params)).n_classes
        except (TypeError, ValueError) as err:
            raise ParamError(str(err)) from err

    def build_net(self, config: ModelConfig, *, pretrained: bool = False) -> nn.Module:
        if pretrained:
            raise ValueError("the U-Net has no pretrained weights; it trains from scratch")
        return UNet(UNetConfig.from_dict(config.params))


def model_config(unet: UNetConfig, *, classes: Sequence[ClassInfo], tile_size: int = 256, overlap: int | None = None,
                 training: Mapping[str, Any] | None = None) -> ModelConfig:
    """The config of a U-Net model; ``classes`` are the foreground classes (from index 1).

    ``overlap`` defaults to ``min(64, tile_size // 4)`` rounded down to a multiple of ``2 ** depth``.
    """
    m = 2**unet.depth
    if overlap is None:
        overlap = min(64, tile_size // 4) // m * m
    return UNetArchitecture().model_config(unet.to_dict(), classes=classes, tile_size=tile_size, overlap=overlap,
                                           training=training)
