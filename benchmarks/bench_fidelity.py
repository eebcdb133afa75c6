"""Benchmark: does a latency table predict whole networks? Table vs measured, end to end.

`--count` random architectures of the paper preset at 256x256 (each position's
candidate drawn uniformly, `hwnas.tables.profiling.random_architecture`, seeds 0, 1, ...):
the table's prediction (fixed parts + the chosen candidate per position, what the
search optimises) against the network measured end to end by the same backend and
protocol -- through `hwnas.tables.profiling.profile_architectures`, the path `hwnas
profile --random-count` takes. Error = (predicted - measured) / measured.

Goal (issue 12): on a quiet machine, a table built by plain `hwnas build-lut` (default
settings) and checked right after, and one built 10+ minutes later and checked the
same way: mean |error| <= 5% and every network within +-10%, both times. So a run is
named (`--run`) and may build its table first (`--build`: `hwnas build-lut --force`
with default settings into `--lut`, timed, its sidecar copied to `results/lut/`):

    python benchmarks/bench_fidelity.py --build --lut benchmarks/results/lut/fidelity-a.csv --run a
    # 10+ minutes later
    python benchmarks/bench_fidelity.py --build --lut benchmarks/results/lut/fidelity-b.csv --run b

Networks are measured `--batch` at a time, each batch in interleaved rounds together
with every unit of the table timed again (unless `--no-same-rounds`): each row also
holds that throw-away table's prediction (`error_same_rounds_pct`), the per-unit
method's own error with the machine's drift since the build taken out. Each row also
records its `batch` (numbered on within its run, across resumed invocations): the page
computes each network's scale-free error from it (`hwnas.tables.fidelity`: its
predicted/measured ratio over its batch's geometric-mean ratio, the machine's state while
the batch ran taken out), and this script logs both summaries at the end. Every row
records the machine's load while its batch ran (1-minute load average, and the cores
other processes kept busy, from the backend's own record); the results page judges the
goals on runs where other processes stayed below 0.25 cores and shows the others as
diagnostics. Rows are appended to `results/fidelity.csv` as each batch finishes; a
rerun of the same command skips the (run, seed) pairs already there. Each build is a
row of `results/fidelity_builds.csv` (seconds, load, noisy units).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import RESULTS_DIR, append_row, done_keys, load_average, open_lut, read_rows, record_run, run_main

log = logging.getLogger("bench_fidelity")

NAME = "fidelity"
SPACE, PRESET = "nafnet-unet", "paper"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python benchmarks/bench_fidelity.py --build --lut paper-ort.csv --run a")
    p.add_argument("--lut", help="ONNX Runtime table of the paper preset at --image-size (default: the hwnas cache)")
    p.add_argument("--run", default="default", help="name of this run: rows are keyed by (run, seed) (default 'default')")
    p.add_argument("--build", action="store_true", help="first build the table at --lut with plain `hwnas build-lut --force`")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--count", type=int, default=20, help="random architectures, seeds 0..count-1 (default 20)")
    p.add_argument("--batch", type=int, default=5, help="networks interleaved per measurement (default 5)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (must match the table)")
    p.add_argument("--runs", type=int, default=None, help="timed rounds per network (default: the table's)")
    p.add_argument("--no-same-rounds", dest="same_rounds", action="store_false",
                   help="do not time the table's units again in the networks' rounds (faster)")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default benchmarks/results)")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> None:
    """`hwnas build-lut --force` with default settings into --lut, as a user runs it; one row of fidelity_builds.csv."""
    if not args.lut:
        raise SystemExit("--build needs --lut (the table to build)")
    command = [sys.executable, "-m", "hwnas", "build-lut", "--backend", "onnxruntime", "--preset", PRESET,
               "--image-size", str(args.image_size), "--out", args.lut, "--force", "--json"]
    log.info("building %s: %s", args.lut, " ".join(command[1:]))
    load = load_average()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"hwnas build-lut failed (exit {done.returncode})")
    for line in done.stderr.splitlines():
        if "WARNING" in line or "warning" in line:
            log.warning("build-lut: %s", line)
    sidecar = json.loads(Path(args.lut).with_suffix(".meta.json").read_text())
    recorded = sidecar["settings"].get("load", {})
    append_row(args.results / f"{NAME}_builds.csv", {
        "run": args.run, "lut": Path(args.lut).name, "created": sidecar["created"], "seconds": seconds,
        "units": json.loads(done.stdout)["measured"], "load_1min_start": (load or [float("nan")])[0],
        "other_cores": recorded.get("other_processes_cores"), "steal_pct": recorded.get("steal_pct"), "noisy_units": len(sidecar["settings"].get("noisy_units", [])),
        "extra_passes": sidecar["settings"].get("extra_passes_run"), "runs": sidecar["settings"].get("runs"),
    })
    log.info("built %s in %.1f s", args.lut, seconds)


def measure(args: argparse.Namespace, space, table, lut: Path) -> None:
    import torch

    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
    from hwnas.tables.fidelity import Fidelity
    from hwnas.tables.profiling import profile_architectures, random_architecture

    torch.set_num_threads(args.threads)
    csv_path = args.results / f"{NAME}.csv"
    done = {seed for run, seed in done_keys(csv_path, ["run", "seed"]) if run == args.run}
    todo = [seed for seed in range(args.count) if str(seed) not in done]
    first_batch = next_batch(csv_path, args.run)
    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=args.threads, runs=args.runs))
    candidates = space.positions(args.image_size)[0].candidates
    archs = [(f"random-{seed}", random_architecture(space, args.image_size, seed)) for seed in todo]
    log.info("run %s: %d networks to measure (%d done) against %s", args.run, len(todo), len(done), lut)

    def row(result) -> None:
        seed = int(result.label.removeprefix("random-"))
        m = result.measured
        load = backend.load  # the batch's own record (measure() sets it when the batch is done)
        counts = Counter(result.architecture.choices.values())
        append_row(csv_path, {
            "run": args.run, "seed": seed, "batch": first_batch + result.batch, "network": result.label, "lut": lut.name, "lut_created": table.meta.created,
            "predicted_ms": result.prediction.total_ms, "measured_ms": m.median_ms, "p10_ms": m.p10_ms, "p90_ms": m.p90_ms,
            "runs": m.runs, "error_pct": result.error_pct,
            "predicted_same_rounds_ms": result.same_rounds.total_ms if result.same_rounds else None,
            "error_same_rounds_pct": result.error_same_rounds_pct,
            "load_1min": load.get("load_1min_end"), "other_cores": load.get("other_processes_cores"),
            "steal_pct": load.get("steal_pct"),
            **{f"n_{name}": counts.get(name, 0) for name in candidates},
        })
        same = f", same rounds {result.error_same_rounds_pct:+.1f}%" if result.same_rounds else ""
        log.info("  %-10s predicted %7.1f ms, measured %7.1f ms: %+.1f%%%s (other processes %.2f cores, steal %.1f%%)",
                 result.label, result.prediction.total_ms, m.median_ms, result.error_pct, same,
                 load.get("other_processes_cores") or 0, load.get("steal_pct") or 0)

    results = profile_architectures(space, args.image_size, archs, backend, table=table, table_source=lut.name,
                                    batch=args.batch, same_rounds=args.same_rounds, on_result=row)
    if results:
        log.info("run %s, this invocation: absolute %s", args.run, Fidelity.of(results).line())
        log.info("run %s, this invocation: scale-free %s", args.run, Fidelity.scale_free(results).line())


def next_batch(csv_path: Path, run: str) -> int:
    """The first batch number of this invocation: one past the run's last, so a resumed run's batches stay apart."""
    numbers = [int(r["batch"]) for r in read_rows(csv_path) if r.get("run") == run and r.get("batch") not in (None, "")]
    return max(numbers, default=-1) + 1


def main() -> None:
    args = parse_args()
    from hwnas.contracts.plugins import get_space

    space = get_space(SPACE).from_options(PRESET)
    settings = {"space": SPACE, "preset": PRESET, "image_size": args.image_size, "threads": args.threads,
                "count": args.count, "batch": args.batch, "same_rounds": args.same_rounds,
                "backend": "onnxruntime (hwnas.backends.onnxruntime)"}
    with record_run(NAME, settings=settings, results_dir=args.results) as meta:
        if args.build:
            build(args)
        table, lut = open_lut(args.lut, space=space, image_size=args.image_size, threads=args.threads, results_dir=args.results)
        args.runs = args.runs or int(table.meta.settings.get("runs", 60))
        meta["settings"].setdefault("luts", {})[args.run] = {"lut": lut.name, "created": table.meta.created,
                                                              "runs": args.runs, "table_runs": table.meta.settings.get("runs")}
        measure(args, space, table, lut)


if __name__ == "__main__":
    run_main(main)
