"""Tiled prediction (exact in the interior, blending weights that sum to 1, bounded memory),
model folders (round trip, clear errors), Mask R-CNN tiles (each object found once)."""

from __future__ import annotations

import json
import math
import shutil
import tracemalloc

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from defectlab.dl.archs import maskrcnn, unet  # noqa: E402
from defectlab.dl.archs.unet import UNet, UNetConfig  # noqa: E402
from defectlab.dl.model_io import ClassInfo, Model, ModelError, load_model, resolve_device, save_model  # noqa: E402
from defectlab.dl.tiles import predict_semantic, tile_plan, window_1d  # noqa: E402
from defectlab.errors import ParseError  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny nets run fastest on one thread, and far faster than on two when other processes
    share the cores (OpenMP threads then wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(n_classes: int = 3, seed: int = 0, depth: int = 1) -> UNet:
    """A small U-Net with random weights and random BatchNorm statistics (so eval mode is not
    the identity), receptive field +-7 px for depth 1."""
    torch.manual_seed(seed)
    net = UNet(UNetConfig(n_classes=n_classes, base_filters=4, depth=depth, bottleneck_dilations=(1,))).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    return net


def net_forward(net):
    def forward(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(torch.from_numpy(batch)), dim=1).numpy()

    return forward


def whole_image_probs(net, image: np.ndarray) -> np.ndarray:
    """The reference: the whole image through the net at once, normalized independently."""
    g = image.astype(np.float64)
    g = ((g - g.min()) / (g.max() - g.min())).astype(np.float32)
    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(g)[None, None]), dim=1)[0].numpy()


# -- tiling and blending ------------------------------------------------------------------------


@pytest.mark.parametrize("shape_hw,tile,overlap,margin", [((200, 264), 64, 32, 12), ((176, 130), 48, 24, 10)])
def test_tiled_equals_whole_image_in_the_interior(shape_hw, tile, overlap, margin):
    net = tiny_net()
    rng = np.random.default_rng(1)
    image = (rng.random(shape_hw) * 200 + 20).astype(np.uint8)
    ref = whole_image_probs(net, image[: shape_hw[0] // 2 * 2, : shape_hw[1] // 2 * 2])
    _, _, probs = predict_semantic(net_forward(net), image, n_classes=3, multiple=2, tile=tile,
                                   overlap=overlap, margin=margin, batch_size=3, probabilities=True)
    assert probs.shape == (3, *shape_hw)
    band = 16  # > the net's receptive field (+-7 px): image borders see padding either way
    h, w = ref.shape[1:]
    diff = np.abs(probs[:, band:h - band, band:w - band] - ref[:, band:-band, band:-band])
    assert diff.max() < 1e-5
    # and tile seams are nowhere to be seen: the interior has no larger error near tile edges
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize("shape_hw", [(300, 410), (37, 53), (5, 7), (64, 64), (130, 1000)])
@pytest.mark.parametrize("tile,overlap,margin", [(64, 32, None), (64, 16, 7), (32, 0, 0), (96, 64, 31)])
def test_constant_net_gives_the_constant_everywhere(shape_hw, tile, overlap, margin):
    """A net whose output is the same everywhere must come back unchanged: the blending
    weights of every pixel add up to one, tile borders and image borders included."""
    p = np.array([0.125, 0.375, 0.5], dtype=np.float32)
    seen = []

    def forward(batch):
        seen.append(batch.shape)
        return np.broadcast_to(p[None, :, None, None], (batch.shape[0], 3, *batch.shape[2:])).copy()

    rng = np.random.default_rng(0)
    sem, conf, probs = predict_semantic(forward, rng.random(shape_hw), n_classes=3, multiple=8, tile=tile,
                                        overlap=overlap, margin=margin, probabilities=True)
    np.testing.assert_allclose(probs, np.broadcast_to(p[:, None, None], probs.shape), rtol=0, atol=1e-6)
    assert np.all(sem == 2) and np.all(conf == round(0.5 * 255))
    assert all(s[2] % 8 == 0 and s[3] % 8 == 0 and s[2] <= tile and s[3] <= tile for s in seen)


def test_window_is_a_partition_of_unity():
    """Independent of the predictor's normalization: neighbors' weights add to 1 in their overlap."""
    tile, overlap, margin = 64, 24, 5
    before = window_1d(tile, overlap, margin, before=True, after=False)
    after = window_1d(tile, overlap, margin, before=False, after=True)
    np.testing.assert_allclose(after[tile - overlap:] + before[:overlap], 1.0, atol=1e-12)
    assert np.all(before[:margin] == 0) and np.all(before[overlap - margin:] == 1)
    assert np.all(np.diff(before) >= 0)
    # the raised cosine itself: 0.5 - 0.5 cos(pi x) at the pixel centers of the ramp
    x = (np.arange(margin, overlap - margin) - margin + 0.5) / (overlap - 2 * margin)
    np.testing.assert_allclose(before[margin:overlap - margin], 0.5 - 0.5 * np.cos(np.pi * x), atol=1e-12)


def test_tile_plan_covers_with_the_least_overlap():
    for length in [1, 7, 64, 65, 255, 256, 257, 500, 1024, 1337, 4096]:
        for tile, overlap, m in [(256, 64, 8), (64, 32, 2), (96, 64, 32)]:
            lm = -(-length // m) * m
            for full in (False, True):
                p = tile_plan(length, tile, overlap, m, full_tiles=full)
                assert p.padded >= length and p.tile % m == 0 and p.stride % m == 0
                assert p.tile + (p.n - 1) * p.stride == p.padded
                assert p.n == 1 or p.overlap >= overlap
                # the fewest tiles: n - 1 tiles of the largest size with the least overlap fall short
                assert p.n == 1 or tile + (p.n - 2) * (tile - overlap) < lm
                if full:
                    assert p.tile == tile
                elif p.n > 1:  # the smallest tile: one multiple less and n tiles fall short
                    assert p.tile <= tile and p.n * (p.tile - m) < lm + (p.n - 1) * overlap
                else:
                    assert p.tile == lm and p.tile <= max(tile, 1)
    assert tile_plan(4096, 256, 64, 8).padded == 4096
    # a 4096 px axis in tiles of at most 1024: 5 tiles of 872 px (the net computes 6 % more
    # than the image) instead of 5 of 1024 (25 % more)
    p = tile_plan(4096, 1024, 64, 8)
    assert (p.n, p.tile) == (5, 872) and p.padded <= 4096 * 1.01
    with pytest.raises(ValueError, match="multiple of 8"):
        tile_plan(100, 250, 64, 8)
    with pytest.raises(ValueError, match="overlap that is a multiple of 8"):
        tile_plan(100, 256, 60, 8)


def test_memory_is_bounded_by_the_tile_batch():
    """A 2048 x 2048 image: the net sees at most 4 tiles of at most 256 px at once, and the predictor's
    own numpy memory beyond its outputs is a band of tiles: half the image takes as much,
    and it is far below one (C, H, W) float32 array of the whole image."""
    n_classes = 4
    batches = []

    def forward(batch):
        batches.append(batch.shape)
        # a cheap stand-in for a net: class 1 where brighter than the tile's mean
        b = batch[:, 0] > batch[:, 0].mean(axis=(1, 2), keepdims=True)
        out = np.full((batch.shape[0], n_classes, *batch.shape[2:]), 0.1, np.float32)
        out[:, 1] = np.where(b, 0.7, 0.1)
        out[:, 0] = 1 - out[:, 1:].sum(axis=1)
        return out

    def working_memory(h, w):
        image = np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8)
        tracemalloc.start()
        sem, conf, probs = predict_semantic(forward, image, n_classes=n_classes, multiple=8, tile=256,
                                            overlap=64, batch_size=4)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert probs is None and sem.shape == (h, w)
        return peak - sem.nbytes - conf.nbytes

    full = working_memory(2048, 2048)
    assert max(s[0] for s in batches) == 4 and len({s[2:] for s in batches}) == 1
    assert max(max(s[2:]) for s in batches) <= 256
    assert len(batches) == math.ceil(11 / 4) * 11  # 11 x 11 tiles, by rows of 11 in batches of 4
    half = working_memory(1024, 2048)
    whole = n_classes * 2048 * 2048 * 4  # a whole-image probability array: 64 MiB
    assert full < 0.5 * whole, f"working memory {full / 2**20:.1f} MiB"
    assert full < 1.1 * half + 2**20, f"{full / 2**20:.1f} MiB for 2048 rows, {half / 2**20:.1f} MiB for 1024"


# -- models -----------------------------------------------------------------------------------


def make_model(tmp_path, n_classes=3):
    net = tiny_net(n_classes, depth=2)
    classes = [ClassInfo(i, f"class{i}", edge="inner" if i == 1 else None) for i in range(1, n_classes)]
    config = unet.model_config(net.config, classes=classes, tile_size=64, overlap=16,
                               training={"data_manifest_sha256": "abc"})
    return save_model(Model(net, config), tmp_path / "model")


def test_model_folder_round_trip_predicts_identically(tmp_path):
    model = make_model(tmp_path)
    image = (np.random.default_rng(2).random((150, 90)) * 255).astype(np.uint8)
    before = model.predict(image, probabilities=True)
    loaded = load_model(tmp_path / "model", device="cpu")
    after = loaded.predict(image, probabilities=True)
    assert np.array_equal(before.semantic, after.semantic)
    np.testing.assert_array_equal(before.probabilities, after.probabilities)
    assert loaded.classes == {1: "class1", 2: "class2"}
    assert loaded.config.classes[1].edge == "inner"
    assert loaded.config.training["data_manifest_sha256"] == "abc"
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["format"] == "defectlab-model" and cfg["config_version"] == 1
    assert cfg["normalization"] == {"method": "minmax", "scope": "image", "channels": 1}
    assert cfg["classes"][0]["name"] == "background" and cfg["tile_size"] == 64
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "weights.pt"]


def test_prediction_is_consistent(tmp_path):
    model = make_model(tmp_path)
    rgb = np.random.default_rng(3).integers(0, 65535, (70, 90, 3), dtype=np.uint16)
    pred = model.predict(rgb)
    assert pred.semantic.shape == (70, 90) and pred.semantic.dtype == np.uint8
    assert pred.instances.dtype == np.int32 and pred.scores.shape == pred.instance_classes.shape
    for i, c in enumerate(pred.instance_classes, start=1):
        assert np.all(pred.semantic[pred.instances == i] == c)
    assert np.all(pred.semantic[pred.instances > 0] > 0)
    assert sum(pred.counts().values()) == pred.n_instances
    flat = model.predict(np.full((20, 30), 7, np.uint8))  # a flat image normalizes to zeros
    assert flat.semantic.shape == (20, 30)
    with pytest.raises(ValueError, match="multiple of 4"):
        model.predict(rgb, tile_size=30)


def test_load_model_errors_are_clear(tmp_path):
    make_model(tmp_path)
    good = tmp_path / "model"

    def variant(name):
        d = tmp_path / name
        shutil.copytree(good, d)
        return d

    with pytest.raises(ModelError, match="no such model folder"):
        load_model(tmp_path / "nothing")
    d = variant("no_weights")
    (d / "weights.pt").unlink()
    with pytest.raises(ModelError, match=r"weights\.pt: missing"):
        load_model(d)
    d = variant("no_config")
    (d / "config.json").unlink()
    with pytest.raises(ModelError, match="no config.json"):
        load_model(d)
    d = variant("newer")
    cfg = json.loads((d / "config.json").read_text())
    cfg["config_version"] = 7
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="config version 7.*reads version 1.*upgrade"):
        load_model(d)
    d = variant("classes")
    cfg = json.loads((d / "config.json").read_text())
    cfg["classes"].append({"index": 3, "name": "extra", "color": "#123456", "edge": None})
    cfg["architecture"]["params"]["n_classes"] = 4
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="predict 3 classes but config.json lists 4.*classes mismatch"):
        load_model(d)
    d = variant("classes2")
    cfg = json.loads((d / "config.json").read_text())
    cfg["classes"].pop()
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="classes mismatch: 'classes' lists 2"):
        load_model(d)
    d = variant("type")
    cfg = json.loads((d / "config.json").read_text())
    cfg["classes"][1]["type"] = 3
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ParseError, match=r"/classes/1/type.*expected a shape type"):
        load_model(d)
    d = variant("json")
    (d / "config.json").write_text('{"format": "defectlab-model",\n "config_version": }')
    with pytest.raises(ParseError, match=r"config.json, line 2.*not valid JSON"):
        load_model(d)
    d = variant("arch")
    cfg = json.loads((d / "config.json").read_text())
    cfg["architecture"]["name"] = "segformer"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="unknown architecture 'segformer'"):
        load_model(d)
    d = variant("corrupt")
    (d / "weights.pt").write_bytes(b"not torch")
    with pytest.raises(ModelError, match="not readable as torch weights"):
        load_model(d)
    with pytest.raises(ModelError, match=r"classes mismatch.*\['class1', 'class2'\]"):
        load_model(good, classes=["cavity", "loop"])


def test_device_choice():
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="expected device"):
        resolve_device("tpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ModelError, match="no CUDA GPU"):
            resolve_device("cuda")


# -- Mask R-CNN tiles -----------------------------------------------------------------------------


class FakeDetector(torch.nn.Module):
    """Stands in for a torchvision Mask R-CNN: detects the bright discs of a tile as instances
    (score 0.9, class 1) — whatever tile they are seen in, cut off or not."""

    def __init__(self):
        super().__init__()
        self.roi_heads = type("Heads", (), {"score_thresh": 0.05})()

    def forward(self, images):
        from scipy import ndimage

        outs = []
        for img in images:
            fg = img[0].numpy() > 0.5
            lab, n = ndimage.label(fg)
            boxes, masks = [], []
            for i, sl in enumerate(ndimage.find_objects(lab), start=1):
                boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
                masks.append((lab == i).astype(np.float32))
            outs.append({
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.full((n,), 0.9), "labels": torch.ones(n, dtype=torch.int64),
                "masks": torch.from_numpy(np.array(masks, np.float32).reshape(n, 1, *fg.shape)),
            })
        return outs


def test_maskrcnn_tiles_find_each_object_once():
    side = 300
    yy, xx = np.mgrid[:side, :side] + 0.5
    image = np.zeros((side, side), np.uint8)
    centers = [(60, 62), (96, 30), (128, 128), (190, 96), (250, 250), (31, 250), (160, 222)]
    r = 10.0
    for cx, cy in centers:  # several straddle tile borders (tiles of 64 at stride 32)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 255
    params = maskrcnn.default_params(2, backbone="resnet18", tile_size=64)
    config = maskrcnn.model_config(params, classes=[ClassInfo(1, "cavity")], tile_size=64, overlap=32)
    model = Model(FakeDetector(), config)
    pred = model.predict(image)
    assert pred.n_instances == len(centers)
    areas = np.bincount(pred.instances.ravel())[1:]
    disc_area = ((xx - 128) ** 2 + (yy - 128) ** 2 <= r * r).sum()
    assert np.all(np.abs(areas - disc_area) <= 0.02 * disc_area)
    assert np.array_equal(pred.semantic > 0, image > 0)
    with pytest.raises(ValueError, match="not per-pixel class probabilities"):
        model.predict(image, probabilities=True)


@pytest.mark.parametrize("n_classes", [2, 3, 5, 17])
def test_class_by_class_arg_max_is_numpys(n_classes):
    from defectlab.dl.tiles import _arg_max

    rng = np.random.default_rng(n_classes)
    p = (rng.random((n_classes, 37, 53)) * 0.8).astype(np.float32)
    p[:, :5] = 0.5  # all tied: the first class wins, as with argmax
    p[n_classes - 1, 5:10] = p[0, 5:10] = 0.9  # first and last tied at the top
    p[n_classes // 2, 10:12] = 1.0
    index = np.full((37, 53), 99, np.uint8)
    confidence = np.empty((37, 53), np.uint8)
    _arg_max(p, index, confidence)
    assert np.array_equal(index, p.argmax(axis=0))
    assert np.array_equal(confidence, np.rint(p.max(axis=0) * np.float32(255)).astype(np.uint8))  # float32, as documented


def test_line_classes_are_not_split_at_necks(tmp_path, monkeypatch):
    """Two touching discs: two objects of an area class, one of a line class (labels drawn as
    polylines), whose widenings and narrowings are not separate defects."""
    import defectlab.dl.archs.base as semantic_mod  # where per-pixel classifiers call the tiled predictor

    yy, xx = np.mgrid[:60, :90] + 0.5
    discs = ((xx - 30) ** 2 + (yy - 30) ** 2 <= 144) | ((xx - 52) ** 2 + (yy - 30) ** 2 <= 144)
    for cls, kind, expected in ((1, "polygon", 2), (2, "polyline", 1), (2, "any", 2)):
        sem = np.where(discs, cls, 0).astype(np.uint8)
        monkeypatch.setattr(semantic_mod, "predict_semantic",
                            lambda *a, _sem=sem, **k: (_sem, np.full(_sem.shape, 255, np.uint8), None))
        net = tiny_net(3)
        classes = [ClassInfo(1, "cavity", type="polygon"), ClassInfo(2, "dislocation line", type=kind)]
        model = Model(net, unet.model_config(net.config, classes=classes, tile_size=64, overlap=16))
        pred = model.predict(np.zeros((60, 90), np.uint8), engine="torch")
        assert pred.n_instances == expected, (cls, kind)
        assert pred.instance_classes.tolist() == [cls] * expected
    # the type survives the model folder; a config written before it existed reads as "any"
    saved = save_model(model, tmp_path / "m")
    assert load_model(saved.path).config.classes[2].type == "any"
    model = Model(net, unet.model_config(net.config, classes=[ClassInfo(1, "a"), ClassInfo(2, "b", type="polyline")],
                                         tile_size=64, overlap=16))
    save_model(model, tmp_path / "m2")
    assert load_model(tmp_path / "m2").config.classes[2].is_line
    cfg = json.loads((tmp_path / "m2" / "config.json").read_text())
    for c in cfg["classes"]:
        del c["type"]
    (tmp_path / "m2" / "config.json").write_text(json.dumps(cfg))
    assert [c.type for c in load_model(tmp_path / "m2").config.classes] == ["any"] * 3
