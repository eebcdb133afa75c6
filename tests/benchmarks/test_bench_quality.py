"""bench_quality's shared steps, with a runner that records the commands instead of running them."""

from __future__ import annotations

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
