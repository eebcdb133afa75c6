"""The fidelity statistics: absolute and scale-free errors (one common factor per interleaved batch)."""

from __future__ import annotations

import math

import pytest

from hwnas.contracts.latency import Measurement
from hwnas.contracts.space import Architecture
from hwnas.tables.fidelity import Fidelity, batch_factors, scale_free_errors
from hwnas.tables.profiling import Prediction, ProfileResult


def result(predicted: float, measured: float, batch: int | None) -> ProfileResult:
    m = Measurement(name="n", input_shape=(1,), median_ms=measured, p10_ms=measured, p90_ms=measured, runs=1, device="d",
                    runtime="r")
    return ProfileResult("n", Architecture(space="s", choices={}), m, Prediction(predicted, 0.0, "t"), batch=batch)


def test_a_machine_that_became_faster_between_batches_leaves_no_scale_free_error():
    # the table is right up to one factor per batch: the machine ran 1.9x faster in the second batch
    predicted = [100.0, 200.0, 300.0, 100.0, 200.0]
    measured = [p / 1.25 for p in predicted[:3]] + [p * 1.9 / 1.25 for p in predicted[3:]]
    batches = [0, 0, 0, 1, 1]
    absolute = Fidelity.of([result(p, m, b) for p, m, b in zip(predicted, measured, batches)])
    assert absolute.within == 0 and absolute.mean_abs_pct > 25  # the drift, seen as error
    free = Fidelity.scale_free([result(p, m, b) for p, m, b in zip(predicted, measured, batches)])
    assert free.count == 5 and free.within == 5 and free.mean_abs_pct == pytest.approx(0.0, abs=1e-9)
    assert free.factors_pct == pytest.approx((25.0, 100 * (1.25 / 1.9 - 1)))  # the drift taken out, per batch


def test_scale_free_error_is_the_ratio_over_its_batchs_geometric_mean():
    predicted, measured = [110.0, 90.0, 50.0, 60.0], [100.0, 100.0, 100.0, 100.0]
    errors = scale_free_errors(predicted, measured, ["a", "a", "b", "b"])
    g_a, g_b = math.sqrt(1.1 * 0.9), math.sqrt(0.5 * 0.6)
    assert errors == pytest.approx([100 * (1.1 / g_a - 1), 100 * (0.9 / g_a - 1), 100 * (0.5 / g_b - 1), 100 * (0.6 / g_b - 1)])
    assert batch_factors(predicted, measured, ["a", "a", "b", "b"]) == pytest.approx({"a": g_a, "b": g_b})


def test_a_network_alone_in_its_batch_has_no_scale_free_error():
    assert scale_free_errors([120.0, 80.0, 130.0], [100.0, 100.0, 100.0], [0, 0, 1])[2] is None
    lonely = Fidelity.scale_free([result(120.0, 100.0, 0)])
    assert lonely.count == 0 and "measure 2 or more" in lonely.line()


def test_a_network_off_by_more_than_the_tolerance_is_counted_out():
    # four networks predicted exactly, one 30% slower than the table says: its own batch's factor absorbs a fifth of it
    free = Fidelity.scale_free([result(100.0, 100.0, 0)] * 4 + [result(100.0, 130.0, 0)])
    assert free.within == 4 and free.worst_pct < -10
    assert free.to_dict()["batch_factor_pct"] == pytest.approx([100 * ((1 / 1.3) ** 0.2 - 1)])
    assert "4 of 5 within +-10 %" in free.line() and "one common factor per batch taken out" in free.line()


def test_predictions_and_measurements_must_pair_up():
    with pytest.raises(ValueError):
        batch_factors([1.0, 2.0], [1.0], [0, 0])
