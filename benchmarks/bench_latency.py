"""Benchmark: does the searched network run faster? End-to-end latency on ONNX Runtime (CPU).

The paper preset of `nafnet-unet` (NAFNet-width32, 36 positions) at 256x256: all-`naf`
(NAFNet itself), every other uniform network (all-`naf_bn`, all-`naf_bn_lite`,
all-`cbr`) and searched architectures, measured end to end in one run with the same
settings, plus their parameters and GMACs. Goal (issue 6): a searched network >= 2x
faster than all-`naf` (the paper reports about 2x on the SM8650).

Two stages, each resumable (`--stage all` runs both):

- `search`: one `hwnas search --preset paper --mode sampled` per `--latency-weight`,
  short (small crop and batch, few steps), steered by the ONNX Runtime table; each
  run's arch.json is copied to `results/archs/mu<MU>.json`. A finished search is not
  rerun; an interrupted one continues (`--resume`).
- `measure`: every network in each of `--repeats` repeats. A repeat is one call of the
  project's ONNX Runtime backend (`hwnas.backends.onnxruntime`: the `hwnas export`
  graph, `--threads` intra-op threads, all networks interleaved round by round, each
  timed call after an untimed one, the per-call overhead subtracted), so every network
  sees the same load. One CSV row per (repeat, network); a repeat already in the CSV is
  skipped. The page reports the median over repeats and the median per-repeat ratio
  to all-`naf`.

Run from the repository root:

    python benchmarks/bench_latency.py --lut paper-ort.csv
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from common import RESULTS_DIR, append_row, done_keys, open_lut, record_run, run_main

log = logging.getLogger("bench_latency")

NAME = "latency"
SPACE, PRESET = "nafnet-unet", "paper"
BASE = "naf"  # the reference network is all-BASE (NAFNet)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python benchmarks/bench_latency.py --lut paper-ort.csv")
    p.add_argument("--stage", choices=("search", "measure", "all"), default="all", help="what to run (default all)")
    p.add_argument("--lut", help="ONNX Runtime table of the paper preset at --image-size (default: the hwnas cache)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="repeats of the interleaved measurement (default 5)")
    p.add_argument("--runs", type=int, default=10, help="timed rounds per repeat (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds per repeat (default 2)")
    p.add_argument("--latency-weight", type=float, action="append", dest="latency_weights",
                   help="mu of a search to run (repeatable; default 0.1 and 1.0)")
    p.add_argument("--search-args", default="--crop 32 --batch-size 4 --epochs 3 --steps-per-epoch 20 --warmup-epochs 1",
                   help="extra `hwnas search` flags of the search stage (default: a few minutes each)")
    p.add_argument("--runs-dir", default="benchmarks/runs", help="where the search runs go (default benchmarks/runs)")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default benchmarks/results)")
    return p.parse_args(argv)


# -- stage 1: searches ------------------------------------------------------------------------


def mu_label(mu: float) -> str:
    return f"mu{mu:g}"


def search_command(args: argparse.Namespace, lut: Path, mu: float, out: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "hwnas", "search", "--space", SPACE, "--preset", PRESET, "--lut", str(lut),
           "--mode", "sampled", "--latency-weight", f"{mu:g}", *args.search_args.split(), "--out", str(out)]
    return cmd + (["--resume"] if resume else [])


def run_searches(args: argparse.Namespace, lut: Path, meta: dict) -> None:
    """One short sampled search per mu; its arch.json becomes results/archs/mu<MU>.json."""
    import shlex
    import shutil

    archs = args.results / "archs"
    for mu in args.latency_weights:
        target = archs / f"{mu_label(mu)}.json"
        if target.exists():
            log.info("search mu=%g: %s exists, skipped", mu, target)
            continue
        out = Path(args.runs_dir) / f"search-{mu_label(mu)}"
        cmd = search_command(args, lut, mu, out, resume=out.exists())
        shown = shlex.join(["python", *cmd[1:]])
        log.info("search mu=%g: %s", mu, shown)
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            raise SystemExit(f"the search for mu={mu:g} failed (exit {done.returncode}); rerun this stage to resume it.")
        archs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "summary.json", archs / f"{mu_label(mu)}.summary.json")
        shutil.copyfile(out / "arch.json", target)  # last: its presence marks the search done
        meta.setdefault("searches", {})[mu_label(mu)] = {"command": shown, "arch": str(target.relative_to(args.results))}


# -- stage 2: measurement ---------------------------------------------------------------------


def networks(space, image_size: int, archs_dir: Path) -> dict:
    """label -> (kind, Architecture): the uniform networks (all-BASE first), then the searched ones."""
    from hwnas.contracts.space import Architecture

    positions = {p.label: p.candidates for p in space.positions(image_size)}
    names = list(next(iter(positions.values())))
    out = {f"all-{n}": ("uniform", Architecture.uniform(space.name, positions, n)) for n in [BASE] + [n for n in names if n != BASE]}
    for path in sorted(archs_dir.glob("*.json")):
        if path.name.endswith(".summary.json"):
            continue
        arch = Architecture.load(path)
        arch.check(space.name, positions)
        out[f"searched-{path.stem}"] = ("searched", arch)
    return out


def static_facts(space, image_size: int, table, archs: dict) -> dict[str, dict]:
    """Per network: parameters, GMACs and the table's prediction (no measuring)."""
    from hwnas.tables.profiling import predict
    from hwnas.tables.cost import count_macs, count_params
    from hwnas.contracts.space import freeze

    shape = tuple(space.example_input(image_size).shape)
    out = {}
    for label, (kind, arch) in archs.items():
        net = freeze(space, arch).eval()
        out[label] = {"kind": kind, "params": count_params(net), "gmacs": count_macs(net, shape) / 1e9,
                      "predicted_ms": predict(table, space, image_size, arch, "lut").total_ms,
                      "naf_blocks": sum(1 for c in arch.choices.values() if c == BASE),
                      "choices": " ".join(f"{c}" for c in arch.choices.values())}
    return out


def measure(args: argparse.Namespace, space, table) -> None:
    import torch

    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
    from hwnas.contracts.space import Unit, freeze

    torch.set_num_threads(args.threads)
    csv_path = args.results / f"{NAME}.csv"
    archs = networks(space, args.image_size, args.results / "archs")
    facts = static_facts(space, args.image_size, table, archs)
    shape = tuple(space.example_input(args.image_size).shape)
    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=args.threads, warmup=args.warmup, runs=args.runs))
    done = done_keys(csv_path, ["repeat", "network"])
    for repeat in range(args.repeats):
        todo = [label for label in archs if (str(repeat), label) not in done]
        if not todo:
            continue
        measured = todo if f"all-{BASE}" in todo else [f"all-{BASE}"] + todo  # the reference shares the rounds
        log.info("repeat %d/%d: %s", repeat + 1, args.repeats, ", ".join(measured))
        units = [Unit(label, shape, freeze(space, archs[label][1]).eval(), kind="network") for label in measured]
        for m in backend.measure(units):
            if m.name not in todo:
                continue
            f = facts[m.name]
            append_row(csv_path, {
                "repeat": repeat, "network": m.name, "kind": f["kind"], "median_ms": m.median_ms, "p10_ms": m.p10_ms,
                "p90_ms": m.p90_ms, "runs": m.runs, "params": f["params"], "gmacs": f["gmacs"],
                "predicted_ms": f["predicted_ms"], "naf_blocks": f["naf_blocks"], "image_size": args.image_size,
                "threads": args.threads, "choices": f["choices"],
            })
            log.info("  %-24s %8.1f ms", m.name, m.median_ms)


def main() -> None:
    args = parse_args()
    args.latency_weights = args.latency_weights or [0.1, 1.0]
    from hwnas.contracts.plugins import get_space

    space = get_space(SPACE).from_options(PRESET)
    table, lut = open_lut(args.lut, space=space, image_size=args.image_size, threads=args.threads, results_dir=args.results)
    settings = {"space": SPACE, "preset": PRESET, "image_size": args.image_size, "threads": args.threads,
                "repeats": args.repeats, "runs": args.runs, "warmup": args.warmup, "lut": lut.name,
                "lut_created": table.meta.created, "backend": "onnxruntime (hwnas.backends.onnxruntime)"}
    with record_run(NAME, settings=settings, results_dir=args.results) as meta:
        if args.stage in ("search", "all"):
            run_searches(args, lut, meta)
        if args.stage in ("measure", "all"):
            measure(args, space, table)


if __name__ == "__main__":
    run_main(main)
