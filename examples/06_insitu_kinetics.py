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
# # In-situ TEM: follow every defect through a video
#
# An in-situ video (heating, irradiation, straining in the microscope) shows defects appear,
# grow, move, coalesce and vanish. Here each defect is linked from frame to frame into a
# *track* — a defect missed on a frame or two keeps its id, two cavities that coalesce end in
# a merge — and each track gets its lifetime, its growth rate in nm/s with an uncertainty and
# its fate. The same as `defectlab track`.
#
# Runs top to bottom on a synthetic video with known tracks; set `MY_SOURCE` to a
# `defectlab predict` folder of your frames (or a CVAT video export), and `MY_FRAMES`,
# `MY_PIXEL_SIZE`, `MY_INTERVAL` as needed.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import defectlab
from defectlab.measurement import Table
from defectlab.preparation.synthetic_video import SyntheticVideoConfig, make_synthetic_video

WORK = Path(os.environ.get("DEFECTLAB_WORK", "defectlab_work")) / "06_insitu_kinetics"
WORK.mkdir(parents=True, exist_ok=True)
SMOKE = bool(os.environ.get("DEFECTLAB_SMOKE"))

MY_SOURCE = None       # a defectlab predict folder of the frames, or a CVAT video export
MY_FRAMES = None       # the frames: a folder, a TIFF/DM4/EMD/SER stack, an MP4/AVI
MY_PIXEL_SIZE = None   # e.g. "0.38nm" when the frames carry no calibration
MY_INTERVAL = None     # e.g. "0.5s" or "25fps" when the files do not say

# %% [markdown]
# ## 1. A video with known tracks
#
# Drift of the whole specimen, a shake of each defect, growing cavities and loops, black dots,
# defects appearing and vanishing, and coalescences of cavities — written as a CVAT for video
# 1.1 export whose tracks are the truth.

# %%
cfg = SyntheticVideoConfig(size_hw=(256, 256), n_frames=30 if SMOKE else 80, n_defects=20, n_merges=1,
                           n_splits=1, approach_frames=8)
video = make_synthetic_video(WORK / "video", cfg, seed=2, overwrite=True)
source = MY_SOURCE or WORK / "video"
print(f"{len(video.tracks)} true tracks over {cfg.n_frames} frames; frames in {WORK / 'video' / 'images'}")

# %% [markdown]
# ## 2. Track
#
# `max_displacement` bounds a defect's own motion between frames, after the specimen's drift
# is removed; `gap` is how many frames a defect may be missed. Linking is per class.

# %%
result = defectlab.track(source, frames=MY_FRAMES, pixel_size=MY_PIXEL_SIZE or "0.5nm",
                         frame_interval=MY_INTERVAL or "0.5s", max_displacement="5px", gap=2,
                         out=WORK / "tracks", overwrite=True)
s = result.summary()
print(f"{s['tracks']} tracks, fates {s['fates']}, {s['merges']} merge(s), {s['splits']} split(s)")
if result.scores:  # a CVAT video export: scored against its own tracks
    print({k: round(result.scores[k], 4) for k in ("MOTA", "IDF1", "HOTA")}, "ID switches", result.scores["IDSW"])

# %% [markdown]
# One row per track: first and last frame and time, lifetime, equivalent diameter, growth rate
# (least-squares slope) with its standard error, displacement, fate, parents and children.

# %%
t = result.tracks
cols = ["track_id", "label", "first_frame", "last_frame", "lifetime_s", "diameter_mean_nm", "growth_nm_per_s",
        "growth_stderr_nm_per_s", "fate", "parents", "children"]
longest = np.argsort(-t["lifetime_frames"], kind="stable")[:12]
Table({c: t[c][longest] for c in cols})

# %% [markdown]
# ## 3. The tracks on a frame

# %%
d, ids = result.linked.detections, result.linked.track_id
f = cfg.n_frames // 2
fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(result.frames[f], cmap="gray")
here = d.frame == f
for x, y, a, tid in zip(d.x[here], d.y[here], d.area_px[here], ids[here]):
    r = np.sqrt(a / np.pi)
    ax.add_patch(plt.Circle((x - 0.5, y - 0.5), r + 1, fill=False, color=f"C{tid % 10}", linewidth=1))
    ax.text(x + r, y - r, str(tid), color=f"C{tid % 10}", fontsize=7)
ax.set_title(f"frame {f}: track ids")
ax.axis("off")
plt.show()

# %% [markdown]
# ## 4. Kinetics: counts and sizes over time

# %%
fr = result.kinetics.frames
fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
for lab in sorted(set(fr["label"].tolist())):
    sel = fr["label"] == lab
    a1.plot(fr["time_s"][sel], fr["density_per_um2"][sel], label=lab)
    a2.plot(fr["time_s"][sel], fr["diameter_mean_nm"][sel], label=lab)
a1.set_ylabel("defects per µm²")
a2.set_ylabel("mean diameter (nm)")
a2.set_xlabel("time (s)")
a1.legend(frameon=False)
plt.show()

# %%
tf = result.kinetics.track_frames
fig, ax = plt.subplots(figsize=(7, 4))
for j in longest[:8]:
    tid = int(t["track_id"][j])
    sel = tf["track_id"] == tid
    line, = ax.plot(tf["time_s"][sel], tf["diameter_nm"][sel], ".", markersize=3)
    g, t0 = t["growth_nm_per_s"][j], tf["time_s"][sel]
    if np.isfinite(g):
        ax.plot(t0, tf["diameter_nm"][sel].mean() + g * (t0 - t0.mean()), color=line.get_color(), linewidth=1,
                label=f"#{tid}: {g:.3f} ± {t['growth_stderr_nm_per_s'][j]:.3f} nm/s")
ax.set_xlabel("time (s)")
ax.set_ylabel("equivalent diameter (nm)")
ax.legend(frameon=False, fontsize=7)
plt.show()

# %% [markdown]
# ## 5. Back to labeling
#
# `tracks/prelabels/annotations.xml` holds the tracks as CVAT for video 1.1 pre-labels
# (ellipses with keyframes, `outside` where a track ends): upload it to the CVAT video task
# (Actions → Upload annotations → CVAT 1.1) and correct tracks instead of redrawing frames.
# `tracks/mot.txt` is the MOT challenge text other tracking tools read; `tracks/index.html`
# is the whole report, with `overlay.gif`:

# %%
print(sorted(p.name for p in (WORK / "tracks").iterdir()))
display(Image(filename=str(WORK / "tracks" / "overlay.gif")))
