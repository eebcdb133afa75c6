"""Scoring protocol: uint8 rounding, PSNR, SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwnas.searchspaces.metrics import psnr, ssim, to_uint8


def test_to_uint8_clips_and_rounds():
    x = np.array([-0.1, 0.0, 1 / 255, 0.2, 0.999, 1.2, np.nan], np.float32)
    np.testing.assert_array_equal(to_uint8(x), [0, 0, 1, 51, 255, 255, 0])
    assert to_uint8(x).dtype == np.uint8


def test_to_uint8_accepts_tensors_and_keeps_shape():
    t = torch.full((4, 5, 3), 0.5, requires_grad=True)
    out = to_uint8(t)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and int(out[0, 0, 0]) == 128


def test_psnr_known_value():
    clean = np.zeros((4, 4, 3), np.uint8)
    out = clean.copy()
    out[1, 2, 0] = 10  # MSE = 10^2 / 48
    assert psnr(clean, out) == pytest.approx(10 * math.log10(255**2 * 48 / 100))
    assert psnr(clean, out) == pytest.approx(44.94321598243498)
    assert psnr(out, clean) == psnr(clean, out)


def test_psnr_of_identical_images_is_inf():
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert psnr(img, img) == math.inf


def test_metrics_reject_wrong_inputs():
    img = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError):
        psnr(img, img.astype(np.float32))
    with pytest.raises(ValueError):
        ssim(img, img[:8])


def test_ssim_identical_and_degraded():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    noisy = to_uint8(img / 255 + rng.normal(0, 0.1, img.shape))
    assert ssim(img, img) == pytest.approx(1.0)
    assert 0.0 < ssim(img, noisy) < 0.99
    assert ssim(img, noisy) == pytest.approx(ssim(noisy, img))
