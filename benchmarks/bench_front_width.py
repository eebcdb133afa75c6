"""Where the front's quality lives: the block, the width, or the depth (issue 22's follow-up).

At the front's budget every uniform network of the `small` preset scores within 0.1 dB on
CBSD68 sigma 25 (all-naf, all-cbr_e4, all-cbr), while a narrower network loses 0.2-1 dB
(front.csv's `narrower` rows): the quality follows the channel width, not the block. So
what a user gets without a search includes a *wider* cheap network, and a search among the
blocks at a fixed width can beat the front only where width does not pay. This benchmark
measures that baseline: uniform networks at widths above the preset's 16, trained with the
front's recipe (SWEEP_LR, FRONT_STEPS steps, CBSD432 blind sigma 0-55, crop 64, batch 8,
one thread a run) and set beside the preset-width uniform networks of bench_front_lr.
`--shapes` places capacity at some levels only (SHAPES): more blocks where the resolution is
low (1/8 and 1/16 of the image: where a block costs 0.75-0.9 ms against 2.7 at full
resolution, and where the paper's NAFNet keeps 20 of its 36 blocks), or more channels at full
resolution only -- the allocation a per-level search could find and uniform scaling cannot.
`--train-sigma 50` trains at one fixed, harder noise level instead of the blind range: where
denoising is harder the blocks may stop being interchangeable (at sigma 50 the blind-trained
all-naf already leads all-cbr by 0.19 dB, against 0.06 at sigma 25).

    python benchmarks/bench_front_width.py latency  # quiet machine: widened and preset-width networks, interleaved
    python benchmarks/bench_front_width.py train    # resumable; --jobs runs at a time, one thread each
    python benchmarks/bench_front_width.py train --widths none --shapes deep6,wide0  # capacity at some levels only
    python benchmarks/bench_front_width.py eval     # CBSD68 at sigma 25 and 50, zeros and edge padding
    python benchmarks/bench_front_width.py train --networks naf,cbr --widths 16 --train-sigma 50  # a harder task

Rows: `results/front_width.csv` (quality, size, training seconds) and
`results/front_width_latency.csv` (ONNX Runtime CPU end to end, 256x256, bench_front's rounds).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import common
from bench_front import (CANDIDATES, FRONT_STEPS, PRESET, SPACE, TEST_DATA, THREADS, IMAGE_SIZE, TRAIN_SIGMA,
                         refuse_busy, size_of, time_networks, train_record, train_uniform)
from bench_front_lr import SWEEP_LR, seeds_of, to_score
from bench_padding import PADDINGS, per_image
from bench_quality import ROOT, Runner, rel

logger = logging.getLogger("bench_front_width")

NAME = "front_width"
PRESET_WIDTH = 16  # the small preset's
WIDTHS = (20, 24)
NETWORKS = ("cbr",)  # the cheapest block: the one to widen
REFERENCES = ("naf", "cbr_e4", "cbr")  # timed beside them at the preset's width (bench_front_lr trained them)
SIGMAS = (25.0, 50.0)
# Capacity placed where it costs least, at the preset's width otherwise: more blocks at 1/8 (enc3) and 1/16
# (middle) resolution only; or more channels at full resolution only (level 0, and level 1 too), the rest as
# the preset (16, 32, 64, 128 and 256 in the middle).
SHAPES = {"deep6": {"enc_blocks": [1, 1, 2, 4], "middle_blocks": 6},
          "deep10": {"enc_blocks": [1, 1, 2, 6], "middle_blocks": 10},
          "wide0": {"level_widths": [24, 32, 64, 128, 256]},
          "wide01": {"level_widths": [24, 48, 64, 128, 256]}}


class Shape(NamedTuple):
    """One way to grow the preset's network: `label` names its runs, `options` are its space options."""

    label: str
    width: int  # at full resolution
    shape: str  # "" for a uniform widening (`width` alone), else a key of SHAPES
    options: dict


def shapes_of(widths: list[int], shapes: list[str]) -> list[Shape]:
    return ([Shape(f"w{w}", w, "", {"width": w}) for w in widths]
            + [Shape(n, SHAPES[n].get("level_widths", [PRESET_WIDTH])[0], n, SHAPES[n]) for n in shapes])


def option_flags(options: dict) -> tuple[str, ...]:
    """`-o key=value` flags for `hwnas train` (lists as YAML flow sequences)."""
    flat = {k: f"[{','.join(map(str, v))}]" if isinstance(v, list) else v for k, v in options.items()}
    return tuple(x for k, v in flat.items() for x in ("-o", f"{k}={v}"))


def layout_text(options: dict) -> str:
    """The `layout` column: encoder and middle block counts (the decoder's are the preset's) and channels per level."""
    from hwnas.contracts.config import SpaceSpec

    cfg = SpaceSpec(space=SPACE, preset=PRESET, options=options).create().config
    return (f"enc {','.join(map(str, cfg.enc_blocks))} mid {cfg.middle_blocks}; "
            f"channels {','.join(map(str, cfg.channels()))}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("latency", "train", "eval"))
    p.add_argument("--networks", default=",".join(NETWORKS), help="uniform candidates to widen (default: %(default)s)")
    p.add_argument("--widths", type=widths_of, default=",".join(map(str, WIDTHS)),
                   help="base widths, even, above the preset's, or none (default: %(default)s)")
    p.add_argument("--shapes", default="none",
                   help=f"capacity placed at some levels only: {', '.join(SHAPES)} (see SHAPES), or none (default: %(default)s)")
    p.add_argument("--train-sigma", type=train_sigma_of, default=TRAIN_SIGMA,
                   help="training noise, a level or a range; a harder task than the front's blind range is a fixed "
                        "high level, e.g. 50 (default: %(default)s)")
    p.add_argument("--seeds", type=seeds_of, default="0", help="seeds (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time, one thread each (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="latency: time even on a busy machine (the rows say the load)")
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "front_width")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    args = p.parse_args(argv)
    args.networks = common.chosen(args.networks, CANDIDATES)
    args.shape_names = [] if args.shapes == "none" else common.chosen(args.shapes, tuple(SHAPES), "shapes")
    args.shapes = shapes_of(args.widths, args.shape_names)
    return args


def widths_of(text: str) -> list[int]:
    """A `--widths 20,24` value, or none (else one line saying what is wrong)."""
    if text == "none":
        return []
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        raise SystemExit(f"error: --widths {text!r} is not a comma-separated list of integers; give e.g. 20,24.") from None
    bad = [w for w in widths if w < 2 or w % 2]
    if bad:
        raise SystemExit(f"error: width {bad[0]} is not an even number >= 2; give e.g. 20,24.")
    return widths


def train_sigma_of(text: str) -> str:
    """A `--train-sigma 50` or `0,55` value, as `hwnas train --sigma` takes it (else one line saying what is wrong)."""
    from hwnas.cli.common import parse_level
    from hwnas.contracts.errors import HwnasError

    wrong = SystemExit(f"error: --train-sigma {text!r} is not a noise level or a range low,high; give e.g. 50 or 0,55.")
    try:
        level = parse_level(text)
    except HwnasError:
        raise wrong from None
    levels = list(level) if isinstance(level, tuple) else [level]
    # parse_level reads the shape only; the order, sign and a finite value are what `hwnas train` would refuse later,
    # in a child process.
    if not all(math.isfinite(v) for v in levels) or min(levels) < 0 or levels != sorted(levels):
        raise wrong
    return ",".join(f"{v:g}" for v in levels)


def run_dir(workdir: Path, network: str, label: str, seed: int, sigma: str = TRAIN_SIGMA) -> Path:
    """A training's folder; one trained at another noise than the front's names it (`-t50`)."""
    noise = "" if sigma == TRAIN_SIGMA else f"-t{sigma.replace(',', '_')}"
    return workdir / f"{network}-{label}{noise}-{FRONT_STEPS}-lr{SWEEP_LR:g}-s{seed}"


def spec_arch(candidate: str, options: dict) -> dict[str, str]:
    """front.csv-style `spec` and `arch` columns of all-`candidate` with these space options (a width, a depth)."""
    from hwnas.contracts.config import SpaceSpec
    from hwnas.nas import baselines as bl
    from hwnas.nas.front import network_columns

    spec = SpaceSpec(space=SPACE, preset=PRESET, options={"candidates": list(CANDIDATES), **options})
    return network_columns(spec, bl.uniform(spec.create(), IMAGE_SIZE, candidate))


def stage_latency(args) -> None:
    """The grown networks and the preset-width references, untrained, in the same interleaved rounds."""
    from hwnas.nas.front import network_of

    refuse_busy(args, "time")
    nets = [(n, s) for n in args.networks for s in args.shapes] + [(n, Shape("w16", PRESET_WIDTH, "", {})) for n in REFERENCES]
    networks = [(f"{n}-{s.label}", *network_of(spec_arch(n, s.options))) for n, s in nets]
    time_networks(args, networks, [[{"network": n, "width": s.width, "shape": s.shape}] for n, s in nets],
                  f"{NAME}_latency")


def stage_train(args) -> None:
    runner = Runner(args.workdir)
    todo = list(itertools.product(args.networks, args.shapes, args.seeds))

    def one(item: tuple[str, Shape, int]) -> None:
        net, shape, seed = item
        train_uniform(runner, run_dir(args.workdir, net, shape.label, seed, args.train_sigma), net, FRONT_STEPS, seed,
                      threads=THREADS, lr=SWEEP_LR, options=option_flags(shape.options), sigma=args.train_sigma)

    settings = {"preset": PRESET, "steps": FRONT_STEPS, "lr": SWEEP_LR, "networks": args.networks,
                "widths": args.widths, "shapes": args.shape_names, "seeds": args.seeds, "threads": THREADS, "jobs": args.jobs,
                "train_sigma": args.train_sigma}
    with common.record_run(NAME, settings=settings, results_dir=args.results):
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(one, item) for item in todo]:
                future.result()


def stage_eval(args) -> None:
    """CBSD68 (the front's metric) at SIGMAS, padding with zeros (as every front score) and edge pixels."""
    import torch
    from hwnas.deploy.inference import open_model

    path = args.results / f"{NAME}.csv"
    torch.set_num_threads(2)
    folder = TEST_DATA[0]
    settings = {"preset": PRESET, "steps": FRONT_STEPS, "lr": SWEEP_LR, "sigmas": SIGMAS, "seeds": args.seeds,
                "shapes": args.shape_names, "train_sigma": args.train_sigma}
    with common.record_run(NAME, settings=settings, results_dir=args.results):
        done = common.done_keys(path, ["run"])
        for net, shape, seed in itertools.product(args.networks, args.shapes, args.seeds):
            run = run_dir(args.workdir, net, shape.label, seed, args.train_sigma)
            if not to_score(run, done):
                continue
            started = time.perf_counter()
            model = open_model(run / "model.pt")
            steps, seconds = train_record(run)
            row = {"network": net, "width": shape.width, "seed": seed, "lr": SWEEP_LR, "steps": steps, **size_of(run)}
            for sigma, padding in itertools.product(SIGMAS, PADDINGS):
                rows = per_image(model.predict, folder, padding, sigma)
                row[f"cbsd68_s{sigma:g}_psnr_{padding}"] = round(sum(r["psnr"] for r in rows) / len(rows), 4)
            common.append_row(path, {**row, "train_seconds": round(seconds, 1), "shape": shape.shape,
                                     "layout": layout_text(shape.options), "train_sigma": args.train_sigma,
                                     "model": common.model_id(run / "model.pt"),
                                     "eval_seconds": round(time.perf_counter() - started, 1), "run": rel(run)})
            logger.info("%s %s s%d: CBSD68 s25 %.3f dB (zeros), s50 %.3f", net, shape.label, seed,
                        row["cbsd68_s25_psnr_zeros"], row["cbsd68_s50_psnr_zeros"])


STAGES = {"latency": stage_latency, "train": stage_train, "eval": stage_eval}


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    STAGES[args.stage](args)


if __name__ == "__main__":
    common.run_main(main)
