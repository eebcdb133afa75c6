"""GaussianDenoising: pure batches, disjoint splits, paired data, validation protocol."""

from __future__ import annotations

import hashlib
import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import skimage.io
import torch
from torch import nn

from hwnas.contracts.errors import HwnasError
from hwnas.searchspaces.denoising import DenoisingConfig, GaussianDenoising
from hwnas.searchspaces.metrics import psnr, to_uint8

CROP = 16


def save(path, array):
    skimage.io.imsave(path, array, check_contrast=False)


def flat_images(folder, n, size=(24, 28)):
    """n images, image i a constant grey of value 20 * i + 10, so a crop tells its source."""
    folder.mkdir(exist_ok=True)
    for i in range(n):
        save(folder / f"img{i:02d}.png", np.full((*size, 3), 20 * i + 10, np.uint8))
    return folder


def noise_folder(tmp_path, n=6):
    folder = tmp_path / "noise"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        save(folder / f"n{i}.png", rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    return folder


def source_values(clean):
    """The grey level (0-255) of each crop in a batch of flat crops."""
    values = torch.round(clean * 255).reshape(len(clean), -1)
    assert (values == values[:, :1]).all()
    return {int(v) for v in values[:, 0]}


def test_batch_shapes_and_purity(tmp_path):
    task = GaussianDenoising(data=str(noise_folder(tmp_path)), crop=CROP, sigma=25)
    noisy, clean = task.batch("train", seed=1, epoch=2, step=3, batch_size=5)
    assert noisy.shape == clean.shape == (5, 3, CROP, CROP)
    assert noisy.dtype == clean.dtype == torch.float32
    again = task.batch("train", seed=1, epoch=2, step=3, batch_size=5)
    assert torch.equal(noisy, again[0]) and torch.equal(clean, again[1])
    twin = GaussianDenoising(data=str(tmp_path / "noise"), crop=CROP, sigma=25)
    assert torch.equal(noisy, twin.batch("train", seed=1, epoch=2, step=3, batch_size=5)[0])
    for other in ({"seed": 2, "epoch": 2, "step": 3}, {"seed": 1, "epoch": 3, "step": 3}, {"seed": 1, "epoch": 2, "step": 4}):
        assert not torch.equal(noisy, task.batch("train", batch_size=5, **other)[0])


def test_batch_is_identical_in_another_process(tmp_path):
    folder = noise_folder(tmp_path)
    code = (
        "import hashlib, sys; from hwnas.searchspaces.denoising import GaussianDenoising\n"
        f"t = GaussianDenoising(data={str(folder)!r}, crop={CROP}, sigma=(5, 50))\n"
        "x, y = t.batch('train', seed=4, epoch=0, step=9, batch_size=3)\n"
        "print(hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    x, y = GaussianDenoising(data=str(folder), crop=CROP, sigma=(5, 50)).batch(
        "train", seed=4, epoch=0, step=9, batch_size=3)
    assert out.stdout.strip() == hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()


def test_noise_is_not_clipped(tmp_path):
    task = GaussianDenoising(data=str(noise_folder(tmp_path)), crop=CROP, sigma=50)
    noisy, clean = task.batch("train", seed=0, epoch=0, step=0, batch_size=4)
    assert noisy.min() < 0 and noisy.max() > 1
    assert 0 <= clean.min() and clean.max() <= 1
    assert abs(float((noisy - clean).std()) - 50 / 255) < 0.02


def test_sigma_range_is_sampled_per_crop(tmp_path):
    task = GaussianDenoising(data=str(noise_folder(tmp_path)), crop=CROP, sigma=(0, 60))
    noisy, clean = task.batch("train", seed=0, epoch=0, step=0, batch_size=16)
    stds = (noisy - clean).flatten(1).std(dim=1) * 255
    assert 0 <= stds.min() < stds.max() <= 65 and stds.max() - stds.min() > 10


def test_train_and_arch_use_disjoint_images(tmp_path):
    task = GaussianDenoising(data=str(flat_images(tmp_path / "flat", 10)), crop=CROP)
    assert task.split_mode == "image"
    assert task.summary()["arch"] == ["img02.png", "img07.png"]  # every 5th, from index 2
    held = {20 * 2 + 10, 20 * 7 + 10}
    train_seen, arch_seen = set(), set()
    for step in range(20):
        train_seen |= source_values(task.batch("train", seed=0, epoch=0, step=step, batch_size=8)[1])
        arch_seen |= source_values(task.batch("arch", seed=0, epoch=0, step=step, batch_size=8)[1])
    assert arch_seen == held
    assert train_seen == {20 * i + 10 for i in range(10)} - held
    assert source_values(task._val_clean) <= held


def test_few_images_split_each_image_by_area(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    width = 100
    img = np.zeros((20, width, 3), np.uint8)
    img[:, :, 0] = np.arange(width, dtype=np.uint8)  # red encodes the column
    save(folder / "wide.png", img)
    task = GaussianDenoising(data=str(folder), crop=CROP, val_fraction=0.2)
    assert task.split_mode == "area"
    cut = width - 20  # the right round(100 * 0.2) = 20 columns are held out
    for step in range(10):
        train = task.batch("train", seed=0, epoch=0, step=step, batch_size=8)[1]
        arch = task.batch("arch", seed=0, epoch=0, step=step, batch_size=8)[1]
        assert torch.round(train[:, 0] * 255).max() < cut
        assert torch.round(arch[:, 0] * 255).min() >= cut
    assert torch.round(task._val_clean[:, 0] * 255).min() >= cut


def test_paired_folder_uses_real_pairs_at_same_positions(tmp_path):
    rng = np.random.default_rng(1)
    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
    for i in range(4):
        clean = rng.integers(0, 200, (24, 30, 3), dtype=np.uint8)
        save(tmp_path / "clean" / f"p{i}.png", clean)
        save(tmp_path / "noisy" / f"p{i}.png", clean + 40)  # the "real noise" is +40 grey levels
    task = GaussianDenoising(data=str(tmp_path), crop=CROP, sigma=50)
    assert task.paired
    for split in ("train", "arch"):
        noisy, clean = task.batch(split, seed=0, epoch=0, step=0, batch_size=6)
        torch.testing.assert_close(noisy - clean, torch.full_like(clean, 40 / 255), atol=1e-6, rtol=0)


def test_small_images_are_skipped_or_refused(tmp_path, caplog):
    folder = flat_images(tmp_path / "mixed", 4)
    save(folder / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        task = GaussianDenoising(data=str(folder), crop=CROP)
    assert "tiny.png" in caplog.text
    assert "tiny.png" not in task.summary()["train"] + task.summary()["arch"]

    only_tiny = tmp_path / "tiny"
    only_tiny.mkdir()
    save(only_tiny / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(HwnasError, match=r"tiny\.png.*16-pixel crop"):
        GaussianDenoising(data=str(only_tiny), crop=CROP)


def test_invalid_options_raise_one_line(tmp_path):
    with pytest.raises(HwnasError, match="crop"):
        GaussianDenoising(crop=4)
    with pytest.raises(HwnasError, match="sigma"):
        GaussianDenoising(sigma=(50, 10))
    with pytest.raises(HwnasError, match="does not exist"):
        GaussianDenoising(data=str(tmp_path / "missing"))
    assert DenoisingConfig(data=tmp_path).data == str(tmp_path)


def test_loss_is_mse(tmp_path):
    task = GaussianDenoising(data=str(noise_folder(tmp_path)), crop=CROP)
    assert float(task.loss(torch.zeros(2, 3), torch.full((2, 3), 2.0))) == 4.0


class Flagged(nn.Module):
    """Identity with a submodule kept in eval mode, to check flags are restored one by one."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Identity()
        self.seen_training = None

    def forward(self, x):
        self.seen_training = self.training
        assert not torch.is_grad_enabled()
        return self.inner(x)


def test_validate_scores_with_protocol_and_restores_flags(tmp_path):
    task = GaussianDenoising(data=str(noise_folder(tmp_path)), crop=CROP, sigma=25, val_crops=5)
    model = Flagged()
    model.train()
    model.inner.eval()
    scores = task.validate(model)
    assert model.seen_training is False
    assert model.training and not model.inner.training
    expected = np.mean([
        psnr(to_uint8(c.permute(1, 2, 0)), to_uint8(n.permute(1, 2, 0)))
        for n, c in zip(task._val_noisy, task._val_clean)
    ])
    assert scores["psnr"] == pytest.approx(expected)
    assert 19.0 < scores["psnr"] < 22.0  # sigma 25 on [0, 255]: about 20 dB before clipping helps
    assert 0.0 < scores["ssim"] < 1.0
    assert GaussianDenoising(data=str(tmp_path / "noise"), crop=CROP, sigma=25, val_crops=5).validate(model) == scores


def test_validate_perfect_output_is_inf(tmp_path):
    task = GaussianDenoising(data=str(noise_folder(tmp_path)), crop=CROP, val_crops=3)

    class Oracle(nn.Module):
        def forward(self, x):
            return task._val_clean.clone()

    scores = task.validate(Oracle())
    assert scores["psnr"] == math.inf and scores["ssim"] == pytest.approx(1.0)


def test_embedded_default_data():
    task = GaussianDenoising(crop=32, val_crops=2)
    summary = task.summary()
    assert summary["data"] == "scikit-image samples" and summary["split_by"] == "image"
    assert not set(summary["train"]) & set(summary["arch"])
    noisy, clean = task.batch("arch", seed=0, epoch=0, step=0, batch_size=2)
    assert noisy.shape == (2, 3, 32, 32)
