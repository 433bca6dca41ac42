"""The engines that run a U-Net's tiles: ONNX Runtime gives PyTorch's probabilities, the
session follows the model's weights, and a missing or misplaced engine is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from defectlab.dl import engine as engine_mod  # noqa: E402
from defectlab.dl.engine import model_forward, resolve_engine, unet_forward  # noqa: E402
from defectlab.dl.model_io import ClassInfo, Model, ModelConfig  # noqa: E402
from test_predict import tiny_net  # noqa: E402  (tests/dl is on sys.path, not a package)


def random_net(n_classes=3, depth=2, seed=0):
    """Random weights and BatchNorm statistics, so eval-mode BatchNorm is not the identity."""
    return tiny_net(n_classes, seed=seed, depth=depth)


def reference(net, x):
    """Plain eager PyTorch, default memory layout: the independent computation."""
    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (3, 1, 48, 80), (2, 1, 128, 40)])
def test_onnxruntime_gives_pytorchs_probabilities(shape):
    net = random_net()
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    ref = reference(net, x)
    got = unet_forward(net, torch.device("cpu"), engine="onnxruntime")(x)
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5
    # the torch engine (channels-last) too
    got_t = unet_forward(random_net(), torch.device("cpu"), engine="torch")(x)
    assert np.abs(got_t - ref).max() < 1e-5


def make_model(n_classes=3):
    net = random_net(n_classes)
    cfg = ModelConfig.for_unet(net.config, classes=[ClassInfo(i, f"c{i}") for i in range(1, n_classes)],
                               tile_size=64, overlap=16)
    return Model(net, cfg)


def test_predictions_agree_between_engines():
    image = (np.random.default_rng(2).random((150, 210)) * 255).astype(np.uint8)
    a = make_model().predict(image, engine="onnxruntime", probabilities=True)
    b = make_model().predict(image, engine="torch", probabilities=True)
    assert (a.engine, b.engine) == ("onnxruntime", "torch")
    assert np.abs(a.probabilities - b.probabilities).max() < 1e-5
    top2 = np.sort(b.probabilities, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4  # classes can only differ where two are tied
    assert np.array_equal(a.semantic[clear], b.semantic[clear])


def test_session_is_kept_and_follows_the_weights():
    model = make_model()
    f1, name = model_forward(model, "onnxruntime")
    f2, _ = model_forward(model, "onnxruntime")
    assert name == "onnxruntime" and f1 is f2
    with torch.no_grad():
        model.net.head.bias.add_(torch.tensor([0.0, 3.0, -3.0]))  # in place: the session must notice
    f3, _ = model_forward(model, "onnxruntime")
    assert f3 is not f1
    x = np.random.default_rng(3).random((1, 1, 64, 64), dtype=np.float32)
    assert np.abs(f3(x) - reference(model.net, x)).max() < 1e-5
    model.net.load_state_dict(random_net(seed=5).state_dict())  # new weights copied in
    f4, _ = model_forward(model, "onnxruntime")
    assert np.abs(f4(x) - reference(model.net, x)).max() < 1e-5


def test_engine_choice_and_errors(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_engine("auto", cpu) == "onnxruntime"
    assert resolve_engine("auto", gpu) == "torch"
    with pytest.raises(ValueError, match="expected an engine among auto, torch, onnxruntime, got 'tensorrt'"):
        resolve_engine("tensorrt", cpu)
    with pytest.raises(ValueError, match="runs on the CPU, but the model is on cuda"):
        resolve_engine("onnxruntime", gpu)
    monkeypatch.setattr(engine_mod, "_onnxruntime_available", lambda: False)
    assert resolve_engine("auto", cpu) == "torch"
    with pytest.raises(ValueError, match=r"pip install 'defectlab\[torch\]'"):
        resolve_engine("onnxruntime", cpu)
    assert make_model().predict(np.zeros((40, 40), np.uint8)).engine == "torch"


def test_a_net_onnx_cannot_export_falls_back_to_torch_with_a_warning(monkeypatch):
    def broken(net):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(engine_mod, "_onnx_bytes", broken)
    net = random_net()
    with pytest.warns(RuntimeWarning, match="ONNX Runtime could not run this net.*unsupported operator"):
        f = unet_forward(net, torch.device("cpu"), engine="auto")
    assert f.engine == "torch"
    with pytest.raises(RuntimeError, match="could not run the net with ONNX Runtime: unsupported operator"):
        unet_forward(net, torch.device("cpu"), engine="onnxruntime")
