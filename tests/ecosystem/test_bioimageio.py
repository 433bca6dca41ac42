"""bioimage.io model packages: ours pass bioimageio.core's own model test (it runs both weights
on the package's test input and compares with the test outputs, which are defectlab's own
prediction), and packages made with bioimageio.spec alone run through defectlab.

The U-Net here is untrained: its head's logits are centered and spread so that every class
wins somewhere and few pixels are near a tie (an all-background output is refused by
bioimage.io).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from defectlab.cli import app
from defectlab.dl.bioimageio import BioimageioOptions, export_bioimageio, load_bioimageio
from defectlab.dl.model_io import ClassInfo, Model, save_model
from defectlab.dl.archs.unet import UNet, UNetConfig, model_config
from defectlab.errors import ImageError, OutputError

runner = CliRunner()


def _model() -> Model:
    torch.manual_seed(0)
    net = UNet(UNetConfig(n_classes=3, base_filters=4, depth=2, bottleneck_dilations=(1,))).eval()
    with torch.no_grad():
        logits = net(torch.rand(1, 1, 64, 64))
        net.head.bias -= logits.mean(dim=(0, 2, 3))
        k = 3.0 / logits.std(dim=(0, 2, 3))  # logits of spread ~3: every class wins somewhere, no near-ties
        net.head.weight *= k[:, None, None, None]
        net.head.bias *= k
    classes = [ClassInfo(1, "cavity", "#ff0000", "inner"), ClassInfo(2, "dislocation line", "#0000ff", type="polyline")]
    return Model(net, model_config(net.config, classes=classes, tile_size=64, overlap=16))


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[Model, Path]:
    tmp = tmp_path_factory.mktemp("bioimageio")
    model = save_model(_model(), tmp / "model")
    out = tmp / "defects.zip"
    result = runner.invoke(app, ["export", str(tmp / "model"), str(out), "--to", "bioimageio", "--author", "A. Author",
                                 "--cite", "A paper|10.1234/abc.5", "--license", "MIT", "--pixel-size", "0.5nm",
                                 "--tag", "helium-bubbles"])
    assert result.exit_code == 0, result.output
    return model, out


def _rdf(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return yaml.safe_load(zf.read("rdf.yaml"))


def test_bioimageio_core_passes_the_model_test(package) -> None:
    from bioimageio.core import test_model

    _, path = package
    summary = test_model(path)
    failed = [(d.name, [e.msg[:200] for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    names = [d.name for d in summary.details]
    assert any("Reproduce test outputs" in n and "torchscript" in n for n in names)
    assert any("Reproduce test outputs" in n and "onnx" in n for n in names)


def test_the_description_says_what_defectlab_does(package) -> None:
    model, path = package
    rdf = _rdf(path)
    assert rdf["format_version"].startswith("0.5") and rdf["license"] == "MIT"
    assert rdf["authors"] == [{"name": "A. Author"}] and rdf["cite"][0]["doi"] == "10.1234/abc.5"
    assert "helium-bubbles" in rdf["tags"] and set(rdf["weights"]) == {"torchscript", "onnx"}
    (raw,) = rdf["inputs"]
    assert [a.get("id", a["type"]) for a in raw["axes"]] == ["batch", "channel", "y", "x"]
    y = raw["axes"][2]
    assert (y["scale"], y["unit"]) == (0.5, "nanometer") and y["size"]["step"] == model.net.multiple
    scale = [p for p in raw["preprocessing"] if p["id"] == "scale_range"][0]["kwargs"]
    assert (scale["min_percentile"], scale["max_percentile"], scale["axes"]) == (0.0, 100.0, ["y", "x"])
    probs, classes = rdf["outputs"]
    assert probs["axes"][1]["channel_names"] == ["background", "cavity", "dislocation_line"]
    assert classes["data"]["type"] == "uint8"
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"README.md", "cover.png", rdf["weights"]["onnx"]["source"]} <= names
        assert "Validation" in zf.read("README.md").decode()


def test_the_test_outputs_are_defectlabs_own_prediction(package, tmp_path) -> None:
    model, path = package
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path)
    x = np.load(tmp_path / "test_input.npy")[0, 0]
    pred = model.predict(x, probabilities=True, engine="torch")
    np.testing.assert_array_equal(np.load(tmp_path / "test_output_classes.npy")[0, 0], pred.semantic)
    # the same weights and engine: 0.0 measured here; atol leaves room for a CPU that sums float32 in another order
    np.testing.assert_allclose(np.load(tmp_path / "test_output_probabilities.npy")[0], pred.probabilities, atol=1e-5)
    assert len(np.unique(pred.semantic)) == 3


def test_predict_with_our_package_gives_our_masks(package) -> None:
    model, path = package
    image = (np.random.default_rng(1).random((96, 128)) * 200).astype(np.uint8)
    ours = model.predict(image, engine="torch")
    theirs = load_bioimageio(path, weight_format="torchscript").predict(image)
    assert theirs.semantic.shape == ours.semantic.shape
    # bioimageio.core pads the image by the outputs' halo (8 px here) where defectlab lets the
    # net's convolutions zero-pad a single tile: the masks differ only in that border band
    halo = _rdf(path)["outputs"][0]["axes"][2]["halo"]
    np.testing.assert_array_equal(theirs.semantic[halo:-halo, halo:-halo], ours.semantic[halo:-halo, halo:-halo])
    assert theirs.classes == {1: "cavity", 2: "dislocation line"}


def test_a_percentile_model_packages_its_percentiles_and_the_clip(tmp_path) -> None:
    """A model trained with --auto's percentile normalization: bioimage.io's preprocessing (computed by
    bioimageio.core, not defectlab) scales a 16-bit image with a hot pixel as defectlab's predict does."""
    import dataclasses

    from defectlab.dl.archs import get

    base = _model()
    model = save_model(Model(base.net, dataclasses.replace(
        base.config, normalization=get("unet").normalization("percentile"))), tmp_path / "model")
    export_bioimageio(model, tmp_path / "p.zip", BioimageioOptions(authors=("A. Author",)))
    pre = [p for p in _rdf(tmp_path / "p.zip")["inputs"][0]["preprocessing"] if p["id"] != "ensure_dtype"]
    assert [p["id"] for p in pre] == ["scale_range", "clip"]  # (bioimageio.spec adds ensure_dtype steps around)
    assert (pre[0]["kwargs"]["min_percentile"], pre[0]["kwargs"]["max_percentile"]) == (0.5, 99.5)
    assert (pre[1]["kwargs"]["min"], pre[1]["kwargs"]["max"]) == (0.0, 1.0)
    rng = np.random.default_rng(2)
    image = (rng.random((96, 128)) * 30000 + 5000).astype(np.uint16)
    image[40, 50] = 65535
    ours = model.predict(image, engine="torch")
    theirs = load_bioimageio(tmp_path / "p.zip", weight_format="torchscript").predict(image)
    halo = _rdf(tmp_path / "p.zip")["outputs"][0]["axes"][2]["halo"]
    inner = (slice(halo, -halo), slice(halo, -halo))
    # percentiles interpolated another way may move a pixel near a class boundary: at most 0.1 % of them
    assert (theirs.semantic[inner] != ours.semantic[inner]).mean() <= 1e-3


def _foreign_package(tmp: Path) -> Path:
    """A package as another lab would make it with bioimageio.spec: input (batch, y, x), no
    preprocessing, one sigmoid foreground channel; the net is sigmoid(x - 0.5)."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as v

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.weight[0, 0, 1, 1] = 1.0
                self.conv.bias.fill_(-0.5)

        def forward(self, x):
            return torch.sigmoid(self.conv(x[:, None]))

    net = Net().eval()
    x = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    torch.onnx.export(net, (torch.from_numpy(x),), str(tmp / "w.onnx"), input_names=["image"], output_names=["fg"],
                      opset_version=17, dynamo=False, dynamic_axes={"image": {0: "b", 1: "h", 2: "w"},
                                                                     "fg": {0: "b", 2: "h", 3: "w"}})
    np.save(tmp / "in.npy", x)
    with torch.no_grad():
        np.save(tmp / "out.npy", net(torch.from_numpy(x)).numpy())
    from PIL import Image

    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(tmp / "cover.png")
    (tmp / "README.md").write_text("# threshold\n\n## Validation\n\nnone\n")
    descr = v.ModelDescr(
        name="a threshold net", description="foreground where the image exceeds 0.5",
        authors=[v.Author(name="Other Lab")], cite=[v.CiteEntry(text="none", url="https://example.org")],
        license="MIT", documentation=v.FileDescr(source=tmp / "README.md"), covers=[v.FileDescr(source=tmp / "cover.png")],
        inputs=[v.InputTensorDescr(id=v.TensorId("image"), axes=[
            v.BatchAxis(), v.SpaceInputAxis(id=v.AxisId("y"), size=v.ParameterizedSize(min=16, step=1)),
            v.SpaceInputAxis(id=v.AxisId("x"), size=v.ParameterizedSize(min=16, step=1))],
            test_tensor=v.FileDescr(source=tmp / "in.npy"), data=v.IntervalOrRatioDataDescr(type="float32"))],
        outputs=[v.OutputTensorDescr(id=v.TensorId("fg"), axes=[
            v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier("foreground")]),
            v.SpaceOutputAxis(id=v.AxisId("y"), size=v.SizeReference(tensor_id=v.TensorId("image"), axis_id=v.AxisId("y"))),
            v.SpaceOutputAxis(id=v.AxisId("x"), size=v.SizeReference(tensor_id=v.TensorId("image"), axis_id=v.AxisId("x")))],
            test_tensor=v.FileDescr(source=tmp / "out.npy"), data=v.IntervalOrRatioDataDescr(type="float32"))],
        weights=v.WeightsDescr(onnx=v.OnnxWeightsDescr(source=tmp / "w.onnx", opset_version=17)),
    )
    return Path(save_bioimageio_package(descr, output_path=tmp / "foreign.zip"))


def test_a_package_made_elsewhere_runs_where_its_inputs_fit(tmp_path) -> None:
    path = _foreign_package(tmp_path)
    model = load_bioimageio(path)
    assert (model.input_axes, model.output_kind, model.classes) == (("b", "y", "x"), "foreground",
                                                                     {0: "background", 1: "foreground"})
    image = np.random.default_rng(3).random((40, 50)).astype(np.float32)
    pred = model.predict(image)
    np.testing.assert_array_equal(pred.semantic, (image >= 0.5).astype(np.uint8))  # sigmoid(x - 0.5) >= 0.5
    assert pred.instances.max() == pred.n_instances > 0


def test_bad_requests_are_clear_errors(package, tmp_path) -> None:
    model, path = package
    r = runner.invoke(app, ["export", str(model.path), str(tmp_path / "x.tar"), "--to", "bioimageio"])
    assert r.exit_code == 1 and "is a .zip" in r.output
    r = runner.invoke(app, ["export", str(model.path), str(path), "--to", "bioimageio"])
    assert r.exit_code == 1 and "exists" in r.output
    r = runner.invoke(app, ["export", str(model.path), str(tmp_path / "y.zip"), "--to", "bioimageio", "--cite", "x"])
    assert r.exit_code == 1 and "TEXT|DOI" in r.output
    with pytest.raises(ValueError, match="SPDX"):
        BioimageioOptions(license=" ")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.zeros((80, 80), np.uint8)).save(blank)
    quiet = _model()
    with torch.no_grad():
        quiet.net.head.bias.copy_(torch.tensor([1e4, 0.0, 0.0]))
    with pytest.raises(ImageError, match="finds no defect"):
        export_bioimageio(quiet, tmp_path / "q.zip", BioimageioOptions(sample=blank))
    assert not (tmp_path / "q.zip").exists()
    with pytest.raises(OutputError, match="does not exist"):
        export_bioimageio(quiet, tmp_path / "nowhere" / "q.zip")


def test_what_is_not_a_package_or_does_not_fit_is_a_clear_error(tmp_path) -> None:
    from defectlab.errors import FormatError

    with pytest.raises(FormatError, match="no such bioimage.io package"):
        load_bioimageio(tmp_path / "missing.zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("rdf.yaml", "type: dataset\nname: not a model\n")
    with pytest.raises(FormatError, match="not a valid bioimage.io model"):
        load_bioimageio(tmp_path / "other.zip")
