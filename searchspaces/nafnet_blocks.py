"""The candidate blocks of the NAFNet U-Net space: the paper's four, `skip`, and width variants.

`naf` is the block of Chen et al., "Simple Baselines for Image Restoration" (ECCV
2022). The other three follow the hardware-aware paper's stated mechanism (its exact
internals are unpublished): on the SM8650 NPU the slow operations are the channel
LayerNorm (run-time statistics, cannot be folded) and the simplified channel
attention (a global pool that must see the whole feature map first).

- `naf_bn`: BatchNorm instead of LayerNorm -- folds into the following 1x1 conv at export.
  It trains with Batch Renormalization (`batch_renorm`): each SimpleGate squares any gap
  between batch and running statistics, and plain BatchNorm training left some searched
  mixes diverging on single images once deployed.
- `naf_bn_lite`: `naf_bn` without the global-pool attention: only local operations.
- `cbr`: Conv-BN-ReLU inverted residual made only of ops NPUs fuse into single kernels.
- `skip`: no block (depth becomes a choice); `<block>_e<N>`: that block at inner width N*c
  instead of 2c (FBNetV2 searches widths; the inner width keeps the U-Net's stage interfaces).
"""

from __future__ import annotations

import re
from typing import Callable

import torch
from torch import nn

from hwnas.searchspaces.batch_renorm import renormalised


class LayerNorm2d(nn.Module):
    """NAFNet's per-pixel LayerNorm over channels, written from mean/var over dim 1.

    ONNX `LayerNormalization(axis=1)` would normalise over C, H and W together, and the
    reference's custom autograd function does not export.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split channels in half and multiply the halves (NAFNet's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class ChannelAttention(nn.Module):
    """Simplified channel attention: global average pool, 1x1 conv, rescale."""

    def __init__(self, channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv(self.pool(x))


class NAFBlock(nn.Module):
    """NAFNet block, parametrised by its normalisation and whether it has attention.

    norm -> 1x1 (c->2c) -> 3x3 depthwise -> SimpleGate -> [attention] -> 1x1 (c->c),
    scaled residual; norm -> 1x1 (c->2c) -> SimpleGate -> 1x1 (c->c), scaled residual.
    """

    def __init__(self, c: int, norm: str = "layer", attention: bool = True, expand: int = 2):
        super().__init__()
        dw = c * expand
        self.norm1 = _norm(norm, c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sg = SimpleGate()
        self.sca = ChannelAttention(dw // 2) if attention else nn.Identity()
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = _norm(norm, c)
        self.conv4 = nn.Conv2d(c, c * expand, 1)
        self.conv5 = nn.Conv2d(c * expand // 2, c, 1)
        # Zero-initialised residual scales, as in the reference: each block starts as identity.
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv3(self.sca(self.sg(self.conv2(self.conv1(_normed(self.norm1, inp))))))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(_normed(self.norm2, y))))
        return y + x * self.gamma


class CBRBlock(nn.Module):
    """Conv-BN-ReLU inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, residual.

    Every op fuses into one NPU kernel after BN folding. Expansion 2 keeps it at about
    4c^2 parameters, below the NAF block's ~7c^2 (dense 3x3 convs at 512 channels
    would not be).
    """

    def __init__(self, c: int, expand: int = 2):
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))
        # Start as identity like the NAF blocks (zero BN scale on the projection).
        nn.init.zeros_(self.project[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.dw(self.expand(x)))


def _norm(kind: str, c: int) -> nn.Module:
    return LayerNorm2d(c) if kind == "layer" else nn.BatchNorm2d(c)


def _normed(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # BatchNorm trains as it deploys (Batch Renormalization); the module stays a plain BatchNorm2d.
    return renormalised(norm, x) if isinstance(norm, nn.BatchNorm2d) else norm(x)


# The paper's four candidates (the default); `skip` and width variants are space options.
CANDIDATES = ("naf", "naf_bn", "naf_bn_lite", "cbr")

# name -> constructor(channels, expansion). The expansion is the block's inner width over c
# (2 as published); a name may end in `_e<N>` for expansion N (e.g. `cbr_e4`, `naf_e1`).
BLOCKS: dict[str, Callable[[int, int], nn.Module]] = {
    "naf": lambda c, e: NAFBlock(c, norm="layer", attention=True, expand=e),
    "naf_bn": lambda c, e: NAFBlock(c, norm="batch", attention=True, expand=e),
    "naf_bn_lite": lambda c, e: NAFBlock(c, norm="batch", attention=False, expand=e),
    "cbr": lambda c, e: CBRBlock(c, expand=e),
    # No block: the search chooses depth per stage (FBNet, ProxylessNAS). Costs nothing.
    "skip": lambda c, e: nn.Identity(),
}
DEFAULT_EXPANSION = 2
_WIDTH = re.compile(r"^(?P<block>.+)_e(?P<expand>[1-9][0-9]?)$")


def parse_candidate(name: str) -> tuple[str, int]:
    """(block, expansion) of a candidate name (`cbr` -> ("cbr", 2), `cbr_e4` -> ("cbr", 4)); KeyError if unknown."""
    if name in BLOCKS:
        return name, DEFAULT_EXPANSION
    m = _WIDTH.match(name)
    if m is None or m["block"] not in BLOCKS or m["block"] == "skip":
        raise KeyError(name)
    return m["block"], int(m["expand"])


def is_candidate(name: str) -> bool:
    try:
        parse_candidate(name)
    except KeyError:
        return False
    return True


def make_candidate(name: str, c: int) -> nn.Module:
    """The candidate called `name` at `c` channels."""
    block, expand = parse_candidate(name)
    return BLOCKS[block](c, expand)
