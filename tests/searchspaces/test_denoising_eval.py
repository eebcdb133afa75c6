"""The evaluation protocol on folders, real-noise pairs, side-by-side images, and single-file denoising."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import skimage.io
import tifffile
import torch

from hwnas.contracts.errors import HwnasError
from hwnas.searchspaces.denoising import GaussianDenoising
from hwnas.searchspaces.denoising_eval import denoise_file, evaluate_folder, noise_seed, parse_sigmas
from hwnas.searchspaces.images import add_gaussian_noise, read_rgb
from hwnas.searchspaces.metrics import psnr, ssim, to_uint8
from hwnas.contracts.task import Task


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(path, array, check_contrast=False)
    return path


def photo(seed, h=24, w=30):
    """A smooth random colour image (so noise matters)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(3 * xx + seed), np.cos(2 * yy - seed), xx * yy], axis=2)
    return np.clip((base * 0.4 + 0.5) * 255 + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)


def folder(tmp_path, name="set", n=3):
    for i in range(n):
        save(tmp_path / name / f"im{i}.png", photo(i))
    return tmp_path / name


def identity(x):
    return x.clone()


def test_rows_follow_the_protocol(tmp_path):
    data = folder(tmp_path)
    rows = evaluate_folder(identity, data, sigma="15,50", seed=3)
    assert [(r["image"], r["sigma"]) for r in rows] == [(f"im{i}.png", s) for i in range(3) for s in ("15", "50")]
    assert all(r["dataset"] == "set" and r["seed"] == 3 for r in rows)
    # identity model: the score is that of the noisy image, with noise seeded by (seed, file name)
    clean = read_rgb(data / "im1.png")
    noisy = add_gaussian_noise(clean, 50.0, noise_seed(3, "im1.png"))
    row = rows[3]
    assert row["psnr"] == pytest.approx(psnr(to_uint8(clean), to_uint8(noisy)))
    assert row["ssim"] == pytest.approx(ssim(to_uint8(clean), to_uint8(noisy)))


def test_noise_is_stable_per_image_name_and_not_clipped(tmp_path):
    a = folder(tmp_path, "a", n=3)
    b = tmp_path / "b"
    b.mkdir()
    shutil.copy(a / "im2.png", b / "im2.png")  # the same file alone in another folder
    seen = []

    def spy(x):
        seen.append(x.clone())
        return x

    evaluate_folder(spy, a, sigma=25, seed=0)
    evaluate_folder(spy, b, sigma=25, seed=0)
    assert torch.equal(seen[2], seen[3])  # im2.png gets the same noise wherever it is
    assert not torch.equal(seen[0], seen[1])
    assert seen[0].min() < 0 or seen[0].max() > 1  # no clipping of the noisy input
    evaluate_folder(spy, b, sigma=25, seed=1)
    assert not torch.equal(seen[3], seen[4])  # another seed, other noise
    assert noise_seed(0, "x.png") == noise_seed(0, "x.png") != noise_seed(0, "y.png")


def test_output_is_clipped_and_rounded_before_scoring(tmp_path):
    data = folder(tmp_path, n=1)
    clean = read_rgb(data / "im0.png")
    wild = torch.from_numpy(clean.transpose(2, 0, 1))[None] * 1.7 - 0.35  # far outside [0, 1]
    rows = evaluate_folder(lambda x: wild.clone(), data, sigma=25)
    expected = to_uint8(wild[0].permute(1, 2, 0))
    assert rows[0]["psnr"] == pytest.approx(psnr(to_uint8(clean), expected))


def test_perfect_denoiser_scores_inf(tmp_path):
    data = folder(tmp_path, n=1)
    clean = torch.from_numpy(read_rgb(data / "im0.png").transpose(2, 0, 1))[None]
    rows = evaluate_folder(lambda x: clean.clone(), data, sigma=50)
    assert rows[0]["psnr"] == float("inf") and rows[0]["ssim"] == pytest.approx(1.0)


def test_paired_folder_is_real_noise(tmp_path):
    pairs = tmp_path / "sidd"
    for i in range(2):
        clean = photo(i)
        save(pairs / "clean" / f"p{i}.png", clean)
        save(pairs / "noisy" / f"p{i}.png", np.clip(clean.astype(int) + 20 * (i + 1), 0, 255).astype(np.uint8))
    rows = evaluate_folder(identity, pairs, sigma="15,25")
    assert [(r["image"], r["sigma"]) for r in rows] == [("p0.png", "real"), ("p1.png", "real")]
    expected = psnr(skimage.io.imread(pairs / "clean" / "p1.png"), skimage.io.imread(pairs / "noisy" / "p1.png"))
    assert rows[1]["psnr"] == pytest.approx(expected)


def test_save_images_side_by_side(tmp_path):
    data = folder(tmp_path, n=1)
    evaluate_folder(identity, data, sigma=25, save_images=tmp_path / "shots")
    shot = skimage.io.imread(tmp_path / "shots" / "set" / "sigma25" / "im0.png")
    assert shot.shape == (24, 90, 3)
    np.testing.assert_array_equal(shot[:, :30], skimage.io.imread(data / "im0.png"))
    np.testing.assert_array_equal(shot[:, 30:60], shot[:, 60:])  # identity: output == noisy


@pytest.mark.parametrize("text", ["", "a,b", "-5", "nan", "15,,25"])
def test_bad_sigma_is_one_line(text):
    with pytest.raises(HwnasError) as err:
        parse_sigmas(text)
    assert "--sigma" in str(err.value) and "\n" not in str(err.value)


def test_parse_sigmas_forms():
    assert parse_sigmas("15, 25,50") == (15.0, 25.0, 50.0) and parse_sigmas(12.5) == (12.5,) and parse_sigmas([15]) == (15.0,)


def test_tiny_image_is_refused(tmp_path):
    save(tmp_path / "t" / "x.png", photo(0, 8, 8))
    with pytest.raises(HwnasError, match="SSIM"):
        evaluate_folder(identity, tmp_path / "t")


# -- single files ----------------------------------------------------------------------

def test_denoise_file_any_size_and_format(tmp_path):
    src = save(tmp_path / "in.png", photo(0, 37, 51))
    report = denoise_file(identity, src, tmp_path / "out.jpg")
    out = skimage.io.imread(tmp_path / "out.jpg")
    assert out.shape == (37, 51, 3) and (report["height"], report["width"]) == (37, 51)


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit"])
def test_denoise_file_converts_gray_rgba_16bit(tmp_path, kind):
    img = photo(1)
    if kind == "gray":
        img = img[:, :, 0]
    elif kind == "rgba":
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    src = tmp_path / "in.png"
    if kind == "16bit":  # PIL cannot write 16-bit RGB PNG; TIFF can
        src = tmp_path / "in.tif"
        tifffile.imwrite(src, img.astype(np.uint16) * 257)
    else:
        save(src, img)
    denoise_file(identity, src, tmp_path / "out.png")
    out = skimage.io.imread(tmp_path / "out.png")
    assert out.shape == (24, 30, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("case", ["not_image", "bad_suffix", "missing"])
def test_denoise_file_errors_write_nothing(tmp_path, case):
    calls = []
    src = tmp_path / "in.png"
    if case == "not_image":
        src.write_text("not an image")
    elif case == "bad_suffix":
        save(src, photo(0))
    out = tmp_path / ("out.xyz" if case == "bad_suffix" else "out.png")
    with pytest.raises(HwnasError) as err:
        denoise_file(lambda x: calls.append(1) or x, src, out)
    assert "\n" not in str(err.value)
    assert not out.exists() and calls == []
    assert not list(tmp_path.glob(".out*"))


# -- the task hooks ----------------------------------------------------------------------

def test_task_hooks_delegate(tmp_path):
    data = folder(tmp_path, n=6)
    task = GaussianDenoising(data=str(data), crop=16)
    assert len(task.evaluate_folder(identity, data, sigma=25)) == 6
    task.infer_file(identity, data / "im0.png", tmp_path / "o.png")
    assert (tmp_path / "o.png").is_file()


def test_task_without_hooks_says_so():
    class Bare(Task):
        def batch(self, split, *, seed, epoch, step, batch_size):
            raise NotImplementedError

        def loss(self, output, target):
            raise NotImplementedError

        def validate(self, model, device="cpu"):
            return {}

    with pytest.raises(HwnasError, match="does not support"):
        Bare().evaluate_folder(identity, ".")
    with pytest.raises(HwnasError, match="does not support"):
        Bare().infer_file(identity, "a", "b")


def test_output_worse_than_its_noisy_input_is_warned(tmp_path, caplog):
    data = folder(tmp_path, n=2)
    blown = lambda x: x * 1e6  # a network that diverged: its output is far from the image
    with caplog.at_level("WARNING"):
        evaluate_folder(blown, data, sigma=25)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and "im0.png worse than its noisy input" in warned[0] and "--save-images" in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        evaluate_folder(identity, data, sigma="0,25")  # as good as the input; sigma 0 has nothing to beat
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
