"""``prepare``: a labeling export -> tiles -> splits -> augmented copies -> training data + manifest.

One call does what the workshop did with a cropper per model: it cuts every source image into
tiles with the labels cut consistently (:mod:`~defectlab.preparation.tiling`), splits by source
image (:mod:`~defectlab.preparation.splits`; one image is split spatially), adds augmented copies
of the training tiles (:mod:`~defectlab.preparation.augment`), and writes them with the existing
writers, so every output kind gets the same tiles.

Layout written::

    OUT/manifest.json             sources with sha256, every parameter, counts, normalization
    OUT/train/, OUT/val/, OUT/test/   --to unet | maskrcnn: one complete writer output per split
                                  (write_unet / write_maskrcnn layout), so that
                                  MaskRCNNDataset(OUT / "train") and
                                  SegmentationDataset(OUT, split="train") read them directly
    OUT/<format layout>           --to yolo | coco (and any other registered writer): one writer
                                  output whose items carry their split as subset — YOLO:
                                  images/<split>/, labels/<split>/, data.yaml (its ``path`` set
                                  to OUT); COCO: annotations/instances_<split>.json, images/<split>/
    OUT/preview/                  pictures: each source image with its tiles outlined by split
                                  (up to 4 images), and a few training tiles with their labels

Tile images are cut from the pixels (each source image is read once), written losslessly
(PNG deflated with zlib's run-length strategy, :func:`~defectlab.imaging.io.write_image`
``png_rle``, or TIFF for dtypes PNG cannot hold) into a staging folder inside the output's
temporary folder, handed to the writers as ordinary image files (the U-Net and Mask R-CNN
writers hard-link them), and the staging folder is removed: the output appears atomically.
Each instance is rasterized once in its source image; for ``--to unet`` the tiles' class masks
are cut from the source's (staged beside the tiles and copied by ``write_unet(masks=...)``),
except for tiles that dropped a clipped remainder, which the writer draws from their shapes.

Normalization is not applied to the files (they keep the source's pixel values); the
manifest records how the datasets normalize them (:func:`normalize_image`), so prediction can
repeat it: ``"minmax"`` — each image by its own min and max to [0, 1] (the default, as the
other defectlab datasets do); ``"meanstd"`` — ``(x - mean) / std`` with the mean and std of
the training tiles as written; ``"none"`` — raw values as float32.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._output import output_dir
from .._parallel import BackgroundWrites, background_writes
from ..errors import DatasetError, ImageError
from ..model import Dataset, ImageSource, Item, Note
from ..raster import rasterize, semantic_mask
from .augment import Augment
from .options import NORMALIZATIONS, PrepareOptions
from .resize import fit as fit_item
from .splits import SPLITS, SpatialSplit, spatial_split, split_sources
from .tiling import DEFAULT_MIN_VISIBLE, Window, stable_seed, tile_image, tile_item, tile_windows

__all__ = ["prepare", "PrepareReport", "normalize_image", "MANIFEST", "NORMALIZATIONS", "read_manifest"]

#: File name of the manifest in a prepared folder.
MANIFEST = "manifest.json"
#: Writers that get one folder per split (the others get the split as each item's subset).
_PER_SPLIT = ("unet", "maskrcnn")
_MANIFEST_VERSION = 1


@dataclass
class PrepareReport:
    """What :func:`prepare` wrote.

    Attributes
    ----------
    out : Path
        The output folder.
    manifest : dict
        The contents of ``manifest.json``.
    notes : list of Note
        What was skipped or changed: reader notes, degenerate shapes, dropped remainders.
    spatial : dict
        Source image name -> its :class:`SpatialSplit`, for images split spatially.
    """

    out: Path
    manifest: dict
    notes: list[Note] = field(default_factory=list)
    spatial: dict[str, SpatialSplit] = field(default_factory=dict)

    @property
    def counts(self) -> dict:
        """Per split: tiles, augmented tiles, instances per label, ... (see the manifest)."""
        return self.manifest["splits"]

    def __str__(self) -> str:
        parts = [f"{s} {c['tiles']}" + (f" (+{c['augmented_tiles']} augmented)" if c["augmented_tiles"] else "")
                 for s, c in self.counts.items()]
        return f"tiles: {', '.join(parts)} -> {self.out}"


# -- helpers --------------------------------------------------------------------------------------


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _export_files(source: str | None) -> list[dict]:
    """The annotation files of the export, with their hashes (image files are listed per item)."""
    if not source:
        return []
    path = Path(source)
    if path.is_file():
        return [{"path": str(path), "sha256": _sha256_file(path)}]
    if path.is_dir():
        return [{"path": str(p), "sha256": _sha256_file(p)} for p in sorted(path.iterdir())
                if p.is_file() and p.suffix.lower() in (".xml", ".json", ".ndjson", ".yaml", ".yml", ".txt", ".csv")]
    return []


def _tile_suffix(source_suffix: str, image: np.ndarray) -> str:
    """Lossless file type for tiles: PNG when it holds the pixels, else TIFF."""
    suffix = source_suffix.lower()
    if suffix in (".tif", ".tiff"):
        return ".tif"
    gray_ok = image.ndim == 2 and image.dtype in (np.uint8, np.uint16, np.bool_)
    rgb_ok = image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    return ".png" if gray_ok or rgb_ok else ".tif"


def normalize_image(image: np.ndarray, normalization: Mapping[str, Any] | str = "minmax") -> np.ndarray:
    """An image as float32, normalized the way a manifest records it.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
    normalization : dict or str
        ``manifest["normalization"]`` or a method name: ``"minmax"`` (each image to [0, 1] by
        its own min and max; a flat image gives zeros), ``"meanstd"`` (needs ``mean`` and
        ``std``, one value or one per channel), ``"none"``.

    Returns
    -------
    ndarray
        float32, same shape.

    Examples
    --------
    >>> normalize_image(np.array([[10, 20], [30, 50]], np.uint8)).tolist()
    [[0.0, 0.25], [0.5, 1.0]]
    >>> normalize_image(np.array([[1.0, 3.0]]), {"method": "meanstd", "mean": [2.0], "std": [0.5]}).tolist()
    [[-2.0, 2.0]]
    """
    spec = {"method": normalization} if isinstance(normalization, str) else dict(normalization)
    method = spec.get("method")
    x = np.asarray(image).astype(np.float32)
    if method == "minmax":
        lo, hi = float(x.min()), float(x.max())
        return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    if method == "meanstd":
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        if x.ndim == 2:
            mean, std = mean.mean(), np.sqrt((std ** 2).mean())
        return (x - mean) / np.where(std > 0, std, 1.0)
    if method == "none":
        return x
    raise ValueError(f"expected normalization method in {NORMALIZATIONS}, got {method!r}")


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a prepared folder (``folder/manifest.json``, or its parent's for a split)."""
    from ..errors import ParseError

    folder = Path(folder)
    for path in (folder / MANIFEST, folder.parent / MANIFEST):
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ParseError(path, f"not a readable manifest ({err})") from err
            if not isinstance(data, dict) or "normalization" not in data:
                raise ParseError(path, "expected a defectlab prepare manifest with a 'normalization' entry")
            return data
    raise FileNotFoundError(f"{folder}: no {MANIFEST} here or in the parent folder")


class _Stats:
    """Running per-channel sums for the mean and std of the training tiles."""

    def __init__(self) -> None:
        self.n = 0
        self.s: np.ndarray | None = None
        self.s2: np.ndarray | None = None

    def add(self, image: np.ndarray) -> None:
        x = np.asarray(image, dtype=np.float64)
        x = x.reshape(-1, 1) if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        s, s2 = x.sum(axis=0), (x * x).sum(axis=0)
        if self.s is not None and self.s.shape != s.shape:
            raise DatasetError(f"normalization='meanstd' needs training images with one number of channels, got "
                               f"{self.s.shape[0]} and {s.shape[0]}; use 'minmax' or convert the images")
        self.s = s if self.s is None else self.s + s
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += x.shape[0]

    def result(self) -> tuple[list[float], list[float]]:
        if not self.n or self.s is None or self.s2 is None:
            return [0.0], [1.0]
        mean = self.s / self.n
        var = np.maximum(self.s2 / self.n - mean * mean, 0.0)
        return [float(v) for v in mean], [float(v) for v in np.sqrt(var)]


# -- pictures ------------------------------------------------------------------------------------

_SPLIT_RGB = {"train": (44, 160, 44), "val": (255, 127, 14), "test": (31, 119, 180)}


def _draw_rect(rgb: np.ndarray, win: Window, color: tuple[int, int, int], width: int = 2) -> None:
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = win.xyxy
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return
    c = np.array(color, dtype=np.uint8)
    rgb[y1 : min(y1 + width, y2), x1:x2] = c
    rgb[max(y2 - width, y1) : y2, x1:x2] = c
    rgb[y1:y2, x1 : min(x1 + width, x2)] = c
    rgb[y1:y2, max(x2 - width, x1) : x2] = c


#: Source previews show at most this many pixels along the longer side (larger images decimated).
PREVIEW_PX = 1024


def _source_preview(ds: Dataset, item: Item, image: np.ndarray, windows: list[tuple[str, Window]],
                    line_width: float, class_mask: np.ndarray, crops: dict) -> np.ndarray:
    """The source image (decimated) with its labels and its tiles outlined; ``class_mask`` and
    ``crops`` (every instance rasterized) are the ones the tiles were cut with."""
    from ..raster import instance_labels
    from ..viz import overlay

    colors = [lab.rgb(i) for i, lab in enumerate(ds.labels)]
    step = -(-max(item.size_hw) // PREVIEW_PX)  # every step-th pixel: a picture, not data
    sub = (slice(None, None, step), slice(None, None, step))
    rgb = overlay(image[sub], class_mask[sub], colors,
                  outlines=instance_labels(item, line_width=line_width, crops=crops)[sub])
    for split, win in windows:
        win = Window(win.x0 // step, win.y0 // step, -(-win.h // step), -(-win.w // step))
        _draw_rect(rgb, win, _SPLIT_RGB[split], width=max(1, min(rgb.shape[:2]) // 256))
    return rgb


def _montage(tiles: list[np.ndarray], columns: int = 4, gap: int = 4) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // columns)
    out = np.full((rows * (h + gap) - gap, min(columns, len(tiles)) * (w + gap) - gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        out[r * (h + gap) : r * (h + gap) + t.shape[0], c * (w + gap) : c * (w + gap) + t.shape[1]] = t
    return out


# -- the pipeline ---------------------------------------------------------------------------------


def prepare(
    export: str | Path | Dataset,
    out: str | Path,
    options: PrepareOptions | None = None,
    *,
    images: str | Path | None = None,
    write_options: Mapping[str, Any] | None = None,
    preview: bool = True,
    overwrite: bool = False,
    progress: bool = False,
    **changes: Any,
) -> PrepareReport:
    """Tile, split and augment a labeled dataset, and write it for training.

    Four steps: :func:`_plan` resolves the options against the data, :func:`_read_sources`
    reads and checks the export, :class:`_Tiler` cuts each image into tiles (and their
    augmented copies) in a staging folder, and the writer lays them out in ``out`` with the
    manifest and the pictures (:func:`_write`).

    Parameters
    ----------
    export : path or Dataset
        A labeling export (anything :func:`defectlab.read` reads) or a Dataset whose items
        have their image files.
    out : path
        Output folder, written atomically (see the module docstring for the layout).
    options : PrepareOptions, optional
        Output format, tiles, split, augmentations, resizing, normalization
        (:class:`~defectlab.preparation.options.PrepareOptions`; default: its defaults).
    images : path, optional
        Folder with the image files, if not beside the export.
    write_options : dict, optional
        More keyword arguments for the writer.
    preview : bool
        Write the pictures in ``OUT/preview/``.
    overwrite : bool
        Replace an existing output folder.
    progress : bool
        Show progress bars.
    **changes
        Fields of :class:`~defectlab.preparation.options.PrepareOptions` by name, applied over
        ``options``: ``to="maskrcnn"``, ``tile=256``, ``split="0.8,0.1,0.1"``, ….

    Returns
    -------
    PrepareReport

    Raises
    ------
    ImageError
        An image file is missing, unreadable, or not the size its labels declare.
    DatasetError
        An image too small for a tile (without ``pad``), or for a spatial split.
    ValueError
        An option out of range, or an output format ``prepare`` does not write.
    OutputError
        ``out`` exists (without ``overwrite``) or would hold an input.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from defectlab.preparation.synthetic import SyntheticConfig, make_synthetic_dataset
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_synthetic_dataset(tmp / "export", n_images=1, config=SyntheticConfig(size_hw=(128, 128)))
    >>> report = prepare(tmp / "export", tmp / "unet", tile=64, stride=32, augment="flip", preview=False)
    >>> sorted(p.name for p in report.out.iterdir())
    ['manifest.json', 'train', 'val']
    >>> {s: c["tiles"] for s, c in report.counts.items()}
    {'train': 5, 'val': 1, 'test': 0}
    """
    from ..progress import progress_iter

    opts = PrepareOptions.build(options, **changes)
    ds, originals, work_items = _read_sources(export, images)
    plan = _plan(opts, ds, work_items, originals)
    inputs = [it.image.path for it in ds.items if it.image is not None]
    if isinstance(export, (str, Path)) or ds.source:  # the export itself is never replaced
        inputs.append(Path(export if isinstance(export, (str, Path)) else ds.source))
    with output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        # the writer's masks are cut from each source image's (the same pixels, see tiling.py), unless
        # the writer is to draw lines of another width
        hand_masks = opts.to == "unet" and dict(write_options or {}).get("line_width", opts.line_width) == opts.line_width
        tiler = _Tiler(opts, plan, ds, tmp / ".staging", preview=preview, masks=hand_masks)
        # the tiles' PNGs are encoded in threads (both cores) while the next tiles are cut; all are
        # on disk when the block ends, before the writer reads them
        with background_writes() as tiler.writes:
            for item in progress_iter(work_items, total=len(work_items), desc="tiling", enabled=progress):
                tiler.add(item, originals[item.name])
            tiler.write_montage()  # when fewer than 8 training tiles were sampled
        manifest = _write(opts, plan, ds, tiler, tmp, Path(out), write_options=write_options, preview=preview,
                          progress=progress)
    return PrepareReport(Path(out), manifest, tiler.notes, tiler.spatial_splits)


@dataclass
class _Plan:
    """The options resolved against the data: what every step needs to know."""

    min_visible: float
    augment: Augment
    copies: int
    fractions: tuple[float, float, float]
    keep_subsets: bool
    spatial: bool
    split_of: dict[str, str]
    task_note: Note | None = None
    writer: dict[str, Any] = field(default_factory=dict)
    split_notes: list[Note] = field(default_factory=list)  # series kept in one split, or why not


def _read_sources(export: str | Path | Dataset, images: str | Path | None) -> tuple[Dataset, dict[str, Item], list[Item]]:
    """The dataset, its items by unique name (``"<subset>/<name>"`` where a name repeats across
    subsets of a project export), and the items to tile (renamed so, subset cleared)."""
    from ..formats import read

    if isinstance(export, Dataset):
        ds = export
    else:
        ds = read(export, images=images) if images is not None else read(export)
    missing = [it.name for it in ds.items if it.image is None]
    if missing:
        raise ImageError(f"{len(missing)} image file(s) not found, e.g. {missing[:3]}; "
                         "point to them with --images DIR (images=...) or copy them beside the export")
    keys = Counter(it.key for it in ds.items)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise DatasetError(f"two source images would both be named {dup[0]!r}; image names must be unique")
    if not ds.items:
        raise DatasetError("the export holds no images")
    originals = {(f"{it.subset}/{it.name}" if it.subset else it.name): it for it in ds.items}
    work_items = [replace(it, name=name, subset=None) for name, it in originals.items()]
    return ds, originals, work_items


def _plan(opts: PrepareOptions, ds: Dataset, work_items: list[Item], originals: dict[str, Item]) -> _Plan:
    """Resolve the defaults that depend on the data, and assign every source image its split."""
    mv = opts.min_visible if opts.min_visible is not None else (0.0 if opts.to == "unet" else DEFAULT_MIN_VISIBLE)
    aug = Augment.parse(opts.augment, min_visible=mv, line_width=opts.line_width)
    keep_subsets = opts.split == "keep"
    fractions = (1.0, 0.0, 0.0) if keep_subsets else opts.split
    spatial = bool(opts.spatial) if opts.spatial is not None else (len(ds.items) == 1 and fractions[0] < 1.0)
    if spatial and keep_subsets:
        raise DatasetError("split='keep' uses the export's subsets; it cannot be combined with a spatial split")
    if spatial and not opts.tile:
        raise DatasetError("a spatial split needs tiles (--tile); with whole images split by image instead")
    split_notes: list[Note] = []  # frames of one series kept in one split, or why not (splits.split_sources)
    if keep_subsets:
        split_of = {name: _subset_split(it.subset, name) for name, it in originals.items()}
    else:
        split_of, split_notes = ({}, []) if spatial else split_sources(work_items, fractions, seed=opts.seed,
                                                                        stratify=opts.stratify)
    writer: dict[str, Any] = {}
    task_note = None
    if opts.stack:
        writer["stack"] = True
    if opts.to == "yolo":
        from ..conversion import yolo_task

        writer["task"], task_note = yolo_task(ds, opts.task)
    return _Plan(mv, aug, opts.copies if aug else 0, fractions, keep_subsets, spatial, split_of, task_note, writer,
                 split_notes)


class _Tiler:
    """Cuts each source image into its tiles and augmented copies, in a staging folder, and
    keeps what the manifest and the pictures need."""

    def __init__(self, opts: PrepareOptions, plan: _Plan, ds: Dataset, stage: Path, *, preview: bool,
                 masks: bool = False) -> None:
        self.opts, self.plan, self.ds, self.stage, self.preview = opts, plan, ds, stage, preview
        #: split -> tile key -> its class mask PNG in the staging folder (``masks=True``), for write_unet
        self.masks: dict[str, dict[str, Path]] | None = {s: {} for s in SPLITS} if masks else None
        self.notes: list[Note] = list(ds.notes) + plan.split_notes + ([plan.task_note] if plan.task_note else [])
        self.spatial_splits: dict[str, SpatialSplit] = {}
        self.tiles: dict[str, list[Item]] = {s: [] for s in SPLITS}
        self.counts = {s: {"source_images": 0, "tiles": 0, "augmented_tiles": 0, "empty_tiles_kept": 0,
                           "empty_tiles_skipped": 0, "instances": Counter(), "clipped": Counter(),
                           "dropped": Counter(), "augment_dropped": Counter()} for s in SPLITS}
        self.sources: list[dict] = []
        self.stats = _Stats()
        self.previews: list[Path] = []  # the source previews, written by the writer threads as they are made
        self.train_samples: list[np.ndarray] = []
        self.montage_written = False
        self.colors = [lab.rgb(i) for i, lab in enumerate(ds.labels)]
        self.class_index = ds.class_index()
        self.writes = BackgroundWrites(1)  # prepare() hands it threads

    def _windows(self, item: Item, work: Item, record: dict) -> list[tuple[str, Window]]:
        """The tile windows of one source image, each with its split."""
        opts, plan = self.opts, self.plan
        if opts.tile is None:
            return [(plan.split_of[item.name], Window(0, 0, *work.size_hw))]
        if plan.spatial:
            sp = spatial_split(work.size_hw, opts.tile, plan.fractions, margin_px=opts.margin_px)
            self.spatial_splits[item.name] = sp
            record["spatial_split"] = sp.to_json()
            return [(s, w) for s in SPLITS if sp.regions[s]
                    for w in tile_windows(work.size_hw, opts.tile, opts.stride, within=sp.regions[s])]
        return [(plan.split_of[item.name], w) for w in tile_windows(work.size_hw, opts.tile, opts.stride, pad=opts.pad)]

    def add(self, item: Item, original: Item) -> None:
        """Tile one source image (and augment its training tiles)."""
        from ..imaging.io import read_image

        opts, plan = self.opts, self.plan
        data = item.image.read_bytes()
        pixels = read_image(item.image)
        if pixels.shape[:2] != item.size_hw:
            raise ImageError(f"{item.image}: image is {pixels.shape[1]}x{pixels.shape[0]} (WxH) but the labels "
                             f"of {item.name!r} are for {item.size_hw[1]}x{item.size_hw[0]}")
        record = {"name": original.name, "subset": original.subset, "file": str(item.image),
                  "sha256": _sha256_bytes(data), "size_hw": list(item.size_hw)}
        work = item
        if opts.image_size_hw is not None:
            pixels, work = fit_item(pixels, item, opts.image_size_hw, mode=opts.fit, fill=opts.fill)  # type: ignore[arg-type]
        suffix = _tile_suffix(item.image.suffix, pixels)
        placed = self._windows(item, work, record)
        record["split"] = sorted({s for s, _ in placed}, key=SPLITS.index) if plan.spatial else plan.split_of[item.name]
        for s in {s for s, _ in placed}:
            self.counts[s]["source_images"] += 1
        # each instance rasterized once in the source: for the tiles and for the source's mask
        crops = {i: rasterize(sh, work.size_hw, line_width=opts.line_width) for i, sh in enumerate(work.shapes)
                 if sh.is_area or sh.kind == "polyline"}
        tiles, tile_notes = tile_item(work, [w for _, w in placed], min_visible=plan.min_visible,
                                      line_width=opts.line_width, suffix=suffix, crops=crops)
        # every label pixel of the source lands in the same pixel of each tile without a dropped
        # remainder: such a tile's mask is the source's, cut by the window
        previewed = self.preview and len(self.previews) < 4
        class_mask = (semantic_mask(work, self.class_index, line_width=opts.line_width, crops=crops)
                      if self.masks is not None or previewed else None)
        self.notes.extend(tile_notes)
        if opts.tile is None:  # whole images keep their names
            tiles = [type(t)(Item(work.stem + suffix, t.item.size_hw, t.item.shapes), t.source, t.window,
                              t.clipped, t.dropped) for t in tiles]
        n_dropped = 0
        kept: list[tuple[str, Window]] = []
        for (s, win), t in zip(placed, tiles):
            c = self.counts[s]
            c["clipped"].update(t.clipped)
            c["dropped"].update(t.dropped)
            n_dropped += sum(t.dropped.values())
            if t.is_empty and opts.keep_empty < 1.0:
                draw = np.random.default_rng(np.random.SeedSequence(stable_seed(opts.seed, "empty", t.item.name)))
                if draw.random() >= opts.keep_empty:
                    c["empty_tiles_skipped"] += 1
                    continue
            if t.is_empty:
                c["empty_tiles_kept"] += 1
            kept.append((s, win))
            mask = tile_image(class_mask, win) if self.masks is not None and not t.dropped else None
            self._write_tile(s, t, tile_image(pixels, win, fill=opts.fill), suffix, mask)
        if n_dropped:
            self.notes.append(Note("tile-remainder-dropped",
                                   f"{n_dropped} clipped remainder(s) below min_visible={plan.min_visible:g} left out "
                                   "of tiles", item=item.name))
        self.sources.append(record)
        if previewed:
            from ..imaging.io import write_image

            rgb = _source_preview(self.ds, work, pixels, kept, opts.line_width, class_mask, crops)
            path = self.stage.parent / "preview" / f"{work.stem.replace('/', '__')}_tiles.png"
            path.parent.mkdir(exist_ok=True)
            self.writes.submit(write_image, path, rgb, png_compress_level=1)  # pictures: 4x faster than level 6
            self.previews.append(path)

    def _write_tile(self, split: str, t: Any, img: np.ndarray, suffix: str, mask: np.ndarray | None) -> None:
        """One kept tile (and its class mask, when given) into the staging folder, and its augmented
        copies when it is a training tile."""
        from ..imaging.io import write_image

        opts, plan, c = self.opts, self.plan, self.counts[split]
        path = self.stage / split / t.item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writes.submit(write_image, path, img, png_rle=True)  # encoded in a thread while the next tile is cut
        tile = Item(t.item.name, t.item.size_hw, t.item.shapes, image=ImageSource(path))
        self.tiles[split].append(tile)
        if mask is not None and self.masks is not None:
            mask_path = self.stage / ".masks" / split / f"{tile.key}.png"
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            self.writes.submit(write_image, mask_path, mask)  # what write_unet would write for the tile
            self.masks[split][tile.key] = mask_path
        c["tiles"] += 1
        c["instances"].update(sh.label for sh in t.item.shapes if sh.is_area or sh.kind == "polyline")
        if split != "train":
            return
        if opts.normalization == "meanstd":
            self.stats.add(img)
        pair = self.preview and len(self.train_samples) < 8 and not t.is_empty
        if pair:
            self.train_samples.append(_tile_overlay(img, t.item, self.class_index, self.colors, opts.line_width))
        stem = t.item.name[: -len(suffix)] if suffix and t.item.name.endswith(suffix) else t.item.name
        for k in range(plan.copies):
            rng = np.random.default_rng(np.random.SeedSequence(stable_seed(opts.seed, "augment", t.item.name, k)))
            res = plan.augment(img, t.item, rng=rng)
            aug_name = f"{stem}_aug{k}{suffix}"
            aug_path = self.stage / split / aug_name
            self.writes.submit(write_image, aug_path, res.image, png_rle=True)
            self.tiles[split].append(Item(aug_name, res.item.size_hw, res.item.shapes, image=ImageSource(aug_path)))
            c["augmented_tiles"] += 1
            c["augment_dropped"].update(res.dropped)
            c["instances"].update(sh.label for sh in res.item.shapes if sh.is_area or sh.kind == "polyline")
            if opts.normalization == "meanstd":
                self.stats.add(res.image)
            if pair and k == 0:
                self.train_samples.append(_tile_overlay(res.image, res.item, self.class_index, self.colors,
                                                        opts.line_width))
        if pair and len(self.train_samples) >= 8:  # the montage is complete: a writer thread writes it
            self.write_montage()

    def write_montage(self) -> None:
        """``preview/train_tiles.png``: the training tiles sampled so far, with their labels."""
        from ..imaging.io import write_image

        if self.train_samples and not self.montage_written:
            path = self.stage.parent / "preview" / "train_tiles.png"
            path.parent.mkdir(exist_ok=True)
            self.writes.submit(write_image, path, _montage(self.train_samples), png_compress_level=1)
            self.montage_written = True


def _write(opts: PrepareOptions, plan: _Plan, ds: Dataset, tiler: _Tiler, tmp: Path, out: Path, *,
           write_options: Mapping[str, Any] | None, preview: bool, progress: bool) -> dict:
    """Lay the staged tiles out with the writer, then write the manifest and the pictures."""
    from ..formats import write

    to, notes = opts.to, tiler.notes
    writer = {**plan.writer, **dict(write_options or {})}
    if to in ("unet", "maskrcnn", "yolo", "coco"):
        writer.setdefault("line_width", opts.line_width)
    if to in _PER_SPLIT:
        for s in SPLITS:
            if tiler.tiles[s]:
                sub = Dataset(labels=ds.labels, items=tuple(tiler.tiles[s]), source=ds.source, format=ds.format)
                # the staged tiles are removed below: the writer hard-links them instead of copying
                given: dict[str, Any] = {} if "link_images" in writer else {"link_images": "hard"}
                if tiler.masks is not None:
                    given["masks"] = tiler.masks[s]
                report = write(sub, tmp / s, format=to, progress=progress, **writer, **given)
                notes.extend(getattr(report, "notes", []) or [])
    else:
        everything = tuple(replace(it, subset=s) for s in SPLITS for it in tiler.tiles[s])
        written = tmp / ".written"
        report = write(Dataset(labels=ds.labels, items=everything, source=ds.source, format=ds.format),
                       written, format=to, **writer)
        notes.extend(getattr(report, "notes", []) or [])
        for child in sorted(written.iterdir()):
            child.rename(tmp / child.name)
        written.rmdir()
        if to == "yolo":
            _retarget_data_yaml(tmp / "data.yaml", out.absolute())
    shutil.rmtree(tiler.stage, ignore_errors=True)
    if to != "unet" and opts.normalization != "minmax":
        notes.append(Note("normalization-not-applied",
                          f"normalization={opts.normalization!r} is recorded for SegmentationDataset and prediction; "
                          f"MaskRCNNDataset and other {to} readers normalize images their own way"))
    manifest = _manifest(opts, plan, ds, tiler, writer)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def _normalization(opts: PrepareOptions, tiler: _Tiler) -> dict:
    """The manifest's ``normalization``: the method, its formula, its statistics."""
    if opts.normalization == "meanstd":
        mean, std = tiler.stats.result()
        return {"method": "meanstd", "mean": mean, "std": std,
                "computed_on": "training tiles as written (augmented copies included), raw pixel values",
                "formula": "(x - mean) / std, per channel"}
    if opts.normalization == "minmax":
        return {"method": "minmax", "scope": "each image by its own min and max",
                "formula": "(x - min) / (max - min); 0 where the image is flat"}
    return {"method": "none", "formula": "raw pixel values as float32"}


def _manifest(opts: PrepareOptions, plan: _Plan, ds: Dataset, tiler: _Tiler, writer: dict) -> dict:
    """``manifest.json``: where the tiles came from, how they were made, what each split holds."""
    from .. import __version__

    tile = opts.tile
    parameters = {
        "tile_hw": list(tile) if tile else None, "stride_hw": list(opts.stride or tile) if tile else None,
        "pad": opts.pad, "fill": opts.fill, "split": list(plan.fractions), "stratify": opts.stratify,
        "spatial": plan.spatial, "margin_px": opts.margin_px,
        "augment": plan.augment.to_json() if plan.augment else None, "copies": plan.copies, "seed": opts.seed,
        "min_visible": plan.min_visible, "keep_empty": opts.keep_empty,
        "size_hw": list(opts.image_size_hw) if opts.image_size_hw else None,
        "fit": opts.fit if opts.image_size_hw else None, "line_width": opts.line_width,
        "write_options": {k: _jsonable(v) for k, v in writer.items()},
    }
    return {
        "manifest_version": _MANIFEST_VERSION,
        "defectlab_version": __version__,
        "command": "prepare",
        "to": opts.to,
        "export": {"source": ds.source, "format": ds.format, "files": _export_files(ds.source)},
        "sources": tiler.sources,
        "parameters": parameters,
        "classes": {"0": "background", **{str(i): name for name, i in tiler.class_index.items()}},
        "normalization": _normalization(opts, tiler),
        "layout": ({s: f"{s}/" for s in SPLITS if tiler.tiles[s]} if opts.to in _PER_SPLIT
                   else {s: f"subset {s}" for s in SPLITS if tiler.tiles[s]}),
        "splits": {s: {k: (dict(sorted(v.items())) if isinstance(v, Counter) else v)
                       for k, v in tiler.counts[s].items()} for s in SPLITS},
        "spatial_split": ("; ".join(sp.describe() for sp in tiler.spatial_splits.values())
                          if tiler.spatial_splits else None),
        "notes": [{"code": n.code, "item": n.item, "where": n.where, "message": n.message} for n in tiler.notes],
    }


def _subset_split(subset: str | None, name: str) -> str:
    """The split of an export's subset name (split='keep')."""
    key = (subset or "").strip().lower()
    aliases = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}
    if key not in aliases:
        raise DatasetError(f"{name}: split='keep' needs subsets train / val / test, got {subset!r}")
    return aliases[key]


def _retarget_data_yaml(path: Path, final: Path) -> None:
    """YOLO's data.yaml names its folder by absolute path: make it the final output, not the staging one."""
    import yaml

    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for k, line in enumerate(lines):
        if line.startswith("path:"):
            lines[k] = yaml.safe_dump({"path": str(final)}, allow_unicode=True, default_flow_style=False)
            break
    path.write_text("".join(lines), encoding="utf-8")


def _tile_overlay(image: np.ndarray, item: Item, class_index: dict, colors: list, line_width: float) -> np.ndarray:
    from ..raster import instance_labels, semantic_mask
    from ..viz import overlay

    return overlay(image, semantic_mask(item, class_index, line_width=line_width), colors,
                   outlines=instance_labels(item, line_width=line_width))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
