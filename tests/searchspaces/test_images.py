"""Image listing, decoding, embedded samples, stable seeds and noise."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.io
import tifffile
import torch

from hwnas.contracts.errors import HwnasError
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


@pytest.mark.parametrize("orientation,turn", [(1, lambda a: a), (3, lambda a: a[::-1, ::-1]), (6, lambda a: np.rot90(a, -1)),
                                              (8, lambda a: np.rot90(a, 1))])
def test_read_rgb_applies_the_exif_orientation(tmp_path, orientation, turn):
    from PIL import Image

    stored = np.zeros((4, 6, 3), np.uint8)
    stored[0, 0] = 255  # one white corner shows where the top left went
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)  # PNG: lossless, so pixels compare exactly
    np.testing.assert_array_equal(read_rgb(tmp_path / "phone.png"), turn(stored).astype(np.float32) / 255)


def test_read_rgb_tiny_image(tmp_path):
    assert read_rgb(save(tmp_path / "t.png", rgb(1, 1))).shape == (1, 1, 3)


@pytest.mark.parametrize("kind", ["text", "empty", "missing", "float", "multiframe"])
def test_read_rgb_bad_files_raise_one_line(tmp_path, kind):
    path = tmp_path / "bad.png"
    if kind == "text":
        path.write_text("this is not a png")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "float":  # floats are read when within 0-1 (see below), not otherwise
        path = tmp_path / "f.tif"
        tifffile.imwrite(path, 3 * np.random.rand(8, 8, 3).astype(np.float32), photometric="rgb")
    elif kind == "multiframe":
        path = tmp_path / "m.tif"
        tifffile.imwrite(path, np.zeros((2, 20, 20), np.uint8))
    with pytest.raises(HwnasError) as err:
        read_rgb(path)
    message = str(err.value)
    assert message.startswith(f"cannot read image {path}: ") and "\n" not in message


# -- every Pillow mode, against Pillow's own conversion ----------------------------

def pil_image(mode: str, seed: int = 0):
    """A small image of `mode` with varied pixels (and partial transparency where it has alpha)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rgba = Image.fromarray(rng.integers(0, 256, (10, 12, 4), dtype=np.uint8), "RGBA")
    if mode in ("P", "PA"):
        return rgba.convert("RGB").quantize(16)
    return rgba.convert(mode)


def over_black(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3].astype(np.float32) / 255 * (rgba[..., 3:].astype(np.float32) / 255)


@pytest.mark.parametrize("mode, suffix", [("1", ".png"), ("L", ".png"), ("LA", ".png"), ("P", ".png"), ("RGB", ".png"),
                                          ("RGBA", ".png"), ("CMYK", ".jpg"), ("CMYK", ".tif"), ("YCbCr", ".jpg"),
                                          ("L", ".jpg"), ("RGB", ".bmp"), ("LA", ".tif")])
def test_every_8_bit_mode_matches_pillows_conversion(tmp_path, mode, suffix):
    from PIL import Image

    path = tmp_path / f"{mode}{suffix}"
    pil_image(mode).save(path)
    x = read_rgb(path)
    with Image.open(path) as saved:
        stored = saved.mode
        if stored in ("P", "LA", "RGBA", "PA"):
            expected = over_black(np.asarray(saved.convert("RGBA")))
        else:
            expected = np.asarray(saved.convert("RGB"), dtype=np.float32) / 255
    assert x.shape == (10, 12, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, expected, atol=1e-6)
    if mode == "CMYK":
        assert stored == "CMYK"  # decoded as CMYK (4 channels) and converted -- not taken for RGBA


def test_palette_transparency_is_composited_over_black(tmp_path):
    from PIL import Image

    path = tmp_path / "p.png"
    pil_image("P").save(path, transparency=3)
    with Image.open(path) as saved:
        assert saved.mode == "P" and "transparency" in saved.info
        indices = np.asarray(saved)
    x = read_rgb(path)
    assert (indices == 3).any() and np.all(x[indices == 3] == 0)
    assert np.any(x[indices != 3] > 0)


@pytest.mark.parametrize("depth", [16, 8])
def test_grayscale_is_scaled_by_its_bit_depth(tmp_path, depth):
    from PIL import Image

    values = np.array([[0, 1, 257, 4095], [32768, 50000, 65534, 65535]], np.uint16)
    if depth == 8:
        values = (values // 257).astype(np.uint8)
    path = tmp_path / "g.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as saved:
        assert saved.mode == ("I;16" if depth == 16 else "L")
    x = read_rgb(path)
    np.testing.assert_allclose(x[..., 0], values / (65535.0 if depth == 16 else 255.0), atol=1e-7)
    assert (x[0, 1] > 0).all() == (depth == 16)  # 1/65535 is not rounded away


def test_32_bit_integer_and_float_grayscale(tmp_path):
    from PIL import Image

    ints = np.array([[0, 1000], [40000, 65535]], np.int32)
    Image.fromarray(ints, "I").save(tmp_path / "i.tif")  # declares 32 bits per sample
    with Image.open(tmp_path / "i.tif") as saved:
        assert saved.mode == "I"
    np.testing.assert_allclose(read_rgb(tmp_path / "i.tif")[..., 1], ints / (2.0**32 - 1), rtol=1e-6)
    floats = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    Image.fromarray(floats, "F").save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_rgb(tmp_path / "f.tif")[..., 2], floats)
    tifffile.imwrite(tmp_path / "frgb.tif", np.stack([floats] * 3, -1), photometric="rgb")  # no Pillow mode for it
    np.testing.assert_array_equal(read_rgb(tmp_path / "frgb.tif")[..., 0], floats)


def test_16_bit_colour_tiff_keeps_its_precision(tmp_path):
    rgb16 = np.full((4, 5, 3), 1, np.uint16)  # 1/65535: Pillow alone would round it to 0
    rgb16[0, 0] = (65535, 257, 0)
    tifffile.imwrite(tmp_path / "c.tif", rgb16)
    np.testing.assert_allclose(read_rgb(tmp_path / "c.tif"), rgb16 / 65535.0, atol=1e-9)


def swapped_profile() -> bytes:
    """Pillow's sRGB profile with the red and blue primaries exchanged (and renamed): a non-sRGB
    RGB profile under which stored (r, g, b) means about sRGB (b, g, r)."""
    import struct

    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    entries = {bytes(data[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    r, b = entries[b"rXYZ"], entries[b"bXYZ"]
    data[r + 4:r + 12], data[b + 4:b + 12] = data[b + 4:b + 12], data[r + 4:r + 12]
    return bytes(data).replace("sRGB".encode("utf-16-be"), "Swap".encode("utf-16-be"))


def test_an_embedded_icc_profile_is_applied_to_srgb(tmp_path):
    import io

    from PIL import Image, ImageCms

    icc = swapped_profile()
    image = Image.fromarray(np.array([[[200, 30, 10], [10, 120, 240]]], np.uint8))
    image.save(tmp_path / "tagged.png", icc_profile=icc)
    x = read_rgb(tmp_path / "tagged.png")
    srgb = ImageCms.createProfile("sRGB")
    reference = ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB")
    np.testing.assert_allclose(x, np.asarray(reference, np.float32) / 255, atol=1e-6)
    assert x[0, 0, 2] > x[0, 0, 0]  # the stored red pixel is a blue one in this colour space
    image.save(tmp_path / "srgb.png", icc_profile=ImageCms.ImageCmsProfile(srgb).tobytes())  # an sRGB tag changes nothing
    np.testing.assert_array_equal(read_rgb(tmp_path / "srgb.png"), np.asarray(image, np.float32) / 255)


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
