"""ONNX Runtime sessions of units: a unit exported alone (as `hwnas export` would) and, for int8,
quantised with 8-bit boundaries; the session settings every timed session shares (fixed
threads, no spinning, all graph optimisations); the do-nothing probe model whose time is
subtracted; the inputs fed and the one-line error messages. Timing them is
`hwnas.backends.onnxruntime`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hwnas.backends.ort_options import OnnxRuntimeOptions
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import MeasurementError, Shape, shape_str
from hwnas.contracts.space import Unit

log = logging.getLogger("hwnas.backends.onnxruntime")  # the backend's logger: its warnings keep their name

OPSET = 17
# Units are exported by the TorchScript exporter at opset 17, chosen here, not as a fallback: every
# stored ONNX Runtime table records opset 17 in its settings and times that exporter's graph, and
# a table refuses a backend with other settings -- moving units to the dynamo exporter (opset 18
# and up) is a protocol change that refuses every stored table, to be made with a protocol bump.
# The time is not the reason: dynamo costs ~1 s more per unit (benchmarks/results/export.csv),
# ~30 s on a 30-unit paper table. HWNAS_ONNX_EXPORTER=dynamo does not apply here (opset 17).
UNIT_EXPORTER = "legacy"
CALIBRATION_INPUTS = 4  # random inputs that set a unit's activation ranges: enough for timing, not for accuracy


def export_unit(unit: Unit, tmp: Path, precision: str) -> Path:
    """`unit` alone as an ONNX file in `tmp` (`hwnas.deploy.onnx_export.to_onnx`), quantised unless `precision` is fp32."""
    from hwnas.deploy.onnx_export import to_onnx

    path = tmp / f"{unit.kind}-{unit.name}-{shape_str(unit.input_shape)}.onnx"
    try:
        path = to_onnx(unit.module, unit.input_shape, path, opset=OPSET, exporter=UNIT_EXPORTER)
    except HwnasError:
        raise
    except Exception as err:  # the exporter raises many types
        raise MeasurementError(f"cannot export {describe(unit)} to ONNX ({first_line(err)}).") from None
    return path if precision == "fp32" else quantized(path, unit, precision)


def quantized(path: Path, unit: Unit, precision: str) -> Path:
    """`path` quantised to the table's precision (QDQ, per-channel weights), calibrated on random
    inputs: activation ranges change which integer kernels run only through their scale,
    not their speed, so random data times a unit as real images would. A unit (not a whole
    network) keeps its input and output 8-bit, as a network hands them over (`hwnas.deploy.quantised_io`)."""
    import onnx

    from hwnas.deploy.quantised_io import quantised_io
    from hwnas.deploy.quantize import quantize_static_onnx

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(unit.input_shape, dtype=np.float32) for _ in range(CALIBRATION_INPUTS)]
    out = path.with_name(path.stem + f"-{precision}.onnx")
    try:
        quantize_static_onnx(path, out, inputs, precision)
    except Exception as err:  # onnxruntime.quantization raises many types
        raise MeasurementError(f"cannot quantise {describe(unit)} to {precision} ({first_line(err)}).") from None
    path.unlink(missing_ok=True)
    if unit.kind != "network":
        model = onnx.load(str(out))
        cut = quantised_io(model)
        if not (cut.input and cut.output):
            log.warning("%s keeps a float %s: its quantised graph does not start with a QuantizeLinear and end with "
                        "a DequantizeLinear, so it is timed with that boundary", describe(unit),
                        " and ".join(side for side, kept in (("input", cut.input), ("output", cut.output)) if not kept))
        onnx.save(model, str(out))
    return out


def session_options(options: OnnxRuntimeOptions):
    """The settings of every timed session: fixed threads, sequential, all optimisations, no spinning."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not through our logger
    return so


def load_session(model: Path | bytes, unit: Unit | None, options: OnnxRuntimeOptions, so=None, keep: bool = False):
    """A CPU session of `model` (a file, deleted once loaded unless `keep`: a user's file, or bytes)."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, Path) else model
    try:
        session = ort.InferenceSession(source, so or session_options(options), providers=["CPUExecutionProvider"])
    except Exception as err:
        if keep:  # a user's file
            raise HwnasError(f"onnxruntime cannot load {model} ({first_line(err)}); pass an ONNX file, e.g. from `hwnas export`.") from None
        what = describe(unit) if unit else "the overhead probe"
        raise MeasurementError(f"onnxruntime cannot load {what} ({first_line(err)}).") from None
    if isinstance(model, Path) and not keep:
        model.unlink(missing_ok=True)  # loaded: keep the temporary folder small
    return session


def describe(u: Unit) -> str:
    return f"{u.kind} {u.name}@{shape_str(u.input_shape)}"


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def feed(shape: Shape, dtype: str = "float32") -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == "float32":
        return rng.standard_normal(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def input_dtype(session) -> str:
    """The numpy type of the session's input: 'tensor(uint8)' -> 'uint8'."""
    kind = session.get_inputs()[0].type.removeprefix("tensor(").removesuffix(")")
    return "float32" if kind == "float" else kind


def call_of(session, x: np.ndarray) -> Callable[[], None]:
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def onnx_input_shape(inputs, path: Path, given: Sequence[int] | None) -> Shape:
    """The file's one input shape, free dimensions taken from `given`."""
    if len(inputs) != 1 or "float" not in inputs[0].type:
        raise HwnasError(f"{path} takes {len(inputs)} inputs ({', '.join(i.type for i in inputs)}); "
                         "hwnas times ONNX files with one float tensor input, e.g. from `hwnas export`.")
    dims = inputs[0].shape
    if given is not None and len(given) != len(dims):
        raise HwnasError(f"{path} takes a rank-{len(dims)} input, not {shape_str(given)}; pass a file of this space.")
    shape = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif given is not None:
            shape.append(int(given[i]))
        else:
            raise HwnasError(f"{path} leaves its input size free ({dims}); give a table (--lut) or --image-size to time it at.")
    return tuple(shape)


def shape_only_model(shape: Shape, dtype: str = "float32") -> bytes:
    """A model that takes an input of `shape` (and `dtype`) and returns its shape: one call's fixed cost."""
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT if dtype == "float32" else helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x = helper.make_tensor_value_info("x", elem, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [len(shape)])
    graph = helper.make_graph([helper.make_node("Shape", ["x"], ["y"])], "overhead", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # old enough for any onnxruntime that runs opset 17
    return model.SerializeToString()
