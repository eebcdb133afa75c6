"""Image files for denoising: listing, decoding to RGB floats, embedded samples, noise.

Everything a user can get wrong here (missing folder, no images, a file that is not an
image, unmatched noisy/clean pairs) raises a one-line `HwnasError`, never a traceback.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from hwnas.contracts.errors import HwnasError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Colour photographs inside the scikit-image wheel (no download needed).
EMBEDDED_NAMES = (  # sorted by name, like list_images
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
)


def list_images(folder: Path | str) -> list[Path]:
    """Image files directly inside `folder` (not recursive), sorted by name.

    A file counts when its suffix, in any case, is one of `IMAGE_SUFFIXES`; names
    starting with "." are skipped (e.g. macOS "._x.png" resource files, which are not
    images). Raises `HwnasError` if the folder is missing, is not a folder, or holds
    no image files.
    """
    folder = Path(folder)
    if not folder.exists():
        raise HwnasError(f"image folder {folder} does not exist; check the path given as data.")
    if not folder.is_dir():
        raise HwnasError(f"{folder} is not a folder; pass the folder that holds the images.")
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise HwnasError(
            f"image folder {folder} holds no image files; add {'/'.join(IMAGE_SUFFIXES)} files or pass another folder."
        )
    return files


def read_rgb(path: Path | str) -> np.ndarray:
    """Decode one image to a float32 H x W x 3 sRGB array in [0, 1].

    Every Pillow mode is converted, each by its own rule (`_pil_to_rgb`): grayscale is
    replicated; palette images are expanded through their palette (and transparency);
    CMYK and other colour spaces are converted to RGB; an embedded ICC profile other
    than sRGB is applied, so values are sRGB as the metrics assume; integers are
    scaled by their bit depth (8-bit by 255, 16-bit by 65535); float images must lie in
    [0, 1]. Transparency is composited over black (rgb * alpha), so opaque images are
    unchanged and transparent areas become dark rather than showing whatever colour
    the encoder left under them. An EXIF orientation (phone photos) is applied, so the
    image comes out upright as viewers show it. TIFFs with more than 8 bits per colour channel (which
    Pillow would reduce to 8) and float colour TIFFs are read with tifffile. A
    multi-frame file, an unsupported pixel type or a file that cannot be decoded
    raises `HwnasError`.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if getattr(image, "n_frames", 1) > 1:
                    raise HwnasError(
                        f"cannot read image {path}: it holds {image.n_frames} frames; save a single-frame RGB or grayscale image."
                    )
                if _deep_colour_tiff(image):
                    return _array_to_rgb(_read_tiff(path), path)
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # a phone photo stores its pixels sideways plus an orientation tag
                return _pil_to_rgb(image, path)
    except HwnasError:
        raise
    except FileNotFoundError:
        raise HwnasError(f"cannot read image {path}: the file does not exist; check the path.") from None
    except UnidentifiedImageError:
        if path.suffix.lower() in (".tif", ".tiff"):  # float colour TIFFs: Pillow has no mode for them
            return _array_to_rgb(_read_tiff(path), path)
        raise HwnasError(f"cannot read image {path}: not a recognised image format; check that it is a valid image file.") from None
    except Exception as err:  # decoders raise many types (OSError, ValueError, SyntaxError, ...)
        raise HwnasError(f"cannot read image {path}: {_first_line(err)}; check that it is a valid image file.") from None


def _pil_to_rgb(image, path: Path) -> np.ndarray:
    """A decoded Pillow image of any mode -> float32 H x W x 3 sRGB in [0, 1] (see `read_rgb`)."""
    if image.width == 0 or image.height == 0:
        raise HwnasError(f"cannot read image {path}: it has no pixels ({image.width}x{image.height}); save a non-empty image.")
    mode = image.mode
    if mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode in ("P", "PA"):  # the palette may carry transparency: expand to RGBA, composited below
        image, mode = image.convert("RGBA"), "RGBA"
    elif mode in ("RGBa", "La"):  # alpha already premultiplied: the colour is the composite over black
        image, mode = image.convert(mode[0:-1] + "A"), mode[0:-1] + "A"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        gray = np.asarray(image, dtype=np.float32) / np.float32(65535)
        return _gray3(gray)
    if mode == "I":  # 32-bit integer pixels: scale by the bit depth the file declares (16 for Pillow's PNG "I")
        bits = _declared_bits(image) or 16
        values = np.asarray(image)
        if values.min() < 0:
            raise HwnasError(f"cannot read image {path}: it has negative pixel values; save it as an 8- or 16-bit image.")
        return _gray3(values.astype(np.float32) / np.float32(2**bits - 1))
    if mode == "F":
        return _gray3(_unit_float(np.asarray(image, dtype=np.float32), path))
    alpha = None
    if mode in ("LA", "RGBA"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / np.float32(255)
        image = image.convert(mode[:-1])
        mode = image.mode
    image = _to_srgb(image, path)  # RGB, from L, RGB, CMYK, YCbCr, LAB, HSV (+ their ICC profile)
    rgb = np.asarray(image, dtype=np.float32) / np.float32(255)
    if alpha is not None:
        rgb = rgb * alpha[:, :, None]
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _to_srgb(image, path: Path):
    """An 8-bit image of mode L, RGB, CMYK, YCbCr, LAB or HSV as sRGB RGB, through its ICC profile if it has one."""
    from PIL import ImageCms

    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if "srgb" not in ImageCms.getProfileDescription(source).lower().replace(" ", ""):
                return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError) as err:
            logger.warning("%s: its embedded colour profile cannot be applied (%s); reading the values as sRGB", path, _first_line(err))
    if image.mode not in ("L", "RGB", "CMYK", "YCbCr", "LAB", "HSV"):
        raise HwnasError(f"cannot read image {path}: pixel mode {image.mode} is not supported; save it as an RGB or grayscale image.")
    return image.convert("RGB")


def _gray3(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2), dtype=np.float32)


def _unit_float(x: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise HwnasError(
            f"cannot read image {path}: its floating-point pixels are not all within 0-1; save it as an 8- or 16-bit image."
        )
    return x


def _declared_bits(image) -> int | None:
    """Bits per sample a TIFF declares (tag 258), or None."""
    tags = getattr(image, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None
    if isinstance(bits, tuple):
        bits = max(bits) if bits else None
    return int(bits) if bits else None


def _deep_colour_tiff(image) -> bool:
    """A colour TIFF with more than 8 bits per channel: Pillow would keep only 8 of them."""
    return image.format == "TIFF" and image.mode in ("RGB", "RGBA", "RGBX") and (_declared_bits(image) or 8) > 8


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) > 1:
            raise HwnasError(f"cannot read image {path}: it holds {len(tif.pages)} frames; save a single-frame RGB or grayscale image.")
        return tif.pages[0].asarray()


def _array_to_rgb(raw: np.ndarray, path: Path) -> np.ndarray:
    """A TIFF's pixel array (H x W, or H x W x 1-4 channels; uint8, uint16 or float in 0-1) -> sRGB floats."""
    if raw.ndim == 2:
        raw = raw[:, :, None]
    if raw.ndim != 3 or raw.shape[2] not in (1, 2, 3, 4) or raw.shape[0] == 0 or raw.shape[1] == 0:
        raise HwnasError(
            f"cannot read image {path}: shape {raw.shape} is not one grayscale or colour image; "
            "save a single-frame RGB or grayscale image."
        )
    if raw.dtype in (np.uint8, np.uint16):
        x = raw.astype(np.float32) / np.float32(np.iinfo(raw.dtype).max)
    elif raw.dtype.kind == "f":
        x = _unit_float(raw.astype(np.float32), path)
    else:
        raise HwnasError(
            f"cannot read image {path}: pixel type {raw.dtype} is not supported; save it as an 8- or 16-bit image."
        )
    if x.shape[2] in (2, 4):  # gray+alpha or RGBA: composite over black, drop alpha
        x = x[:, :, :-1] * x[:, :, -1:]
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x, dtype=np.float32)


def _first_line(err: BaseException) -> str:
    """A short, one-line reason (some decoders write multi-line messages)."""
    text = str(err).strip().splitlines()
    reason = text[0].strip().rstrip(".") if text else err.__class__.__name__
    if reason.startswith("Could not find a backend"):  # imageio's wording for "no decoder understood it"
        reason = "not a recognised image format"
    return reason[:200]


def embedded_images() -> list[tuple[str, np.ndarray]]:
    """(name, H x W x 3 float32 image) for the colour photographs shipped in scikit-image.

    Read straight from the package's data folder, never through `skimage.data`
    functions (some of those download). Those absent from the installed version are
    skipped; if none is present, `HwnasError`.
    """
    import skimage.data

    folder = Path(os.path.dirname(skimage.data.__file__))
    images = [(Path(name).stem, read_rgb(folder / name)) for name in EMBEDDED_NAMES if (folder / name).is_file()]
    if not images:
        raise HwnasError(
            f"no sample images found in {folder}; pass an image folder as data or reinstall scikit-image."
        )
    return images


def stable_seed(*parts: object) -> int:
    """A 63-bit integer from the sha256 of the parts' str(), equal in every process.

    Python's hash() of a str changes per process, so it cannot seed noise that a
    resumed run or another rank must reproduce.
    """
    text = "\x1f".join(str(p) for p in parts)  # a separator, so ("ab", "c") != ("a", "bc")
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def add_gaussian_noise(clean: np.ndarray | torch.Tensor, sigma: float, seed: int) -> np.ndarray | torch.Tensor:
    """clean + N(0, (sigma/255)^2) per element, from numpy default_rng(seed); NOT clipped.

    `clean` is in [0, 1]; `sigma` is in 0-255 units (sigma=25 is the usual "σ25").
    No clipping, as in the published protocol: noisy values fall outside [0, 1].
    Returns the same kind as given (a float32 tensor on the same device, or a float32
    array); the noise depends only on (shape, sigma, seed).
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(tuple(clean.shape), dtype=np.float32) * np.float32(sigma / 255.0)
    if isinstance(clean, torch.Tensor):
        return clean.float() + torch.from_numpy(noise).to(clean.device)
    return (np.asarray(clean, dtype=np.float32) + noise).astype(np.float32, copy=False)


def is_paired(folder: Path | str) -> bool:
    """True if `folder` has both `noisy/` and `clean/` subfolders (real-noise pairs)."""
    folder = Path(folder)
    return (folder / "noisy").is_dir() and (folder / "clean").is_dir()


def paired_images(folder: Path | str) -> list[tuple[str, Path, Path]]:
    """(file name, noisy path, clean path) for each file name present in both subfolders.

    SIDD-style real-noise pairs: `folder/noisy/x.png` pairs with `folder/clean/x.png`.
    Sorted by name. A file in only one of the two subfolders raises `HwnasError`
    naming the first few.
    """
    folder = Path(folder)
    if not is_paired(folder):
        raise HwnasError(f"{folder} has no noisy/ and clean/ subfolders; put matching image pairs in both.")
    noisy = {p.name: p for p in list_images(folder / "noisy")}
    clean = {p.name: p for p in list_images(folder / "clean")}
    unmatched = sorted(set(noisy) ^ set(clean))
    if unmatched:
        shown = ", ".join(unmatched[:3]) + (" ..." if len(unmatched) > 3 else "")
        raise HwnasError(
            f"{len(unmatched)} files in {folder} have no partner in the other of noisy/ and clean/ ({shown}); "
            "give each pair the same file name in both."
        )
    return [(name, noisy[name], clean[name]) for name in sorted(noisy)]
