"""A search space defined in user code, used without touching hwnas.

A space is a plain `nn.Module` whose choices are `ChoiceBlock`s, wrapped in a small
`SearchSpace` factory that names it, validates its options and names its default task
(a task is a plugin of its own: `SmoothingTask` below, registered by name).
Run: python examples/custom_space.py
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hwnas import Architecture, ChoiceBlock, SearchSpace, freeze
from hwnas.contracts.describe import describe_space
from hwnas.contracts.plugins import register_space, register_task
from hwnas.contracts.task import Task


class TinyConvConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    channels: int = Field(8, ge=1)
    depth: int = Field(3, ge=1)


class TinyConvNet(nn.Module):
    """stem -> `depth` choice positions (3x3 conv, 5x5 conv, or skip) -> head."""

    def __init__(self, cfg: TinyConvConfig):
        super().__init__()
        c = cfg.channels
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.body = nn.Sequential(
            *(
                ChoiceBlock(
                    f"body.{i}",
                    {
                        "conv3": nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU()),
                        "conv5": nn.Sequential(nn.Conv2d(c, c, 5, padding=2), nn.ReLU()),
                        "skip": nn.Identity(),
                    },
                )
                for i in range(cfg.depth)
            )
        )
        self.head = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        return x + self.head(self.body(self.stem(x)))


class SmoothingTask(Task):
    """Learn to undo a blur on random images (a stand-in for the user's own task)."""

    name = "smoothing"
    primary_metric = "neg_mse"

    def batch(self, split, *, seed, epoch, step, batch_size):
        # A stable seed (not Python's per-process hash()) so every process sees the same batch.
        gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{split}/{epoch}/{step}".encode()))
        clean = torch.rand(batch_size, 3, 16, 16, generator=gen)
        return nn.functional.avg_pool2d(clean, 3, 1, 1), clean

    def loss(self, output, target):
        return nn.functional.mse_loss(output, target)

    def validate(self, model, device="cpu"):
        x, y = self.batch("arch", seed=0, epoch=0, step=0, batch_size=4)
        with torch.no_grad():
            return {"neg_mse": -float(self.loss(model(x.to(device)), y.to(device)))}


class TinyConvSpace(SearchSpace):
    name: ClassVar[str] = "tiny-conv"
    Config: ClassVar[type[BaseModel]] = TinyConvConfig
    presets: ClassVar[dict[str, dict]] = {"default": {}}
    small_preset: ClassVar[str] = "default"
    default_task: ClassVar[str] = "smoothing"

    def build(self) -> nn.Module:
        return TinyConvNet(self.config)


def main() -> dict:
    register_space(TinyConvSpace)  # now `--space tiny-conv` works in this process
    register_task(SmoothingTask)  # and its default task
    space = TinyConvSpace.from_options(depth=2)
    report = describe_space(space, image_size=32)
    arch = Architecture(space=space.name, choices={"body.0": "conv5", "body.1": "skip"})
    net = freeze(space, arch)
    out = net(torch.rand(1, 3, 32, 32))
    return {"positions": [p["label"] for p in report["positions"]], "arch": arch.choices, "output_shape": list(out.shape)}


if __name__ == "__main__":
    print(main())
