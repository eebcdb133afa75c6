"""Several latency targets in one search: how the per-device latency terms become one.

Each device d (one latency table) gives its own unweighted latency term L_d(alpha): the
normalised expected latency (that device's all-base network = 1), or in the
constraint form the hinge max(0, E_d[ms] / target_d - 1). A combination reduces the
terms and their weights w_d to the scalar that mu multiplies:

- `weighted_sum`: sum_d w_d L_d / sum_d w_d -- the average device, weighted; with one
  device it is exactly that device's term, whatever its weight;
- `smooth_worst`: T log sum_d exp(w_d L_d / T) - T log D -- a smooth maximum of the
  weighted terms (differentiable, so every device gets a gradient, the worst the
  largest: devices more than a few T below the worst get almost none), never above the
  true maximum and at most T log D below it; with one device it is exactly w L.

A combination is any callable `(terms, weights) -> scalar` on 1-D tensors (a user's own,
e.g. a cost in money per device-hour, fits the same signature): pass it as
`hwnas.nas.objective.Objective(devices, mu, combine=...)`, or register it here by name for
`--combine`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

Combine = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Terms end a search at ~0.3-0.5 (all-base = 1) and devices differ there by a few hundredths. At 0.05 a
# device 0.04 below the worst still took 31% of the gradient (a blend, not a worst case: the joint search
# pulled on the worst device less than that device's own search did, benchmarks section "devices"); at
# 0.01 it takes 2%, ties within ~0.01 share, and the value is within 0.01 log D (< 0.007 for 2) of the max.
SMOOTH_TEMPERATURE = 0.01


def weighted_sum(terms: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum w_d L_d / sum w_d."""
    weights = weights.to(terms)
    return (weights * terms).sum() / weights.sum()


def smooth_worst(terms: torch.Tensor, weights: torch.Tensor, temperature: float = SMOOTH_TEMPERATURE) -> torch.Tensor:
    """T logsumexp(w L / T) - T log D: a differentiable maximum of the weighted terms."""
    x = weights.to(terms) * terms
    return temperature * torch.logsumexp(x / temperature, dim=0) - temperature * math.log(x.numel())


COMBINATIONS: dict[str, Combine] = {"sum": weighted_sum, "worst": smooth_worst}
