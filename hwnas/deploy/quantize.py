"""Deployment precision: the precisions a table or an exported model can be in, and post-training
static quantisation of an ONNX model with ONNX Runtime's own tooling.

Precisions (what an NPU compiler or runtime executes):

- `fp32`: float32, as exported;
- `fp16`: float16 weights and activations (AI Hub: `--quantize_full_type float16`);
- `int8`: 8-bit integer weights (per output channel, symmetric) and 8-bit activations
  (per tensor), calibrated on sample inputs;
- `w8a16`: 8-bit weights, 16-bit activations -- the NPU's accuracy-preserving middle
  ground.

`quantize_static_onnx` writes QDQ models (QuantizeLinear/DequantizeLinear pairs around
float ops): ONNX Runtime's CPU provider fuses each Q-op-DQ pattern into an integer
kernel where it has one (Conv, MatMul, Add, ...) and leaves the rest in float, so the
same file is both what a QDQ-consuming compiler reads and what the CPU times.
Activations are calibrated by one of ONNX Runtime's methods (`CALIBRATION_METHODS`):
min/max over the calibration inputs, a percentile of their absolute values, or the
entropy (KL divergence) of their histogram; chosen tensors can keep 16-bit activations
(`sixteen_bit`, the mixed-precision fallback of `hwnas.deploy.sensitivity`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hwnas.contracts.errors import HwnasError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "w8a16")
QUANTISED = ("int8", "w8a16")  # precisions that need calibration data
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")  # onnxruntime.quantization.CalibrationMethod's, by our names
CALIBRATION_STRIDE = 8  # inputs per calibration pass: histogram methods hold every activation of a pass in memory
# (ONNX Runtime merges the passes: min/max exactly, histograms approximately)


def check_precision(precision: str, supported: Sequence[str], who: str, why: str = "",
                    fix: str = "for other precisions use a backend that does, e.g. --backend qai-hub") -> str:
    """`precision` if `who` supports it; else one sentence saying what it supports.

    The one check behind every precision setting (the backends' options, `hwnas export`);
    a ValueError, so pydantic validators report it as the field's error.
    """
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision not in supported:
        reason = f" ({why})" if why else ""
        raise PrecisionError(f"{who} does not run {precision}{reason}; it supports {', '.join(supported)} ({fix})")
    return precision


class PrecisionError(HwnasError, ValueError):
    """A precision a backend or the exporter does not run (a ValueError for pydantic's validators)."""


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of input arrays, read in ranges
    (`set_range`), so the calibrator sees a few inputs at a time."""

    def __init__(self, name: str, inputs: Iterable[np.ndarray]):
        self._feeds = [{name: np.ascontiguousarray(x, dtype=np.float32)} for x in inputs]
        self._items = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._items = iter(self._feeds[start_index:end_index])

    def get_next(self):
        return next(self._items, None)

    def rewind(self) -> None:
        self._items = iter(self._feeds)


class _QuantizerChatter(logging.Filter):
    """Drops ONNX Runtime's quantiser INFO lines ("Created a copy of bias input ...", one per shared bias), which
    it logs on the root logger: noise in a user's terminal. Its warnings and errors still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "quantization" not in Path(record.pathname).parts:
            return True
        # The opset update to 21 is what 16-bit activations need, asked for: not news to the user.
        return record.levelno >= logging.WARNING and "Automatically update the model to opset" not in record.getMessage()


def quantize_static_onnx(src: str | Path, dst: str | Path, inputs: Sequence[np.ndarray], precision: str = "int8", *,
                         method: str = "minmax", per_channel: bool = True, sixteen_bit: Sequence[str] = (),
                         cache: str | Path | None = None) -> Path:
    """Quantise the float ONNX model `src` into `dst` (QDQ), calibrated on `inputs` by `method`.

    int8: QInt8 weights (per output channel unless `per_channel` is False), QUInt8
    activations (the pair ONNX Runtime's CPU integer kernels take) except the tensors
    named in `sixteen_bit` (QUInt16); w8a16: QUInt16 activations. The model is first
    pre-processed as ONNX Runtime recommends (shape inference and graph optimisation, so
    that BatchNorm and other foldable ops are gone first). `cache`: a file for the
    calibrated ranges -- read if it exists, else written -- so quantising the same model
    again (another `sixteen_bit`) skips the calibration.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if precision not in QUANTISED:
        raise ValueError(f"quantize_static_onnx quantises to {QUANTISED}, not {precision!r}")
    if not inputs:
        raise HwnasError("quantisation needs at least one calibration input; give --calibration DIR with images.")
    src, dst = Path(src), Path(dst)
    activation = QuantType.QUInt8 if precision == "int8" else QuantType.QUInt16
    graph = onnx.load(str(src), load_external_data=False).graph
    name = graph.input[0].name
    # A quantised graph output `y` is made by a tensor the QDQ file calls `y_QuantizeLinear_Input`
    # (ONNX Runtime's renaming; `quantised_tensors` of a QDQ file gives that name): the float file calls it `y`.
    outputs = {o.name for o in graph.output}
    renamed = {f"{o}_QuantizeLinear_Input": o for o in outputs}
    stride = _stride(len(inputs))
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True, "CalibStridedMinMax": stride,
             "TensorQuantOverrides": {renamed.get(t, t): [{"quant_type": QuantType.QUInt16}] for t in sixteen_bit}}
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        dst.parent.mkdir(parents=True, exist_ok=True)
        chatter = _QuantizerChatter()
        logging.getLogger().addFilter(chatter)
        try:  # the histogram calibrators print progress: kept off stdout, where --json output goes
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(pre), str(dst), _Reader(name, inputs), quant_format=QuantFormat.QDQ,
                                per_channel=per_channel, activation_type=activation, weight_type=QuantType.QInt8,
                                calibrate_method=calibration_method(method), extra_options=extra,
                                calibration_cache_path=None if cache is None else str(cache))
        finally:
            logging.getLogger().removeFilter(chatter)
    return dst


def calibration_method(name: str):
    """ONNX Runtime's CalibrationMethod for one of CALIBRATION_METHODS."""
    from onnxruntime.quantization import CalibrationMethod

    if name not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {name!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[name]


def _stride(count: int) -> int:
    """The largest divisor of `count` up to CALIBRATION_STRIDE (ONNX Runtime needs the passes equal)."""
    return max(d for d in range(1, min(count, CALIBRATION_STRIDE) + 1) if count % d == 0)


def quantised_tensors(model) -> dict[str, tuple[float, int, int]]:
    """Activation tensors the QDQ `model` (an onnx.ModelProto) quantises: name -> (scale, zero point,
    ONNX element type), from its QuantizeLinear nodes (weights are stored quantised and have none)."""
    from onnx import numpy_helper

    consts = {t.name: t for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in consts and node.input[2] in consts:
            scale, zero = numpy_helper.to_array(consts[node.input[1]]), consts[node.input[2]]
            if scale.size == 1:
                out[node.input[0]] = (float(scale.reshape(())), int(numpy_helper.to_array(zero).reshape(())), zero.data_type)
    return out


def output_psnr(reference: np.ndarray, test: np.ndarray, peak: float = 1.0) -> float:
    """PSNR (dB) of `test` against `reference` over the whole arrays (inf when identical)."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(test, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
