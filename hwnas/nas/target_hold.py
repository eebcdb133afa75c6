"""Holding the latency target: the derived network brought under every device's target.

A target is a soft term of the loss, so the argmax network can land above it (the six
front searches at mu 0.1 landed from 12% below to 12% above theirs). A user who asks for
53 ms wants a network of at most 53 ms. After the argmax, while some device's prediction
exceeds its target, the cheapest swap in alpha is made: at one position, a candidate that
is faster on the device furthest over, chosen by the least log-alpha given up per ms
saved there (the super-net's own ranking decides what to give up). A large saving can
overshoot, so what the swaps saved beyond need is then spent back: positions move to
candidates of higher alpha (never past the argmax) while every device stays at or under
its target. An argmax network already under every target is left as the search chose it:
spending the rest of the budget would mean candidates its alphas rank lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from hwnas.contracts.latency import LatencyTable
from hwnas.contracts.space import Architecture


@dataclass(frozen=True)
class Budget:
    """One device's table, its target and the fixed parts' cost on it (ms)."""

    name: str
    table: LatencyTable
    target_ms: float
    fixed_ms: float


@dataclass(frozen=True)
class Swap:
    position: str
    before: str
    after: str
    saved_ms: float  # on the first device
    alpha_before: float
    alpha_after: float

    def as_dict(self) -> dict:
        return {"position": self.position, "from": self.before, "to": self.after, "saved_ms": round(self.saved_ms, 4),
                "alpha_from": round(self.alpha_before, 6), "alpha_to": round(self.alpha_after, 6)}


def hold_target(arch: Architecture, alphas: Mapping[str, Mapping[str, float]], shapes: Mapping[str, tuple],
                budgets: Sequence[Budget]) -> tuple[Architecture, list[Swap]]:
    """`arch` brought to every budget's target or below (`alphas`: position -> candidate -> alpha; `shapes`:
    position -> its input shape), and the positions changed from it. Where even the fastest candidate everywhere
    stays over, the fastest network is returned: the warning before the search says why."""
    if not budgets:
        return arch, []
    choices = dict(arch.choices)
    while (over := _furthest_over(choices, shapes, budgets)) is not None:
        swap = _cheapest_per_ms(choices, alphas, shapes, over, budgets)
        if swap is None:
            break  # nothing left to give on that device
        choices[swap[0]] = swap[1]
    if _furthest_over(choices, shapes, budgets) is None:
        _reclaim(choices, alphas, shapes, budgets)
    first = budgets[0]
    swaps = [Swap(label, was, choices[label], first.table.ms(was, shapes[label]) - first.table.ms(choices[label], shapes[label]),
                  alphas[label][was], alphas[label][choices[label]])
             for label, was in arch.choices.items() if choices[label] != was]
    return Architecture(space=arch.space, choices=choices), swaps


def predicted(choices: Mapping[str, str], shapes: Mapping[str, tuple], budget: Budget) -> float:
    return budget.fixed_ms + sum(budget.table.ms(name, shapes[label]) for label, name in choices.items())


def _furthest_over(choices, shapes, budgets: Sequence[Budget]) -> Budget | None:
    ratios = [(predicted(choices, shapes, b) / b.target_ms, b) for b in budgets]
    worst = max(ratios, key=lambda rb: rb[0], default=None)
    return worst[1] if worst is not None and worst[0] > 1.0 else None


def _cheapest_per_ms(choices, alphas, shapes, budget: Budget, budgets: Sequence[Budget]) -> tuple[str, str] | None:
    """The (position, candidate) on `budget` (the device furthest over) that gives up the least log-alpha per ms
    saved there, among those that push no other device further over its target (so two devices cannot undo each
    other's swaps)."""
    others = [(b, predicted(choices, shapes, b)) for b in budgets if b is not budget]
    best, best_cost = None, math.inf
    for label, current in choices.items():
        now = budget.table.ms(current, shapes[label])
        for name, alpha in alphas[label].items():
            saved = now - budget.table.ms(name, shapes[label])
            if name == current or saved <= 0 or not _harmless(label, current, name, shapes, others):
                continue
            cost = (_log(alphas[label][current]) - _log(alpha)) / saved
            if cost < best_cost:
                best, best_cost = (label, name), cost
    return best


def _reclaim(choices, alphas, shapes, budgets: Sequence[Budget]) -> None:
    """Spend what the swaps saved beyond need: while some position can move to a candidate of higher alpha with
    every device still at or under its target, make the move that gains the most alpha (never past the argmax)."""
    while True:
        best, best_gain = None, 0.0
        for label, current in choices.items():
            for name, alpha in alphas[label].items():
                gain = _log(alpha) - _log(alphas[label][current])
                if gain > best_gain and _furthest_over({**choices, label: name}, shapes, budgets) is None:
                    best, best_gain = (label, name), gain
        if best is None:
            return
        choices[best[0]] = best[1]


def _harmless(label, current, name, shapes, others) -> bool:
    for b, ms in others:
        after = ms + b.table.ms(name, shapes[label]) - b.table.ms(current, shapes[label])
        if after > max(ms, b.target_ms):
            return False
    return True


def _log(alpha: float) -> float:
    return math.log(max(alpha, 1e-12))
