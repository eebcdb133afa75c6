"""Image listing, decoding, embedded samples, stable seeds and noise."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.io
import tifffile
import torch

from hwnas.errors import HwnasError
from hwnas.searchspaces.images import (
    add_gaussian_noise,
    embedded_images,
    is_paired,
    list_images,
    paired_images,
    read_rgb,
    stable_seed,
)


def save(path, array):
    skimage.io.imsave(path, array, check_contrast=False)
    return path


def rgb(h=12, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- list_images ---------------------------------------------------------------

def test_list_images_sorted_and_filtered(tmp_path):
    save(tmp_path / "b.png", rgb())
    save(tmp_path / "A.JPG", rgb())
    save(tmp_path / "c.bmp", rgb())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._b.png").write_bytes(b"resource fork")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["A.JPG", "b.png", "c.bmp"]


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_list_images_errors_name_the_folder(tmp_path, kind):
    target = {"missing": tmp_path / "nope", "file": tmp_path / "x.txt", "empty": tmp_path / "empty"}[kind]
    if kind == "file":
        target.write_text("x")
    if kind == "empty":
        target.mkdir()
        (target / "readme.txt").write_text("x")
    with pytest.raises(HwnasError) as err:
        list_images(target)
    assert str(target) in str(err.value) and "\n" not in str(err.value)


# -- read_rgb ------------------------------------------------------------------

def test_read_rgb_uint8(tmp_path):
    img = rgb()
    x = read_rgb(save(tmp_path / "a.png", img))
    assert x.dtype == np.float32 and x.shape == (12, 10, 3)
    np.testing.assert_array_equal(x, img.astype(np.float32) / np.float32(255))


def test_read_rgb_grayscale_is_replicated(tmp_path):
    gray = rgb()[:, :, 0]
    x = read_rgb(save(tmp_path / "g.png", gray))
    assert x.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(x[:, :, c], gray / np.float32(255))


def test_read_rgb_rgba_opaque_drops_alpha_and_transparent_goes_black(tmp_path):
    img = np.concatenate([rgb(), np.full((12, 10, 1), 255, np.uint8)], axis=2)
    img[0, 0, 3] = 0  # one fully transparent pixel: composited over black
    x = read_rgb(save(tmp_path / "a.png", img))
    assert x.shape == (12, 10, 3)
    np.testing.assert_array_equal(x[1:], img[1:, :, :3] / np.float32(255))
    np.testing.assert_array_equal(x[0, 0], [0, 0, 0])


def test_read_rgb_16_bit(tmp_path):
    gray16 = np.full((8, 9), 65535 // 5, np.uint16)
    x = read_rgb(save(tmp_path / "g16.png", gray16))
    np.testing.assert_allclose(x, 0.2, atol=1e-6)
    rgb16 = np.zeros((8, 9, 3), np.uint16)
    rgb16[..., 1] = 65535
    tifffile.imwrite(tmp_path / "c16.tif", rgb16)
    np.testing.assert_array_equal(read_rgb(tmp_path / "c16.tif")[0, 0], [0, 1, 0])


def test_read_rgb_tiny_image(tmp_path):
    assert read_rgb(save(tmp_path / "t.png", rgb(1, 1))).shape == (1, 1, 3)


@pytest.mark.parametrize("kind", ["text", "empty", "missing", "float", "multiframe"])
def test_read_rgb_bad_files_raise_one_line(tmp_path, kind):
    path = tmp_path / "bad.png"
    if kind == "text":
        path.write_text("this is not a png")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "float":
        path = tmp_path / "f.tif"
        tifffile.imwrite(path, np.random.rand(8, 8, 3).astype(np.float32), photometric="rgb")
    elif kind == "multiframe":
        path = tmp_path / "m.tif"
        tifffile.imwrite(path, np.zeros((2, 20, 20), np.uint8))
    with pytest.raises(HwnasError) as err:
        read_rgb(path)
    message = str(err.value)
    assert message.startswith(f"cannot read image {path}: ") and "\n" not in message


# -- embedded images -------------------------------------------------------------

def test_embedded_images_are_rgb_floats():
    images = embedded_images()
    names = [name for name, _ in images]
    assert "astronaut" in names and names == sorted(names)
    for _, img in images:
        assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3
        assert 0.0 <= img.min() and img.max() <= 1.0


# -- stable_seed -------------------------------------------------------------------

def test_stable_seed_is_fixed_across_processes():
    # Computed once; Python's hash() would differ per process, sha256 must not.
    assert stable_seed("astronaut", 3) == 4607060796216330377
    assert stable_seed(0, "train", 1, 2) == 8998891143424485238


def test_stable_seed_range_and_separation():
    seeds = {stable_seed("ab", "c"), stable_seed("a", "bc"), stable_seed("abc"), stable_seed(1), stable_seed("1", "")}
    assert len(seeds) == 5
    assert all(0 <= s < 2**63 for s in seeds)


# -- noise ---------------------------------------------------------------------------

def test_noise_is_deterministic_unclipped_and_scaled():
    clean = np.full((64, 64, 3), 0.5, np.float32)
    a = add_gaussian_noise(clean, 50, seed=7)
    b = add_gaussian_noise(clean, 50, seed=7)
    c = add_gaussian_noise(clean, 50, seed=8)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() < 0.0 and a.max() > 1.0  # no clipping
    assert abs(float((a - clean).std()) - 50 / 255) < 0.01
    np.testing.assert_array_equal(add_gaussian_noise(clean, 0, seed=7), clean)


def test_noise_same_for_tensor_and_array():
    clean = np.random.default_rng(0).random((3, 8, 8), dtype=np.float32)
    t = add_gaussian_noise(torch.from_numpy(clean), 25, seed=3)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), add_gaussian_noise(clean, 25, seed=3))


# -- paired folders --------------------------------------------------------------------

def test_paired_images(tmp_path):
    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
        for name in ("b.png", "a.png"):
            save(tmp_path / sub / name, rgb())
    assert is_paired(tmp_path) and not is_paired(tmp_path / "noisy")
    pairs = paired_images(tmp_path)
    assert [p[0] for p in pairs] == ["a.png", "b.png"]
    assert pairs[0][1] == tmp_path / "noisy" / "a.png" and pairs[0][2] == tmp_path / "clean" / "a.png"


def test_paired_images_mismatch_lists_names(tmp_path):
    for sub in ("noisy", "clean"):
        (tmp_path / sub).mkdir()
        save(tmp_path / sub / "same.png", rgb())
    save(tmp_path / "noisy" / "only_noisy.png", rgb())
    save(tmp_path / "clean" / "only_clean.png", rgb())
    with pytest.raises(HwnasError, match="only_clean.png, only_noisy.png"):
        paired_images(tmp_path)
