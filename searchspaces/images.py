"""Image files for denoising: listing, decoding to RGB floats, embedded samples, noise.

Everything a user can get wrong here (missing folder, no images, a file that is not an
image, unmatched noisy/clean pairs) raises a one-line `HwnasError`, never a traceback.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from hwnas.errors import HwnasError

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
    """Decode one image to a float32 H x W x 3 array in [0, 1].

    uint8 is divided by 255, uint16 by 65535. Grayscale is replicated to three
    channels. An alpha channel is dropped after compositing over black (rgb * alpha),
    so fully opaque images are unchanged and transparent areas become dark rather than
    showing whatever colour the encoder left under them. Any other pixel type, a
    multi-frame file, or a file that cannot be decoded raises `HwnasError`.
    """
    import skimage.io  # imported here: skimage.io is slow to import and only needed to decode

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # imageio tries every plugin on an unknown file; some warn about their own deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            raw = skimage.io.imread(path)
    except Exception as err:  # decoders raise many types (OSError, ValueError, SyntaxError, ...)
        raise HwnasError(f"cannot read image {path}: {_first_line(err)}; check that it is a valid image file.") from None
    return _to_rgb_float(raw, path)


def _to_rgb_float(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.dtype == np.uint8:
        scale = 255.0
    elif raw.dtype == np.uint16:
        scale = 65535.0
    else:
        raise HwnasError(
            f"cannot read image {path}: pixel type {raw.dtype} is not supported; save it as an 8- or 16-bit image."
        )
    if raw.ndim == 2:
        raw = raw[:, :, None]
    if raw.ndim != 3 or raw.shape[2] not in (1, 2, 3, 4) or raw.shape[0] == 0 or raw.shape[1] == 0:
        raise HwnasError(
            f"cannot read image {path}: shape {raw.shape} is not one grayscale or colour image; "
            "save a single-frame RGB or grayscale image."
        )
    x = raw.astype(np.float32) / np.float32(scale)
    channels = x.shape[2]
    if channels in (2, 4):  # gray+alpha or RGBA: composite over black, drop alpha
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
