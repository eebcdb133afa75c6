"""bench_drift's summary: the spread of the round medians and the largest change within a window."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def drift(benchmark_script):
    return benchmark_script("bench_drift.py")


def rows(*rounds):
    return [{"t_s": t, "median_ms": ms, "steal_pct": steal, "other_cores": 0.0} for t, ms, steal in rounds]


def test_largest_change_counts_only_rounds_within_the_window_and_either_direction(drift):
    r = rows((0, 500.0, 0.1), (60, 400.0, 0.1), (1000, 800.0, 0.1))
    assert drift.largest_change(r, 300) == pytest.approx(25.0)  # 500 -> 400: the slower is 25% slower
    assert drift.largest_change(r, 2000) == pytest.approx(100.0)  # 400 -> 800


def test_summary_gives_the_spread_around_the_median(drift):
    s = drift.summary(rows((0, 500.0, 0.1), (60, 600.0, 2.0), (120, 450.0, 0.3)), 5)
    assert (s["rounds"], s["median_ms"], s["min_pct"], s["max_pct"]) == (3, 500.0, -10.0, 20.0)
    assert (s["within_5pct"], s["within_10pct"], s["steal_pct_max"]) == (1, 2, 2.0)
    assert s["largest_change_within_5min_pct"] == pytest.approx(33.3)
