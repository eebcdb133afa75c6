"""bench_quality's shared steps, with a runner that records the commands instead of running them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


class RecordingRunner:
    """Stands in for bench_quality.Runner: records each `hwnas` command and writes what it would."""

    def __init__(self):
        self.commands: list[list[str]] = []

    def hwnas(self, *args, log: str) -> None:
        args = [str(a) for a in args]
        self.commands.append(args)
        out = Path(args[args.index("--out") + 1])
        out.write_text("dataset,sigma,psnr,ssim,images\nCBSD68,25,30.5,0.86,68\n" if args[0] == "eval" else "onnx")


@pytest.fixture
def bq(benchmark_script):
    return benchmark_script("bench_quality.py")


def test_exported_scores_exports_calibrated_scores_and_skips_what_exists(bq, tmp_path):
    runner = RecordingRunner()
    model, onnx, scores = tmp_path / "model.pt", tmp_path / "net-int8.onnx", tmp_path / "eval-net-int8.csv"
    rows = bq.exported_scores(runner, model, "int8", onnx, scores, calibration=tmp_path / "CBSD432",
                              data=[tmp_path / "CBSD68", tmp_path / "Kodak24"], sigma=25)
    assert rows == [{"dataset": "CBSD68", "sigma": "25", "psnr": "30.5", "ssim": "0.86", "images": "68"}]
    export, evaluate = runner.commands
    assert export[:1] == ["export"] and export[export.index("--precision") + 1] == "int8"
    assert export[export.index("--calibration") + 1].endswith("CBSD432")
    assert evaluate.count("--data") == 2 and evaluate[evaluate.index("--sigma") + 1] == "25"
    bq.exported_scores(runner, model, "int8", onnx, scores, calibration=tmp_path, data=[tmp_path], sigma=25)
    assert len(runner.commands) == 2  # both files there: an interrupted stage resumes without redoing them


def test_exported_scores_in_fp32_needs_no_calibration(bq, tmp_path):
    runner = RecordingRunner()
    bq.exported_scores(runner, tmp_path / "m.pt", "fp32", tmp_path / "n-fp32.onnx", tmp_path / "e.csv",
                       calibration=tmp_path / "CBSD432", data=[tmp_path], sigma=25)
    assert "--precision" not in runner.commands[0] and "--calibration" not in runner.commands[0]


def test_paper_report_keeps_the_rows_of_networks_not_measured_again(benchmark_script):
    """A workdir holding only some networks (the others trained in an earlier session) replaces only theirs."""
    paper = benchmark_script("bench_paper.py")
    before = [{"network": "searched", "psnr": "30.62"}, {"network": "naf-s0", "psnr": "30.57"},
              {"network": "naf-s1", "psnr": "30.54"}]
    fresh = [{"network": "naf-s0", "psnr": 30.55}, {"network": "cbr-s0", "psnr": 30.54}]
    assert paper.merged_rows(before, fresh) == [before[0], fresh[0], before[2], fresh[1]]  # in NETWORKS order


def test_paper_uniform_networks_train_without_a_search(benchmark_script, tmp_path):
    paper = benchmark_script("bench_paper.py")
    asked = []

    class Recorder:
        def hwnas(self, *args, log):
            asked.append(args)

    args = paper.parse_args(["train", "--workdir", str(tmp_path), "--networks", "cbr-s0"])
    paper.stage_train(args, Recorder())
    assert asked and asked[0][asked[0].index("--uniform") + 1] == "cbr" and asked[0][asked[0].index("--epochs") + 1] == 20
    with pytest.raises(SystemExit, match="the search has not finished"):
        paper.stage_train(paper.parse_args(["train", "--workdir", str(tmp_path), "--networks", "searched"]), Recorder())


def test_ptq_rows_name_their_training_and_calibration_and_a_new_training_is_measured_again(benchmark_script, tmp_path):
    precision = benchmark_script("bench_precision.py")
    work, paper = tmp_path / "w", tmp_path / "paper"
    (work / "logs").mkdir(parents=True)
    (paper / "train" / "naf-s0").mkdir(parents=True)
    model = paper / "train" / "naf-s0" / "model.pt"
    model.write_bytes(b"first training")
    for p in ("int8", "w8a16"):  # the export's JSON summary, as its log holds it
        report = {"precision": p, "calibration_method": "percentile", "per_channel": True, "calibration_count": 32,
                  "sixteen_bit": [], "quant_psnr_db": 41.2}
        stem = f"naf-s0-{precision.common.model_id(model).removeprefix('sha256:')}-{p}"
        (work / "logs" / f"export-{stem}.log").write_text("$ hwnas export ...\n" + json.dumps(report, indent=2) + "\n")
    args = precision.parse_args(["ptq", "--workdir", str(work), "--paper-work", str(paper), "--results", str(tmp_path)])
    runner = RecordingRunner()
    precision.stage_ptq(args, runner)
    rows = list(csv.DictReader(open(tmp_path / "precision_quality.csv", newline="")))
    assert [(r["network"], r["precision"]) for r in rows] == [("naf-s0", "fp32"), ("naf-s0", "int8"), ("naf-s0", "w8a16")]
    assert rows[0]["calibration"] == "" and rows[1]["calibration"] == "percentile, weights per channel, 32 inputs"
    assert rows[1]["quant_psnr_db"] == "41.2" and rows[1]["model"].startswith("sha256:") and ":" not in runner.commands[0][4]
    precision.stage_ptq(args, runner)  # the same training: nothing again
    assert len(runner.commands) == 6
    model.write_bytes(b"second training")
    precision.stage_ptq(args, runner)  # a new one: measured beside the first
    assert len(runner.commands) == 12 and len(list(csv.DictReader(open(tmp_path / "precision_quality.csv")))) == 6
