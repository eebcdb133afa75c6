"""ONNX Runtime latency on this machine's CPU.

Each unit (a candidate at its input shape, a fixed part, or a whole network) is
exported alone through `hwnas.export.to_onnx` -- the path `hwnas export` ships, with
BatchNorm folded by our code -- and timed in an ONNX Runtime session:

- fixed threading: `threads` intra-op threads, 1 inter-op thread, sequential execution,
  all graph optimisations (as a deployment would run it);
- intra-op spinning off for every timed session (whole networks included): with it on,
  an idle session's workers keep busy-waiting after its run and steal the cores from
  the next session of an interleaved round -- measured here, 2 cores: a `naf` block at
  32x256x256 took 125 ms interleaved with spinning and 16-18 ms without;
- `warmup` untimed rounds, then `runs` rounds; a round times every unit of a group
  once, starting one unit later each round, so drift and load from other processes
  hit all units alike;
- each timed call follows an untimed call of the same unit, so its input, weights and
  buffers are in cache, as inside a network, where a block reads what the block
  before it has just written. Measured on an idle 16-core Xeon (2 threads, paper
  preset at 256x256, units and whole networks in the same rounds): the sum of cold
  single calls over-predicted networks by +12 to +18%, warm calls by +2 to +13%;
- per unit: median, p10 and p90 of its runs, minus the median per-call overhead of a
  do-nothing model (one `Shape` node) fed the same input shape in the same rounds.
  Not an `Identity` model: that copies its input (0.15 ms at 32x256x256 here), which
  is data movement the unit itself does not do twice, not call overhead;
- identical (name, kind, input shape) units are measured once.

`device="cpu"` means this machine's CPU: the table records `cpu:<model name>` (from
/proc/cpuinfo), so a table measured on another CPU model is refused rather than
reused. `--device cpu:<model>` is accepted when it names this machine's CPU.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hwnas.errors import HwnasError
from hwnas.latency import LatencyBackend, Measurement, MeasurementError, Shape, shape_str, versions
from hwnas.space import Unit

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

log = logging.getLogger(__name__)

OPSET = 17
GROUP_UNITS = 8  # units interleaved together: results are saved per group, so a kill loses at most one group
GROUP_BYTES = 2 << 30  # and their sessions stay within about this much memory
FLOOR_MS = 0.001  # the resolution we record; see `_corrected`


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
    """How to time: `device` (this machine's CPU), intra-op `threads`, `warmup` and `runs` rounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = "cpu"
    threads: int = Field(2, ge=1, le=256)
    warmup: int = Field(3, ge=0)
    runs: int = Field(30, ge=1)

    @field_validator("device")
    @classmethod
    def _this_cpu(cls, v: str) -> str:
        here = f"cpu:{cpu_model()}"
        if v.strip().lower() == "cpu" or v.strip() == here:
            return "cpu"
        if v.lower().startswith("cpu:"):
            raise ValueError(f"{v!r} is not this machine's CPU ({here}); measure on that machine, or pass --device cpu here")
        raise ValueError(f"onnxruntime measures this machine's CPU only, not {v!r}; pass --device cpu (for a phone chip use --backend qai-hub)")


class OnnxRuntimeBackend(LatencyBackend):
    """ONNX Runtime on this machine's CPU (exported like `hwnas export`, interleaved, overhead subtracted)."""

    name: ClassVar[str] = "onnxruntime"
    Options: ClassVar[type[BaseModel]] = OnnxRuntimeOptions

    def __init__(self, options: OnnxRuntimeOptions | None = None):
        super().__init__(options or OnnxRuntimeOptions())
        self.overhead_ms: dict[str, float] = {}  # input shape -> per-call overhead subtracted there

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
        }

    def protocol(self) -> dict[str, Any]:
        return {
            "warmup": self.options.warmup,
            "runs": self.options.runs,
            "statistic": "median/p10/p90 over interleaved rounds (each timed call after an untimed one) "
            "minus the median of a Shape-only model at the same input",
            "overhead_ms": dict(self.overhead_ms),
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
        with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
            for group in _groups(list(distinct.values())):
                for m in self._measure_group(group, Path(tmp)):
                    done[(m.kind, m.name, m.input_shape)] = m
                    if on_result:
                        on_result(m)
        return [done[_key(u)] for u in units]

    def _measure_group(self, units: list[Unit], tmp: Path) -> list[Measurement]:
        feeds: dict[Shape, np.ndarray] = {}
        rng = np.random.default_rng(0)
        for u in units:
            if tuple(u.input_shape) not in feeds:
                feeds[tuple(u.input_shape)] = rng.standard_normal(u.input_shape, dtype=np.float32)
        sessions = [self._session(self._export(u, tmp), u) for u in units]
        probes = {shape: self._session(_shape_only_model(shape), None) for shape in feeds}
        calls = [_call(s, feeds[tuple(u.input_shape)]) for s, u in zip(sessions, units)]
        calls += [_call(s, feeds[shape]) for shape, s in probes.items()]
        times = self._rounds(calls, units, warm=len(units) > 1)
        overhead = {shape: float(np.median(times[len(units) + i])) for i, shape in enumerate(probes)}
        self.overhead_ms.update({shape_str(s): round(v, 6) for s, v in overhead.items()})
        out = []
        for u, t in zip(units, times):
            p10, median, p90 = np.percentile(t, [10, 50, 90])
            base = overhead[tuple(u.input_shape)]
            out.append(Measurement(
                kind=u.kind, name=u.name, input_shape=tuple(u.input_shape), median_ms=_corrected(median, base),
                p10_ms=_corrected(p10, base), p90_ms=_corrected(p90, base), runs=self.options.runs,
                device=self.device, runtime=self.runtime(),
            ))
        return out

    def _rounds(self, calls: list[Callable[[], None]], units: list[Unit], warm: bool) -> np.ndarray:
        """(len(calls), runs) milliseconds: `warmup` untimed rounds, then `runs` timed rounds,
        each timing every session once (after an untimed call if `warm`; a lone unit is
        warm anyway), starting one later each round."""
        n, runs = len(calls), self.options.runs
        try:
            for _ in range(self.options.warmup):
                for call in calls:
                    call()
            out = np.empty((n, runs))
            for r in range(runs):
                for k in range(n):
                    i = (k + r) % n
                    if warm:
                        calls[i]()
                    t0 = time.perf_counter_ns()
                    calls[i]()
                    out[i, r] = (time.perf_counter_ns() - t0) / 1e6
        except Exception as err:  # onnxruntime raises its own exception types
            names = ", ".join(_describe(u) for u in units)
            raise MeasurementError(f"onnxruntime failed while timing {names} ({_first_line(err)}).") from None
        return out

    def _export(self, unit: Unit, tmp: Path) -> Path:
        from hwnas.export import to_onnx

        path = tmp / f"{unit.kind}-{unit.name}-{shape_str(unit.input_shape)}.onnx"
        try:
            return to_onnx(unit.module, unit.input_shape, path, opset=OPSET)
        except HwnasError:
            raise
        except Exception as err:  # the exporter raises many types
            raise MeasurementError(f"cannot export {_describe(unit)} to ONNX ({_first_line(err)}).") from None

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

    def _session(self, model: Path | bytes, unit: Unit | None, so=None):
        import onnxruntime as ort

        source = str(model) if isinstance(model, Path) else model
        try:
            session = ort.InferenceSession(source, so or self._session_options(), providers=["CPUExecutionProvider"])
        except Exception as err:
            what = _describe(unit) if unit else "the overhead probe"
            raise MeasurementError(f"onnxruntime cannot load {what} ({_first_line(err)}).") from None
        if isinstance(model, Path):
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


def _corrected(value: float, overhead: float) -> float:
    """A time minus the per-call overhead. A unit faster than we can tell apart from the
    overhead is recorded at the floor (1 us), not at 0 (which would read as free) and
    never negative."""
    return max(float(value) - overhead, FLOOR_MS)


def _footprint(u: Unit) -> int:
    """Rough bytes a session of `u` holds: weights plus a few activations of the input's size."""
    params = sum(p.numel() for p in u.module.parameters()) if u.module is not None else 0
    return 4 * (params + 8 * int(np.prod(u.input_shape)))


def _groups(units: list[Unit]) -> list[list[Unit]]:
    groups: list[list[Unit]] = [[]]
    used = 0
    for u in units:
        size = _footprint(u)
        if groups[-1] and (len(groups[-1]) >= GROUP_UNITS or used + size > GROUP_BYTES):
            groups.append([])
            used = 0
        groups[-1].append(u)
        used += size
    return [g for g in groups if g]


def _call(session, x: np.ndarray) -> Callable[[], None]:
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def _shape_only_model(shape: Shape) -> bytes:
    """A model that takes an input of `shape` and returns its shape: one call's fixed cost."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
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
