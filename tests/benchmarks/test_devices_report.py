"""benchmarks/bench_devices.py (issue 15) and its results-page section: the verdict per repeat."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_devices.py")


def rows(joint_worst: float, joint_psnr: float) -> list[dict]:
    """Two repeats; singles at worst ratios 0.40/0.42 (fp32 kind) and 0.41 (int8 kind), PSNR 24.40-24.50."""
    out = []
    worst = {"fp32": 0.40, "int8": 0.41, "joint": joint_worst}
    psnr = {"fp32": [24.40, 24.45, 24.50], "int8": [24.30, 24.35, 24.38], "joint": [joint_psnr] * 3}
    for repeat in range(2):
        for kind in ("fp32", "int8", "joint"):
            for seed in range(3):
                w = worst[kind] + (0.02 if kind == "fp32" and seed == 2 else 0.0)
                out.append({"kind": kind, "seed": seed, "repeat": repeat, "run": f"{kind}-s{seed}", "val_psnr": psnr[kind][seed],
                            "val_ssim": 0.3, "committed": True, "predicted_ms_fp32": 20.0, "predicted_ratio_fp32": 0.35,
                            "measured_ms_fp32": 25.0, "base_ms_fp32": 70.0, "measured_ratio_fp32": w - 0.05,
                            "base_drift_pct_fp32": 1.0, "predicted_ms_int8": 20.0, "predicted_ratio_int8": 0.38,
                            "measured_ms_int8": 24.0, "base_ms_int8": 60.0, "measured_ratio_int8": w,
                            "base_drift_pct_int8": -2.0, "worst_predicted_ratio": 0.38, "worst_measured_ratio": w,
                            "worst_measured_config": "int8", "choices": "cbr cbr naf_bn_lite naf_bn_lite naf_bn cbr cbr",
                            "load_1min": 5.0, "other_cores": 1.0})
    return out


def write(results: Path, data: list[dict]) -> None:
    results.mkdir()
    with open(results / "devices.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    (results / "devices.meta.json").write_text(json.dumps({
        "name": "devices", "command": "python benchmarks/bench_devices.py", "settings": {"latency_weight": 0.1, "epochs": 5,
        "steps_per_epoch": 16, "seeds": [0, 1, 2], "search_threads": 2},
        "runs": [{"command": "python benchmarks/bench_devices.py", "status": "done", "load_start": [5.0], "load_end": [6.0]}]}))


def test_joint_no_worse_and_psnr_in_range_is_met(report, tmp_path):
    write(tmp_path / "r", rows(joint_worst=0.39, joint_psnr=24.42))
    assert report.main(["--results", str(tmp_path / "r"), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "All 2 goals met." in text
    assert "repeat 0: joint's worse-of-two measured ratio" in text and "repeat 1: joint's" in text
    assert "joint 0.390 vs fp32 0.400, int8 0.410; PSNR joint 24.420 vs fp32 [24.400, 24.500]" in text
    assert "Joint derived the same architecture as fp32-s0, int8-s0" in text  # the fixture's networks are all alike
    assert "## 1. One search for several chips" in text and "mu 0.1, 5 epochs x 16 steps" in text


def test_a_slower_joint_network_or_a_psnr_outside_the_seeds_is_missed(report, tmp_path):
    write(tmp_path / "r", rows(joint_worst=0.405, joint_psnr=24.60))
    assert report.main(["--results", str(tmp_path / "r"), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "2 of 2 goals missed." in text
    assert "joint's worse ratio is 1.2% above fp32's" in text and "outside fp32's seed range" in text


def test_arguments(bench):
    args = bench.parse_args(["--stage", "measure", "--seeds", "0,2", "--kinds", "joint", "--repeats", "3"])
    assert args.seeds == [0, 2] and args.kinds == ["joint"] and args.repeats == 3
    assert args.latency_weight == bench.DEFAULT_MU
    with pytest.raises(SystemExit):
        bench.parse_args(["--kinds", "fp16"])
    command = bench.search_command(args, "joint", 2, Path("/tmp/run"))
    assert command.count("--lut") == 2 and command[command.index("--combine") + 1] == "worst"
    assert "--combine" not in bench.search_command(args, "int8", 2, Path("/tmp/run"))
