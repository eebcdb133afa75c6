"""hwnas.nas.target_hold: the derived network brought under every device's target, giving up the least alpha."""

from __future__ import annotations

import pytest

from hwnas.contracts.latency import LatencyTable, Measurement, TableMeta
from hwnas.contracts.space import Architecture
from hwnas.nas.target_hold import Budget, hold_target, predicted

SHAPES = {"a": (1, 8, 8, 8), "b": (1, 8, 8, 8), "c": (1, 16, 4, 4)}


def table(ms: dict[str, float], name: str = "d") -> LatencyTable:
    t = LatencyTable(TableMeta(space="s", fingerprint="f", image_size=32, backend="b", device=name))
    for label, shape in SHAPES.items():
        for cand, v in ms.items():
            scale = 2.0 if label == "c" else 1.0  # position c costs twice as much per candidate
            t.add(Measurement(kind="candidate", name=cand, input_shape=shape, median_ms=v * scale, p10_ms=v, p90_ms=v,
                              runs=1, device=name, runtime="r"))
    return t


ALPHAS = {"a": {"slow": 0.6, "mid": 0.3, "fast": 0.1},
          "b": {"slow": 0.9, "mid": 0.05, "fast": 0.05},  # b is sure of slow: its last to give
          "c": {"slow": 0.5, "mid": 0.45, "fast": 0.05}}  # c nearly as happy with mid, and saves twice the ms
ARGMAX = Architecture(space="s", choices={"a": "slow", "b": "slow", "c": "slow"})
COSTS = {"slow": 10.0, "mid": 6.0, "fast": 2.0}


def test_an_argmax_over_its_target_gives_up_the_least_alpha_per_ms_until_under():
    budget = Budget("d", table(COSTS), target_ms=36.0, fixed_ms=1.0)  # argmax: 1 + 10 + 10 + 20 = 41 ms
    arch, swaps = hold_target(ARGMAX, ALPHAS, SHAPES, [budget])
    assert [(s.position, s.before, s.after) for s in swaps] == [("c", "slow", "mid")]  # 8 ms for log(0.5/0.45)
    assert predicted(arch.choices, SHAPES, budget) == 33.0 <= 36.0
    assert arch.choices == {"a": "slow", "b": "slow", "c": "mid"}


def test_an_argmax_under_its_target_is_left_as_the_search_chose_it():
    budget = Budget("d", table(COSTS), target_ms=50.0, fixed_ms=1.0)
    arch, swaps = hold_target(ARGMAX, ALPHAS, SHAPES, [budget])
    assert arch == ARGMAX and swaps == []


def test_a_target_below_the_fastest_network_ends_at_the_fastest_network():
    budget = Budget("d", table(COSTS), target_ms=5.0, fixed_ms=1.0)
    arch, swaps = hold_target(ARGMAX, ALPHAS, SHAPES, [budget])
    assert set(arch.choices.values()) == {"fast"} and len(swaps) >= 3


def test_several_devices_are_each_brought_under_without_undoing_each_other():
    # on the second device "mid" is the slowest: a swap to mid there must not push it over its target
    phone = Budget("phone", table(COSTS, "phone"), target_ms=30.0, fixed_ms=0.0)
    cpu = Budget("cpu", table({"slow": 5.0, "mid": 9.0, "fast": 1.0}, "cpu"), target_ms=21.0, fixed_ms=0.0)
    arch, swaps = hold_target(ARGMAX, ALPHAS, SHAPES, [phone, cpu])
    for b in (phone, cpu):
        assert predicted(arch.choices, SHAPES, b) <= b.target_ms
    assert swaps


@pytest.mark.parametrize("target", [20.0, 28.0, 33.0, 40.0])
def test_no_network_under_the_target_keeps_more_alpha_than_the_held_one(target):
    """Against brute force over the 27 networks: the greedy swap is optimal on this small case."""
    import itertools
    import math

    budget = Budget("d", table(COSTS), target_ms=target, fixed_ms=1.0)
    arch, _ = hold_target(ARGMAX, ALPHAS, SHAPES, [budget])
    score = lambda ch: sum(math.log(ALPHAS[k][v]) for k, v in ch.items())  # noqa: E731
    feasible = [dict(zip(SHAPES, combo)) for combo in itertools.product(COSTS, repeat=3)]
    feasible = [ch for ch in feasible if predicted(ch, SHAPES, budget) <= target]
    assert score(arch.choices) == pytest.approx(max(score(ch) for ch in feasible))
