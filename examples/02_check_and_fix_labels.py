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
# # Check and fix labels before they cost a training run
#
# A duplicate shape, a polygon whose outline crosses itself, a slip of the mouse, a cavity
# drawn at the outer edge of its dark rim instead of the inner one: each of these teaches a
# network something wrong, and none of them shows up until the model is poor.
# `defectlab.check` finds them (the same as `defectlab check` on the command line), the
# drawings show where they are, and the fixed labels go back to CVAT.
#
# Runs top to bottom on synthetic micrographs with mistakes put in on purpose; set
# `MY_EXPORT` to check your own CVAT export.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import defectlab
from defectlab.model import Ellipse, Polygon
from defectlab.notebook import show_findings

WORK = Path(os.environ.get("DEFECTLAB_WORK", "defectlab_work")) / "02_check_and_fix_labels"
WORK.mkdir(parents=True, exist_ok=True)

MY_EXPORT = None   # e.g. "~/Downloads/task_42-2024_01_01_annotations.zip"
MY_IMAGES = None   # the folder of the image files, if they are not in the export or beside it

# %% [markdown]
# ## 1. An export with typical mistakes
#
# Three synthetic micrographs with exact labels, then the mistakes labelers make:
#
# * image 0: one cavity labeled twice, a bow-tie polygon (its outline crosses itself), a
#   three-click sliver that covers hardly any pixel;
# * image 1: two cavities outlined at the outer edge of the dark Fresnel rim (they should
#   follow its inner edge), a loop outlined inside its dark ring (it should follow the outer
#   edge);
# * image 2: a precipitate dragged past the image border.
#
# The result is written as a CVAT export, as a labeler would download it.

# %%
clean = defectlab.synthetic(WORK / "export", n=3, size=256, seed=2, overwrite=True)
a, b, c = clean.items

cavity = next(s for s in a.shapes if s.label == "cavity")
a = a.__class__(a.name, a.size_hw, a.shapes + (
    cavity,
    Polygon(label="precipitate", points_xy=[(20, 20), (44, 44), (44, 20), (20, 44)]),
    Polygon(label="precipitate", points_xy=[(130.0, 8.0), (133.0, 8.4), (130.4, 9.0)]),
), image=a.image, id=a.id)

inside = lambda s, margin: margin < s.cx < 256 - margin and margin < s.cy < 256 - margin  # noqa: E731
wrong_edge = [k for k, s in enumerate(b.shapes) if s.label == "cavity" and s.rx > 6 and inside(s, s.rx + 12)][:2]
loop_k = next(k for k, s in enumerate(b.shapes) if s.label == "loop")
shapes = list(b.shapes)
for k in wrong_edge:
    shapes[k] = shapes[k].replace(rx=shapes[k].rx + 2.5, ry=shapes[k].ry + 2.5)
shapes[loop_k] = shapes[loop_k].replace(rx=shapes[loop_k].rx - 3, ry=shapes[loop_k].ry - 3)
b = b.__class__(b.name, b.size_hw, tuple(shapes), image=b.image, id=b.id)

c = c.__class__(c.name, c.size_hw, c.shapes + (
    Polygon(label="precipitate", points_xy=[(236, 100), (270, 96), (272, 130), (240, 128)]),
), image=c.image, id=c.id)

defectlab.write(clean.with_items([a, b, c]), WORK / "with_mistakes.xml", format="cvat")
ds = defectlab.read(WORK / "with_mistakes.xml", images=WORK / "export" / "images")
ds

# %% [markdown]
# ## 2. Check
#
# Errors will train wrongly; warnings are probably mistakes worth a look; info is worth
# knowing. CVAT cannot store which edge a label follows, so the convention is guessed from
# the label's name (cavity, bubble, void: inner edge; loop: outer edge) and said so — pass
# `edges={"cavity": "inner", "loop": "outer"}` to set it.

# %%
result = defectlab.check(ds)
result

# %% [markdown]
# `show_findings` draws an image with the shapes at fault outlined in the color of their
# severity and the place of each finding boxed.

# %%
names = list(dict.fromkeys(f.image for f in result.findings if f.image and f.severity != "info"))
fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 5.8), layout="constrained", squeeze=False)
for ax, name in zip(axes[0], names):
    show_findings(result, name, ax=ax, severities=("error", "warning"))

# %% [markdown]
# A closer look at the edges: the gray values along the major axis of a cavity drawn at the
# wrong edge. The outline (dashed) should sit where the bright interior meets the dark rim,
# not outside the rim.

# %%
from scipy import ndimage

shape = ds[1].shapes[wrong_edge[0]]
image = defectlab.imaging.io.read_image(ds[1].image).astype(float)
t = np.linspace(-shape.rx - 8, shape.rx + 8, 200)
angle = np.deg2rad(shape.rotation_deg)
x, y = shape.cx + t * np.cos(angle), shape.cy + t * np.sin(angle)
profile = ndimage.map_coordinates(image, [y - 0.5, x - 0.5], order=1, mode="nearest")  # pixel centers at +0.5

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
show_findings(result, ds[1].name, ax=axes[0], severities=("warning",))
axes[0].plot(x, y, color="yellow", linewidth=0.8)
axes[0].set_xlim(shape.cx - shape.rx - 14, shape.cx + shape.rx + 14)
axes[0].set_ylim(shape.cy + shape.rx + 14, shape.cy - shape.rx - 14)
axes[1].plot(t, profile, "k-")
for edge in (-shape.rx, shape.rx):
    axes[1].axvline(edge, color="C0", linestyle="--")
axes[1].set_xlabel("distance from the center along the yellow line (px)")
axes[1].set_ylabel("gray value")
axes[1].set_title("dashed: the drawn outline, outside the dark rim");

# %% [markdown]
# ## 3. Fix
#
# `defectlab.fix` repairs what needs no judgment — the second of two duplicates is removed,
# shapes are clipped to the image, holes between masks are filled — lists every change, and
# counts what needs a person. It is `defectlab check EXPORT --fix OUT` on the command line;
# `out=` writes the repaired copy of the export with a `changes.json`.

# %%
repaired = defectlab.fix(ds, result, out=WORK / "repaired", overwrite=True)
print(repaired)
print(*repaired.changes, sep="\n")
print("left for a person:", dict(repaired.not_fixable))

# %% [markdown]
# The rest needs a person, in CVAT: redraw the bow-tie, delete the sliver if it is a slip of
# the mouse, move the cavity outlines onto the inner edge of the rim and the loop's onto the
# outer edge of its ring. Here we know what was meant, so we do it in code: delete the
# crossing and tiny shapes, and move each ellipse outline by the offset the check measured
# (`finding.value`, px; positive: the edge lies outside the outline).

# %%
second = defectlab.check(repaired.dataset, progress=False)


def by_hand(result):
    drop = {(f.image, f.shape) for f in result.findings if f.code in ("shape-self-intersecting", "shape-tiny")}
    move = {(f.image, f.shape): f.value for f in result.findings if f.code == "edge-off-convention"}
    items = []
    for item in result.dataset.items:
        shapes = []
        for k, s in enumerate(item.shapes):
            if (item.name, k) in drop:
                continue
            if (item.name, k) in move and isinstance(s, Ellipse):
                s = s.replace(rx=s.rx + move[item.name, k], ry=s.ry + move[item.name, k])
            shapes.append(s)
        items.append(item.__class__(item.name, item.size_hw, tuple(shapes), image=item.image, id=item.id))
    return result.dataset.with_items(items)


fixed = by_hand(second)
print(f"shapes: {sum(len(it.shapes) for it in ds)} -> {sum(len(it.shapes) for it in fixed)}")

# %%
after = defectlab.check(fixed, report=WORK / "check_report.html", overwrite=True)
after

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5.8), layout="constrained")
show_findings(result, ds[1].name, ax=axes[0], severities=("error", "warning"))
axes[0].set_title("before: " + axes[0].get_title())
defectlab.show(fixed, 1, ax=axes[1], compare=clean, compare_label="true outline")
axes[1].set_title("after the fix");

# %% [markdown]
# The fixed labels as a CVAT export: in CVAT, open the task, *Actions → Upload annotations*,
# format *CVAT 1.1*, and choose this file. The offline HTML report `check_report.html`
# lists everything with pictures, to share with whoever labels.

# %%
defectlab.write(fixed, WORK / "fixed_annotations.xml", format="cvat")
assert not after.failed("error")
sorted(p.name for p in WORK.iterdir())

# %% [markdown]
# ## 4. Your own files
#
# Without `MY_EXPORT`, the workshop's CVAT job export is checked when it is found beside this
# repository (`shared/data/workshop`): 37 hand-drawn polygons of helium bubbles.

# %%
workshop = Path("..", "..", "shared", "data", "workshop")
export = MY_EXPORT
if export is None and (workshop / "DL_for_Microscopy_Train_Lab_1.xml").exists():
    export = workshop / "DL_for_Microscopy_Train_Lab_1.xml"

if export is None:
    print("Set MY_EXPORT (and MY_IMAGES if needed) in the first cell to check your own export.")
else:
    mine = defectlab.check(Path(export).expanduser(), images=MY_IMAGES)
    display(mine)
    if any(f.image for f in mine.findings if f.severity != "info"):
        show_findings(mine, severities=("error", "warning"))
    else:
        defectlab.show(mine.dataset, 0)
