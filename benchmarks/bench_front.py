"""The latency-quality front at a scale this machine trains to a plateau (issue 22).

Does searching beat what an engineer picks without a search? Answered at the `small`
preset of `nafnet-unet` (the paper's four levels at width 16, 12 positions), where one
training run takes minutes on 2 cores, in stages that each resume where they stopped:

1. `plateau`: the training budget B. The uniform networks all-`naf` and all-`cbr`
   trained from scratch at each length in PLATEAU_STEPS (the usual recipe: CBSD432,
   blind sigma 0-55, crop 64, batch 8, AdamW with a cosine to 1e-6), each scored on
   CBSD68 at sigma 25. B is the shortest length whose doubling gains <= PLATEAU_GAIN dB
   for every network (the run of 2B is a separate run with its own cosine, as a user
   training for 2B would get). Rows: `results/front_plateau.csv`.
2. `report` (via report.py): the plateau table on the results page.

Every training runs with one torch thread (`--threads 1`, see `hwnas.compute`: at the
small preset one thread is within 1.3x of two, and it leaves the other core to other
work); the wall-clock and load of every run is in its row. Intermediate runs live in
`--workdir` (default benchmarks/work/front, git-ignored). From the repository root:

    python benchmarks/bench_front.py plateau
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import common
from bench_quality import DATASETS, ROOT, Runner, rel

logger = logging.getLogger("bench_front")

NAME = "front"
SPACE, PRESET, IMAGE_SIZE = "nafnet-unet", "small", 256
TRAIN_DATA = DATASETS / "CBSD432"
TEST_DATA = (DATASETS / "CBSD68", DATASETS / "Kodak24")
TRAIN_SIGMA, PLATEAU_SIGMA = "0,55", "25"
CROP, BATCH, STEPS_PER_EPOCH = 64, 8, 100
PLATEAU_STEPS = (3000, 6000, 1500, 12000)  # in the order they run: B candidates and their doublings
PLATEAU_NETS = ("naf", "cbr")
PLATEAU_GAIN = 0.1  # dB: 2B gains at most this much over B
THREADS = 1
# The front's space: the paper's four candidates (naf first: the base network), a wider cbr and
# skip -- at the small preset cbr is as good as naf and faster, so without these there is
# nothing to trade (issue 22, item 2).
CANDIDATES = ("naf", "naf_bn", "naf_bn_lite", "cbr", "cbr_e4", "skip")
SPACE_OPTIONS = ("-o", f"candidates=[{','.join(CANDIDATES)}]")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("plateau",))
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "front")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--steps", default=",".join(map(str, PLATEAU_STEPS)),
                   help="plateau lengths (total steps, multiples of 100), in order (default: %(default)s)")
    p.add_argument("--networks", default=",".join(PLATEAU_NETS), help="uniform candidates (default: %(default)s)")
    return p.parse_args(argv)


def trained(run: Path) -> bool:
    return (run / "model.pt").exists()


def train_record(run: Path) -> tuple[int, float]:
    """(steps, training seconds) of a finished run, from its metrics.csv."""
    rows = list(csv.DictReader(open(run / "metrics.csv", newline="")))
    return sum(int(float(r["steps"])) for r in rows), float(rows[-1]["train_seconds"])


def train_uniform(runner: Runner, run: Path, candidate: str, steps: int, seed: int) -> None:
    """Train all-`candidate` for `steps` steps at the study's recipe (resumes an interrupted run)."""
    if trained(run):
        return
    if steps % STEPS_PER_EPOCH:
        raise SystemExit(f"error: {steps} steps is not a multiple of {STEPS_PER_EPOCH}; give lengths in hundreds.")
    resume = ["--resume"] if (run / "checkpoints").exists() else []
    flags = [] if resume else ["--preset", PRESET, *SPACE_OPTIONS, "--uniform", candidate, "--data", rel(TRAIN_DATA),
                               "--sigma", TRAIN_SIGMA, "--crop", CROP, "--batch-size", BATCH,
                               "--epochs", steps // STEPS_PER_EPOCH, "--steps-per-epoch", STEPS_PER_EPOCH,
                               "--seed", seed]
    runner.hwnas("train", *flags, "--threads", THREADS, "--out", rel(run), *resume, log=f"train-{run.name}.log")


def score(runner: Runner, run: Path, sigmas: str, datasets: tuple[Path, ...]) -> dict:
    """`hwnas eval` of a trained run (cached in the run folder): {dataset: {sigma: {psnr, ssim}}}."""
    out = run / f"eval-s{sigmas.replace(',', '_')}-{'_'.join(d.name for d in datasets)}.csv"
    if not out.exists():
        data = [x for folder in datasets for x in ("--data", rel(folder))]
        runner.hwnas("eval", "--model", rel(run / "model.pt"), *data, "--sigma", sigmas, "--seed", 0,
                     "--threads", THREADS, "--out", rel(out), log=f"eval-{run.name}.log")
    scores: dict = {}
    for row in csv.DictReader(open(out, newline="")):
        scores.setdefault(row["dataset"], {})[row["sigma"]] = {"psnr": float(row["psnr"]), "ssim": float(row["ssim"])}
    return scores


def stage_plateau(args, runner: Runner) -> None:
    path = args.results / f"{NAME}_plateau.csv"
    steps_list = [int(s) for s in args.steps.split(",") if s.strip()]
    nets = [n.strip() for n in args.networks.split(",") if n.strip()]
    settings = {"preset": PRESET, "crop": CROP, "batch": BATCH, "sigma": TRAIN_SIGMA, "threads": THREADS,
                "lengths": steps_list, "networks": nets, "gain_goal_db": PLATEAU_GAIN}
    with common.record_run(f"{NAME}_plateau", settings=settings, results_dir=args.results):
        done = common.done_keys(path, ["network", "steps", "seed"])
        for steps in steps_list:
            for net in nets:
                if (net, str(steps), "0") in done:
                    continue
                run = args.workdir / "plateau" / f"{net}-{steps}-s0"
                load0, t0 = common.load_average(), time.time()
                train_uniform(runner, run, net, steps, seed=0)
                wall = time.time() - t0
                s = score(runner, run, PLATEAU_SIGMA, TEST_DATA[:1])["CBSD68"][PLATEAU_SIGMA]
                n, seconds = train_record(run)
                common.append_row(path, {"network": net, "steps": steps, "seed": 0, "cbsd68_s25_psnr": s["psnr"],
                                         "cbsd68_s25_ssim": s["ssim"], "train_steps": n, "train_seconds": round(seconds, 1),
                                         "wall_seconds": round(wall, 1), "load_start": load0[:1] and load0[0],
                                         "load_end": common.load_average()[:1] and common.load_average()[0],
                                         "run": rel(run)})
                logger.info("%s %d steps: CBSD68 s25 %.2f dB (%.0f s)", net, steps, s["psnr"], seconds)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir)
    {"plateau": stage_plateau}[args.stage](args, runner)


if __name__ == "__main__":
    common.run_main(main)
