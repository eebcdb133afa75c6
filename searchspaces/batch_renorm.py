"""Batch Renormalization (Ioffe, NeurIPS 2017): train a BatchNorm layer as the function it deploys.

A BatchNorm layer normalises with each batch's statistics while training and with its
running statistics once deployed. In a NAF block the two can differ by a lot: at the
U-Net's deep levels a batch of 8 training crops of 64 pixels holds 512 values per channel
at 1/8 resolution and 128 in the middle (1/16), and each SimpleGate multiplies two such
features, so a small mismatch is squared block after block. Measured on a searched `naf_bn` mix (small preset, 6000
steps, plain BatchNorm): CBSD68 image 285079 scores 8.3 dB with running statistics and
29.3 dB with its own, and fine-tuning that network with frozen statistics overflows
within 400 steps.

Batch Renormalization keeps the batch's gradient path but corrects its output towards
the running statistics: x_hat = (x - mean_B) / std_B * r + d, with r = std_B / std and
d = (mean_B - mean) / std held constant in the backward pass and clipped to
[1/r_max, r_max] and [-d_max, d_max]. Unclipped, that is exactly the deployed BatchNorm,
so the network learns the function it runs.

`renormalised(bn, x)` is a training-time forward of a plain `nn.BatchNorm2d`: the module,
its checkpoint, its latency-table fingerprint and its export (folded into a convolution)
stay those of BatchNorm; only the block that owns the layer calls this while training.
The clip limits widen from (1, 0) -- plain BatchNorm while the running statistics settle
-- to (R_MAX, D_MAX), counted in the layer's own training batches (`num_batches_tracked`,
saved in checkpoints, so a resumed run continues the schedule).
"""

from __future__ import annotations

import torch
from torch import nn

R_MAX, D_MAX = 3.0, 5.0  # the paper's final limits
PLAIN_BATCHES, WIDEN_BATCHES = 100, 400  # plain BatchNorm first, then limits widening linearly


def limits(batches: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_max, d_max) after `batches` training batches: (1, 0), then widening linearly to (R_MAX, D_MAX).

    Tensors on the counter's device, so a step never waits for the GPU to read the counter back."""
    f = ((torch.as_tensor(batches, dtype=torch.float32) - PLAIN_BATCHES) / WIDEN_BATCHES).clamp(0.0, 1.0)
    return 1.0 + (R_MAX - 1.0) * f, D_MAX * f


def renormalised(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """`bn(x)` in training mode with Batch Renormalization; `bn(x)` itself when not training or not tracking."""
    if not (bn.training and bn.track_running_stats):
        return bn(x)
    xf = x.float()  # statistics in float32 also under bf16 autocast (the CUDA path), as BatchNorm keeps them
    dims = [0, *range(2, x.dim())]
    mean = xf.mean(dims)
    var = xf.var(dims, unbiased=False)
    std = torch.sqrt(var + bn.eps)
    with torch.no_grad():
        r_max, d_max = limits(bn.num_batches_tracked)
        running_std = torch.sqrt(bn.running_var + bn.eps)
        r = torch.clamp(std / running_std, min=1.0 / r_max, max=r_max)
        d = torch.clamp((mean - bn.running_mean) / running_std, min=-d_max, max=d_max)
        _update_running(bn, mean, var, x.numel() // x.shape[1])
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (xf - mean.view(shape)) / std.view(shape) * r.view(shape) + d.view(shape)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    return y.to(x.dtype)


def _update_running(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
    # As nn.BatchNorm2d does: unbiased variance; momentum None is a cumulative average (recalibration).
    bn.num_batches_tracked.add_(1)
    factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    bn.running_mean.lerp_(mean, factor)
    bn.running_var.lerp_(var * n / max(n - 1, 1), factor)
