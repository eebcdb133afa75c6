"""x2 single-image super-resolution as an hwnas `Task` (`sr2`).

The task declares `scale = 2`; the network that upsamples is the space's (nafnet-unet
builds its x2 ending when the engine sets its `scale` option from this task), so the
same search space, latency tables and export serve both tasks.

Data
    `data` None uses the colour photographs inside scikit-image (as the denoising task
    does); otherwise a folder of high-resolution (HR) images. Images are decoded once
    and held in memory, cropped to multiples of 2 (`modcrop`).

Crops
    `crop` is the side of the network's input (the low-resolution crop, as "patch
    size" in EDSR); its target is the HR crop of 2 x crop. Default: the space preset's
    training crop (`space.train_crop`: tiny 32, paper 128), else 48 (EDSR's).

Held-out split
    Of the images sorted by name, every 5th (from the third) is held out for the
    architecture step and validation; with fewer than three images, each image's
    right fifth (at least one HR crop wide) is held out instead.

Input and score
    LR = bicubic downscale with antialiasing, 8-bit; PSNR and SSIM on the BT.601
    luminance with a 2-pixel border crop (see `scoring`). Loss: L1 (EDSR's choice for
    SR) or MSE (`loss`).

Determinism
    `batch` is a pure function of (split, seed, epoch, step, batch_size): every random
    choice comes from one numpy generator seeded by a hash of those values; the
    validation crops depend only on the held-out images.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from hwnas import HwnasError
from hwnas.contracts.task import SPLITS, Task
from hwnas_superres.images import check_output, list_images, read_rgb, sample_images, write_rgb
from hwnas_superres.scoring import downscale, modcrop, psnr_y, quantise, ssim_y, to_uint8

logger = logging.getLogger(__name__)

SCALE = 2
DEFAULT_CROP = 48  # LR pixels, as EDSR trains x2
HOLD_OUT_EVERY = 5
VAL_CHUNK = 16  # validation crops per forward pass: bounds memory


class SuperResolutionOptions(BaseModel):
    """Options of `SuperResolution2x` (each description is what `hwnas tasks` shows)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str | None = Field(None, description="Folder of high-resolution images; default: the sample photographs "
                                               "inside scikit-image.")
    crop: int | None = Field(None, ge=8, description="Side of the low-resolution training crop (the network input; "
                                                     "its target is twice that); default: the space preset's, else 48.")
    loss: Literal["l1", "mse"] = Field("l1", description="Training loss: l1 (EDSR's choice for SR) or mse.")
    val_crops: int = Field(8, ge=1, description="Number of fixed validation crops.")

    @field_validator("data", mode="before")
    @classmethod
    def _absolute(cls, value):
        """An absolute path, so a run resumed from another folder reads the same images."""
        return str(Path(value).expanduser().resolve()) if isinstance(value, (str, os.PathLike)) else value


class SuperResolution2x(Task):
    """x2 super-resolution: bicubic-downscaled input, L1 loss, PSNR/SSIM on Y with a 2-pixel border crop."""

    name = "sr2"
    Options = SuperResolutionOptions
    shorthands = ("data", "crop")
    scale = SCALE
    primary_metric = "psnr"

    def __init__(self, options: SuperResolutionOptions | None = None, space=None):
        super().__init__(options, space)
        opts = self.options
        preset_crop = space.train_crop if space is not None else None
        self.crop = opts.crop if opts.crop is not None else preset_crop or DEFAULT_CROP
        self.source = opts.data or "scikit-image samples"
        images = _load(opts.data)
        for name, image in images:
            if min(image.shape[1:]) < SCALE * self.crop:
                logger.warning("skipping image %s: %dx%d pixels is smaller than the %d-pixel HR crop", name,
                               image.shape[2], image.shape[1], SCALE * self.crop)
        self._splits = _split([img for img in images if min(img[1].shape[1:]) >= SCALE * self.crop], SCALE * self.crop)
        self._val_lr, self._val_hr = self._validation_set()
        logger.info("super-resolution data %s: %d train / %d held-out regions, %d validation crops of %d px (x%d)",
                    self.source, len(self._splits["train"]), len(self._splits["arch"]), opts.val_crops, self.crop, SCALE)

    # -- batches -------------------------------------------------------------------------

    def batch(self, split: str, *, seed: int, epoch: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR): B x 3 x crop x crop and B x 3 x 2crop x 2crop; a pure function of the arguments.

        Each sample picks a region, a position and (on "train") a rot90 and a flip, in
        that order, from one generator seeded by (seed, split, epoch, step).
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        rng = np.random.default_rng(stable_seed(seed, split, epoch, step))
        regions = self._splits[split]
        crops = []
        for _ in range(batch_size):
            hr = _random_crop(regions[int(rng.integers(len(regions)))][1], SCALE * self.crop, rng)
            if split == "train":
                hr = torch.rot90(hr, int(rng.integers(4)), dims=(1, 2))
                hr = torch.flip(hr, dims=(2,)) if rng.integers(2) else hr
            crops.append(hr)
        hr = torch.stack(crops).contiguous()
        return downscale(hr, SCALE), hr

    def _validation_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        regions = self._splits["arch"]
        crops = []
        for j in range(self.options.val_crops):
            name, image = regions[j % len(regions)]
            crops.append(_random_crop(image, SCALE * self.crop, np.random.default_rng(stable_seed("val", name, j))))
        hr = torch.stack(crops).contiguous()
        return downscale(hr, SCALE), hr

    # -- loss and score --------------------------------------------------------------------

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(output, target) if self.options.loss == "l1" else F.mse_loss(output, target)

    def validate(self, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, float]:
        """{"psnr", "ssim"}: means over the fixed validation crops (see `scoring`); training flags restored."""
        flags = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                output = torch.cat([model(x.to(device)).float().cpu() for x in torch.split(self._val_lr, VAL_CHUNK)])
        finally:
            for module, training in flags:
                module.training = training
        if output.shape != self._val_hr.shape:
            raise ValueError(f"model output shape {tuple(output.shape)} is not the target's {tuple(self._val_hr.shape)}")
        pairs = [(to_uint8(hr.permute(1, 2, 0)), to_uint8(sr.permute(1, 2, 0))) for hr, sr in zip(self._val_hr, output)]
        return {"psnr": float(np.mean([psnr_y(hr, sr, SCALE) for hr, sr in pairs])),
                "ssim": float(np.mean([ssim_y(hr, sr, SCALE) for hr, sr in pairs]))}

    @classmethod
    def calibration_options(cls, options: dict, folder: str | None, side: int) -> dict:
        """The training options with `folder` as the data (None: the sample photographs) and `side`-pixel crops."""
        return {**options, "data": folder, "crop": side}

    # -- whole files (hwnas eval, hwnas infer) -----------------------------------------------

    def evaluate_folder(self, predict, folder, *, save_images=None) -> list[dict]:
        """One row per HR image of `folder`: dataset, scale, image, psnr, ssim (the protocol of `scoring`).

        `save_images` writes bicubic | output | HR side by side as `<save_images>/<dataset>/x2/<image>.png`.
        """
        folder = Path(folder)
        dataset, rows = folder.resolve().name, []
        for path in list_images(folder):
            hr = modcrop(read_rgb(path), SCALE)
            if min(hr.shape[:2]) < SCALE * 8:
                raise HwnasError(f"image {path} is {hr.shape[1]}x{hr.shape[0]} pixels; x{SCALE} scoring needs at least "
                                 f"{SCALE * 8} on each side -- remove it from the folder.")
            lr = downscale(_chw(hr)[None], SCALE)
            sr = _run(predict, lr)
            hr_u8, sr_u8 = to_uint8(hr), to_uint8(sr[0].permute(1, 2, 0))
            rows.append({"dataset": dataset, "scale": f"x{SCALE}", "image": path.name,
                         "psnr": psnr_y(hr_u8, sr_u8, SCALE), "ssim": ssim_y(hr_u8, sr_u8, SCALE)})
            if save_images is not None:
                bicubic = F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False)
                side = np.concatenate([to_uint8(bicubic[0].permute(1, 2, 0)), sr_u8, hr_u8], axis=1)
                write_rgb(Path(save_images) / dataset / f"x{SCALE}" / (path.stem + ".png"), side)
        return rows

    def infer_file(self, predict, in_path, out_path) -> dict:
        """Upscale one image file x2 into `out_path` (8-bit RGB, format by suffix)."""
        out_path = check_output(out_path)
        sr = _run(predict, quantise(_chw(read_rgb(in_path))[None]))
        image = to_uint8(sr[0].permute(1, 2, 0))
        write_rgb(out_path, image)
        return {"input": str(in_path), "output": str(out_path), "height": int(image.shape[0]), "width": int(image.shape[1])}


# -- helpers ---------------------------------------------------------------------------------

def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' text, equal in every process (Python's hash() of a str is not)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _run(predict, lr: torch.Tensor) -> torch.Tensor:
    sr = predict(lr)
    expected = (lr.shape[0], lr.shape[1], lr.shape[2] * SCALE, lr.shape[3] * SCALE)
    if tuple(sr.shape) != expected:
        raise HwnasError(f"the model returned {tuple(sr.shape)} for input {tuple(lr.shape)}; it is not a x{SCALE} network.")
    return sr


def _load(data: str | None) -> list[tuple[str, torch.Tensor]]:
    """(name, 3 x H x W HR image, H and W multiples of the scale), sorted by name."""
    named = sample_images() if data is None else [(p.name, read_rgb(p)) for p in list_images(data)]
    return [(name, _chw(modcrop(image, SCALE))) for name, image in named]


def _split(images: list[tuple[str, torch.Tensor]], hr_crop: int) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """Disjoint "train" and "arch" regions (module docstring)."""
    if not images:
        raise HwnasError(f"no image is at least {hr_crop}x{hr_crop} pixels (twice the crop); use a smaller --crop or "
                         "larger images.")
    held = {i for i in range(len(images)) if i % HOLD_OUT_EVERY == 2}
    if held:
        return {"train": [im for i, im in enumerate(images) if i not in held],
                "arch": [im for i, im in enumerate(images) if i in held]}
    train, arch = [], []
    for name, image in images:
        width = image.shape[2]
        cut = (width - max(hr_crop, width // HOLD_OUT_EVERY)) // SCALE * SCALE
        if cut >= hr_crop:
            train.append((name, image[:, :, :cut]))
            arch.append((name, image[:, :, cut:]))
    if not train:
        raise HwnasError(f"the {len(images)} image(s) are too narrow to hold out a {hr_crop}-pixel part beside a training "
                         "one; use a smaller --crop or add images.")
    return {"train": train, "arch": arch}


def _random_crop(image: torch.Tensor, side: int, rng: np.random.Generator) -> torch.Tensor:
    """A side x side crop at a position (top, then left; multiples of the scale) drawn from `rng`."""
    _, h, w = image.shape
    top = int(rng.integers((h - side) // SCALE + 1)) * SCALE
    left = int(rng.integers((w - side) // SCALE + 1)) * SCALE
    return image[:, top:top + side, left:left + side]
