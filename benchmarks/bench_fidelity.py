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
moves every network by tens of percent. So, unless `--no-same-rounds`, every unit of
the table is measured again in the same interleaved rounds as each group of networks
(same backend, same protocol; a throw-away table), and each row also holds that
table's prediction (`predicted_same_rounds_ms`, `error_same_rounds_pct`): the
per-block method's own error, with the machine's drift since the table was built
taken out. The goals are judged on the given table, the one a search uses.

Run from the repository root:

    python benchmarks/bench_fidelity.py --lut paper-ort.csv
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from common import RESULTS_DIR, append_row, done_keys, load_average, open_lut, record_run, run_main

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
    p.add_argument("--no-same-rounds", dest="same_rounds", action="store_false",
                   help="do not measure the table's units again in the networks' rounds (faster)")
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
    first_group = len(done_keys(csv_path, ["seed"]))  # numbering continues after a resume
    for start in range(0, len(todo), args.group):
        seeds = todo[start:start + args.group]
        archs = {seed: random_architecture(space, args.image_size, seed) for seed in seeds}
        log.info("measuring seeds %s (%d of %d done)", seeds, args.count - len(todo) + start, args.count)
        networks = [Unit(f"random-{seed}", shape, freeze(space, arch).eval(), kind="network") for seed, arch in archs.items()]
        measured, again = measure_networks(backend, networks, space, args.image_size, args.same_rounds)
        load = (load_average() or [float("nan")])[0]  # the machine's load over the last minute: the group's
        for seed, m in zip(seeds, measured):
            predicted = predict(table, space, args.image_size, archs[seed], "lut").total_ms
            counts = Counter(archs[seed].choices.values())
            row = {"seed": seed, "group": (first_group + start) // args.group, "network": m.name,
                   "predicted_ms": predicted, "measured_ms": m.median_ms,
                   "p10_ms": m.p10_ms, "p90_ms": m.p90_ms, "runs": m.runs, "error_pct": error_pct(predicted, m.median_ms),
                   "load_1min": load}
            if again is not None:
                same = predict(again, space, args.image_size, archs[seed], "same rounds").total_ms
                row.update(predicted_same_rounds_ms=same, error_same_rounds_pct=error_pct(same, m.median_ms))
            append_row(csv_path, {**row, **{f"n_{name}": counts.get(name, 0) for name in candidates}})
            log.info("  %-10s predicted %7.1f ms, measured %7.1f ms", m.name, predicted, m.median_ms)


def error_pct(predicted: float, measured: float) -> float:
    return 100.0 * (predicted - measured) / measured


def measure_networks(backend, networks: list, space, image_size: int, same_rounds: bool):
    """(one Measurement per network, the table re-measured in the same rounds or None).

    With `same_rounds`, the table's units and the networks form one interleaved group
    of the backend, so every round times each of them once under the same load. The
    backend's public `measure` splits its work into groups of at most 8 units (to bound
    memory and what a kill loses), so this calls its group measurement directly.
    """
    if not same_rounds:
        return backend.measure(networks), None
    import tempfile

    from hwnas.backends.table import new_meta, table_units
    from hwnas.latency import LatencyTable

    units = table_units(space, image_size)
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        results = backend._measure_group(units + networks, Path(tmp))
    table = LatencyTable(new_meta(space, image_size, backend))
    for m in results[:len(units)]:
        table.add(m)
    return results[len(units):], table


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
                "lut_created": table.meta.created, "lut_runs": protocol.get("runs"), "same_rounds": args.same_rounds,
                "backend": "onnxruntime (hwnas.backends.onnxruntime)"}
    with record_run(NAME, settings=settings, results_dir=args.results):
        measure(args, space, table)


if __name__ == "__main__":
    run_main(main)
