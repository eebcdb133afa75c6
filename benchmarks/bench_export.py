"""Benchmark: ONNX export wall time, dynamo exporter vs the TorchScript one (issue 25, item 5).

`hwnas.deploy.onnx_export.to_onnx` exports through `torch.onnx.export(..., dynamo=True)` and keeps
the TorchScript exporter (`dynamo=False`) only as a fallback. Table building exports one
file per unit (hundreds for a paper-preset table), so the per-export cost decides whether
that is affordable. This times `to_onnx` (BN folding, export, for dynamo also its check
against PyTorch) with each exporter forced, side by side, on:

- `tiny`, `small`: the all-`naf` nafnet-unet network of that preset at 32x32 / 64x64, static shape;
- `unit`: one candidate unit (a single `naf` block of the small preset at its first position's shape),
  what a latency table exports hundreds of times.

Each case is exported once untimed per exporter (the first dynamo export of a process also
imports onnxscript: timed alone as `dynamo_first_s`), then --repeats times; the median is
written. `dynamo_s` reuses torch.onnx's op registry across exports (`hwnas.deploy.onnx_registry`),
`dynamo_rebuilt_s` builds it anew for every export, as torch does by itself: their ratio is
what the reuse saves a table build per unit. `max_err_*`: max |onnxruntime - PyTorch| on one
seeded input; `match`: both within 1e-4 of PyTorch and of each other. Rows go to results/export.csv.

    python benchmarks/bench_export.py --repeats 3
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS_DIR, append_row, record_run, run_main

log = logging.getLogger("bench_export")

NAME = "export"
SPACE, CANDIDATE = "nafnet-unet", "naf"
SIZES = {"tiny": 32, "small": 64}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed exports per case and exporter (default 3)")
    p.add_argument("--cases", default="tiny,small,unit", help="comma-separated: tiny, small, unit (default all)")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default benchmarks/results)")
    return p.parse_args(argv)


def case(name: str):
    """(module, input shape) of a case."""
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.space import Architecture, freeze

    if name == "unit":
        space = get_space(SPACE).from_options("small")
        unit = next(u for u in space.candidate_units(SIZES["small"]) if u.name == CANDIDATE)
        return unit.module.eval(), tuple(unit.input_shape)
    space = get_space(SPACE).from_options(name)
    positions = {p.label: p.candidates for p in space.positions(SIZES[name])}
    net = freeze(space, Architecture.uniform(SPACE, positions, CANDIDATE)).eval()
    return net, tuple(space.example_input(SIZES[name]).shape)


def median_export_s(module, shape, path: Path, exporter: str, repeats: int, rebuild_registry: bool = False) -> float:
    """Median seconds of `repeats` exports; `rebuild_registry`: torch.onnx's op registry built anew for each one,
    as torch does without `hwnas.deploy.onnx_registry` (set up before the clock starts, so only the export counts)."""
    from hwnas.deploy import onnx_registry
    from hwnas.deploy.onnx_export import to_onnx

    times = []
    for _ in range(repeats):
        if rebuild_registry:
            onnx_registry.forget()
        t0 = time.perf_counter()
        to_onnx(module, shape, path, exporter=exporter)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    import numpy as np
    import onnxruntime as ort
    import torch

    from hwnas.deploy.onnx_export import to_onnx

    torch.manual_seed(0)
    settings = {"space": SPACE, "candidate": CANDIDATE, "repeats": args.repeats, "threads": torch.get_num_threads()}
    with record_run(NAME, settings=settings, results_dir=args.results), \
            tempfile.TemporaryDirectory(prefix="hwnas-export-") as tmp:
        first_dynamo: float | None = None
        for name in args.cases.split(","):
            module, shape = case(name)
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                ref = module(x).numpy()
            row: dict = {"case": name, "input_shape": "x".join(map(str, shape)),
                         "params": sum(p.numel() for p in module.parameters())}
            outputs = {}
            for exporter in ("legacy", "dynamo"):
                path = Path(tmp) / f"{name}-{exporter}.onnx"
                t0 = time.perf_counter()
                to_onnx(module, shape, path, exporter=exporter)  # untimed warm-up (first dynamo: imports)
                if exporter == "dynamo" and first_dynamo is None:
                    first_dynamo = time.perf_counter() - t0
                    row["dynamo_first_s"] = round(first_dynamo, 2)
                row[f"{exporter}_s"] = round(median_export_s(module, shape, path, exporter, args.repeats), 3)
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                outputs[exporter] = session.run(None, {"x": x.numpy()})[0]
                row[f"max_err_{exporter}"] = float(np.abs(outputs[exporter] - ref).max())
                row[f"{exporter}_bytes"] = path.stat().st_size
                row[f"{exporter}_files"] = len(list(Path(tmp).glob(f"{name}-{exporter}.onnx*")))
            row["dynamo_rebuilt_s"] = round(median_export_s(module, shape, Path(tmp) / "rebuilt.onnx", "dynamo",
                                                            args.repeats, rebuild_registry=True), 3)
            row["rebuilt_over_reused"] = round(row["dynamo_rebuilt_s"] / row["dynamo_s"], 2)
            row["dynamo_over_legacy"] = round(row["dynamo_s"] / row["legacy_s"], 1)
            row["match"] = bool(row["max_err_legacy"] <= 1e-4 and row["max_err_dynamo"] <= 1e-4
                                and float(np.abs(outputs["legacy"] - outputs["dynamo"]).max()) <= 1e-4)
            append_row(args.results / f"{NAME}.csv", row)
            log.info("%s %s: legacy %.3f s, dynamo %.3f s (x%.1f; %.3f s rebuilding the registry), errors %.2g / %.2g, "
                     "match %s", name, row["input_shape"], row["legacy_s"], row["dynamo_s"], row["dynamo_over_legacy"],
                     row["dynamo_rebuilt_s"], row["max_err_legacy"],
                     row["max_err_dynamo"], row["match"])


if __name__ == "__main__":
    run_main(main)
