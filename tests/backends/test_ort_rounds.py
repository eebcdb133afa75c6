"""The onnxruntime timing protocol without onnxruntime: fake calls on a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.backends import ort_rounds
from hwnas.backends.ort_rounds import Plan, Timing, measure, timings


class FakeMachine:
    """Calls that take a scripted time on a clock that only they advance."""

    def __init__(self):
        self.now_ns = 0
        self.calls = 0

    def clock(self) -> int:
        return self.now_ns

    def call(self, ms):
        def run():
            self.calls += 1
            self.now_ns += int(ms() * 1e6)

        return run


def test_a_value_is_its_time_minus_its_references_in_the_same_round():
    passes = [np.array([[10.0, 12.0], [1.0, 3.0], [2.0, 2.0]])]  # item 0; its two references
    got = timings(passes, {0: (1, 2), 1: ()})
    assert got[0].median_ms == pytest.approx(np.median([10 - 1.5, 12 - 2.5]))
    assert got[0].runs == 2 and got[1].median_ms == 2.0


def test_values_never_go_below_the_floor():
    got = timings([np.array([[1.0, 1.0], [3.0, 3.0]])], {0: (1,)})
    assert got[0].median_ms == got[0].p10_ms == ort_rounds.FLOOR_MS > 0


def test_spread_is_between_pass_medians_and_noise_needs_more_than_jitter():
    t = Timing(10.0, 9.0, 11.0, 6, (9.0, 10.0, 11.5))
    assert t.spread_pct == pytest.approx(25.0) and t.noisy(10.0) and not t.noisy(30.0)
    tiny = Timing(0.1, 0.09, 0.11, 6, (0.08, 0.1, 0.12))  # 40% apart, but 0.04 ms: a call's jitter
    assert not tiny.noisy(10.0)


def test_steady_calls_take_no_extra_pass():
    m = FakeMachine()
    calls = [m.call(lambda: 5.0), m.call(lambda: 1.0)]
    got, extra = measure(calls, {0: (1,)}, Plan(warmup=2, rounds=4, passes=3), clock=m.clock)
    assert extra == 0 and got[0].median_ms == pytest.approx(4.0) and got[0].runs == 12
    assert m.calls == 2 * (2 + 12)  # warm-up rounds, then 3 passes of 4 rounds, each call once per round
    m.calls = 0
    measure(calls, {0: (1,)}, Plan(warmup=0, rounds=2, passes=1), warm=[True, False], clock=m.clock)
    assert m.calls == 2 * 2 + 2  # the warm one is called twice a round, timed the second time


def test_a_busy_first_pass_is_replaced_and_a_lasting_one_is_reported():
    m = FakeMachine()
    slow = {"rounds": 0}

    def busy_then_quiet() -> float:
        slow["rounds"] += 1
        return 20.0 if slow["rounds"] <= 3 else 10.0  # the first pass (3 rounds) ran beside something else

    got, extra = measure([m.call(busy_then_quiet)], {0: ()}, Plan(warmup=0, rounds=3, passes=2, extra_passes=2),
                         clock=m.clock)
    assert extra == 1 and got[0].median_ms == pytest.approx(10.0) and not got[0].noisy(10.0)

    drifting = iter(range(1, 1000))
    got, extra = measure([m.call(lambda: 10.0 * next(drifting))], {0: ()}, Plan(warmup=0, rounds=2, passes=2, extra_passes=2),
                         clock=m.clock)
    assert extra == 2 and got[0].noisy(10.0)  # still disagreeing after the extra passes: flagged, not hidden


def test_every_round_times_every_call_once_in_a_new_order():
    order = []
    calls = [lambda i=i: order.append(i) for i in range(5)]
    rng = np.random.default_rng(0)
    ort_rounds.timed_round(calls, warm=[False] * 5, rng=rng)
    first = list(order)
    order.clear()
    ort_rounds.timed_round(calls, warm=[True, False, True, False, False], rng=rng)
    assert sorted(first) == list(range(5)) and sorted(order) == [0, 0, 1, 2, 2, 3, 4]
