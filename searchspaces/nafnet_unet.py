"""The NAFNet U-Net search space for image denoising.

NAFNet (Chen et al., ECCV 2022) with every block position turned into a choice among
`naf`, `naf_bn`, `naf_bn_lite` and `cbr` (see `nafnet_blocks`). The `paper` preset is
NAFNet-width32: encoder (2,2,4,8), 12 middle, decoder (2,2,2,2) -- 36 positions, and
29.16 M parameters when every position is `naf`.

Module paths equal position labels (`enc0.1`, `mid.3`, `dec2.0`); `dec{i}` works at
the resolution and width of `enc{i}`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from hwnas.space import ChoiceBlock, SearchSpace, Unit
from hwnas.searchspaces.nafnet_blocks import CANDIDATES, make_candidate


class NAFNetUNetConfig(BaseModel):
    """Network options; `train_crop` is the default training crop of the preset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(32, ge=2, le=1024)
    enc_blocks: tuple[int, ...] = (2, 2, 4, 8)
    middle_blocks: int = Field(12, ge=0)
    dec_blocks: tuple[int, ...] = (2, 2, 2, 2)
    candidates: tuple[str, ...] = CANDIDATES
    img_channels: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _forms_a_unet(self) -> "NAFNetUNetConfig":
        if not self.enc_blocks:
            raise ValueError("a U-Net needs at least one encoder level")
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError(
                f"{len(self.enc_blocks)} encoder levels but {len(self.dec_blocks)} decoder levels; "
                "a U-Net needs one decoder level per encoder level"
            )
        if any(n < 0 for n in (*self.enc_blocks, *self.dec_blocks)):
            raise ValueError("block counts cannot be negative")
        if len(self.enc_blocks) > 8:
            raise ValueError("more than 8 levels would shrink any image to nothing")
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            raise ValueError(f"unknown candidates {unknown}; choose from {', '.join(CANDIDATES)}")
        return self


class NAFNetUNet(nn.Module):
    """NAFNet's U-Net with a `ChoiceBlock` at every block position."""

    def __init__(self, cfg: NAFNetUNetConfig):
        super().__init__()
        self.levels = len(cfg.enc_blocks)
        w = cfg.width
        self.intro = nn.Conv2d(cfg.img_channels, w, 3, padding=1)
        # Register in execution order so positions are listed in forward order.
        for i, n in enumerate(cfg.enc_blocks):
            c = w * 2**i
            self.add_module(f"enc{i}", _stage(f"enc{i}", n, c, cfg.candidates))
            self.add_module(f"down{i}", nn.Conv2d(c, 2 * c, 2, stride=2))
        self.mid = _stage("mid", cfg.middle_blocks, w * 2**self.levels, cfg.candidates)
        for i in reversed(range(self.levels)):
            c = w * 2**i
            self.add_module(f"up{i}", Upsample(2 * c))
            self.add_module(f"dec{i}", _stage(f"dec{i}", cfg.dec_blocks[i], c, cfg.candidates))
        self.ending = nn.Conv2d(w, cfg.img_channels, 3, padding=1)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        x_in = pad_to_multiple(inp, 2**self.levels)
        x = self.intro(x_in)
        skips = []
        for i in range(self.levels):
            x = getattr(self, f"enc{i}")(x)
            skips.append(x)
            x = getattr(self, f"down{i}")(x)
        x = self.mid(x)
        for i in reversed(range(self.levels)):
            x = getattr(self, f"up{i}")(x) + skips[i]
            x = getattr(self, f"dec{i}")(x)
        x = self.ending(x) + x_in
        return x[..., :h, :w]


class Upsample(nn.Module):
    """1x1 conv to 2c then PixelShuffle(2): halves channels, doubles resolution."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, 2 * c, 1, bias=False)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad bottom/right so H and W divide by `multiple` (cropped back after); never resize."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (multiple - w % multiple) % multiple, 0, (multiple - h % multiple) % multiple))


def _stage(prefix: str, n: int, c: int, candidates: tuple[str, ...]) -> nn.Sequential:
    return nn.Sequential(
        *(ChoiceBlock(f"{prefix}.{j}", {name: make_candidate(name, c) for name in candidates}) for j in range(n))
    )


class NAFNetUNetSpace(SearchSpace):
    """`nafnet-unet`: NAFNet U-Net, four candidate blocks per position, Gaussian denoising task."""

    name: ClassVar[str] = "nafnet-unet"
    Config: ClassVar[type[BaseModel]] = NAFNetUNetConfig
    presets: ClassVar[dict[str, dict]] = {
        "paper": dict(width=32, enc_blocks=(2, 2, 4, 8), middle_blocks=12, dec_blocks=(2, 2, 2, 2)),
        # Small enough that a 3-epoch search and a 1-epoch training finish in seconds on 2 cores.
        "tiny": dict(width=8, enc_blocks=(1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1)),
    }
    default_preset: ClassVar[str] = "paper"
    small_preset: ClassVar[str] = "tiny"
    train_crops: ClassVar[dict[str, int]] = {"paper": 128, "tiny": 32}

    def build(self) -> NAFNetUNet:
        return NAFNetUNet(self.config)

    @property
    def multiple(self) -> int:
        return 2 ** len(self.config.enc_blocks)

    def example_input(self, image_size: int) -> torch.Tensor:
        return torch.zeros(1, self.config.img_channels, image_size, image_size)

    def fixed_units(self, image_size: int) -> list[Unit]:
        """intro, each down/up-sampling, ending -- at the (padded) shapes they see."""
        cfg, size = self.config, image_size + (-image_size) % self.multiple
        # The fixed parts depend only on width and levels: build the net without blocks.
        levels = len(cfg.enc_blocks)
        net = NAFNetUNet(cfg.model_copy(update={"enc_blocks": (0,) * levels, "middle_blocks": 0, "dec_blocks": (0,) * levels}))
        units = [Unit("intro", (1, cfg.img_channels, size, size), net.intro, kind="fixed", path="intro")]
        for i in range(len(cfg.enc_blocks)):
            c, s = cfg.width * 2**i, size // 2**i
            units.append(Unit("down", (1, c, s, s), getattr(net, f"down{i}"), kind="fixed", path=f"down{i}"))
            units.append(Unit("up", (1, 2 * c, s // 2, s // 2), getattr(net, f"up{i}"), kind="fixed", path=f"up{i}"))
        units.append(Unit("ending", (1, cfg.width, size, size), net.ending, kind="fixed", path="ending"))
        return units

    def task(self, data: str | None = None, crop: int | None = None, sigma: float | tuple[float, float] = 25.0, **options):
        from hwnas.searchspaces.denoising import GaussianDenoising, make_config

        crop = self.train_crops.get(self.preset or "", 64) if crop is None else crop  # 0 is refused, not replaced
        return GaussianDenoising(make_config(data=data, crop=crop, sigma=sigma, **options))
