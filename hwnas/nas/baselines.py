"""The networks a user would pick without a search, for a sweep's front (issue 22, `hwnas.nas.front`).

- uniform: one candidate at every position (the space's first candidate everywhere is
  its base network), from scratch, once per sweep seed;
- random: per latency target, mixes whose table-predicted latency lies within
  `random_tolerance` of the target -- seeded rejection sampling over per-position
  candidates: each draw first draws how often each candidate is taken (a flat
  Dirichlet) and then every position's candidate from those odds, so the draws reach
  both ends of the latency range and not only its middle;
- narrower / shallower: per target, the base network and the best-scoring uniform
  network slower than the target (or the candidates named by `narrow`), made smaller by a `hwnas.contracts.space.Scalable` space's
  variants until their measured latency meets it (`pick_variant`);
- wider: per target, the best-scoring uniform network faster than it, made larger by the
  space's growing variants (a kind in GROWING) up to the target -- where the blocks score
  alike, a wider cheap network is what an engineer tries first (benchmarks/bench_front_width.py).

Every baseline trains with the search's recipe (task and its data, crop and noise,
batch, learning rates; `hwnas train`'s defaults for the rest) for the budget's steps
(`train_config`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from hwnas.contracts.config import SearchConfig, SpaceSpec, TrainConfig, build_config
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.space import Architecture, Scalable, SearchSpace

# What a front's training takes from the search; the rest (weight decay 0, ...) is `hwnas train`'s default, so a
# baseline trained ahead with `hwnas train --lr ... --batch-size ...` is the same run.
RECIPE = ("accelerator", "task", "batch_size", "lr", "min_lr", "checkpoint_every", "threads", "prefetch")
MAX_EPOCHS = 10  # a run's steps split into at most this many epochs (a validation each)


def split(steps: int) -> tuple[int, int]:
    """(epochs, steps per epoch) making exactly `steps`: the most epochs up to MAX_EPOCHS that divide it."""
    epochs = max(d for d in range(1, MAX_EPOCHS + 1) if steps % d == 0)
    return epochs, steps // epochs


def train_config(search: SearchConfig, arch: Architecture, steps: int, seed: int, *, spec: SpaceSpec | None = None,
                 init_from: str | None = None) -> TrainConfig:
    """The training of `arch` for `steps` updates with the search's recipe (`RECIPE`)."""
    epochs, per_epoch = split(steps)
    recipe = {k: getattr(search, k) for k in RECIPE}
    return build_config(TrainConfig, spec=spec or search.spec, arch=arch.model_dump(), init_from=init_from, epochs=epochs,
                        steps_per_epoch=per_epoch, seed=seed, recalibration_batches=search.recalibration_batches, **recipe)


def candidates(space: SearchSpace, image_size: int) -> list[str]:
    """Every candidate that can fill all positions of the space (a uniform network), in the space's order."""
    positions = space.positions(image_size)
    names = list(dict.fromkeys(c for p in positions for c in p.candidates))
    return [c for c in names if all(c in p.candidates for p in positions)]


NONE = "none"  # --uniform-candidates none / --narrow none: train no uniform / narrowed network


def uniform_candidates(space: SearchSpace, image_size: int, asked: Sequence[str]) -> list[str]:
    """The uniform networks to train: `asked` (checked), every candidate of the space (nothing asked), or none
    (`NONE` alone)."""
    if list(asked) == [NONE]:
        return []
    _known(space, image_size, asked, "--uniform-candidates", f" (or {NONE} alone: no uniform network)")
    return list(asked) or candidates(space, image_size)


def narrow_candidates(space: SearchSpace, image_size: int, asked: Sequence[str]) -> list[str]:
    """The candidates of --narrow (checked): their uniform networks are made narrower and shallower per target;
    `NONE` alone: none."""
    if list(asked) == [NONE]:
        return []
    _known(space, image_size, asked, "--narrow", f" (or {NONE} alone: no narrowed network)")
    return list(asked)


def _known(space: SearchSpace, image_size: int, asked: Sequence[str], flag: str, alternative: str = "") -> None:
    known = candidates(space, image_size)
    for name in asked:
        if name not in known:
            raise HwnasError(f"{flag} names {name!r}, which is no candidate of every position of "
                             f"{space.name}; choose from {', '.join(known)}{alternative}.")


def uniform(space: SearchSpace, image_size: int, candidate: str) -> Architecture:
    return Architecture(space=space.name, choices={p.label: candidate for p in space.positions(image_size)})


@dataclass(frozen=True)
class Costs:
    """The table's per-position candidate costs: a mix's prediction without building it."""

    fixed_ms: float
    positions: list[tuple[str, dict[str, float]]]  # (label, candidate -> ms)

    @classmethod
    def of(cls, space: SearchSpace, image_size: int, table) -> "Costs":
        import torch

        from hwnas.contracts.latency import fixed_ms

        with torch.device("meta"):
            fixed = space.fixed_units(image_size)
        positions = [(p.label, {c: table.ms(c, p.input_shape) for c in p.candidates}) for p in space.positions(image_size)]
        return cls(fixed_ms(table, fixed), positions)

    def ms(self, arch: Architecture) -> float:
        return self.fixed_ms + sum(costs[arch.choices[label]] for label, costs in self.positions)

    def extremes(self) -> tuple[float, float]:
        """(the cheapest, the slowest) network's predicted ms."""
        return (self.fixed_ms + sum(min(c.values()) for _, c in self.positions),
                self.fixed_ms + sum(max(c.values()) for _, c in self.positions))


def random_mixes(space_name: str, costs: Costs, target_ms: float, count: int, *, tolerance: float, tries: int,
                 seed: int, label: str) -> list[Architecture]:
    """`count` distinct mixes predicted within `tolerance` of `target_ms` (module docstring); one sentence if
    `tries` draws find too few."""
    if count == 0:
        return []
    rng = random.Random(seed)
    found: list[Architecture] = []
    names = list(dict.fromkeys(c for _, cands in costs.positions for c in cands))
    for _ in range(tries):
        odds = {c: rng.gammavariate(1.0, 1.0) for c in names}
        choices = {}
        for position, cands in costs.positions:
            options = list(cands)
            choices[position] = rng.choices(options, weights=[odds[c] + 1e-12 for c in options])[0]
        arch = Architecture(space=space_name, choices=choices)
        if abs(costs.ms(arch) - target_ms) <= tolerance * target_ms and arch not in found:
            found.append(arch)
            if len(found) == count:
                return found
    low, high = costs.extremes()
    raise HwnasError(f"{tries} random mixes gave {len(found)} of the {count} wanted within {tolerance:.0%} of target "
                     f"{label} ({target_ms:.3g} ms predicted); choose a target between the cheapest network's "
                     f"{low:.3g} ms and the slowest's {high:.3g} ms, or ask for fewer with --random-per-target.")


GROWING = ("wider",)  # the Scalable kinds that make a network larger: they start from one faster than the target


def variants(spec: SpaceSpec, space: SearchSpace) -> dict[str, list[SpaceSpec]] | None:
    """The space's scaled versions by kind ("narrower", "shallower", "wider"), as specs; None: not Scalable."""
    if not isinstance(space, Scalable):
        return None
    return {kind: [spec.model_copy(update={"options": {**spec.options, **option}}) for option in options]
            for kind, options in space.scaled_variants().items()}


def scaled_sources(kinds: Sequence[str], base: str, names: Sequence[str], slower: Callable[[str], bool],
                   score: dict[str, float]) -> list[tuple[str, str]]:
    """(kind, candidate) pairs to scale at one target: for a shrinking kind the base network and the best-scoring
    uniform network slower than the target; for a growing kind (GROWING) the best-scoring one faster than it."""
    def best(cands) -> list[str]:
        scored = [c for c in cands if c in score]
        return [max(scored, key=lambda c: score[c])] if scored else []

    shrink = list(dict.fromkeys(([base] if slower(base) else []) + best(c for c in names if slower(c))))
    grow = best(c for c in names if not slower(c))
    return [(kind, c) for kind in kinds for c in (grow if kind in GROWING else shrink)]


def pick_variant(measured: Sequence[tuple[Any, float]], target_ms: float) -> tuple[Any, bool]:
    """(the variant whose measured ms is closest to `target_ms` at or below it, True); none below it: (the fastest,
    False)."""
    below = [(v, ms) for v, ms in measured if ms <= target_ms]
    if below:
        return max(below, key=lambda vm: vm[1])[0], True
    return min(measured, key=lambda vm: vm[1])[0], False
