"""The timing protocol of the onnxruntime backend: interleaved rounds, repeated passes, noise.

Every call of a group is timed once per round, in a new random order each round, so
whatever the machine does meanwhile hits all of them alike. The timed rounds come in
`passes` passes; a reported item's value per round is its time minus the mean time of
its reference items in the same round (a do-nothing call: the per-call overhead), and
its statistics pool the rounds of the passes kept. The spread of its pass
medians says whether repeated measurements agree: when an item's passes disagree by
more than `noisy_pct` (and more than a call's jitter), another pass of the whole group replaces the oldest one (at most
`extra_passes` times), so a busy moment drops out; an item still above it is reported
as noisy, never silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

FLOOR_MS = 0.001  # the resolution we record: a unit we cannot tell from its reference is 1 us, not 0 (free)
JITTER_MS = 0.05  # passes closer than this agree whatever the ratio: a call's own jitter on a CPU


@dataclass(frozen=True)
class Plan:
    """How to time a group: untimed `warmup` rounds, then `passes` x `rounds` timed rounds."""

    warmup: int
    rounds: int  # per pass
    passes: int = 3
    extra_passes: int = 2
    noisy_pct: float = 5.0


@dataclass(frozen=True)
class Timing:
    """One reported item: statistics of its per-round values (ms) over the kept passes."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    pass_medians_ms: tuple[float, ...]

    @property
    def spread_pct(self) -> float:
        """(largest - smallest pass median) / median, in percent: how far repeated passes disagree."""
        return 100.0 * (max(self.pass_medians_ms) - min(self.pass_medians_ms)) / self.median_ms

    def noisy(self, limit_pct: float) -> bool:
        """Its passes disagree by more than `limit_pct` of its median, and by more than a call's jitter."""
        spread_ms = max(self.pass_medians_ms) - min(self.pass_medians_ms)
        return self.spread_pct > limit_pct and spread_ms > JITTER_MS


def timed_round(calls: Sequence[Callable[[], object]], warm: Sequence[bool], rng: np.random.Generator,
                clock: Callable[[], int] = time.perf_counter_ns) -> np.ndarray:
    """Milliseconds of each call, timed once in a random order; a `warm` call right after an
    untimed call of itself."""
    out = np.empty(len(calls))
    for i in rng.permutation(len(calls)):
        if warm[i]:
            calls[i]()
        start = clock()
        calls[i]()
        out[i] = (clock() - start) / 1e6
    return out


def timed_pass(calls, rounds: int, warm: Sequence[bool], rng, clock=time.perf_counter_ns) -> np.ndarray:
    """(len(calls), rounds) milliseconds."""
    return np.stack([timed_round(calls, warm, rng, clock) for _ in range(rounds)], axis=1)


def timings(passes: Sequence[np.ndarray], refs: dict[int, tuple[int, ...]]) -> dict[int, Timing]:
    """For each reported item `i` (a key of `refs`): its time minus the mean of its reference
    items' times, round by round, summarised over `passes`."""
    out = {}
    for i, ref in refs.items():
        per_pass = [p[i] - (p[list(ref)].mean(axis=0) if ref else 0.0) for p in passes]
        values = np.maximum(np.concatenate(per_pass), FLOOR_MS)
        p10, median, p90 = np.percentile(values, [10, 50, 90])
        medians = tuple(max(float(np.median(v)), FLOOR_MS) for v in per_pass)
        out[i] = Timing(float(median), float(p10), float(p90), int(values.size), medians)
    return out


def measure(calls: Sequence[Callable[[], object]], refs: dict[int, tuple[int, ...]], plan: Plan,
            warm: Sequence[bool] | None = None, seed: int = 0,
            clock: Callable[[], int] = time.perf_counter_ns) -> tuple[dict[int, Timing], int]:
    """Warm-up, `plan.passes` passes, and up to `plan.extra_passes` more while a reported
    item's passes disagree by more than `plan.noisy_pct` (each replacing the oldest pass).
    `warm[i]`: time call i right after an untimed call of itself. Returns the timings and
    the number of extra passes run."""
    rng = np.random.default_rng(seed)
    warm = [False] * len(calls) if warm is None else list(warm)
    for _ in range(plan.warmup):
        timed_round(calls, warm, rng, clock)
    passes = [timed_pass(calls, plan.rounds, warm, rng, clock) for _ in range(max(1, plan.passes))]
    result = timings(passes, refs)
    extra = 0
    while extra < plan.extra_passes and len(passes) > 1 and any(t.noisy(plan.noisy_pct) for t in result.values()):
        passes = passes[1:] + [timed_pass(calls, plan.rounds, warm, rng, clock)]
        result = timings(passes, refs)
        extra += 1
    return result, extra
