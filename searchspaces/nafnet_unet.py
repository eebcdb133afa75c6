"""The NAFNet U-Net search space for image restoration (its default task: denoising).

NAFNet (Chen et al., ECCV 2022) with every block position turned into a choice among
`naf`, `naf_bn`, `naf_bn_lite` and `cbr` (see `nafnet_blocks`). The `paper` preset is
NAFNet-width32: encoder (2,2,4,8), 12 middle, decoder (2,2,2,2) -- 36 positions, and
29.16 M parameters when every position is `naf`.

Module paths equal position labels (`enc0.1`, `mid.3`, `dec2.0`); `dec{i}` works at
the resolution and width of `enc{i}`. Each level has twice the channels of the one above
(`width` at full resolution), as published; option `level_widths` sets every level's
channels instead (full resolution first, the middle last), so capacity can be placed per
level -- e.g. wide only at full resolution, where the noise is removed.

Output scale (option `scale`, set by the engine from the task, see `hwnas.contracts.task`):
scale 1 is NAFNet as published (image to image). Scale 2 (x2 super-resolution) keeps
the U-Net at the input's resolution -- every position sees the shapes it sees at scale
1 -- and changes only the ending: its 3x3 conv makes 4x the image channels, and a
PixelShuffle(2) rearranges them into an image of twice the size (ESPCN, Shi et al.,
CVPR 2016): one cheap fixed unit, measured like any other and exported with the
network (Conv + DepthToSpace in ONNX). The global residual then adds the input
upsampled by nearest neighbour (`upscale`), not bicubic: a pure copy that every NPU
runs exactly and quantises without error, where a cubic Resize is slow or missing on
some delegates and its kernels differ between frameworks; the residual only needs to
carry the low frequencies the network then corrects (the anchor of mobile SR networks,
Du et al., "Anchor-based Plain Net for Mobile Image Super-Resolution", CVPRW 2021).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from hwnas.contracts.space import ChoiceBlock, SearchSpace, Unit
from hwnas.searchspaces.nafnet_blocks import BLOCKS, CANDIDATES, is_candidate, make_candidate


class NAFNetUNetConfig(BaseModel):
    """Network options; `train_crop` is the default training crop of the preset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(32, ge=2, le=1024)
    enc_blocks: tuple[int, ...] = (2, 2, 4, 8)
    middle_blocks: int = Field(12, ge=0)
    dec_blocks: tuple[int, ...] = (2, 2, 2, 2)
    candidates: tuple[str, ...] = CANDIDATES
    img_channels: int = Field(3, ge=1)
    scale: Literal[1, 2] = 1  # output size / input size: 2 adds the upsampling ending (module docstring)
    # Channels per level, full resolution first, the middle last (levels + 1 values); None: `width` doubled per level.
    level_widths: tuple[int, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _width_is_the_first_level(cls, data):
        # With level_widths, `width` (a preset's, say) would disagree: the first level's channels are the width.
        if isinstance(data, dict) and data.get("level_widths"):
            return {**data, "width": list(data["level_widths"])[0]}
        return data

    def channels(self) -> list[int]:
        """Channels of each level and, last, of the middle."""
        if self.level_widths is not None:
            return list(self.level_widths)
        return [self.width * 2**i for i in range(len(self.enc_blocks) + 1)]

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
        unknown = [c for c in self.candidates if not is_candidate(c)]
        if unknown or not self.candidates:
            raise ValueError(f"unknown candidates {unknown}; choose from {', '.join(BLOCKS)}, "
                             "or a block with another inner width as <block>_e<N> (e.g. cbr_e4)")
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError("a candidate is listed twice; list each once")
        if self.level_widths is not None:
            levels = len(self.enc_blocks)
            if len(self.level_widths) != levels + 1:
                raise ValueError(f"level_widths has {len(self.level_widths)} values but the U-Net has {levels} levels "
                                 f"and a middle; give {levels + 1}, full resolution first, e.g. "
                                 f"[{', '.join(str(16 * 2**i) for i in range(levels + 1))}]")
            if any(not 2 <= c <= 4096 for c in self.level_widths):
                raise ValueError("every level width must lie between 2 and 4096 channels")
        return self


class NAFNetUNet(nn.Module):
    """NAFNet's U-Net with a `ChoiceBlock` at every block position."""

    def __init__(self, cfg: NAFNetUNetConfig):
        super().__init__()
        self.levels = len(cfg.enc_blocks)
        self.scale = cfg.scale
        ch = cfg.channels()
        self.intro = nn.Conv2d(cfg.img_channels, ch[0], 3, padding=1)
        # Register in execution order so positions are listed in forward order.
        for i, n in enumerate(cfg.enc_blocks):
            self.add_module(f"enc{i}", _stage(f"enc{i}", n, ch[i], cfg.candidates))
            self.add_module(f"down{i}", nn.Conv2d(ch[i], ch[i + 1], 2, stride=2))
        self.mid = _stage("mid", cfg.middle_blocks, ch[self.levels], cfg.candidates)
        for i in reversed(range(self.levels)):
            self.add_module(f"up{i}", Upsample(ch[i + 1], ch[i]))
            self.add_module(f"dec{i}", _stage(f"dec{i}", cfg.dec_blocks[i], ch[i], cfg.candidates))
        self.ending = _ending(ch[0], cfg.img_channels, cfg.scale)

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
            x = getattr(self, f"up{i}")(x, skips[i])
            x = getattr(self, f"dec{i}")(x)
        x = self.ending(x) + upscale(x_in, self.scale)
        return x[..., :h * self.scale, :w * self.scale]


class Upsample(nn.Module):
    """1x1 conv to 4x the level above's channels, then PixelShuffle(2): the level above's channels
    (half of `c` as published) at twice the resolution; then adds the encoder's skip tensor (the
    U-Net's merge), so the addition belongs to this part's scope (`/up0/Add`) and is timed with it."""

    def __init__(self, c: int, out: int):
        super().__init__()
        self.conv = nn.Conv2d(c, 4 * out, 1, bias=False)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        y = self.shuffle(self.conv(x))
        return y if skip is None else y + skip


class WithSkip(nn.Module):
    """An `Upsample` as the network runs it: with a skip tensor to add (a constant here, read
    from memory as the network reads the encoder's output)."""

    def __init__(self, up: Upsample, out_shape: tuple[int, ...]):
        super().__init__()
        self.up = up
        self.register_buffer("skip", torch.randn(out_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x, self.skip)


class WithResidual(nn.Module):
    """The ending convolution as the network runs it: plus the (padded) input image, cropped
    back to the image size -- the network's global residual."""

    def __init__(self, ending: nn.Module, out_shape: tuple[int, ...], image_hw: tuple[int, int]):
        super().__init__()
        self.ending = ending
        self.image_hw = image_hw
        self.register_buffer("image", torch.randn(out_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.image_hw
        return (self.ending(x) + self.image)[..., :h, :w]


def _ending(width: int, channels: int, scale: int) -> nn.Module:
    """The last conv back to image channels; at scale > 1 followed by PixelShuffle(scale) (module docstring)."""
    if scale == 1:
        return nn.Conv2d(width, channels, 3, padding=1)  # exactly NAFNet's: scale-1 weights and tables stay valid
    return nn.Sequential(nn.Conv2d(width, channels * scale**2, 3, padding=1), nn.PixelShuffle(scale))


def upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The input at the output's size, for the global residual: nearest neighbour (module docstring)."""
    return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="nearest")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right so H and W divide by `multiple` (cropped back after); never resize.

    Edge pixels are repeated, not zeros: a black strip is a region no training crop has,
    and BatchNorm candidates (fixed statistics after training, then SimpleGate's product)
    blew up on it to inf on whole CBSD68 images (results/padding.csv).
    """
    h, w = x.shape[-2:]
    return F.pad(x, (0, (multiple - w % multiple) % multiple, 0, (multiple - h % multiple) % multiple), mode="replicate")


def shallower(cfg: NAFNetUNetConfig, most: int = 8) -> list[dict]:
    """Depth variants of `cfg` (see `NAFNetUNetSpace.scaled_variants`): enc_blocks, middle_blocks, dec_blocks each."""
    levels = len(cfg.enc_blocks)
    # stages from the deepest out: the middle, then encoder and decoder of each level, deepest level first
    counts = {"mid": cfg.middle_blocks, **{f"{side}{i}": getattr(cfg, f"{side}_blocks")[i]
                                          for i in reversed(range(levels)) for side in ("enc", "dec")}}
    total = sum(counts.values())
    cuts = sorted({max(1, round(i * (total - 1) / most)) for i in range(1, most + 1)}) if total > 1 else []
    variants, removed = [], 0
    for cut in cuts:
        while removed < cut:
            stage = max(counts, key=lambda k: counts[k])  # ties: the first, i.e. the deepest
            counts[stage] -= 1
            removed += 1
        variants.append({"enc_blocks": [counts[f"enc{i}"] for i in range(levels)], "middle_blocks": counts["mid"],
                         "dec_blocks": [counts[f"dec{i}"] for i in range(levels)]})
    return variants


def _stage(prefix: str, n: int, c: int, candidates: tuple[str, ...]) -> nn.Sequential:
    return nn.Sequential(
        *(ChoiceBlock(f"{prefix}.{j}", {name: make_candidate(name, c) for name in candidates}) for j in range(n))
    )


class NAFNetUNetSpace(SearchSpace):
    """`nafnet-unet`: NAFNet U-Net, four candidate blocks per position; denoising, or x2 with -o scale=2."""

    name: ClassVar[str] = "nafnet-unet"
    Config: ClassVar[type[BaseModel]] = NAFNetUNetConfig
    presets: ClassVar[dict[str, dict]] = {
        "paper": dict(width=32, enc_blocks=(2, 2, 4, 8), middle_blocks=12, dec_blocks=(2, 2, 2, 2)),
        # Small enough that a 3-epoch search and a 1-epoch training finish in seconds on 2 cores.
        "tiny": dict(width=8, enc_blocks=(1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1)),
        # The paper's four levels at half width and reduced depth (12 positions): trains to a
        # plateau on 2 CPU cores in minutes (benchmarks/bench_front.py measures where).
        "small": dict(width=16, enc_blocks=(1, 1, 2, 2), middle_blocks=2, dec_blocks=(1, 1, 1, 1)),
    }
    default_preset: ClassVar[str] = "paper"
    small_preset: ClassVar[str] = "tiny"
    train_crops: ClassVar[dict[str, int]] = {"paper": 128, "small": 64, "tiny": 32}
    default_task: ClassVar[str] = "denoising"
    scales: ClassVar[tuple[int, ...]] = (1, 2)

    def build(self) -> NAFNetUNet:
        return NAFNetUNet(self.config)

    def scaled_variants(self) -> dict[str, list[dict]]:
        """`hwnas.contracts.space.Scalable`: narrower (`width` in eighths of it, even, at least 2) and shallower
        (blocks removed one at a time from the stage holding the most, the deepest first; at most 8
        variants, evenly spaced, at least one block left) versions of this network, largest first; and wider
        (`width` up to twice it, in eighths, even), smallest first. With `level_widths`, every level scales by the
        same eighths."""
        cfg = self.config

        def option(k: int) -> dict:
            widths = [max(2, 2 * round(c * k / 16)) for c in cfg.channels()]
            return {"level_widths": widths} if cfg.level_widths else {"width": widths[0]}

        current = {"level_widths": list(cfg.level_widths)} if cfg.level_widths else {"width": cfg.width}

        def scaled(eighths: range) -> list[dict]:
            options: list[dict] = []
            for o in map(option, eighths):
                if o != current and o not in options:
                    options.append(o)
            return options

        return {"narrower": scaled(range(7, 0, -1)), "shallower": shallower(cfg), "wider": scaled(range(9, 17))}

    @property
    def multiple(self) -> int:
        return 2 ** len(self.config.enc_blocks)

    def example_input(self, image_size: int) -> torch.Tensor:
        return torch.zeros(1, self.config.img_channels, image_size, image_size)

    def fixed_units(self, image_size: int) -> list[Unit]:
        """intro, each down-sampling, each up-sampling with the skip addition after it, and the
        ending with the global residual and crop -- at the (padded) shapes they see -- so that
        the table's sum of units leaves out no work of the network but the input's zero
        padding (a copy of the image, ~0.1 ms at 256x256)."""
        cfg, size = self.config, image_size + (-image_size) % self.multiple
        # The fixed parts depend only on width and levels: build the net without blocks.
        levels = len(cfg.enc_blocks)
        net = NAFNetUNet(cfg.model_copy(update={"enc_blocks": (0,) * levels, "middle_blocks": 0, "dec_blocks": (0,) * levels}))
        units = [Unit("intro", (1, cfg.img_channels, size, size), net.intro, kind="fixed", path="intro")]
        ch = cfg.channels()
        for i in range(len(cfg.enc_blocks)):
            c, s = ch[i], size // 2**i
            units.append(Unit("down", (1, c, s, s), getattr(net, f"down{i}"), kind="fixed", path=f"down{i}"))
            up = WithSkip(getattr(net, f"up{i}"), (1, c, s, s))
            units.append(Unit("up", (1, ch[i + 1], s // 2, s // 2), up, kind="fixed", path=f"up{i}"))
        out, s = size * cfg.scale, cfg.scale  # the residual image is the input upscaled (not timed: a copy)
        ending = WithResidual(net.ending, (1, cfg.img_channels, out, out), (image_size * s, image_size * s))
        units.append(Unit("ending", (1, cfg.width, size, size), ending, kind="fixed", path="ending"))
        return units
