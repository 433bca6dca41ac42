"""What runs a U-Net's tiles: PyTorch, or ONNX Runtime on a CPU.

A *forward* is a callable ``(B, 1, h, w) float32 -> (B, C, h, w) float32`` softmax
probabilities, the one thing :func:`defectlab.dl.predict.predict_semantic` needs. Two engines
make one from a :class:`~defectlab.dl.unet.UNet`:

``"torch"``
    PyTorch in inference mode; on a CPU the net is switched to channels-last memory
    (about 2× faster with oneDNN than the default layout). The engine on CUDA and MPS.
``"onnxruntime"``
    The net (with its softmax) exported in memory to ONNX with PyTorch's exporter and run
    by ONNX Runtime's CPU provider, which fuses convolution, BatchNorm and ReLU and picks
    its own blocked layouts: on the development machine's 2-core AVX-512 CPU it runs the
    default U-Net about 1.4× faster than channels-last PyTorch and 3× faster than plain
    eager (``benchmarks/bench_predict.py``). The same float32 arithmetic in another order:
    probabilities agree with PyTorch's to about 1e-6. The export takes a fraction of a
    second; the session is kept on the :class:`~defectlab.dl.model_io.Model` and made anew
    when its weights or device change.
``"onnxruntime-int8"`` (opt-in)
    The same ONNX model with its convolutions quantized to 8 bits (ONNX Runtime's static
    QDQ quantization, uint8 activations, int8 weights), calibrated on the crops of the
    training images a U-Net model folder keeps (``calibration.npy``, written by
    :func:`~defectlab.dl.train.train_unet`). On the development machine's AVX-512-VNNI CPU
    it ran a 1024² image 1.7× faster than float32 ONNX Runtime, and agreed with it on
    99.96 % of the pixels' classes (``benchmarks/bench_predict.py``). Not the default: the
    numbers change a little. Quantizing takes a few seconds, once per model.
``"auto"``
    ONNX Runtime on a CPU when ``onnxruntime`` and ``onnx`` are installed (they come with
    ``defectlab[torch]``), PyTorch otherwise — unless the environment variable
    ``DEFECTLAB_ENGINE`` names an engine: then ``"auto"`` stands for that one everywhere
    (``DEFECTLAB_ENGINE=torch make test`` runs the suite on PyTorch alone). An engine named
    in a call is never overridden.

Examples
--------
>>> import numpy as np, torch
>>> from defectlab.dl.unet import UNet, UNetConfig
>>> _ = torch.manual_seed(0)
>>> net = UNet(UNetConfig(n_classes=3, base_filters=4, depth=2, bottleneck_dilations=(1,))).eval()
>>> x = np.random.default_rng(0).random((2, 1, 32, 48), dtype=np.float32)
>>> a = unet_forward(net, torch.device("cpu"), engine="torch")(x)
>>> b = unet_forward(net, torch.device("cpu"), engine="onnxruntime")(x)
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

__all__ = ["ENGINES", "Forward", "resolve_engine", "unet_forward", "model_forward"]

#: The engines :func:`unet_forward` knows.
ENGINES = ("auto", "torch", "onnxruntime", "onnxruntime-int8")
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


def resolve_engine(engine: str, device: torch.device) -> str:
    """The engine ``"auto"`` stands for on ``device``; a named one is checked.

    Raises ValueError for an unknown engine, for ONNX Runtime on a GPU, and for ONNX
    Runtime when it is not installed (saying how to install it).
    """
    if engine not in ENGINES:
        raise ValueError(f"expected an engine among {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        forced = os.environ.get(ENGINE_ENV, "").strip()
        if forced and forced != "auto":
            if forced not in ENGINES:
                raise ValueError(f"environment variable {ENGINE_ENV}: expected one of {', '.join(ENGINES)}, "
                                 f"got {forced!r}")
            return resolve_engine(forced, device)
        return "onnxruntime" if device.type == "cpu" and _onnxruntime_available() else "torch"
    if engine.startswith("onnxruntime"):
        if device.type != "cpu":
            raise ValueError(f"the {engine} engine runs on the CPU, but the model is on {device}; "
                             "use engine='torch' there (or move the model to the CPU)")
        if not _onnxruntime_available():
            raise ValueError(f"the {engine} engine needs onnxruntime and onnx: pip install 'defectlab[torch]' "
                             "(or pip install onnxruntime onnx)")
    return engine


def _torch_forward(net: nn.Module, device: torch.device, channels_last: bool) -> Forward:
    net.eval()
    channels_last = channels_last and device.type == "cpu"
    if channels_last:
        net.to(memory_format=torch.channels_last)

    def forward(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            probs = torch.softmax(net(x).float(), dim=1)
        return probs.cpu().numpy()

    forward.engine = "torch"  # type: ignore[attr-defined]
    return forward


class _WithSoftmax(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def _onnx_bytes(net: nn.Module) -> bytes:
    """The net and its softmax as an ONNX model with free batch, height and width."""
    m = int(getattr(net, "multiple", 8))
    in_ch = int(getattr(getattr(net, "config", None), "in_channels", 1))
    example = torch.zeros(1, in_ch, 4 * m, 4 * m)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is "legacy" (the torch.export one takes ~30x longer for this
        # net and needs onnxscript); the size check in UNet.forward is traced as a constant
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(_WithSoftmax(net).eval(), (example,), buf, input_names=["x"], output_names=["p"],
                              dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "p": {0: "b", 2: "h", 3: "w"}},
                              opset_version=17, dynamo=False)
    return buf.getvalue()


def _quantized(model_bytes: bytes, calibration: np.ndarray) -> bytes:
    """The ONNX model with its convolutions statically quantized (QDQ, uint8 activations,
    int8 weights per channel), calibrated on ``calibration`` (N, 1, h, w)."""
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


def _onnxruntime_forward(net: nn.Module, calibration: np.ndarray | None = None) -> Forward:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())  # what torch would use
    options.inter_op_num_threads = 1
    # no busy-waiting between runs: the tiles' blending runs on the same cores in between
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    net = net.eval()
    model_bytes = _onnx_bytes(net)
    if calibration is not None:
        model_bytes = _quantized(model_bytes, calibration)
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    def forward(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"x": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    forward.engine = "onnxruntime" if calibration is None else "onnxruntime-int8"  # type: ignore[attr-defined]
    return forward


def unet_forward(net: nn.Module, device: torch.device, *, engine: str = "auto",
                 channels_last: bool = True, calibration: np.ndarray | None = None) -> Forward:
    """A forward for ``net`` on ``device`` with ``engine`` (see the module docstring); its
    ``engine`` attribute names the engine that runs it.

    ``channels_last`` applies to the torch engine on a CPU (the net is converted in place).
    ``calibration`` (N, 1, h, w) normalized crops are needed by ``"onnxruntime-int8"``.
    With ``engine="auto"``, a net ONNX cannot export falls back to PyTorch with a warning.
    """
    name = resolve_engine(engine, device)
    if name == "onnxruntime-int8":
        if calibration is None or not len(calibration):
            raise ValueError("the onnxruntime-int8 engine calibrates on crops of the training images "
                             "(calibration.npy in the model folder), and this model has none: retrain it "
                             "with this defectlab, or use engine='onnxruntime'")
        try:
            return _onnxruntime_forward(net, calibration)
        except Exception as err:  # noqa: BLE001 - say which step failed
            raise RuntimeError(f"could not quantize the net with ONNX Runtime: {err}") from err
    if name == "onnxruntime":
        try:
            return _onnxruntime_forward(net)
        except Exception as err:  # noqa: BLE001 - any exporter/runtime failure: PyTorch still works
            if engine != "auto":
                raise RuntimeError(f"could not run the net with ONNX Runtime: {err}") from err
            warnings.warn(f"ONNX Runtime could not run this net ({type(err).__name__}: {err}); using PyTorch",
                          RuntimeWarning, stacklevel=2)
    return _torch_forward(net, device, channels_last)


def _weights_key(net: nn.Module, device: torch.device) -> tuple[Any, ...]:
    """Changes when any parameter or buffer is replaced or modified in place."""
    return (str(device), *((t.data_ptr(), t._version) for t in net.state_dict(keep_vars=True).values()))


def model_forward(model: Any, engine: str = "auto") -> tuple[Forward, str]:
    """``(forward, engine name)`` for a U-Net :class:`~defectlab.dl.model_io.Model`, made once
    and kept on the model until its weights, device or calibration crops change."""
    # a bad name fails before the cache is consulted; what "auto" stands for may change (DEFECTLAB_ENGINE)
    slot = (engine, resolve_engine(engine, model.device))
    cache: dict[tuple[str, str], tuple[tuple[Any, ...], Forward]] = model.__dict__.setdefault("_forwards", {})
    calibration = getattr(model, "calibration", None)

    def key() -> tuple[Any, ...]:
        return (id(calibration), *_weights_key(model.net, model.device))

    hit = cache.get(slot)
    if hit is not None and hit[0] == key():
        return hit[1], hit[1].engine  # type: ignore[attr-defined]
    forward = unet_forward(model.net, model.device, engine=engine, calibration=calibration)
    cache[slot] = (key(), forward)  # after channels-last: its own key
    return forward, forward.engine  # type: ignore[attr-defined]
