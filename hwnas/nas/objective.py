"""The composite search objective: task loss + expected-latency penalty + entropy.

    L = L_task / L_ref  +  mu * L_latency(alpha)  +  lambda(t) * H_norm(alpha)

- L_ref is the task loss at the end of warm-up (`reference_loss`), so mu and lambda
  are stated relative to the task loss: mu = 0.1 means the same on any data and any
  loss scale. (An MSE on [0, 1] images is ~1e-3 while the latency term is ~1, so an
  unnormalised mu > 0 collapses every search onto the cheapest block.)
- L_latency (penalty form, the paper's) = sum_positions sum_i alpha_i * p_i, where
  p_i is candidate i's table latency at that position divided by the latency of the
  base network's blocks (every position's first candidate, e.g. all-`naf`), so the
  base network scores exactly 1.
  Constraint form (`target_ms`), E[latency] = fixed parts + sum alpha_i * ms_i:
  `absolute` (TuNAS's absolute reward, Bender et al. 2020; the default with one device)
  |E[latency ms] / target_ms - 1|, so the search spends its budget; or `hinge`
  max(0, E[latency ms] / target_ms - 1), no pressure under the target (the default with
  several devices: a device faster than its target is not pushed up). Under a hinge a
  weight-sharing search drifts below its target towards what its task-loss estimate
  favours, which early in training is the parameter-free candidate (`skip`): measured
  at 0.45x on the small NAFNet space, both seeds ended at 0.23x and 0.32x, one all-skip.
- H_norm = mean over positions of H(alpha) / log K: 0 when every position is
  decisive, 1 when uniform (positions with one candidate are left out).
- Several devices (one table each, `DeviceLatency`): each gives its own term, and a
  combination (`hwnas.nas.combine`: weighted sum, or a smooth worst case) makes them one.
- lambda(t) grows exponentially over the run, planned over its length
  (`hwnas.nas.schedule.EntropyPlan`): the search explores early and commits late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from hwnas.nas.combine import Combine, weighted_sum
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, fixed_ms, position_costs
from hwnas.contracts.space import Position, Unit


@dataclass(frozen=True)
class LatencyModel:
    """Table latencies laid out per (position, candidate), zero where a position has fewer candidates."""

    ms: torch.Tensor  # (P, K) milliseconds
    mask: torch.Tensor  # (P, K) bool, True where a candidate exists
    fixed_ms: float  # stem, resampling, head
    base_ms: float  # fixed parts + every position's first candidate

    @property
    def base_blocks_ms(self) -> float:
        return self.base_ms - self.fixed_ms

    @property
    def cheapest_ms(self) -> float:
        """fixed + every position's cheapest candidate: the fastest network the table can make."""
        return self.fixed_ms + float(self.ms.masked_fill(~self.mask, float("inf")).min(dim=1).values.sum())

    def normalised(self) -> torch.Tensor:
        """p = ms / (sum over positions of the first candidate's ms): the base network sums to 1."""
        return self.ms / self.base_blocks_ms

    def expected_ms(self, alpha: torch.Tensor) -> torch.Tensor:
        """fixed + sum alpha * ms: the table-predicted latency of the alpha-weighted network."""
        return self.fixed_ms + (alpha * self.ms.to(alpha.device)).sum()

    def to(self, device: torch.device | str) -> "LatencyModel":
        return LatencyModel(self.ms.to(device), self.mask.to(device), self.fixed_ms, self.base_ms)


def latency_model(table: LatencyTable, positions: Sequence[Position], fixed: Sequence[Unit]) -> LatencyModel:
    """Look every (position, candidate) and fixed part up in `table` (missing entries raise `HwnasError`)."""
    costs = position_costs(table, positions)
    mask = np.isfinite(costs)
    ms = torch.tensor(np.where(mask, costs, 0.0), dtype=torch.float32)
    fixed_total = fixed_ms(table, fixed)
    base_blocks = float(sum(costs[i, 0] for i in range(len(positions))))
    if not base_blocks > 0:
        raise HwnasError(
            "the latency table gives the base network's blocks a total of 0 ms, so latencies cannot be "
            "normalised; re-measure the table with `hwnas build-lut --force`."
        )
    return LatencyModel(ms, torch.tensor(mask), float(fixed_total), float(fixed_total + base_blocks))


def normalised_entropy(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over positions with K >= 2 of H(alpha) / log K; alpha is (P, K), zero-padded."""
    counts = mask.sum(dim=1)
    keep = counts >= 2
    if not bool(keep.any()):
        return alpha.new_zeros(())
    h = -torch.special.xlogy(alpha, alpha).sum(dim=1)  # 0 log 0 = 0
    return (h[keep] / torch.log(counts[keep].to(alpha.dtype))).mean()


@dataclass(frozen=True)
class Terms:
    """The objective's terms for one step; `total` is what is minimised."""

    task: torch.Tensor  # normalised: L_task / L_ref
    latency: torch.Tensor  # mu * L_latency
    entropy: torch.Tensor  # lambda(t) * H_norm
    total: torch.Tensor

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield from (("task", self.task), ("latency", self.latency), ("entropy", self.entropy), ("total", self.total))

    def first_nonfinite(self) -> str | None:
        """The name of the first NaN/inf term (task, latency, entropy, total), or None."""
        for name, value in self.items():
            if not bool(torch.isfinite(value.detach()).all()):
                return name
        return None


TARGET_FORMS = ("absolute", "hinge")


@dataclass(frozen=True)
class DeviceLatency:
    """One device's latency table in the objective (a chip: its table, weight and target).

    Its unweighted term: the normalised expected latency (this device's base network
    = 1), or with `target_ms` r = E[ms] / target - 1 as |r| (`absolute`) or max(0, r)
    (`hinge`): see the module docstring.
    """

    name: str
    model: LatencyModel
    weight: float = 1.0
    target_ms: float | None = None
    target_form: str = "hinge"  # TARGET_FORMS; a search's config resolves its own default (absolute with one table)

    def term(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.target_ms is not None:
            r = self.model.expected_ms(alpha) / self.target_ms - 1.0
            return r.abs() if self.target_form == "absolute" else torch.relu(r)
        return (alpha * self.model.normalised().to(alpha.device)).sum()

    def to(self, device: torch.device | str) -> "DeviceLatency":
        return DeviceLatency(self.name, self.model.to(device), self.weight, self.target_ms, self.target_form)


@dataclass(frozen=True)
class Objective:
    """L = L_task / L_ref + mu * L_latency + lambda * H_norm (see the module docstring).

    L_latency combines the devices' terms (`hwnas.nas.combine`: weighted sum or smooth
    worst case); with one device it is that device's term. lambda is passed per call:
    its schedule belongs to the search (`hwnas.nas.schedule`).
    """

    devices: tuple[DeviceLatency, ...]
    latency_weight: float  # mu
    combine: Combine = weighted_sum

    @classmethod
    def single(cls, model: LatencyModel, latency_weight: float, target_ms: float | None = None,
               target_form: str = "hinge") -> "Objective":
        """The one-table objective."""
        return cls((DeviceLatency("default", model, 1.0, target_ms, target_form),), latency_weight)

    @property
    def latency(self) -> LatencyModel:
        """The first device's model: what logs and progress bars show."""
        return self.devices[0].model

    def latency_term(self, alpha: torch.Tensor) -> torch.Tensor:
        """Unweighted L_latency: the devices' terms combined."""
        terms = torch.stack([d.term(alpha) for d in self.devices])
        weights = torch.tensor([d.weight for d in self.devices], dtype=terms.dtype, device=terms.device)
        return self.combine(terms, weights)

    def to(self, device: torch.device | str) -> "Objective":
        return Objective(tuple(d.to(device) for d in self.devices), self.latency_weight, self.combine)

    def __call__(self, task_loss: torch.Tensor, reference_loss: float, alpha: torch.Tensor, lam: float) -> Terms:
        if not (reference_loss > 0 and math.isfinite(reference_loss)):
            raise ValueError(f"reference task loss must be positive and finite, got {reference_loss}")
        task = task_loss / reference_loss
        latency = self.latency_weight * self.latency_term(alpha)
        entropy = lam * normalised_entropy(alpha, self.latency.mask.to(alpha.device))
        return Terms(task, latency, entropy, task + latency + entropy)
