# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From a CVAT export to U-Net, YOLO and Mask R-CNN training data
#
# The workshop's labeling notebook, done right. Labels drawn in CVAT (polygons, ellipses,
# boxes, polylines, masks) become training data whose masks have **the same area and position
# as the shapes that were drawn**: no vertices truncated to whole pixels, no ellipse or rotation
# dropped, and whatever a format cannot hold is reported, never dropped silently.
#
# This notebook runs top to bottom on built-in synthetic micrographs. To run it on your own
# labels, set `MY_EXPORT` below to your CVAT export: the `annotations.xml`, the folder it is
# in, or the `.zip` CVAT downloads (*Export job/task dataset → CVAT for images 1.1*).
#
# ```
# pip install defectlab          # in a notebook: %pip install defectlab
# ```

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import defectlab
from defectlab.notebook import show_prediction

WORK = Path(os.environ.get("DEFECTLAB_WORK", "defectlab_work")) / "01_cvat_to_training_data"
WORK.mkdir(parents=True, exist_ok=True)

# Your own export (None: the workshop's files when they are here, else only synthetic data).
MY_EXPORT = None   # e.g. "~/Downloads/task_42-2024_01_01_annotations.zip"
MY_IMAGES = None   # the folder of the image files, if they are not in the export or beside it

# %% [markdown]
# ## 1. A CVAT export
#
# `defectlab.synthetic` writes TEM-like micrographs with exact labels as a CVAT export
# (`images/` + `annotations.xml`): cavities labeled at the inner edge of their dark Fresnel
# rim, dislocation loops at the outer edge of their dark ring, precipitates, and dislocation
# lines. It is the same command as `defectlab synth`.

# %%
defectlab.synthetic(WORK / "export", n=4, size=256, seed=0, overwrite=True)
sorted(p.name for p in (WORK / "export").iterdir())

# %% [markdown]
# ## 2. Read it
#
# `defectlab.read` takes the XML, its folder or the zip; the format is detected. A dataset
# shows as a table: the labels with their colors, the shapes by kind, the image sizes and the
# notes of anything the reader skipped.

# %%
ds = defectlab.read(WORK / "export")
ds

# %% [markdown]
# `defectlab.show` draws a micrograph with its shapes, exactly where the rasterizer puts
# them (pixel *(c, r)* covers *[c, c+1) × [r, r+1)*).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5.5), layout="constrained")
defectlab.show(ds, 0, ax=axes[0])
defectlab.show(ds, 1, ax=axes[1], fill=True, legend=False);

# %% [markdown]
# ## 3. U-Net data: one class-index mask per image
#
# `masks/<name>.png` holds the class of each pixel (0 = background, then the labels in
# order, see `classes.json`); `stack=True` also writes `images.npy` and `masks.npy`
# [N, H, W] for a quick start in Keras or PyTorch.

# %%
report = defectlab.write_unet(ds, WORK / "unet", stack=True, overwrite=True)
print(report)
print((WORK / "unet" / "classes.json").read_text())
masks = np.load(WORK / "unet" / "masks.npy")
images = np.load(WORK / "unet" / "images.npy")
masks.shape, masks.dtype, images.shape, images.dtype

# %%
classes = ["background"] + [lab.name for lab in ds.labels]
colors = ["#000000"] + [defectlab.notebook.label_colors(ds)[lab.name] for lab in ds.labels]
from matplotlib.colors import ListedColormap

fig, axes = plt.subplots(1, 2, figsize=(11, 5.5), layout="constrained")
axes[0].imshow(images[0], cmap="gray")
axes[0].set_title("images.npy[0]")
im = axes[1].imshow(masks[0], cmap=ListedColormap(colors), vmin=-0.5, vmax=len(colors) - 0.5,
                    interpolation="nearest")
axes[1].set_title("masks.npy[0]: class index")
cbar = fig.colorbar(im, ax=axes[1], ticks=range(len(classes)), shrink=0.8)
cbar.ax.set_yticklabels(classes)
for ax in axes:
    ax.set_axis_off()

# %% [markdown]
# ## 4. YOLO data (Ultralytics): boxes or polygons
#
# `task="detect"` writes boxes, `task="segment"` polygons, normalized to the image size, with
# the `data.yaml` Ultralytics reads. Ellipses become area-preserving polygons; dislocation
# lines become the outline of their line mask. Reading the folder back gives the same shapes.

# %%
report = defectlab.write(ds, WORK / "yolo", format="yolo", task="segment", overwrite=True)
print(report)
print((WORK / "yolo" / "data.yaml").read_text())
first_label_file = sorted((WORK / "yolo" / "labels").rglob("*.txt"))[0]
print(first_label_file.read_text()[:300])

# %%
yolo = defectlab.read(WORK / "yolo")
defectlab.show(yolo, 0, compare=ds, compare_label="CVAT shapes");

# %% [markdown]
# The YOLO polygons (colors) lie on the CVAT shapes (white, dashed).
#
# ## 5. Mask R-CNN data: compact instance targets
#
# One `targets/<name>.npz` per image holds each instance's box, class and a tight bit-packed
# crop of its mask (no dense [N, H, W] arrays on disk). `read_target(..., dense=True)` gives
# what torchvision's Mask R-CNN takes, and `defectlab.dl.MaskRCNNDataset("maskrcnn")` serves
# them to PyTorch.

# %%
report = defectlab.write_maskrcnn(ds, WORK / "maskrcnn", overwrite=True)
print(report)
target = defectlab.read_target(WORK / "maskrcnn" / "targets" / f"{ds[0].key}.npz", dense=True)
{k: (v.shape, v.dtype) for k, v in target.items() if hasattr(v, "shape")}

# %%
from types import SimpleNamespace

instance_ids = np.zeros(target["size_hw"], np.int32)
semantic = np.zeros(target["size_hw"], np.uint8)
for i, (mask, label) in enumerate(zip(target["masks"], target["labels"]), start=1):
    instance_ids[mask > 0] = i
    semantic[mask > 0] = label
as_prediction = SimpleNamespace(semantic=semantic, instances=instance_ids,
                                classes=dict(enumerate((lab.name for lab in ds.labels), start=1)))
from defectlab.imaging.io import read_image

show_prediction(as_prediction, read_image(ds[0].image), colors=defectlab.notebook.label_colors(ds),
                title=f"{len(target['labels'])} instances in targets/{ds[0].key}.npz");

# %% [markdown]
# ## 6. Tiles, splits and augmentations in one call
#
# Big micrographs are cut into tiles with their labels cut consistently, split into
# train / val / test by source image, and the training tiles get augmented copies.
# The same call writes `to="unet"`, `"maskrcnn"`, `"yolo"` or `"coco"`.

# %%
report = defectlab.prepare(ds, WORK / "tiles", to="maskrcnn", tile=128, split=(0.5, 0.25, 0.25),
                           augment="flip,rot90", copies=1, overwrite=True)
print(report)
sorted(p.name for p in (WORK / "tiles").iterdir())

# %%
preview = sorted((WORK / "tiles" / "preview").glob("*.png"))
fig, axes = plt.subplots(1, len(preview[:2]), figsize=(11, 5.5), layout="constrained", squeeze=False)
for ax, path in zip(axes[0], preview):
    ax.imshow(read_image(path))
    ax.set_title(path.name)
    ax.set_axis_off()

# %% [markdown]
# ## 7. Your own files
#
# The same steps on your export. Without `MY_EXPORT`, the workshop's own CVAT job export is
# used when it is found beside this repository (`shared/data/workshop`): 37 hand-drawn
# polygons of helium bubbles. The workshop notebook turned them into masks by truncating
# every vertex to a whole pixel and filling the contours, which makes each bubble larger than
# drawn. Here the mask of each polygon covers exactly the pixels whose centers lie inside it.

# %%
workshop = Path("..", "..", "shared", "data", "workshop")
export = MY_EXPORT
if export is None and (workshop / "DL_for_Microscopy_Train_Lab_1.xml").exists():
    export = workshop / "DL_for_Microscopy_Train_Lab_1.xml"

if export is None:
    print("Set MY_EXPORT (and MY_IMAGES if needed) in the first cell to run this part on your own export.")
else:
    mine = defectlab.read(Path(export).expanduser(), images=MY_IMAGES)
    display(mine)
    defectlab.show(mine, 0)
    report = defectlab.write_unet(mine, WORK / "my_unet", overwrite=True)
    print(report)

# %% [markdown]
# How far is each way of making the mask from the polygons' exact area? (Only for the
# workshop's file, which came with the mask its notebook made.)

# %%
workshop_mask = workshop / "DL_for_Microscopy_Train_Img_1_unet_mask.npy"
if export is not None and Path(export).name == "DL_for_Microscopy_Train_Lab_1.xml" and workshop_mask.exists():
    item = mine[0]
    ours = defectlab.semantic_mask(item, mine.class_index()) > 0
    theirs = np.load(workshop_mask)[0] > 0
    # The area the polygons cover (overlaps once), measured on a grid 8x finer than the pixels:
    k = 8
    fine = defectlab.Item("fine", (item.size_hw[0] * k, item.size_hw[1] * k),
                          tuple(s.replace(points_xy=s.points_xy * k) for s in item.shapes))
    drawn = (defectlab.semantic_mask(fine, mine.class_index()) > 0).sum() / k**2
    print(f"area the polygons cover: {drawn:.0f} px²\n"
          f"defectlab mask:  {ours.sum()} px ({100 * (ours.sum() / drawn - 1):+.2f} %)\n"
          f"workshop mask:   {theirs.sum()} px ({100 * (theirs.sum() / drawn - 1):+.2f} %)")
    fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    diff = np.zeros(ours.shape + (3,), np.uint8)
    diff[ours & theirs] = (120, 120, 120)
    diff[theirs & ~ours] = (255, 60, 60)
    diff[ours & ~theirs] = (60, 160, 255)
    ax.imshow(diff[:200, :200], interpolation="nearest")
    ax.set_title("top-left 200 px: both (gray), only the workshop's (red), only ours (blue)")
    ax.set_axis_off()
