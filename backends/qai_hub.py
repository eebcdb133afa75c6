"""Qualcomm AI Hub latency backend: compile and profile on real Snapdragon devices.

Uses the `qai_hub` client as documented for its 0.56 release: each measured model is
exported with `hwnas.deploy.onnx_export.to_onnx` (the same graph `hwnas export` ships), uploaded,
compiled (`--target_runtime`, default `qnn_context_binary`) and profiled with
`submit_inference_job(..., profile=True)` (0.56 deprecates `submit_profile_job`). The jobs
(`qai_hub_jobs`), the client session with its retries and error translation
(`qai_hub_client`) and the options with what AI Hub can run (`qai_hub_options`,
`qai_hub_capability`) live beside this file.

Two modes:

- `per-unit`: one compile + one profile job per unit (a candidate at an input shape, or
  a fixed part). The row's median, p10 and p90 all come from the same warm profiler
  iterations (`all_inference_times` without the first, cold one); the service's own
  `estimated_inference_time` stands beside them as `service_ms` and is the statistic
  only when a profile has no per-iteration times (the job book's `used` says which).
  A unit profiled alone pays the runtime's per-inference overhead (the graph call, its
  input and output handed over), which a network pays once, not once per unit. So each
  distinct input shape also gets a do-nothing graph (one elementwise `Relu`: an empty or
  Identity graph may be folded to nothing, which a compiler will not build), compiled and
  profiled like the units, and its times are subtracted from theirs
  (`qai_hub_profile.without_overhead`); the probe times are recorded in the sidecar
  (`overhead_ms`) and the job book, and reused when a build resumes.
- `whole-network`: one uniform network per candidate, profiled whole, per-layer times
  attributed to units by the engine (`hwnas.tables.whole_network`; this backend's side,
  `profile_layers`, is `qai_hub_network`).

Precision (`precision`, default fp32) follows the client's documented quantisation route:
the compile job gets `--quantize_full_type float16|int8|w8a16` and `--quantize_io` (the
units of a deployed network hand each other quantised tensors, so a unit is timed without
a float conversion at its own input and output), and for the integer precisions
`calibration_data`: a few seeded random inputs of the unit's input shape, uploaded once
per input shape and build and passed to every compile job by its dataset handle. Random
data sets the quantisation scales, not which kernels run or how fast, so it times a unit
as real images would; it is not for accuracy -- `qai_hub_accuracy` checks that on real
images.

The QAIRT version (`qairt_version`, default: AI Hub's current default) goes to compile and
profile jobs as qai_hub_models passes it; the version the jobs actually ran with is read
back from their results into the job book and the sidecar (`qairt`), and one table never
mixes two (`qai_hub_jobs`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np
from pydantic import BaseModel

from hwnas.backends import qai_hub_options as hub_options
from hwnas.backends import qai_hub_profile as hub_profile
from hwnas.backends.qai_hub_client import (  # noqa: F401 (AUTH_FAILED ... one_line re-exported)
    AUTH_FAILED, NOT_CONFIGURED, UPGRADE, HubSession, check_configured, client_retries_off, client_version, load_config,
    one_line,
)
from hwnas.backends.qai_hub_jobs import Track
from hwnas.backends.qai_hub_options import DEVICE_ALIASES, QUANTIZE_FULL_TYPE, QaiHubOptions  # noqa: F401 (re-exported)
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import (
    LatencyBackend, LayerTimes, Measurement, MeasurementError, NetworkRequest, network_candidates, shape_str,
    versions,
)
from hwnas.deploy.quantize import QUANTISED
from hwnas.contracts.space import Shape, Unit

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from torch import nn

log = logging.getLogger(__name__)

CALIBRATION_INPUTS = 4  # seeded random inputs that set a timing unit's quantisation scales (module docstring)
PROBE = "probe"  # job-book key prefix of the overhead probes


def unit_key(unit: Unit) -> str:
    return f"{unit.kind}:{unit.name}@{shape_str(unit.input_shape)}"


class QaiHubBackend(LatencyBackend):
    """Latency measured by Qualcomm AI Hub profile jobs (see the module docstring).

    `client` (a `qai_hub.Client`) is for tests and embedding; by default a private client
    reads the same configuration as `qai_hub`'s global one. `sleep` and `clock` pace
    back-off and polling.
    """

    name: ClassVar[str] = "qai-hub"
    Options: ClassVar[type[BaseModel]] = QaiHubOptions
    submits_jobs: ClassVar[bool] = True  # measuring queues jobs on shared devices: commands say how many first

    def __init__(
        self,
        options: QaiHubOptions | None = None,
        *,
        client: Any = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        from hwnas.backends.qai_hub_jobs import Jobs

        super().__init__(options or QaiHubOptions())
        self.session = HubSession(self.options, client, sleep, clock)
        self.jobs = Jobs(self.session, self._setup, self.compile_options, self.profile_options, self._calibration)
        self.overhead_ms: dict[str, float] = {}  # input shape -> per-inference overhead subtracted there
        self._datasets: dict[tuple[str, Shape], Any] = {}  # calibration data uploaded in this build, by handle
        self._last_network: tuple | None = None  # (module, shape, profile, track, node names): one job for check + breakdown

    # -- what the table records ------------------------------------------------------

    @property
    def device(self) -> str:
        """`sm8650` for the alias, else the device name or attribute as given."""
        d = self.options.device
        return d.lower() if d.lower() in DEVICE_ALIASES else d

    def device_spec(self) -> tuple[str, tuple[str, ...]]:
        """(AI Hub device name, attributes) that jobs are submitted for."""
        d = self.options.device
        if d.lower() in DEVICE_ALIASES:
            return DEVICE_ALIASES[d.lower()]
        parts = [p.strip() for p in d.split(",") if p.strip()]
        if all(":" in p for p in parts):
            return "", tuple(parts)
        return d, ()

    @property
    def client_version(self) -> str:
        return client_version()

    def runtime(self) -> str:
        """e.g. 'qai-hub 0.56.0 qnn_context_binary npu' (+ ' whole-network')."""
        o = self.options
        tail = " whole-network" if o.mode == "whole-network" else ""
        return f"qai-hub {self.client_version} {o.target_runtime} {o.compute_unit}{tail}"

    def compile_options(self, quantize_io: bool = True) -> str:
        return hub_options.compile_options(self.options, quantize_io)

    def profile_options(self) -> str:
        return hub_options.profile_options(self.options)

    def calibration_data(self, input_shape: Sequence[int], name: str = "x") -> dict[str, list[np.ndarray]] | None:
        """`calibration_data` of a timing unit's compile job: for int8 and w8a16, CALIBRATION_INPUTS
        seeded random inputs of its shape under its input name (module docstring)."""
        if self.options.precision not in QUANTISED:
            return None
        rng = np.random.default_rng(0)
        return {name: [rng.standard_normal(tuple(input_shape), dtype=np.float32) for _ in range(CALIBRATION_INPUTS)]}

    def _calibration(self, hub, name: str, input_shape: Shape):
        """The calibration dataset for `input_shape`, uploaded on first use in this build and reused by handle."""
        key = (name, tuple(input_shape))
        data = self.calibration_data(input_shape, name)
        if data is None:
            return None
        if key not in self._datasets:
            self._datasets[key] = self.session.call(
                f"uploading calibration data for {shape_str(input_shape)}", hub.upload_dataset, data,
                name=f"hwnas calibration {shape_str(input_shape)}")
        return self._datasets[key]

    def settings(self) -> dict[str, Any]:
        """What changes the numbers (a table refuses a backend that differs in any of them)."""
        o = self.options
        return {"device": self.device, "target_runtime": o.target_runtime, "compute_unit": o.compute_unit, "mode": o.mode,
                "cold_iterations": o.cold_iterations, "precision": o.precision,
                "extra_compile_options": o.extra_compile_options, "extra_profile_options": o.extra_profile_options}

    def protocol(self) -> dict[str, Any]:
        """How the numbers were taken (recorded in the sidecar, never compared)."""
        from hwnas.backends.qai_hub_network import STATISTIC

        o = self.options
        name, attributes = self.device_spec()
        statistic = STATISTIC if o.mode == "whole-network" else (
            "median_ms, p10_ms, p90_ms = percentiles of the same warm iterations of a profile job on the unit "
            f"alone: execution_summary.all_inference_times (us) / 1000 without the first {o.cold_iterations} (cold); "
            "service_ms = estimated_inference_time (us) / 1000, also the statistic when a profile has no iteration "
            "times (the job book's 'used' says which, per unit); each less the same statistic of a do-nothing graph "
            "(one Relu) at the unit's input shape, profiled alike (overhead_ms): the per-inference overhead a network "
            "pays once; peak memory from estimated_inference_peak_memory (bytes)")
        protocol: dict[str, Any] = {
            "hub_device": {"name": name, "attributes": list(attributes)},
            # asked for, not compared: the version the jobs ran with is ('qairt'), by the job book
            "qairt_version": o.qairt_version,
            "compile_options": self.compile_options(),
            "profile_options": self.profile_options(),
            "statistic": statistic,
        }
        if o.mode == "per-unit":
            protocol["overhead_ms"] = dict(self.overhead_ms)
        if self.jobs.qairt:
            protocol["qairt"] = ", ".join(sorted(self.jobs.qairt))  # the QAIRT version the jobs ran with
        if o.precision in QUANTISED:
            protocol["calibration"] = (f"{CALIBRATION_INPUTS} random normal inputs of each unit's input shape (seed 0), "
                                       "uploaded once per shape: they set quantisation scales, not kernel speed")
        return protocol

    def tool_versions(self) -> dict[str, str]:
        found = versions("hwnas", "qai-hub", "torch", "onnx")
        if self.jobs.qairt:
            found["qairt"] = ", ".join(sorted(self.jobs.qairt))
        return found

    def planned_jobs(self, units: Sequence[Unit]) -> int:
        """New submissions (compile + profile) measuring `units` would cost, overhead probes included;
        jobs already in the attached job book are re-attached (finished probes reused), not counted."""
        if self.options.mode == "whole-network":  # one uniform network per candidate (`hwnas.tables.whole_network`)
            names = network_candidates(units) or ["(fixed parts only)"] * bool(units)
            pending = {k.partition("@")[0] for k in self.jobs.book if self.jobs.reattachable(k)}
            return 2 * sum(1 for name in names if f"uniform:{name}" not in pending)
        keys = {unit_key(u) for u in units} | {k for k in self._probe_keys(units) if not self.jobs.done(k)}
        return 2 * sum(1 for k in keys if not self.jobs.reattachable(k))

    # -- configuration, client and device --------------------------------------------------

    def check_configured(self) -> None:
        """Raise one clear `HwnasError` unless a client is injected or AI Hub is configured."""
        if not self.session.injected:
            check_configured()

    def _hub(self):
        return self.session.client()

    def _unknown_device(self) -> str:
        name, attributes = self.device_spec()
        spec = ", ".join([name] * bool(name) + list(attributes))
        shown = self.options.device if spec == self.options.device else f"{self.options.device} ({spec})"
        return (
            f"AI Hub has no device matching {shown}; list the devices with `qai-hub list-devices` and pass a "
            "device name or a chipset: attribute with --device."
        )

    def resolve_device(self):
        from qai_hub.client import Device

        name, attributes = self.device_spec()
        hub = self.session.client()
        found = self.session.call(f"looking up device {self.options.device!r}", hub.get_devices, name=name,
                                  attributes=list(attributes))
        if not found:
            raise HwnasError(self._unknown_device())
        log.info("AI Hub device %s: %s", self.options.device, ", ".join(sorted({d.name for d in found})))
        return Device(name=name, attributes=list(attributes))

    # -- the job book ----------------------------------------------------------------------

    def attach(self, jobs: dict[str, Any], save: Callable[[], None]) -> None:
        """Keep job ids in `jobs` (the table sidecar's book) and `save()` after every change.

        Entries: key -> {compile, profile, setup, state, compile_options and profile_options (as
        sent)}, and once done `tools` (compile and profile tool versions read back from the
        results), `qairt`, `used` (per-unit: which iterations the row came from), `overhead_ms`
        (probes); `pending` entries whose setup matches are re-attached, `done` and `failed`
        ones are history (a rerun or `--force` submits anew; finished probes are reused).
        """
        self.jobs.attach(jobs, save)
        for key, entry in jobs.items():
            if key.startswith(f"{PROBE}@") and self.jobs.done(key) and "overhead_ms" in entry:
                self.overhead_ms.setdefault(key.partition("@")[2], entry["overhead_ms"])

    def _setup(self) -> str:
        o = self.options
        tail = "" if o.precision == "fp32" else f"|{o.precision}"  # fp32 keeps the setup books written before precisions
        tail += "".join(f"|{v}" for v in (o.qairt_version, o.extra_compile_options, o.extra_profile_options)
                        if v not in ("", "default"))
        return f"{self.device}|{o.target_runtime}|{o.compute_unit}|{o.max_profiler_iterations}{tail}"

    # -- per-unit mode ------------------------------------------------------------------------

    def measure(
        self, units: Sequence[Unit], on_result: Callable[[Measurement], None] | None = None
    ) -> list[Measurement]:
        """Profile each unit alone on the device, less the overhead probe at its input (module docstring)."""
        if self.options.mode == "whole-network":
            raise HwnasError(
                "whole-network mode profiles networks of a search space: call measure_space(space, image_size, units) "
                "(as `hwnas build-lut` does), or use --mode per-unit."
            )
        if not units:
            return []
        self.check_configured()
        first: dict[str, Unit] = {}
        for u in units:
            first.setdefault(unit_key(u), u)  # one job pair per table key
        tracks = {key: Track(key, _describe(u), _returns(u.module), tuple(u.input_shape)) for key, u in first.items()}
        probes = {key: Track(key, f"the overhead probe at {key.partition('@')[2]}", _relu, shape)
                  for key, shape in self._probe_keys(units).items() if not self.jobs.done(key)}
        self.jobs.run(list(probes.values()) + list(tracks.values()), self.resolve_device())
        outcomes = [self._probe(t) for t in probes.values()]
        self.jobs.finish(outcomes)  # a failed probe ends the build: no unit row without its overhead
        results: dict[str, Measurement] = {}
        outcomes = []
        for key, t in tracks.items():
            try:
                m = self._unit(first[key], t)
            except MeasurementError as err:
                outcomes.append((t, err))
                continue
            if on_result:
                on_result(m)
            results[key] = m
            outcomes.append((t, None))
        self.jobs.finish(outcomes)
        return [results[unit_key(u)] for u in units]

    def _probe_keys(self, units: Sequence[Unit]) -> dict[str, Shape]:
        """Job-book key -> input shape of the overhead probe each distinct unit input shape needs."""
        return {f"{PROBE}@{shape_str(u.input_shape)}": tuple(u.input_shape) for u in units if u.kind != "network"}

    def _probe(self, t: Track) -> tuple[Track, MeasurementError | None]:
        try:
            m = self._measured(t, "network", "overhead probe")
        except MeasurementError as err:
            return t, err
        shape = shape_str(t.input_shape)
        self.overhead_ms[shape] = round(m.median_ms, 6)
        t.record.update(overhead_ms=self.overhead_ms[shape], service_ms=m.service_ms)
        return t, None

    def _unit(self, u: Unit, t: Track) -> Measurement:
        m = self._measured(t, u.kind, u.name)
        if u.kind == "network":
            return m  # a network pays its overhead once: nothing to subtract
        probe = self.jobs.book.get(f"{PROBE}@{shape_str(u.input_shape)}", {})
        overhead = m.model_copy(update={"median_ms": self.overhead_ms[shape_str(u.input_shape)],
                                        "service_ms": probe.get("service_ms")})
        return hub_profile.without_overhead(m, overhead)

    def _measured(self, t: Track, kind: str, name: str) -> Measurement:
        """The track's profile as a Measurement (nothing subtracted); its provenance in `t.record`."""
        profile = self.jobs.profile(t)
        source = f"job {t.profile.job_id} ({t.label})"
        t.record["used"] = hub_profile.timing(profile, source, self.options.cold_iterations).used
        return hub_profile.measurement(
            profile, kind=kind, name=name, input_shape=t.input_shape, device=self.device,
            runtime=self.runtime().removesuffix(" whole-network"), source=source, cold=self.options.cold_iterations,
        )

    # -- whole-network mode (the engine's, `hwnas.tables.whole_network`, over `ProfilesLayers`) ------

    def whole_network(self) -> bool:
        return self.options.mode == "whole-network"

    def profile_layers(self, networks: Sequence[NetworkRequest]) -> list[LayerTimes | Exception]:
        """Each network compiled and profiled on the device, its `execution_detail` layers (`qai_hub_network`)."""
        if not networks:
            return []
        self.check_configured()
        from hwnas.backends.qai_hub_network import profile_layers

        return profile_layers(self, networks)

    # -- whole networks: on-device accuracy, end-to-end check and per-layer breakdown -------------

    def check_accuracy(self, model, inputs, reference, calibration=None):
        """PSNR of `model`'s outputs on the device against PyTorch's `reference` outputs on `inputs`
        (`hwnas.backends.qai_hub_accuracy.check_on_device`): one compile and one inference job."""
        from hwnas.backends.qai_hub_accuracy import check_on_device

        return check_on_device(self, model, inputs, reference, calibration)

    def measure_network(self, module: "nn.Module", input_shape: Sequence[int]) -> Measurement:
        """End-to-end latency of `module` profiled whole (kind and name "network"), taken as a
        per-unit row is (nothing subtracted: a network pays its overhead once).
        Not kept in the job book: an interrupted check is submitted again."""
        profile, t, _ = self._profile_network(module, input_shape)
        return hub_profile.measurement(
            profile, kind="network", name="network", input_shape=t.input_shape, device=self.device,
            runtime=self.runtime().removesuffix(" whole-network"), source=f"job {t.profile.job_id} ({t.label})",
            cold=self.options.cold_iterations,
        )

    def measure_onnx(self, path: "str | Path", input_shape: Sequence[int] | None = None) -> Measurement:
        """An ONNX file compiled and profiled as it is, taken like `measure_network`
        (`qai_hub_onnx.profile_file`): dimensions it leaves free come from `input_shape`."""
        from hwnas.backends.qai_hub_onnx import profile_file

        return profile_file(self, path, input_shape)

    def breakdown(self, module: "nn.Module", input_shape: Sequence[int]) -> "pd.DataFrame":
        """Per-layer times from one profile job (the one `measure_network` ran, if it was the same
        module): columns `name` (the exported ONNX node name the layer stands for, e.g.
        `/enc0.0.norm1/ReduceMean`, else the layer name as reported),
        `op_type`, `ms` (execution_time, assumed µs, / 1000), `runtime_name`, `compute_unit`.
        `frame.attrs["run_ms"]` is the pass's time as `measure_network` gives it, to compare with the sum."""
        import pandas as pd

        profile, t, names = self._profile_network(module, input_shape)
        rows = [layer for layer in hub_profile.layers(profile) if layer.time_us is not None]
        if not rows:
            raise MeasurementError(
                f"the profile of AI Hub job {t.profile.job_id} has no per-layer times; this runtime "
                "(--target-runtime) reports none, try qnn_context_binary."
            )
        frame = pd.DataFrame([
            {"name": hub_profile.exported_name(layer.name, names), "op_type": layer.type,
             "ms": layer.time_us / hub_profile.US_PER_MS, "runtime_name": layer.name, "compute_unit": layer.compute_unit}
            for layer in rows
        ])
        frame.attrs["run_ms"] = hub_profile.timing(profile, t.label, self.options.cold_iterations).median_us / hub_profile.US_PER_MS
        return frame

    def _profile_network(self, module: "nn.Module", input_shape: Sequence[int]) -> tuple[dict, Track, dict[str, str]]:
        """(profile, track, normalised -> exported node names) of `module` profiled whole; the
        last one is kept, so `measure_network` then `breakdown` of the same module cost one job."""
        shape = tuple(int(d) for d in input_shape)
        last = self._last_network
        if last is not None and last[0] is module and last[1] == shape:
            return last[2:]
        self.check_configured()
        names: dict[str, str] = {}
        t = Track(None, f"the network at {shape_str(shape)}", _returns(module), shape, node_names=names)
        self.jobs.run([t], self.resolve_device())
        profile = self.jobs.profile(t)
        self._last_network = (module, shape, profile, t, names)
        return profile, t, names


# -- helpers --------------------------------------------------------------------------------------


def _describe(u: Unit) -> str:
    return f"{u.kind} {u.name!r} at {shape_str(u.input_shape)}"


def _returns(module: "nn.Module") -> Callable[[], "nn.Module"]:
    return lambda: module


def _relu() -> "nn.Module":
    """The overhead probe's graph: one elementwise op that every runtime compiles and keeps."""
    from torch import nn

    return nn.ReLU()
