"""Test-time augmentation, the uncertainty map and reliability, the training reference and
``suggest``: equivariant nets give TTA = no TTA and zero uncertainty, a non-equivariant one
disagrees as a direct computation says, torch and ONNX Runtime agree, an out-of-distribution
image ranks first, the CLI writes its files and refuses bad input clearly."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

import defectlab.api as dl  # noqa: E402
from defectlab.cli import app  # noqa: E402
from defectlab.dl import archs  # noqa: E402
from defectlab.dl.options import PredictOptions  # noqa: E402
from defectlab.dl.predict import TTAError, check_options  # noqa: E402
from defectlab.dl.reference import compare, image_stats, read_reference, training_reference  # noqa: E402
from defectlab.dl.tiles import predict_semantic  # noqa: E402
from defectlab.dl.uncertainty import object_uncertainty, reliability, tta_forward  # noqa: E402
from defectlab.imaging.io import read_image, write_image  # noqa: E402
from defectlab.model import ImageSource  # noqa: E402

runner = CliRunner()


def softmax_forward(net):
    def forward(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(torch.from_numpy(np.ascontiguousarray(batch))), dim=1).numpy()

    return forward


def conv_net(kernel: np.ndarray) -> torch.nn.Module:
    """Two classes from one (k, k) convolution: class 1's logit is the filtered image, class 0's is 0."""
    k = kernel.shape[0]
    conv = torch.nn.Conv2d(1, 2, k, padding=k // 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1, 0] = torch.from_numpy(kernel.astype(np.float32))
    return conv.eval()


IMAGE = np.random.default_rng(0).random((70, 90)).astype(np.float32)


def entropy(q: np.ndarray, axis: int = -3) -> np.ndarray:
    return -(q * np.log(np.clip(q, 1e-12, 1))).sum(axis=axis)


def test_tta_of_an_equivariant_net_is_the_plain_prediction_and_its_entropy():
    net = conv_net(np.array([[6.0]]))  # a 1x1 convolution: every flip and rotation commutes with it
    f = softmax_forward(net)
    sem, conf, probs = predict_semantic(f, IMAGE, n_classes=2, multiple=1, tile=32, overlap=8, probabilities=True)
    sem_t, conf_t, probs_t, unc = predict_semantic(tta_forward(f), IMAGE, n_classes=2, multiple=1, tile=32, overlap=8,
                                                   probabilities=True, extra=1)
    # measured: the largest difference is ~6e-8 (float32 rounding of the averaging)
    assert float(np.abs(probs_t - probs).max()) < 1e-5
    assert np.array_equal(sem_t, sem)
    assert unc.shape == (1, 70, 90) and unc.dtype == np.float32
    # every view says the same: the uncertainty is the plain prediction's own entropy
    np.testing.assert_allclose(unc[0], entropy(probs.astype(np.float64), axis=0), atol=1e-5)


def whole_image_views(net, image: np.ndarray) -> np.ndarray:
    """(8, C, H, W) float64: the whole image's 8 views through the net with torch's own flips
    and rotations, mapped back (independent of tta_forward's numpy views)."""
    x = torch.from_numpy(image)[None, None]
    out = []
    with torch.no_grad():
        for k in range(4):
            for flip in (False, True):
                v = torch.rot90(x, k, dims=(2, 3))
                if flip:
                    v = torch.flip(v, dims=(3,))
                p = torch.softmax(net(v), dim=1)
                if flip:
                    p = torch.flip(p, dims=(3,))
                out.append(torch.rot90(p, -k, dims=(2, 3))[0].double().numpy())
    return np.stack(out)


def test_a_non_equivariant_net_disagrees_as_computed_directly():
    net = conv_net(np.array([[0, 0, 0], [-8.0, 0, 8.0], [0, 0, 0]]))  # a horizontal gradient: flips change it
    f = softmax_forward(net)
    img = np.zeros((64, 64), np.float32)
    img[20:44, 20:44] = 1.0  # edges where the gradient's sign depends on the view
    img[0, 0], img[-1, -1] = 0.0, 1.0
    sem, _, probs, unc = predict_semantic(tta_forward(f), img, n_classes=2, multiple=1, tile=64, overlap=0,
                                          probabilities=True, extra=1)
    p = whole_image_views(net, img)
    mean = p.mean(0)
    inner = (slice(2, -2), slice(2, -2))  # away from the image border, where padding differs
    np.testing.assert_allclose(probs[(slice(None), *inner)], mean[(slice(None), *inner)], atol=1e-5)
    np.testing.assert_allclose(unc[0][inner], entropy(mean)[inner], atol=1e-5)
    # on the square's left edge the views disagree (sure of 1, sure of 0, or unsure: the
    # gradient's sign and direction turn with the view): their mean is more unsure than they
    # are on average, by their disagreement
    assert float(p[:, 1, 30, 20].max() - p[:, 1, 30, 20].min()) > 0.9
    assert float(unc[0][30, 20]) > float(entropy(p).mean(0)[30, 20]) + 0.1
    # inside the flat square the gradient is 0: every view says 0.5, the most unsure
    assert abs(float(unc[0][30, 30]) - math.log(2)) < 1e-5
    assert float(unc[0].max()) <= math.log(2) + 1e-6


def test_object_uncertainty_is_the_mean_over_each_object():
    inst = np.zeros((6, 6), np.int32)
    inst[0:2, 0:2], inst[3:6, 3:5] = 1, 2
    u = np.arange(36, dtype=np.float32).reshape(6, 6) / 100
    got = object_uncertainty(inst, 2, u)
    np.testing.assert_allclose(got, [u[0:2, 0:2].mean(), u[3:6, 3:5].mean()], rtol=1e-6)


def tiny_model(tmp_path):
    from defectlab.dl.archs import unet
    from defectlab.dl.model_io import ClassInfo, Model, save_model

    torch.manual_seed(3)
    net = unet.UNet(unet.UNetConfig(n_classes=2, base_filters=4, depth=2, bottleneck_dilations=(1,))).eval()
    config = unet.model_config(net.config, classes=[ClassInfo(1, "cavity")], tile_size=64, overlap=16)
    return save_model(Model(net, config), tmp_path / "model")


def test_torch_and_onnxruntime_tta_agree(tmp_path):
    pytest.importorskip("onnxruntime")
    from defectlab.dl.engine import softmax_forward as engine_forward

    net = torch.nn.Sequential(conv_net(np.array([[0, 1.0, 0], [-8.0, 0, 8.0], [0, -2.0, 0]])), torch.nn.ReLU(),
                              torch.nn.Conv2d(2, 2, 3, padding=1)).eval()  # not flip-equivariant
    image = (np.random.default_rng(5).random((90, 120)) * 255).astype(np.uint8)
    got = {}
    for engine in ("torch", "onnxruntime"):
        f = engine_forward(net, torch.device("cpu"), engine=engine, example_shape=(1, 1, 32, 32))
        assert f.engine == engine
        got[engine] = predict_semantic(tta_forward(f), image, n_classes=2, multiple=1, tile=48, overlap=16,
                                       probabilities=True, extra=1)
    (_, _, pa, ua), (_, _, pb, ub) = got["torch"], got["onnxruntime"]
    assert float(ua.max()) > 0.05  # the views do disagree: the comparison means something
    # measured on this CPU: probabilities and uncertainty within ~1e-7
    assert float(np.abs(pb - pa).max()) < 1e-5 and float(np.abs(ub - ua).max()) < 1e-5
    model = tiny_model(tmp_path)  # and through Model.predict: the engine chosen by name
    a = model.predict(image, tta=True, engine="torch")
    b = model.predict(image, tta=True, engine="onnxruntime")
    assert (a.engine, b.engine) == ("torch", "onnxruntime")
    assert float(np.abs(a.uncertainty - b.uncertainty).max()) < 1e-5 and abs(a.reliability - b.reliability) < 1e-5
    assert a.object_uncertainty.shape == (a.n_instances,)


def test_tta_is_refused_by_architectures_that_do_not_do_it():
    for name, title in (("maskrcnn", "Mask R-CNN"), ("stardist", "star")):
        fake = SimpleNamespace(arch=archs.get(name), architecture=name)
        with pytest.raises(TTAError, match=f"(?i){title}.*does not do it"):
            check_options(fake, PredictOptions(tta=True))
        check_options(fake, PredictOptions())  # without --tta they predict as before


def test_image_stats_and_the_reference_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    noisy = rng.normal(120.0, 4.0, (200, 200))
    s = image_stats(noisy)
    assert abs(s["noise"] - 4.0) < 0.3 and abs(s["p50"] - 120.0) < 0.5
    mask = np.zeros((50, 50), np.uint8)
    mask[5:15, 5:15] = 1  # area 100: diameter 2 sqrt(100 / pi)
    mask[30:34, 30:34] = 1  # area 16
    ref = training_reference([("a.png", noisy), ("b.png", noisy[::-1])], [mask], [1])
    (tmp_path / "reference.json").write_text(ref.to_json(), encoding="utf-8")
    back = read_reference(tmp_path)
    assert back.images == ref.images and back.diameters_px == ref.diameters_px
    assert back.diameters_px["n"] == 2
    np.testing.assert_allclose([back.diameters_px["q01"], back.diameters_px["q99"]],
                               [2 * math.sqrt(16 / math.pi), 2 * math.sqrt(100 / math.pi)], rtol=0.05)
    (tmp_path / "bad.json").write_text('{"images": [{"name": "a"}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json.*expected a defectlab reference"):
        read_reference(tmp_path / "bad.json")


def test_compare_flags_brighter_noisier_and_inverted_images_only():
    rng = np.random.default_rng(2)

    def micrograph(seed):
        r = np.random.default_rng(seed)
        g = np.full((128, 128), 60.0)
        yy, xx = np.mgrid[:128, :128]
        for _ in range(6):
            cy, cx = r.uniform(10, 118, 2)
            g[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 180.0
        return g + r.normal(0, 3, g.shape)

    ref = training_reference([(f"{k}.png", micrograph(k)) for k in range(4)])
    same = compare(ref, micrograph(10))
    assert not same.flagged, same
    for odd in (micrograph(11) * 16, 240 - micrograph(12), micrograph(13) + rng.normal(0, 60, (128, 128))):
        got = compare(ref, odd)
        assert got.flagged and got.note, got


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A U-Net trained a few steps on 3 synthetic images, its folder with reference.json."""
    tmp = tmp_path_factory.mktemp("uncert")
    ds = dl.synthetic(tmp / "export", n=3, size=96, n_loops=0, n_precipitates=0, n_lines=0, seed=1)
    run = dl.train_unet(ds, tmp / "model", epochs=1, batch_size=2, tile_size=64, base_filters=4, depth=2,
                        min_steps=2, steps_per_epoch=2, val_split=0, progress=False, plot=False)
    unlabeled = tmp / "unlabeled"
    unlabeled.mkdir()
    dl.synthetic(tmp / "more", n=3, size=96, n_loops=0, n_precipitates=0, n_lines=0, seed=7)
    for k, p in enumerate(sorted((tmp / "more" / "images").iterdir())):
        image = read_image(ImageSource(p))
        write_image(unlabeled / f"img{k}.png", image)
        if k == 1:  # from another camera: 16x brighter (16-bit) and noisier
            noisy = image.astype(np.float64) * 16 + np.random.default_rng(0).normal(0, 400, image.shape)
            write_image(unlabeled / "odd.tif", np.clip(noisy, 0, 65535).astype(np.uint16))
    return SimpleNamespace(tmp=tmp, model=run.model, folder=tmp / "model", unlabeled=unlabeled)


def test_training_records_a_reference_of_its_images(trained):
    ref = read_reference(trained.folder)
    assert sorted(im["name"] for im in ref.images) == sorted(trained.model.config.training["train_images"])
    assert ref.diameters_px is not None and ref.diameters_px["n"] > 0


def test_suggest_ranks_the_out_of_distribution_image_first(trained):
    report = dl.suggest(trained.folder, trained.unlabeled, trained.tmp / "next", n=2, progress=False, device="cpu")
    assert report.rows[0]["image"] == "odd.tif" and report.rows[0]["flagged"]
    assert not any(r["flagged"] for r in report.rows[1:])
    assert [r["rank"] for r in report.rows] == [1, 2, 3, 4]
    assert all(r["score"] == pytest.approx(r["uncertainty"] + r["unlikeness"]) for r in report.rows)
    with (trained.tmp / "next" / "suggest.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == [r["image"] for r in report.rows]
    xml = (trained.tmp / "next" / "prelabels" / "annotations.xml").read_text(encoding="utf-8")
    assert xml.count("<image ") == 2 and 'name="odd.tif"' in xml
    assert (trained.tmp / "next" / "contact_sheet.png").stat().st_size > 5000
    assert (trained.tmp / "next" / "uncertainty" / "odd.tif").is_file()
    assert (trained.tmp / "next" / "masks" / "odd.png").is_file()


def test_predict_cli_with_tta_writes_uncertainty_and_flags(trained):
    out = trained.tmp / "pred"
    result = runner.invoke(app, ["predict", str(trained.folder), str(trained.unlabeled), "--out", str(out), "--tta",
                                 "--engine", "torch", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "reliability" in result.output and "odd.tif: unlike the training images" in result.output
    u = read_image(ImageSource(out / "uncertainty" / "img0.tif"))
    assert u.dtype == np.float32 and u.shape == (96, 96) and float(u.min()) >= 0
    assert read_image(ImageSource(out / "uncertainty" / "img0.png")).shape == (96, 96, 3)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    by_name = {im["name"]: im for im in summary["images"]}
    assert by_name["odd.tif"]["unlike"]["flagged"] and not by_name["img0.png"]["unlike"]["flagged"]
    assert 0 <= by_name["img0.png"]["reliability"] <= 1
    assert len(by_name["img0.png"]["objects"]) == sum(by_name["img0.png"]["instances"].values())


def test_a_model_without_reference_says_so_once(trained, tmp_path):
    import shutil

    folder = tmp_path / "old_model"
    shutil.copytree(trained.folder, folder)
    (folder / "reference.json").unlink()
    result = runner.invoke(app, ["predict", str(folder), str(trained.unlabeled), "--out", str(tmp_path / "p"),
                                 "--engine", "torch", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.output.count("no reference.json") == 1


def test_suggest_cli_end_to_end_and_its_errors(trained, tmp_path):
    out = tmp_path / "next"
    result = runner.invoke(app, ["suggest", str(trained.folder), str(trained.unlabeled), "--n", "1", "--out", str(out),
                                 "--engine", "torch", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "odd.tif" in result.output and "label these next" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "instances", "masks", "overlays",
                                                     "prelabels", "suggest.csv", "uncertainty"]
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (([str(tmp_path / "missing")], "no such folder"), ([str(empty)], "no image files"),
                          ([str(trained.unlabeled), "--n", "0"], "expected a number of images >= 1")):
        result = runner.invoke(app, ["suggest", str(trained.folder), *args, "--out", str(tmp_path / "o")])
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
