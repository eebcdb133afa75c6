"""Benchmark: does the latency table predict whole networks? Table vs measured, end to end.

`--count` random architectures of the paper preset (each position's candidate drawn
uniformly, `hwnas.backends.profile.random_architecture` with seeds 0, 1, ...) at
256x256: the table's prediction (fixed parts + the chosen candidate per position,
`hwnas.latency.predict_ms`, what the search optimises) against the network measured
end to end by the same ONNX Runtime backend and protocol the table was built with
(`hwnas profile` does the same for one network). Error = (predicted - measured) /
measured. Goal (issue 6): every network within +-10%, mean |error| <= 5%.

Networks are measured `--group` at a time, interleaved round by round (so load from
other processes hits them alike); each group's rows are appended to
`results/fidelity.csv` as it finishes, and a rerun skips the seeds already there.

A table built at another time ran under another load; on a shared machine that alone
moves every network by tens of percent. So, unless `--no-fresh`, each group is
preceded by re-measuring every table unit with the same backend and protocol (a
throw-away table, about half a minute), and each row also holds the prediction of
that same-run table (`predicted_fresh_ms`, `error_fresh_pct`): the given table's
error minus the same-run table's error is the machine's drift, not the method's.

Run from the repository root:

    python benchmarks/bench_fidelity.py --lut paper-ort.csv
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from common import RESULTS_DIR, append_row, done_keys, open_lut, record_run, run_main

log = logging.getLogger("bench_fidelity")

NAME = "fidelity"
SPACE, PRESET = "nafnet-unet", "paper"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python benchmarks/bench_fidelity.py --lut paper-ort.csv")
    p.add_argument("--lut", help="ONNX Runtime table of the paper preset at --image-size (default: the hwnas cache)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--count", type=int, default=20, help="random architectures, seeds 0..count-1 (default 20)")
    p.add_argument("--group", type=int, default=5, help="networks interleaved per measurement (default 5)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (must match the table)")
    p.add_argument("--runs", type=int, default=None, help="timed rounds per network (default: the table's)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds (default: the table's)")
    p.add_argument("--no-fresh", dest="fresh", action="store_false",
                   help="skip re-measuring the table's units before each group")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default benchmarks/results)")
    return p.parse_args(argv)


def measure(args: argparse.Namespace, space, table) -> None:
    import torch

    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
    from hwnas.backends.profile import predict, random_architecture
    from hwnas.space import Unit, freeze

    torch.set_num_threads(args.threads)
    csv_path = args.results / f"{NAME}.csv"
    done = {seed for (seed,) in done_keys(csv_path, ["seed"])}
    todo = [seed for seed in range(args.count) if str(seed) not in done]
    shape = tuple(space.example_input(args.image_size).shape)
    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=args.threads, warmup=args.warmup, runs=args.runs))
    candidates = space.positions(args.image_size)[0].candidates
    for start in range(0, len(todo), args.group):
        seeds = todo[start:start + args.group]
        archs = {seed: random_architecture(space, args.image_size, seed) for seed in seeds}
        fresh = same_run_table(space, args.image_size, backend) if args.fresh else None
        log.info("measuring seeds %s (%d of %d done)", seeds, args.count - len(todo) + start, args.count)
        units = [Unit(f"random-{seed}", shape, freeze(space, arch).eval(), kind="network") for seed, arch in archs.items()]
        for seed, m in zip(seeds, backend.measure(units)):
            predicted = predict(table, space, args.image_size, archs[seed], "lut").total_ms
            counts = Counter(archs[seed].choices.values())
            row = {"seed": seed, "network": m.name, "predicted_ms": predicted, "measured_ms": m.median_ms,
                   "p10_ms": m.p10_ms, "p90_ms": m.p90_ms, "runs": m.runs, "error_pct": error_pct(predicted, m.median_ms)}
            if fresh is not None:
                again = predict(fresh, space, args.image_size, archs[seed], "same run").total_ms
                row.update(predicted_fresh_ms=again, error_fresh_pct=error_pct(again, m.median_ms))
            append_row(csv_path, {**row, **{f"n_{name}": counts.get(name, 0) for name in candidates}})
            log.info("  %-10s predicted %7.1f ms, measured %7.1f ms", m.name, predicted, m.median_ms)


def error_pct(predicted: float, measured: float) -> float:
    return 100.0 * (predicted - measured) / measured


def same_run_table(space, image_size: int, backend):
    """Every unit of the table measured now, with `backend` (in memory, not saved)."""
    from hwnas.backends.table import new_meta, table_units
    from hwnas.latency import LatencyTable

    table = LatencyTable(new_meta(space, image_size, backend))
    units = table_units(space, image_size)
    log.info("re-measuring the table's %d units", len(units))
    for m in backend.measure(units):
        table.add(m)
    return table


def main() -> None:
    args = parse_args()
    from hwnas.plugins import get_space

    space = get_space(SPACE).from_options(PRESET)
    table, lut = open_lut(args.lut, space=space, image_size=args.image_size, threads=args.threads, results_dir=args.results)
    protocol = table.meta.settings
    args.runs = args.runs or int(protocol.get("runs", 30))
    args.warmup = args.warmup if args.warmup is not None else int(protocol.get("warmup", 3))
    settings = {"space": SPACE, "preset": PRESET, "image_size": args.image_size, "threads": args.threads,
                "count": args.count, "group": args.group, "runs": args.runs, "warmup": args.warmup, "lut": lut.name,
                "lut_created": table.meta.created, "lut_runs": protocol.get("runs"), "fresh_table": args.fresh,
                "backend": "onnxruntime (hwnas.backends.onnxruntime)"}
    with record_run(NAME, settings=settings, results_dir=args.results):
        measure(args, space, table)


if __name__ == "__main__":
    run_main(main)
