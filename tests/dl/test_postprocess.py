"""Post-processing chosen on counts and sizes: on a set with specks the chosen minimum area
beats the fixed default's count error; training stores it, prediction uses it, an explicit
value overrides it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectlab.dl.postprocess import DEFAULT_MIN_AREA_PX, choose_min_area, read_postprocess
from defectlab.errors import ParseError


def speckled(rng: np.random.Generator, n_discs: int, n_specks: int, size: int = 128):
    """(predicted, labeled) masks: discs of radius 6-9 px, the prediction with extra square
    specks of 2x3 to 3x4 px (6-12 px, above the default minimum area)."""
    truth = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    centers = []
    while len(centers) < n_discs:
        c = rng.integers(12, size - 12, 2)
        if all(np.hypot(*(c - o)) > 22 for o in centers):
            centers.append(c)
            r = rng.uniform(6, 9)
            truth[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r] = 1
    pred = truth.copy()
    placed = 0
    while placed < n_specks:
        r0, c0 = rng.integers(1, size - 5, 2)
        h, w = int(rng.integers(2, 4)), int(rng.integers(3, 5))
        if not truth[max(0, r0 - 2):r0 + h + 2, max(0, c0 - 2):c0 + w + 2].any() and \
                not pred[max(0, r0 - 2):r0 + h + 2, max(0, c0 - 2):c0 + w + 2].any():
            pred[r0:r0 + h, c0:c0 + w] = 1
            placed += 1
    return pred, truth, n_discs


def test_the_chosen_minimum_area_beats_the_default_on_specks():
    rng = np.random.default_rng(3)
    pairs = [speckled(rng, 5, 4) for _ in range(3)]
    choice = choose_min_area([(p, t) for p, t, _ in pairs], split=[1])
    # by hand: the default (4 px) keeps all 12 specks -> |27 - 15| / 15; a minimum between the
    # largest speck (12 px) and the smallest disc (> 100 px) keeps exactly the 15 discs
    n_true = sum(n for *_, n in pairs)
    assert choice["default_min_area_px"] == DEFAULT_MIN_AREA_PX
    assert choice["default_count_error"] == pytest.approx(12 / n_true)
    assert 12 < choice["min_area_px"] <= 113 // 2
    assert choice["count_error"] == 0 < choice["default_count_error"]
    assert abs(choice["size_error"]) < 1e-9 < choice["default_size_error"]
    # a prediction without specks scores every candidate alike (1 px to half the median disc,
    # 113 // 2): the choice keeps a margin from both ends, about sqrt(1 · 56) ≈ 7.5 px
    clean = choose_min_area([(t, t) for _, t, _ in pairs], split=[1])
    assert 5 <= clean["min_area_px"] <= 11 and clean["count_error"] == 0


def _discs(mask, rng, n, r, value, size):
    yy, xx = np.mgrid[:size, :size]
    placed = 0
    while placed < n:
        cy, cx = rng.integers(r + 3, size - r - 3, 2)
        box = mask[cy - r - 3:cy + r + 4, cx - r - 3:cx + r + 4]
        if not box.any():
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value
            placed += 1


def test_each_class_gets_the_minimum_area_its_objects_need():
    # class 1: small cavities of radius 3 (29 px); class 2: loops of radius 12 (~450 px), whose
    # prediction has extra fragments of radius 5 (81 px), larger than the cavities: no single
    # minimum area both keeps the cavities and drops the fragments; one per class does
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(3):
        truth = np.zeros((160, 160), np.uint8)
        _discs(truth, rng, 4, 3, 1, 160)
        _discs(truth, rng, 3, 12, 2, 160)
        pred = truth.copy()
        _discs(pred, rng, 3, 5, 2, 160)
        pairs.append((pred, truth))
    choice = choose_min_area(pairs, split=[1, 2])
    least = {int(c): a for c, a in choice["min_area_px_by_class"].items()}
    assert least[1] <= 29 and 81 < least[2] <= 453 // 2
    assert choice["count_error"] == 0 and choice["size_error"] < 1e-9
    assert choice["default_count_error"] == pytest.approx(9 / 21)


def test_a_bad_postprocess_file_names_itself(tmp_path):
    assert read_postprocess(tmp_path) == {}
    (tmp_path / "postprocess.json").write_text('{"min_area_px": 0}')
    with pytest.raises(ParseError, match="postprocess.json.*min_area_px an integer >= 1"):
        read_postprocess(tmp_path)
    (tmp_path / "postprocess.json").write_text('{"min_area_px": 4, "min_area_px_by_class": {"1": -3}}')
    with pytest.raises(ParseError, match="postprocess.json.*class index -> an integer >= 1"):
        read_postprocess(tmp_path)


def test_training_stores_the_choice_and_prediction_uses_it(tmp_path):
    pytest.importorskip("torch")
    from defectlab.dl.model_io import load_model
    from defectlab.dl.train import train_unet

    from defectlab.imaging.io import write_image
    from defectlab.model import Dataset, ImageSource, Item
    from defectlab.preparation.synthetic import SYNTHETIC_LABELS, SyntheticConfig, synthetic_item

    rng = np.random.default_rng(0)
    cfg = SyntheticConfig(size_hw=(64, 64), n_cavities=3, n_loops=0, n_precipitates=0, n_lines=0,
                          cavity_radius_px=(4, 10))
    items = []
    for k in range(2):
        image, item = synthetic_item(rng, cfg, name=f"img_{k}.png")
        write_image(tmp_path / f"img_{k}.png", image)
        items.append(Item(item.name, item.size_hw, item.shapes, image=ImageSource(tmp_path / f"img_{k}.png")))
    ds = Dataset(tuple(SYNTHETIC_LABELS[:1]), tuple(items), source=str(tmp_path))
    tiny = dict(base_filters=8, depth=2, bottleneck_dilations=(1,), tile_size=64, progress=False, plot=False)
    result = train_unet(ds, tmp_path / "model", epochs=2, min_steps=20, batch_size=2, lr=1e-2, val_split=0,
                        seed=0, **tiny)
    chosen = json.loads((tmp_path / "model" / "postprocess.json").read_text())
    assert chosen["n_images"] == 2 and chosen["n_labeled"] > 0 and chosen["min_area_px"] >= 1
    assert chosen["count_error"] + chosen["size_error"] <= chosen["default_count_error"] + chosen["default_size_error"]
    model = load_model(tmp_path / "model")
    assert model.postprocess["min_area_px"] == chosen["min_area_px"] == result.model.postprocess["min_area_px"]
    image = ds.items[0].image.path
    n = len(model.predict(image).instance_classes)
    assert set(chosen["min_area_px_by_class"]) == {"1"}
    model.postprocess = {"min_area_px": 1, "min_area_px_by_class": {"1": 10 ** 6}}  # the model's choice is used ...
    assert len(model.predict(image).instance_classes) == 0
    assert len(model.predict(image, min_area_px=1).instance_classes) >= n > 0  # ... unless one is given
