"""The star-convex instance model: targets under augmentation, loss, tiled candidates and NMS,
threshold tuning, outputs, the model folder, training and the command line.

Independent expectations: targets recomputed from transformed masks; analytic discs rendered
into images; a stand-in net whose receptive field is known (a Gaussian blur), so tiled and
whole-image predictions must agree exactly away from the image border; pycocotools and
defectlab's own readers for the written pre-labels.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from defectlab.dl.stardist.data import crop_batch, load_star_samples, ray_permutation  # noqa: E402
from defectlab.dl.stardist.model import THRESHOLDS_FILE, load_star_model  # noqa: E402
from defectlab.dl.stardist.net import StarNet, StarNetConfig  # noqa: E402
from defectlab.dl.stardist.outputs import fit_ellipse, star_item  # noqa: E402
from defectlab.dl.stardist.predict import assemble, predict_stars, star_candidates  # noqa: E402
from defectlab.dl.stardist.thresholds import match_stars, optimize_thresholds  # noqa: E402
from defectlab.dl.stardist.train import star_loss  # noqa: E402
from defectlab.dl.train import train  # noqa: E402
from defectlab.errors import DefectlabError, ParseError  # noqa: E402
from defectlab.model import Dataset, Ellipse, ImageSource, Item, Label, Polygon, Polyline  # noqa: E402
from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset  # noqa: E402
from defectlab.raster import Crop, ellipse_crop, ellipse_polygon, polygon_crop  # noqa: E402
from defectlab.raster.stars import star_targets  # noqa: E402

K = 16


# ---------------------------------------------------------------------------------------------
# Targets, augmentation, loss


@pytest.mark.parametrize("flip_x", [False, True])
@pytest.mark.parametrize("flip_y", [False, True])
@pytest.mark.parametrize("rot", [0, 1, 2, 3])
def test_ray_permutation_matches_targets_of_transformed_masks(flip_x: bool, flip_y: bool, rot: int) -> None:
    size = (40, 40)
    crops = [ellipse_crop(15.3, 18.2, 9, 5, 25, size), ellipse_crop(26, 22, 7, 6, 70, size)]
    t = star_targets(crops, size, n_rays=32)

    def tr(a: np.ndarray) -> np.ndarray:
        if flip_x:
            a = a[:, ::-1]
        if flip_y:
            a = a[::-1]
        return np.rot90(a, rot, axes=(0, 1))

    moved = star_targets([Crop(0, 0, tr(c.to_full(size)).copy()) for c in crops], size, n_rays=32)
    permuted = tr(t.dist)[..., ray_permutation(32, flip_x=flip_x, flip_y=flip_y, rot90=rot)]
    assert np.abs(permuted - moved.dist).max() < 1e-4  # float32 rounding only


def test_crop_batch_shapes_and_grid() -> None:
    size = (48, 64)
    crops = [ellipse_crop(20, 20, 8, 8, 0, size)]
    t = star_targets(crops, size, n_rays=K)
    from defectlab.dl.stardist.data import StarSample

    s = StarSample("a", np.random.default_rng(0).random(size, dtype=np.float32), t.prob, t.dist.astype(np.float16),
                   (t.owner >= 0).astype(np.uint8), crops, np.array([1], np.uint8))
    x, p, d, c = crop_batch([s], np.array([1.0]), (32, 32), 3, 2, np.random.default_rng(1), True)
    assert x.shape == (3, 1, 32, 32) and p.shape == (3, 16, 16) and d.shape == (3, K, 16, 16) and c.shape == (3, 16, 16)
    assert c.dtype == np.int64 and p.max() <= 1 and (np.moveaxis(d, 1, -1)[c == 0] == 0).all()
    # without augmentation, the targets are the image's at every second pixel of the crop
    x, p, d, c = crop_batch([s], np.array([1.0]), (48, 64), 1, 2, np.random.default_rng(1), False)
    assert np.array_equal(p[0], t.prob[::2, ::2]) and np.allclose(d[0], np.moveaxis(t.dist[::2, ::2], -1, 0), atol=0.05)


def test_loss_parts() -> None:
    rng = np.random.default_rng(0)
    prob = torch.from_numpy(rng.random((2, 8, 8), dtype=np.float32))
    dist = torch.from_numpy(rng.random((2, K, 8, 8), dtype=np.float32) * 10)
    cls = torch.from_numpy(rng.integers(0, 3, (2, 8, 8)))
    logits = torch.from_numpy(rng.normal(size=(2, 1, 8, 8)).astype(np.float32))
    out = torch.cat([logits, dist + 2.0, torch.zeros(2, 3, 8, 8)], dim=1)
    total, parts = star_loss(out, prob, dist, cls, lambda_dist=0.5, lambda_class=2.0)
    z, y = logits[:, 0].numpy(), prob.numpy()
    bce = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    assert parts["prob"] == pytest.approx(bce, rel=1e-5)
    assert parts["dist"] == pytest.approx(2.0, rel=1e-4)  # every ray off by 2 px, whatever the weights
    assert parts["class"] == pytest.approx(math.log(3), rel=1e-5)  # uniform over 3 classes
    assert float(total) == pytest.approx(bce + 0.5 * 2.0 + 2.0 * math.log(3), rel=1e-4)


def test_net_config_round_trip_and_checks() -> None:
    cfg = StarNetConfig(n_rays=16, n_classes=3, grid=2, base_filters=4, depth=2, head_filters=8)
    assert StarNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert StarNet(cfg)(torch.zeros(2, 1, 16, 32)).shape == (2, 20, 8, 16)
    with pytest.raises(ValueError, match="multiple of 4"):
        StarNetConfig(n_rays=30)
    with pytest.raises(ValueError, match="grid"):
        StarNetConfig(grid=3)
    with pytest.raises(ValueError, match="unknown key"):
        StarNetConfig.from_dict({"rays": 32})
    with pytest.raises(ValueError, match="multiples of 8"):
        StarNet(cfg)(torch.zeros(1, 1, 20, 32))


def test_engines_agree() -> None:
    """ONNX Runtime runs the same float32 arithmetic in another order. Measured on the
    development machine (three random nets): outputs agree to 6e-8; 1e-4 allowed for other CPUs."""
    from defectlab.dl.stardist.net import star_forward

    torch.manual_seed(0)
    net = StarNet(StarNetConfig(n_rays=K, n_classes=3, base_filters=4, depth=2, head_filters=8)).eval()
    x = np.random.default_rng(0).random((2, 1, 32, 48), dtype=np.float32)
    a = star_forward(net, torch.device("cpu"), engine="torch")(x)
    b = star_forward(net, torch.device("cpu"), engine="onnxruntime")(x)
    assert a.shape == b.shape == (2, 1 + K + 3, 16, 24)
    assert np.abs(a - b).max() < 1e-4
    assert np.allclose(a[:, 1 + K:].sum(axis=1), 1.0, atol=1e-5) and (a[:, 1:1 + K] >= 0).all()


# ---------------------------------------------------------------------------------------------
# A stand-in net with a known receptive field: tiles, seams, NMS


DISC_R = 7.0


def blur_forward(grid: int, n_classes: int = 2):
    """Probability: the normalized image blurred (sigma 2 px, truncated at 8 px: the receptive
    field), as for bright discs on black; distances: the discs' radius; class 1 everywhere."""
    from scipy import ndimage

    def forward(batch: np.ndarray) -> np.ndarray:
        b, _, h, w = batch.shape
        out = np.zeros((b, 1 + K + n_classes, h // grid, w // grid), np.float32)
        for i in range(b):
            blurred = ndimage.gaussian_filter(batch[i, 0].astype(np.float64), 2.0, truncate=4.0, mode="constant")
            out[i, 0] = blurred[::grid, ::grid] / 0.8
        out[:, 1:1 + K] = DISC_R
        out[:, 1 + K + 1] = 1.0
        return out

    return forward


def disc_image(centers: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[:size_hw[0], :size_hw[1]] + 0.5
    img = np.zeros(size_hw)
    for cx, cy in centers:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= DISC_R ** 2] = 1.0
    return img


def test_tiled_candidates_equal_whole_image_and_no_seam_artifacts() -> None:
    rng = np.random.default_rng(0)
    size = (300, 420)
    # discs right on the seams of 128 px tiles at stride 64 (cores meet at 96, 160, …), and
    # random ones, none within 20 px of another (the stand-in would merge their blurs)
    centers = [[96.5, 150.3], [160.2, 96.5], [224.5, 224.5]]
    while len(centers) < 40:
        c = rng.uniform([15, 15], [405, 285])
        if min(math.dist(c, o) for o in centers) > 20:
            centers.append(list(c))
    centers = np.array(centers)
    image = disc_image(centers, size)
    kw = dict(n_rays=K, n_classes=2, grid=2, multiple=8, prob_min=0.3)
    whole = star_candidates(blur_forward(2), image, tile=512, overlap=0, **kw)
    tiled = star_candidates(blur_forward(2), image, tile=128, overlap=64, **kw)
    # away from the image border (the stand-in's receptive field: 8 px) the same candidates
    def inner(c):
        keep = np.all((c.points_xy > 10) & (c.points_xy < np.array([size[1], size[0]]) - 10), axis=1)
        order = np.lexsort((c.points_xy[keep, 0], c.points_xy[keep, 1]))
        return c.points_xy[keep][order], c.prob[keep][order]
    (pw, qw), (pt, qt) = inner(whole), inner(tiled)
    assert np.array_equal(pw, pt)
    assert np.allclose(qw, qt, atol=1e-6)
    # every disc is found once: none cut, none doubled at a seam
    pred = assemble(tiled, {1: "cavity"}, prob_thresh=0.5, nms_thresh=0.4)
    truth = [ellipse_crop(cx, cy, DISC_R, DISC_R, 0, size) for cx, cy in centers]
    m = match_stars(pred.points_xy, pred.distances, truth, size, iou=0.7)
    assert m == {"tp": len(centers), "fp": 0, "fn": 0}


def test_overlapping_discs_both_kept_their_overlap_noted() -> None:
    size = (64, 96)
    centers = np.array([[40.0, 32.0], [50.0, 32.0]])  # 10 px apart, radius 7: they overlap
    image = disc_image(centers, size)
    pred = predict_stars(blur_forward(1), image, n_rays=K, n_classes=2, grid=1, multiple=8, classes={1: "cavity"},
                         prob_thresh=0.5, nms_thresh=0.4)
    assert pred.n_stars == 2 and pred.overlap_px > 0
    assert any("two or more polygons" in n for n in pred.notes)
    # the instance image keeps the surer one on the shared pixels; the polygons keep both
    polys = pred.polygons()
    areas = [polygon_crop(p, size).area for p in polys]
    painted = [int((pred.instances == i + 1).sum()) for i in range(2)]
    assert painted[0] == areas[0] and painted[1] == areas[1] - pred.overlap_px


def test_line_classes_come_from_the_class_head() -> None:
    size = (48, 48)

    def forward(batch: np.ndarray) -> np.ndarray:
        b, _, h, w = batch.shape
        out = np.zeros((b, 1 + K + 3, h, w), np.float32)
        out[:, 1 + K] = 1.0  # background ...
        out[:, 1 + K, 20:23, 5:40] = 0.0
        out[:, 1 + K + 2, 20:23, 5:40] = 1.0  # ... but a line of class 2
        return out

    pred = predict_stars(forward, np.zeros(size), n_rays=K, n_classes=3, grid=1, multiple=8,
                         classes={1: "cavity", 2: "dislocation line"}, line_classes=[2])
    assert pred.n_stars == 0 and pred.n_instances == 1 and pred.instance_classes.tolist() == [2]
    assert int((pred.semantic == 2).sum()) == 3 * 35


# ---------------------------------------------------------------------------------------------
# Thresholds


def test_optimize_thresholds_finds_the_separating_probability() -> None:
    from defectlab.dl.stardist.predict import Candidates

    size = (64, 128)
    true_c = np.array([[20.5, 20.5], [60.5, 30.5], [100.5, 40.5]])
    fake_c = np.array([[40.5, 50.5], [90.5, 12.5]])
    pts = np.vstack([true_c, fake_c])
    prob = np.array([0.8, 0.75, 0.85, 0.35, 0.3], np.float32)
    dist = np.full((5, K), 6.0, np.float32)
    cand = Candidates(pts, prob, dist, np.tile([[0, 1.0]], (5, 1)).astype(np.float32),
                      np.zeros((64, 128), np.uint8), np.zeros((64, 128), np.uint8), size, 1)
    truth = [ellipse_crop(x, y, 6, 6, 0, size) for x, y in true_c]
    found = optimize_thresholds([cand], [truth])
    assert 0.35 <= found["prob"] < 0.75 and found["f1"] == 1.0
    assert found["f1_default"] == 1.0 and found["n_true"] == 3


def test_match_stars_counts_overlapping_truth() -> None:
    size = (40, 60)
    truth = [ellipse_crop(20, 20, 8, 8, 0, size), ellipse_crop(30, 20, 8, 8, 0, size)]  # overlapping labels
    pts = np.array([[20.5, 20.5], [30.5, 20.5], [50.5, 30.5]])
    m = match_stars(pts, np.full((3, 32), 8.0), truth, size)
    assert m == {"tp": 2, "fp": 1, "fn": 0}


# ---------------------------------------------------------------------------------------------
# Outputs


def test_fit_ellipse_recovers_a_rotated_ellipse() -> None:
    for rot in (0.0, 17.0, 95.0, 163.0):
        e = fit_ellipse(ellipse_polygon(Ellipse(label="x", cx=31.2, cy=14.7, rx=9.0, ry=4.0, rotation_deg=rot)))
        assert (e.cx, e.cy) == pytest.approx((31.2, 14.7), abs=1e-6)
        assert (e.rx, e.ry) == pytest.approx((9.0, 4.0), rel=1e-3)
        assert e.rotation_deg == pytest.approx(rot, abs=0.05)


def test_star_item_polygons_ellipses_and_overlaps() -> None:
    from defectlab.dl.model_io import ClassInfo

    size = (64, 96)
    image = disc_image(np.array([[40.0, 32.0], [50.0, 32.0]]), size)
    pred = predict_stars(blur_forward(1), image, n_rays=K, n_classes=2, grid=1, multiple=8, classes={1: "cavity"})
    item, _ = star_item(pred, "a.png", [ClassInfo(1, "cavity", type="ellipse")], item_id=3)
    assert [s.kind for s in item.shapes] == ["ellipse", "ellipse"] and item.id == 3
    assert item.shapes[0].z_order > item.shapes[1].z_order  # the surer on top
    for s in item.shapes:  # a 16-gon of radius 7 fitted: close to the disc
        assert s.rx == pytest.approx(DISC_R, rel=0.06) and s.ry == pytest.approx(DISC_R, rel=0.06)
    item, _ = star_item(pred, "a.png", [ClassInfo(1, "cavity", type="polygon")])
    assert [s.kind for s in item.shapes] == ["polygon", "polygon"]
    assert np.allclose(item.shapes[0].points_xy, np.round(pred.polygons()[0], 2))


def test_measure_keeps_overlapping_polygons() -> None:
    """The instance image loses the overlap; measurements from the polygons keep both defects whole."""
    import defectlab
    from defectlab.dl.model_io import ClassInfo

    size = (64, 96)
    image = disc_image(np.array([[40.0, 32.0], [50.0, 32.0]]), size)
    pred = predict_stars(blur_forward(1), image, n_rays=K, n_classes=2, grid=1, multiple=8, classes={1: "cavity"})
    item, _ = star_item(pred, "a.png", [ClassInfo(1, "cavity", type="polygon")])
    m = defectlab.measure(Dataset((Label("cavity"),), (item,)), progress=False, include_border=True)
    areas = sorted(np.asarray(m.defects["area_px"], float).tolist())
    want = sorted(float(polygon_crop(p, size).area) for p in pred.polygons())
    assert areas == want and pred.overlap_px > 0


# ---------------------------------------------------------------------------------------------
# Data, training, the model folder, the command line


TINY = dict(epochs=1, steps_per_epoch=2, batch_size=2, tile_size=64, base_filters=4, depth=2, head_filters=8,
            n_rays=K, device="cpu", progress=False, plot=False)


def train_stardist(data, out, **changes):
    """The one training loop, for the star-convex model."""
    return train("stardist", data, out, **changes)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stardist") / "export"
    make_synthetic_dataset(out, n_images=3, config=SyntheticConfig.bubbles((64, 64), n_loops=1), seed=3)
    return out


@pytest.fixture(scope="module")
def trained(export: Path, tmp_path_factory: pytest.TempPathFactory):
    return train_stardist(export / "annotations.xml", tmp_path_factory.mktemp("m") / "model", **TINY)


def test_training_writes_the_model_folder(trained) -> None:
    files = sorted(p.name for p in trained.path.iterdir())
    assert files == ["checkpoint.pt", "config.json", "history.json", "reference.json", THRESHOLDS_FILE, "weights.pt"]
    cfg = json.loads((trained.path / "config.json").read_text())
    assert cfg["architecture"]["name"] == "stardist" and cfg["architecture"]["params"]["n_rays"] == K
    assert [c["name"] for c in cfg["classes"]] == ["background", "cavity", "loop", "precipitate", "dislocation line"]
    assert cfg["classes"][4]["type"] == "polyline"
    th = json.loads((trained.path / THRESHOLDS_FILE).read_text())
    assert th["tuned"] is True and 0 < th["prob"] < 1 and 0 < th["nms"] < 1
    assert len(trained.history) == 1 and "val_f1" in trained.history[0]
    assert any("lines are not star-convex" in n for n in trained.notes)


def test_model_folder_round_trips(trained, export: Path) -> None:
    from defectlab.imaging.io import read_image

    loaded = load_star_model(trained.path, device="cpu")
    assert loaded.thresholds["prob"] == trained.model.thresholds["prob"]
    assert loaded.config.classes == trained.model.config.classes
    for a, b in zip(loaded.net.state_dict().values(), trained.model.net.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    image = read_image(next((export / "images").iterdir()))
    p1 = trained.model.to("cpu").predict_star(image, prob_thresh=0.0)
    p2 = loaded.predict_star(image, prob_thresh=0.0)
    assert np.array_equal(p1.points_xy, p2.points_xy)
    assert np.allclose(p1.distances, p2.distances, atol=1e-5)  # the same net, the same CPU


def test_load_errors(trained, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained.path, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["architecture"]["params"]["n_rays"] = 30
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ParseError, match="multiple of 4"):
        load_star_model(bad)
    cfg["architecture"]["params"]["n_rays"] = 32
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DefectlabError, match="weights"):
        load_star_model(bad)
    cfg["architecture"]["params"]["n_rays"] = K
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / THRESHOLDS_FILE).write_text('{"prob": 1.5, "nms": 0.4}')
    with pytest.raises(ParseError, match="prob"):
        load_star_model(bad)
    (bad / THRESHOLDS_FILE).unlink()
    model = load_star_model(bad)
    assert model.thresholds == {"prob": 0.5, "nms": 0.4} and "missing" in model.notes[0]
    cfg["architecture"]["name"] = "unet"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DefectlabError, match="U-Net config: unknown key 'grid'"):  # checked as what it says it is
        load_star_model(bad)


def test_samples_keep_overlapping_instances(export: Path) -> None:
    samples, classes, notes, ds = load_star_samples(export / "annotations.xml", n_rays=K)
    for s, item in zip(samples, ds.items):
        stars = [sh for sh in item.shapes if sh.kind != "polyline"]
        assert len(s.crops) == len(stars)  # every instance, overlapped or not
        assert s.dist.shape == (*item.size_hw, K) and s.dist.dtype == np.float16


def test_refuses_a_prepared_folder_and_data_without_stars(tmp_path: Path) -> None:
    (tmp_path / "u" / "masks").mkdir(parents=True)
    (tmp_path / "u" / "classes.json").write_text("{}")
    with pytest.raises(DefectlabError, match="labeling export"):
        train_stardist(tmp_path / "u", tmp_path / "m", **TINY)
    from defectlab.imaging.io import write_image

    write_image(tmp_path / "l.png", np.zeros((64, 64), np.uint8))

    ds = Dataset((Label("dislocation line", type="polyline"),),
                 (Item("l.png", (64, 64), (Polyline(label="dislocation line", points_xy=np.array([[5.0, 5], [50, 40]])),),
                       image=ImageSource(tmp_path / "l.png")),))
    with pytest.raises(DefectlabError, match="no star-convex instance"):
        train_stardist(ds, tmp_path / "m2", **TINY)


def test_options_are_validated(export: Path, tmp_path: Path) -> None:
    from defectlab.dl import archs
    from defectlab.dl.archs.stardist import StarParams

    with pytest.raises(ValueError, match="tile_size: expected a multiple of 16"):
        train_stardist(export / "annotations.xml", tmp_path / "m", **{**TINY, "tile_size": 100, "depth": 3})
    arch = archs.get("stardist")
    with pytest.raises(ValueError, match="val_split"):
        arch.train_options(val_split=1.0)
    with pytest.raises(ValueError, match="n_rays"):
        StarParams(n_rays=10)
    with pytest.raises(ValueError, match="grid"):
        StarParams(grid=3)
    assert arch.train_options(time_budget_s="90s").time_budget_s == 90.0
    with pytest.raises(ValueError, match="time_budget_s"):
        arch.train_options(time_budget_s=-1)
    with pytest.raises(TypeError, match="no option 'epoch'"):
        train_stardist("x", "y", epoch=3)


def test_one_image_validates_on_a_held_out_strip_no_training_crop_reaches(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """One image: the validation part is its right ``val_split`` (the longer side), and no training
    crop reaches into it. The image's gray value is its column (0..W-1), so a crop's largest
    normalized value says how far right it reached, whatever flip or rotation it got."""
    from defectlab.dl.archs import stardist as arch_mod
    from defectlab.imaging.io import write_image

    h, w, val_split = 64, 160, 0.25
    cut = int(round(w * (1 - val_split)))  # 120: the strip is x in [120, 160)
    write_image(tmp_path / "g.png", np.tile(np.arange(w, dtype=np.uint8), (h, 1)))
    discs = tuple(Ellipse(label="cavity", cx=x, cy=32.0, rx=7.0, ry=7.0) for x in (20.0, 60.0, 100.0, 140.0))
    ds = Dataset((Label("cavity", type="ellipse"),), (Item("g.png", (h, w), discs, image=ImageSource(tmp_path / "g.png")),))
    reached: list[float] = []
    real = arch_mod.crop_batch

    def spy(samples, *args, **kwargs):
        out = real(samples, *args, **kwargs)
        reached.append(float(out[0].max()))
        assert all(s.image.shape == (h, cut) for s in samples)
        return out

    monkeypatch.setattr(arch_mod, "crop_batch", spy)
    run = train_stardist(ds, tmp_path / "m", **{**TINY, "steps_per_epoch": 6, "val_split": val_split})
    assert len(reached) == 6 and max(reached) <= (cut - 1) / (w - 1) + 1e-6
    training = json.loads((run.path / "config.json").read_text())["training"]
    assert training["validated_on_training_images"] is False
    assert any("split spatially" in n and f"x in [{cut}, {w})" in n for n in run.notes)
    assert not any("validation on the training images" in n for n in run.notes)
    assert json.loads((run.path / THRESHOLDS_FILE).read_text())["on_training_images"] is False
    # the validation strip holds the one disc right of the cut (the one at 100 ends at 107 < 120)
    assert run.history[0]["val_tp"] + run.history[0]["val_fn"] == 1


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["COLUMNS"] = "200"
    return subprocess.run([str(Path(sys.executable).with_name("defectlab")), *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_cli_trains_and_predicts(export: Path, tmp_path: Path) -> None:
    import defectlab
    from pycocotools.coco import COCO

    model = tmp_path / "model"
    r = _cli("train", "stardist", str(export / "annotations.xml"), "--out", str(model), "--epochs", "1",
             "--steps-per-epoch", "2",
             "--tile", "64", "--no-plot", "--device", "cpu", "--base-filters", "4", "--depth", "2",
             "--head-filters", "8", "--rays", str(K), "--batch-size", "2")
    assert r.returncode == 0, r.stderr
    assert "thresholds tuned on the validation images -> thresholds.json: prob" in r.stdout
    out = tmp_path / "pred"
    r = _cli("predict", str(model), str(export / "images"), "--out", str(out), "--prelabels", "cvat",
             "--prelabels", "coco", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (export / "images").iterdir())
    assert sorted(p.name for p in (out / "masks").iterdir()) == names
    assert sorted(p.stem for p in (out / "polygons").iterdir()) == [n.rsplit(".", 1)[0] for n in names]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["architecture"] == "stardist" and len(summary["images"]) == 3
    back = defectlab.read(out / "prelabels" / "annotations.xml")
    assert [it.name for it in back.items] == names
    polys = json.loads((out / "polygons" / (names[0].rsplit(".", 1)[0] + ".json")).read_text())
    first = back.items[0]
    assert len([s for s in first.shapes if s.kind in ("ellipse", "polygon")]) == len(polys["stars"])
    coco = COCO(str(out / "prelabels" / "coco" / "annotations" / "instances_default.json"))
    assert len(coco.getImgIds()) == 3
    # the stored thresholds overridden: what predict_star gives at those thresholds, said in summary.json
    r = _cli("predict", str(model), str(export / "images"), "--out", str(tmp_path / "p0"), "--device", "cpu",
             "--prob-thresh", "0.05", "--nms-thresh", "0.7")
    assert r.returncode == 0, r.stderr
    over = json.loads((tmp_path / "p0" / "summary.json").read_text())
    assert over["thresholds"]["prob"] == 0.05 and over["thresholds"]["nms"] == 0.7
    assert over["thresholds"]["overridden"] == ["nms", "prob"] and "overridden" not in summary["thresholds"]
    from defectlab.imaging.io import read_image

    loaded = load_star_model(model, device="cpu")
    for name, info in zip(names, over["images"]):
        low = loaded.predict_star(read_image(export / "images" / name), prob_thresh=0.05, nms_thresh=0.7)
        stars = json.loads((tmp_path / "p0" / "polygons" / (name.rsplit(".", 1)[0] + ".json")).read_text())["stars"]
        assert len(stars) == low.n_stars and info["name"] == name
    r = _cli("predict", str(model), str(export / "images"), "--out", str(tmp_path / "p1"), "--prob-thresh", "1.5")
    assert r.returncode == 1 and "--prob-thresh: expected a number in [0, 1]" in r.stderr and "Traceback" not in r.stderr
    # bad input: one line, exit 1
    r = _cli("predict", str(tmp_path / "nothing"), str(export / "images"), "--out", str(tmp_path / "p2"))
    assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = _cli("train", "stardist", str(export / "annotations.xml"), "--out", str(tmp_path / "m3"), "--grid", "3")
    assert r.returncode == 1 and "grid" in r.stderr and "Traceback" not in r.stderr
    r = _cli("train", "stardist", "--help")
    shown = " ".join(r.stdout.split())
    assert r.returncode == 0 and "--rays N Rays per star (a multiple of 4). [default: 32]" in shown


def test_registered_architecture_trains_loads_and_predicts(export: Path, tmp_path: Path) -> None:
    """``api.train("stardist")`` (the common loop) writes the common model folder plus
    thresholds.json; ``load_model`` gives a StarModel that predicts what the trained one does."""
    from defectlab import api
    from defectlab.dl.model_io import load_model
    from defectlab.imaging.io import read_image

    run = api.train("stardist", export / "annotations.xml", tmp_path / "m", epochs=1, steps_per_epoch=2,
                    batch_size=2, tile_size=64, base_filters=4, depth=2, head_filters=8, n_rays=K, device="cpu",
                    progress=False, plot=False)
    assert {"config.json", "weights.pt", "history.json", THRESHOLDS_FILE} <= {p.name for p in run.path.iterdir()}
    th = json.loads((run.path / THRESHOLDS_FILE).read_text())
    assert th["tuned"] is True and any(f"prob {th['prob']:g}" in n for n in run.notes)
    loaded = load_model(run.path, device="cpu")
    assert type(loaded).__name__ == "StarModel" and loaded.thresholds["prob"] == th["prob"]
    image = read_image(next((export / "images").iterdir()))
    p1, p2 = run.model.to("cpu").predict(image), loaded.predict(image)
    assert np.array_equal(p1.instances, p2.instances) and np.array_equal(p1.points_xy, p2.points_xy)
    low = loaded.predict_star(image, prob_thresh=0.0)  # every candidate: the NMS has work to do
    assert len(low.points_xy) >= len(p2.points_xy)
    report = api.predict(loaded, export / "images", tmp_path / "pred", prelabels="coco")
    assert len(list((tmp_path / "pred" / "polygons").iterdir())) == 3 and report.prelabels_coco.is_file()
    with pytest.raises(ValueError, match="U-Net model for probabilities"):
        loaded.predict(image, probabilities=True)
    with pytest.raises(DefectlabError, match="nothing-here: no such file or folder"):
        api.train("stardist", export / "nothing-here", tmp_path / "m2", epochs=1, progress=False, plot=False)


@pytest.mark.parametrize("name", ["unet", "maskrcnn"])
def test_other_architectures_refuse_the_star_thresholds(name: str) -> None:
    from defectlab.dl import archs
    from defectlab.dl.options import PredictOptions

    arch = archs.get(name)
    arch.check_predict_options(PredictOptions())
    for field in ("prob_thresh", "nms_thresh"):
        with pytest.raises(ValueError, match=f"{field} .* is for stardist models"):
            arch.check_predict_options(PredictOptions(**{field: 0.5}))
    archs.get("stardist").check_predict_options(PredictOptions(prob_thresh=0.5, nms_thresh=0.3))
