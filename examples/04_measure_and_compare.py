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
# # Measure defects, and compare predictions with human labels
#
# From labels (or a model's predictions) to the numbers a paper reports: every defect's size
# in nm, counts, number densities, size distributions, area fraction and swelling. Then a
# model's predictions against human labels: which defects it found, which it missed, what it
# invented, and how far off its sizes are — a model can score well on IoU and still bias a
# size distribution. The same as `defectlab measure` and `defectlab evaluate`.
#
# Runs top to bottom on synthetic micrographs; set `MY_EXPORT` (and `MY_PIXEL_SIZE`) to
# measure your own labels, and `MY_PREDICTIONS` to score a model's (e.g. the
# `prelabels/annotations.xml` that `defectlab predict` writes).

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import defectlab
from defectlab.measurement import Table
from defectlab.model import Ellipse

WORK = Path(os.environ.get("DEFECTLAB_WORK", "defectlab_work")) / "04_measure_and_compare"
WORK.mkdir(parents=True, exist_ok=True)

MY_EXPORT = None        # your labels: a CVAT export, .xml, folder or .zip
MY_IMAGES = None        # the folder of the image files, if they are not in the export or beside it
MY_PIXEL_SIZE = None    # e.g. "0.38nm" when the image files carry no calibration (PNG, JPEG)
MY_PREDICTIONS = None   # a model's predictions of the same images, e.g. ".../prelabels/annotations.xml"

# %% [markdown]
# ## 1. Measure
#
# Synthetic PNGs carry no calibration, so the pixel size is given (TIFF, DM3/DM4 and EMD
# files from the microscope carry their own, which `measure` reads). Defects cut by the image
# border are counted but left out of the size statistics (their size is cut too).

# %%
PIXEL_SIZE = "0.5nm"
labels = defectlab.synthetic(WORK / "labels", n=4, size=256, seed=3, overwrite=True)
m = defectlab.measure(labels, pixel_size=PIXEL_SIZE, thickness="80nm", out=WORK / "measure", overwrite=True)
Table({c: m.per_set[c] for c in ("label", "count", "count_sized", "density_per_um2", "size_mean_nm",
                                  "size_std_nm", "area_fraction", "swelling_percent")})

# %% [markdown]
# One row per defect, with the unit in every column name:

# %%
m.defects.filter(m.defects["label"] == "cavity")

# %%
labels_measured = [lab for lab in m.labels if lab != "dislocation line"]
fig, axes = plt.subplots(1, len(labels_measured), figsize=(4 * len(labels_measured), 3.2), layout="constrained")
colors = defectlab.notebook.label_colors(labels)
for ax, name in zip(axes, labels_measured):
    rows = (m.defects["label"] == name) & ~m.defects["touches_border"].astype(bool)
    sizes = m.defects["diameter_nm"][rows].astype(float)
    ax.hist(sizes, bins="auto", color=colors[name], edgecolor="black")
    ax.set_xlabel("equivalent diameter (nm)")
    ax.set_title(f"{name}: n = {len(sizes)}, mean {sizes.mean():.1f} nm")
axes[0].set_ylabel("defects");

# %% [markdown]
# `measure(..., out=...)` also wrote the tables as CSV, `summary.json`, the figures and an
# `index.html` to open in a browser:

# %%
sorted(p.name for p in (WORK / "measure").iterdir())

# %% [markdown]
# ## 2. Predictions against labels
#
# Without `MY_PREDICTIONS`, the predictions are simulated, with the faults real models have:
# outlines drawn 1 px outside every cavity (at the outer edge of the dark rim, as a model
# trained on such labels would), small cavities missed now and then, and a loop that is not
# there.

# %%
def simulated_predictions(labels, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for item in labels.items:
        shapes = []
        for s in item.shapes:
            if s.label == "cavity":
                if s.rx < 6 and rng.random() < 0.5:
                    continue  # missed
                s = s.replace(rx=s.rx + 1.0, ry=s.ry + 1.0)  # drawn 1 px too large
            shapes.append(s)
        shapes.append(Ellipse(label="loop", cx=rng.uniform(40, 216), cy=rng.uniform(40, 216), rx=12, ry=8))
        items.append(item.__class__(item.name, item.size_hw, tuple(shapes), image=item.image, id=item.id))
    return labels.with_items(items)


if MY_PREDICTIONS is not None:
    predictions = defectlab.read(Path(MY_PREDICTIONS).expanduser(), images=MY_IMAGES)
else:
    predictions = simulated_predictions(labels)
defectlab.show(predictions, 0, compare=labels, compare_label="human labels");

# %% [markdown]
# A prediction matches a label of its class when their pixel IoU is at least `iou`;
# precision is the share of predictions that match, recall the share of labels found.
# Sizes are compared on the matched pairs and on the whole distributions.

# %%
e = defectlab.evaluate(predictions, labels, iou=0.5, pixel_size=PIXEL_SIZE, out=WORK / "evaluate", overwrite=True)
print(", ".join(f"{k} {e.overall[k]:.3f}" for k in ("precision", "recall", "f1", "pixel_iou", "mAP")))
Table({c: e.per_class[c] for c in ("label", "n_true", "n_pred", "precision", "recall", "f1",
                                    "size_mean_error_percent", "density_error_percent")})

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
areas = np.isin(e.matches["label"], ["cavity", "loop", "precipitate"])  # lines are compared by length
for name in ("cavity", "loop", "precipitate"):
    rows = e.matches["label"] == name
    axes[0].plot(e.matches["true_size_nm"][rows], e.matches["pred_size_nm"][rows], "o", label=name,
                 color=colors[name], alpha=0.7)
top = float(np.nanmax(e.matches["true_size_nm"][areas])) * 1.1
axes[0].plot([0, top], [0, top], "k--", linewidth=1)
axes[0].set_xlabel("labeled diameter (nm)")
axes[0].set_ylabel("predicted diameter (nm)")
axes[0].set_title("matched defects")
axes[0].legend()
cav = e.histograms["cavity"]
edges = np.asarray(cav["edges"])
axes[1].stairs(cav["true"], edges, label="human labels", color="black")
axes[1].stairs(cav["pred"], edges, label="predictions", color=colors["cavity"], linewidth=2)
axes[1].set_xlabel(f"cavity diameter ({cav['unit']})")
axes[1].set_ylabel("cavities")
axes[1].set_title("size distributions")
axes[1].legend();

# %% [markdown]
# One pixel more on every radius is +7 % on the largest cavities here (radius 14 px) and +33 %
# on the smallest (3 px); the missed small cavities shift the distribution further. The mean
# cavity size is off by `size_mean_error_percent` in the table above, while the pixel IoU
# still looks good: the bias a mean IoU hides.
#
# ## 3. Your own files
#
# Without `MY_EXPORT`, the workshop's CVAT job export is measured when it is found beside
# this repository (`shared/data/workshop`). Its PNG has no calibration and none is known
# here, so its sizes stay in px — `measure` warns about it and says how to give one.

# %%
workshop = Path("..", "..", "shared", "data", "workshop")
export = MY_EXPORT
if export is None and (workshop / "DL_for_Microscopy_Train_Lab_1.xml").exists():
    export = workshop / "DL_for_Microscopy_Train_Lab_1.xml"

if export is None:
    print("Set MY_EXPORT (and MY_PIXEL_SIZE) in the first cell to measure your own labels.")
else:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mine = defectlab.measure(Path(export).expanduser(), images=MY_IMAGES, pixel_size=MY_PIXEL_SIZE)
    for w in caught:
        print(f"note: {w.message}")
    unit = "nm" if mine.calibrated else "px"
    display(Table({c: mine.per_set[c] for c in ("label", "count", "count_sized", f"size_mean_{unit}",
                                                 f"size_std_{unit}", "area_fraction")}))
    sizes = mine.defects[f"diameter_{unit}"][~mine.defects["touches_border"].astype(bool)].astype(float)
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    ax.hist(sizes, bins="auto", edgecolor="black")
    ax.set_xlabel(f"equivalent diameter ({unit})")
    ax.set_ylabel("defects")
    ax.set_title(f"{Path(export).name}: {len(sizes)} defects")
