"""The U-Net: parameter count from the layer formula, shapes, and clear errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from defectlab.dl.archs.base import count_parameters  # noqa: E402
from defectlab.dl.archs.unet import UNet, UNetConfig  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny nets run fastest on one thread, and far faster than on two when other processes
    share the cores (OpenMP threads then wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def expected_parameters(n_classes: int, *, f: int = 16, depth: int = 3, bottleneck: int = 3, cin: int = 1) -> int:
    """Counted layer by layer: 3x3 convs without bias (9·in·out) each followed by a
    BatchNorm (2·out: weight and bias), 2x2 transposed convs with bias (4·in·out + out),
    a 1x1 head with bias (in·n + n)."""

    def conv_bn(i: int, o: int) -> int:
        return 9 * i * o + 2 * o

    total, c = 0, cin
    widths = [f * 2**k for k in range(depth)]
    for w in widths:  # encoder: two conv-BN per level
        total += conv_bn(c, w) + conv_bn(w, w)
        c = w
    bottom = f * 2**depth
    for _ in range(bottleneck):
        total += conv_bn(c, bottom)
        c = bottom
    for w in reversed(widths):  # decoder: up-convolution, then two conv-BN on the concatenation
        total += 4 * c * w + w
        total += conv_bn(2 * w, w) + conv_bn(w, w)
        c = w
    return total + c * n_classes + n_classes


def test_default_net_has_about_0_6_million_parameters():
    net = UNet(UNetConfig(n_classes=2))
    assert count_parameters(net) == expected_parameters(2)
    assert 0.55e6 < count_parameters(net) < 0.7e6
    # by hand for the default: 630,178 (see the module docstring's architecture)
    assert expected_parameters(2) == 630_178


@pytest.mark.parametrize("n,f,depth,dil", [(5, 16, 3, (1, 2, 4)), (3, 32, 3, (1, 2, 4)), (4, 8, 4, (1,)),
                                           (2, 4, 1, (1, 2))])
def test_parameter_count_of_wider_and_deeper_nets(n, f, depth, dil):
    net = UNet(UNetConfig(n_classes=n, base_filters=f, depth=depth, bottleneck_dilations=dil))
    assert count_parameters(net) == expected_parameters(n, f=f, depth=depth, bottleneck=len(dil))


def test_wider_net_is_about_four_times_larger():
    small = count_parameters(UNet(UNetConfig(n_classes=2)))
    wide = count_parameters(UNet(UNetConfig(n_classes=2, base_filters=32)))
    assert 3.9 < wide / small < 4.1


def test_output_shape_and_batchnorm():
    net = UNet(UNetConfig(n_classes=4, base_filters=4, depth=2, bottleneck_dilations=(1,)))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    out = net(torch.rand(3, 1, 40, 56))
    assert out.shape == (3, 4, 40, 56)
    assert net.multiple == 4


def test_input_not_a_multiple_is_a_clear_error():
    net = UNet(UNetConfig(n_classes=2, base_filters=4))
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 1, 60, 64))


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_classes=1), "n_classes >= 2"),
    (dict(n_classes=2, base_filters=0), "base_filters >= 1"),
    (dict(n_classes=2, depth=0), "depth >= 1"),
    (dict(n_classes=2, bottleneck_dilations=()), "bottleneck_dilations"),
    (dict(n_classes=2.5), "n_classes"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig(**kwargs)


def test_config_dict_round_trip():
    cfg = UNetConfig(n_classes=3, base_filters=8, depth=2, bottleneck_dilations=(1, 3))
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown key 'width'"):
        UNetConfig.from_dict({"n_classes": 2, "width": 3})
