"""Image files for the task: listing, decoding to RGB floats, the embedded samples, writing.

Kept in this package (not imported from the denoising plugin): plugins know nothing
about each other, and a user's task brings its own I/O. Mistakes a user can make (a
missing folder, no images, a file that is not an image, an unknown output suffix) are
one-line `HwnasError`s.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from hwnas import HwnasError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# The colour photographs inside the scikit-image wheel (no download), as hwnas's denoising uses.
SAMPLES = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png",
           "motorcycle_right.png", "retina.jpg", "rocket.jpg")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HwnasError(f"image folder {folder} does not exist or is not a folder; check the path given as data.")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES)
    if not files:
        raise HwnasError(f"image folder {folder} holds no image files; add {'/'.join(SUFFIXES)} files or pass another folder.")
    return files


def read_rgb(path: str | Path) -> np.ndarray:
    """An image as float32 H x W x 3 RGB in [0, 1] (grayscale, palette and alpha converted by Pillow), upright
    (its EXIF orientation applied)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)  # a phone photo stores its pixels sideways plus an orientation tag
            rgb = np.asarray(upright.convert("RGB"), dtype=np.float32) / np.float32(255)
    except FileNotFoundError:
        raise HwnasError(f"cannot read image {path}: the file does not exist; check the path.") from None
    except Exception as err:  # decoders raise many types
        raise HwnasError(f"cannot read image {path} ({type(err).__name__}); check that it is a valid image file.") from None
    return np.ascontiguousarray(rgb)


def sample_images() -> list[tuple[str, np.ndarray]]:
    """(name, image) for the colour photographs shipped in scikit-image that are installed."""
    import skimage.data

    folder = Path(os.path.dirname(skimage.data.__file__))
    images = [(Path(name).stem, read_rgb(folder / name)) for name in SAMPLES if (folder / name).is_file()]
    if not images:
        raise HwnasError(f"no sample images found in {folder}; pass an image folder as data (-t data=DIR).")
    return images


def check_output(path: str | Path) -> Path:
    """`HwnasError` unless `path` ends in an image suffix and is not a folder (checked before any work)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise HwnasError(f"cannot write {path}: use one of the suffixes {', '.join(SUFFIXES)}.")
    if path.is_dir():
        raise HwnasError(f"{path} is a folder; give an output file name such as {path / 'x2.png'}.")
    return path


def write_rgb(path: str | Path, image_u8: np.ndarray) -> None:
    """Write an H x W x 3 uint8 image, format by suffix, atomically (a reader sees the old file or the new one)."""
    from PIL import Image

    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        Image.fromarray(image_u8).save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
