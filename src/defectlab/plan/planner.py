"""The plan: training settings chosen from a :class:`~defectlab.plan.fingerprint.Fingerprint`, each with its reason.

The rules (nnU-Net's, where they suit 2-D micrographs of defects; what differs, and why):

``tile_size``
    At least ``context`` (3) times the extent of the largest defect that is not a line — the net
    must see the whole defect and the background around it — and at least 128 px, rounded up
    to a multiple of 32 (any U-Net depth up to 5 divides it); at most the shortest image side
    (rounded down to a multiple of 32), and at most 512 px on a CPU (1024 on a GPU), where
    larger crops cost more time per step than the context is worth. Lines are left out: a net
    recognizes a line from a piece of it. nnU-Net starts from the median image size and shrinks
    until GPU memory fits; micrographs are large and defects small, so the defects set the size.
``overlap``
    The least overlap of prediction tiles: the largest defect's extent rounded up to 8 px, so
    every defect lies whole inside some tile (at most half the tile).
``normalization``
    Each image clipped to its own 0.5 and 99.5 percentiles and scaled to 0…1, computed in
    float32 from the image's own values: 16-bit data keeps its full depth (no conversion to
    8 bit on the way, a known failure of other tools). Per image, not per set (nnU-Net clips
    CT with the set's foreground percentiles because Hounsfield units are calibrated; TEM
    gray values are not — exposure and gain change between sessions, so new micrographs must
    be seen as the training ones were). The set's own values at those percentiles are recorded
    (to flag new images unlike the training set). Min–max is the bad default it replaces: one
    hot pixel compresses the whole range.
``augment``
    Flips and 90° turns (exact: no interpolation); contrast and gamma (exposure, gain); Gaussian
    noise up to the set's own noise level (measured); blur up to a tenth of the smallest
    defects (more would move their edges against the labeling convention: a cavity is drawn at
    the inner edge of its dark rim); zoom within the spread of the set's pixel sizes (small,
    ±10 %, when they agree). Never intensity inversion (it turns an under-focus cavity into an
    over-focus one, with the label on the wrong side of the fringe) and no elastic warps.
``arch``
    The instance model ``stardist`` when at least ``touching`` (15 %) of the area defects touch
    or overlap another of their label — a class mask merges them, and splitting at necks
    cannot undo it — else the semantic ``unet``. Lines stay in the semantic head either way.
``batch_size``
    About half a megapixel of crops per step on a CPU (8 × 256²: the benchmarks' recipe, about
    a second a step on 2 cores), 4 megapixels on a GPU; between 2 and 32 crops.
``steps``
    ``0.9 × budget ÷ seconds per step`` (a tenth kept for validation and checkpoints). The
    seconds per step are estimated from :data:`SECONDS_PER_MEGAPIXEL` until they are measured:
    :meth:`Plan.with_step_seconds` re-plans with the time of the first real steps.
``schedule``
    One-cycle: warm-up, then annealing to the end of a known number of steps, which a time
    budget gives; "halve on a plateau" may never get to halving in a short run.
``init``
    ``synthetic`` (fine-tune the U-Net shipped with the package, pretrained on defectlab's own
    synthetic micrographs) when the plan trains a U-Net and a labeled class is of a kind it
    learned (cavity, loop, precipitate, dislocation line; a bubble or a void is a cavity:
    :func:`~defectlab.dl.shipped.defect_kind`), else ``scratch``. Measured
    (``benchmarks/bench_finetune.py``, the same 5 CPU-minute budget): object F1 0.824 vs 0.778
    from scratch on the workshop image's held-out quarter, 0.986 vs 0.899 on held-out synthetic
    images. nnU-Net always starts from scratch; a few labeled micrographs teach a net slowly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from ..dl.shipped import FROM_SCRATCH
from .fingerprint import Fingerprint
from .options import PlanOptions

__all__ = ["Normalization", "Plan", "choose_init", "make_plan", "SECONDS_PER_MEGAPIXEL", "DEFAULT_BUDGET_S", "CHOICES",
           "PERCENTILE_LEVELS"]

#: The plan's choices, in the order they are shown.
CHOICES: tuple[str, ...] = ("arch", "init", "tile_size", "overlap", "normalization", "augment", "batch_size",
                            "steps", "schedule")

#: Seconds of U-Net training per megapixel of crops in a step, until measured. CPU: the default
#: U-Net (16 filters, depth 3) in benchmarks/bench_train.py, 320 steps of 8 × 256² crops with
#: validation in about 6 min on 2 CPU cores (360 s / (320 × 0.52 Mpx) ≈ 2.1). GPU: a rough
#: guess for one recent card; ``train --auto`` measures its own steps either way.
SECONDS_PER_MEGAPIXEL: dict[str, float] = {"cpu": 2.1, "gpu": 0.05}
#: The time budget when none is given: a coffee break on a CPU, longer on a GPU.
DEFAULT_BUDGET_S: dict[str, float] = {"cpu": 600.0, "gpu": 1200.0}
#: Megapixels of crops per training step to aim for.
STEP_MEGAPIXELS: dict[str, float] = {"cpu": 0.5, "gpu": 4.0}
#: Largest training tile, px.
MAX_TILE: dict[str, int] = {"cpu": 512, "gpu": 1024}
#: Percentiles each image is clipped to.
PERCENTILE_LEVELS: tuple[float, float] = (0.5, 99.5)
MIN_TILE = 128
TILE_MULTIPLE = 32
MIN_BATCH, MAX_BATCH = 2, 32
VALIDATION_SHARE = 0.1
#: Fewer steps than this did not learn the thin lines in the benchmarks (benchmarks/README.md).
FEW_STEPS = 240
INSTANCE_ARCH = "stardist"


@dataclass(frozen=True, slots=True)
class Normalization:
    """How images are normalized: ``method`` (``"percentile"``, ``"minmax"``, ``"meanstd"`` or
    ``"none"``), per ``"image"`` or per ``"dataset"``; the percentile ``levels``; the set's
    values at them (``dataset_lo``, ``dataset_hi``, in the images' own units); the images'
    ``bit_depth`` and pixel type, kept as they are until the float32 conversion."""

    method: str = "percentile"
    scope: str = "image"
    levels: tuple[float, float] = PERCENTILE_LEVELS
    dataset_lo: float = math.nan
    dataset_hi: float = math.nan
    bit_depth: int = 8
    dtype: str = "uint8"

    def __post_init__(self) -> None:
        from .options import NORMALIZATIONS

        if self.method not in NORMALIZATIONS:
            raise ValueError(f"normalization: expected method in {NORMALIZATIONS}, got {self.method!r}")
        if self.scope not in ("image", "dataset"):
            raise ValueError(f"normalization: expected scope 'image' or 'dataset', got {self.scope!r}")
        lo, hi = (float(v) for v in self.levels)
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"normalization: expected percentile levels 0 <= lo < hi <= 100, got {self.levels!r}")
        object.__setattr__(self, "levels", (lo, hi))
        for name in ("dataset_lo", "dataset_hi"):
            object.__setattr__(self, name, math.nan if getattr(self, name) is None else float(getattr(self, name)))
        object.__setattr__(self, "bit_depth", int(self.bit_depth))

    def __str__(self) -> str:
        if self.method == "percentile":
            text = f"percentile {self.levels[0]:g}–{self.levels[1]:g} per {self.scope}"
        else:
            text = f"{self.method} per {self.scope}"
        return f"{text}, {self.bit_depth}-bit kept"


@dataclass(frozen=True, slots=True)
class Plan:
    """Training settings and why each was chosen (see the module docstring for the rules).

    ``reasons`` maps each of :data:`CHOICES` to a sentence; ``given`` lists the choices taken
    from the options instead of the data. ``step_seconds`` is an estimate until
    ``step_seconds_measured``. ``budget_s`` is the training time budget.
    """

    arch: str
    tile_size: int
    overlap: int
    normalization: Normalization
    augment: str
    batch_size: int
    steps: int
    schedule: str
    budget_s: float
    step_seconds: float
    step_seconds_measured: bool
    device: str
    reasons: Mapping[str, str] = field(default_factory=dict)
    given: tuple[str, ...] = ()
    training_px: int = 0
    init: str | None = FROM_SCRATCH

    def value(self, choice: str) -> Any:
        """The value of one of :data:`CHOICES`, as shown (the normalization as its summary)."""
        v = getattr(self, choice)
        return str(v) if isinstance(v, Normalization) else v

    def with_step_seconds(self, seconds: float) -> "Plan":
        """The plan with a measured time per training step: the steps are re-planned for the
        budget (unless they were given). The hook for ``train --auto``'s first steps.

        Examples
        --------
        >>> p = Plan("unet", 256, 64, Normalization(), "flip", 8, 100, "onecycle", 600.0, 2.0, False, "cpu",
        ...          training_px=10**6)
        >>> q = p.with_step_seconds(0.5)
        >>> q.steps, q.step_seconds_measured
        (1080, True)
        """
        seconds = float(seconds)
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"plan: expected measured step seconds > 0, got {seconds!r}")
        plan = replace(self, step_seconds=seconds, step_seconds_measured=True)
        if "steps" in self.given:
            return plan
        steps, why = _steps(plan.budget_s, seconds, True, plan.batch_size, plan.tile_size, plan.training_px,
                            plan.device)
        return replace(plan, steps=steps, reasons={**self.reasons, "steps": why})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, NaN as None."""
        d = asdict(self)
        n = d["normalization"]
        for k in ("dataset_lo", "dataset_hi"):
            n[k] = None if math.isnan(n[k]) else n[k]
        n["levels"] = list(n["levels"])
        d["reasons"] = dict(self.reasons)
        d["given"] = list(self.given)
        return d


def _round_up(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def _budget_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def choose_init(fp: Fingerprint, arch: str) -> tuple[str, str]:
    """``(init, why)``: the starting weights of ``arch`` on the set of ``fp`` (the ``init`` rule)."""
    from ..dl.shipped import defect_kind, shipped_kinds

    if arch != "unet":
        return FROM_SCRATCH, f"no pretrained {arch} is shipped: from scratch"
    kinds = shipped_kinds("synthetic")
    known = [c.name for c in fp.classes if defect_kind(c.name) in kinds]
    if not known:
        return FROM_SCRATCH, (f"no labeled class is of a kind the shipped U-Net learned ({', '.join(kinds)}): "
                              "from scratch")
    return "synthetic", (f"{', '.join(known)}: of a kind the shipped U-Net learned on synthetic micrographs; "
                         "fine-tuning it beat training from scratch at the same 5-min CPU budget (object F1 0.824 vs "
                         "0.778 on the workshop quarter, 0.986 vs 0.899 on synthetic images: bench_finetune.py)")


def _largest(fp: Fingerprint) -> tuple[str, float] | None:
    """The label and extent (px) of the largest defect that is not a line; None without any."""
    areas = [c for c in fp.classes if c.count and not c.thin]
    if not areas:
        return None
    c = max(areas, key=lambda c: c.extent_px.max)
    return c.name, c.extent_px.max


def _tile(fp: Fingerprint, options: PlanOptions) -> tuple[int, str]:
    side = fp.min_side_px
    ceiling = side // TILE_MULTIPLE * TILE_MULTIPLE
    if ceiling == 0:
        from ..errors import DatasetError

        raise DatasetError(f"the smallest image is {side} px across; training needs at least {TILE_MULTIPLE} px")
    cap = MAX_TILE[options.device]
    largest = _largest(fp)
    if largest is None:
        need, why = float(MIN_TILE), f"no area defects (lines only): {MIN_TILE} px of context"
    else:
        name, extent = largest
        need = options.context * extent
        why = (f"the largest {name} spans {extent:g} px; {options.context:g}× that is {need:g} px, "
               f"rounded up to a multiple of {TILE_MULTIPLE}")
    tile = max(_round_up(need, TILE_MULTIPLE), MIN_TILE)
    if largest is not None and tile > _round_up(need, TILE_MULTIPLE):
        why += f"; at least {MIN_TILE} px of context around small defects"
    if tile > cap:
        tile, why = cap, why + f"; at most {cap} px on a {options.device.upper()} (larger crops cost more than " \
                               f"their context is worth; tiled prediction still sees the defects whole)"
    if tile > ceiling:
        tile, why = ceiling, why + f"; the smallest image is {side} px across, so {ceiling} px"
    return tile, why + f" → {tile} px"


def _overlap(fp: Fingerprint, tile: int) -> tuple[int, str]:
    largest = _largest(fp)
    half = tile // 2 // 8 * 8
    if largest is None:
        return min(64, half), "no area defects: the usual overlap"
    name, extent = largest
    want = max(_round_up(extent, 8), 16)
    if want > half:
        return half, (f"the largest {name} spans {extent:g} px, more than half the tile: {half} px, so some seams "
                      f"cut a large defect (the blended tiles still agree across them)")
    return want, f"the largest {name} spans {extent:g} px: with this overlap every defect lies whole in some tile"


def _normalization(fp: Fingerprint) -> tuple[Normalization, str]:
    lo_q, hi_q = PERCENTILE_LEVELS
    i = fp.intensity
    lo, hi = i[f"p{lo_q:g}"], i[f"p{hi_q:g}"]
    full = i["max"] - i["min"]
    why = (f"each image clipped to its own {lo_q:g}–{hi_q:g} percentiles, then 0–1 (gray values change between "
           f"sessions, so per image); over the set these are {lo:.6g}–{hi:.6g} of {i['min']:.6g}–{i['max']:.6g}")
    if full > 0:
        tails = 1 - (hi - lo) / full
        why += f": min–max would spend {tails:.0%} of the range on the 1 % of pixels in the tails"
    if fp.clipped_high > 0.005:
        why += f"; {fp.clipped_high:.1%} of the pixels are saturated"
    if fp.bit_depth > 8:
        used = math.ceil(math.log2(i["max"] + 1)) if i["max"] >= 0 and fp.dtype[0] in "ui" else None
        why += (f"; {fp.bit_depth}-bit values go to the net as float32 at full depth, never through 8 bits"
                + (f" (they use {used} bits)" if used and used < fp.bit_depth else ""))
    else:
        why += f"; {fp.bit_depth}-bit"
    return Normalization("percentile", "image", PERCENTILE_LEVELS, lo, hi, fp.bit_depth, fp.dtype), why


def _augment(fp: Fingerprint) -> tuple[str, str]:
    ops = ["flip", "rot90", "contrast=0.8:1.25", "gamma=0.8:1.25"]
    whys = ["flips and 90° turns (exact, no interpolation)", "contrast and gamma for exposure and gain"]
    noise = [s.noise for s in fp.images if math.isfinite(s.noise)]
    if noise:
        level = float(sorted(noise)[len(noise) // 2])
        top = round(max(level, 0.01), 3)
        ops.append(f"noise=0:{top:g}")
        whys.append(f"Gaussian noise up to the set's own level ({level:.3f} of the range, median of the images)")
    areas = [c for c in fp.classes if c.count and not c.thin]
    if areas:
        small = min(c.diameter_px.median for c in areas)
        blur = round(min(1.0, 0.1 * small), 2)
        if blur >= 0.3:
            ops.append(f"blur=0:{blur:g}")
            whys.append(f"blur up to σ {blur:g} px, a tenth of the smallest defects' median diameter ({small:.1f} px), "
                        "which keeps their edges where the labels put them")
        else:
            whys.append(f"no blur: the smallest defects ({small:.1f} px) would lose their edges")
    sizes = fp.pixel_sizes_nm
    spread = max(sizes) / min(sizes) if len(sizes) == fp.n_images and sizes else 1.0
    if spread > 1.1:
        z = round(min(spread, 2.0), 2)
        ops.append(f"zoom={1 / z:.3g}:{z:g}@0.5")
        whys.append(f"zoom within the set's pixel sizes (they differ by {spread:.2f}×)")
    else:
        ops.append("zoom=0.9:1.1@0.5")
        whys.append("small scale changes (±10 %)" + (" — the pixel sizes agree" if sizes else ""))
    whys.append("never intensity inversion (it would swap under- and over-focus fringes against the labels) "
                "or elastic warps")
    return ",".join(ops), "; ".join(whys)


def _arch(fp: Fingerprint, options: PlanOptions) -> tuple[str, str]:
    areas = [c for c in fp.classes if c.count and not c.thin]
    lines = [c.name for c in fp.classes if c.count and c.thin]
    if not areas:
        return "unet", "lines only: a semantic U-Net"
    n = sum(c.count for c in areas)
    touching = sum(c.touching * c.count for c in areas) / n
    worst = max(areas, key=lambda c: c.touching)
    detail = ", ".join(f"{c.name} {c.touching:.0%}" for c in areas)
    if touching >= options.touching:
        why = (f"{touching:.0%} of the area defects touch or overlap another of their label ({detail}): a class "
               f"mask merges them, so the instance model {INSTANCE_ARCH} (threshold {options.touching:.0%})")
        if lines:
            why += f"; {', '.join(lines)} (lines) in its semantic head"
        return INSTANCE_ARCH, why
    why = (f"the defects stand apart ({touching:.0%} touch or overlap another; most: {worst.name} "
           f"{worst.touching:.0%}; threshold {options.touching:.0%}): a semantic U-Net, objects by connected components")
    return "unet", why


def _batch(tile: int, device: str) -> tuple[int, str]:
    target = STEP_MEGAPIXELS[device]
    batch = int(min(MAX_BATCH, max(MIN_BATCH, round(target * 1e6 / (tile * tile)))))
    return batch, (f"{batch} crops of {tile}² = {batch * tile * tile / 1e6:.2f} Mpx per step; about {target:g} Mpx "
                   f"suits a {device.upper()} (between {MIN_BATCH} and {MAX_BATCH} crops)")


def _steps(budget: float, step_s: float, measured: bool, batch: int, tile: int, training_px: int,
           device: str) -> tuple[int, str]:
    steps = max(1, int(budget * (1 - VALIDATION_SHARE) / step_s))
    how = "measured" if measured else (f"estimated from {SECONDS_PER_MEGAPIXEL[device]:g} s per Mpx on a "
                                       f"{device.upper()}; measured in the first steps of training")
    passes = steps * batch * tile * tile / training_px if training_px else math.nan
    why = (f"{_budget_text(budget)} × {1 - VALIDATION_SHARE:g} (a tenth for validation) ÷ {step_s:.3g} s per step "
           f"({how}) = {steps} steps, {passes:.0f} passes over the {training_px / 1e6:.2f} Mpx of labeled images")
    if steps < FEW_STEPS:
        why += f"; short: the benchmarks needed about {FEW_STEPS} steps to learn thin lines"
    return steps, why


def make_plan(fp: Fingerprint, options: PlanOptions = PlanOptions()) -> Plan:
    """The plan for a fingerprint: every choice from the data, unless ``options`` gives it.

    Parameters
    ----------
    fp : Fingerprint
        What :func:`~defectlab.plan.fingerprint.fingerprint` measured.
    options : PlanOptions
        Choices given (used as they are, with the reason "given") and the planning settings.

    Returns
    -------
    Plan
    """
    given = options.given()
    reasons: dict[str, str] = {}

    def choose(name: str, decide):
        if name in given:
            reasons[name] = "given"
            return given[name]
        value, why = decide()
        reasons[name] = why
        return value

    arch = choose("arch", lambda: _arch(fp, options))
    init = choose("init", lambda: choose_init(fp, arch))
    tile = choose("tile_size", lambda: _tile(fp, options))
    overlap = choose("overlap", lambda: _overlap(fp, tile))
    if "normalization" in given:
        norm, _ = _normalization(fp)
        norm = replace(norm, method=given["normalization"])
        reasons["normalization"] = "given"
    else:
        norm = choose("normalization", lambda: _normalization(fp))
    augment = choose("augment", lambda: _augment(fp))
    batch = choose("batch_size", lambda: _batch(tile, options.device))
    budget = options.time_budget_s or DEFAULT_BUDGET_S[options.device]
    measured = options.step_seconds is not None
    step_s = options.step_seconds if measured else SECONDS_PER_MEGAPIXEL[options.device] * batch * tile * tile / 1e6
    steps = choose("steps", lambda: _steps(budget, step_s, measured, batch, tile, fp.total_px, options.device))
    reasons["schedule"] = "one-cycle: warm up, then anneal to the end of the planned steps (a budget fixes them)"
    return Plan(arch=arch, tile_size=int(tile), overlap=int(overlap), normalization=norm, augment=augment,
                batch_size=int(batch), steps=int(steps), schedule="onecycle", budget_s=float(budget),
                step_seconds=float(step_s), step_seconds_measured=measured, device=options.device,
                reasons={k: reasons[k] for k in CHOICES}, given=tuple(k for k in CHOICES if k in given),
                training_px=fp.total_px, init=init)
