"""The end-to-end check: measure a whole network and compare it with the table's prediction.

Table-predicted latency (fixed parts + the chosen candidate at every position) is only
useful if it matches the device; tools whose tables miss by 20-35% are the common
complaint. `profile_architecture` measures the frozen network on the same backend,
with the same settings and statistic as the table's units, and reports the error.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.latency import LatencyBackend, LatencyTable, Measurement, fixed_ms, predict_ms
from hwnas.space import Architecture, SearchSpace, freeze

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

NOISY_SPREAD = 0.2  # (p90 - p10) / median above this: the runs disagree too much to trust one number


@dataclass(frozen=True)
class Prediction:
    total_ms: float
    fixed_ms: float
    table: str


@dataclass(frozen=True)
class ProfileResult:
    """A measured network, the table's prediction for it (if a table was given) and,
    if asked, the per-layer breakdown (`hwnas.backends.breakdown.attribute` columns)."""

    label: str
    architecture: Architecture
    measured: Measurement
    prediction: Prediction | None = None
    breakdown: "pd.DataFrame | None" = None

    @property
    def error_pct(self) -> float | None:
        """(predicted - measured) / measured, in percent."""
        if self.prediction is None or self.measured.median_ms <= 0:
            return None
        return 100.0 * (self.prediction.total_ms - self.measured.median_ms) / self.measured.median_ms

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "architecture": self.architecture.model_dump(),
            "measured": self.measured.model_dump(mode="json"),
            "predicted_ms": self.prediction.total_ms if self.prediction else None,
            "predicted_fixed_ms": self.prediction.fixed_ms if self.prediction else None,
            "table": self.prediction.table if self.prediction else None,
            "error_pct": self.error_pct,
        }
        if self.breakdown is not None:
            from hwnas.backends.breakdown import summarise

            out["breakdown"] = {
                "by_group": summarise(self.breakdown).to_dict(orient="records"),
                "by_op_type": summarise(self.breakdown, by="op_type").to_dict(orient="records"),
                "run_ms": self.breakdown.attrs.get("run_ms"),
            }
        return out


def random_architecture(space: SearchSpace, image_size: int, seed: int) -> Architecture:
    """Each position's candidate drawn uniformly with `random.Random(seed)` (same seed, same architecture)."""
    rng = random.Random(seed)
    return Architecture(space=space.name, choices={p.label: rng.choice(p.candidates) for p in space.positions(image_size)})


def predict(table: LatencyTable, space: SearchSpace, image_size: int, arch: Architecture, source: str) -> Prediction:
    """The table's end-to-end prediction for `arch` (missing entries raise HwnasError)."""
    import torch

    with torch.device("meta"):
        fixed = space.fixed_units(image_size)
    positions = space.positions(image_size)
    return Prediction(predict_ms(table, positions, fixed, arch), fixed_ms(table, fixed), source)


def profile_architecture(
    space: SearchSpace,
    image_size: int,
    arch: Architecture,
    backend: LatencyBackend,
    *,
    label: str,
    table: LatencyTable | None = None,
    table_source: str = "",
    breakdown: bool = False,
) -> ProfileResult:
    """Measure `arch` frozen out of `space` end to end on `backend` and compare with `table`.

    The table (if any) must already be checked against the space, size and backend.
    The prediction is computed first, so a table lacking entries fails before any
    measuring.
    """
    arch.check(space.name, {p.label: p.candidates for p in space.positions(image_size)})
    prediction = predict(table, space, image_size, arch, table_source) if table is not None else None
    net = freeze(space, arch).eval()
    shape = tuple(space.example_input(image_size).shape)
    measured = backend.measure_network(net, shape)
    spread = (measured.p90_ms - measured.p10_ms) / measured.median_ms if measured.median_ms > 0 else 0.0
    if spread > NOISY_SPREAD:
        log.warning("the runs of %s vary by %.0f%% (p10 %.1f ms, p90 %.1f ms): something else is probably using the "
                    "CPU or device; re-run when it is idle before trusting the error", label, 100 * spread,
                    measured.p10_ms, measured.p90_ms)
    layers = None
    if breakdown:
        from hwnas.backends.breakdown import attribute

        layers = attribute(backend.breakdown(net, shape), net)
    return ProfileResult(label, arch, measured, prediction, layers)
