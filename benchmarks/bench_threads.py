"""Threads and OpenMP wait policy per workload: what `hwnas.runs.compute.auto_threads` is set from.

At small tensors a second torch thread costs more in synchronisation than it computes,
and OpenMP's passive wait policy (idle threads sleep; the `hwnas` command's default,
which saved a run under load) makes every hand-over a wake-up. Measured here per
workload -- a training step of all-`naf` and a sampled search iteration (weight step +
architecture step) at the `tiny`, `small` and `paper` presets, batch 8 at the preset's
training crop -- under three settings, each in its own process (OpenMP reads the
policy when torch loads):

- `threads1`: one torch thread (no policy matters);
- `passive2`: two threads, OMP_WAIT_POLICY=PASSIVE;
- `active2`: two threads, OMP_WAIT_POLICY=ACTIVE;

on an idle machine and beside one competing process that keeps a core busy (`busy`:
another training or a test suite, as on a shared machine). Settings are interleaved
over `--repeats` rounds. `results/threads.csv`, one row per (condition, repeat,
workload, setting) with the median step time and the work per step (forward MACs).

    python benchmarks/bench_threads.py
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

log = logging.getLogger("bench_threads")

NAME = "threads"
ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("tiny:search", "tiny:train", "small:search", "small:train", "paper:train")
SETTINGS = {"threads1": (1, None), "passive2": (2, "PASSIVE"), "active2": (2, "ACTIVE")}
CONDITIONS = ("idle", "busy")
BATCH = 8


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per setting and repeat (default 8)")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "THREADS"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(workload: str, threads: int, steps: int) -> dict:
    """Median seconds of one step of `workload` (preset:kind) with `threads` torch threads."""
    import torch

    from hwnas.tables.cost import count_macs
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.space import Architecture, freeze
    from hwnas.nas.supernet import arch_parameters, draw_gumbel, to_supernet, weight_parameters

    torch.set_num_threads(threads)
    preset, kind = workload.split(":")
    space = get_space("nafnet-unet").from_options(preset)
    crop = space.train_crops[preset]
    x = torch.rand(BATCH, 3, crop, crop)
    labels = {p.label: p.candidates for p in space.positions(crop)}
    plain = freeze(space, Architecture.uniform(space.name, labels, "naf"))
    macs = count_macs(plain, (BATCH, 3, crop, crop))
    if kind == "train":
        nets, opts = [plain.train()], [torch.optim.AdamW(plain.parameters(), lr=1e-4)]
    else:  # the bilevel iteration: a weight step, then an architecture step
        net = to_supernet(space.build(), "sampled").train()
        nets, opts = [net, net], [torch.optim.AdamW(weight_parameters(net), lr=1e-4), torch.optim.Adam(arch_parameters(net), lr=0.02)]
    count = [0]

    def step():
        for net, opt in zip(nets, opts):
            count[0] += 1
            if kind == "search":
                draw_gumbel(net, 0, count[0])
            opt.zero_grad(set_to_none=True)
            ((net(x) - x) ** 2).mean().backward()
            opt.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"step_s": statistics.median(times), "macs": macs, "threads": torch.get_num_threads()}


def run_setting(workload: str, setting: str, steps: int) -> dict:
    threads, policy = SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--worker", workload, str(threads), "--steps", str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: the {workload}/{setting} worker failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Competitor:
    """One process keeping a core busy for as long as the `with` block runs (the `busy` condition)."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.steps)))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    path = args.results / f"{NAME}.csv"
    done = common.done_keys(path, ["condition", "repeat", "workload", "setting"])
    workloads, settings = args.workloads.split(","), list(SETTINGS)
    with common.record_run(NAME, settings={"batch": BATCH, "steps": args.steps, "settings": SETTINGS}, results_dir=args.results):
        for condition in args.conditions.split(","):
            for repeat in range(args.repeats):
                order = settings if repeat % 2 == 0 else settings[::-1]
                for workload in workloads:
                    for setting in order:
                        if (condition, str(repeat), workload, setting) in done:
                            continue
                        load = common.load_average()
                        if condition == "busy":
                            with Competitor():
                                r = run_setting(workload, setting, args.steps)
                        else:
                            r = run_setting(workload, setting, args.steps)
                        log.info("%s %d %-13s %-9s %.4f s/step", condition, repeat, workload, setting, r["step_s"])
                        common.append_row(path, {"condition": condition, "repeat": repeat, "workload": workload,
                                                 "setting": setting, "step_s": r["step_s"], "forward_macs": r["macs"],
                                                 "threads": r["threads"], "load_1min": load[0] if load else ""})


if __name__ == "__main__":
    common.run_main(main)
