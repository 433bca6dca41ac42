"""Predictions against labels on hand-computable cases (perfect, missing, extra, shifted, split,
merged), with a brute-force second implementation of IoU and matching, and COCO AP worked out by
hand from COCO's 101-point interpolation and cross-checked against COCOeval built here."""

from __future__ import annotations

import contextlib
import io
import itertools
import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import defectlab
from defectlab.errors import DatasetError
from defectlab.measurement import crop_iou, evaluate, iou_matrix, match_instances
from defectlab.model import Box, Dataset, Ellipse, Item, Label, Mask, Polygon
from defectlab.raster import Crop

SIZE = (200, 240)


def grid(n=20, r=6.0, label="cavity", scale=1.0, **attrs):
    """``n`` discs of radius r on a 40 px grid (5 per row), never touching each other or the border."""
    return [Ellipse(label=label, cx=20.3 + 40 * (i % 6), cy=20.6 + 40 * (i // 6), rx=r * scale, ry=r * scale,
                    attributes=attrs) for i in range(n)]


def ds(shapes, labels=("cavity",), name="a.png", size=SIZE):
    return Dataset(tuple(Label(n) for n in labels), (Item(name, size, tuple(shapes)),))


def test_perfect_predictions():
    truth = ds(grid() + [Box(label="loop", xyxy=(5, 170, 60, 190))], labels=("cavity", "loop"))
    e = evaluate(truth, truth, pixel_size=1.0)
    o = e.overall
    assert (o["precision"], o["recall"], o["f1"], o["pixel_iou"], o["pixel_dice"]) == (1, 1, 1, 1, 1)
    assert (o["mAP"], o["AP50"], o["AP75"]) == (1.0, 1.0, 1.0)
    assert (o["tp"], o["fp"], o["fn"]) == (21, 0, 0)
    for row in e.per_class.rows():
        assert row["size_mean_error_percent"] == 0 and row["density_error_percent"] == 0 and row["ks_pvalue"] == 1
    assert np.all(e.matches["iou"] == 1.0)


def test_missing_quarter_of_the_defects():
    truth = grid(20)
    e = evaluate(ds(truth[5:]), ds(truth), pixel_size=1.0)
    o = e.overall
    assert (o["tp"], o["fp"], o["fn"]) == (15, 0, 5)
    assert o["precision"] == 1.0 and o["recall"] == 0.75 and o["f1"] == pytest.approx(30 / 35)
    # COCO: 101 recall points 0, 0.01, …, 1; precision is 1 up to recall 0.75 (76 points), then 0.
    assert o["mAP"] == pytest.approx(76 / 101) and o["AP50"] == pytest.approx(76 / 101)
    row = e.per_class.rows()[0]
    assert row["density_error_percent"] == pytest.approx(-25.0)


@pytest.mark.parametrize("extra_score, ap", [(0.1, 1.0), (0.99, 20 / 24)])
def test_extra_predictions(extra_score, ap):
    """4 false positives ranked last cost no AP; ranked first, precision at every recall is at
    most 20/24 (reached at the end, and COCO takes the best precision at higher recall)."""
    truth = grid(20)
    pred = grid(20, score="0.9") + [Ellipse(label="cavity", cx=20 + 40 * k, cy=185, rx=5, ry=5,
                                            attributes={"score": str(extra_score)}) for k in range(4)]
    e = evaluate(ds(pred), ds(truth), pixel_size=1.0)
    o = e.overall
    assert (o["tp"], o["fp"], o["fn"]) == (20, 4, 0)
    assert o["precision"] == pytest.approx(20 / 24) and o["recall"] == 1.0
    assert o["mAP"] == pytest.approx(ap)


def test_shifted_defects_match_only_when_close():
    truth = grid(10, r=8)
    near = [s.replace(cx=s.cx + 2) for s in truth[:7]]
    far = [s.replace(cx=s.cx + 9) for s in truth[7:]]
    e = evaluate(ds(near + far), ds(truth), pixel_size=1.0)
    o = e.overall
    assert (o["tp"], o["fp"], o["fn"]) == (7, 3, 3)
    assert o["precision"] == pytest.approx(0.7) and o["recall"] == pytest.approx(0.7)

    def disc_iou(r, d):  # two discs of radius r whose centers are d apart: lens / (2πr² − lens)
        lens = 2 * r * r * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r * r - d * d)
        return lens / (2 * math.pi * r * r - lens)

    assert disc_iou(8, 2) > 0.5 > disc_iou(8, 9) > 0.15  # 0.726 and 0.193
    assert np.mean(e.matches["iou"]) == pytest.approx(disc_iou(8, 2), abs=0.03)
    # With the threshold below the far pairs' IoU they match too.
    assert evaluate(ds(near + far), ds(truth), iou=0.15, pixel_size=1.0).overall["tp"] == 10


def test_split_and_merged_defects():
    truth = [Box(label="cavity", xyxy=(10, 10, 40, 20)),  # split into three 10×10 thirds: IoU 1/3 each
             Box(label="cavity", xyxy=(60, 10, 70, 20)), Box(label="cavity", xyxy=(72, 10, 82, 20)),  # merged: 100/220
             Box(label="cavity", xyxy=(100, 10, 120, 20)), Box(label="cavity", xyxy=(120, 10, 125, 20))]  # 200/250
    pred = [Box(label="cavity", xyxy=(10 + 10 * k, 10, 20 + 10 * k, 20)) for k in range(3)] + [
        Box(label="cavity", xyxy=(60, 10, 82, 20)), Box(label="cavity", xyxy=(100, 10, 125, 20))]
    e = evaluate(ds(pred), ds(truth), pixel_size=1.0)
    o = e.overall
    # split: 0 TP, 3 FP, 1 FN; merged pair: 0 TP, 1 FP, 2 FN; big + small merged: 1 TP (IoU 0.8), 0 FP, 1 FN.
    assert (o["tp"], o["fp"], o["fn"]) == (1, 4, 4)
    assert e.matches["iou"].tolist() == [pytest.approx(0.8)]
    # Pixels: labels 300 + 200 + 250 = 750, predictions 300 + 220 + 250 = 770 (the merged box fills
    # the 2 px gap), all label pixels predicted.
    assert o["pixel_iou"] == pytest.approx(750 / 770)
    assert o["pixel_dice"] == pytest.approx(2 * 750 / (750 + 770))


def test_mask_predictions_of_instance_images():
    """Predictions read from instance mask images are Mask shapes (bitmap + left/top), often
    labeled "object": the same pixels as the labels score perfectly."""
    truth = grid(12, r=7)
    masks = []
    for s in truth:
        crop = defectlab.rasterize(s, SIZE).tight()
        masks.append(Mask(label="object", bitmap=crop.bitmap, left=crop.x0, top=crop.y0, attributes={"score": "0.8"}))
    e = evaluate(ds(masks, labels=("object",)), ds(truth), pixel_size=1.0)
    o = e.overall
    assert (o["tp"], o["fp"], o["fn"], o["pixel_iou"], o["mAP"]) == (12, 0, 0, 1.0, 1.0)
    assert e.per_class.rows()[0]["size_mean_error_percent"] == 0.0


def test_missing_image_counts_every_label_as_missed():
    truth = Dataset((Label("cavity"),), (Item("a.png", SIZE, tuple(grid(4))), Item("b.png", SIZE, tuple(grid(6)))))
    pred = Dataset((Label("cavity"),), (Item("a.png", SIZE, tuple(grid(4))),))
    e = evaluate(pred, truth, pixel_size=1.0)
    assert (e.overall["tp"], e.overall["fn"]) == (4, 6)
    assert any(n.code == "no-prediction" and n.item == "b.png" for n in e.notes)


def test_images_pair_by_stem_and_labels_by_the_only_name():
    truth = ds(grid(5), name="Train/img_1.png")
    pred = ds(grid(5, label="object"), labels=("object",), name="img_1.tif")
    e = evaluate(pred, truth, pixel_size=1.0)
    assert e.overall["tp"] == 5
    assert any(n.code == "label-mapped" for n in e.notes)


def test_unknown_prediction_label_and_size_mismatch_are_errors():
    truth = ds(grid(2) + [Box(label="loop", xyxy=(0, 0, 5, 5))], labels=("cavity", "loop"))
    with pytest.raises(DatasetError, match="predicted label 'void' is not a label of the ground truth"):
        evaluate(ds(grid(2, label="void"), labels=("void",)), truth)
    with pytest.raises(DatasetError, match="expected the same image size"):
        evaluate(ds(grid(2), size=(100, 100)), ds(grid(2)))
    with pytest.raises(ValueError, match=r"iou: expected a number in \(0, 1\]"):
        evaluate(truth, truth, iou=0.0)


def test_size_errors_of_grown_predictions():
    truth = grid(20, r=10)
    e = evaluate(ds(grid(20, r=10, scale=1.1)), ds(truth), pixel_size="0.5nm", thickness="100nm")
    row = e.per_class.rows()[0]
    assert row["size_mean_error_percent"] == pytest.approx(10.0, abs=0.5)
    assert row["density_error_percent"] == 0.0
    # Swelling scales as D³ (the cavities are a small fraction of the volume): +33 %.
    assert row["swelling_percent_pred"] / row["swelling_percent_true"] == pytest.approx(1.1**3, rel=0.02)
    assert row["swelling_difference_percent_points"] == pytest.approx(
        row["swelling_percent_pred"] - row["swelling_percent_true"])
    assert row["ks_pvalue"] < 1e-3  # every predicted size is larger: the distributions differ


# ---------------------------------------------------------------------------------------------
# IoU and matching against brute force


def random_crops(rng, n, size_hw=(60, 60)):
    out = []
    for _ in range(n):
        e = Ellipse(label="c", cx=rng.uniform(5, 55), cy=rng.uniform(5, 55), rx=rng.uniform(3, 12),
                    ry=rng.uniform(3, 12), rotation_deg=rng.uniform(0, 180))
        out.append(defectlab.rasterize(e, size_hw).tight())
    return out


def brute_iou(a: Crop, b: Crop, size_hw=(60, 60)) -> float:
    ma, mb = a.to_full(size_hw), b.to_full(size_hw)
    union = np.count_nonzero(ma | mb)
    return np.count_nonzero(ma & mb) / union if union else 0.0


def brute_match(iou: np.ndarray, t: float) -> tuple[int, float]:
    """Best (number of pairs ≥ t, their total IoU) over every one-to-one partial assignment."""
    p, q = iou.shape
    best = (0, 0.0)
    for k in range(min(p, q) + 1):
        for rows in itertools.combinations(range(p), k):
            for cols in itertools.permutations(range(q), k):
                vals = [iou[r, c] for r, c in zip(rows, cols)]
                if all(v >= t for v in vals):
                    cand = (k, sum(vals))
                    if cand[0] > best[0] or (cand[0] == best[0] and cand[1] > best[1] + 1e-12):
                        best = cand
    return best


@pytest.mark.parametrize("seed", range(6))
def test_iou_matrix_and_matching_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    pred, true = random_crops(rng, int(rng.integers(1, 6))), random_crops(rng, int(rng.integers(1, 6)))
    m = iou_matrix(pred, true)
    expected = np.array([[brute_iou(a, b) for b in true] for a in pred])
    np.testing.assert_allclose(m, expected, rtol=0, atol=1e-12)
    for t in (0.1, 0.3, 0.5):
        pairs = match_instances(m, t)
        assert len({i for i, _, _ in pairs}) == len(pairs) == len({j for _, j, _ in pairs})
        count, total = brute_match(m, t)
        assert len(pairs) == count
        assert sum(v for _, _, v in pairs) == pytest.approx(total)


def test_matching_prefers_more_matches_over_one_big_iou():
    iou = np.array([[0.95, 0.6], [0.55, 0.0]])
    assert sorted((i, j) for i, j, _ in match_instances(iou, 0.5)) == [(0, 1), (1, 0)]


def test_crop_iou_of_offset_squares():
    a = Crop(0, 0, np.ones((4, 4), bool))
    b = Crop(2, 2, np.ones((4, 4), bool))
    assert crop_iou(a, b) == pytest.approx(4 / 28)
    assert crop_iou(a, Crop(10, 10, np.ones((2, 2), bool))) == 0.0


# ---------------------------------------------------------------------------------------------
# COCO mAP cross-check


def coco_map_here(pred_shapes, true_shapes, scores, size_hw):
    """COCOeval on RLEs built here from full-image masks (another path than the library's)."""
    cats = {"cavity": 1, "loop": 2}

    def ann(i, shape, score=None):
        full = np.asfortranarray(defectlab.rasterize(shape, size_hw).to_full(size_hw).astype(np.uint8))
        rle = mask_utils.encode(full)
        a = {"id": i, "image_id": 1, "category_id": cats[shape.label], "segmentation": rle,
             "area": float(mask_utils.area(rle)), "bbox": list(mask_utils.toBbox(rle)), "iscrowd": 0}
        if score is not None:
            a["score"] = score
        return a

    gt = COCO()
    gt.dataset = {"images": [{"id": 1, "height": size_hw[0], "width": size_hw[1]}],
                  "annotations": [ann(i + 1, s) for i, s in enumerate(true_shapes)],
                  "categories": [{"id": v, "name": k} for k, v in cats.items()]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([ann(i + 1, s, sc) for i, (s, sc) in enumerate(zip(pred_shapes, scores))])
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0], ev.stats[1]


def test_map_matches_cocoeval_built_independently():
    rng = np.random.default_rng(7)
    truth = grid(12, r=7) + [Polygon(label="loop", points_xy=[(5, 150), (60, 150), (60, 175), (20, 190)])]
    pred = []
    for s in truth:
        if rng.uniform() < 0.2:
            continue  # missed
        if isinstance(s, Ellipse):
            s = s.replace(cx=s.cx + rng.uniform(-3, 3), cy=s.cy + rng.uniform(-3, 3), rx=s.rx * rng.uniform(0.8, 1.2))
        pred.append(s)
    pred.append(Ellipse(label="cavity", cx=120, cy=185, rx=6, ry=6))  # a false positive
    scores = rng.uniform(0.05, 1.0, len(pred)).round(3)
    pred = [s.replace(attributes={"score": str(sc)}) for s, sc in zip(pred, scores)]
    e = evaluate(ds(pred, labels=("cavity", "loop")), ds(truth, labels=("cavity", "loop")), pixel_size=1.0)
    m, m50 = coco_map_here(pred, truth, [float(s) for s in scores], SIZE)
    assert e.overall["mAP"] == pytest.approx(m, abs=1e-12)
    assert e.overall["AP50"] == pytest.approx(m50, abs=1e-12)
    assert 0 < m < 1


def test_map_counts_more_than_100_predictions_per_image():
    """COCO's default maxDets=100 would drop predictions 101…; ours raises it to the image's count."""
    shapes = [Ellipse(label="cavity", cx=6 + 12 * (i % 20), cy=6 + 12 * (i // 20), rx=4, ry=4) for i in range(150)]
    e = evaluate(ds(shapes), ds(shapes), pixel_size=1.0)
    assert e.overall["mAP"] == 1.0 and e.overall["coco_max_dets"] == 150


def test_nothing_to_find():
    truth = ds([])
    e = evaluate(ds(grid(2)), truth, pixel_size=1.0)
    assert (e.overall["tp"], e.overall["fp"], e.overall["fn"], e.overall["precision"]) == (0, 2, 0, 0.0)
    assert math.isnan(e.overall["recall"]) and math.isnan(e.overall["mAP"])  # no labels: recall and AP undefined
