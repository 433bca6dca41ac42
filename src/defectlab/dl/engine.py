"""What runs a net in prediction: PyTorch, or ONNX Runtime on a CPU.

A *forward* is a callable ``(B, C_in, h, w) float32 -> (B, C, h, w) float32``, the one thing
the tiled predictor (:func:`defectlab.dl.tiles.predict_semantic`) needs. :func:`make_forward`
makes one of any module (for a per-pixel classifier: its logits and a softmax,
:func:`softmax_forward`); an architecture that can be exported to ONNX says so
(:attr:`Architecture.exportable <defectlab.dl.archs.base.Architecture.exportable>`) and gives
its forward through :meth:`Architecture.forward <defectlab.dl.archs.base.Architecture.forward>`.

``"torch"``
    PyTorch in inference mode; on a CPU the net is switched to channels-last memory
    (about 2× faster with oneDNN than the default layout). The engine on CUDA and MPS, and
    the only one of architectures that cannot be exported (Mask R-CNN).
``"onnxruntime"``
    The module exported in memory to ONNX with PyTorch's exporter and run by ONNX Runtime's
    CPU provider, which fuses convolution, BatchNorm and ReLU and picks its own blocked
    layouts: on the development machine's 2-core AVX-512 CPU it runs the default U-Net about
    1.4× faster than channels-last PyTorch and 3× faster than plain eager
    (``benchmarks/bench_predict.py``). The same float32 arithmetic in another order:
    probabilities agree with PyTorch's to about 1e-7 (measured: at most 9e-8, ``tests/dl``).
    The export takes a fraction of a second; the session is kept on the
    :class:`~defectlab.dl.model_io.Model` and made anew when its weights or device change.
``"onnxruntime-int8"`` (opt-in)
    The same ONNX model with its convolutions quantized to 8 bits (ONNX Runtime's static
    QDQ quantization, uint8 activations, int8 weights), calibrated on the crops of the
    training images a model folder keeps (``calibration.npy``, written by training). On the
    development machine's AVX-512-VNNI CPU it ran a 1024² image 1.7× faster than float32
    ONNX Runtime, and agreed with it on 99.96 % of the pixels' classes
    (``benchmarks/bench_predict.py``). Not the default: the numbers change a little.
    Quantizing takes a few seconds, once per model.
``"auto"``
    ONNX Runtime on a CPU when ``onnxruntime`` and ``onnx`` are installed (they come with
    ``defectlab[torch]``) and the architecture can be exported, PyTorch otherwise; the int8
    engine instead of float32 ONNX Runtime only where it is faster: the model keeps calibration
    crops and the CPU has 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX, read
    from ``/proc/cpuinfo``; :func:`auto_engine`). Without them (e.g. a plain AVX2 CPU) int8
    ran 2.4× slower than float32, so there ``"auto"`` stays float32. All this unless
    the environment variable ``DEFECTLAB_ENGINE`` names an engine: then ``"auto"`` stands for
    that one everywhere (``DEFECTLAB_ENGINE=torch make test`` runs the tests on PyTorch
    alone). An engine named in a call is never overridden.

Examples
--------
>>> import numpy as np, torch
>>> from defectlab.dl.archs.unet import UNet, UNetConfig
>>> _ = torch.manual_seed(0)
>>> net = UNet(UNetConfig(n_classes=3, base_filters=4, depth=2, bottleneck_dilations=(1,))).eval()
>>> x = np.random.default_rng(0).random((2, 1, 32, 48), dtype=np.float32)
>>> a = softmax_forward(net, torch.device("cpu"), engine="torch")(x)
>>> b = softmax_forward(net, torch.device("cpu"), engine="onnxruntime")(x)
>>> a.shape, bool(np.abs(a - b).max() < 1e-5)
((2, 3, 32, 48), True)
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .options import ENGINES

__all__ = ["ENGINES", "ENGINE_ENV", "INT8_FLAGS", "Forward", "Softmax", "auto_engine", "cpu_flags", "make_forward",
           "model_forward", "resolve_engine", "softmax_forward"]

#: The environment variable that says which engine ``"auto"`` stands for.
ENGINE_ENV = "DEFECTLAB_ENGINE"

Forward = Callable[[np.ndarray], np.ndarray]


def _onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401  (PyTorch's exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


#: CPU flags (as ``/proc/cpuinfo`` names them) of the 8-bit dot-product instructions that make
#: ONNX Runtime's int8 convolutions faster than float32 ones.
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (x86 ``flags``, ARM ``Features``); empty
    where the file cannot be read (macOS, Windows): then :func:`auto_engine` keeps float32."""
    try:
        text = open(cpuinfo, encoding="utf-8", errors="replace").read()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def auto_engine(device_type: str, *, exportable: bool, onnxruntime: bool, calibrated: bool,
                flags: frozenset[str] | set[str]) -> str:
    """What ``"auto"`` stands for: the fastest engine that can run the net here.

    Parameters
    ----------
    device_type : str
        ``"cpu"``, ``"cuda"``, ``"mps"``.
    exportable : bool
        The architecture's net can be exported to ONNX.
    onnxruntime : bool
        ``onnxruntime`` and ``onnx`` are installed.
    calibrated : bool
        The model keeps calibration crops (what the int8 engine needs).
    flags : set of str
        The CPU's feature flags (:func:`cpu_flags`).

    Examples
    --------
    >>> auto_engine("cpu", exportable=True, onnxruntime=True, calibrated=True, flags={"avx2", "fma"})
    'onnxruntime'
    >>> auto_engine("cpu", exportable=True, onnxruntime=True, calibrated=True, flags={"avx2", "avx512_vnni"})
    'onnxruntime-int8'
    >>> auto_engine("cuda", exportable=True, onnxruntime=True, calibrated=True, flags={"amx_int8"})
    'torch'
    """
    if device_type != "cpu" or not exportable or not onnxruntime:
        return "torch"
    if calibrated and any(f in flags for f in INT8_FLAGS):
        return "onnxruntime-int8"
    return "onnxruntime"


def resolve_engine(engine: str, device: torch.device, *, exportable: bool = True, calibrated: bool = False) -> str:
    """The engine ``"auto"`` stands for on ``device``; a named one is checked.

    ``exportable``: whether the net can run on ONNX Runtime at all (else ``"auto"`` is
    PyTorch, whatever ``DEFECTLAB_ENGINE`` says). ``calibrated``: whether the model keeps
    calibration crops, so that ``"auto"`` may pick the int8 engine (:func:`auto_engine`).

    Raises ValueError for an unknown engine, for ONNX Runtime on a GPU or for a net that
    cannot be exported, and for ONNX Runtime when it is not installed (saying how to
    install it).
    """
    if engine not in ENGINES:
        raise ValueError(f"expected an engine among {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        if not exportable:
            return "torch"
        forced = os.environ.get(ENGINE_ENV, "").strip()
        if forced and forced != "auto":
            if forced not in ENGINES:
                raise ValueError(f"environment variable {ENGINE_ENV}: expected one of {', '.join(ENGINES)}, "
                                 f"got {forced!r}")
            return resolve_engine(forced, device)
        return auto_engine(device.type, exportable=True, onnxruntime=device.type == "cpu" and _onnxruntime_available(),
                           calibrated=calibrated, flags=cpu_flags() if calibrated else frozenset())
    if engine.startswith("onnxruntime"):
        if not exportable:
            raise ValueError(f"the {engine} engine runs nets exported to ONNX, and this architecture's net is "
                             "not: use engine='torch' (or 'auto')")
        if device.type != "cpu":
            raise ValueError(f"the {engine} engine runs on the CPU, but the model is on {device}; "
                             "use engine='torch' there (or move the model to the CPU)")
        if not _onnxruntime_available():
            raise ValueError(f"the {engine} engine needs onnxruntime and onnx: pip install 'defectlab[torch]' "
                             "(or pip install onnxruntime onnx)")
    return engine


class Softmax(nn.Module):
    """A per-pixel classifier's logits (B, C, h, w) turned into probabilities over C."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def _torch_forward(module: nn.Module, device: torch.device, channels_last: bool, outputs: int = 1) -> Forward:
    module.eval()
    channels_last = channels_last and device.type == "cpu"
    if channels_last:
        module.to(memory_format=torch.channels_last)

    def forward(batch: np.ndarray) -> Any:
        x = torch.from_numpy(batch).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = module(x)
        if outputs == 1:
            return out.float().cpu().numpy()
        return tuple(o.float().cpu().numpy() for o in out)

    forward.engine = "torch"  # type: ignore[attr-defined]
    return forward


def _onnx_bytes(module: nn.Module, example_shape: tuple[int, ...], outputs: int = 1) -> bytes:
    """``module`` as an ONNX model with free batch, height and width (outputs ``p``, or ``p0``, ``p1``, …)."""
    example = torch.zeros(*example_shape)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is "legacy" (the torch.export one takes ~30x longer for a
        # U-Net and needs onnxscript); size checks in a net's forward are traced as constants
        warnings.simplefilter("ignore")
        with torch.no_grad():
            names = ["p"] if outputs == 1 else [f"p{i}" for i in range(outputs)]
            torch.onnx.export(module.eval(), (example,), buf, input_names=["x"], output_names=names,
                              dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, **{n: {0: "b", 2: "h", 3: "w"} for n in names}},
                              opset_version=17, dynamo=False)
    return buf.getvalue()


def _quantized(model_bytes: bytes, calibration: np.ndarray) -> bytes:
    """The ONNX model with its convolutions statically quantized (QDQ, uint8 activations,
    int8 weights per channel), calibrated on ``calibration`` (N, C, h, w)."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.asarray(calibration, dtype=np.float32)[:, None])

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"x": batch}

    with tempfile.TemporaryDirectory(prefix="defectlab-int8-") as tmp:
        fp32, pre, int8 = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32.write_bytes(model_bytes)
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)  # free h, w: no symbolic shapes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(pre), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return int8.read_bytes()


def _onnxruntime_forward(module: nn.Module, example_shape: tuple[int, ...],
                         calibration: np.ndarray | None = None, outputs: int = 1) -> Forward:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())  # what torch would use
    options.inter_op_num_threads = 1
    # no busy-waiting between runs: the tiles' blending runs on the same cores in between
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    model_bytes = _onnx_bytes(module.eval(), example_shape, outputs)
    if calibration is not None:
        model_bytes = _quantized(model_bytes, calibration)
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    def forward(batch: np.ndarray) -> Any:
        out = session.run(None, {"x": np.ascontiguousarray(batch, dtype=np.float32)})
        return out[0] if outputs == 1 else tuple(out)

    forward.engine = "onnxruntime" if calibration is None else "onnxruntime-int8"  # type: ignore[attr-defined]
    return forward


def make_forward(module: nn.Module, device: torch.device, *, engine: str = "auto",
                 example_shape: tuple[int, ...] | None = (1, 1, 64, 64), channels_last: bool = True,
                 calibration: np.ndarray | None = None, outputs: int = 1) -> Forward:
    """A forward of ``module`` on ``device`` with ``engine`` (see the module docstring); its
    ``engine`` attribute names the engine that runs it. With ``engine="auto"``, a module ONNX
    cannot export falls back to PyTorch with a warning.

    Parameters
    ----------
    module : torch.nn.Module
        What maps a batch of tiles to what the predictor blends (probabilities).
    example_shape : tuple of int, optional
        A valid input shape (B, C, h, w), to export with (batch, height and width stay
        free); None: the module cannot be exported (PyTorch only).
    channels_last : bool
        The torch engine on a CPU converts the module (in place) to channels-last memory.
    calibration : (N, C, h, w) array, optional
        Normalized crops of training images, needed by ``"onnxruntime-int8"``.
    outputs : int
        How many arrays ``module`` returns (a tuple of them when more than one: e.g. an
        object probability and ray distances); the forward returns as many.
    """
    calibrated = calibration is not None and len(calibration) > 0
    name = resolve_engine(engine, device, exportable=example_shape is not None, calibrated=calibrated)
    if name == "onnxruntime-int8":
        if not calibrated:
            raise ValueError("the onnxruntime-int8 engine calibrates on crops of the training images "
                             "(calibration.npy in the model folder), and this model has none: retrain it "
                             "with this defectlab, or use engine='onnxruntime'")
        try:
            return _onnxruntime_forward(module, example_shape, calibration, outputs)
        except Exception as err:  # noqa: BLE001 - say which step failed
            if engine != "auto":
                raise RuntimeError(f"could not quantize the net with ONNX Runtime: {err}") from err
            warnings.warn(f"ONNX Runtime could not quantize this net ({type(err).__name__}: {err}); using float32",
                          RuntimeWarning, stacklevel=2)
            name = "onnxruntime"
    if name == "onnxruntime":
        try:
            return _onnxruntime_forward(module, example_shape, None, outputs)
        except Exception as err:  # noqa: BLE001 - any exporter/runtime failure: PyTorch still works
            if engine != "auto":
                raise RuntimeError(f"could not run the net with ONNX Runtime: {err}") from err
            warnings.warn(f"ONNX Runtime could not run this net ({type(err).__name__}: {err}); using PyTorch",
                          RuntimeWarning, stacklevel=2)
    return _torch_forward(module, device, channels_last, outputs)


def softmax_forward(net: nn.Module, device: torch.device, *, engine: str = "auto",
                    example_shape: tuple[int, ...] = (1, 1, 64, 64), channels_last: bool = True,
                    calibration: np.ndarray | None = None) -> Forward:
    """:func:`make_forward` of a per-pixel classifier ``net`` (logits) and a softmax:
    ``(B, C_in, h, w) -> (B, n_classes, h, w)`` probabilities."""
    return make_forward(Softmax(net), device, engine=engine, example_shape=example_shape,
                        channels_last=channels_last, calibration=calibration)


def _weights_key(net: nn.Module, device: torch.device) -> tuple[Any, ...]:
    """Changes when any parameter or buffer is replaced or modified in place."""
    return (str(device), *((t.data_ptr(), t._version) for t in net.state_dict(keep_vars=True).values()))


def model_forward(model: Any, engine: str = "auto") -> tuple[Forward, str]:
    """``(forward, engine name)`` for a :class:`~defectlab.dl.model_io.Model` whose
    architecture predicts through a forward (its :meth:`Architecture.forward
    <defectlab.dl.archs.base.Architecture.forward>`), made once and kept on the model until
    its weights, device or calibration crops change."""
    arch = model.arch
    # a bad name fails before the cache is consulted; what "auto" stands for may change (DEFECTLAB_ENGINE)
    calibration = getattr(model, "calibration", None)
    slot = (engine, resolve_engine(engine, model.device, exportable=arch.exportable,
                                   calibrated=calibration is not None and len(calibration) > 0))
    cache: dict[tuple[str, str], tuple[tuple[Any, ...], Forward]] = model.__dict__.setdefault("_forwards", {})

    def key() -> tuple[Any, ...]:
        return (id(calibration), *_weights_key(model.net, model.device))

    hit = cache.get(slot)
    if hit is not None and hit[0] == key():
        return hit[1], hit[1].engine  # type: ignore[attr-defined]
    forward = arch.forward(model, engine=engine)
    cache[slot] = (key(), forward)  # after channels-last: its own key
    return forward, forward.engine  # type: ignore[attr-defined]
