"""Starting training from trained weights (``--init``): every tensor of the source is loaded, the
class head's rows follow the class names, other net shapes are refused, and the shipped
synthetic-pretrained U-Net is a real trained model of the default shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from defectlab.cli import app  # noqa: E402
from defectlab.dl.archs.unet import UNetParams  # noqa: E402
from defectlab.dl.model_io import load_model  # noqa: E402
from defectlab.dl.train import train_unet  # noqa: E402
from defectlab.dl.warm_start import SHIPPED  # noqa: E402
from defectlab.dl.model_io import ModelError  # noqa: E402
from defectlab.model import Label  # noqa: E402
from defectlab.preparation.synthetic import SYNTHETIC_LABELS  # noqa: E402
from defectlab.preparation.synthetic_pretrain import PretrainConfig, pretrain_item  # noqa: E402
from defectlab.raster import semantic_mask  # noqa: E402

from test_train import TINY, cavities  # noqa: E402

STEPS = dict(epochs=1, steps_per_epoch=2, batch_size=2, time_budget_s=float("inf"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/dl/conftest.py


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny U-Net trained on cavities (classes: background, cavity)."""
    tmp = tmp_path_factory.mktemp("src")
    return train_unet(cavities(tmp, 2), tmp / "model", seed=0, **TINY, **STEPS).model


def test_every_tensor_is_loaded_and_head_rows_follow_the_class_names(source, tmp_path):
    # the new set: 'precipitate' first (not in the source), then 'cavity' (index 1 in the source)
    labels = (Label("precipitate"), SYNTHETIC_LABELS[0])
    run = train_unet(cavities(tmp_path, 2, labels=labels), tmp_path / "m", seed=1, init=str(source.path),
                     lr=1e-12, schedule="constant", **TINY, **STEPS)
    # an lr of 1e-12 leaves the weights where the warm start put them (Adam moves each by ~lr);
    # BatchNorm's running statistics do move with the batches: compare them apart
    src = {k: v.float() for k, v in source.net.state_dict().items()}
    got = {k: v.float() for k, v in run.model.net.state_dict().items()}
    assert set(got) == set(src)
    for key, value in src.items():
        if "running_" in key or "num_batches" in key:
            continue
        if key in ("head.weight", "head.bias"):
            assert torch.allclose(got[key][0], value[0], atol=1e-6)          # background
            assert torch.allclose(got[key][2], value[1], atol=1e-6)          # cavity -> its new index 2
            assert not torch.allclose(got[key][1], value[1], atol=1e-3)      # precipitate: fresh
        else:
            assert torch.allclose(got[key], value, atol=1e-6), key
    init = run.model.config.training["init"]
    assert init["copied_classes"] == ["background", "cavity"] and init["fresh_classes"] == ["precipitate"]
    assert any("started from the weights of" in n for n in run.notes)


def test_another_net_shape_or_architecture_is_refused_by_name(source, tmp_path):
    with pytest.raises(ModelError, match=r"another shape.*base_filters"):
        train_unet(cavities(tmp_path, 2), tmp_path / "m", init=str(source.path),
                   **{**TINY, "base_filters": 4}, **STEPS)
    with pytest.raises(ModelError, match="no such model folder"):
        train_unet(cavities(tmp_path, 2), tmp_path / "m2", init=str(tmp_path / "nowhere"), **TINY, **STEPS)
    assert not (tmp_path / "m").exists() and not (tmp_path / "m2").exists()


def test_the_shipped_synthetic_model_is_a_trained_default_unet():
    folder = SHIPPED["synthetic"]
    model = load_model(folder, device="cpu")
    defaults = UNetParams()
    for name in ("base_filters", "depth"):
        assert model.config.params[name] == getattr(defaults, name)
    assert [c.name for c in model.config.classes[1:]] == [label.name for label in SYNTHETIC_LABELS]
    assert (folder / "README.md").is_file()
    # a trained model, not random weights: on fresh pretraining micrographs (a seed the script
    # never used) the cavities it finds overlap the true ones (an untrained net: IoU ~ 0)
    cfg = PretrainConfig(size_hw=(256, 256), cavities=(12, 12), loops=(0, 0), precipitates=(0, 0), lines=(0, 0),
                         cavity_radius_px=(6.0, 14.0))
    ious = []
    for seed in range(3):
        image, item, _ = pretrain_item(np.random.SeedSequence([991, seed]), cfg)
        truth = semantic_mask(item, {label.name: i + 1 for i, label in enumerate(SYNTHETIC_LABELS)}) == 1
        pred = model.predict(image, split=False).semantic == 1
        ious.append((pred & truth).sum() / max(1, (pred | truth).sum()))
    assert np.mean(ious) > 0.5, ious


def test_cli_init_synthetic_fine_tunes_and_says_so(tmp_path):
    from defectlab.formats.cvat_xml import write_cvat

    write_cvat(cavities(tmp_path, 2, size=64), tmp_path / "annotations.xml")
    result = CliRunner().invoke(app, ["train", "unet", str(tmp_path / "annotations.xml"), "--out",
                                      str(tmp_path / "model"), "--init", "synthetic", "--epochs", "1",
                                      "--steps-per-epoch", "1", "--batch-size", "1", "--tile", "64", "--time", "off"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["training"]["init"]["from"] == "the shipped 'synthetic' model"
    assert config["training"]["init"]["copied_classes"] == ["background", "cavity"]
    assert "started from the weights of the shipped 'synthetic' model" in " ".join(result.output.split())
