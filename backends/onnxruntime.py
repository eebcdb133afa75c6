"""ONNX Runtime latency on this machine's CPU.

Each unit (a candidate at its input shape, a fixed part, or a whole network) is
exported alone through `hwnas.onnx_export.to_onnx` -- the path `hwnas export` ships,
with BatchNorm folded by our code -- and timed in an ONNX Runtime session:

- fixed threading: `threads` intra-op threads, 1 inter-op thread, sequential execution,
  all graph optimisations (as a deployment would run it);
- intra-op spinning off for every timed session (whole networks included): with it on,
  an idle session's workers keep busy-waiting after its run and steal the cores from
  the next session of an interleaved round -- measured here, 2 cores: a `naf` block at
  32x256x256 took 125 ms interleaved with spinning and 16-18 ms without;
- every unit in every round: a group is everything whose sessions fit in memory (all
  units of the paper preset), each round times each of its sessions once, in a new
  random order, after `warmup` untimed rounds. Why: a shared virtual machine's speed
  drifts with nothing else running inside it -- measured on our 2-core VM (other
  processes 0.00 cores, steal < 1%): a paper network took 260-432 ms from one 9-s cycle
  to the next, and 2-minute medians differed by 9%. The protocol before version 2 timed
  groups of 8 units one after the other, each within a few seconds, so each group
  caught its own moment of the machine. (How a unit is called was not the problem:
  timed in the same rounds, the old and the new way give the same unit times, ratio
  1.00, and both predict networks of those rounds within 0-4%.);
- `runs` timed rounds in `passes` passes (`hwnas.backends.ort_rounds`): a row records
  how far its pass medians disagree (`spread_pct`); while a unit's passes disagree by
  more than `noisy_pct`, another pass of the whole group replaces the oldest (at most
  `extra_passes`); a row still above is written with `noisy` set, and a warning;
- each timed call of a unit follows an untimed call of the same unit, so its input,
  weights and buffers are in cache, as inside a network, where a block reads what the
  block before it has just written; a whole network or ONNX file is timed by a single
  call. Measured here in the same rounds as 8 random paper networks: units timed this
  way predicted them with a mean error of +0.2% (mean |error| 2.7%). Timing each unit
  between two 1x1 convolutions instead -- as a neighbour would hand it a tensor in the
  runtime's blocked layout -- minus the two convolutions alone, predicted them 5-7% low;
- per unit: median, p10 and p90 of its rounds, each round's time minus that of a
  do-nothing model (one `Shape` node) fed the same input shape in the same round: a
  call's own overhead, which a network pays once, not once per block. Not an `Identity`
  model: that copies its input, which is data movement, not overhead;
- identical (name, kind, input shape) units are measured once;
- int8 (protocol version 3): each unit quantised alone (QDQ) is timed as a whole int8
  network runs it, its input already 8-bit and its output left 8-bit
  (`hwnas.quantised_io`): the quantisation at its input and the dequantisation at its
  output belong to its neighbours' fused kernels there, not to it. Its overhead probe
  takes the same 8-bit input. Whole networks keep their float input and output;
- what else the machine did meanwhile (`hwnas.machine_load`): the load average at the
  start and end and the cores other processes kept busy go to the sidecar, with a
  warning when they were busy.

`device="cpu"` means this machine's CPU: the table records `cpu:<model name>` (from
/proc/cpuinfo), so a table measured on another CPU model is refused rather than
reused. `--device cpu:<model>` is accepted when it names this machine's CPU.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hwnas.backends import ort_rounds
from hwnas.errors import HwnasError
from hwnas.latency import LatencyBackend, Measurement, MeasurementError, Shape, shape_str, versions
from hwnas.machine_load import LoadWatch
from hwnas.space import Unit

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

log = logging.getLogger(__name__)

OPSET = 17
# Units are exported by the TorchScript exporter at opset 17, chosen here, not as a fallback: every
# stored ONNX Runtime table records opset 17 in its settings and times that exporter's graph, and
# a table refuses a backend with other settings -- moving units to the dynamo exporter (opset 18
# and up) is a protocol change that refuses every stored table, to be made with a protocol bump.
# The time is not the reason: dynamo costs ~1 s more per unit (benchmarks/results/export.csv),
# ~30 s on a 30-unit paper table. HWNAS_ONNX_EXPORTER=dynamo does not apply here (opset 17).
UNIT_EXPORTER = "legacy"
PROTOCOL_VERSION = 2  # a settings key: a table timed by another protocol is refused, not completed
INT8_PROTOCOL_VERSION = 3  # int8 units timed with 8-bit input and output (`hwnas.quantised_io`); fp32 tables stay valid
GROUP_UNITS = 64  # sessions timed in the same rounds at most; results are saved per group
GROUP_BYTES = 3 << 30  # and they hold at most about this much more memory than before the group
FLOOR_MS = ort_rounds.FLOOR_MS
CPU_PRECISIONS = ("fp32", "int8")  # int8: ORT fuses QDQ pairs into integer kernels; fp16/16-bit ints have none on CPU
CALIBRATION_INPUTS = 4  # random inputs that set a unit's activation ranges: enough for timing, not for accuracy


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """This machine's CPU model name, e.g. 'AMD EPYC' or 'Intel(R) Xeon(R) ... @ 2.90GHz'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.partition(":")[2].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


class OnnxRuntimeOptions(BaseModel):
    """How to time: `device` (this machine's CPU), intra-op `threads`, `warmup` rounds, `runs`
    timed rounds in `passes` passes (rounded up to a multiple of `passes`), `noisy_pct` and
    `extra_passes` (module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # inf passes every bound

    device: str = "cpu"
    threads: int = Field(2, ge=1, le=256)
    warmup: int = Field(3, ge=0)
    runs: int = Field(60, ge=1)
    passes: int = Field(3, ge=1)
    noisy_pct: float = Field(10.0, gt=0)
    extra_passes: int = Field(2, ge=0)
    precision: str = "fp32"  # fp32, or int8: each unit statically quantised (QDQ) before it is timed

    @field_validator("precision")
    @classmethod
    def _cpu_precisions(cls, v: str) -> str:
        from hwnas.quantize import check_precision

        return check_precision(v, CPU_PRECISIONS, "onnxruntime on this CPU", why="its CPU kernels have no other path worth timing")

    @field_validator("device")
    @classmethod
    def _this_cpu(cls, v: str) -> str:
        here = f"cpu:{cpu_model()}"
        if v.strip().lower() == "cpu" or v.strip() == here:
            return "cpu"
        if v.lower().startswith("cpu:"):
            raise ValueError(f"{v!r} is not this machine's CPU ({here}); measure on that machine, or pass --device cpu here")
        raise ValueError(f"onnxruntime measures this machine's CPU only, not {v!r}; pass --device cpu (for a phone chip use --backend qai-hub)")


@dataclass
class _Timed:
    """A session to time in every round of a group, and the do-nothing call subtracted from it."""

    label: str  # what it is, for messages
    call: Callable[[], object]
    shape: Shape  # its input
    warm: bool  # timed right after an untimed call of itself (units; not whole networks)
    unit: Unit | None = None  # None for an ONNX file
    dtype: str = "float32"  # its input's: uint8 for an int8 unit (`hwnas.quantised_io`)


class OnnxRuntimeBackend(LatencyBackend):
    """ONNX Runtime on this machine's CPU (exported like `hwnas export`, interleaved, overhead subtracted)."""

    name: ClassVar[str] = "onnxruntime"
    Options: ClassVar[type[BaseModel]] = OnnxRuntimeOptions

    def __init__(self, options: OnnxRuntimeOptions | None = None):
        super().__init__(options or OnnxRuntimeOptions())
        self.overhead_ms: dict[str, float] = {}  # input shape -> per-call overhead subtracted there
        self.extra_passes_run = 0
        self.noisy: list[str] = []  # units still noisy after the extra passes
        self.load: dict[str, Any] = {}  # the machine's load while measuring (`LoadWatch.record`)

    @property
    def device(self) -> str:
        return f"cpu:{cpu_model()}"

    def runtime(self) -> str:
        return f"onnxruntime {versions('onnxruntime').get('onnxruntime', '?')} CPUExecutionProvider"

    def settings(self) -> dict[str, Any]:
        return {
            "device": self.options.device,
            "threads": self.options.threads,
            "inter_op_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization": "all",
            "allow_spinning": False,
            "provider": "CPUExecutionProvider",
            "opset": OPSET,
            "protocol_version": INT8_PROTOCOL_VERSION if self.options.precision == "int8" else PROTOCOL_VERSION,
            "precision": self.options.precision,
        }

    def protocol(self) -> dict[str, Any]:
        return {
            "warmup": self.options.warmup,
            "runs": self.options.runs,
            "passes": self.options.passes,
            "noisy_pct": self.options.noisy_pct,
            "extra_passes": self.options.extra_passes,
            "statistic": "median/p10/p90 over rounds that time every unit once in random order (a unit after an "
            "untimed call of itself), each minus a Shape-only model at the same input in the same round",
            "overhead_ms": dict(self.overhead_ms),
            "extra_passes_run": self.extra_passes_run,
            "noisy_units": list(self.noisy),
            "load": dict(self.load),
        }

    def tool_versions(self) -> dict[str, str]:
        return versions("hwnas", "onnxruntime", "torch", "onnx")

    # -- measuring --------------------------------------------------------------------

    def measure(
        self, units: Sequence[Unit], on_result: Callable[[Measurement], None] | None = None
    ) -> list[Measurement]:
        """One Measurement per unit, in order; each group's results go to `on_result` as it finishes."""
        distinct: dict[tuple[str, str, Shape], Unit] = {}
        for u in units:
            distinct.setdefault(_key(u), u)
        done: dict[tuple[str, str, Shape], Measurement] = {}
        watch = LoadWatch().start()
        with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
            for group in self._groups(list(distinct.values()), Path(tmp)):
                for item, m in zip(group, self._time_group(group)):
                    done[_key(item.unit)] = m
                    if on_result:
                        on_result(m)
        self._note_load(watch.stop())
        return [done[_key(u)] for u in units]

    def measure_onnx(self, path: str | Path, input_shape: Sequence[int] | None = None) -> Measurement:
        """An ONNX file timed like a whole network (alone, minus a Shape-only model at its input).

        Its input must be one float tensor; dimensions the file leaves free come from
        `input_shape` (e.g. the table's image size), and without it are refused.
        """
        path = Path(path)
        if path.is_dir():  # `hwnas export` writes a file, so advising an export there would be refused
            raise HwnasError(f"{path} is a folder, not an ONNX file; pass the .onnx file itself (e.g. one written by "
                             "`hwnas export --out model.onnx`).")
        if not path.is_file():
            raise HwnasError(f"no ONNX file at {path}; export one with `hwnas export --out {path}`.")
        session = self._session(path, None, keep=True)
        shape = _onnx_input_shape(session.get_inputs(), path, input_shape)
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        label = f"ONNX file {path.name}@{shape_str(shape)}"
        try:
            call = _call(session, x)
            call()
        except Exception as err:  # onnxruntime raises its own exception types
            raise HwnasError(f"onnxruntime cannot run {path} on a {shape_str(shape)} input ({_first_line(err)}); "
                             "pass a file that takes one image tensor.") from None
        watch = LoadWatch().start()
        m = self._time_group([_Timed(label, call, shape, warm=False)], kind="network", name=path.stem)[0]
        self._note_load(watch.stop())
        return m

    def _groups(self, units: list[Unit], tmp: Path) -> Iterator[list[_Timed]]:
        """Sessions for `units` (each called once, so its memory is in use), in groups that
        hold at most GROUP_UNITS sessions and about GROUP_BYTES more memory."""
        group: list[_Timed] = []
        start = _rss_bytes()
        for u in units:
            group.append(self._prepare(u, tmp))
            if len(group) >= GROUP_UNITS or _rss_bytes() - start > GROUP_BYTES:
                yield group
                group = []
                start = _rss_bytes()
        if group:
            yield group

    def _prepare(self, unit: Unit, tmp: Path) -> _Timed:
        """Export `unit`, load it and call it once."""
        shape = tuple(int(d) for d in unit.input_shape)
        session = self._session(self._export(unit, tmp), unit)
        dtype = _input_dtype(session)
        call = _call(session, _feed(shape, dtype))
        self._run_once(call, _describe(unit))
        return _Timed(_describe(unit), call, shape, warm=unit.kind != "network", unit=unit, dtype=dtype)

    def _time_group(self, group: list[_Timed], kind: str | None = None, name: str | None = None) -> list[Measurement]:
        """Time `group` with its do-nothing probes in the same rounds; one Measurement per item."""
        calls, warm = [t.call for t in group], [t.warm for t in group]
        index: dict[tuple[Shape, bool, str], int] = {}  # a probe per input shape and type, called as the items it serves
        for t in group:
            if (t.shape, t.warm, t.dtype) not in index:
                index[(t.shape, t.warm, t.dtype)] = len(calls)
                calls.append(self._probe(t.shape, t.dtype))
                warm.append(t.warm)
        refs = {i: (index[(t.shape, t.warm, t.dtype)],) for i, t in enumerate(group)}
        refs.update({j: () for j in index.values()})  # the probes' own times, for the sidecar
        opts = self.options
        plan = ort_rounds.Plan(warmup=opts.warmup, rounds=max(1, -(-opts.runs // opts.passes)), passes=opts.passes,
                               extra_passes=opts.extra_passes, noisy_pct=opts.noisy_pct)
        try:
            times, extra = ort_rounds.measure(calls, refs, plan, warm)
        except Exception as err:  # onnxruntime raises its own exception types
            names = ", ".join(t.label for t in group)
            raise MeasurementError(f"onnxruntime failed while timing {names} ({_first_line(err)}).") from None
        self.extra_passes_run = max(self.extra_passes_run, extra)
        for (shape, warmed, dtype), j in index.items():
            label = shape_str(shape) + ("" if dtype == "float32" else f" {dtype}") + ("" if warmed else " single call")
            self.overhead_ms[label] = round(times[j].median_ms, 6)
        out = [self._measurement(t, times[i], kind, name) for i, t in enumerate(group)]
        noisy = [t.label for i, t in enumerate(group) if times[i].noisy(opts.noisy_pct)]
        if noisy:
            self.noisy += noisy
            log.warning(
                "%d of %d measurements still vary by more than %g%% between passes after %d extra passes (%s): the "
                "machine was busy or its speed drifted, so they are flagged noisy; measure again when it is quiet "
                "(a table: `hwnas build-lut --force`)", len(noisy), len(group), opts.noisy_pct, extra,
                ", ".join(noisy[:4]) + (" ..." if len(noisy) > 4 else ""))
        return out

    def _measurement(self, t: _Timed, timing: ort_rounds.Timing, kind: str | None, name: str | None) -> Measurement:
        u = t.unit
        return Measurement(
            kind=kind or u.kind, name=name or u.name, input_shape=t.shape,
            median_ms=timing.median_ms, p10_ms=timing.p10_ms, p90_ms=timing.p90_ms, runs=timing.runs,
            spread_pct=round(timing.spread_pct, 2), noisy=timing.noisy(self.options.noisy_pct),
            device=self.device, runtime=self.runtime(),
        )

    def _probe(self, shape: Shape, dtype: str = "float32") -> Callable[[], object]:
        call = _call(self._session(_shape_only_model(shape, dtype), None), _feed(shape, dtype))
        self._run_once(call, f"the overhead probe at {shape_str(shape)}")
        return call

    def _run_once(self, call: Callable[[], object], what: str) -> None:
        try:
            call()
        except Exception as err:  # onnxruntime raises its own exception types
            raise MeasurementError(f"onnxruntime failed to run {what} ({_first_line(err)}).") from None

    def _note_load(self, watch: LoadWatch) -> None:
        self.load = watch.record()
        if watch.busy():
            log.warning("the machine was busy while measuring (%s): these times are probably too high; measure again "
                        "when it is idle (`hwnas build-lut --force`)", watch.describe())

    def _export(self, unit: Unit, tmp: Path) -> Path:
        from hwnas.onnx_export import to_onnx

        path = tmp / f"{unit.kind}-{unit.name}-{shape_str(unit.input_shape)}.onnx"
        try:
            path = to_onnx(unit.module, unit.input_shape, path, opset=OPSET, exporter=UNIT_EXPORTER)
        except HwnasError:
            raise
        except Exception as err:  # the exporter raises many types
            raise MeasurementError(f"cannot export {_describe(unit)} to ONNX ({_first_line(err)}).") from None
        return path if self.options.precision == "fp32" else self._quantized(path, unit)

    def _quantized(self, path: Path, unit: Unit) -> Path:
        """`path` quantised to the table's precision (QDQ, per-channel weights), calibrated on random
        inputs: activation ranges change which integer kernels run only through their scale,
        not their speed, so random data times a unit as real images would. A unit (not a whole
        network) keeps its input and output 8-bit, as a network hands them over (`hwnas.quantised_io`)."""
        import onnx

        from hwnas.quantised_io import quantised_io
        from hwnas.quantize import quantize_static_onnx

        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal(unit.input_shape, dtype=np.float32) for _ in range(CALIBRATION_INPUTS)]
        out = path.with_name(path.stem + f"-{self.options.precision}.onnx")
        try:
            quantize_static_onnx(path, out, inputs, self.options.precision)
        except Exception as err:  # onnxruntime.quantization raises many types
            raise MeasurementError(f"cannot quantise {_describe(unit)} to {self.options.precision} ({_first_line(err)}).") from None
        path.unlink(missing_ok=True)
        if unit.kind != "network":
            model = onnx.load(str(out))
            cut = quantised_io(model)
            if not (cut.input and cut.output):
                log.warning("%s keeps a float %s: its quantised graph does not start with a QuantizeLinear and end with "
                            "a DequantizeLinear, so it is timed with that boundary", _describe(unit),
                            " and ".join(side for side, kept in (("input", cut.input), ("output", cut.output)) if not kept))
            onnx.save(model, str(out))
        return out

    def _session_options(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not through our logger
        return so

    def _session(self, model: Path | bytes, unit: Unit | None, so=None, keep: bool = False):
        import onnxruntime as ort

        source = str(model) if isinstance(model, Path) else model
        try:
            session = ort.InferenceSession(source, so or self._session_options(), providers=["CPUExecutionProvider"])
        except Exception as err:
            if keep:  # a user's file
                raise HwnasError(f"onnxruntime cannot load {model} ({_first_line(err)}); pass an ONNX file, e.g. from `hwnas export`.") from None
            what = _describe(unit) if unit else "the overhead probe"
            raise MeasurementError(f"onnxruntime cannot load {what} ({_first_line(err)}).") from None
        if isinstance(model, Path) and not keep:
            model.unlink(missing_ok=True)  # loaded: keep the temporary folder small
        return session

    # -- per-node breakdown --------------------------------------------------------------

    def breakdown(self, module: "nn.Module", input_shape: Sequence[int]) -> "pd.DataFrame":
        """Per-node time from ONNX Runtime's profiler over `runs` passes (after `warmup`).

        Columns: `name` (the exported graph's node name, e.g. `/enc0/enc0.0/norm1/ReduceMean`;
        for nodes the runtime fused or re-laid out, the original node they stand for),
        `op_type` (as executed), `ms` (per pass), `runtime_name`. `frame.attrs["run_ms"]`
        is the median profiled pass, for comparing with the sum of node times.
        """
        import onnx
        import pandas as pd

        shape = tuple(int(d) for d in input_shape)
        unit = Unit("network", shape, module, kind="network")
        with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
            path = self._export(unit, Path(tmp))
            graph = onnx.load(str(path), load_external_data=False).graph
            so = self._session_options()
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "profile")
            session = self._session(path, unit, so)
            feed = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
            call = _call(session, feed)
            for _ in range(self.options.warmup + self.options.runs):
                call()
            events = json.loads(Path(session.end_profiling()).read_text())
        rows, run_ms = _node_times(events, skip_runs=self.options.warmup)
        if not rows:
            raise MeasurementError("onnxruntime's profile holds no node times; try more --runs.")
        names = _NodeNames(graph)
        frame = pd.DataFrame(
            [{"name": names.original(rt, op), "op_type": op, "ms": us / 1e3 / self.options.runs, "runtime_name": rt}
             for rt, (op, us) in rows.items()]
        )
        frame.attrs["run_ms"] = run_ms
        return frame


# -- helpers ------------------------------------------------------------------------------


def _key(u: Unit) -> tuple[str, str, Shape]:
    return (u.kind, u.name, tuple(int(d) for d in u.input_shape))


def _describe(u: Unit) -> str:
    return f"{u.kind} {u.name}@{shape_str(u.input_shape)}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def _rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _feed(shape: Shape, dtype: str = "float32") -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == "float32":
        return rng.standard_normal(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _input_dtype(session) -> str:
    """The numpy type of the session's input: 'tensor(uint8)' -> 'uint8'."""
    kind = session.get_inputs()[0].type.removeprefix("tensor(").removesuffix(")")
    return "float32" if kind == "float" else kind


def _call(session, x: np.ndarray) -> Callable[[], None]:
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def _onnx_input_shape(inputs, path: Path, given: Sequence[int] | None) -> Shape:
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


def _shape_only_model(shape: Shape, dtype: str = "float32") -> bytes:
    """A model that takes an input of `shape` (and `dtype`) and returns its shape: one call's fixed cost."""
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT if dtype == "float32" else helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x = helper.make_tensor_value_info("x", elem, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [len(shape)])
    graph = helper.make_graph([helper.make_node("Shape", ["x"], ["y"])], "overhead", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # old enough for any onnxruntime that runs opset 17
    return model.SerializeToString()


def _node_times(events: list[dict], skip_runs: int) -> tuple[dict[str, tuple[str, float]], float]:
    """runtime node name -> (op type, summed µs) over the profiled passes after the first
    `skip_runs`; and the median pass in ms."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"])
    kept = runs[skip_runs:]
    if not kept:
        return {}, 0.0
    start = kept[0]["ts"]
    out: dict[str, tuple[str, float]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time") or e["ts"] < start:
            continue
        node = name.removesuffix("_kernel_time")
        op = e.get("args", {}).get("op_name", "?")
        out[node] = (op, out.get(node, (op, 0.0))[1] + float(e["dur"]))
    return out, float(np.median([e["dur"] for e in kept])) / 1e3


class _NodeNames:
    """Maps node names of ONNX Runtime's optimised graph back to the exported graph.

    Most nodes keep their names. Nodes the runtime fused or converted to its blocked
    layout are named after a tensor (`/enc0/enc0.0/Mul_output_0_nchwc` is a Conv fused
    with the Mul after it): that tensor's producer is found, then the nearest node
    upstream with the executed op type (the Conv). Fusions named inside a node's scope
    (`.../sg/Slice_1/GatherSliceToSplitFusion`) map to that node. Anything else (layout
    reorders the runtime inserted) keeps its runtime name.
    """

    def __init__(self, graph):
        self.nodes = {n.name: n for n in graph.node}
        self.producer = {out: n for n in graph.node for out in n.output}

    def original(self, runtime_name: str, op_type: str) -> str:
        if runtime_name in self.nodes:
            return runtime_name
        parts = runtime_name.split("_")
        for end in range(len(parts), 0, -1):
            tensor = "_".join(parts[:end])
            if tensor in self.producer:
                return self._upstream(self.producer[tensor], op_type).name
        head = runtime_name
        while "/" in head.strip("/"):
            head = head.rsplit("/", 1)[0]
            if head in self.nodes:
                return head
        return runtime_name

    def _upstream(self, node, op_type: str, depth: int = 4):
        frontier, seen = [node], set()
        for _ in range(depth):
            for n in frontier:
                if n.op_type == op_type:
                    return n
            seen.update(id(n) for n in frontier)
            frontier = [self.producer[i] for n in frontier for i in n.input if i in self.producer and id(self.producer[i]) not in seen]
        return node
