"""Benchmark: what does a search step cost next to training the network it searches?

One weight update (forward + backward + optimiser step) of the paper-preset super-net
in soft mode (the paper's: every candidate runs, weighted by alpha) and in sampled
mode (ours: one straight-through Gumbel path per step), against one training step of
the all-`naf` network (NAFNet), with the same batch size, crop and batches. Separately:
the architecture step (logits on a held-out batch, weights frozen) and the whole
bilevel iteration (weight step + architecture step, `hwnas.nas.searching.Search.step`).
Goals (issue 6): per weight update, sampled <= 1.5x and soft <= 4.5x the all-`naf`
step, in time and in peak memory.

Each variant runs in its own process (so its peak memory is its own), built exactly as
`hwnas search` / `hwnas train` build it (`hwnas.nas.searching.Search`; AdamW with
`hwnas train`'s settings for all-`naf`), and times `--warmup-steps` untimed then
`--steps` timed steps (each a different batch and, in sampled mode, a different path;
batch drawing included, as in the product). Time: the median step. Peak memory: the
process's peak resident set (`getrusage(RUSAGE_SELF).ru_maxrss`) at the end minus its
resident set (VmRSS) just before the network was built (interpreter, libraries and decoded images
excluded; weights, gradients, optimiser state and activations included).

Variants run in `--rounds` rounds, in a rotated order each round so drift from other
processes hits all alike; the page reports medians over rounds. One CSV row per
(round, variant), appended as each finishes; a rerun skips those already there.

Run from the repository root:

    python benchmarks/bench_search_cost.py --lut paper-ort.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS_DIR, append_row, done_keys, open_lut, record_run, run_main

log = logging.getLogger("bench_search_cost")

NAME = "search_cost"
SPACE, PRESET = "nafnet-unet", "paper"
VARIANTS = ("naf:train", "sampled:weight", "soft:weight", "sampled:arch", "soft:arch", "sampled:iteration", "soft:iteration")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python benchmarks/bench_search_cost.py --lut paper-ort.csv")
    p.add_argument("--lut", help="ONNX Runtime table of the paper preset at --image-size (default: the hwnas cache)")
    p.add_argument("--image-size", type=int, default=256, help="the table's image size (latency term only)")
    p.add_argument("--crop", type=int, default=64, help="training crop, pixels (default 64)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant and round (default 3)")
    p.add_argument("--warmup-steps", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="rounds over all variants (default 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on a shared 2-core machine two OpenMP threads "
                        "spin-wait on each other and a step's time depends on the other jobs more than on the step)")
    p.add_argument("--variant", action="append", choices=VARIANTS, help="only these variants (repeatable; default all)")
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default benchmarks/results)")
    return p.parse_args(argv)


# -- one variant, in its own process ------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def rss_mb() -> float:
    """This process's resident set now (MiB), from /proc (the peak where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def naf_stepper(space, task, args: argparse.Namespace):
    """A step of `hwnas train` on all-naf: AdamW(betas 0.9, 0.9) on the task loss of a train batch."""
    import torch

    from hwnas.contracts.space import Architecture, freeze

    positions = {p.label: p.candidates for p in space.positions(args.image_size)}
    net = freeze(space, Architecture.uniform(space.name, positions, "naf")).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.9), weight_decay=0.0)

    def step(i: int) -> None:
        x, y = task.batch("train", seed=0, epoch=0, step=i, batch_size=args.batch_size)
        loss = task.loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return net, step


def search_stepper(space, task, table, lut: Path, mode: str, phase: str, args: argparse.Namespace):
    """A step of `hwnas search` (bilevel, no warm-up) in `mode`: its weight step, arch step or both."""
    from hwnas.contracts.config import SearchConfig, SpaceSpec
    from hwnas.runs.rundir import RunDir
    from hwnas.nas.searching import Search

    config = SearchConfig(spec=SpaceSpec(space=SPACE, preset=PRESET), image_size=args.image_size, lut=str(lut),
                          crop=args.crop, batch_size=args.batch_size, mode=mode, warmup_epochs=0, epochs=1,
                          steps_per_epoch=10_000)
    search = Search(config, RunDir(Path("unused-run-dir")), space, task, table)  # writes nothing unless asked
    search.net.train()
    run = {"weight": search.weight_step, "arch": search.arch_step, "iteration": search.step}[phase]

    def step(i: int) -> None:
        search.progress.step = i  # a new batch (and Gumbel path) every step
        run()

    return search.net, step


def worker(args: argparse.Namespace) -> dict:
    """Build one variant, run its steps, return its times and peak memory."""
    import torch

    from hwnas.contracts.plugins import get_space

    torch.set_num_threads(args.threads)
    space = get_space(SPACE).from_options(PRESET)
    table, lut = open_lut(args.lut, space=space, image_size=args.image_size, threads=2, results_dir=args.results)
    from hwnas.contracts.config import TaskSpec
    from hwnas.contracts.task import make_task

    task = make_task(TaskSpec(options={"crop": args.crop}), space)
    task.batch("train", seed=0, epoch=0, step=0, batch_size=args.batch_size)  # images decoded before the baseline
    before = rss_mb()
    net_kind, phase = args.worker.split(":")
    torch.manual_seed(0)
    if net_kind == "naf":
        net, step = naf_stepper(space, task, args)
    else:
        net, step = search_stepper(space, task, table, lut, net_kind, phase, args)
    times = []
    for i in range(args.warmup_steps + args.steps):
        t0 = time.perf_counter()
        step(i)
        if i >= args.warmup_steps:
            times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in net.parameters())
    return {"times_s": times, "rss_before_mb": before, "rss_peak_mb": peak_rss_mb(), "params": params}


def run_variant(args: argparse.Namespace, variant: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--crop", str(args.crop),
           "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
           "--threads", str(args.threads), "--image-size", str(args.image_size), "--results", str(args.results)]
    if args.lut:
        cmd += ["--lut", args.lut]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"variant {variant} failed (exit {done.returncode}): {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the rounds ------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> None:
    import statistics

    csv_path = args.results / f"{NAME}.csv"
    variants = list(args.variant or VARIANTS)
    done = done_keys(csv_path, ["round", "variant"])
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for variant in order:
            if (str(r), variant) in done:
                continue
            log.info("round %d/%d: %s", r + 1, args.rounds, variant)
            out = run_variant(args, variant)
            net_kind, phase = variant.split(":")
            row = {"round": r, "variant": variant, "network": net_kind, "phase": phase,
                   "median_s": statistics.median(out["times_s"]), "min_s": min(out["times_s"]),
                   "steps": len(out["times_s"]), "peak_mb": out["rss_peak_mb"] - out["rss_before_mb"],
                   "rss_peak_mb": out["rss_peak_mb"], "params": out["params"], "crop": args.crop, "batch_size": args.batch_size,
                   "threads": args.threads}
            append_row(csv_path, row)
            log.info("  %.2f s/step, +%.0f MB peak", row["median_s"], row["peak_mb"])


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    from hwnas.contracts.plugins import get_space

    space = get_space(SPACE).from_options(PRESET)
    table, lut = open_lut(args.lut, space=space, image_size=args.image_size, results_dir=args.results)
    settings = {"space": SPACE, "preset": PRESET, "crop": args.crop, "batch_size": args.batch_size, "steps": args.steps,
                "warmup_steps": args.warmup_steps, "rounds": args.rounds, "threads": args.threads, "lut": lut.name,
                "memory": "peak RSS (getrusage ru_maxrss) at the end minus RSS (VmRSS) just before the network was built, one process per variant",
                "time": "median wall time of the timed steps, batch drawing included"}
    with record_run(NAME, settings=settings, results_dir=args.results):
        measure(args)


if __name__ == "__main__":
    run_main(main)
