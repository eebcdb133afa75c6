"""Denoising scores with the published protocol (see the data sets README).

The output is clipped to [0, 1] and rounded to uint8 before scoring; PSNR and SSIM
are computed on RGB over the whole image, with no border crop.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Clip to [0, 1], scale by 255, round (half to even, as numpy's round), cast to uint8.

    Same shape as `x`. NaN becomes 0, so a diverged model scores very low instead of
    producing an undefined cast.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _check_pair(clean: np.ndarray, out: np.ndarray) -> None:
    if clean.dtype != np.uint8 or out.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {clean.dtype} and {out.dtype}; use to_uint8 first")
    if clean.shape != out.shape or clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"expected two H x W x 3 images of one shape, got {clean.shape} and {out.shape}")


def psnr(clean_u8: np.ndarray, out_u8: np.ndarray) -> float:
    """PSNR in dB of two H x W x 3 uint8 images: 10 log10(255^2 / MSE) over all pixels and channels.

    Identical images (MSE 0) return float('inf'); callers averaging over images should
    expect that only for a perfect output.
    """
    _check_pair(clean_u8, out_u8)
    mse = float(np.mean((clean_u8.astype(np.float64) - out_u8.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def ssim(clean_u8: np.ndarray, out_u8: np.ndarray) -> float:
    """SSIM of two H x W x 3 uint8 images, the mean over channels.

    skimage.metrics.structural_similarity with gaussian_weights=True, sigma=1.5 (an
    11 x 11 window), use_sample_covariance=False, data_range=255, channel_axis=-1:
    the convention of Wang et al. (2004) used by the published tables. Both sides must
    be at least 11 pixels.
    """
    from skimage.metrics import structural_similarity

    _check_pair(clean_u8, out_u8)
    return float(
        structural_similarity(
            clean_u8,
            out_u8,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
    )
