"""The engines that run a U-Net's tiles: ONNX Runtime gives PyTorch's probabilities, the
session follows the model's weights, and a missing or misplaced engine is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from defectlab.dl import engine as engine_mod  # noqa: E402
from defectlab.dl.archs import unet  # noqa: E402
from defectlab.dl.engine import model_forward, resolve_engine, softmax_forward  # noqa: E402
from defectlab.dl.model_io import ClassInfo, Model  # noqa: E402
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
    got = softmax_forward(net, torch.device("cpu"), engine="onnxruntime")(x)
    assert got.shape == ref.shape and got.dtype == np.float32
    # measured on the 2-core AMD EPYC (seeds 0-4, 1 and 2 threads): at most 9e-8 from eager PyTorch
    assert np.abs(got - ref).max() < 1e-5
    # the torch engine (channels-last) too
    got_t = softmax_forward(random_net(), torch.device("cpu"), engine="torch")(x)
    assert np.abs(got_t - ref).max() < 1e-5


def make_model(n_classes=3):
    net = random_net(n_classes)
    cfg = unet.model_config(net.config, classes=[ClassInfo(i, f"c{i}") for i in range(1, n_classes)],
                            tile_size=64, overlap=16)
    return Model(net, cfg)


def test_predictions_agree_between_engines():
    image = (np.random.default_rng(2).random((150, 210)) * 255).astype(np.uint8)
    a = make_model().predict(image, engine="onnxruntime", probabilities=True)
    b = make_model().predict(image, engine="torch", probabilities=True)
    assert (a.engine, b.engine) == ("onnxruntime", "torch")
    # measured on the 2-core AMD EPYC (seeds 0-4, 1 and 2 threads): probabilities at most 9e-8 apart, no
    # class flipped; 1e-5 is a hundred times that
    assert np.abs(a.probabilities - b.probabilities).max() < 1e-5
    top2 = np.sort(b.probabilities, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4  # classes can only differ where two are tied (within 2 x 1e-5)
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
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)  # `make test` runs this file with it set too
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_engine("auto", cpu) == "onnxruntime"
    assert resolve_engine("auto", gpu) == "torch"
    with pytest.raises(ValueError, match="expected an engine among auto, torch, onnxruntime, onnxruntime-int8, "
                                         "got 'tensorrt'"):
        resolve_engine("tensorrt", cpu)
    with pytest.raises(ValueError, match="runs on the CPU, but the model is on cuda"):
        resolve_engine("onnxruntime", gpu)
    monkeypatch.setattr(engine_mod, "_onnxruntime_available", lambda: False)
    assert resolve_engine("auto", cpu) == "torch"
    with pytest.raises(ValueError, match=r"pip install 'defectlab\[torch\]'"):
        resolve_engine("onnxruntime", cpu)
    assert make_model().predict(np.zeros((40, 40), np.uint8)).engine == "torch"


def test_the_environment_forces_the_engine_auto_stands_for(monkeypatch):
    """DEFECTLAB_ENGINE: what "auto" means everywhere (a second `make test` pass runs on PyTorch)."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setenv("DEFECTLAB_ENGINE", "torch")
    assert resolve_engine("auto", cpu) == "torch"
    assert resolve_engine("onnxruntime", cpu) == "onnxruntime"  # an engine named in the call stays
    model = make_model()
    image = np.random.default_rng(4).integers(0, 255, (40, 56), dtype=np.uint8)
    assert model.predict(image).engine == "torch"
    monkeypatch.setenv("DEFECTLAB_ENGINE", "onnxruntime")
    assert resolve_engine("auto", cpu) == "onnxruntime" and model.predict(image).engine == "onnxruntime"
    with pytest.raises(ValueError, match="runs on the CPU, but the model is on cuda"):
        resolve_engine("auto", gpu)  # forced where it cannot run: said, not ignored
    monkeypatch.setenv("DEFECTLAB_ENGINE", "tensorrt")
    with pytest.raises(ValueError, match="environment variable DEFECTLAB_ENGINE: expected one of auto, torch, "
                                         "onnxruntime, onnxruntime-int8, got 'tensorrt'"):
        model.predict(image)
    monkeypatch.setenv("DEFECTLAB_ENGINE", "auto")
    monkeypatch.setattr(engine_mod, "_onnxruntime_available", lambda: True)
    assert resolve_engine("auto", cpu) == "onnxruntime"


def test_a_net_onnx_cannot_export_falls_back_to_torch_with_a_warning(monkeypatch):
    def broken(*args):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(engine_mod, "_onnx_bytes", broken)
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    net = random_net()
    with pytest.warns(RuntimeWarning, match="ONNX Runtime could not run this net.*unsupported operator"):
        f = softmax_forward(net, torch.device("cpu"), engine="auto")
    assert f.engine == "torch"
    with pytest.raises(RuntimeError, match="could not run the net with ONNX Runtime: unsupported operator"):
        softmax_forward(net, torch.device("cpu"), engine="onnxruntime")


def test_int8_engine_calibrates_on_the_training_crops_and_agrees_with_float32(tmp_path):
    """A model trained to find discs: its int8 twin, calibrated on the crops the folder keeps,
    gives the float32 classes almost everywhere; without crops it is a clear error."""
    from defectlab.dl.model_io import CALIBRATION_FILE, ModelError, load_model
    from defectlab.dl.train import train_unet
    from defectlab.preparation.synthetic import SYNTHETIC_LABELS, SyntheticConfig, make_synthetic_dataset

    cfg = SyntheticConfig(size_hw=(96, 96), n_cavities=5, n_loops=0, n_precipitates=0, n_lines=0)
    ds = make_synthetic_dataset(tmp_path / "export", n_images=3, config=cfg, seed=2)
    assert [lab.name for lab in ds.labels][:1] == [SYNTHETIC_LABELS[0].name]
    train_unet(ds, tmp_path / "model", epochs=2, min_steps=15, batch_size=2, lr=1e-2, val_split=0, seed=0,
               base_filters=8, depth=2, bottleneck_dilations=(1,), tile_size=64, progress=False, plot=False)
    crops = np.load(tmp_path / "model" / CALIBRATION_FILE)
    assert crops.dtype == np.float16 and crops.shape[1:] == (1, 64, 64) and len(crops) >= 8
    assert 0.0 <= crops.min() and crops.max() <= 1.0  # normalized as the net saw them
    model = load_model(tmp_path / "model", device="cpu")
    image = ds[0].image.path
    fp32 = model.predict(image, engine="onnxruntime", probabilities=True)
    int8 = model.predict(image, engine="onnxruntime-int8", probabilities=True)
    assert int8.engine == "onnxruntime-int8"
    assert (int8.semantic == fp32.semantic).mean() > 0.98
    assert 0 < np.abs(int8.probabilities - fp32.probabilities).max() < 0.25  # quantized: close, not equal
    model.calibration = None
    with pytest.raises(ValueError, match="onnxruntime-int8 engine calibrates on crops of the training images"):
        model.predict(image, engine="onnxruntime-int8")
    np.save(tmp_path / "model" / CALIBRATION_FILE, np.zeros((3, 64), np.float16))
    with pytest.raises(ModelError, match=r"calibration.npy: expected \(N, 1, h, w\) floating-point crops"):
        load_model(tmp_path / "model")


# /proc/cpuinfo excerpts: this project's AVX2 machine, an AVX-512 VNNI server, an AMX one, an ARM board
_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
_VNNI = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n"
_AMX = "processor\t: 0\nflags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n"
_ARM = "processor\t: 0\nFeatures\t: fp asimd aes crc32 atomics asimddp\n"


@pytest.mark.parametrize("cpuinfo, calibrated, expected", [
    (_AVX2, True, "onnxruntime"),  # int8 without VNNI ran 2.4x slower than float32: not chosen
    (_VNNI, True, "onnxruntime-int8"),
    (_AMX, True, "onnxruntime-int8"),
    (_VNNI, False, "onnxruntime"),  # no calibration crops: int8 cannot run
    (_ARM, True, "onnxruntime"),
    ("", True, "onnxruntime"),  # flags unknown: float32
])
def test_auto_picks_int8_only_where_the_cpu_has_8_bit_dot_products(tmp_path, cpuinfo, calibrated, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    flags = engine_mod.cpu_flags(path)
    assert ("avx512_vnni" in flags) == ("avx512_vnni" in cpuinfo)
    assert engine_mod.auto_engine("cpu", exportable=True, onnxruntime=True, calibrated=calibrated,
                                  flags=flags) == expected
    for other in ("cuda", "mps"):
        assert engine_mod.auto_engine(other, exportable=True, onnxruntime=True, calibrated=calibrated,
                                      flags=flags) == "torch"
    assert engine_mod.auto_engine("cpu", exportable=False, onnxruntime=True, calibrated=calibrated,
                                  flags=flags) == "torch"
    assert engine_mod.auto_engine("cpu", exportable=True, onnxruntime=False, calibrated=calibrated,
                                  flags=flags) == "torch"


def test_cpu_flags_of_an_unreadable_file_are_none(tmp_path):
    assert engine_mod.cpu_flags(tmp_path / "missing") == frozenset()


def test_resolve_engine_asks_the_cpu_flags_for_auto(monkeypatch):
    if not engine_mod._onnxruntime_available():
        pytest.fail("onnxruntime and onnx are part of the torch extra the tests run with")
    monkeypatch.delenv(engine_mod.ENGINE_ENV, raising=False)
    cpu = torch.device("cpu")
    monkeypatch.setattr(engine_mod, "cpu_flags", lambda: frozenset({"avx512_vnni"}))
    assert resolve_engine("auto", cpu, calibrated=True) == "onnxruntime-int8"
    assert resolve_engine("auto", cpu, calibrated=False) == "onnxruntime"
    assert resolve_engine("onnxruntime", cpu, calibrated=True) == "onnxruntime"  # a named engine stays
    monkeypatch.setattr(engine_mod, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_engine("auto", cpu, calibrated=True) == "onnxruntime"
