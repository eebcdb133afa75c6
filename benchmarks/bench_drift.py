"""Benchmark: how far this machine's speed moves by itself (issue 12, latency truth).

A latency table is a snapshot of one moment; a network measured minutes later can only
match it as well as the machine's speed holds still. This measures that: one fixed
network (all-`naf`, paper preset, 256x256, exported to ONNX once) timed again and again
with the ONNX Runtime backend's settings (2 intra-op threads, --runs timed runs a
round) for --minutes, nothing else changing. Every round is a row of
`results/drift.csv`: seconds since the start, the round's median and p10/p90, and what
else took the CPU meanwhile -- other processes' cores and the steal time (the share of
our CPU time the hypervisor gave to other guests; `hwnas.tables.machine_load`). The sidecar
`drift.meta.json` sums it up: the spread of the round medians and the largest change
between two rounds at most --window minutes apart.

    python benchmarks/bench_drift.py --minutes 10

Run it on a quiet machine: other processes' cores are recorded per round so a busy
round shows.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS_DIR, append_row, record_run, run_main
from report import largest_change  # one home: the results page computes the same

log = logging.getLogger("bench_drift")

NAME = "drift"
SPACE, PRESET, IMAGE_SIZE, BASE = "nafnet-unet", "paper", 256, "naf"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long to keep timing (default 10)")
    p.add_argument("--runs", type=int, default=10, help="timed runs per round (default 10)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2, the tables')")
    p.add_argument("--window", type=float, default=5.0, help="minutes: the largest change between rounds this close (default 5)")
    p.add_argument("--run", default="a", help="label of this run in drift.csv (default a)")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default benchmarks/results)")
    return p.parse_args(argv)


def export_base_network(folder: Path) -> Path:
    """The all-naf paper-preset network as an ONNX file (BN folded, static 256x256)."""
    import torch

    from hwnas.deploy.onnx_export import to_onnx
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.space import Architecture, freeze

    space = get_space(SPACE).from_options(PRESET)
    positions = {p.label: p.candidates for p in space.positions(IMAGE_SIZE)}
    with torch.no_grad():
        net = freeze(space, Architecture.uniform(SPACE, positions, BASE)).eval()
        return to_onnx(net, tuple(space.example_input(IMAGE_SIZE).shape), folder / "all-naf.onnx")


def summary(rows: list[dict], window_min: float) -> dict:
    medians = [r["median_ms"] for r in rows]
    mid = statistics.median(medians)
    steal = [r["steal_pct"] for r in rows if r["steal_pct"] is not None]
    return {"rounds": len(rows), "minutes": round(rows[-1]["t_s"] / 60, 1), "median_ms": round(mid, 2),
            "min_pct": round(100 * (min(medians) / mid - 1), 1), "max_pct": round(100 * (max(medians) / mid - 1), 1),
            "within_5pct": sum(abs(m / mid - 1) <= 0.05 for m in medians),
            "within_10pct": sum(abs(m / mid - 1) <= 0.10 for m in medians),
            f"largest_change_within_{window_min:g}min_pct": round(largest_change(rows, 60 * window_min), 1),
            "steal_pct_max": max(steal) if steal else None,
            "steal_pct_mean": round(statistics.mean(steal), 2) if steal else None,
            "other_cores_max": max((r["other_cores"] for r in rows if r["other_cores"] is not None), default=None)}


def main() -> None:
    args = parse_args()
    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions

    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=args.threads, runs=args.runs))
    settings = {"space": SPACE, "preset": PRESET, "image_size": IMAGE_SIZE, "network": f"all-{BASE}",
                "threads": args.threads, "runs": args.runs, "minutes": args.minutes}
    with record_run(NAME, settings=settings, results_dir=args.results) as record, \
            tempfile.TemporaryDirectory(prefix="hwnas-drift-") as tmp:
        onnx = export_base_network(Path(tmp))
        rows: list[dict] = []
        start = time.monotonic()
        while time.monotonic() - start < 60 * args.minutes:
            m = backend.measure_onnx(onnx)
            load = backend.load
            row = {"run": args.run, "round": len(rows), "t_s": round(time.monotonic() - start, 1),
                   "clock": time.strftime("%H:%M:%S"), "median_ms": m.median_ms, "p10_ms": m.p10_ms, "p90_ms": m.p90_ms,
                   "runs": m.runs, "steal_pct": load.get("steal_pct"), "other_cores": load.get("other_processes_cores"),
                   "load_1min": load.get("load_1min_end")}
            rows.append(row)
            append_row(args.results / f"{NAME}.csv", row)
            log.info("round %3d at %6.0f s: %7.1f ms (p10 %.1f, p90 %.1f), steal %s%%, other %s cores", row["round"],
                     row["t_s"], m.median_ms, m.p10_ms, m.p90_ms, row["steal_pct"], row["other_cores"])
        record.setdefault("summary", {})[args.run] = summary(rows, args.window)
        log.info("summary: %s", record["summary"][args.run])


if __name__ == "__main__":
    run_main(main)
