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
Activations are calibrated with min/max over the calibration inputs.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hwnas.errors import HwnasError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "w8a16")
QUANTISED = ("int8", "w8a16")  # precisions that need calibration data


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
    """ONNX Runtime's CalibrationDataReader protocol over a list of input arrays."""

    def __init__(self, name: str, inputs: Iterable[np.ndarray]):
        self._items = iter([{name: np.ascontiguousarray(x, dtype=np.float32)} for x in inputs])

    def get_next(self):
        return next(self._items, None)

    def rewind(self) -> None:  # part of the protocol; calibration reads once
        pass


class _QuantizerChatter(logging.Filter):
    """Drops ONNX Runtime's quantiser INFO lines ("Created a copy of bias input ...", one per shared bias), which
    it logs on the root logger: noise in a user's terminal. Its warnings and errors still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "quantization" not in Path(record.pathname).parts


def quantize_static_onnx(src: str | Path, dst: str | Path, inputs: Sequence[np.ndarray], precision: str = "int8") -> Path:
    """Quantise the float ONNX model `src` into `dst` (QDQ), calibrated on `inputs`.

    int8: QInt8 per-channel weights, QUInt8 activations (the pair ONNX Runtime's CPU
    integer kernels take); w8a16: QInt8 per-channel weights, QUInt16 activations.
    The model is first pre-processed as ONNX Runtime recommends (shape inference and
    graph optimisation, so that BatchNorm and other foldable ops are gone first).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if precision not in QUANTISED:
        raise ValueError(f"quantize_static_onnx quantises to {QUANTISED}, not {precision!r}")
    if not inputs:
        raise HwnasError("quantisation needs at least one calibration input; give --calibration DIR with images.")
    src, dst = Path(src), Path(dst)
    activation = QuantType.QUInt8 if precision == "int8" else QuantType.QUInt16
    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="hwnas-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        dst.parent.mkdir(parents=True, exist_ok=True)
        chatter = _QuantizerChatter()
        logging.getLogger().addFilter(chatter)
        try:
            quantize_static(str(pre), str(dst), _Reader(name, inputs), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=activation, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        finally:
            logging.getLogger().removeFilter(chatter)
    return dst


def output_psnr(reference: np.ndarray, test: np.ndarray, peak: float = 1.0) -> float:
    """PSNR (dB) of `test` against `reference` over the whole arrays (inf when identical)."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(test, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
