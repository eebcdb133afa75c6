"""BatchNorm recalibration: fresh running statistics for a derived network.

During a search, candidates that were rarely run or weighted low keep stale BN
statistics (their running mean/var were estimated on mixed or sampled paths, or
hardly at all). Before a derived network is evaluated or fine-tuned, its BN layers
are reset and re-estimated by plain forward passes in train mode, without gradients.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorms(module: nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def recalibrate(module: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str | None = None) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them from `batches`.

    Each BN uses a cumulative average (momentum=None) over all batches, so the result
    is the plain mean over the batches, independent of their order. Only the running
    statistics change: no gradients, no parameter updates. Training flags and
    momenta are restored afterwards. Returns the number of BN layers recalibrated
    (0: nothing to do, and `batches` is not consumed).
    """
    layers = batchnorms(module)
    if not layers:
        return 0
    flags = [(m, m.training) for m in module.modules()]
    momenta = [(bn, bn.momentum) for bn in layers]
    try:
        for bn in layers:
            bn.reset_running_stats()
            bn.momentum = None
        module.train()
        with torch.no_grad():
            for x in batches:
                module(x if device is None else x.to(device))
    finally:
        for bn, momentum in momenta:
            bn.momentum = momentum
        for m, training in flags:
            m.training = training
    return len(layers)
