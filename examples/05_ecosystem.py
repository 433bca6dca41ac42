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
# # The same labels in CVAT, Fiji, napari, HyperSpy — and a model that runs in Fiji
#
# Microscopists work in many tools. defectlab meets them there, letting each tool's own
# library or format do the format work:
#
# 1. **CVAT → Fiji**: the labels as an ImageJ ROI set (`RoiSet.zip`) for Fiji's ROI Manager,
#    read back by `roifile` (the library Fiji-format users in Python rely on);
# 2. **napari**: the same labels as Shapes layers, one per label in its color;
# 3. **bioimage.io**: a trained U-Net exported as a model package that Fiji (deepImageJ),
#    ilastik, QuPath and napari run without defectlab — run here by `bioimageio.core`, as
#    deepImageJ would, giving defectlab's masks;
# 4. **HyperSpy**: predictions as signals on the micrograph's calibrated axes, measured in nm.
#
# Runs top to bottom on synthetic micrographs, in a few CPU minutes.

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import defectlab

WORK = Path(os.environ.get("DEFECTLAB_WORK", "defectlab_work")) / "05_ecosystem"
WORK.mkdir(parents=True, exist_ok=True)
SMOKE = os.environ.get("DEFECTLAB_SMOKE") == "1"

ds = defectlab.synthetic(WORK / "export", n=4, size=128, seed=0, n_loops=0, n_precipitates=0, n_lines=0,
                         overwrite=True)
ds

# %% [markdown]
# ## 1. CVAT → Fiji: an ImageJ ROI set per image
#
# `defectlab convert export --to imagej-roi --out rois` does the same. Each image gets
# `<name>.zip` beside a copy of the image: in Fiji, open `synthetic_000.png`, then the zip in
# the ROI Manager (*More » Open…*). Each ROI is named after its label (`cavity-0001`), its
# group is the label's class, its color the label's color. ImageJ's area ROIs (ovals,
# polygons) use pixel-corner coordinates like defectlab; its points and lines use pixel
# centers, so they are shifted by ½ px on the way — see the documentation page *Fiji, napari, bioimage.io, HyperSpy*.

# %%
import roifile

report = defectlab.write(ds, WORK / "rois", format="imagej-roi", overwrite=True)
print(report)
rois = roifile.roiread(WORK / "rois" / "synthetic_000.zip")
print([(r.name, r.roitype.name, r.subtype.name, r.group) for r in rois[:4]])

image = defectlab.read_micrograph(ds[0].image).array
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(image, cmap="gray", extent=(0, image.shape[1], image.shape[0], 0))  # pixel edges at integers
for r in rois:  # what roifile itself makes of the ROIs: the outline Fiji draws
    xy = r.coordinates()
    ax.plot(*np.vstack([xy, xy[:1]]).T, color=r.hexcolor(r.stroke_color), lw=1)
ax.set_title("the ROI set, as roifile reads it")
plt.show()

# the Fiji user corrects the ROIs and saves the set again; reading the folder gives the labels back
back = defectlab.read(WORK / "rois")
print(back.format, len(back), "images,", sum(len(it.shapes) for it in back), "shapes")

# %% [markdown]
# ## 2. napari: a Shapes layer per label
#
# With `pip install 'defectlab[napari]'`, napari opens any export defectlab reads
# (`napari export/annotations.xml`, or *File » Open*): the micrograph and one Shapes layer
# per label, in the label's color; *File » Save Selected Layers* writes them back as CVAT XML
# (`.xml`) or COCO (`.json`). The dock widgets *Predict defects* and *Measure defects (nm)*
# are under *Plugins » defectlab*. Here, the layer data napari gets (napari's pixel centers
# sit at integer coordinates, defectlab's at half-integers: ½ px apart, in (row, col) order):

# %%
from defectlab.napari._layers import dataset_layers

layers, _ = dataset_layers(ds, item_index=0)
for data, attrs, kind in layers:
    print(f"{kind:6} {attrs['name']!r}: {len(data)} shapes {sorted(set(attrs.get('shape_type', [])))}")
first = ds[0].shapes[0]
print("ellipse here:", round(first.cx, 2), round(first.cy, 2), "→ napari center (row, col):",
      np.round(layers[0][0][0].mean(axis=0), 2))

# %% [markdown]
# ## 3. A model for Fiji: the bioimage.io package
#
# Train a small U-Net, then `defectlab export model --to bioimageio defects.zip` (here the
# Python call): the package holds TorchScript and ONNX weights, the preprocessing defectlab
# uses (the image's own min-max), the pixel size, test tensors from defectlab's own
# prediction, a README and a cover. `bioimageio.core` runs it as deepImageJ does.

# %%
from defectlab.dl.bioimageio import BioimageioOptions, export_bioimageio, load_bioimageio

run = defectlab.train_unet(ds, WORK / "model", epochs=4 if SMOKE else 20, batch_size=4, tile_size=64,
                           base_filters=8, depth=2, steps_per_epoch=15 if SMOKE else 40, lr=0.01,
                           overwrite=True, progress=False, plot=False)
package = export_bioimageio(run.model, WORK / "defects.bioimageio.zip", BioimageioOptions(
    authors=("A. Microscopist",), license="CC-BY-4.0", pixel_size="0.5nm", sample=ds[1].image.path,
    description="Cavities in synthetic TEM micrographs (a defectlab example)."), overwrite=True)
print(package)

new = defectlab.read_micrograph(ds[2].image).array
ours = run.model.predict(new)
theirs = load_bioimageio(package.path, weight_format="onnx").predict(new)  # bioimageio.core runs the package
halo = 8
inner = (slice(halo, -halo), slice(halo, -halo))
print("pixels with the same class away from the border:", f"{np.mean(ours.semantic[inner] == theirs.semantic[inner]):.2%}")

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (title, img) in zip(axes, [("micrograph", new), ("defectlab predict", ours.semantic),
                                   ("the package, in bioimageio.core", theirs.semantic)]):
    ax.imshow(img, cmap="gray" if title == "micrograph" else "viridis")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 4. HyperSpy: predictions on the signal's calibrated axes
#
# A micrograph from the microscope (`hs.load("a.dm4")`) is a HyperSpy `Signal2D` with its
# pixel size on its axes and the microscope's metadata. `predict_signal` gives the classes
# and instances back as signals on the same axes (stacks too), and `measure()` gives sizes
# in nm, with the signal's metadata kept in the report.

# %%
import hyperspy.api as hs

from defectlab.imaging.hyperspy import predict_signal

signal = hs.signals.Signal2D(np.stack([defectlab.read_micrograph(it.image).array for it in ds.items[2:]]))
for axis in signal.axes_manager.signal_axes:
    axis.scale, axis.units = 0.5, "nm"
signal.metadata.General.title = "synthetic cavities"
signal.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)

result = predict_signal(run.model, signal)
print(result.classes)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    m = result.measure(thickness="80nm")
print(m.per_set.rows()[0]["label"], "count", m.per_set.rows()[0]["count"], "mean diameter (nm):",
      round(m.per_set.rows()[0]["size_mean_nm"], 2))
print("kept:", m.settings["micrograph"]["metadata"]["Acquisition_instrument"])

ax_x, ax_y = result.classes.axes_manager.signal_axes
extent = (ax_x.offset, ax_x.offset + ax_x.scale * ax_x.size, ax_y.offset + ax_y.scale * ax_y.size, ax_y.offset)
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(result.classes.data[0], extent=extent)
ax.set_xlabel(f"x ({ax_x.units})")
ax.set_ylabel(f"y ({ax_y.units})")
ax.set_title("classes signal, calibrated axes", fontsize=9)
plt.show()
