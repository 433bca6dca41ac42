"""bioimage.io model packages: export a defectlab U-Net, and run packages made elsewhere.

A bioimage.io package (model spec 0.5) is a zip holding ``rdf.yaml`` and the files it names.
Fiji (deepImageJ), ilastik, QuPath, napari and ``bioimageio.core`` run it without defectlab.
:func:`export_bioimageio` writes one from a U-Net model folder:

``inputs``      ``raw``: ``(batch, channel=1, y, x)`` float32, y and x any multiple of
                ``2 ** depth`` from the smallest one that holds the halo; a grayscale
                micrograph (color images are converted to gray first by defectlab, not by
                the package).
preprocessing   ``scale_range`` with percentiles 0 and 100 over ``y, x`` of each sample: the
                image's own minimum and maximum map to 0 and 1 — defectlab's ``minmax``
                normalization (bioimage.io adds ``eps = 1e-6`` to the denominator: a
                relative difference of 1e-6 / (max - min), below float32 noise for any real
                micrograph); a model trained with ``percentile`` normalization (``train
                --auto``): ``scale_range`` with its percentiles (0.5 and 99.5), then ``clip``
                to [0, 1].
``outputs``     ``probabilities``: ``(batch, channel=classes, y, x)`` float32, the softmax
                inside the weights; ``classes``: ``(batch, channel=1, y, x)`` uint8, the
                arg-max class index — the mask ``defectlab predict`` writes. ``halo``: the
                model's overlap / 2 px that a tiling consumer crops from each tile.
pixel size      the space axes' ``scale`` in nanometers (``pixel_size=``) — the pixel size
                of the training images, which new images should match.
weights         TorchScript (traced, softmax and arg-max included) and ONNX (opset 17,
                exported from the same net, its parent ``torchscript``).
test tensors    a micrograph (``sample=``, else a synthetic one), cut to a valid size, and
                what :meth:`defectlab.dl.model_io.Model.predict` gives for it: ``bioimageio.core``'s
                model test runs the package on the input and compares.
documentation   ``README.md`` (classes, normalization, training, validation, how to run it),
                a cover (the test input beside its predicted classes), license, authors and
                citations from the options.

:func:`load_bioimageio` reads a package made anywhere into a :class:`BioimageioModel` whose
``predict(image)`` gives a defectlab :class:`~defectlab.dl.predict.Prediction`, when its
inputs fit: one 2-D image input (``y``, ``x``; optional ``batch``; a channel axis of 1 or 3)
and an output on the same grid, either class probabilities (arg-max), a single foreground
probability (cut at 0.5) or a class/label image.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("defectlab.dl needs torch: pip install 'defectlab[torch]'") from err

from ..errors import FormatError, ImageError, OutputError

__all__ = ["BioimageioOptions", "BioimageioExport", "BioimageioModel", "export_bioimageio", "load_bioimageio",
           "BIOIMAGEIO_INSTALL"]

BIOIMAGEIO_INSTALL = "pip install 'defectlab[bioimageio]' (bioimageio.core and bioimageio.spec)"
INPUT_ID, PROBS_ID, CLASSES_ID = "raw", "probabilities", "classes"
#: The U-Net paper, cited when the user gives no citation of their own.
UNET_CITATION = ("Ronneberger O., Fischer P., Brox T. (2015) U-Net: Convolutional Networks for Biomedical "
                 "Image Segmentation. MICCAI 2015.", "10.1007/978-3-319-24574-4_28")


def _spec():
    try:
        from bioimageio.spec.model import v0_5
    except ImportError as err:
        raise ImportError(f"bioimage.io packages need bioimageio.spec: {BIOIMAGEIO_INSTALL}") from err
    return v0_5


def _cite(text: str) -> tuple[str, str | None, str | None]:
    """``"TEXT|DOI"`` or ``"TEXT|https://…"`` → (text, doi, url)."""
    body, sep, ref = text.rpartition("|")
    if not sep:
        raise ValueError(f"expected a citation as 'TEXT|DOI' or 'TEXT|URL', got {text!r}")
    ref = ref.strip()
    if ref.startswith(("http://", "https://")):
        return body.strip(), None, ref
    if re.match(r"^10\.\d{4,9}/\S+$", ref):
        return body.strip(), ref, None
    raise ValueError(f"expected a DOI (10.xxxx/…) or an http(s) URL after '|' in the citation, got {ref!r}")


@dataclass(frozen=True, slots=True)
class BioimageioOptions:
    """The options of ``defectlab export MODEL --to bioimageio OUT.zip`` (one place for each).

    Examples
    --------
    >>> BioimageioOptions(authors=("A. Microscopist",), license="MIT").license
    'MIT'
    >>> BioimageioOptions(cite=("no reference",))
    Traceback (most recent call last):
    ...
    ValueError: expected a citation as 'TEXT|DOI' or 'TEXT|URL', got 'no reference'
    """

    name: str | None = field(default=None, metadata={
        "help": "The model's name on bioimage.io (default: 'defectlab U-Net (<classes>)').", "cli": "--name"})
    description: str | None = field(default=None, metadata={
        "help": "One or two sentences on what the model segments.", "cli": "--description"})
    authors: tuple[str, ...] = field(default=(), metadata={
        "help": "An author's name; repeat for several (default: 'defectlab user').", "cli": "--author"})
    license: str = field(default="CC-BY-4.0", metadata={
        "help": "SPDX license identifier of the model (weights and package).", "cli": "--license"})
    cite: tuple[str, ...] = field(default=(), metadata={
        "help": "A citation 'TEXT|DOI' or 'TEXT|URL'; repeat for several (default: the U-Net paper).",
        "cli": "--cite"})
    tags: tuple[str, ...] = field(default=(), metadata={
        "help": "A tag for bioimage.io search; repeat for several (added to defectlab's own).", "cli": "--tag"})
    version: str = field(default="0.1.0", metadata={"help": "The package's version.", "cli": "--version"})
    pixel_size: str | float | None = field(default=None, metadata={
        "help": "Pixel size of the training images (0.38nm, 3.8Å): the axes' scale in nm.", "cli": "--pixel-size"})
    sample: str | Path | None = field(default=None, metadata={
        "help": "A micrograph for the test input and cover (default: a synthetic one).", "cli": "--sample"})
    git_repo: str | None = field(default=None, metadata={
        "help": "URL of the code or data repository behind the model.", "cli": "--git-repo"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "authors", tuple(self.authors))
        object.__setattr__(self, "cite", tuple(self.cite))
        object.__setattr__(self, "tags", tuple(self.tags))
        for c in self.cite:
            _cite(c)
        if not isinstance(self.license, str) or not self.license.strip():
            raise ValueError(f"expected an SPDX license identifier like 'CC-BY-4.0' or 'MIT', got {self.license!r}")
        if self.pixel_size is not None:
            from ..imaging.micrograph import parse_length

            parse_length(self.pixel_size, what="pixel size")
        if self.name is not None and (_NAME_CHARS.search(self.name) or not 5 <= len(self.name) <= 128):
            raise ValueError(f"expected a model name of 5 to 128 letters, digits, spaces and _+-() (bioimage.io's "
                             f"rule), got {self.name!r}")
        if self.git_repo is not None and not str(self.git_repo).startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL for git_repo, got {self.git_repo!r}")


@dataclass
class BioimageioExport:
    """What :func:`export_bioimageio` wrote: the package, its test tensors' shape, the notes."""

    path: Path
    test_shape_yx: tuple[int, int]
    weights: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"bioimage.io package ({', '.join(self.weights)} weights) -> {self.path}"


class _Exported(nn.Module):
    """The net as a package runs it: (B, 1, H, W) → softmax probabilities and arg-max classes."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.softmax(self.net(x), dim=1)
        return p, torch.argmax(p, dim=1, keepdim=True).to(torch.uint8)


def _identifier(name: str, used: set[str]) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "class"
    if ident[0].isdigit():
        ident = f"c_{ident}"
    base, k = ident, 2
    while ident in used:
        ident, k = f"{base}_{k}", k + 1
    used.add(ident)
    return ident


def _sample_image(options: BioimageioOptions, size: int) -> np.ndarray:
    if options.sample is not None:
        from ..imaging.micrograph import read_micrograph

        return np.asarray(read_micrograph(options.sample).array)
    from ..preparation.synthetic import SyntheticConfig, make_synthetic_dataset

    with tempfile.TemporaryDirectory(prefix="defectlab-bioimageio-") as tmp:
        ds = make_synthetic_dataset(Path(tmp) / "s", n_images=1, config=SyntheticConfig(size_hw=(size, size)), seed=0)
        from ..imaging.io import read_image

        return np.asarray(read_image(ds[0].image))


def _gray(image: np.ndarray) -> np.ndarray:
    from ..imaging.io import to_gray

    return np.asarray(to_gray(image), dtype=np.float32)


def _cut(image: np.ndarray, side_min: int, multiple: int, largest: int) -> np.ndarray:
    """A centered crop whose sides are multiples of ``multiple``, at most ``largest``."""
    h, w = image.shape[:2]
    th, tw = (min(largest, s) // multiple * multiple for s in (h, w))
    if th < side_min or tw < side_min:
        raise ImageError(f"the sample image ({w}x{h} px) is smaller than the package's least input "
                         f"({side_min}x{side_min} px); give a larger --sample")
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return image[y0:y0 + th, x0:x0 + tw]


def _percentiles(normalization: dict[str, Any]) -> tuple[float, float]:
    lo, hi = normalization.get("percentiles", (0.0, 100.0))
    return float(lo), float(hi)


def _preprocessing_text(normalization: dict[str, Any]) -> str:
    lo, hi = _percentiles(normalization)
    if (lo, hi) == (0.0, 100.0):
        return ("Preprocessing (`scale_range`, percentiles 0 and 100 over `y, x` of each image): the image's own "
                "minimum\nand maximum become 0 and 1, as defectlab normalizes in training and prediction (`minmax`, "
                "per image).")
    return (f"Preprocessing (`scale_range`, percentiles {lo:g} and {hi:g} over `y, x` of each image, then `clip` to "
            f"[0, 1]):\nthe image's own {lo:g} and {hi:g} percentiles become 0 and 1, as defectlab normalizes in "
            "training and\nprediction (`percentile`, per image, full bit depth).")


def _readme(model: Any, options: BioimageioOptions, names: list[str], pixel_nm: float | None, halo: int,
            min_side: int, multiple: int) -> str:
    cfg = model.config
    training = cfg.training or {}
    rows = "\n".join(f"| {c.index} | {c.name} | {c.edge or ''} | {c.type} |" for c in cfg.classes)
    train = "\n".join(f"- `{k}`: {json.dumps(v)[:120]}" for k, v in sorted(training.items())
                      if isinstance(v, (int, float, str, bool)) or v is None) or "- (not recorded)"
    scale = (f"{pixel_nm:g} nm per pixel, the pixel size of the training images: predict images at this "
             "pixel size (resample others first)" if pixel_nm else "not recorded (the axes carry no unit)")
    return f"""# {options.name or 'defectlab U-Net'}

{options.description or 'Semantic segmentation of defects in transmission electron micrographs.'}

A U-Net trained with [defectlab](https://pypi.org/project/defectlab/) ({cfg.defectlab_version}).

## Classes

| index | class | labeling edge | drawn as |
|---|---|---|---|
{rows}

## Input

`{INPUT_ID}`: one grayscale micrograph, axes `(batch, channel, y, x)` with one channel. Height and width
are any multiple of {multiple} from {min_side} px; larger images are tiled by the consumer with a halo
of {halo} px. Pixel size: {scale}.

{_preprocessing_text(cfg.normalization)}

## Outputs

- `{PROBS_ID}`: softmax probability of each class, axes `(batch, channel, y, x)`, channels {', '.join(names)}.
- `{CLASSES_ID}`: the most probable class index per pixel (uint8, 0 = background): the mask
  `defectlab predict` writes.

## Training

{train}

## Validation

The package's test input is a micrograph cut to {min_side}+ px and its test outputs are defectlab's own
prediction for it (`Model.predict`); `bioimageio.core`'s model test reproduces them from both weights
(TorchScript and ONNX). To validate on your data, label a few micrographs and run
`defectlab evaluate PREDICTIONS LABELS --pixel-size …` (precision, recall, F1, pixel IoU, size errors).

## Use

- Fiji: install deepImageJ, *DeepImageJ Run* → this package; the `{CLASSES_ID}` output is the class mask.
- Python: `bioimageio.core.predict(model="package.zip", inputs=image)`, or
  `defectlab.dl.bioimageio.load_bioimageio("package.zip").predict(image)`.
- The model folder it came from: `defectlab predict MODEL IMAGES --out OUT`.
"""


def export_bioimageio(model: Any, out: str | Path, options: BioimageioOptions | None = None, *,
                      overwrite: bool = False) -> BioimageioExport:
    """Write a U-Net model as a bioimage.io model package (spec 0.5) zip.

    Parameters
    ----------
    model : Model, str or Path
        A loaded U-Net :class:`~defectlab.dl.model_io.Model`, or its folder.
    out : str or Path
        The ``.zip`` to write (atomically: a failed export leaves nothing).
    options : BioimageioOptions, optional
        Name, authors, license, citations, tags, pixel size, test sample.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    BioimageioExport

    Raises
    ------
    FormatError
        Not a U-Net model (Mask R-CNN detections have no bioimage.io form here), or the
        description fails bioimage.io's validation (the message lists what it says).
    OutputError
        ``out`` exists without ``overwrite``, or is not a ``.zip`` path.
    ImportError
        bioimageio.spec is not installed (the message says how to install it).
    """
    v = _spec()
    from bioimageio.spec import save_bioimageio_package

    from ..imaging.micrograph import parse_length
    from .model_io import load_model

    options = options or BioimageioOptions()
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise OutputError(f"{out}: a bioimage.io package is a .zip; give a path ending in .zip")
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: exists; pass overwrite=True (--overwrite) to replace it")
    if not out.parent.is_dir():
        raise OutputError(f"{out}: the folder {out.parent} does not exist")
    if isinstance(model, (str, Path)):
        model = load_model(model, device="cpu")
    cfg = model.config
    if getattr(model, "members", None):
        raise FormatError(f"{model.path}: an ensemble of {len(model.members)} models (train --folds); a bioimage.io "
                          f"package holds one net: export a member, e.g. {model.path / model.names[0]}")
    if cfg.architecture != "unet":
        raise FormatError(f"only U-Net models can be exported to bioimage.io here, got {cfg.architecture!r} "
                          "(instance detections have no bioimage.io output form that deepImageJ runs)")
    net = model.net
    multiple = int(net.multiple)
    halo = cfg.overlap // 2 // multiple * multiple
    min_side = max(multiple, 2 * halo + multiple)
    pixel_nm = None if options.pixel_size is None else parse_length(options.pixel_size, what="pixel size")
    notes: list[str] = []

    image = _sample_image(options, max(cfg.tile_size, min_side))
    test = _gray(_cut(image, min_side, multiple, max(min_side, min(cfg.tile_size, 256))))
    pred = model.predict(test, probabilities=True, engine="torch")
    if not pred.semantic.any():
        raise ImageError(f"the model finds no defect in the {th_tw(test)} px test sample"
                         f"{' ' + str(options.sample) if options.sample else ' (synthetic)'}; bioimage.io's model "
                         "test needs outputs that are not all zero: give --sample IMAGE where it finds defects")
    probs = np.asarray(pred.probabilities, dtype=np.float32)[None]
    classes = pred.semantic[None, None].astype(np.uint8)
    th, tw = test.shape

    used: set[str] = set()
    names = [_identifier(c.name, used) for c in cfg.classes]
    if names != [c.name for c in cfg.classes]:
        notes.append(f"class names as bioimage.io channel names: {names}")
    space_kw: dict[str, Any] = {"scale": pixel_nm, "unit": "nanometer"} if pixel_nm else {}
    cpu_net = _Exported(copy.deepcopy(net)).eval().to("cpu")  # a copy: the model stays on its device
    authors = options.authors or ("defectlab user",)
    if not options.authors:
        notes.append("no --author given: the package names 'defectlab user'; give the real authors before "
                     "uploading to bioimage.io")
    cites = [_cite(c) for c in options.cite] or [UNET_CITATION + (None,)]

    p_lo, p_hi = _percentiles(cfg.normalization)
    with tempfile.TemporaryDirectory(prefix="defectlab-bioimageio-") as tmp_name:
        tmp = Path(tmp_name)
        np.save(tmp / "test_input.npy", test[None, None])
        np.save(tmp / "test_output_probabilities.npy", probs)
        np.save(tmp / "test_output_classes.npy", classes)
        from PIL import Image

        from ..viz import overlay

        gray8 = (255 * (test - test.min()) / max(float(np.ptp(test)), 1e-12)).astype(np.uint8)
        shown = overlay(test, pred.semantic, cfg.colors_rgb, outlines=pred.instances)
        cover = np.concatenate([np.repeat(gray8[..., None], 3, axis=2), shown], axis=1)
        Image.fromarray(cover).save(tmp / "cover.png")
        (tmp / "README.md").write_text(_readme(model, options, names, pixel_nm, halo, min_side, multiple),
                                       encoding="utf-8")
        example = torch.from_numpy(test[None, None].copy())
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the size check in UNet.forward is traced as a constant
            traced = torch.jit.trace(cpu_net, example, check_trace=False)
            traced.save(str(tmp / "weights_torchscript.pt"))
            torch.onnx.export(cpu_net, (example,), str(tmp / "weights.onnx"), input_names=[INPUT_ID],
                              output_names=[PROBS_ID, CLASSES_ID], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "b", 2: "h", 3: "w"} for n in (INPUT_ID, PROBS_ID, CLASSES_ID)})

        x_in = v.SpaceInputAxis(id=v.AxisId("x"), size=v.ParameterizedSize(min=min_side, step=multiple), **space_kw)
        y_in = v.SpaceInputAxis(id=v.AxisId("y"), size=v.ParameterizedSize(min=min_side, step=multiple), **space_kw)

        def out_axes() -> list[Any]:
            return [v.SpaceOutputAxisWithHalo(id=v.AxisId(a), halo=halo, size=v.SizeReference(
                tensor_id=v.TensorId(INPUT_ID), axis_id=v.AxisId(a)), **space_kw) for a in ("y", "x")]

        try:
            descr = v.ModelDescr(
                name=options.name or _name(f"defectlab U-Net ({' '.join(c.name for c in cfg.classes[1:])})"),
                description=options.description or ("Semantic segmentation of defects "
                                                     f"({', '.join(c.name for c in cfg.classes[1:])}) in TEM "
                                                     "micrographs, trained with defectlab."),
                authors=[v.Author(name=a) for a in authors],
                cite=[v.CiteEntry(text=t, doi=v.Doi(d) if d else None, url=u) for t, d, u in cites],
                license=options.license,
                documentation=v.FileDescr(source=tmp / "README.md"),
                covers=[v.FileDescr(source=tmp / "cover.png")],
                tags=sorted({"defectlab", "semantic-segmentation", "electron-microscopy", "tem", "unet",
                             "2d", "pytorch", *options.tags}),
                version=options.version,
                git_repo=options.git_repo,
                inputs=[v.InputTensorDescr(
                    id=v.TensorId(INPUT_ID),
                    description="a grayscale micrograph",
                    axes=[v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier("gray")]), y_in, x_in],
                    test_tensor=v.FileDescr(source=tmp / "test_input.npy"),
                    data=v.IntervalOrRatioDataDescr(type="float32"),
                    preprocessing=[v.ScaleRangeDescr(kwargs=v.ScaleRangeKwargs(
                        axes=(v.AxisId("y"), v.AxisId("x")), min_percentile=p_lo, max_percentile=p_hi))]
                    + ([v.ClipDescr(kwargs=v.ClipKwargs(min=0.0, max=1.0))] if (p_lo, p_hi) != (0.0, 100.0) else []),
                )],
                outputs=[
                    v.OutputTensorDescr(
                        id=v.TensorId(PROBS_ID), description="softmax probability of each class",
                        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier(n) for n in names]),
                              *out_axes()],
                        test_tensor=v.FileDescr(source=tmp / "test_output_probabilities.npy"),
                        data=v.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
                    ),
                    v.OutputTensorDescr(
                        id=v.TensorId(CLASSES_ID), description="most probable class index (0 = background)",
                        axes=[v.BatchAxis(), v.ChannelAxis(channel_names=[v.Identifier("class_index")]),
                              *out_axes()],
                        test_tensor=v.FileDescr(source=tmp / "test_output_classes.npy"),
                        data=v.NominalOrOrdinalDataDescr(values=list(range(len(names))), type="uint8"),
                    ),
                ],
                weights=v.WeightsDescr(
                    torchscript=v.TorchscriptWeightsDescr(source=tmp / "weights_torchscript.pt",
                                                          pytorch_version=v.Version(torch.__version__.split("+")[0])),
                    onnx=v.OnnxWeightsDescr(source=tmp / "weights.onnx", opset_version=17, parent="torchscript"),
                ),
                config=v.Config(bioimageio=v.BioimageioConfig(reproducibility_tolerance=[
                    # the arg-max flips only where two classes tie within float noise
                    v.ReproducibilityTolerance(output_ids=[v.TensorId(CLASSES_ID)], absolute_tolerance=0.0,
                                               relative_tolerance=0.0, mismatched_elements_per_million=1000),
                ]), defectlab={"model_config": cfg.to_dict(), "pixel_size_nm": pixel_nm}),
            )
        except Exception as err:  # pydantic's ValidationError lists every problem
            raise FormatError(f"the bioimage.io description does not validate: {err}") from err
        fd, part = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        os.close(fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                save_bioimageio_package(descr, output_path=Path(part))
            os.chmod(part, 0o666 & ~_umask())
            os.replace(part, out)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
    return BioimageioExport(out, (th, tw), ("torchscript", "onnx"), notes)


#: What bioimage.io allows in a model's name.
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_+\- ()]")


def _name(text: str) -> str:
    return re.sub(r"\s+", " ", _NAME_CHARS.sub(" ", text)).strip()[:128]


def th_tw(a: np.ndarray) -> str:
    return f"{a.shape[1]}x{a.shape[0]}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------
# Packages made elsewhere


class BioimageioModel:
    """A bioimage.io model package that predicts like a defectlab model.

    ``predict(image)`` runs the package with bioimageio.core (its own pre- and postprocessing
    and tiling) and turns its output into a :class:`~defectlab.dl.predict.Prediction`.
    Made by :func:`load_bioimageio`.
    """

    architecture = "bioimageio"

    def __init__(self, descr: Any, source: str, *, input_id: str, input_axes: tuple[str, ...], channels: int,
                 output_id: str, output_kind: str, classes: dict[int, str], colors: list[tuple[int, int, int]],
                 weight_format: str | None = None, device: str | None = None) -> None:
        self.descr = descr
        self.path = Path(source) if not str(source).startswith(("http://", "https://")) else None
        self.source = source
        self.input_id, self.input_axes, self.channels = input_id, input_axes, channels
        self.output_id, self.output_kind = output_id, output_kind
        self.classes = classes
        self.colors_rgb = colors
        self.weight_format, self.device = weight_format, device
        self._pipeline: Any = None

    @property
    def name(self) -> str:
        return str(self.descr.name)

    def _pp(self) -> Any:
        if self._pipeline is None:
            from bioimageio.core import create_prediction_pipeline

            kw: dict[str, Any] = {}
            if self.weight_format:
                kw["weight_format"] = self.weight_format
            if self.device:
                kw["devices"] = [self.device]
            self._pipeline = create_prediction_pipeline(self.descr, **kw)
        return self._pipeline

    def _input(self, image: np.ndarray) -> np.ndarray:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[-1] == 4:
            arr = arr[..., :3]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
            raise ImageError(f"expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")
        if self.channels == 1:
            arr = _gray(arr)[None]
        elif arr.ndim == 2:
            arr = np.repeat(arr[None], 3, axis=0)
        else:
            arr = np.moveaxis(arr, -1, 0)
        arr = arr.astype(np.float32)  # (c, y, x)
        have = ["c", "y", "x"]
        if "c" not in self.input_axes:
            arr, have = arr[0], ["y", "x"]
        if "b" in self.input_axes:
            arr, have = arr[None], ["b", *have]
        return np.transpose(arr, [have.index(a) for a in self.input_axes])

    def predict(self, image: np.ndarray, *, min_area_px: int = 4, threshold: float = 0.5,
                blocksize_parameter: int | None = None, **_ignored: Any) -> Any:
        """Predict one image; see the class docstring.

        ``threshold`` cuts a single-channel probability output; ``blocksize_parameter`` is
        bioimageio.core's tile size parameter (None: the whole image at once).
        """
        from bioimageio.core import Tensor, predict
        from bioimageio.spec.model.v0_5 import AxisId

        from ..raster.split import split_instances
        from .archs.base import instance_scores
        from .predict import Prediction

        t0 = time.perf_counter()
        arr = self._input(image)
        dims = tuple(AxisId({"b": "batch", "c": "channel"}.get(a, a)) for a in self.input_axes)
        tensor = Tensor(arr, dims=dims)
        sample = predict(model=self._pp(), inputs={self.input_id: tensor}, blocksize_parameter=blocksize_parameter)
        out = sample.members[self.output_id]
        data = np.asarray(out.data)
        names = [str(d) for d in out.dims]
        keep = {n: (slice(None) if n in ("y", "x", "channel") else 0) for n in names}
        data = data[tuple(keep[n] for n in names)]
        names = [n for n in names if n in ("y", "x", "channel")]
        if "channel" not in names:
            data, names = data[None], ["channel", *names]
        data = np.transpose(data, [names.index(n) for n in ("channel", "y", "x")])
        h, w = (np.asarray(image).shape[:2])
        data = data[:, :h, :w]
        conf = None
        if self.output_kind == "probabilities":
            semantic = np.argmax(data, axis=0).astype(np.uint8)
            conf = np.rint(255 * np.clip(data.max(axis=0), 0, 1)).astype(np.uint8)
        elif self.output_kind == "foreground":
            semantic = (data[0] >= threshold).astype(np.uint8)
            conf = np.rint(255 * np.clip(np.where(semantic, data[0], 1 - data[0]), 0, 1)).astype(np.uint8)
        else:  # class or label image
            semantic = np.clip(np.rint(data[0]), 0, 255).astype(np.uint8)
        inst, cls = split_instances(semantic, split=[], min_area_px=min_area_px)
        scores = (instance_scores(inst, len(cls), conf) if conf is not None
                  else np.ones(len(cls), dtype=np.float32))
        return Prediction(semantic, inst, cls.astype(np.uint8), scores,
                          {k: v for k, v in self.classes.items() if k}, confidence=conf,
                          seconds=time.perf_counter() - t0, engine=f"bioimageio.core ({self._pp().name})"
                          if hasattr(self._pp(), "name") else "bioimageio.core")

    def __repr__(self) -> str:
        return f"BioimageioModel({self.name!r} from {self.source!r}, classes={self.classes})"


def load_bioimageio(source: str | Path, *, weight_format: str | None = None,
                    device: str | None = None) -> BioimageioModel:
    """Load a bioimage.io model package (spec 0.4 or 0.5; a zip, a folder or an ``rdf.yaml``).

    Raises
    ------
    FormatError
        The package does not validate, or its inputs/outputs do not fit a 2-D micrograph
        segmentation (the message says which tensor and why).
    """
    try:
        from bioimageio.core import load_description
        from bioimageio.spec import InvalidDescr
        from bioimageio.spec.model import v0_4, v0_5
    except ImportError as err:
        raise ImportError(f"bioimage.io packages need bioimageio.core: {BIOIMAGEIO_INSTALL}") from err
    src = str(source)
    if not src.startswith(("http://", "https://")) and not Path(src).exists():
        raise FormatError(f"{src}: no such bioimage.io package (a .zip, a folder or an rdf.yaml)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        descr = load_description(source, perform_io_checks=False)
    if isinstance(descr, InvalidDescr) or not isinstance(descr, (v0_4.ModelDescr, v0_5.ModelDescr)):
        summary = getattr(descr, "validation_summary", None)
        errors = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in getattr(summary, "errors", [])[:5])
        raise FormatError(f"{src}: not a valid bioimage.io model description ({errors or type(descr).__name__})")
    if isinstance(descr, v0_4.ModelDescr):
        from bioimageio.spec import update_format

        descr = update_format(descr)
    if len(descr.inputs) != 1:
        raise FormatError(f"{src}: the model takes {len(descr.inputs)} inputs; defectlab feeds one image")
    ipt = descr.inputs[0]
    axes = []
    channels = 1
    for a in ipt.axes:
        t = a.type
        if t == "batch":
            axes.append("b")
        elif t == "channel":
            channels = len(a.channel_names)
            axes.append("c")
        elif t == "space" and str(a.id) in ("x", "y"):
            axes.append(str(a.id))
        else:
            raise FormatError(f"{src}: input {ipt.id!r} has a {t} axis {str(a.id)!r}; defectlab feeds 2-D images "
                              "(axes batch, channel, y, x)")
    if {"x", "y"} - set(axes) or channels not in (1, 3):
        raise FormatError(f"{src}: input {ipt.id!r} must have y and x axes and 1 or 3 channels, got axes "
                          f"{[str(a.id) for a in ipt.axes]} with {channels} channel(s)")
    chosen = None
    for o in descr.outputs:
        kinds = {a.type for a in o.axes}
        space = {str(a.id) for a in o.axes if a.type == "space"}
        if space != {"x", "y"} or kinds - {"batch", "channel", "space"}:
            continue
        n = next((len(a.channel_names) for a in o.axes if a.type == "channel"), 1)
        data = o.data if not isinstance(o.data, (list, tuple)) else o.data[0]
        nominal = type(data).__name__.startswith("Nominal") or str(getattr(data, "type", "")).startswith(("uint", "int"))
        kind = "labels" if nominal else ("probabilities" if n > 1 else "foreground")
        rank = {"labels": 0, "probabilities": 1, "foreground": 2}[kind]
        if chosen is None or rank < chosen[0]:
            chosen = (rank, o, kind, n)
    if chosen is None:
        raise FormatError(f"{src}: no output is an image on the input's y, x grid (outputs "
                          f"{[str(o.id) for o in descr.outputs]}); defectlab reads segmentation outputs")
    _, out, kind, n = chosen
    channel_axis = next((a for a in out.axes if a.type == "channel"), None)
    classes: dict[int, str]
    extra = (descr.config.model_extra or {}).get("defectlab") if descr.config is not None else None
    model_classes = (extra or {}).get("model_config", {}).get("classes") if isinstance(extra, dict) else None
    colors: list[tuple[int, int, int]] = []
    if isinstance(model_classes, list) and model_classes:
        classes = {int(c["index"]): str(c["name"]) for c in model_classes}
        colors = [tuple(int(c["color"][i:i + 2], 16) for i in (1, 3, 5)) for c in model_classes[1:]]  # type: ignore[misc]
    elif kind == "probabilities" and channel_axis is not None:
        classes = {i: str(name) for i, name in enumerate(channel_axis.channel_names)}
    else:
        classes = {0: "background", 1: "foreground"}
    if not colors:
        from ..model import DEFAULT_COLORS

        colors = [tuple(int(DEFAULT_COLORS[(i - 1) % 10][j:j + 2], 16) for j in (1, 3, 5))  # type: ignore[misc]
                  for i in sorted(classes) if i]
    return BioimageioModel(descr, src, input_id=str(ipt.id), input_axes=tuple(axes), channels=channels,
                           output_id=str(out.id), output_kind=kind, classes=classes, colors=colors,
                           weight_format=weight_format, device=device)
