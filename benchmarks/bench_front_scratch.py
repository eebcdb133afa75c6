"""The front's searched architectures trained from scratch: is the loss the architecture or its training? (issue 22)

At every target the front's searched networks scored up to 0.1 dB below the baselines of
equal latency (`results/front.csv`). A searched network is trained in two parts -- 1 500
super-net steps (its weights shared with every other candidate, one path sampled per step),
then 4 500 steps fine-tuning the inherited weights -- while a baseline trains from scratch
for all 6 000 (FRONT_STEPS). Either part can cost the margin: the architecture the search
chose, or weights that start from a shared super-net with a shorter schedule of their own.
This benchmark separates the two: each searched architecture (its `arch` in front.csv)
trained from scratch exactly as the baselines were (`hwnas train --arch`, the sweeps'
learning rate, FRONT_STEPS, data, crop, batch, the search's seed, one thread), scored on
CBSD68 at sigma 25 with zero padding (as every front score) and edge padding (as the
U-Net pads now). report_front sets each beside its fine-tuned score and the baselines'
front. Trained from scratch, a searched network costs its search on top of the budget, so
this measures the architecture, not a way to meet the goal at equal budget.

    python benchmarks/bench_front_scratch.py train   # resumable; --jobs runs at a time, one thread each
    python benchmarks/bench_front_scratch.py eval    # results/front_scratch.csv (+ .meta.json)

`front_scratch.csv` was trained with plain BatchNorm in the `naf_bn` candidates; since they
train with Batch Renormalization (`hwnas.searchspaces.batch_renorm`), the same study runs as
`--name front_scratch_renorm` (its own folder and results file), and report_front sets the two
side by side: same architectures, recipe and seeds, only the BatchNorm training differs.
"""

from __future__ import annotations

import argparse
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

import common
from bench_front import FRONT_STEPS, NAME as FRONT, TEST_DATA, THREADS, train_network
from bench_front_lr import SWEEP_LR, scored, to_score
from bench_padding import SIGMA
from bench_quality import ROOT, Runner, rel

logger = logging.getLogger("bench_front_scratch")

NAME = "front_scratch"
RENORM = "front_scratch_renorm"  # the study again once naf_bn trains with Batch Renormalization
# The order they train in, two at a time: the stretch goal's target (0.6x) and the target where the margin was
# smallest (0.75x) first.
NETWORKS = ("mu-0.1-target0.6x-seed0", "mu-0.1-target0.75x-seed0", "mu-0.1-target0.6x-seed1",
            "mu-0.1-target0.45x-seed0", "mu-0.1-target0.75x-seed1", "mu-0.1-target0.45x-seed1")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("train", "eval"))
    p.add_argument("--networks", default=",".join(NETWORKS),
                   help="searched networks of front.csv, by name, in order (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time, one thread each (default: %(default)s)")
    p.add_argument("--name", choices=(NAME, RENORM), default=NAME,
                   help="results file stem and default work folder: the plain-BatchNorm study or its rerun with Batch "
                        "Renormalization (default: %(default)s)")
    p.add_argument("--workdir", type=Path, help="run folders (default: benchmarks/work/<name>)")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    args = p.parse_args(argv)
    args.workdir = args.workdir or ROOT / "benchmarks" / "work" / args.name
    return args


def searched_rows(results: Path) -> dict[str, dict[str, str]]:
    """front.csv's searched rows by name (each with its `spec`, `arch` and `seed`)."""
    rows = common.read_rows(results / f"{FRONT}.csv")
    return {r["name"]: r for r in rows if r["kind"] == "searched"}


def space_options(spec: dict) -> tuple[str, ...]:
    """`-o KEY=VALUE` flags giving the space the searched network was built in (its spec's options; JSON is YAML)."""
    return tuple(x for key, value in spec.get("options", {}).items() for x in ("-o", f"{key}={json.dumps(value)}"))


def run_dir(workdir: Path, name: str) -> Path:
    return workdir / f"{name}-scratch-{FRONT_STEPS}-lr{SWEEP_LR:g}"


def train(args: argparse.Namespace, rows: dict[str, dict[str, str]], names: list[str]) -> None:
    runner = Runner(args.workdir)
    archs = args.workdir / "archs"
    archs.mkdir(parents=True, exist_ok=True)

    def one(name: str) -> None:
        row = rows[name]
        arch = archs / f"{name}.json"
        arch.write_text(json.dumps(json.loads(row["arch"]), indent=2) + "\n")
        train_network(runner, run_dir(args.workdir, name), ("--arch", rel(arch)), FRONT_STEPS, int(row["seed"]),
                      lr=SWEEP_LR, options=space_options(json.loads(row["spec"])))

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [pool.submit(one, name) for name in names]:
            future.result()


def evaluate(args: argparse.Namespace, rows: dict[str, dict[str, str]], names: list[str]) -> None:
    path = args.results / f"{args.name}.csv"
    torch.set_num_threads(2)
    settings = {"steps": FRONT_STEPS, "lr": SWEEP_LR, "train_threads": THREADS, "eval_sigma": SIGMA}
    folder = TEST_DATA[0]  # CBSD68: the front's metric
    column = f"cbsd68_s{SIGMA:g}"
    with common.record_run(args.name, settings=settings, results_dir=args.results):
        done = common.done_keys(path, ["run"])
        for name in names:
            run = run_dir(args.workdir, name)
            if not to_score(run, done):
                continue
            searched = rows[name]
            row = {"name": name, "target": searched["target"], "seed": searched["seed"],
                   f"{column}_psnr_finetuned_zeros": round(float(searched[f"psnr:CBSD68:sigma={SIGMA:g}:seed=0"]), 4),
                   **scored(run, folder, SIGMA)}
            common.append_row(path, {**row, "arch": searched["arch"], "run": rel(run)})
            logger.info("%s from scratch: CBSD68 s%g %.3f dB (zeros; fine-tuned %.3f) / %.3f (edge)", name, SIGMA,
                        row[f"{column}_psnr_zeros"], row[f"{column}_psnr_finetuned_zeros"], row[f"{column}_psnr_edge"])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"error: --jobs {args.jobs} runs nothing; give 1 or more.")
    rows = searched_rows(args.results)
    if not rows:
        raise SystemExit(f"error: {rel(args.results / f'{FRONT}.csv')} has no searched networks; run "
                         "`python benchmarks/bench_front.py front` first.")
    names = common.chosen(args.networks, list(rows))
    if args.stage == "train":
        settings = {"steps": FRONT_STEPS, "lr": SWEEP_LR, "networks": names, "threads": THREADS, "jobs": args.jobs}
        with common.record_run(args.name, settings=settings, results_dir=args.results):
            train(args, rows, names)
    else:
        evaluate(args, rows, names)


if __name__ == "__main__":
    common.run_main(main)
