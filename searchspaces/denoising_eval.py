"""Denoising on whole image files: the published evaluation protocol and `hwnas denoise`.

Protocol (../shared/datasets/README.md; DnCNN, FFDNet, SwinIR, Restormer tables):

- clean x = uint8 / 255 in [0, 1]; noisy y = x + N(0, (sigma/255)^2) per pixel and
  channel, NOT clipped;
- the noise of image `name` comes from numpy default_rng(stable_seed("eval", seed,
  name)) -- the file name, not its path or position in the folder, so every method,
  folder order and process sees the same noisy image; one standard-normal field per
  image, scaled by each sigma;
- the output is clipped to [0, 1] and rounded to uint8; PSNR and SSIM (scikit-image,
  Gaussian window sigma 1.5) on RGB over the whole image, no border crop;
- sizes that are not multiples of the U-Net's 2^levels are padded inside the model
  (edge pixels repeated) and cropped back, never resized.

An output worse than its own noisy input is a network that diverged on that image: it
is logged as a warning, since one such image can move a data set's mean by 0.3 dB.
(Zero padding did this to BatchNorm candidates on whole CBSD68 and Kodak24 images until
the U-Net padded with edge pixels: benchmarks/results/padding.csv.)

A folder with `noisy/` and `clean/` subfolders of matching file names is evaluated as
real-noise pairs (SIDD-style): no noise is added and the rows say sigma "real".

`predict` maps a 1 x 3 x H x W float tensor to the denoised 1 x 3 x H x W tensor
(see `hwnas.deploy.inference`); it may be tiled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from hwnas.contracts.errors import HwnasError
from hwnas.runs.io import atomic_write_bytes
from hwnas.searchspaces.images import (
    IMAGE_SUFFIXES,
    add_gaussian_noise,
    is_paired,
    list_images,
    paired_images,
    read_rgb,
    stable_seed,
)
from hwnas.searchspaces.metrics import psnr, ssim, to_uint8

logger = logging.getLogger(__name__)

Predict = Callable[[torch.Tensor], torch.Tensor]
REAL = "real"  # the sigma label of real-noise pairs
SSIM_MIN_SIDE = 11  # the 11 x 11 Gaussian window of the SSIM convention


def parse_sigmas(value: float | str | Iterable[float | str]) -> tuple[float, ...]:
    """15, "15,25,50" or [15, 25] -> (15.0, ...); each finite and >= 0, else `HwnasError`."""
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, Iterable) else [value])
    try:
        sigmas = tuple(float(str(s).strip()) for s in items)
    except ValueError:
        raise HwnasError(f"--sigma {value!r} is not a list of numbers; write e.g. --sigma 15,25,50.") from None
    if not sigmas or not all(np.isfinite(s) and s >= 0 for s in sigmas):
        raise HwnasError(f"--sigma {value!r} must list noise levels >= 0 (0-255 units); write e.g. --sigma 15,25,50.")
    return sigmas


def noise_seed(seed: int, name: str) -> int:
    """The per-image noise seed (see the module docstring)."""
    return stable_seed("eval", seed, name)


def noisy_image(clean: np.ndarray, sigma: float, seed: int, name: str) -> np.ndarray:
    """clean (H x W x 3, [0, 1]) plus the image's seeded Gaussian noise at `sigma`; not clipped."""
    return add_gaussian_noise(clean, sigma, noise_seed(seed, name))


def run(predict: Predict, image: np.ndarray) -> np.ndarray:
    """Apply `predict` to one H x W x 3 float image; H x W x 3 float output (not yet clipped)."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    y = predict(x)
    if tuple(y.shape) != tuple(x.shape):
        raise HwnasError(f"the model returned shape {tuple(y.shape)} for input {tuple(x.shape)}; it is not a denoiser for this data.")
    return y[0].permute(1, 2, 0).numpy()


def evaluate_folder(
    predict: Predict,
    folder: str | Path,
    *,
    sigma: float | str | Sequence[float] = (15, 25, 50),
    seed: int = 0,
    save_images: str | Path | None = None,
) -> list[dict]:
    """One row per image and sigma: dataset, sigma (str, or "real"), seed, image, psnr, ssim.

    `save_images` writes clean | noisy | denoised side by side as
    `<save_images>/<dataset>/sigma<s>/<image>.png` (noisy clipped for display only).
    """
    folder = Path(folder)
    dataset = folder.resolve().name
    if is_paired(folder):
        items = [(name, noisy_path, clean_path) for name, noisy_path, clean_path in paired_images(folder)]
        conditions: tuple[float | str, ...] = (REAL,)
    else:
        items = [(path.name, None, path) for path in list_images(folder)]
        conditions = parse_sigmas(sigma)
    rows = []
    for name, noisy_path, clean_path in items:
        clean = _read_checked(clean_path)
        real = None if noisy_path is None else _read_pair(noisy_path, clean, name, folder)
        for condition in conditions:
            noisy = real if condition == REAL else noisy_image(clean, float(condition), seed, name)
            out = run(predict, noisy)
            clean_u8, noisy_u8, out_u8 = to_uint8(clean), to_uint8(noisy), to_uint8(out)
            label = sigma_label(condition)
            rows.append({"dataset": dataset, "sigma": label, "seed": seed, "image": name,
                         "psnr": psnr(clean_u8, out_u8), "ssim": ssim(clean_u8, out_u8)})
            warn_if_worse(rows[-1], psnr(clean_u8, noisy_u8))
            if save_images is not None:
                target = Path(save_images) / dataset / f"sigma{label}" / (Path(name).stem + ".png")
                write_image(target, np.concatenate([clean_u8, noisy_u8, out_u8], axis=1))
        logger.debug("evaluated %s/%s", dataset, name)
    return rows


def warn_if_worse(row: dict, input_psnr: float) -> None:
    """Warn when the denoised image scores below the noisy input it was given (see the module docstring)."""
    if np.isfinite(input_psnr) and row["psnr"] < input_psnr:  # sigma 0: nothing to be worse than
        logger.warning(
            "warning: the network made %s/%s worse than its noisy input (%.1f dB vs %.1f dB at sigma %s): it diverges "
            "on this image; look at it with --save-images.",
            row["dataset"], row["image"], row["psnr"], input_psnr, row["sigma"])


def sigma_label(condition: float | str) -> str:
    return condition if isinstance(condition, str) else f"{condition:g}"


def _read_checked(path: Path) -> np.ndarray:
    image = read_rgb(path)
    if min(image.shape[:2]) < SSIM_MIN_SIDE:
        raise HwnasError(
            f"image {path} is {image.shape[1]}x{image.shape[0]} pixels; SSIM needs at least "
            f"{SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} -- remove it from the folder."
        )
    return image


def _read_pair(path: Path, clean: np.ndarray, name: str, folder: Path) -> np.ndarray:
    noisy = read_rgb(path)
    if noisy.shape != clean.shape:
        raise HwnasError(
            f"noisy and clean {name} in {folder} differ in size ({noisy.shape[1]}x{noisy.shape[0]} vs "
            f"{clean.shape[1]}x{clean.shape[0]}); give each pair the same size."
        )
    return noisy


# -- single files ------------------------------------------------------------------

def check_output_path(path: str | Path) -> Path:
    """`HwnasError` unless the suffix names an image format we write (checked before any work)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise HwnasError(f"cannot write {path}: use one of the suffixes {', '.join(IMAGE_SUFFIXES)}.")
    if path.is_dir():
        raise HwnasError(f"{path} is a folder; give an output file name such as {path / 'denoised.png'}.")
    return path


def write_image(path: str | Path, image_u8: np.ndarray) -> None:
    """Encode an H x W x 3 uint8 image by the file suffix and write it atomically."""
    import imageio.v3 as iio  # scikit-image's own image I/O library

    path = check_output_path(path)
    data = iio.imwrite("<bytes>", image_u8, extension=path.suffix.lower())
    atomic_write_bytes(path, data)


def denoise_file(predict: Predict, in_path: str | Path, out_path: str | Path) -> dict:
    """Denoise one image file of any size into `out_path` (8-bit RGB, format by suffix).

    Grayscale, RGBA and 16-bit inputs are converted as `read_rgb` does (the output is
    8-bit RGB). An unreadable input or an unknown output suffix raises `HwnasError`
    before anything is written.
    """
    out_path = check_output_path(out_path)
    image = read_rgb(in_path)
    out = to_uint8(run(predict, image))
    write_image(out_path, out)
    return {"input": str(in_path), "output": str(out_path), "height": int(out.shape[0]), "width": int(out.shape[1])}
