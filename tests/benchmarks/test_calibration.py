"""bench_calibration end to end on a tiny trained network and three tiny data sets: every row, its dB lost, the fallback."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.io

ROOT = Path(__file__).resolve().parents[2]


def hwnas(*args):
    return subprocess.run([sys.executable, "-m", "hwnas", *map(str, args)], capture_output=True, text=True)


def test_the_study_writes_a_row_per_setting_and_the_fallback(tmp_path):
    rng = np.random.default_rng(0)
    for name, n, shape in (("CBSD432", 4, (130, 130, 3)), ("CBSD68", 2, (33, 45, 3)), ("Kodak24", 1, (40, 40, 3))):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(n):
            skimage.io.imsave(tmp_path / "data" / name / f"{i}.png", rng.integers(0, 256, shape, dtype=np.uint8), check_contrast=False)
    trained = hwnas("train", "--preset", "tiny", "--uniform", "cbr", "--data", tmp_path / "data" / "CBSD432", "--crop", "32",
                    "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--out", tmp_path / "run")
    assert trained.returncode == 0, trained.stderr
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "benchmarks/bench_calibration.py", "--models", tmp_path / "run" / "model.pt",
                           "--methods", "minmax", "entropy", "--crops", "2", "--per-channel", "both", "--fallback-crops", "2",
                           "--fallback-min-psnr", "1", "--data", tmp_path / "data", "--workdir", tmp_path / "work",
                           "--results", results], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(results / "calibration.csv")))
    assert [(r["method"], r["per_channel"]) for r in rows] == [("minmax", "True"), ("minmax", "False"), ("entropy", "True"),
                                                                ("entropy", "False")]
    for r in rows:
        for data in ("CBSD68", "Kodak24"):
            assert float(r[f"{data}_lost_db"]) == pytest.approx(float(r[f"{data}_fp32"]) - float(r[f"{data}_int8"]), abs=0.0011)
        assert float(r["export_s"]) > 0 and r["network"] == "run"
    fallback = list(csv.DictReader(open(results / "calibration_fallback.csv")))
    assert len(fallback) == 1 and fallback[0]["kept_16bit"] == "0"  # a floor of 1 dB: all 8-bit reaches it
    assert (results / "calibration_sensitivity" / "run.csv").is_file()
    assert json.loads((results / "calibration.meta.json").read_text())["runs"][-1]["status"] == "done"
    again = subprocess.run([sys.executable, "benchmarks/bench_calibration.py", "--models", tmp_path / "run" / "model.pt",
                            "--methods", "minmax", "--crops", "2", "--per-channel", "on", "--data", tmp_path / "data",
                            "--workdir", tmp_path / "work", "--results", results], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and len(list(csv.DictReader(open(results / "calibration.csv")))) == 4  # nothing redone
