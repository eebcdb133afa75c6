"""Device-free cost of a module: parameters and multiply-accumulates.

MACs come from PyTorch's own FLOP counter (convolutions and matrix products; 1 MAC =
2 FLOPs), run on the meta device so that counting a 256x256 network costs nothing.
Element-wise ops, norms and pooling are not counted, as in the usual GMAC figures.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass at `input_shape` (batch included)."""
    meta = copy.deepcopy(module).to("meta").eval()
    x = torch.zeros(tuple(input_shape), device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    return counter.get_total_flops() // 2
