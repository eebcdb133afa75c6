"""AI Hub whole-network mode: one uniform network per candidate, its per-layer times attributed to units.

Every position that offers the candidate takes it; the network is profiled whole and the
`execution_detail` times of the layers whose names carry a unit's module path are summed
(`hwnas.tables.attribution`); a (candidate, input shape) row is the median over the
positions that share it. Far fewer jobs (2 per candidate), and blocks are timed in
context. Two things make the rows compare with a whole network's median:

- per-layer `execution_time` is the *minimum* over the profiler's iterations, while a
  network (and a per-unit row) is the *median* of its warm iterations. So each layer sum
  is scaled by the same profile's median / fastest warm iteration (1 when the profile
  has no per-iteration times); the factor is kept in the job book (`min_to_median`).
- the unit of `execution_time` is not documented: it is taken as microseconds, and the
  ratio of summed layer times to the documented total is logged so the assumption can
  be checked. Ops outside every unit (input padding, skip additions) are not counted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from hwnas.backends import qai_hub_profile as hub_profile
from hwnas.backends.qai_hub_jobs import Track
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import Measurement, MeasurementError, shape_str
from hwnas.contracts.space import Architecture, Position, SearchSpace, Shape, Unit
from hwnas.tables.attribution import attribute

if TYPE_CHECKING:
    from torch import nn

    from hwnas.backends.qai_hub import QaiHubBackend

log = logging.getLogger(__name__)

STATISTIC = (
    "one uniform network per candidate, profiled whole; a unit's time = sum of the execution_detail execution_time "
    "(the minimum over iterations; assumed us: AI Hub does not document the unit) of the layers whose names carry its "
    "module path, / 1000, times the same profile's median / fastest warm iteration (so it compares with a network's "
    "median); median (p10/p90) over positions with the same input shape and, for fixed parts, over networks; ops "
    "outside every unit are not counted; no per-unit peak memory"
)


def measure_space(
    backend: "QaiHubBackend", space: SearchSpace, image_size: int, units: Sequence[Unit],
    on_result: Callable[[Measurement], None] | None = None,
) -> list[Measurement]:
    """Profile one uniform network per candidate that `units` need and attribute its layer times."""
    positions = space.positions(image_size)
    fixed = space.fixed_units(image_size)
    unnamed = sorted({u.name for u in fixed if not u.path})
    if unnamed:
        raise HwnasError(
            f"space {space.name!r} gives no module path for its fixed part(s) {', '.join(unnamed)}, which "
            "whole-network mode needs to attribute layer times; use --mode per-unit."
        )
    input_shape = tuple(space.example_input(image_size).shape)
    networks = {c: uniform(space, positions, c) for c in network_candidates(units, positions)}
    tracks = [
        Track(f"uniform:{c}@{shape_str(input_shape)}", f"the uniform {c!r} network at {shape_str(input_shape)}",
              _frozen(space, arch), input_shape)
        for c, arch in networks.items()
    ]
    backend.jobs.run(tracks, backend.resolve_device())
    samples: dict[tuple[str, str, Shape], list[float]] = {}
    outcomes = []
    for t, arch in zip(tracks, networks.values()):
        try:
            _attribute(backend.jobs.profile(t), t, positions, fixed, arch, samples, backend.options.cold_iterations)
            outcomes.append((t, None))
        except MeasurementError as err:
            outcomes.append((t, err))
    results = []
    for u in units:
        times = samples.get((u.kind, u.name, tuple(u.input_shape)))
        if not times:
            if any(e for _, e in outcomes):
                continue  # its network failed: reported below
            raise MeasurementError(f"no profiled network contains {u.kind} {u.name!r} at {shape_str(u.input_shape)}; "
                                   "use --mode per-unit for it.")
        m = Measurement(
            kind=u.kind, name=u.name, input_shape=tuple(u.input_shape), median_ms=float(np.median(times)),
            p10_ms=float(np.percentile(times, 10)), p90_ms=float(np.percentile(times, 90)), runs=len(times),
            device=backend.device, runtime=backend.runtime(),
        )
        if on_result:
            on_result(m)
        results.append(m)
    backend.jobs.finish(outcomes)
    return results


def network_candidates(units: Sequence[Unit], positions: Sequence[Position] = ()) -> list[str]:
    """Candidates whose uniform network `units` need, in first-seen order; fixed parts alone
    need one network (given `positions`: the first candidate of the first position)."""
    names = list(dict.fromkeys(u.name for u in units if u.kind == "candidate"))
    if not names and units and positions:
        names = [positions[0].candidates[0]]
    return names


def uniform(space: SearchSpace, positions: Sequence[Position], candidate: str) -> Architecture:
    """`candidate` wherever it is offered, else the position's first candidate."""
    return Architecture(
        space=space.name, choices={p.label: candidate if candidate in p.candidates else p.candidates[0] for p in positions}
    )


def _frozen(space: SearchSpace, arch: Architecture) -> Callable[[], "nn.Module"]:
    from hwnas.contracts.space import freeze

    return lambda: freeze(space, arch)


def _attribute(
    profile: dict, t: Track, positions: Sequence[Position], fixed: Sequence[Unit], arch: Architecture,
    samples: dict[tuple[str, str, Shape], list[float]], cold: int,
) -> None:
    """Add each position's and fixed part's layer time (ms, median-equivalent) to `samples[(kind, name, shape)]`."""
    owners: dict[str, tuple[str, str, Shape]] = {p.path: ("candidate", arch.choices[p.label], tuple(p.input_shape)) for p in positions}
    owners.update({u.path: ("fixed", u.name, tuple(u.input_shape)) for u in fixed})
    found = attribute(hub_profile.layers(profile), owners)
    job = t.profile.job_id
    unnamed = [path for path in owners if found.layer_count[path] == 0]
    if unnamed:
        raise MeasurementError(
            f"the profile of AI Hub job {job} ({t.label}) has no layer named after {unnamed[0]!r} ({len(unnamed)} of "
            f"{len(owners)} parts unmatched): its layer names do not carry module paths; use --mode per-unit."
        )
    untimed = [path for path in owners if found.time_us[path] <= 0]
    if untimed:
        raise MeasurementError(
            f"the profile of AI Hub job {job} ({t.label}) has no per-layer execution_time for {untimed[0]!r}; "
            "this runtime reports no layer times: use --mode per-unit."
        )
    timing = hub_profile.timing(profile, t.label, cold)
    scale = timing.median_us / timing.minimum_us  # layer minima -> the network's median
    t.record["min_to_median"] = round(scale, 4)
    ratio = hub_profile.layer_time_ratio(profile)
    log.info(
        "job %s: %s median %.3f ms; layers attributed %.3f ms (minima), outside every unit %.3f ms; layer sum / "
        "estimate = %s; minima scaled by %.3f", job, t.label, timing.median_us / hub_profile.US_PER_MS,
        sum(found.time_us.values()) / hub_profile.US_PER_MS, found.unattributed_us / hub_profile.US_PER_MS,
        "n/a" if ratio is None else f"{ratio:.2f}", scale,
    )
    if ratio is not None and not 0.2 <= ratio <= 5.0:
        log.warning(
            "job %s: per-layer times sum to %.2fx the reported total; execution_time may not be microseconds "
            "-- check with --mode per-unit", job, ratio,
        )
    for path, key in owners.items():
        samples.setdefault(key, []).append(found.time_us[path] * scale / hub_profile.US_PER_MS)
