"""The architecture registry (#15.2).

A toy architecture declared in this file alone — a registered one-layer net — trains, saves,
loads and predicts through the public API and the command line, on both engines; model
folders written before the registry existed still load and predict what they predicted; the
registry's names, the options and the CLI cost no torch; each architecture's options and
defaults are its own; the one normalizer is what training and prediction apply.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from defectlab import api  # noqa: E402
from defectlab.cli import app  # noqa: E402
from defectlab.dl import archs  # noqa: E402
from defectlab.dl.archs.base import ParamError, SemanticArchitecture  # noqa: E402
from defectlab.dl.model_io import ModelError, build_net, load_model, read_config  # noqa: E402
from defectlab.errors import ParseError  # noqa: E402
from defectlab.imaging.io import write_image  # noqa: E402
from defectlab.model import Dataset, Ellipse, ImageSource, Item, Label  # noqa: E402
from defectlab.raster import semantic_mask  # noqa: E402

MAIN_MODELS = Path(__file__).parent / "data" / "main_models"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny nets run fastest on one thread (and far faster than on two when others share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the toy architecture: everything it needs is here -------------------------------------------


@archs.register
class OneLayer(SemanticArchitecture):
    """One 3x3 convolution from the gray image to class logits."""

    name: ClassVar[str] = "toy-conv"
    title: ClassVar[str] = "one-layer net"
    summary: ClassVar[str] = "One 3x3 convolution (the registry's acceptance test)."

    def net_params(self, n_classes: int, params: Any) -> dict[str, Any]:
        return {"n_classes": n_classes}

    def check_params(self, params: Any) -> int:
        n = params.get("n_classes")
        if set(params) != {"n_classes"} or isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ParamError(f"expected {{'n_classes': N >= 2}}, got {dict(params)!r}")
        return n

    def build_net(self, config: Any, *, pretrained: bool = False) -> torch.nn.Module:
        return torch.nn.Conv2d(1, config.params["n_classes"], 3, padding=1)


def bright_discs(folder: Path, n: int, seed: int = 0, size: int = 48) -> Dataset:
    """Bright discs (200) on a dark background (50) with noise: what one 3x3 convolution can learn.
    The truth is the discs' exact masks (defectlab's rasterizer), not anything the net made."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    yy, xx = np.mgrid[:size, :size] + 0.5
    for k in range(n):
        discs = [Ellipse(label="cavity", cx=float(rng.uniform(8, size - 8)), cy=float(rng.uniform(8, size - 8)),
                         rx=r, ry=r) for r in rng.uniform(3, 7, 3)]
        image = np.full((size, size), 50.0)
        for d in discs:
            image[(xx - d.cx) ** 2 + (yy - d.cy) ** 2 <= d.rx ** 2] = 200.0
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        path = folder / f"disc_{k}.png"
        write_image(path, image)
        items.append(Item(path.name, (size, size), tuple(discs), image=ImageSource(path)))
    return Dataset((Label("cavity"),), tuple(items), source=str(folder))


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(((pred == 1) & (truth == 1)).sum() / ((pred == 1) | (truth == 1)).sum())


TOY = dict(epochs=3, min_steps=20, batch_size=4, lr=0.05, tile_size=32, seed=0, progress=False, plot=False)


def test_a_registered_toy_architecture_trains_saves_loads_and_predicts_through_the_api(tmp_path):
    ds = bright_discs(tmp_path / "export", 4)
    run = api.train("toy-conv", ds, tmp_path / "model", val_split=0.25, **TOY)
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["architecture"] == {"name": "toy-conv", "params": {"n_classes": 2}}
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "calibration.npy", "checkpoint.pt", "config.json", "history.json", "plan.json", "postprocess.json",
        "reference.json", "weights.pt"]
    held_out = next(it for it in ds if it.key == cfg["training"]["val_images"][0])
    truth = semantic_mask(held_out, ds.class_index())
    model = api.load_model(tmp_path / "model", device="cpu")
    assert model.architecture == "toy-conv" and type(model.net) is torch.nn.Conv2d
    pred = model.predict(held_out.image.path, engine="torch")
    # learned: the discs, far better than calling every pixel a cavity
    assert iou(pred.semantic, truth) > 0.8 > iou(np.ones_like(truth), truth)
    assert iou(pred.semantic, truth) == pytest.approx(run.best["val_iou"]["cavity"], abs=5e-3)  # see test_train
    assert pred.n_instances >= 2 and set(pred.instance_classes.tolist()) == {1}
    # the toy says it can be exported: ONNX Runtime runs it (measured: probabilities <= 6e-8 from PyTorch)
    ort = model.predict(held_out.image.path, engine="onnxruntime", probabilities=True)
    ref = model.predict(held_out.image.path, engine="torch", probabilities=True)
    assert ort.engine == "onnxruntime" and np.abs(ort.probabilities - ref.probabilities).max() < 1e-5
    report = api.predict(tmp_path / "model", [held_out.image.path], tmp_path / "pred", device="cpu", progress=False,
                         prelabels="cvat", engine="torch")
    assert report.images[0]["instances"] == {"cavity": pred.n_instances}
    assert json.loads((tmp_path / "pred" / "summary.json").read_text())["architecture"] == "toy-conv"


def test_the_toy_architecture_trains_and_predicts_from_the_command_line(tmp_path):
    ds = bright_discs(tmp_path / "export", 2, seed=3)
    from defectlab.formats.cvat_xml import write_cvat

    write_cvat(ds, tmp_path / "export" / "annotations.xml")
    runner = CliRunner()
    listed = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "120"})
    assert listed.exit_code == 0 and "toy-conv" in listed.output and "One 3x3 convolution" in listed.output
    res = runner.invoke(app, ["train", "toy-conv", str(tmp_path / "export"), "--out", str(tmp_path / "model"),
                              "--epochs", "2", "--steps-per-epoch", "10", "--lr", "0.05", "--tile", "32",
                              "--val-split", "0", "--no-plot", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "trained" in res.output and "validation on the training images" in res.output
    # options another architecture has are not this one's
    res = runner.invoke(app, ["train", "toy-conv", str(tmp_path / "export"), "--out", str(tmp_path / "m2"),
                              "--base-filters", "8"])
    assert res.exit_code == 2 and "--base-filters" in res.output and not (tmp_path / "m2").exists()
    res = runner.invoke(app, ["predict", str(tmp_path / "model"), str(tmp_path / "export"), "--out",
                              str(tmp_path / "pred"), "--engine", "torch"])
    assert res.exit_code == 0, res.output
    model = load_model(tmp_path / "model", device="cpu")
    for item in ds:
        mask = np.asarray(Image.open(tmp_path / "pred" / "masks" / f"{item.key}.png"))
        assert np.array_equal(mask, model.predict(item.image.path, engine="torch").semantic)  # same engine, process


# -- the registry itself ------------------------------------------------------------------------------


def test_names_options_and_the_command_line_cost_no_torch():
    code = ("import sys, typer; import defectlab.dl.archs as a, defectlab.dl.options, defectlab.dl.predict; "
            "from defectlab.cli import app; g = typer.main.get_command(app); ctx = typer.Context(g); "
            "t = g.get_command(ctx, 'train'); print(a.names(), t.list_commands(ctx), "
            "sorted(m for m in ('torch', 'torchvision', 'defectlab.dl.model_io') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # and defectlab.dl.predict no longer imports model_io (the old import cycle): it dispatches through the model
    builtin = tuple(archs.BUILTIN)  # the built-in ones (the toy registered here is not in the child process)
    assert builtin[:2] == ("unet", "maskrcnn") and out.strip() == f"{builtin} {list(builtin)} []"


def test_registry_errors_are_clear():
    with pytest.raises(KeyError, match="unknown architecture 'segformer'; known: unet, maskrcnn, .*toy-conv"):
        archs.get("segformer")

    class Other(OneLayer):
        pass

    Other.__qualname__ = "Other"
    with pytest.raises(ValueError, match="architecture 'toy-conv' is already registered"):
        archs.register(Other)
    assert archs.register(OneLayer) is OneLayer  # the same class again (a module reloaded) is fine

    class Nameless(SemanticArchitecture):
        pass

    with pytest.raises(ValueError, match="expected an architecture with a name"):
        archs.register(Nameless)

    class Incomplete(SemanticArchitecture):
        name = "incomplete"
        defaults = {"epochs": 5}

    with pytest.raises(TypeError, match="architecture 'incomplete': no default for \\['batch_size'"):
        Incomplete.options_class()


def test_a_toy_folder_with_bad_params_is_a_clear_error(tmp_path):
    ds = bright_discs(tmp_path / "export", 1)
    api.train("toy-conv", ds, tmp_path / "model", **{**TOY, "epochs": 1, "min_steps": 1})
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    cfg["architecture"]["params"] = {"n_classes": 2, "width": 3}
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ParseError, match=r"/architecture/params.*expected \{'n_classes': N >= 2\}"):
        load_model(tmp_path / "model")
    cfg["architecture"]["params"] = {"n_classes": 3}
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="classes mismatch: 'classes' lists 2 .* one-layer net outputs 3"):
        load_model(tmp_path / "model")


# -- model folders written before the registry -----------------------------------------------------


def test_a_unet_folder_written_by_main_before_the_registry_loads_and_predicts_the_same(tmp_path):
    folder = Path(shutil.copytree(MAIN_MODELS / "unet", tmp_path / "unet"))
    ref = np.load(folder / "reference_prediction.npz")
    model = load_model(folder, device="cpu")
    assert model.architecture == "unet" and model.calibration is not None
    assert model.classes == {1: "cavity", 2: "loop", 3: "precipitate", 4: "dislocation line"}
    pred = model.predict(ref["image"], engine="torch", probabilities=True)
    # the same engine on this CPU gave identical numbers (measured: 0.0 on 1 and 2 threads; ONNX Runtime 6e-8);
    # 1e-5 leaves room for another CPU
    assert np.abs(pred.probabilities - ref["probabilities"]).max() < 1e-5
    top2 = np.sort(ref["probabilities"], axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4
    assert clear.mean() > 0.99 and np.array_equal(pred.semantic[clear], ref["semantic"][clear])
    if clear.all():
        assert np.array_equal(pred.instances, ref["instances"])


def test_a_maskrcnn_config_written_by_main_builds_the_net_main_built(tmp_path):
    folder = Path(shutil.copytree(MAIN_MODELS / "maskrcnn", tmp_path / "maskrcnn"))
    config = read_config(folder)
    assert config.architecture == "maskrcnn" and config.normalization["channels"] == 3
    net = build_net(config)
    expected = json.loads((folder / "state_shapes.json").read_text())
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == expected
    torch.save(net.state_dict(), folder / "weights.pt")  # weights of that layout load
    model = load_model(folder, device="cpu")
    assert model.classes == {1: "cavity", 2: "loop"} and model.config.training["note"] == "written by main 92f2251"
    bad = json.loads((folder / "config.json").read_text())
    bad["architecture"]["params"]["backbone"] = "vgg16"
    (folder / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ParseError, match=r"/architecture/params/backbone.*expected backbone resnet50 or resnet18"):
        load_model(folder)


# -- options: each architecture's own, with its own defaults --------------------------------------------


def _help(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    return " ".join(res.output.replace("│", " ").split())


@pytest.mark.parametrize("name, shown, absent", [
    ("unet", {"--epochs": "50", "--lr": "0.001", "--tile": "256", "--patience": "10", "--base-filters": "16",
              "--loss": "ce+dice", "--dilations": "1,2,4"}, "--backbone"),
    ("maskrcnn", {"--epochs": "20", "--lr": "0.0001", "--tile": "512", "--patience": "5", "--backbone": "resnet50",
                  "--batch-size": "2"}, "--base-filters"),
])
def test_each_architecture_shows_its_own_options_and_defaults_at_80_columns(name, shown, absent):
    from defectlab.commands._options import cli_fields, from_cli

    arch = archs.get(name)
    text = _help("train", name)
    assert absent not in text and "[unet" not in text and "Most epochs (early stopping may end sooner)" in text
    for flag, default in shown.items():
        assert flag in text and f"[default: {default}]" in text, (name, flag)
    # the defaults the CLI parses when no flag is given are the architecture's options
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    command = group.get_command(ctx, "train").get_command(ctx, name)
    by_name = {p.name: p.default for p in command.params}
    cls = arch.options_class()
    assert from_cli(cls, {f.name: by_name[f.name] for f in cli_fields(cls)}) == arch.train_options()
    assert from_cli(arch.Params, {f.name: by_name[f.name] for f in cli_fields(arch.Params)}) == arch.Params()


def test_options_are_the_architectures_and_named_once(tmp_path):
    import dataclasses
    import inspect

    from defectlab.dl import train as train_mod
    from defectlab.dl.options import TrainOptions

    unet, maskrcnn = archs.get("unet"), archs.get("maskrcnn")
    assert unet.train_options().epochs == 50 and maskrcnn.train_options().epochs == 20
    # a plain TrainOptions: the fields given are kept, the Nones become the architecture's defaults
    opts = unet.train_options(TrainOptions(epochs=3, tile_size=64))
    assert (opts.epochs, opts.tile_size, opts.lr, opts.schedule) == (3, 64, 1e-3, "plateau")
    assert maskrcnn.train_options(TrainOptions(epochs=3)).schedule == "constant"
    for fn in (api.train_unet, api.train_maskrcnn, api.train, train_mod.train_unet, train_mod.train):
        params = inspect.signature(fn).parameters
        fields = [f.name for cls in (TrainOptions, type(unet).Params, type(maskrcnn).Params)
                  for f in dataclasses.fields(cls)]
        assert not [n for n in fields if n in params], f"{fn.__qualname__} re-declares an option"
    with pytest.raises(TypeError, match="train unet: no option 'backbone'"):
        api.train_unet(tmp_path / "nothing", tmp_path / "m", backbone="resnet18")
    with pytest.raises(ValueError, match="train unet: epochs: expected a number >= 1, got 0"):
        api.train_unet(tmp_path / "nothing", tmp_path / "m", epochs=0)


# -- the one normalizer -------------------------------------------------------------------------------


def test_prediction_scales_images_as_the_model_folder_says(tmp_path):
    """A net that passes the gray value through (class 1's logit = the normalized pixel): the
    probabilities show what the image was scaled to — by its min and max, or by the
    percentiles the folder's normalization names, clipped."""
    from defectlab.dl.model_io import ClassInfo, Model, save_model

    arch = archs.get("toy-conv")
    config = arch.model_config({"n_classes": 2}, classes=[ClassInfo(1, "cavity")], tile_size=32, overlap=8)
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
        net.weight[1, 0, 1, 1] = 1.0  # logits (0, x): p1 = sigmoid(x)
    save_model(Model(net, config), tmp_path / "model")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 4000, (40, 56, 3)).astype(np.uint16)
    rgb[3, 5] = 65535  # one hot pixel
    gray = (rgb.astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])).astype(np.float32)  # skimage's weights

    def sigmoid(x):
        return 1 / (1 + np.exp(-x.astype(np.float64)))

    p = load_model(tmp_path / "model").predict(rgb, engine="torch", probabilities=True).probabilities[1]
    np.testing.assert_allclose(p, sigmoid((gray - gray.min()) / (gray.max() - gray.min())), atol=1e-6)
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    cfg["normalization"]["percentiles"] = [1, 99]
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    p = load_model(tmp_path / "model").predict(rgb, engine="torch", probabilities=True).probabilities[1]
    lo, hi = np.percentile(gray, [1, 99])
    np.testing.assert_allclose(p, sigmoid(np.clip((gray - lo) / (hi - lo), 0, 1)), atol=1e-6)
    cfg["normalization"]["percentiles"] = [99, 1]
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ParseError, match="/normalization/percentiles.*expected percentiles"):
        load_model(tmp_path / "model")


@archs.register
class Tuned(OneLayer):
    """The toy, with settings tuned after training and a file of its own in the model folder."""

    name: ClassVar[str] = "toy-tuned"

    def check_params(self, params: Any) -> int:
        if not 0 < params.get("threshold", 0) < 1:
            raise ParamError("expected a tuned threshold in (0, 1)", key="threshold")
        return params["n_classes"]

    def start(self, setup: Any) -> Any:
        import dataclasses

        job = super().start(setup)
        job.finish = lambda model: dataclasses.replace(model.config, params={**model.config.params, "threshold": 0.25})
        job.files = lambda: {"thresholds.json": b'{"prob": 0.25}\n'}
        return job

    def on_load(self, model: Any, folder: Path) -> Any:
        model.thresholds = json.loads((folder / "thresholds.json").read_text())
        return model


def test_an_architecture_tunes_its_config_after_training_and_adds_files(tmp_path):
    ds = bright_discs(tmp_path / "export", 2)
    api.train("toy-tuned", ds, tmp_path / "model", **{**TOY, "epochs": 1, "min_steps": 1})
    assert json.loads((tmp_path / "model" / "thresholds.json").read_text()) == {"prob": 0.25}
    loaded = load_model(tmp_path / "model")
    assert loaded.config.params == {"n_classes": 2, "threshold": 0.25} and loaded.thresholds == {"prob": 0.25}
