"""Whole-network mode, for any backend that profiles a network per layer (`ProfilesLayers`).

One uniform network per candidate the units need (the candidate wherever it is offered,
else the position's first candidate) is profiled whole by the backend; the times of the
layers whose names carry a unit's module path are summed (`hwnas.tables.attribution`),
scaled to the network's median pass (`LayerTimes.to_median`), and a (candidate, input
shape) row is the median over the positions that share it -- fixed parts the median over
networks. Blocks are timed in context (no per-unit boundaries), in far fewer runs (one
network per candidate). Ops outside every unit (input padding, skip additions) are not
counted, and no per-unit peak memory is known.

AI Hub implements the protocol with its `execution_detail` (`backends/qai_hub_network.py`),
ONNX Runtime with its node profiler (`--mode whole-network`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from hwnas.contracts.capabilities import LayerTimes, NetworkRequest, ProfilesLayers, network_candidates, require
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency_backend import LatencyBackend, Measurement, MeasurementError, shape_str
from hwnas.contracts.space import Architecture, Position, SearchSpace, Shape, Unit, freeze
from hwnas.tables.attribution import attribute

if TYPE_CHECKING:
    from torch import nn

US_PER_MS = 1000.0

Samples = dict[tuple[str, str, Shape], list[float]]


def measure_space(
    backend: LatencyBackend, space: SearchSpace, image_size: int, units: Sequence[Unit],
    on_result: Callable[[Measurement], None] | None = None,
) -> list[Measurement]:
    """One `Measurement` per unit of `units` that a profiled network holds (see the module docstring); a
    network that failed is reported after the others' rows were handed to `on_result`."""
    profiler = require(backend, ProfilesLayers)
    positions, fixed = space.positions(image_size), space.fixed_units(image_size)
    unnamed = sorted({u.name for u in fixed if not u.path})
    if unnamed:
        raise HwnasError(f"space {space.name!r} gives no module path for its fixed part(s) {', '.join(unnamed)}, which "
                         "whole-network mode needs to attribute layer times; use --mode per-unit.")
    input_shape = tuple(space.example_input(image_size).shape)
    networks = {c: uniform(space, positions, c) for c in network_candidates(units, positions)}
    requests = [NetworkRequest(f"uniform:{c}@{shape_str(input_shape)}",
                               f"the uniform {c!r} network at {shape_str(input_shape)}", _frozen(space, arch), input_shape)
                for c, arch in networks.items()]
    samples: Samples = {}
    errors: list[Exception] = []
    for request, arch, got in zip(requests, networks.values(), profiler.profile_layers(requests)):
        try:
            if isinstance(got, Exception):
                raise got
            _attribute(got, request, positions, fixed, arch, samples)
        except MeasurementError as err:
            errors.append(err)
    results = _rows(units, samples, bool(errors), backend.device, profiler.runtime(), on_result)
    if errors:
        more = f" ({len(errors) - 1} more failed)" if len(errors) > 1 else ""
        raise MeasurementError(f"{str(errors[0]).rstrip('.')}{more}.")
    return results


def _rows(units, samples: Samples, failed: bool, device: str, runtime: str, on_result) -> list[Measurement]:
    results = []
    for u in units:
        times = samples.get((u.kind, u.name, tuple(u.input_shape)))
        if not times:
            if failed:
                continue  # its network failed: reported by the caller
            raise MeasurementError(f"no profiled network contains {u.kind} {u.name!r} at {shape_str(u.input_shape)}; "
                                   "use --mode per-unit for it.")
        m = Measurement(kind=u.kind, name=u.name, input_shape=tuple(u.input_shape), median_ms=float(np.median(times)),
                        p10_ms=float(np.percentile(times, 10)), p90_ms=float(np.percentile(times, 90)), runs=len(times),
                        device=device, runtime=runtime)
        if on_result:
            on_result(m)
        results.append(m)
    return results


def uniform(space: SearchSpace, positions: Sequence[Position], candidate: str) -> Architecture:
    """`candidate` wherever it is offered, else the position's first candidate."""
    return Architecture(
        space=space.name, choices={p.label: candidate if candidate in p.candidates else p.candidates[0] for p in positions}
    )


def _frozen(space: SearchSpace, arch: Architecture) -> Callable[[], "nn.Module"]:
    return lambda: freeze(space, arch)


def _attribute(got: LayerTimes, request: NetworkRequest, positions: Sequence[Position], fixed: Sequence[Unit],
               arch: Architecture, samples: Samples) -> None:
    """Add each position's and fixed part's layer time (ms, median-equivalent) to `samples[(kind, name, shape)]`."""
    owners: dict[str, tuple[str, str, Shape]] = {p.path: ("candidate", arch.choices[p.label], tuple(p.input_shape))
                                                 for p in positions}
    owners.update({u.path: ("fixed", u.name, tuple(u.input_shape)) for u in fixed})
    found = attribute(got.layers, owners)
    what = f"the profile of {got.source} ({request.label})" if got.source else f"the profile of {request.label}"
    unnamed = [path for path in owners if found.layer_count[path] == 0]
    if unnamed:
        raise MeasurementError(f"{what} has no layer named after {unnamed[0]!r} ({len(unnamed)} of {len(owners)} parts "
                               "unmatched): its layer names do not carry module paths; use --mode per-unit.")
    untimed = [path for path in owners if found.time_us[path] <= 0]
    if untimed:
        raise MeasurementError(f"{what} has no per-layer execution_time for {untimed[0]!r}; this runtime reports no "
                               "layer times: use --mode per-unit.")
    for path, key in owners.items():
        samples.setdefault(key, []).append(found.time_us[path] * got.to_median / US_PER_MS)
