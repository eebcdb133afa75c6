"""AI Hub's side of whole-network mode: whole networks profiled on the device, their
`execution_detail` layers handed to the engine (`hwnas.tables.whole_network`), which
attributes them to units.

Two things make the rows compare with a whole network's median:

- per-layer `execution_time` is the *minimum* over the profiler's iterations, while a
  network (and a per-unit row) is the *median* of its warm iterations. So the layer times
  come with the same profile's median / fastest warm iteration (`LayerTimes.to_median`; 1
  when the profile has no per-iteration times); the factor is kept in the job book
  (`min_to_median`).
- the unit of `execution_time` is not documented: it is taken as microseconds, and the
  ratio of summed layer times to the documented total is logged so the assumption can
  be checked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from hwnas.backends import qai_hub_profile as hub_profile
from hwnas.backends.qai_hub_jobs import Track
from hwnas.contracts.latency import LayerTimes, MeasurementError, NetworkRequest

if TYPE_CHECKING:
    from hwnas.backends.qai_hub import QaiHubBackend

log = logging.getLogger(__name__)

STATISTIC = (
    "one uniform network per candidate, profiled whole; a unit's time = sum of the execution_detail execution_time "
    "(the minimum over iterations; assumed us: AI Hub does not document the unit) of the layers whose names carry its "
    "module path, / 1000, times the same profile's median / fastest warm iteration (so it compares with a network's "
    "median); median (p10/p90) over positions with the same input shape and, for fixed parts, over networks; ops "
    "outside every unit are not counted; no per-unit peak memory"
)


def profile_layers(backend: "QaiHubBackend", networks: Sequence[NetworkRequest]) -> list[LayerTimes | Exception]:
    """Compile and profile every network (all submitted first, then waited for), each one's outcome in the job book."""
    tracks = [Track(n.key, n.label, n.build, tuple(n.input_shape)) for n in networks]
    backend.jobs.run(tracks, backend.resolve_device())
    out: list[LayerTimes | Exception] = []
    for t in tracks:
        try:
            out.append(_layer_times(backend.jobs.profile(t), t, backend.options.cold_iterations))
            backend.jobs.note(t.key, state="done", **t.record)
        except MeasurementError as err:
            out.append(err)
            backend.jobs.note(t.key, state="failed")
    return out


def _layer_times(profile: dict, t: Track, cold: int) -> LayerTimes:
    timing = hub_profile.timing(profile, t.label, cold)
    scale = timing.median_us / timing.minimum_us  # layer minima -> the network's median
    t.record["min_to_median"] = round(scale, 4)
    layers = hub_profile.layers(profile)
    timed = sum(layer.time_us or 0.0 for layer in layers)
    ratio = hub_profile.layer_time_ratio(profile)
    job = t.profile.job_id
    log.info("job %s: %s median %.3f ms; layers %.3f ms (minima); layer sum / estimate = %s; minima scaled by %.3f",
             job, t.label, timing.median_us / hub_profile.US_PER_MS, timed / hub_profile.US_PER_MS,
             "n/a" if ratio is None else f"{ratio:.2f}", scale)
    if ratio is not None and not 0.2 <= ratio <= 5.0:
        log.warning("job %s: per-layer times sum to %.2fx the reported total; execution_time may not be microseconds "
                    "-- check with --mode per-unit", job, ratio)
    return LayerTimes(layers, scale, source=f"AI Hub job {job}")
