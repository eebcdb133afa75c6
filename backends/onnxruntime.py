"""ONNX Runtime latency on this machine's CPU.

Each unit (a candidate at its input shape, a fixed part, or a whole network) is
exported alone through `hwnas.deploy.onnx_export.to_onnx` -- the path `hwnas export` ships,
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
  (`hwnas.deploy.quantised_io`): the quantisation at its input and the dequantisation at its
  output belong to its neighbours' fused kernels there, not to it. Its overhead probe
  takes the same 8-bit input. Whole networks keep their float input and output;
- what else the machine did meanwhile (`hwnas.tables.machine_load`): the load average at the
  start and end and the cores other processes kept busy go to the sidecar, with a
  warning when they were busy.

`device="cpu"` means this machine's CPU: the table records `cpu:<model name>` (from
/proc/cpuinfo), so a table measured on another CPU model is refused rather than
reused. `--device cpu:<model>` is accepted when it names this machine's CPU.

Here: the backend and its timing protocol (groups, interleaved rounds, overhead subtracted);
its options are `hwnas.backends.ort_options`, its sessions `hwnas.backends.ort_session`,
its per-node breakdown `hwnas.backends.ort_breakdown`, its rounds `hwnas.backends.ort_rounds`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
from pydantic import BaseModel

from hwnas.backends import ort_breakdown, ort_rounds
from hwnas.backends.ort_breakdown import _NodeNames  # noqa: F401  (re-exported)
from hwnas.backends.ort_options import CPU_PRECISIONS, OnnxRuntimeOptions, cpu_model  # noqa: F401  (re-exported)
from hwnas.backends.ort_session import (  # noqa: F401  (OPSET, UNIT_EXPORTER, CALIBRATION_INPUTS re-exported)
    CALIBRATION_INPUTS, OPSET, UNIT_EXPORTER, call_of, describe, export_unit, feed, first_line, input_dtype,
    load_session, onnx_input_shape, session_options, shape_only_model,
)
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import (
    LatencyBackend, Layer, LayerTimes, Measurement, MeasurementError, NetworkRequest, Shape, shape_str, versions,
)
from hwnas.tables.machine_load import LoadWatch
from hwnas.contracts.space import Unit

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 2  # a settings key: a table timed by another protocol is refused, not completed
WHOLE_NETWORK_STATISTIC = (
    "one uniform network per candidate, timed whole under onnxruntime's profiler (warmup, then runs passes); a "
    "unit's time = the sum of the per-pass node times whose names carry its module path; median (p10/p90) over "
    "positions with the same input shape (fixed parts: over networks); ops outside every unit are not counted"
)
INT8_PROTOCOL_VERSION = 3  # int8 units timed with 8-bit input and output (`hwnas.deploy.quantised_io`); fp32 tables stay valid
GROUP_UNITS = 64  # sessions timed in the same rounds at most; results are saved per group
GROUP_BYTES = 3 << 30  # and they hold at most about this much more memory than before the group
FLOOR_MS = ort_rounds.FLOOR_MS


@dataclass
class _Timed:
    """A session to time in every round of a group, and the do-nothing call subtracted from it."""

    label: str  # what it is, for messages
    call: Callable[[], object]
    shape: Shape  # its input
    warm: bool  # timed right after an untimed call of itself (units; not whole networks)
    unit: Unit | None = None  # None for an ONNX file
    dtype: str = "float32"  # its input's: uint8 for an int8 unit (`hwnas.deploy.quantised_io`)


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
        tail = " whole-network" if self.whole_network() else ""
        return f"onnxruntime {versions('onnxruntime').get('onnxruntime', '?')} CPUExecutionProvider{tail}"

    def whole_network(self) -> bool:
        return self.options.mode == "whole-network"

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
            "mode": self.options.mode,
        }

    def protocol(self) -> dict[str, Any]:
        return {
            "warmup": self.options.warmup,
            "runs": self.options.runs,
            "passes": self.options.passes,
            "noisy_pct": self.options.noisy_pct,
            "extra_passes": self.options.extra_passes,
            "statistic": WHOLE_NETWORK_STATISTIC if self.whole_network() else
            "median/p10/p90 over rounds that time every unit once in random order (a unit after an "
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
        shape = onnx_input_shape(session.get_inputs(), path, input_shape)
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        label = f"ONNX file {path.name}@{shape_str(shape)}"
        try:
            call = call_of(session, x)
            call()
        except Exception as err:  # onnxruntime raises its own exception types
            raise HwnasError(f"onnxruntime cannot run {path} on a {shape_str(shape)} input ({first_line(err)}); "
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
        dtype = input_dtype(session)
        call = call_of(session, feed(shape, dtype))
        self._run_once(call, describe(unit))
        return _Timed(describe(unit), call, shape, warm=unit.kind != "network", unit=unit, dtype=dtype)

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
            raise MeasurementError(f"onnxruntime failed while timing {names} ({first_line(err)}).") from None
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
        call = call_of(self._session(shape_only_model(shape, dtype), None), feed(shape, dtype))
        self._run_once(call, f"the overhead probe at {shape_str(shape)}")
        return call

    def _run_once(self, call: Callable[[], object], what: str) -> None:
        try:
            call()
        except Exception as err:  # onnxruntime raises its own exception types
            raise MeasurementError(f"onnxruntime failed to run {what} ({first_line(err)}).") from None

    def _note_load(self, watch: LoadWatch) -> None:
        self.load = watch.record()
        if watch.busy():
            log.warning("the machine was busy while measuring (%s): these times are probably too high; measure again "
                        "when it is idle (`hwnas build-lut --force`)", watch.describe())

    # -- sessions (`hwnas.backends.ort_session`) and the breakdown (`hwnas.backends.ort_breakdown`) ------

    def _export(self, unit: Unit, tmp: Path) -> Path:
        return export_unit(unit, tmp, self.options.precision)

    def _session_options(self):
        return session_options(self.options)

    def _session(self, model: Path | bytes, unit: Unit | None, so=None, keep: bool = False):
        return load_session(model, unit, self.options, so, keep)

    def breakdown(self, module: "nn.Module", input_shape: Sequence[int]) -> "pd.DataFrame":
        """Per-node time from ONNX Runtime's profiler over `runs` passes (after `warmup`); see
        `hwnas.backends.ort_breakdown.breakdown` for its columns."""
        return ort_breakdown.breakdown(self, module, input_shape)


# -- helpers ------------------------------------------------------------------------------

    def profile_layers(self, networks: Sequence[NetworkRequest]) -> list[LayerTimes | Exception]:
        """Each network's node times from ONNX Runtime's profiler (`breakdown`), for the engine's whole-network mode."""
        out: list[LayerTimes | Exception] = []
        for n in networks:
            try:
                frame = self.breakdown(n.build().eval(), n.input_shape)
            except MeasurementError as err:
                out.append(err)
                continue
            out.append(LayerTimes([Layer(r.name, r.op_type, "cpu", r.ms * 1000.0) for r in frame.itertuples()],
                                  source=f"onnxruntime's profile of {n.label}"))
        return out


def _key(u: Unit) -> tuple[str, str, Shape]:
    return (u.kind, u.name, tuple(int(d) for d in u.input_shape))


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
