"""The front's space searched for int8 (issue 24, item 4): does a search against an int8 table give a network
whose int8 file keeps its quality and its speed?

At the front's scale (bench_front.py: `small` preset, its candidates, budget FRONT_STEPS), in stages that each
skip what their results already hold:

1. `lut`: the ONNX Runtime CPU table of the front's space in int8 (every unit statically quantised, QDQ, timed
   between quantised boundaries as a whole int8 network sees it) into `results/front_lut/ort-small-256-int8.csv`;
   quiet machine only. It prints each uniform network's prediction, from which the target is chosen.
2. `search [--target R]`: `hwnas sweep` against the int8 table -- bench_front's recipe (sampled, mu FRONT_MU,
   absolute target, no skip), seeds 0 and 1, each derived network fine-tuned to FRONT_STEPS (`--baselines` with no
   other baseline) and scored in fp32 on CBSD68 sigma 25 -- into `<workdir>/sweep-<R>x`.
3. `quality`: each fine-tuned searched network, and the trained all-naf and all-cbr_e4 of bench_front's stage 2,
   exported in fp32 and in int8 (`hwnas export --precision int8 --calibration CBSD432`: the default calibration)
   and scored by `hwnas eval` on CBSD68 and Kodak24 at sigma 25: `results/front_int8_quality.csv` (PSNR, SSIM and
   the int8 file's loss to its fp32 file).
4. `latency`: the files of stage 3 at 256x256 timed end to end (ONNX Runtime CPU, 2 threads), one file after the
   other in each round, REPEATS rounds, beside the int8 table's prediction (and `--also` files: e.g. the
   mixed-precision fallback's, precision "mixed"); quiet machine only: `results/front_int8_latency.csv`.

From the repository root:

    python benchmarks/bench_front_int8.py lut
    python benchmarks/bench_front_int8.py search --target 0.4
    python benchmarks/bench_front_int8.py quality
    python benchmarks/bench_front_int8.py latency
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import bench_front as front
import common
from bench_quality import ROOT, Runner, exported_scores, rel

logger = logging.getLogger("bench_front_int8")

NAME = "front_int8"
LUT = front.LUT.with_name(f"{front.LUT.stem}-int8.csv")
TARGET = 0.4  # of int8 all-naf's prediction: between int8 all-cbr (0.32x) and all-cbr_e4 (0.40x) lies a mix
BASELINES = ("naf", "cbr_e4")  # trained uniform networks of bench_front's stage 2 (seed 0) set beside the searched
PRECISIONS = ("fp32", "int8")
REPEATS = 3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("lut", "search", "quality", "latency"))
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "front-int8")
    p.add_argument("--front-work", type=Path, default=ROOT / "benchmarks" / "work" / "front",
                   help="bench_front's work folder (uniform/<network>/model.pt)")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--target", type=float, default=TARGET, help="search: fraction of int8 all-naf's prediction")
    p.add_argument("--seeds", default="0", help="search: seeds, comma-separated (default: %(default)s)")
    p.add_argument("--also", nargs="*", default=[], metavar="NAME=ONNX",
                   help="latency: more files timed in the same rounds, e.g. a mixed-precision fallback of bench_calibration")
    p.add_argument("--force", action="store_true", help="lut, latency: time even on a busy machine")
    return p.parse_args(argv)


def stage_lut(args, runner: Runner) -> None:
    if not LUT.exists():
        front.refuse_busy(args, "build the int8 table")
        with common.record_run(f"{NAME}_lut", settings={"preset": front.PRESET, "candidates": front.CANDIDATES,
                                                         "image_size": front.IMAGE_SIZE, "precision": "int8"},
                               results_dir=args.results):
            runner.hwnas("build-lut", "--backend", "onnxruntime", "--space", front.SPACE, "--preset", front.PRESET,
                         *front.SPACE_OPTIONS, "--image-size", front.IMAGE_SIZE, "--threads", front.LATENCY_THREADS,
                         "--precision", "int8", "--out", rel(LUT), log="build-lut-int8.log")
    for table in (front.LUT, LUT):
        logger.info("%s: %s", rel(table), ", ".join(f"all-{c} {ms:.2f} ms" for c, ms in uniform_predictions(table).items()))


def uniform_predictions(table: Path) -> dict[str, float]:
    """Each uniform network of the searches' candidates, predicted by `table` (ms)."""
    from hwnas.contracts.config import SpaceSpec
    from hwnas.contracts.latency import LatencyTable
    from hwnas.nas import baselines as bl
    from hwnas.tables.prediction import table_prediction

    spec = SpaceSpec(space=front.SPACE, preset=front.PRESET, options={"candidates": list(front.CANDIDATES)})
    space, lut = spec.create(), LatencyTable.load(table)
    return {c: table_prediction(lut, space, bl.uniform(space, front.IMAGE_SIZE, c)).total_ms for c in front.SEARCH_CANDIDATES}


def sweep_folder(args) -> Path:
    return args.workdir / f"sweep-{args.target:g}x"


def stage_search(args, runner: Runner) -> None:
    if not LUT.exists():
        raise SystemExit(f"error: no int8 table {rel(LUT)}; run the lut stage first (on a quiet machine).")
    out = sweep_folder(args)
    # The searched network only (its baselines are stage 3's), one seed, in this process: one core beside the front's.
    flags = front.sweep_flags(args.target, narrow=None, random=0, lut=LUT, seeds=args.seeds, executor="local")
    settings = {"target": args.target, "lut": rel(LUT), "steps": front.FRONT_STEPS, "mu": front.FRONT_MU}
    with common.record_run(f"{NAME}_search", settings=settings, results_dir=args.results):
        t0 = time.time()
        runner.hwnas("sweep", *flags, "--out", rel(out), *(["--resume"] if out.exists() else []), log="sweep.log")
        logger.info("sweep %s: %.0f s", rel(out), time.time() - t0)


def trained_networks(args) -> dict[str, Path]:
    """name -> model.pt: the fine-tuned searched networks of stage 2, then the uniform baselines."""
    nets = {}
    for row in common.read_rows(sweep_folder(args) / "front.csv"):
        if row["kind"] == "searched":
            nets[f"int8-searched-s{row['seed']}"] = sweep_folder(args) / row["run"] / "model.pt"  # its fine-tuned run
    for c in BASELINES:
        nets[f"all-{c}-s0"] = args.front_work / "uniform" / f"{c}-{front.FRONT_STEPS}-s0" / "model.pt"
    return {k: v for k, v in nets.items() if v.exists()}


def onnx_file(args, name: str, precision: str) -> Path:
    return args.workdir / "onnx" / f"{name}-{precision}.onnx"


def stage_quality(args, runner: Runner) -> None:
    path = args.results / f"{NAME}_quality.csv"
    done = common.done_keys(path, ["network", "precision"])
    with common.record_run(f"{NAME}_quality", settings={"sigma": 25, "calibration": "CBSD432 (default count and method)"},
                           results_dir=args.results):
        for name, model in trained_networks(args).items():
            base = {}
            for precision in PRECISIONS:
                rows = exported_scores(runner, model, precision, onnx_file(args, name, precision),
                                       args.workdir / f"eval-{name}-{precision}.csv", calibration=front.TRAIN_DATA,
                                       data=front.TEST_DATA, sigma=25)
                for r in rows:
                    base.setdefault(r["dataset"], float(r["psnr"]))
                    if (name, precision) not in done:
                        common.append_row(path, {"network": name, "precision": precision, "dataset": r["dataset"],
                                                 "psnr": round(float(r["psnr"]), 3), "ssim": round(float(r["ssim"]), 4),
                                                 "lost_db": round(base[r["dataset"]] - float(r["psnr"]), 3),
                                                 "model": rel(model)})


def stage_latency(args, runner: Runner) -> None:
    import hwnas
    from hwnas.tables.building import make_backend

    front.refuse_busy(args, "time")
    models = trained_networks(args)
    files = {(n, p): onnx_file(args, n, p) for n in models for p in PRECISIONS}
    files = {k: v for k, v in files.items() if v.exists()}
    if not files:
        raise SystemExit("error: nothing to time: run the quality stage first.")
    tables = {"fp32": front.LUT, "int8": LUT}
    predicted = {(n, p): hwnas.predict(str(models[n]), str(tables[p])).total_ms for n, p in files}
    for item in args.also:  # no table predicts a mixed-precision file
        name, _, onnx = item.partition("=")
        files[(name, "mixed")], predicted[(name, "mixed")] = Path(onnx), float("nan")
    backend = make_backend("onnxruntime", {"threads": front.LATENCY_THREADS, "runs": front.LATENCY_RUNS})
    shape = (1, 3, front.IMAGE_SIZE, front.IMAGE_SIZE)
    path = args.results / f"{NAME}_latency.csv"
    if path.exists():
        path.unlink()  # every file is timed again, in the same rounds
    settings = {"threads": front.LATENCY_THREADS, "runs": front.LATENCY_RUNS, "repeats": REPEATS, "image_size": front.IMAGE_SIZE}
    with common.record_run(f"{NAME}_latency", settings=settings, results_dir=args.results):
        for repeat in range(REPEATS):
            load0 = common.load_average()
            for (name, precision), onnx in files.items():
                m = backend.measure_onnx(onnx, shape)
                common.append_row(path, {"repeat": repeat, "network": name, "precision": precision,
                                         "median_ms": round(m.median_ms, 3),
                                         "predicted_ms": round(predicted[(name, precision)], 3),
                                         "load_start": load0[:1] and load0[0]})
                logger.info("repeat %d %s %s %.2f ms (table %.2f)", repeat, name, precision, m.median_ms,
                            predicted[(name, precision)])


STAGES = {"lut": stage_lut, "search": stage_search, "quality": stage_quality, "latency": stage_latency}


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    STAGES[args.stage](args, Runner(args.workdir))


if __name__ == "__main__":
    common.run_main(main)
