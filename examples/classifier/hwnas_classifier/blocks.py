"""The candidates of one position: MobileNetV2 inverted residuals, or a skip.

An inverted residual (Sandler et al., "MobileNetV2", CVPR 2018): 1x1 expansion to
e x c channels + BN + ReLU6, k x k depthwise (stride s) + BN + ReLU6, 1x1 linear
projection + BN, and the residual addition when input and output shapes match. The
search picks the kernel k (3 or 5) and the expansion e (3 or 6) per position, or skips
the position where its input and output shapes are equal (ProxylessNAS's choices).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

Candidate = Callable[[int, int, int], nn.Module]  # (in channels, out channels, stride) -> module


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        self.residual = stride == 1 and c_in == c_out
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def inverted_residual(kernel: int, expansion: int) -> Candidate:
    return lambda c_in, c_out, stride: InvertedResidual(c_in, c_out, stride, kernel, expansion)


# name -> constructor; the first is each position's base candidate (the space's reference network).
CANDIDATES: dict[str, Candidate] = {
    "k3e6": inverted_residual(3, 6),
    "k3e3": inverted_residual(3, 3),
    "k5e3": inverted_residual(5, 3),
    "k5e6": inverted_residual(5, 6),
}
SKIP = "skip"  # offered only where input and output shapes are equal
