"""MaskRCNNDataset: targets checked against independent rasterizations, and a real training step.

Expected pixels are computed here without defectlab's rasterizer: ellipses by the quadratic
form of the rotated ellipse at every pixel center, polygons with ``skimage.measure.points_in_poly``
(and ``skimage.draw.ellipse`` as a cross-check for an unrotated ellipse).
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from skimage.draw import ellipse as sk_ellipse  # noqa: E402
from skimage.measure import points_in_poly  # noqa: E402

from defectlab.dl import DegenerateInstanceWarning, MaskRCNNDataset  # noqa: E402
from defectlab.errors import FormatError, ImageError  # noqa: E402
from defectlab.formats.maskrcnn import write_maskrcnn  # noqa: E402
from defectlab.formats.unet import write_unet  # noqa: E402
from defectlab.imaging.io import write_image  # noqa: E402
from defectlab.model import Box, Dataset, Ellipse, ImageSource, Item, Label, Points, Polygon  # noqa: E402

H, W = 128, 128
LABELS = (Label("cavity"), Label("loop"), Label("precipitate"))
IGNORE_DEGENERATE = "ignore::defectlab.dl.maskrcnn_dataset.DegenerateInstanceWarning"

# -- independent rasterization -------------------------------------------------------------

_XC = np.arange(W)[None, :] + 0.5  # pixel centers
_YC = np.arange(H)[:, None] + 0.5


def ellipse_pixels(cx, cy, rx, ry, rotation_deg, size_hw=(H, W)):
    """Centers with d^T A d <= 1, A = R diag(1/rx^2, 1/ry^2) R^T, R clockwise on screen (y down)."""
    h, w = size_hw
    xc, yc = np.arange(w)[None, :] + 0.5, np.arange(h)[:, None] + 0.5
    t = math.radians(rotation_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])  # maps +x to (cos, sin): down-right
    a = rot @ np.diag([1 / rx**2, 1 / ry**2]) @ rot.T
    dx, dy = xc - cx, yc - cy
    q = a[0, 0] * dx * dx + 2 * a[0, 1] * dx * dy + a[1, 1] * dy * dy
    return q <= 1.0, q


def polygon_pixels(points_xy):
    centers = np.stack(np.broadcast_arrays(_XC, _YC), axis=-1).reshape(-1, 2)
    return points_in_poly(centers, np.asarray(points_xy, float)).reshape(H, W)


def rotated_box_corners(x1, y1, x2, y2, deg):
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    t = math.radians(deg)
    out = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        u, v = sx * hw, sy * hh
        out.append((cx + u * math.cos(t) - v * math.sin(t), cy + u * math.sin(t) + v * math.cos(t)))
    return out


def bounds_xyxy(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


# -- the dataset built in code ---------------------------------------------------------------

ELLIPSE = dict(cx=30.3, cy=34.7, rx=11.2, ry=6.1, rotation_deg=35.0)
ELLIPSE_FLAT = dict(cx=90.2, cy=25.9, rx=9.3, ry=5.4, rotation_deg=0.0)
POLYGON = [(60.3, 60.2), (85.7, 64.1), (92.4, 88.6), (70.1, 97.3), (55.8, 80.4)]
BOX = (12.3, 80.6, 40.7, 101.2)
ROT_BOX = ((95.1, 95.3, 118.8, 110.4), 20.0)
TINY = dict(cx=50.0, cy=50.0, rx=0.2, ry=0.2)  # centered on a pixel corner: no center within 0.707 px


def shapes():
    return (
        Ellipse(label="cavity", **ELLIPSE),                       # 0 -> class 1
        Polygon(label="precipitate", points_xy=POLYGON),          # 1 -> class 3
        Ellipse(label="loop", **ELLIPSE_FLAT),                    # 2 -> class 2
        Ellipse(label="cavity", **TINY),                          # 3 degenerate: a note, not an instance
        Box(label="loop", xyxy=BOX),                              # 4 -> class 2
        Points(label="cavity", points_xy=[(5.0, 5.0)]),           # 5 not an area: no instance, no note
        Box(label="precipitate", xyxy=ROT_BOX[0], rotation_deg=ROT_BOX[1]),  # 6 -> class 3
    )


def expected_masks():
    bx1, by1, bx2, by2 = BOX
    return [
        ellipse_pixels(**ELLIPSE)[0],
        polygon_pixels(POLYGON),
        ellipse_pixels(**ELLIPSE_FLAT)[0],
        (_XC >= bx1) & (_XC < bx2) & (_YC >= by1) & (_YC < by2),
        polygon_pixels(rotated_box_corners(*ROT_BOX[0], ROT_BOX[1])),
    ]


EXPECTED_LABELS = [1, 3, 2, 2, 3]


@pytest.fixture()
def pixels():
    rng = np.random.default_rng(7)
    return rng.integers(20, 201, (H, W), dtype=np.uint8)


@pytest.fixture()
def dataset(tmp_path, pixels):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "a.png", pixels)
    write_image(src / "empty.png", np.tile(np.arange(W, dtype=np.uint8), (H, 1)))
    return Dataset(
        labels=LABELS,
        items=(
            Item("a.png", (H, W), shapes(), image=ImageSource(src / "a.png")),
            Item("empty.png", (H, W), (), image=ImageSource(src / "empty.png")),
        ),
    )


def build(data, i):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInstanceWarning)
        return data[i]


# -- targets ---------------------------------------------------------------------------------


def test_independent_rasterizers_agree_on_an_unrotated_ellipse():
    e = ELLIPSE_FLAT
    rr, cc = sk_ellipse(e["cy"] - 0.5, e["cx"] - 0.5, e["ry"], e["rx"], shape=(H, W))
    sk = np.zeros((H, W), bool)
    sk[rr, cc] = True
    np.testing.assert_array_equal(sk, ellipse_pixels(**e)[0])


def test_target_dtypes_and_shapes(dataset):
    image, target = build(MaskRCNNDataset(dataset), 0)
    n = len(EXPECTED_LABELS)
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, H, W)
    assert target["boxes"].dtype == torch.float32 and tuple(target["boxes"].shape) == (n, 4)
    assert target["labels"].dtype == torch.int64 and tuple(target["labels"].shape) == (n,)
    assert target["masks"].dtype == torch.uint8 and tuple(target["masks"].shape) == (n, H, W)
    assert target["area"].dtype == torch.float32 and tuple(target["area"].shape) == (n,)
    assert target["iscrowd"].dtype == torch.int64 and target["iscrowd"].tolist() == [0] * n
    assert isinstance(target["image_id"], int) and target["image_id"] == 0
    assert set(target) == {"boxes", "labels", "masks", "image_id", "area", "iscrowd"}


def test_masks_boxes_labels_areas_match_independent_rasterization(dataset):
    _, target = build(MaskRCNNDataset(dataset), 0)
    expected = expected_masks()
    assert target["labels"].tolist() == EXPECTED_LABELS  # class per label, not all 1
    for k, want in enumerate(expected):
        assert want.any()
        np.testing.assert_array_equal(target["masks"][k].numpy(), want.astype(np.uint8), err_msg=f"instance {k}")
        assert target["boxes"][k].tolist() == bounds_xyxy(want)
        assert target["area"][k].item() == want.sum()
    boxes = target["boxes"]
    assert bool((boxes[:, 2:] > boxes[:, :2]).all())  # never degenerate
    # areas are close to the analytic ones (exact center sampling, no systematic growth)
    assert abs(target["area"][0].item() - math.pi * ELLIPSE["rx"] * ELLIPSE["ry"]) < 0.06 * target["area"][0].item()


def test_image_is_normalized_gray_repeated(dataset, pixels):
    image, _ = build(MaskRCNNDataset(dataset), 0)
    want = (pixels.astype(np.float32) - pixels.min()) / float(pixels.max() - pixels.min())
    for c in range(3):
        np.testing.assert_allclose(image[c].numpy(), want, rtol=0, atol=1e-6)
    assert image.min().item() == 0.0 and image.max().item() == 1.0
    image1, _ = build(MaskRCNNDataset(dataset, channels=1), 0)
    assert tuple(image1.shape) == (1, H, W)
    with pytest.raises(ValueError, match="channels 1 or 3"):
        MaskRCNNDataset(dataset, channels=2)


def test_image_without_instances(dataset):
    image, target = MaskRCNNDataset(dataset)[1]
    assert tuple(image.shape) == (3, H, W)
    assert tuple(target["boxes"].shape) == (0, 4) and target["boxes"].dtype == torch.float32
    assert tuple(target["masks"].shape) == (0, H, W) and target["masks"].dtype == torch.uint8
    assert tuple(target["labels"].shape) == (0,) and target["labels"].dtype == torch.int64
    assert tuple(target["area"].shape) == (0,) and target["image_id"] == 1


def test_degenerate_shape_is_noted_and_warned_once_not_dropped_silently(dataset):
    data = MaskRCNNDataset(dataset)
    assert data.notes == []
    with pytest.warns(DegenerateInstanceWarning, match=r"a\.png.*shape 3"):
        _, target = data[0]
    assert len(target["labels"]) == len(EXPECTED_LABELS)
    (note,) = data.notes
    assert note.code == "degenerate-instance" and note.item == "a.png" and note.where == "shape 3"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second build of the same item neither warns nor duplicates
        data[0]
        data[1]
    assert len(data.notes) == 1


def test_collect_notes_finds_all_without_building_images(dataset):
    data = MaskRCNNDataset(dataset)
    with pytest.warns(DegenerateInstanceWarning):
        notes = data.collect_notes()
    assert [(n.item, n.where) for n in notes] == [("a.png", "shape 3")]


@pytest.mark.filterwarnings(IGNORE_DEGENERATE)
def test_visible_only_cuts_what_is_under_a_shape_above(tmp_path, pixels):
    write_image(tmp_path / "o.png", pixels)
    below = Ellipse(label="cavity", cx=40.3, cy=40.2, rx=12.1, ry=10.3)
    above = Ellipse(label="loop", cx=52.6, cy=44.1, rx=8.2, ry=8.4, z_order=1)
    ds = Dataset(labels=LABELS, items=(Item("o.png", (H, W), (below, above), image=ImageSource(tmp_path / "o.png")),))
    full = MaskRCNNDataset(ds)[0][1]["masks"].numpy().astype(bool)
    vis = MaskRCNNDataset(ds, visible_only=True)[0][1]["masks"].numpy().astype(bool)
    a, b = ellipse_pixels(40.3, 40.2, 12.1, 10.3, 0)[0], ellipse_pixels(52.6, 44.1, 8.2, 8.4, 0)[0]
    np.testing.assert_array_equal(full[0], a)
    np.testing.assert_array_equal(vis[0], a & ~b)
    np.testing.assert_array_equal(vis[1], b)


def test_classes_len_name_and_size(dataset):
    data = MaskRCNNDataset(dataset)
    assert data.classes == {1: "cavity", 2: "loop", 3: "precipitate"}
    assert len(data) == 2 and data.name(1) == "empty.png" and data.get_height_and_width(0) == (H, W)
    with pytest.raises(IndexError):
        data[2]


def test_collate_fn_keeps_images_and_targets_apart(dataset):
    loader = torch.utils.data.DataLoader(
        MaskRCNNDataset(dataset), batch_size=2, collate_fn=MaskRCNNDataset.collate_fn
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInstanceWarning)
        images, targets = next(iter(loader))
    assert isinstance(images, tuple) and len(images) == 2 and isinstance(targets[0], dict)
    assert [t["image_id"] for t in targets] == [0, 1]


@pytest.mark.filterwarnings(IGNORE_DEGENERATE)
def test_v2_transforms_move_boxes_and_masks_with_the_image(dataset):
    from torchvision.transforms import v2

    flip = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.ToPureTensor()])
    image0, target0 = MaskRCNNDataset(dataset)[0]
    image, target = MaskRCNNDataset(dataset, transforms=flip)[0]
    assert type(image) is torch.Tensor and type(target["boxes"]) is torch.Tensor
    assert torch.equal(image, image0.flip(-1))
    assert torch.equal(target["masks"], target0["masks"].flip(-1))
    b0 = target0["boxes"]
    assert torch.equal(target["boxes"], torch.stack([W - b0[:, 2], b0[:, 1], W - b0[:, 0], b0[:, 3]], 1))


# -- the folder route ------------------------------------------------------------------------


@pytest.mark.filterwarnings(IGNORE_DEGENERATE)
def test_folder_route_gives_the_same_samples(dataset, tmp_path):
    report = write_maskrcnn(dataset, tmp_path / "mrcnn")
    assert [n.where for n in report.notes] == ["shape 3"]
    mem, disk = MaskRCNNDataset(dataset), MaskRCNNDataset(tmp_path / "mrcnn")
    assert len(disk) == len(mem) and disk.classes == mem.classes
    assert [disk.name(i) for i in range(len(disk))] == ["a", "empty"]
    for i in range(len(mem)):
        (im_a, t_a), (im_b, t_b) = mem[i], disk[i]
        assert torch.equal(im_a, im_b)
        assert set(t_a) == set(t_b)
        for key in t_a:
            if key == "image_id":
                assert t_a[key] == t_b[key] == i
            else:
                assert t_a[key].dtype == t_b[key].dtype and torch.equal(t_a[key], t_b[key]), key


@pytest.mark.filterwarnings(IGNORE_DEGENERATE)
def test_folder_order_follows_the_written_order_not_the_names(tmp_path, pixels):
    write_image(tmp_path / "z.png", pixels)
    write_image(tmp_path / "a.png", pixels)
    one = (Ellipse(label="loop", cx=20.3, cy=20.2, rx=5.1, ry=4.3),)
    ds = Dataset(labels=LABELS, items=(
        Item("z.png", (H, W), one, image=ImageSource(tmp_path / "z.png")),
        Item("a.png", (H, W), (), image=ImageSource(tmp_path / "a.png")),
    ))
    write_maskrcnn(ds, tmp_path / "out")
    disk = MaskRCNNDataset(tmp_path / "out")
    assert [disk.name(0), disk.name(1)] == ["z", "a"]
    assert disk[0][1]["labels"].tolist() == [2] and len(disk[1][1]["labels"]) == 0


# -- errors ----------------------------------------------------------------------------------


def test_item_without_image_is_refused(dataset):
    bad = dataset.with_items([Item("gone.png", (H, W), ())])
    with pytest.raises(ImageError, match="gone.png"):
        MaskRCNNDataset(bad)


def test_missing_image_file_is_refused(dataset, tmp_path):
    bad = dataset.with_items([Item("gone.png", (H, W), (), image=ImageSource(tmp_path / "gone.png"))])
    with pytest.raises(ImageError, match="do not exist"):
        MaskRCNNDataset(bad)


def test_image_of_another_size_is_refused(dataset):
    bad = dataset.with_items([Item("a.png", (H, W + 1), (), image=dataset[0].image)])
    with pytest.raises(ImageError, match="128x128"):
        MaskRCNNDataset(bad)[0]


@pytest.mark.filterwarnings(IGNORE_DEGENERATE)
def test_folder_with_a_missing_image_is_refused(dataset, tmp_path):
    write_maskrcnn(dataset, tmp_path / "mrcnn")
    (tmp_path / "mrcnn" / "images" / "empty.png").unlink()
    with pytest.raises(ImageError, match="no image .*empty"):
        MaskRCNNDataset(tmp_path / "mrcnn")


def test_folder_that_is_not_a_maskrcnn_output_is_refused(dataset, tmp_path):
    with pytest.raises(FormatError, match="not a folder"):
        MaskRCNNDataset(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.png").write_bytes(b"")
    with pytest.raises(FormatError, match="no classes.json"):
        MaskRCNNDataset(tmp_path / "plain")
    write_unet(dataset, tmp_path / "unet")
    with pytest.raises(FormatError, match="U-Net"):
        MaskRCNNDataset(tmp_path / "unet")


@pytest.mark.filterwarnings(IGNORE_DEGENERATE)
def test_folder_route_refuses_rasterization_options(dataset, tmp_path):
    write_maskrcnn(dataset, tmp_path / "mrcnn")
    with pytest.raises(ValueError, match="written with"):
        MaskRCNNDataset(tmp_path / "mrcnn", visible_only=True)


def test_importing_defectlab_does_not_import_torch():
    code = "import sys, defectlab, defectlab.formats.maskrcnn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- property: any ellipse -------------------------------------------------------------------

S = 48


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("prop") / "s.png"
    write_image(path, np.random.default_rng(0).integers(0, 256, (S, S), dtype=np.uint8))
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cx=st.floats(-5, S + 5), cy=st.floats(-5, S + 5),
    rx=st.floats(0.05, 20), ry=st.floats(0.05, 20), rot=st.floats(-180, 180),
)
def test_any_ellipse_is_an_instance_or_a_note(small_image, cx, cy, rx, ry, rot):
    want, q = ellipse_pixels(cx, cy, rx, ry, rot, size_hw=(S, S))
    assume(np.abs(q - 1.0).min() > 1e-9)  # no center on the boundary, up to rounding
    ds = Dataset(labels=LABELS, items=(
        Item("s.png", (S, S), (Ellipse(label="loop", cx=cx, cy=cy, rx=rx, ry=ry, rotation_deg=rot),),
             image=ImageSource(small_image)),
    ))
    data = MaskRCNNDataset(ds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, target = data[0]
    if want.any():
        np.testing.assert_array_equal(target["masks"][0].numpy().astype(bool), want)
        assert target["boxes"][0].tolist() == bounds_xyxy(want)
        assert target["labels"].tolist() == [2] and data.notes == [] and not caught
    else:
        assert len(target["boxes"]) == 0 and len(data.notes) == 1
        assert any(issubclass(w.category, DegenerateInstanceWarning) for w in caught)


# -- training --------------------------------------------------------------------------------


@pytest.mark.filterwarnings(IGNORE_DEGENERATE)
def test_one_training_step_of_torchvision_mask_rcnn(dataset):
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    torch.manual_seed(0)
    data = MaskRCNNDataset(dataset)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    model = MaskRCNN(
        backbone, num_classes=len(data.classes) + 1, min_size=H, max_size=W,
        rpn_batch_size_per_image=64, box_batch_size_per_image=32,
    )
    model.train()
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=MaskRCNNDataset.collate_fn)
    images, targets = next(iter(loader))
    assert len(targets[1]["boxes"]) == 0  # the batch holds an image without instances
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    losses = model(list(images), list(targets))
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    assert all(torch.isfinite(v).item() for v in losses.values()), losses
    total = sum(losses.values())
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
