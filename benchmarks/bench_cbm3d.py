"""CBM3D, the classical reference for the quality benchmark (issue 6, item 4).

Runs `bm3d.bm3d_rgb(noisy, sigma_psd=sigma/255)` (Dabov et al., "Color image denoising
via sparse 3D collaborative filtering with grouping constraint in luminance-chrominance
space", ICIP 2007) on exactly the noisy images `hwnas eval` scores: the same noise
function and per-file-name seed (`hwnas.searchspaces.denoising_eval.noisy_image`), the
same clipping/rounding and the same PSNR/SSIM (`hwnas.searchspaces.metrics`).

The `bm3d` package is non-commercial: it is an optional, benchmark-only extra
(`pip install -e '.[bm3d]'`), never a runtime dependency of hwnas.

Resumable: each (dataset, sigma, image) result is written as one small JSON file under
`<workdir>/cbm3d/<dataset>/sigma<s>/`; a rerun skips the images already done, so a
long run (about a minute per 500x500 image on one core) can be stopped and continued.

    nice python benchmarks/bench_cbm3d.py --data ../shared/datasets/Kodak24 --sigma 25
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("bench_cbm3d")

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "work"


def result_path(workdir: Path, dataset: str, sigma: float, image: str) -> Path:
    return Path(workdir) / "cbm3d" / dataset / f"sigma{sigma:g}" / (Path(image).stem + ".json")


def denoise_one(clean, sigma: float, seed: int, name: str) -> tuple[dict, float]:
    """Score CBM3D on one clean image at `sigma`; returns (psnr/ssim row, seconds)."""
    import bm3d
    from hwnas.searchspaces.denoising_eval import noisy_image
    from hwnas.searchspaces.metrics import psnr, ssim, to_uint8

    noisy = noisy_image(clean, sigma, seed, name)  # identical to what `hwnas eval --seed` feeds a network
    start = time.perf_counter()
    out = bm3d.bm3d_rgb(noisy, sigma_psd=sigma / 255.0)
    seconds = time.perf_counter() - start
    clean_u8, out_u8 = to_uint8(clean), to_uint8(out)
    return {"psnr": psnr(clean_u8, out_u8), "ssim": ssim(clean_u8, out_u8)}, seconds


def run_folder(folder: Path, sigmas: list[float], *, seed: int, workdir: Path, limit: int | None) -> list[dict]:
    """Denoise the first `limit` images of `folder` (sorted by name) at each sigma; skip done ones.

    Returns every finished row for this folder and these sigmas (old and new).
    """
    from hwnas.runs.io import atomic_write_text
    from hwnas.searchspaces.images import list_images, read_rgb

    dataset = Path(folder).resolve().name
    paths = list_images(folder)[:limit]
    rows = []
    for sigma in sigmas:
        for path in paths:
            target = result_path(workdir, dataset, sigma, path.name)
            if not target.exists():
                scores, seconds = denoise_one(read_rgb(path), sigma, seed, path.name)
                row = {"dataset": dataset, "sigma": f"{sigma:g}", "seed": seed, "image": path.name,
                       **scores, "seconds": round(seconds, 2)}
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, json.dumps(row, sort_keys=True) + "\n")
                logger.info("cbm3d %s sigma %g %s: %.2f dB in %.0f s", dataset, sigma, path.name, row["psnr"], seconds)
            rows.append(json.loads(target.read_text()))
    return rows


def finished_rows(workdir: Path) -> list[dict]:
    """Every CBM3D result stored under `workdir` (any dataset, sigma)."""
    return [json.loads(p.read_text()) for p in sorted((Path(workdir) / "cbm3d").glob("*/sigma*/*.json"))]


def _remember_command(workdir: Path, argv: list[str] | None) -> None:
    """Append this command line to `<workdir>/cbm3d/commands.txt` (the quality sidecar lists them)."""
    import os
    import shlex

    line = shlex.join(["python", "benchmarks/bench_cbm3d.py", *(sys.argv[1:] if argv is None else argv)])
    threads = os.environ.get("OMP_NUM_THREADS")
    path = Path(workdir) / "cbm3d" / "commands.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write((f"OMP_NUM_THREADS={threads} " if threads else "") + line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", required=True, help="image folder (repeatable)")
    parser.add_argument("--sigma", default="25", help="comma-separated noise levels, 0-255 units")
    parser.add_argument("--seed", type=int, default=0, help="noise seed, as `hwnas eval --seed`")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (by name) per folder")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        import bm3d  # noqa: F401
    except ImportError:
        print("error: the bm3d package is missing; install the benchmark extra: pip install -e '.[bm3d]'", file=sys.stderr)
        return 2
    from hwnas.contracts.errors import HwnasError
    from hwnas.searchspaces.denoising_eval import parse_sigmas

    _remember_command(args.workdir, argv)
    try:
        sigmas = list(parse_sigmas(args.sigma))
        for folder in args.data:
            run_folder(Path(folder), sigmas, seed=args.seed, workdir=args.workdir, limit=args.limit)
    except HwnasError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
