"""``train --auto`` (the default; ``--no-auto`` turns it off): the set is measured and planned
first, and the plan fills the training options left to defaults.

:func:`plan_training` runs :mod:`defectlab.plan` (fingerprint → :class:`~defectlab.plan.Plan`)
on the training data and returns the changes it makes to the
:class:`~defectlab.dl.options.TrainOptions`:

================  =====================================  ========================================
plan choice       training option                        taken when
================  =====================================  ========================================
``tile_size``     ``tile_size`` (crop and tile)          not given (``--tile``)
``overlap``       ``overlap`` (of prediction tiles)      not given (``--overlap``)
``normalization`` ``normalization`` (``percentile``)     not given (``--normalization``)
``augment``       ``augmentations`` (the plan's spec)    neither ``--augmentations`` nor
                                                         ``--no-augment`` given
``batch_size``    ``batch_size``                         not given (``--batch-size``)
``schedule``      ``schedule`` (``onecycle``)            not given (``--schedule``)
``init``          ``init`` (``synthetic``, ``scratch``)    not given (``--init``)
================  =====================================  ========================================

Only the choices the architecture lists in ``Architecture.planned`` are taken (the U-Net: all
of them); the others show its defaults, and say so. The plan's ``steps`` are an estimate shown
in the table: the time budget (``--time``) fits the epochs as training goes. An option given
explicitly always wins, and ``plan.json`` lists it as ``given``. A written training folder
(``write_unet``) has no shapes to measure: it trains with the defaults, and a note says so.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..plan import Fingerprint, Normalization, Plan, PlanOptions, fingerprint, make_plan
from ..plan.options import ARCHITECTURES
from ..plan.planner import choose_init
from .data import Source
from .options import TrainOptions

#: The smallest tile :class:`~defectlab.plan.PlanOptions` takes; a smaller one given is kept as it is.
MIN_PLAN_TILE = 32

__all__ = ["AutoPlan", "PLAN_TO_OPTION", "check_planned_options", "given_names", "plan_training"]

#: A plan's choice -> the training option it sets.
PLAN_TO_OPTION: dict[str, str] = {"tile_size": "tile_size", "overlap": "overlap", "normalization": "normalization",
                                  "augment": "augmentations", "batch_size": "batch_size", "schedule": "schedule",
                                  "init": "init"}


@dataclass(frozen=True)
class AutoPlan:
    """What :func:`plan_training` made: the fingerprint, the plan (as trained: choices the
    architecture does not plan show its values), the planning options, and ``changes`` (training
    option -> value) it makes to the options."""

    fingerprint: Fingerprint
    plan: Plan
    options: PlanOptions
    changes: Mapping[str, Any]


def given_names(arch: Any, options: TrainOptions | None, changes: Mapping[str, Any]) -> set[str]:
    """The training options given explicitly: the keywords, and the fields of ``options`` that
    differ from the defaults of its class (those of the architecture, for an instance of
    ``arch.options_class()``; else :class:`TrainOptions`', where None means "not given")."""
    names = {f.name for f in dataclasses.fields(TrainOptions)}
    given = {k for k in changes if k in names}
    if options is not None:
        cls = type(options) if isinstance(options, arch.options_class()) else TrainOptions
        defaults = cls()
        given |= {n for n in names if getattr(options, n) != getattr(defaults, n)}
    return given


def check_planned_options(arch: Any, options: TrainOptions) -> None:
    """A ValueError for ``normalization`` or ``augmentations`` given to an architecture that does
    not take them (it normalizes min-max and augments with flips and turns only)."""
    for choice, name, default in (("normalization", "normalization", "minmax"), ("augment", "augmentations", None)):
        value = getattr(options, name)
        if choice not in arch.planned and value not in (None, default):
            raise ValueError(f"train {arch.name}: {name}: the {arch.title} takes only its default "
                             f"({default or 'flips and 90-degree turns'}), got {value!r}")


def _plan_options(arch: Any, options: TrainOptions, given: set[str], device: Any) -> PlanOptions:
    kind = "cpu" if device.type == "cpu" else "gpu"
    augment = None
    if "augment" in given and not options.augment:
        augment = ""
    elif "augmentations" in given:
        augment = options.augmentations
    budget = options.time_budget_s
    tile = options.tile_size if "tile_size" in given else None
    values = {"tile_size": tile if tile is not None and tile >= MIN_PLAN_TILE else None,
              "overlap": options.overlap if "overlap" in given else None,
              "normalization": options.normalization if "normalization" in given else None,
              "batch_size": options.batch_size if "batch_size" in given else None,
              "augment": augment, "arch": arch.name if arch.name in ARCHITECTURES else None,
              "init": options.init if "init" in given else None,
              "time_budget_s": budget if budget is not None and math.isfinite(budget) else None}
    return PlanOptions(device=kind, **{k: v for k, v in values.items() if v is not None})


def plan_training(arch: Any, source: Source, options: TrainOptions, given: set[str], device: Any,
                  notes: list[str], *, multiple: int = 1, progress: bool = False) -> AutoPlan | None:
    """Measure the training data, plan, and say which training options the plan sets.

    Parameters
    ----------
    arch : Architecture
        What is trained (its ``planned`` choices are taken).
    source : Source
        The training data (a Dataset is measured; a written folder is not: None is returned).
    options : TrainOptions
        The training options, the architecture's defaults filled in.
    given : set of str
        The options given explicitly (:func:`given_names`): the plan keeps them.
    device : torch.device
        What trains (a CPU or a GPU plan).
    notes : list of str
        What the user should know is appended here.
    multiple : int
        The net's input multiple: a planned overlap is rounded up to one (tiles step by it).
    progress : bool
        A progress bar while the images are measured.

    Returns
    -------
    AutoPlan or None
    """
    if not arch.planned:
        notes.append(f"--auto: the {arch.title} takes no choices from a plan yet: trained with its defaults")
        return None
    if source.dataset is None:
        notes.append(f"--auto: {source.description} is a written training folder, whose shapes cannot be measured: "
                     f"trained with the defaults (train on the labeling export to plan from it)")
        return None
    popts = _plan_options(arch, options, given, device)
    fp = fingerprint(source.dataset, line_width=popts.line_width, progress=progress)
    plan = make_plan(fp, popts)
    if "tile_size" in given and options.tile_size < MIN_PLAN_TILE:  # below what a plan chooses: kept as given
        plan = replace(plan, tile_size=options.tile_size, reasons={**plan.reasons, "tile_size": "given"},
                       given=tuple(c for c in plan.reasons if c in (*plan.given, "tile_size")))
        if "overlap" not in given:
            plan = replace(plan, overlap=min(plan.overlap, options.tile_size // 4),
                           reasons={**plan.reasons, "overlap": "a quarter of the given tile at most"})
    if arch.name not in ARCHITECTURES:
        plan = replace(plan, arch=arch.name, reasons={**plan.reasons, "arch": "given"},
                       given=tuple(dict.fromkeys((*plan.given, "arch"))))
        if "init" not in given:
            init, why = choose_init(fp, arch.name)
            plan = replace(plan, init=init, reasons={**plan.reasons, "init": why})
    if "overlap" not in given and plan.overlap % multiple:
        up = -(-plan.overlap // multiple) * multiple
        if up < plan.tile_size:
            plan = replace(plan, overlap=up, reasons={**plan.reasons, "overlap": plan.reasons["overlap"]
                                                      + f"; rounded up to {up} px, a multiple of the net's {multiple}"})
    reasons, chosen = dict(plan.reasons), list(plan.given)
    if "schedule" in given:
        plan = replace(plan, schedule=options.schedule)
        reasons["schedule"], chosen = "given", chosen + ["schedule"]
    changes: dict[str, Any] = {}
    for choice, name in PLAN_TO_OPTION.items():
        if choice in chosen:
            continue
        if choice not in arch.planned:
            default = getattr(options, name)
            if choice == "normalization":
                plan = replace(plan, normalization=replace(plan.normalization, method="minmax"))
            elif choice == "augment":
                plan = replace(plan, augment="flip,rot90" if options.augment else "")
            else:
                plan = replace(plan, **{choice: default})
            reasons[choice] = f"the {arch.title}'s default (it does not take this choice from a plan yet)"
            continue
        value = getattr(plan, choice)
        changes[name] = value.method if isinstance(value, Normalization) else value
    reasons["steps"] = reasons.get("steps", "") + " (an estimate: the time budget fits the epochs as training goes)"
    plan = replace(plan, reasons=reasons, given=tuple(c for c in plan.reasons if c in chosen))
    return AutoPlan(fp, plan, popts, changes)
