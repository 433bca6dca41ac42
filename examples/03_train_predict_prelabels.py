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
# # Train, predict, and send pre-labels back to CVAT
#
# A U-Net learns the labels of a set of micrographs; it then predicts new micrographs of any
# size (in overlapping tiles, blended without seams), and its predictions go back to CVAT as
# pre-labels, so that the labeler corrects outlines instead of drawing every one. The same
# for a Mask R-CNN. Each step is also a command: `defectlab train`, `defectlab predict`.
#
# Needs the `torch` extra: `pip install 'defectlab[torch]'` (Google Colab has torch already;
# *Runtime → Change runtime type → GPU* makes training much faster — `device="auto"` uses it).
#
# **Settings.** Unchanged, the U-Net trains for 5 to 10 minutes on a CPU (much less on a GPU)
# and reaches a validation IoU of about 0.9 on cavities, loops and precipitates. With
# `DEFECTLAB_SMOKE=1` in the environment (as the test suite runs it) everything is tiny and
# takes seconds: the pictures then show an untrained model.

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import defectlab
from defectlab.imaging.io import read_image
from defectlab.notebook import label_colors, show_prediction

WORK = Path(os.environ.get("DEFECTLAB_WORK", "defectlab_work")) / "03_train_predict_prelabels"
WORK.mkdir(parents=True, exist_ok=True)
SMOKE = os.environ.get("DEFECTLAB_SMOKE") == "1"
PRETRAINED = False   # True: Mask R-CNN starts from torchvision's weights (downloads them once; needs internet)

if SMOKE:   # seconds: shows that every step runs
    N_IMAGES, SIZE = 4, 96
    UNET = dict(epochs=2, batch_size=4, tile_size=64, base_filters=4, depth=2, min_steps=2, steps_per_epoch=4)
    MASKRCNN = dict(epochs=1, batch_size=1, tile_size=64, max_steps=1)
else:       # minutes on a CPU: a model worth looking at
    N_IMAGES, SIZE = 12, 256
    UNET = dict(epochs=30, batch_size=8, tile_size=128, base_filters=16, depth=3, patience=8)
    MASKRCNN = dict(epochs=5, batch_size=2, tile_size=256)

# %% [markdown]
# ## 1. Labeled micrographs, and new ones
#
# Training images with their labels, and two new images the model never sees in training
# (another seed), whose labels we keep only to judge the predictions.

# %%
train = defectlab.synthetic(WORK / "train_export", n=N_IMAGES, size=SIZE, seed=0, overwrite=True)
new = defectlab.synthetic(WORK / "new_export", n=2, size=SIZE, seed=100, overwrite=True)
colors = label_colors(train)
train

# %% [markdown]
# ## 2. Train a U-Net
#
# `train_unet` takes a dataset (or a `write_unet` folder, or any export), holds out 20 % of
# the images for validation, trains on random crops with flips and rotations, keeps the
# weights of the best validation epoch, and writes a model folder: `config.json` (classes,
# colors, normalization, tile size) and `weights.pt`. With `auto=True` it first plans from
# the data (tile, percentile normalization, TEM augmentations, batch, schedule) and writes
# `plan.json`; at short CPU budgets that plan does not yet beat these fixed defaults
# (`benchmarks/bench_auto.py`), so it is not the default.

# %%
run = defectlab.train_unet(train, WORK / "unet_model", overwrite=True, **UNET)
print(run)
sorted(p.name for p in run.path.iterdir())

# %%
epochs = [h["epoch"] for h in run.history]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
axes[0].plot(epochs, [h["train_loss"] for h in run.history], "o-", label="training")
axes[0].plot(epochs, [h["val_loss"] for h in run.history], "o-", label="validation")
axes[0].set_xlabel("epoch")
axes[0].set_ylabel("loss")
axes[0].legend()
for name in run.history[0]["val_iou"]:
    axes[1].plot(epochs, [h["val_iou"].get(name, np.nan) for h in run.history], "o-", label=name,
                 color=colors.get(name))
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("validation IoU")
axes[1].set_ylim(0, 1)
axes[1].legend(fontsize="small");

# %% [markdown]
# ## 3. Predict a new micrograph
#
# `model.predict(image)` takes an image of any size (a numpy array or a file) and returns
# the class mask, the instances split from it, and a confidence per pixel. The white dashed
# outlines are the true labels of this image.

# %%
image = read_image(new[0].image)
pred = run.model.predict(image)
print(pred.counts())
show_prediction(pred, image, colors=colors, truth=new[0]);

# %% [markdown]
# A model folder loads anywhere (CPU or GPU) and predicts the same:

# %%
model = defectlab.load_model(WORK / "unet_model")
print(model)
assert np.array_equal(model.predict(image).semantic, pred.semantic)

# %% [markdown]
# ## 4. Pre-labels for CVAT
#
# `defectlab.predict` predicts image files or folders and writes class masks, instance
# TIFFs, overlay pictures and, with `prelabels="cvat"`, a CVAT for images 1.1 file. Each
# instance becomes a polygon whose pixels are the predicted ones (a mask where no polygon
# can hold it). In CVAT: open the task with these images, *Actions → Upload annotations*,
# format *CVAT 1.1*, choose `prelabels/annotations.xml`; then correct instead of drawing.

# %%
report = defectlab.predict(model, WORK / "new_export" / "images", WORK / "predictions", prelabels="cvat",
                           overwrite=True)
print(report)
sorted(p.name for p in (WORK / "predictions").iterdir())

# %%
prelabels = defectlab.read(report.prelabels, images=WORK / "new_export" / "images")
defectlab.show(prelabels, 0, compare=new, compare_label="true labels");

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 5), layout="constrained")
for ax, path in zip(axes, sorted((WORK / "predictions" / "overlays").glob("*.png"))):
    ax.imshow(read_image(path))
    ax.set_title(f"overlays/{path.name}")
    ax.set_axis_off()

# %% [markdown]
# ## 5. Mask R-CNN
#
# The same for instance segmentation. Offline, Mask R-CNN starts from scratch and needs a
# GPU and many epochs to learn — the few epochs here only show the steps; with internet,
# `PRETRAINED = True` starts from torchvision's weights and learns far faster.
# `backbone="resnet18"` is the lighter net.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # "training from scratch": run.notes says it
    mrcnn = defectlab.train_maskrcnn(train, WORK / "maskrcnn_model", backbone="resnet18", pretrained=PRETRAINED,
                                     overwrite=True, **MASKRCNN)
print(mrcnn)
print(*mrcnn.notes, sep="\n")

# %%
mpred = mrcnn.model.predict(image)
print(mpred.counts())
show_prediction(mpred, image, colors=colors, truth=new[0]);
