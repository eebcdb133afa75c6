"""Deployment precision on this CPU: int8 vs fp32 speed per candidate and network, and PSNR after PTQ.

The question (issue 14): do the BatchNorm candidates keep their quality under int8
where LayerNorm does not, and how much faster is the int8 searched network than fp32
NAFNet? At the paper preset (NAFNet-w32), ONNX Runtime on the CPU, 2 threads, 256x256:

1. `tables`: plain `hwnas build-lut --preset paper --image-size 256`, once in fp32 and
   once with `--precision int8` (every unit statically quantised, QDQ); each row's
   int8 vs fp32 speed-up per candidate and stage goes to `results/precision_units.csv`.
2. `latency`: all-`naf`, all-`naf_bn`, all-`cbr` and the searched network of the
   paper benchmark end to end, fp32 and int8 (quantised like the table's units),
   interleaved within a precision, in `--repeats` repeats: `results/precision_latency.csv`.
3. `ptq`: the trained networks of the paper benchmark (`--paper-work`: its
   `train/<name>/model.pt`) exported in fp32 and in int8 (`hwnas export --precision int8
   --calibration CBSD432`, the training images) and scored by `hwnas eval` on CBSD68
   and Kodak24 at sigma 25, the same protocol and noise for both files:
   `results/precision_quality.csv` (PSNR/SSIM, and the int8 file's drop from fp32; w8a16
   beside it, 16-bit activations, says how much of the loss is the activations').
4. `fidelity`: `--count` random paper-preset networks quantised whole against the int8
   table, and against its units timed again in the networks' rounds (issue 14 item 5:
   quantise/dequantise pairs at unit boundaries may cost what a whole network does not):
   `results/precision_fidelity.csv`.

Every stage skips what its results already hold. Run from the repository root:

    python benchmarks/bench_precision.py all --paper-work benchmarks/work/paper
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import common
from bench_quality import DATASETS, ROOT, Runner, exported_scores, rel

logger = logging.getLogger("bench_precision")

NAME = "precision"
SPACE, PRESET, IMAGE_SIZE, THREADS = "nafnet-unet", "paper", 256, 2
CANDIDATES = ("naf", "naf_bn", "naf_bn_lite", "cbr")
UNIFORM = ("naf", "naf_bn", "cbr")  # the networks, besides the searched one
TRAINED = ("searched", "naf-s0", "cbr-s0")  # trained in the paper benchmark (cbr-s0: the searched all-cbr from scratch)
CALIBRATION = DATASETS / "CBSD432"
TEST_DATA = (DATASETS / "CBSD68", DATASETS / "Kodak24")
SIGMA = 25
PRECISIONS = ("fp32", "int8")  # what the tables and the latency stage time (the CPU backend refuses w8a16)
PTQ_PRECISIONS = ("fp32", "int8", "w8a16")  # w8a16 (16-bit activations) tells weight from activation loss


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("tables", "latency", "ptq", "fidelity", "all"))
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "precision")
    p.add_argument("--paper-work", type=Path, default=ROOT / "benchmarks" / "work" / "paper",
                   help="the paper benchmark's work folder (search/arch.json, train/<name>/model.pt)")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--repeats", type=int, default=3, help="latency repeats (default 3)")
    p.add_argument("--runs", type=int, default=10, help="timed rounds per latency repeat (default 10)")
    p.add_argument("--count", type=int, default=10, help="random networks of the fidelity stage (default 10)")
    return p.parse_args(argv)


def table_path(args, precision: str) -> Path:
    return args.workdir / f"paper-{precision}.csv"


# -- stage 1: tables ---------------------------------------------------------------------------

def stage_tables(args, runner: Runner) -> None:
    for precision in PRECISIONS:
        lut = table_path(args, precision)
        if not lut.exists():
            runner.hwnas("build-lut", "--backend", "onnxruntime", "--preset", PRESET, "--image-size", IMAGE_SIZE,
                         "--threads", THREADS, "--precision", precision, "--out", rel(lut), log=f"build-lut-{precision}.log")
    from hwnas.contracts.latency import LatencyTable

    fp32, int8 = (LatencyTable.load(table_path(args, p)).frame for p in PRECISIONS)
    keys = ["kind", "name", "input_shape"]
    both = fp32.merge(int8, on=keys, suffixes=("_fp32", "_int8"))
    rows = [{"kind": r.kind, "name": r.name, "input_shape": r.input_shape, "fp32_ms": r.median_ms_fp32,
             "int8_ms": r.median_ms_int8, "speedup": r.median_ms_fp32 / r.median_ms_int8}
            for r in both.itertuples()]
    _write(args.results / f"{NAME}_units.csv", rows)
    for r in rows:
        if r["kind"] == "candidate":
            logger.info("%-12s %-14s fp32 %8.3f ms  int8 %8.3f ms  %.2fx", r["name"], r["input_shape"], r["fp32_ms"],
                        r["int8_ms"], r["speedup"])


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# -- stage 2: end-to-end latency ----------------------------------------------------------------

def networks(args) -> dict:
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.space import Architecture

    space = get_space(SPACE).from_options(PRESET)
    positions = {p.label: p.candidates for p in space.positions(IMAGE_SIZE)}
    archs = {f"all-{c}": Architecture.uniform(SPACE, positions, c) for c in UNIFORM}
    searched = args.paper_work / "search" / "arch.json"
    if searched.exists():
        archs["searched"] = Architecture.load(searched)
    return space, archs


def stage_latency(args, runner: Runner) -> None:
    import torch

    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
    from hwnas.contracts.space import Unit, freeze

    torch.set_num_threads(THREADS)
    space, archs = networks(args)
    shape = tuple(space.example_input(IMAGE_SIZE).shape)
    path = args.results / f"{NAME}_latency.csv"
    done = common.done_keys(path, ["repeat", "precision"])
    for repeat in range(args.repeats):
        for precision in PRECISIONS:
            if (str(repeat), precision) in done:
                continue
            backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=THREADS, warmup=2, runs=args.runs, precision=precision))
            load = common.load_average()
            units = [Unit(label, shape, freeze(space, arch).eval(), kind="network") for label, arch in archs.items()]
            for m in backend.measure(units):
                logger.info("repeat %d %s %-12s %8.1f ms (load %s)", repeat, precision, m.name, m.median_ms, load)
                common.append_row(path, {"repeat": repeat, "precision": precision, "network": m.name,
                                         "median_ms": m.median_ms, "p10_ms": m.p10_ms, "p90_ms": m.p90_ms,
                                         "runs": args.runs, "threads": THREADS, "load_1min": load[0] if load else ""})


# -- stage 3: PSNR after post-training quantisation --------------------------------------------

def stage_ptq(args, runner: Runner) -> None:
    """Each trained network at each precision, once per training (`model`: its file's hash), with the export's
    default calibration, recorded in `calibration` so rows of a former default stay apart from today's."""
    path = args.results / f"{NAME}_quality.csv"
    done = common.done_keys(path, ["network", "precision", "model"])
    for name in TRAINED:
        model = args.paper_work / "train" / name / "model.pt"
        if not model.exists():
            logger.warning("no trained %s at %s: skipped", name, model)
            continue
        trained = common.model_id(model)
        for precision in PTQ_PRECISIONS:
            if (name, precision, trained) in done:
                continue
            stem = f"{name}-{trained.removeprefix('sha256:')}-{precision}"  # no colon in file names
            rows = exported_scores(runner, model, precision, args.workdir / f"{stem}.onnx",
                                   args.workdir / f"eval-{stem}.csv", calibration=CALIBRATION,
                                   data=TEST_DATA, sigma=SIGMA)
            export = _export_report(args, stem)
            for row in rows:
                common.append_row(path, {"network": name, "precision": precision, **_eval_row(row),
                                         "quant_psnr_db": export.get("quant_psnr_db", ""), "model": trained,
                                         "calibration": calibration_label(export)})


def calibration_label(export: dict) -> str:
    """How the export calibrated its activations, in words ("" for fp32)."""
    if export.get("precision", "fp32") == "fp32" or "calibration_method" not in export:
        return ""
    weights = "per channel" if export.get("per_channel", True) else "per tensor"
    kept = export.get("sixteen_bit") or []
    extra = f", {len(kept)} activations kept at 16 bits" if kept else ""
    return f"{export['calibration_method']}, weights {weights}, {export.get('calibration_count', '?')} inputs{extra}"


def _eval_row(r: dict) -> dict:
    return {"dataset": r.get("dataset") or r.get("folder"), "sigma": r.get("sigma"), "psnr": r.get("psnr"),
            "ssim": r.get("ssim"), "images": r.get("images")}


def _export_report(args, stem: str) -> dict:
    """The export's JSON summary from its log ({} when absent or unreadable): its own check of the quantised file's
    outputs against PyTorch's (held-out inputs) and how it calibrated."""
    log = args.workdir / "logs" / f"export-{stem}.log"
    if not log.exists():
        return {}
    text = log.read_text()
    try:
        return json.loads(text[text.rfind("\n{") + 1:text.rfind("}") + 1])
    except ValueError:
        return {}


# -- stage 4: the int8 table against whole int8 networks --------------------------------------

def stage_fidelity(args, runner: Runner) -> None:
    """`--count` random paper-preset networks, quantised whole, against the int8 table (and its
    units timed again in the networks' rounds): the path `hwnas profile --random-count --same-rounds` takes."""
    import torch

    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
    from hwnas.contracts.latency import LatencyTable
    from hwnas.contracts.plugins import get_space
    from hwnas.tables.fidelity import Fidelity
    from hwnas.tables.profiling import profile_architectures, random_architectures

    path = args.results / f"{NAME}_fidelity.csv"
    if path.exists():
        return
    torch.set_num_threads(THREADS)
    space = get_space(SPACE).from_options(PRESET)
    table = LatencyTable.load(table_path(args, "int8"))
    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=THREADS, precision="int8"))
    load = common.load_average()
    archs = random_architectures(space, IMAGE_SIZE, args.count)
    results = profile_architectures(space, IMAGE_SIZE, archs, backend, table=table, same_rounds=True)
    for r in results:
        logger.info("%s: predicted %.1f ms, measured %.1f ms (%+.1f%%; same rounds %+.1f%%)", r.label, r.prediction.total_ms,
                    r.measured.median_ms, r.error_pct, r.error_same_rounds_pct)
        common.append_row(path, {"network": r.label, "batch": r.batch, "predicted_ms": r.prediction.total_ms, "measured_ms": r.measured.median_ms,
                                 "error_pct": r.error_pct, "predicted_same_rounds_ms": r.same_rounds.total_ms,
                                 "error_same_rounds_pct": r.error_same_rounds_pct, "load_1min": load[0] if load else ""})
    logger.info("absolute: %s", Fidelity.of(results).line())
    logger.info("scale-free: %s", Fidelity.scale_free(results).line())


STAGES = {"tables": stage_tables, "latency": stage_latency, "ptq": stage_ptq, "fidelity": stage_fidelity}


def main() -> None:
    args = parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir)
    stages = list(STAGES) if args.stage == "all" else [args.stage]
    settings = {"space": SPACE, "preset": PRESET, "image_size": IMAGE_SIZE, "threads": THREADS, "sigma": SIGMA,
                "calibration": rel(CALIBRATION), "paper_work": rel(args.paper_work)}
    with common.record_run(NAME, settings=settings, results_dir=args.results):
        for stage in stages:
            logger.info("stage %s", stage)
            STAGES[stage](args, runner)


if __name__ == "__main__":
    common.run_main(main)
