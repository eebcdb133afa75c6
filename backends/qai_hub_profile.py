"""Reading a Qualcomm AI Hub profile: a `Measurement`, per-layer rows, attribution to units.

Pure functions over the dict that `InferenceJob.download_profile()` returns in qai-hub
0.56 (the client converts the server's `ProfileDetail` protobuf with
`qai_hub.client._profile_pb_to_python_dict`), so they can be tested without the service:

- `execution_summary.estimated_inference_time`: microseconds (documented);
  `estimated_inference_peak_memory`: bytes (0 on servers that only fill the newer
  `inference_memory_peak_range`); `all_inference_times`: one entry per profiler
  iteration, microseconds (profile format >= 1.2 only).
- `execution_detail`: one dict per layer in execution order -- `name`, `type`,
  `compute_unit` and, only when the runtime reports it, `execution_time` (the minimum
  over iterations). Its unit is **not documented**; like the summary's it is taken as
  microseconds here. `layer_time_ratio` lets a caller check that assumption against
  the documented total.

Attribution of layers to units (whole-network mode) is the engine's, for any backend
that profiles per layer: `hwnas.tables.attribution`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hwnas.contracts.latency import Measurement, MeasurementError
from hwnas.contracts.latency import Layer  # noqa: F401 (re-exported)
from hwnas.tables.attribution import Attribution, attribute, exported_name, normalise, op_type_ms, owner  # noqa: F401 (re-exported)

US_PER_MS = 1000.0
FLOOR_MS = 0.001  # the resolution we record (as the ONNX Runtime backend does)
COLD_ITERATIONS = 1  # profiler iterations that include first-run effects; dropped from the statistics


def layers(profile: Mapping[str, Any]) -> list[Layer]:
    """The per-layer rows of a profile, in execution order."""
    rows = profile.get("execution_detail") or []
    out = []
    for row in rows:
        t = row.get("execution_time")
        out.append(Layer(str(row.get("name", "")), str(row.get("type", "")), str(row.get("compute_unit", "")), None if t is None else float(t)))
    return out


def inference_time_us(profile: Mapping[str, Any], what: str) -> float:
    """`estimated_inference_time` (µs); a missing or zero time is an error, never a number."""
    value = service_estimate_us(profile)
    if value is None:
        raw = (profile.get("execution_summary") or {}).get("estimated_inference_time")
        raise MeasurementError(f"the AI Hub profile of {what} reports no inference time ({raw!r}); profile it again.")
    return value


def service_estimate_us(profile: Mapping[str, Any]) -> float | None:
    """The service's own `estimated_inference_time` (µs), or None when missing or not positive."""
    value = (profile.get("execution_summary") or {}).get("estimated_inference_time")
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


@dataclass(frozen=True)
class Timing:
    """A unit's statistics and where they come from (recorded in the table's job book)."""

    median_us: float
    p10_us: float
    p90_us: float
    runs: int
    used: str  # e.g. "iterations 2-20 of 20 (first 1 cold, dropped)" or "service estimate (...)"
    minimum_us: float = 0.0  # the fastest warm iteration (the statistic of per-layer execution_time)


def timing(profile: Mapping[str, Any], what: str, cold: int = COLD_ITERATIONS) -> Timing:
    """p10, median and p90 from the same warm iterations of `all_inference_times` (the first
    `cold` ones dropped: they include loading and cache warm-up, which the service's
    estimate leaves out); without per-iteration times, the service's estimate for all three."""
    raw = (profile.get("execution_summary") or {}).get("all_inference_times") or []
    times = [float(t) for t in raw if isinstance(t, (int, float)) and math.isfinite(t)]
    warm = [t for t in times[cold:] if t > 0]
    if len(times) == len(raw) and warm:
        p10, median, p90 = (float(v) for v in np.percentile(warm, [10, 50, 90]))
        first = cold + 1
        used = (f"iterations {first}-{len(times)} of {len(times)} (first {cold} cold, dropped)" if cold
                else f"iterations 1-{len(times)} of {len(times)}")
        return Timing(median, p10, p90, len(warm), used, min(warm))
    estimate = inference_time_us(profile, what)
    reason = "no per-iteration times" if not times else f"only {len(times)} iteration time(s), none warm"
    return Timing(estimate, estimate, estimate, 1, f"service estimate estimated_inference_time ({reason})", estimate)


def peak_memory_bytes(profile: Mapping[str, Any]) -> int | None:
    """Peak memory during inference: `estimated_inference_peak_memory`, else the upper end of
    `inference_memory_peak_range`; None when the server reported neither."""
    summary = profile.get("execution_summary") or {}
    value = summary.get("estimated_inference_peak_memory")
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    span = summary.get("inference_memory_peak_range")
    if isinstance(span, (list, tuple)) and len(span) == 2 and isinstance(span[1], (int, float)) and span[1] > 0:
        return int(span[1])
    return None


def measurement(
    profile: Mapping[str, Any], *, kind: str, name: str, input_shape: Sequence[int], device: str, runtime: str,
    source: str | None = None, cold: int = COLD_ITERATIONS,
) -> Measurement:
    """One unit profiled alone: median, p10 and p90 from the warm iterations (`timing`; runs =
    their count), the service's `estimated_inference_time` beside them as `service_ms`.
    `source` names the profile in error messages (e.g. the job id)."""
    what = source or f"{kind} {name!r}"
    t = timing(profile, what, cold)
    service = service_estimate_us(profile)
    return Measurement(
        kind=kind, name=name, input_shape=tuple(input_shape), median_ms=t.median_us / US_PER_MS,
        p10_ms=t.p10_us / US_PER_MS, p90_ms=t.p90_us / US_PER_MS, runs=t.runs, device=device, runtime=runtime,
        peak_memory_bytes=peak_memory_bytes(profile), service_ms=None if service is None else service / US_PER_MS,
    )


def without_overhead(m: Measurement, overhead: Measurement) -> Measurement:
    """`m` less the per-inference overhead measured by a do-nothing graph at the same input
    (`overhead`): median, p10 and p90 less its median, `service_ms` less its `service_ms`;
    never below FLOOR_MS (a unit we cannot tell from the probe is 1 us, not free)."""
    def less(value: float | None, by: float | None) -> float | None:
        return None if value is None else max(value - (by or 0.0), FLOOR_MS)

    return m.model_copy(update={
        "median_ms": less(m.median_ms, overhead.median_ms), "p10_ms": less(m.p10_ms, overhead.median_ms),
        "p90_ms": less(m.p90_ms, overhead.median_ms), "service_ms": less(m.service_ms, overhead.service_ms),
    })


def layer_time_ratio(profile: Mapping[str, Any]) -> float | None:
    """Sum of per-layer `execution_time` over `estimated_inference_time`, or None without layer times.

    Close to 1 (per-layer minima sum to a little under the total) supports reading
    `execution_time` as microseconds; a ratio off by ~1000x would mean ns or ms.
    """
    timed = [layer.time_us for layer in layers(profile) if layer.time_us is not None]
    total = (profile.get("execution_summary") or {}).get("estimated_inference_time")
    if not timed or not isinstance(total, (int, float)) or total <= 0:
        return None
    return sum(timed) / float(total)
