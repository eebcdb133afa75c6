"""How the U-Net pads whole images: zeros (before) against repeated edge pixels (now).

CBSD68 (481x321) and Kodak24 (500x500) images are not multiples of the U-Net's 2^levels,
so the network pads them inside and crops back. Training crops (64 px) never need it.
With zero padding, networks with BatchNorm candidates (`naf_bn`, `naf_bn_lite`) trained
on crops blew up to inf on a few whole images (~3-6 dB where the rest scored ~29 dB):
the black strip is unlike any training input, and fixed BatchNorm statistics followed
by SimpleGate's product let its activations grow block by block. Issue 22's front had
three such networks.

Each uniform network of the front's recipe (small preset, CBSD432, blind sigma 0-55,
crop 64, batch 8) is trained for STEPS steps, then scored on CBSD68 and Kodak24 at sigma
25 twice in one process -- padding with zeros (the former `pad_to_multiple`, patched in
for this comparison only) and as the U-Net pads now -- with the mean, the worst image,
how many images came out worse than their noisy input, and the mean over the images
neither padding failed on (what the padding changes where nothing diverged).

    python benchmarks/bench_padding.py train    # STEPS steps per network (resumable)
    python benchmarks/bench_padding.py eval     # results/padding.csv (+ .meta.json)
"""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import common
from bench_front import BATCH, CROP, PRESET, TEST_DATA, train_uniform, trained
from bench_quality import ROOT, Runner, rel

logger = logging.getLogger("bench_padding")

NAME = "padding"
NETWORKS = ("naf_bn", "naf_bn_lite", "naf", "cbr")
STEPS, SEED, THREADS, SIGMA = 2000, 0, 2, 25.0
PADDINGS = ("zeros", "edge")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("train", "eval"))
    p.add_argument("--networks", default=",".join(NETWORKS), help="uniform networks (default: %(default)s)")
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "padding")
    return p.parse_args(argv)


def run_dir(workdir: Path, network: str) -> Path:
    return workdir / f"{network}-{STEPS}-s{SEED}"


def train(args: argparse.Namespace, networks: list[str]) -> None:
    runner = Runner(args.workdir)
    for net in networks:
        train_uniform(runner, run_dir(args.workdir, net), net, STEPS, SEED, threads=THREADS)


@contextmanager
def zero_padding():
    """The U-Net's former padding (zeros at the bottom/right), for the comparison only."""
    from hwnas.searchspaces import nafnet_unet

    def pad_zeros(x: torch.Tensor, multiple: int) -> torch.Tensor:
        h, w = x.shape[-2:]
        return F.pad(x, (0, (multiple - w % multiple) % multiple, 0, (multiple - h % multiple) % multiple))

    now = nafnet_unet.pad_to_multiple
    nafnet_unet.pad_to_multiple = pad_zeros
    try:
        yield
    finally:
        nafnet_unet.pad_to_multiple = now


def per_image(predict, folder: Path, padding: str, sigma: float = SIGMA) -> list[dict]:
    """`hwnas eval`'s rows for `folder` at `sigma`, the U-Net padding with `padding`."""
    from hwnas.searchspaces.denoising_eval import evaluate_folder

    with zero_padding() if padding == "zeros" else nullcontext():
        return evaluate_folder(predict, folder, sigma=sigma, seed=0)


def input_psnrs(folder: Path, names: list[str]) -> dict[str, float]:
    """Each image's noisy input PSNR at SIGMA (what a denoised image must beat)."""
    from hwnas.searchspaces.denoising_eval import noisy_image
    from hwnas.searchspaces.images import read_rgb
    from hwnas.searchspaces.metrics import psnr, to_uint8

    scores = {}
    for name in names:
        clean = read_rgb(folder / name)
        scores[name] = psnr(to_uint8(clean), to_uint8(noisy_image(clean, SIGMA, 0, name)))
    return scores


def summary(rows: list[dict], inputs: dict[str, float], common: set[str]) -> dict:
    """Mean PSNR/SSIM, the worst image, the images below their input (`inputs`: noisy PSNR per image), and the
    mean over `common` (the images no padding failed on: the like-for-like difference)."""
    psnrs = np.array([r["psnr"] for r in rows])
    worst = rows[int(psnrs.argmin())]
    return {"images": len(rows), "psnr": round(float(psnrs.mean()), 4),
            "ssim": round(float(np.mean([r["ssim"] for r in rows])), 4), "worst_psnr": round(float(psnrs.min()), 2),
            "worst_image": worst["image"], "worse_than_input": sum(r["psnr"] < inputs[r["image"]] for r in rows),
            "common_images": len(common),
            "psnr_common": round(float(np.mean([r["psnr"] for r in rows if r["image"] in common])), 4)}


def evaluate(args: argparse.Namespace, networks: list[str]) -> None:
    from hwnas.deploy.inference import open_model

    path = common.RESULTS_DIR / f"{NAME}.csv"
    torch.set_num_threads(THREADS)
    settings = {"preset": PRESET, "steps": STEPS, "seed": SEED, "crop": CROP, "batch": BATCH, "sigma": SIGMA,
                "threads": THREADS}
    with common.record_run(NAME, settings=settings):
        done = common.done_keys(path, ["network", "dataset"])
        for net in networks:
            run = run_dir(args.workdir, net)
            if not trained(run):
                raise SystemExit(f"error: {rel(run)} is not trained; run the train stage first.")
            model, trained_id = open_model(run / "model.pt"), common.model_id(run / "model.pt")
            for folder in TEST_DATA:
                if (net, folder.name) in done:
                    continue
                started = time.perf_counter()
                rows = {padding: per_image(model.predict, folder, padding) for padding in PADDINGS}
                inputs = input_psnrs(folder, [r["image"] for r in rows["edge"]])
                failed = {r["image"] for part in rows.values() for r in part if r["psnr"] < inputs[r["image"]]}
                common_set = set(inputs) - failed
                seconds = round(time.perf_counter() - started, 1)
                for padding in PADDINGS:
                    s = summary(rows[padding], inputs, common_set)
                    common.append_row(path, {"network": net, "steps": STEPS, "padding": padding, "dataset": folder.name,
                                             "sigma": f"{SIGMA:g}", **s, "model": trained_id, "seconds": seconds})
                    logger.info("%s %s %s: %.3f dB (%.3f on the %d images neither failed), worst %.2f, %d below input",
                                net, padding, folder.name, s["psnr"], s["psnr_common"], len(common_set),
                                s["worst_psnr"], s["worse_than_input"])


def main(argv=None) -> None:
    args = parse_args(argv)
    networks = common.chosen(args.networks, NETWORKS)
    (train if args.stage == "train" else evaluate)(args, networks)


if __name__ == "__main__":
    common.run_main(main)
