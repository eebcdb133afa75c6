"""Throughput of `search` and `train` at the paper preset on this CPU: which compute options pay.

One training step of all-`naf` (NAFNet-w32: forward, MSE, backward, AdamW) and one
sampled-mode search iteration (super-net weight step + architecture step), batch 8 x
crop 64 on CBSD432 crops, under each option, against today's eager loop (float32,
contiguous, torch's default threads):

- `threads1`: one torch thread instead of the default (every usable core);
- `passive`: OMP_WAIT_POLICY=PASSIVE, idle OpenMP threads sleep instead of spinning
  (the default, ACTIVE-then-sleep, spins: on a shared machine spinning threads fight
  the other processes for the cores);
- `channels_last`: channels-last memory format for the network and batches;
- `bf16`: bf16 autocast of the forward pass (the loss in float32);
- `compile`: `torch.compile` of the network (compile time reported apart);
- `data`: the time the loader takes to make one batch from the decoded images, beside a
  step's time: what a background loader (`--prefetch`) can hide at most.

Each variant runs in its own process (threads and compilation are per process), after
`--warmup` untimed steps, for `--steps` timed steps; the variants are interleaved over
`--repeats` rounds so that drift and load hit all alike. `results/throughput.csv` has one
row per (repeat, variant); the page reports the median ratio to eager per step kind.

    python benchmarks/bench_throughput.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

log = logging.getLogger("bench_throughput")

NAME = "throughput"
ROOT = Path(__file__).resolve().parent.parent
TRAIN_DATA = ROOT.parent / "shared" / "datasets" / "CBSD432"
VARIANTS = ("eager", "threads1", "passive", "channels_last", "bf16", "compile")
KINDS = ("train", "search")
CROP, BATCH = 64, 8


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=6, help="timed steps per variant and repeat (default 6)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--worker", nargs=2, metavar=("KIND", "VARIANT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- the worker: one variant in its own process ----------------------------------------------

def worker(kind: str, variant: str, steps: int, warmup: int) -> dict:
    import torch

    if variant == "threads1":
        torch.set_num_threads(1)
    compute_kwargs = dict(channels_last=variant == "channels_last", bf16=variant == "bf16")
    step, net, task = (train_step if kind == "train" else search_step)(**compute_kwargs)
    compile_s = None
    if variant == "compile":
        t0 = time.perf_counter()
        net.forward = torch.compile(net.forward)
        step()  # the first call compiles
        compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    data = []
    for i in range(steps):
        t0 = time.perf_counter()
        task.batch("train", seed=1, epoch=0, step=i, batch_size=BATCH)
        data.append(time.perf_counter() - t0)
    return {"step_s": statistics.median(times), "compile_s": compile_s, "data_s": statistics.median(data),
            "threads": torch.get_num_threads()}


def _task():
    from hwnas.contracts.config import TaskSpec
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.task import make_task

    space = get_space("nafnet-unet").from_options("paper")
    return space, make_task(TaskSpec(options={"data": str(TRAIN_DATA), "crop": CROP, "sigma": (0.0, 55.0)}), space)


def _forward(net, x, channels_last: bool, bf16: bool):
    import torch

    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x).float()
    return net(x)


def train_step(channels_last: bool, bf16: bool):
    import torch

    from hwnas.contracts.space import Architecture, freeze

    space, task = _task()
    labels = {p.label: p.candidates for p in space.positions(256)}
    net = freeze(space, Architecture.uniform(space.name, labels, "naf")).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x, y = task.batch("train", seed=0, epoch=0, step=0, batch_size=BATCH)

    def step():
        opt.zero_grad(set_to_none=True)
        task.loss(_forward(net, x, channels_last, bf16), y).backward()
        opt.step()

    return step, net, task


def search_step(channels_last: bool, bf16: bool):
    import torch

    from hwnas.nas.supernet import arch_parameters, draw_gumbel, to_supernet, weight_parameters

    space, task = _task()
    net = to_supernet(space.build(), "sampled").train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    w_opt = torch.optim.AdamW(weight_parameters(net), lr=1e-4)
    a_opt = torch.optim.Adam(arch_parameters(net), lr=0.02)
    x, y = task.batch("train", seed=0, epoch=0, step=0, batch_size=BATCH)
    count = [0]

    def step():  # weight step then architecture step, as the bilevel search does (the objective's own terms are negligible)
        for opt in (w_opt, a_opt):
            count[0] += 1
            draw_gumbel(net, 0, count[0])
            opt.zero_grad(set_to_none=True)
            task.loss(_forward(net, x, channels_last, bf16), y).backward()
            opt.step()

    return step, net, task


# -- the driver -------------------------------------------------------------------------------

def run_variant(kind: str, variant: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, variant, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if variant == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # read by OpenMP when torch loads, hence a process per variant
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: the {kind}/{variant} worker failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.warmup)))
        return
    path = args.results / f"{NAME}.csv"
    done = common.done_keys(path, ["repeat", "kind", "variant"])
    kinds, variants = args.kinds.split(","), args.variants.split(",")
    settings = {"preset": "paper", "crop": CROP, "batch": BATCH, "steps": args.steps, "warmup": args.warmup}
    with common.record_run(NAME, settings=settings, results_dir=args.results):
        for repeat in range(args.repeats):
            order = variants if repeat % 2 == 0 else variants[::-1]  # alternate the order between repeats
            for kind in kinds:
                for variant in order:
                    if (str(repeat), kind, variant) in done:
                        continue
                    load = common.load_average()
                    r = run_variant(kind, variant, args)
                    log.info("repeat %d %s %-14s %.3f s/step (data %.4f s)%s", repeat, kind, variant, r["step_s"], r["data_s"],
                             f", compile {r['compile_s']:.0f} s" if r["compile_s"] else "")
                    common.append_row(path, {"repeat": repeat, "kind": kind, "variant": variant, "step_s": r["step_s"],
                                             "steps_per_s": 1 / r["step_s"], "data_s": r["data_s"],
                                             "compile_s": r["compile_s"] if r["compile_s"] is not None else "",
                                             "threads": r["threads"], "load_1min": load[0] if load else ""})


if __name__ == "__main__":
    common.run_main(main)
