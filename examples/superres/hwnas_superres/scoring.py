"""The x2 protocol of the super-resolution literature: how low-resolution inputs are made and scored.

Input
    LR = bicubic downscale of the HR image by the scale, with antialiasing, rounded to
    8 bits. We use torch's `interpolate(mode="bicubic", antialias=True)`: with
    antialiasing it is Pillow's resampling (Keys' cubic, a = -0.5, its support widened
    by the scale factor), which is also what MATLAB's `imresize` does -- the function
    the benchmark sets' LR images were made with. It runs on whole float batches, so
    training crops need no round trip through PIL images; the rounding to 8 bits then
    makes training inputs like the LR files of the benchmarks.

Score
    The output is clipped to [0, 1] and rounded to 8 bits (as a saved image would be),
    both images are converted to luminance Y by ITU-R BT.601 as MATLAB's `rgb2ycbcr`
    does (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, for R, G, B in 0-255: Y in
    16-235), `scale` pixels are cropped from every border (the upsampling cannot
    reconstruct them), and PSNR (peak 255) and SSIM (Wang et al. 2004: Gaussian window,
    sigma 1.5, K1 0.01, K2 0.03, data range 255) are computed on Y -- the convention of
    the SR tables (EDSR, RCAN, SwinIR).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def quantise(x: torch.Tensor | np.ndarray):
    """Clip to [0, 1] and round to the 8-bit grid (a value a saved 8-bit image would hold)."""
    if isinstance(x, torch.Tensor):
        return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0
    return np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """B x C x H x W (H, W multiples of `scale`) -> B x C x H/scale x W/scale, bicubic with antialiasing, 8-bit."""
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return quantise(lr)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """H x W x C cropped at the bottom/right to multiples of `scale` (so LR x scale = HR exactly)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Clip, scale by 255, round, uint8 (NaN -> 0: a diverged model scores low, not undefined)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.round(np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)


def luminance(rgb_u8: np.ndarray) -> np.ndarray:
    """BT.601 Y (16-235) of an H x W x 3 uint8 image, as float64 (MATLAB's rgb2ycbcr)."""
    rgb = rgb_u8.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def shave(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:-border, border:-border] if border else y


def psnr_y(hr_u8: np.ndarray, sr_u8: np.ndarray, border: int) -> float:
    """PSNR (dB, peak 255) on Y with `border` pixels cropped; inf for identical images."""
    diff = shave(luminance(hr_u8), border) - shave(luminance(sr_u8), border)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def ssim_y(hr_u8: np.ndarray, sr_u8: np.ndarray, border: int) -> float:
    """SSIM on Y with `border` pixels cropped (Gaussian window sigma 1.5, data range 255)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(shave(luminance(hr_u8), border), shave(luminance(sr_u8), border),
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0))
