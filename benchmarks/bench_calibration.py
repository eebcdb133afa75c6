"""int8 calibration study (issue 24): which calibration keeps a trained denoiser's quality?

For each trained network (`--models`: model.pt files), exported with `hwnas export
--precision int8 --calibration CBSD432` under every combination of calibration method
(ONNX Runtime's MinMax, Percentile, Entropy), number of calibration crops (128 px) and
per-channel or per-tensor weights, then scored by `hwnas eval` on CBSD68 and Kodak24 at
sigma 25 (the data sets' protocol, seed 0) against the same network exported in fp32
and scored the same way:

- `results/calibration.csv`: one row per network x method x crops x per-channel: the
  export's wall time, its own check (output PSNR against PyTorch on held-out crops), the
  int8 PSNR per data set and the dB it lost to fp32;
- `results/calibration_fallback.csv` (`--fallback-min-psnr`): the mixed-precision
  fallback at the chosen default calibration (`--keep-16bit auto --min-psnr M`): how many
  activations it kept at 16 bits and what that recovered; each network's sensitivity
  report goes to `results/calibration_sensitivity/<network>.csv`.

Everything runs in this process through `hwnas.api` (the commands are logged as a user
would type them). Each row is skipped when the results already hold it. Export time is
wall time on a shared machine: compare it within a run, not across machines. Run from
the repository root, e.g.:

    nice -n 10 python benchmarks/bench_calibration.py \\
        --models benchmarks/work/front/plateau/naf-3000-s0/model.pt benchmarks/work/front/plateau/cbr-3000-s0/model.pt
"""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import time
from pathlib import Path

import common

logger = logging.getLogger("bench_calibration")

NAME = "calibration"
ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
CALIBRATION = DATASETS / "CBSD432"
TEST_DATA = ("CBSD68", "Kodak24")
SIGMA = 25
METHODS = ("minmax", "percentile", "entropy")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, nargs="+", required=True, help="trained model.pt files")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--crops", type=int, nargs="+", default=[16, 64], help="calibration crops (--calibration-count)")
    p.add_argument("--per-channel", choices=("on", "off", "both"), default="both", help="per-channel weights")
    p.add_argument("--fallback-method", default="percentile", choices=METHODS, help="calibration of the fallback rows")
    p.add_argument("--fallback-crops", type=int, default=32)
    p.add_argument("--fallback-min-psnr", type=float, nargs="*", default=[], help="--min-psnr of --keep-16bit auto rows")
    p.add_argument("--data", type=Path, default=DATASETS, help="folder holding CBSD432, CBSD68 and Kodak24")
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "calibration")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    return p.parse_args()


def network_name(model: Path) -> str:
    """The run folder's name (naf-3000-s0), or the file's stem for a loose file."""
    return model.parent.name if model.name == "model.pt" else model.stem


class Study:
    """Exports and evaluations of one benchmark run, each logged as the command it stands for."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.log = args.workdir / "commands.log"

    def _note(self, argv: list[str]) -> None:
        line = shlex.join(["hwnas", *map(str, argv)])
        logger.info("$ %s", line)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as fh:
            fh.write(line + "\n")

    def export(self, model: Path, out: Path, **fields) -> tuple[dict, float]:
        """`hwnas export` of `model` into `out`: its report and wall time (s)."""
        import hwnas

        flags = [f"--{k.replace('_', '-')}={v}" for k, v in fields.items() if not isinstance(v, bool)]
        flags += [] if fields.get("per_channel", True) else ["--per-tensor"]
        self._note(["export", "--model", model, "--out", out, *flags])
        start = time.perf_counter()
        result = hwnas.export(model=str(model), out=str(out), **fields)
        return result.report, time.perf_counter() - start

    def evaluate(self, model: Path, out: Path) -> dict[str, float]:
        """`hwnas eval` of `model` on the test sets at SIGMA: data set -> PSNR."""
        import hwnas

        data = [str(self.args.data / name) for name in TEST_DATA]
        self._note(["eval", "--model", model, *(x for d in data for x in ("--data", d)), "--sigma", SIGMA, "--seed", 0,
                    "--out", out])
        result = hwnas.evaluate(model=str(model), data=data, task_options={"sigma": [SIGMA], "seed": 0}, out=str(out))
        return {row["dataset"]: float(row["psnr"]) for row in result.summary}


def fp32_psnr(study: Study, model: Path, name: str) -> dict[str, float]:
    """The fp32 export's PSNR per data set (exported and scored once, kept in the work folder)."""
    work = study.args.workdir / name
    onnx, csv_path = work / "fp32.onnx", work / "eval-fp32.csv"
    if csv_path.exists():
        return {r["dataset"]: float(r["psnr"]) for r in common.read_rows(csv_path)}
    if not onnx.exists():
        study.export(model, onnx)
    return study.evaluate(onnx, csv_path)


def stage_grid(study: Study, model: Path) -> None:
    args, name = study.args, network_name(model)
    path = args.results / f"{NAME}.csv"
    done = common.done_keys(path, ["network", "method", "crops", "per_channel"])
    base = fp32_psnr(study, model, name)
    channels = {"on": [True], "off": [False], "both": [True, False]}[args.per_channel]
    for crops in args.crops:
        for method in args.methods:
            for per_channel in channels:
                if (name, method, str(crops), str(per_channel)) in done:
                    continue
                tag = f"{method}-{crops}-{'pc' if per_channel else 'pt'}"
                onnx = args.workdir / name / f"int8-{tag}.onnx"
                report, seconds = study.export(model, onnx, precision="int8", calibration=str(args.data / "CBSD432"),
                                               calibration_count=crops, calibration_method=method,
                                               per_channel=per_channel, min_psnr=1.0)
                scores = study.evaluate(onnx, args.workdir / name / f"eval-{tag}.csv")
                row = {"network": name, "method": method, "crops": crops, "per_channel": per_channel,
                       "export_s": round(seconds, 1), "check_psnr_db": report["quant_psnr_db"]}
                for data in TEST_DATA:
                    row.update({f"{data}_fp32": round(base[data], 3), f"{data}_int8": round(scores[data], 3),
                                f"{data}_lost_db": round(base[data] - scores[data], 3)})
                row["load_1min"] = common.load_average()[0] if common.load_average() else ""
                common.append_row(path, row)
                onnx.unlink()  # the numbers are kept; the files are large and remade in a minute


def stage_fallback(study: Study, model: Path) -> None:
    args, name = study.args, network_name(model)
    path = args.results / f"{NAME}_fallback.csv"
    done = common.done_keys(path, ["network", "min_psnr"])
    base = fp32_psnr(study, model, name)
    for floor in args.fallback_min_psnr:
        if (name, str(floor)) in done:
            continue
        onnx = args.workdir / name / f"int8-fallback-{floor:g}.onnx"
        sensitivity = args.workdir / name / "sensitivity.csv"
        report, seconds = study.export(model, onnx, precision="int8", calibration=str(args.data / "CBSD432"),
                                       calibration_count=args.fallback_crops, calibration_method=args.fallback_method,
                                       keep_16bit="auto", min_psnr=floor, sensitivity=str(sensitivity))
        keep = args.results / f"{NAME}_sensitivity" / f"{name}.csv"  # a folder: the page lists only its top rows
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sensitivity, keep)
        scores = study.evaluate(onnx, args.workdir / name / f"eval-fallback-{floor:g}.csv")
        row = {"network": name, "min_psnr": floor, "method": args.fallback_method, "crops": args.fallback_crops,
               "activations": report["activations"], "kept_16bit": len(report["sixteen_bit"]),
               "tensors_16bit": report["activations_16bit"], "check_8bit_db": report["quant_psnr_8bit_db"],
               "check_db": report["quant_psnr_db"], "weights_only_db": report["weights_psnr_db"],
               "kept": " ".join(report["sixteen_bit"]), "export_s": round(seconds, 1)}
        for data in TEST_DATA:
            row.update({f"{data}_int8": round(scores[data], 3), f"{data}_lost_db": round(base[data] - scores[data], 3)})
        common.append_row(path, row)


def main() -> None:
    args = parse_args()
    for model in args.models:
        if not model.is_file():
            from hwnas.contracts.errors import HwnasError

            raise HwnasError(f"no trained model at {model}; train it first or pass another --models file.")
    args.workdir.mkdir(parents=True, exist_ok=True)
    study = Study(args)
    settings = {"sigma": SIGMA, "calibration": "CBSD432", "test_data": list(TEST_DATA), "crop": 128,
                "models": [str(m) for m in args.models]}
    with common.record_run(NAME, settings=settings, results_dir=args.results):
        for model in args.models:
            stage_grid(study, model)
            stage_fallback(study, model)


if __name__ == "__main__":
    common.run_main(main)
