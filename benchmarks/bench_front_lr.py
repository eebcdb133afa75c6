"""The front's uniform networks at the sweeps' learning rate (issue 22's confound).

The front (`bench_front.py`) compares each target's searched networks with baselines trained
by `hwnas sweep --baselines` at the search's learning rate (SWEEP_LR), but its uniform
networks (stage `uniform`) were trained by `hwnas train` at its default, half that. The
uniform rows -- all-naf, the stretch goal's reference, among them -- were so trained with
another recipe than everything they are set beside. This stage trains them again at
SWEEP_LR (same budget, data, crop, batch and seeds) and scores each on CBSD68 at sigma 25
twice in one process: padding whole images with zeros, as every front score was measured,
and with edge pixels, as the U-Net pads now (`bench_padding`). Rows:
`results/front_uniform_lr.csv`; report_front sets them beside the rows at the former
rate and judges the front's goals again with them.

    python benchmarks/bench_front_lr.py train   # resumable; --jobs runs at a time, one thread each
    python benchmarks/bench_front_lr.py eval    # results/front_uniform_lr.csv (+ .meta.json)

The plateau at this rate (the plateau stage of bench_front ran at the former one) is the same
two commands with `--steps 12000` (2B): its rows go to the same file, told apart by `steps`.
`eval --sigma 50` scores the same runs at another noise level (a harder task, where the
blocks may rank otherwise) into a file of its own, `results/front_uniform_lr_s50.csv`.
"""

from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

import common
from hwnas.contracts.config import SearchConfig
from bench_front import (BATCH, CROP, FRONT_STEPS, PRESET, TEST_DATA, THREADS, TRAIN_SIGMA, check_length, train_record,
                         train_uniform, trained)
from bench_padding import PADDINGS, SIGMA, per_image
from bench_quality import ROOT, Runner, rel

logger = logging.getLogger("bench_front_lr")

NAME = "front_uniform_lr"
SWEEP_LR = SearchConfig.model_fields["lr"].default  # what every network of a front sweep trained at
# all-naf first (the stretch goal's reference and the front's slowest point), then the fastest baselines' best.
NETWORKS = ("naf", "cbr_e4", "cbr")
SEEDS = (0, 1)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("train", "eval"))
    p.add_argument("--networks", default=",".join(NETWORKS), help="uniform networks, in order (default: %(default)s)")
    p.add_argument("--steps", type=int, default=FRONT_STEPS,
                   help="training length, a multiple of 100 (default: the front's budget, %(default)s)")
    p.add_argument("--seeds", type=seeds_of, default=",".join(map(str, SEEDS)), help="seeds (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=SIGMA,
                   help="eval: the noise level to score at; other than %(default)g, rows go to a file of its own")
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time, one thread each (default: %(default)s)")
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "front_lr")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    return p.parse_args(argv)


def results_name(sigma: float) -> str:
    """The results file's name: NAME at the front's sigma, else one per noise level (its columns name the sigma)."""
    return NAME if sigma == SIGMA else f"{NAME}_s{sigma:g}"


def run_dir(workdir: Path, network: str, seed: int, steps: int = FRONT_STEPS) -> Path:
    return workdir / f"{network}-{steps}-lr{SWEEP_LR:g}-s{seed}"


def seeds_of(text: str) -> list[int]:
    """A `--seeds 0,1` value as a list of ints (else one line saying what is wrong)."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds {text!r} is not a comma-separated list of integers; give e.g. 0,1.") from None


def train(args: argparse.Namespace, networks: list[str]) -> None:
    runner = Runner(args.workdir)
    todo = [(net, seed) for net in networks for seed in args.seeds]

    def one(item: tuple[str, int]) -> None:
        net, seed = item
        train_uniform(runner, run_dir(args.workdir, net, seed, args.steps), net, args.steps, seed, threads=THREADS,
                      lr=SWEEP_LR)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [pool.submit(one, item) for item in todo]:
            future.result()


def to_score(run: Path, done: set[tuple[str, ...]]) -> bool:
    """Whether `run` still needs its row: not in the results yet (`done`, by run folder) and trained (else a warning)."""
    if (rel(run),) in done:
        return False
    if not trained(run):
        logger.warning("%s is not trained yet; skipped (run the train stage)", rel(run))
        return False
    return True


def scored(run: Path, folder: Path, sigma: float) -> dict:
    """A trained run's model scored on `folder` at `sigma` with each padding: its training's `steps`, the mean and
    worst image PSNR per padding (`<folder>_s<sigma>_psnr_zeros`, `..._worst_zeros`, ...), its `train_seconds`, the
    `model` id and the `eval_seconds`."""
    from hwnas.deploy.inference import open_model

    started = time.perf_counter()
    model = open_model(run / "model.pt")
    scores = {padding: per_image(model.predict, folder, padding, sigma) for padding in PADDINGS}
    steps, seconds = train_record(run)
    column = f"{folder.name.lower()}_s{sigma:g}"
    row: dict = {"steps": steps}
    for padding, rows in scores.items():
        row[f"{column}_psnr_{padding}"] = round(sum(r["psnr"] for r in rows) / len(rows), 4)
        row[f"{column}_worst_{padding}"] = round(min(r["psnr"] for r in rows), 2)
    return {**row, "train_seconds": round(seconds, 1), "model": common.model_id(run / "model.pt"),
            "eval_seconds": round(time.perf_counter() - started, 1)}


def evaluate(args: argparse.Namespace, networks: list[str]) -> None:
    name = results_name(args.sigma)
    path = args.results / f"{name}.csv"
    torch.set_num_threads(2)
    settings = {"preset": PRESET, "steps": args.steps, "lr": SWEEP_LR, "crop": CROP, "batch": BATCH,
                "sigma": TRAIN_SIGMA, "train_threads": THREADS, "seeds": args.seeds, "eval_sigma": args.sigma}
    folder = TEST_DATA[0]  # CBSD68: the front's metric
    column = f"cbsd68_s{args.sigma:g}"
    with common.record_run(name, settings=settings, results_dir=args.results):
        done = common.done_keys(path, ["run"])  # the run folder names network, length and seed
        for net in networks:
            for seed in args.seeds:
                run = run_dir(args.workdir, net, seed, args.steps)
                if not to_score(run, done):
                    continue
                row = {"network": net, "seed": seed, "lr": SWEEP_LR, **scored(run, folder, args.sigma)}
                common.append_row(path, {**row, "run": rel(run)})
                logger.info("%s s%d at lr %g: CBSD68 s%g %.3f dB (zeros) / %.3f (edge)", net, seed, SWEEP_LR,
                            args.sigma, row[f"{column}_psnr_zeros"], row[f"{column}_psnr_edge"])


def main(argv=None) -> None:
    args = parse_args(argv)
    networks = common.chosen(args.networks, NETWORKS)
    check_length(args.steps)  # before record_run: a typo leaves no failed run in the sidecar
    if not 0 < args.sigma <= 255:
        raise SystemExit(f"error: --sigma {args.sigma:g} is not a noise level on the 0-255 scale; give e.g. 50.")
    if args.stage == "train":
        settings = {"preset": PRESET, "steps": args.steps, "lr": SWEEP_LR, "networks": networks, "seeds": args.seeds,
                    "threads": THREADS, "jobs": args.jobs}
        with common.record_run(NAME, settings=settings, results_dir=args.results):
            train(args, networks)
    else:
        evaluate(args, networks)


if __name__ == "__main__":
    common.run_main(main)
