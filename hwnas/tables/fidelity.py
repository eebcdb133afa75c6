"""How well a table predicts whole networks: the absolute error, and the error free of the machine's drift.

The absolute error of a network is (predicted - measured) / measured. On a machine whose
speed moves by tens of percent within minutes (`benchmarks/bench_drift.py`), it mixes two
things: how well the table ranks and scales networks against each other -- what a search
relies on -- and how fast the machine happened to run while they were timed.

The scale-free error takes the second out. Networks are timed in interleaved batches
(`hwnas.tables.profiling.profile_architectures`), so one batch shares one machine state:
each network's ratio predicted / measured is divided by the geometric mean of the ratios
of its batch (one common factor per batch), and the error is that quotient minus 1. A
table that is right up to one common factor per batch has scale-free error 0; so does a
table biased by the same factor for every network, which only the absolute error shows.
A batch of one network says nothing about the others (its quotient is 1 by construction),
so its network has no scale-free error.

`Fidelity` sums either kind up: mean |error|, worst, how many within +-10%.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Hashable, Sequence

if TYPE_CHECKING:
    from hwnas.tables.profiling import ProfileResult

TOLERANCE_PCT = 10.0  # a network predicted within this is "within tolerance" (the issues' +-10%)


def batch_factors(predicted: Sequence[float], measured: Sequence[float], batches: Sequence[Hashable]) -> dict[Hashable, float]:
    """Per batch, the geometric mean of predicted / measured over its networks: the common factor
    by which the table missed that batch (the machine's state then, plus any overall bias)."""
    logs: dict[Hashable, list[float]] = {}
    for p, m, b in zip(predicted, measured, batches, strict=True):
        logs.setdefault(b, []).append(math.log(p / m))
    return {b: math.exp(sum(v) / len(v)) for b, v in logs.items()}


def scale_free_errors(predicted: Sequence[float], measured: Sequence[float],
                      batches: Sequence[Hashable]) -> list[float | None]:
    """Each network's scale-free error in percent: 100 * (its ratio / its batch's factor - 1);
    None for a network alone in its batch. `batches`: any label shared by the networks timed
    in the same interleaved batch."""
    factors = batch_factors(predicted, measured, batches)
    sizes = Counter(batches)
    return [None if sizes[b] < 2 else 100.0 * (p / m / factors[b] - 1.0) for p, m, b in zip(predicted, measured, batches)]


@dataclass(frozen=True)
class Fidelity:
    """A set of per-network errors in percent, summed up; `factors_pct`: each batch's common
    factor as a percent error (only for the scale-free kind: the drift it took out)."""

    errors: tuple[float, ...]
    tolerance_pct: float = TOLERANCE_PCT
    factors_pct: tuple[float, ...] | None = None

    @classmethod
    def of(cls, results: Sequence["ProfileResult"], tolerance_pct: float = TOLERANCE_PCT,
           same_rounds: bool = False) -> "Fidelity":
        """The absolute errors of the table's predictions, or (`same_rounds`) of its units timed
        again in the networks' rounds."""
        errors = (r.error_same_rounds_pct if same_rounds else r.error_pct for r in results)
        return cls(tuple(e for e in errors if e is not None), tolerance_pct)

    @classmethod
    def scale_free(cls, results: Sequence["ProfileResult"], tolerance_pct: float = TOLERANCE_PCT) -> "Fidelity":
        """The scale-free errors of results that have a prediction, batched by `ProfileResult.batch`."""
        done = [r for r in results if r.prediction is not None and r.measured.median_ms > 0]
        predicted, measured = [r.prediction.total_ms for r in done], [r.measured.median_ms for r in done]
        batches = [r.batch for r in done]
        errors = scale_free_errors(predicted, measured, batches)
        factors = batch_factors(predicted, measured, batches)
        return cls(tuple(e for e in errors if e is not None), tolerance_pct,
                   tuple(100.0 * (f - 1.0) for f in factors.values()))

    @property
    def count(self) -> int:
        return len(self.errors)

    @property
    def mean_abs_pct(self) -> float:
        return sum(abs(e) for e in self.errors) / self.count if self.errors else float("nan")

    @property
    def mean_pct(self) -> float:
        """The signed mean: far from 0 means the table over- (+) or under-predicts (-) them all alike."""
        return sum(self.errors) / self.count if self.errors else float("nan")

    @property
    def worst_pct(self) -> float:
        """The error of largest magnitude, with its sign."""
        return max(self.errors, key=abs) if self.errors else float("nan")

    @property
    def within(self) -> int:
        return sum(abs(e) <= self.tolerance_pct for e in self.errors)

    def to_dict(self) -> dict[str, Any]:
        out = {"count": self.count, "mean_abs_error_pct": self.mean_abs_pct, "mean_error_pct": self.mean_pct,
               "worst_error_pct": self.worst_pct, "within": self.within, "tolerance_pct": self.tolerance_pct}
        if self.factors_pct is not None:
            out["batch_factor_pct"] = list(self.factors_pct)
        return out

    def line(self) -> str:
        if not self.errors:
            return "no network shares its batch with another: nothing to compare (measure 2 or more)"
        text = (f"{self.count} networks: mean |error| {self.mean_abs_pct:.1f} %, worst {self.worst_pct:+.1f} %, "
                f"{self.within} of {self.count} within +-{self.tolerance_pct:g} %")
        if self.factors_pct is None:
            return text + f" (signed mean {self.mean_pct:+.1f} %)"
        factors = ", ".join(f"{f:+.1f} %" for f in self.factors_pct)
        return text + f" (one common factor per batch taken out: {factors})"
