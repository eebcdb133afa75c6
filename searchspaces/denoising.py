"""Colour image denoising as an hwnas `Task` (`denoising`): random crops, Gaussian (or real) noise, MSE, PSNR.

Registered in the entry-point group ``hwnas.tasks``; the default task of `nafnet-unet`.
Options (`DenoisingOptions`, given as `-t KEY=VALUE` or the shorthands `--data`,
`--crop`, `--sigma`): see `hwnas tasks`.

Data
    `data=None` uses the colour photographs inside scikit-image (a quick start, no
    download); otherwise a folder of images, or a folder with `noisy/` and `clean/`
    subfolders of matching file names (real-noise pairs, e.g. SIDD), trained on as
    given. Images are decoded once and held in memory as float32 3 x H x W tensors
    (about 12 bytes per pixel: CBSD432 takes ~0.8 GB).

Held-out split
    Weights train on "train"; architecture logits and `validate` use "arch", which
    never shares pixels with "train":

    - by image: of the images sorted by name, every k-th one (k = round(1 /
      val_fraction), starting at index k // 2) is held out -- with the default 0.2,
      images 2, 7, 12, ...;
    - by area, when that holds out nothing (fewer than k // 2 + 1 images, e.g. one or
      two): each image's left part trains and its right part, max(crop,
      round(width * val_fraction)) columns wide, is held out.

    Images smaller than the crop (or, in the by-area split, too narrow to give both
    parts a crop) are skipped with a warning; if none remain, `HwnasError`.

Determinism
    `batch` is a pure function of (split, seed, epoch, step, batch_size): every random
    choice comes from numpy's default_rng(stable_seed(seed, split, epoch, step)), so a
    resumed run or another rank gets bitwise identical tensors. The validation set is
    `val_crops` fixed crops of the held-out data: crop j comes from held-out region
    j mod n, at a position from stable_seed("val", name, j) and with noise from
    default_rng(stable_seed(name, j)) -- independent of the run seed, so runs compare.
    With a sigma range, each training crop draws sigma uniformly from it, and each
    validation crop draws a fixed one (from its position rng).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import nn

from hwnas.contracts.errors import HwnasError, ImagesTooSmall
from hwnas.searchspaces.images import (
    add_gaussian_noise,
    embedded_images,
    is_paired,
    list_images,
    paired_images,
    read_rgb,
    stable_seed,
)
from hwnas.searchspaces.metrics import psnr, ssim, to_uint8
from hwnas.contracts.task import SPLITS, Task

logger = logging.getLogger(__name__)

VAL_CHUNK = 16  # validation crops per forward pass: bounds memory at large crops


DEFAULT_CROP = 64  # when neither the options nor the space's preset name one


class DenoisingOptions(BaseModel):
    """Options of `GaussianDenoising` (each field's description is what `hwnas tasks` shows)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str | None = Field(None, description="Image folder, or one with noisy/ and clean/ subfolders (real-noise "
                                               "pairs); default: the sample photographs inside scikit-image.")
    crop: int | None = Field(None, ge=16, description="Side of the square training and validation crops in pixels; "
                                                      f"default: the space preset's (tiny 32, paper 128), else {DEFAULT_CROP}.")
    sigma: float | tuple[float, float] = Field(25.0, description="Gaussian noise level in 0-255 units, or a range "
                                                                 "LOW,HIGH drawn per crop (blind denoising); ignored for "
                                                                 "real-noise pairs.")
    val_crops: int = Field(8, ge=1, description="Number of fixed validation crops.")
    val_fraction: float = Field(0.2, gt=0.0, le=0.5, description="Share of the images (or of each image's width) "
                                                                 "held out for the architecture step and validation.")

    @field_validator("data", mode="before")
    @classmethod
    def _absolute(cls, value):
        """An absolute path, so a run resumed from another folder reads the same images."""
        if isinstance(value, (str, os.PathLike)):
            return str(Path(value).expanduser().resolve())
        return value

    @field_validator("sigma")
    @classmethod
    def _check_sigma(cls, value):
        values = value if isinstance(value, tuple) else (value,)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError("sigma must be finite and >= 0")
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError("a sigma range must be (low, high) with low <= high")
        return value


DenoisingConfig = DenoisingOptions  # its name before tasks were plugins


@dataclass(frozen=True)
class _Region:
    """A crop source: one image, or the left or right part of one."""

    name: str
    clean: torch.Tensor  # 3 x H x W float32 in [0, 1]
    noisy: torch.Tensor | None  # same shape, real noise (paired data); None = add Gaussian noise


class GaussianDenoising(Task):
    """Denoise colour crops; loss MSE, primary metric PSNR (dB) on fixed held-out crops."""

    name = "denoising"
    Options = DenoisingOptions
    shorthands = ("data", "crop", "sigma")
    scale = 1
    primary_metric = "psnr"

    def __init__(self, config: DenoisingOptions | None = None, space=None, **options):
        """Pass `DenoisingOptions` (and the space, for its preset's crop), or the options as keywords
        (invalid ones raise `HwnasError`)."""
        if config is None:
            config = make_config(**options)
        elif options:
            raise TypeError("pass either DenoisingOptions or keyword options, not both")
        super().__init__(config, space)
        self.config = config
        preset_crop = space.train_crop if space is not None else None
        self.crop = config.crop if config.crop is not None else preset_crop or DEFAULT_CROP
        images, self.source = _load_images(config.data)
        self.paired = any(noisy is not None for _, noisy, _ in images)
        images = _usable(images, self.crop)
        self._splits, self.split_mode = _split(images, config.val_fraction, self.crop)
        self._val_noisy, self._val_clean = self._validation_set()
        logger.info(
            "denoising data %s: %d train / %d held-out regions (split by %s), %d validation crops of %d px",
            self.source, len(self._splits["train"]), len(self._splits["arch"]), self.split_mode,
            config.val_crops, self.crop,
        )

    def summary(self) -> dict:
        """Plain facts about the data, for run configs and reports."""
        return {
            "data": self.source,
            "paired": self.paired,
            "split_by": self.split_mode,
            "train": [r.name for r in self._splits["train"]],
            "arch": [r.name for r in self._splits["arch"]],
            "crop": self.crop,
            "sigma": None if self.paired else self.config.sigma,
            "val_crops": self.config.val_crops,
        }

    # -- batches -----------------------------------------------------------------

    def batch(self, split: str, *, seed: int, epoch: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(noisy, clean), each B x 3 x crop x crop float32; a pure function of the arguments.

        Each sample picks a region, a crop position, on "train" a random rot90 and
        flip, a sigma and a noise seed, in that order, from one rng seeded by
        stable_seed(seed, split, epoch, step). Noisy values are not clipped.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        regions = self._splits[split]
        rng = np.random.default_rng(stable_seed(seed, split, epoch, step))
        noisy_list, clean_list = [], []
        for _ in range(batch_size):
            region = regions[int(rng.integers(len(regions)))]
            clean, noisy = _random_crop(region, self.crop, rng)
            if split == "train":
                turns, flip = int(rng.integers(4)), bool(rng.integers(2))
                clean = _augment(clean, turns, flip)
                noisy = None if noisy is None else _augment(noisy, turns, flip)
            sigma = self._draw_sigma(rng)
            noise_seed = int(rng.integers(2**63))
            if noisy is None:
                noisy = add_gaussian_noise(clean, sigma, noise_seed)
            noisy_list.append(noisy)
            clean_list.append(clean)
        return torch.stack(noisy_list).contiguous(), torch.stack(clean_list).contiguous()

    def _draw_sigma(self, rng: np.random.Generator) -> float:
        sigma = self.config.sigma
        if isinstance(sigma, tuple):
            return float(rng.uniform(sigma[0], sigma[1]))
        return float(sigma)

    def _validation_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        regions = self._splits["arch"]
        noisy_list, clean_list = [], []
        for j in range(self.config.val_crops):
            region = regions[j % len(regions)]
            rng = np.random.default_rng(stable_seed("val", region.name, j))
            clean, noisy = _random_crop(region, self.crop, rng)
            sigma = self._draw_sigma(rng)
            if noisy is None:
                noisy = add_gaussian_noise(clean, sigma, stable_seed(region.name, j))
            noisy_list.append(noisy)
            clean_list.append(clean)
        return torch.stack(noisy_list).contiguous(), torch.stack(clean_list).contiguous()

    # -- loss and score ----------------------------------------------------------

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error (the L2 loss)."""
        return F.mse_loss(output, target)

    def validate(self, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, float]:
        """{"psnr": mean dB, "ssim": mean} over the fixed validation crops.

        `model` must already be on `device`; it runs in eval mode under no_grad, and
        every submodule's training flag is restored afterwards. Outputs are clipped to
        [0, 1] and rounded to uint8 before scoring (see `metrics`). A crop scored
        perfectly gives PSNR inf, and so does the mean.
        """
        flags = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                outputs = [
                    model(chunk.to(device)).float().cpu()
                    for chunk in torch.split(self._val_noisy, VAL_CHUNK)
                ]
        finally:
            for module, training in flags:
                module.training = training
        output = torch.cat(outputs)
        if output.shape != self._val_clean.shape:
            raise ValueError(f"model output shape {tuple(output.shape)} differs from target {tuple(self._val_clean.shape)}")
        if not torch.isfinite(output).all():
            logger.warning("the model output holds NaN or inf values; they score as black or clipped pixels")
        psnrs, ssims = [], []
        for out, clean in zip(output, self._val_clean):
            out_u8 = to_uint8(out.permute(1, 2, 0))
            clean_u8 = to_uint8(clean.permute(1, 2, 0))
            psnrs.append(psnr(clean_u8, out_u8))
            ssims.append(ssim(clean_u8, out_u8))
        return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}

    @classmethod
    def calibration_options(cls, options: dict, folder: str | None, side: int) -> dict:
        """The training options with `folder` as the data (None: the sample photographs) and `side`-pixel crops."""
        return {**options, "data": folder, "crop": side}

    # -- whole files (hwnas eval / hwnas denoise); see denoising_eval ----------------

    def evaluate_folder(self, predict, folder, *, sigma=(15, 25, 50), seed: int = 0, save_images=None) -> list[dict]:
        """The published protocol on a folder of images (or noisy/ + clean/ pairs); see `denoising_eval`."""
        from hwnas.searchspaces.denoising_eval import evaluate_folder

        return evaluate_folder(predict, folder, sigma=sigma, seed=seed, save_images=save_images)

    def infer_file(self, predict, in_path, out_path) -> dict:
        """Denoise one image file of any size; see `denoising_eval.denoise_file`."""
        from hwnas.searchspaces.denoising_eval import denoise_file

        return denoise_file(predict, in_path, out_path)


def make_config(**options) -> DenoisingOptions:
    """Validated `DenoisingOptions`; invalid options raise a one-line `HwnasError`."""
    try:
        return DenoisingOptions(**options)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "options"
        raise HwnasError(f"invalid denoising option {field}: {first['msg']}; check the task options.") from None


# -- loading and splitting -------------------------------------------------------

_Image = tuple[str, "torch.Tensor | None", torch.Tensor]  # (name, noisy or None, clean), 3 x H x W


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _load_images(data: str | None) -> tuple[list[_Image], str]:
    """Decoded images and a description of where they came from."""
    if data is None:
        return [(name, None, _chw(img)) for name, img in embedded_images()], "scikit-image samples"
    folder = Path(data).expanduser()
    if is_paired(folder):
        images = []
        for name, noisy_path, clean_path in paired_images(folder):
            noisy, clean = _chw(read_rgb(noisy_path)), _chw(read_rgb(clean_path))
            if noisy.shape != clean.shape:
                raise HwnasError(
                    f"noisy and clean {name} in {folder} differ in size ({tuple(noisy.shape[1:])} vs "
                    f"{tuple(clean.shape[1:])}); give each pair the same size."
                )
            images.append((name, noisy, clean))
        return images, str(folder)
    return [(path.name, None, _chw(read_rgb(path))) for path in list_images(folder)], str(folder)


def _usable(images: list[_Image], crop: int) -> list[_Image]:
    """Images at least crop x crop; smaller ones are skipped with a warning."""
    usable = [img for img in images if min(img[2].shape[1:]) >= crop]
    small = [img for img in images if min(img[2].shape[1:]) < crop]
    if not usable:
        name, _, clean = small[0]
        raise ImagesTooSmall(f"image {name} is {clean.shape[2]}x{clean.shape[1]} pixels, smaller than the {crop}-pixel "
                             f"crop (as are all {len(small)} images)", "use a smaller crop or larger images")
    for name, _, clean in small:
        logger.warning("skipping image %s: %dx%d pixels is smaller than the %d-pixel crop",
                       name, clean.shape[2], clean.shape[1], crop)
    return usable


def _split(images: list[_Image], val_fraction: float, crop: int) -> tuple[dict[str, list[_Region]], str]:
    """Disjoint "train" and "arch" regions (see the module docstring) and the split kind."""
    k = max(2, round(1.0 / val_fraction))
    held = {i for i in range(len(images)) if i % k == k // 2}
    if held:
        regions = [_Region(name, clean, noisy) for name, noisy, clean in images]
        return {
            "train": [r for i, r in enumerate(regions) if i not in held],
            "arch": [r for i, r in enumerate(regions) if i in held],
        }, "image"
    train, arch = [], []
    for name, noisy, clean in images:
        width = clean.shape[2]
        held_width = max(crop, round(width * val_fraction))
        cut = width - held_width
        if cut < crop:
            logger.warning("skipping image %s: %d pixels wide is too narrow to hold out a %d-pixel crop beside a "
                           "training one", name, width, crop)
            continue
        train.append(_Region(name, clean[:, :, :cut], None if noisy is None else noisy[:, :, :cut]))
        arch.append(_Region(name, clean[:, :, cut:], None if noisy is None else noisy[:, :, cut:]))
    if not train:
        raise HwnasError(
            f"the {len(images)} image(s) are too narrow to split into training and held-out parts of "
            f"{crop} pixels each; use a smaller crop or add images."
        )
    return {"train": train, "arch": arch}, "area"


# -- crops -------------------------------------------------------------------------

def _random_crop(region: _Region, crop: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(clean, noisy or None) crops at one position drawn from `rng` (top, then left)."""
    _, height, width = region.clean.shape
    top = int(rng.integers(height - crop + 1))
    left = int(rng.integers(width - crop + 1))
    window = (slice(None), slice(top, top + crop), slice(left, left + crop))
    noisy = None if region.noisy is None else region.noisy[window]
    return region.clean[window], noisy


def _augment(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Rotate by turns x 90 degrees, then mirror left-right if `flip` (the 8 dihedral views)."""
    x = torch.rot90(x, turns, dims=(1, 2))
    return torch.flip(x, dims=(2,)) if flip else x
