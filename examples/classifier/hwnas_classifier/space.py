"""`mobilenet-v2`: a MobileNetV2-style classifier as an hwnas search space.

stem (3x3 conv + BN + ReLU6) -> stages of choice positions -> head (1x1 conv + BN +
ReLU6, global average pool, linear layer to `classes` scores). Each stage is (channels,
blocks, stride); its first block changes the channels and applies the stride, the
others keep the shape and may also be skipped (`blocks.CANDIDATES`, `blocks.SKIP`).

Declared input and output (`hwnas.contracts.space.SearchSpace`): the output is a vector of class
scores (`output = "scores"`: N x classes, whatever the input size), and any input size
works (`multiple = 1`: stride-2 convolutions with padding, then a global pool).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hwnas.contracts.space import ChoiceBlock, SearchSpace, Unit
from hwnas_classifier.blocks import CANDIDATES, SKIP

Stage = tuple[int, int, int]  # (output channels, blocks, stride of the first block)


class MobileNetV2Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stem: int = Field(16, ge=1, description="Channels of the stem convolution.")
    stages: tuple[Stage, ...] = Field(((16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 2, 2)),
                                      description="(channels, blocks, stride) per stage.")
    head: int = Field(128, ge=1, description="Channels of the head's 1x1 convolution.")
    classes: int = Field(10, ge=2, description="Number of class scores.")


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU6())


def position(label: str, c_in: int, c_out: int, stride: int) -> ChoiceBlock:
    candidates = {name: make(c_in, c_out, stride) for name, make in CANDIDATES.items()}
    if stride == 1 and c_in == c_out:
        candidates[SKIP] = nn.Identity()
    return ChoiceBlock(label, candidates)


def head(cfg: MobileNetV2Config) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(cfg.stages[-1][0], cfg.head, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cfg.head, cfg.classes))


class MobileNetV2(nn.Module):
    def __init__(self, cfg: MobileNetV2Config, in_channels: int):
        super().__init__()
        self.stem = conv_bn_relu(in_channels, cfg.stem, 3)
        blocks, c_in = [], cfg.stem
        for i, (c_out, count, stride) in enumerate(cfg.stages):
            for j in range(count):
                blocks.append(position(f"s{i}.{j}", c_in, c_out, stride if j == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = head(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class MobileNetV2Space(SearchSpace):
    """Per position: an inverted residual with kernel 3 or 5 and expansion 3 or 6, or a skip."""

    name: ClassVar[str] = "mobilenet-v2"
    Config: ClassVar[type[BaseModel]] = MobileNetV2Config
    presets: ClassVar[dict[str, dict]] = {
        "small": {},
        # Small enough that the end-to-end test searches and trains it in seconds on 2 cores.
        "tiny": dict(stem=8, stages=((8, 1, 1), (16, 2, 2), (24, 2, 2)), head=64),
    }
    default_preset: ClassVar[str] = "small"
    small_preset: ClassVar[str] = "tiny"
    default_task: ClassVar[str] = "digits"
    in_channels: ClassVar[int] = 1  # grey-level images
    output: ClassVar[str] = "scores"

    @property
    def multiple(self) -> int:
        return 1

    def build(self) -> MobileNetV2:
        return MobileNetV2(self.config, self.in_channels)

    def fixed_units(self, image_size: int) -> list[Unit]:
        """The stem and the head, at the shapes they see, so the table's sum covers the whole network."""
        cfg = self.config
        net = MobileNetV2(cfg.model_copy(update={"stages": ((cfg.stages[-1][0], 0, 1),)}), self.in_channels)
        side = image_size
        for _, _, stride in cfg.stages:
            side = math.ceil(side / stride)  # a k x k convolution with padding k // 2 and stride s
        return [Unit("stem", (1, self.in_channels, image_size, image_size), net.stem, kind="fixed", path="stem"),
                Unit("head", (1, cfg.stages[-1][0], side, side), net.head, kind="fixed", path="head")]
