"""benchmarks/report_int8.py (issue 24): int8 at the front's scale -- dB kept, speed against fp32 all-naf, fallback."""

from __future__ import annotations

import csv
from pathlib import Path


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def quality(net: str, fp32: float, int8: float) -> list[dict]:
    return [{"network": net, "precision": p, "dataset": d, "psnr": v, "ssim": 0.8, "lost_db": round(fp32 - v, 3), "model": "m"}
            for d in ("CBSD68", "Kodak24") for p, v in (("fp32", fp32), ("int8", int8))]


def latency(ms: dict[tuple[str, str], list[float]]) -> list[dict]:
    return [{"repeat": r, "network": n, "precision": p, "median_ms": v, "predicted_ms": v * 1.1, "load_start": 0.3}
            for (n, p), values in ms.items() for r, v in enumerate(values)]


def page(report, tmp_path: Path, **tables: list[dict]) -> str:
    results = tmp_path / "results"
    for name, rows in tables.items():
        write(results / f"{name}.csv", rows)
    return report.render(results, tmp_path / "RESULTS.md")


def goal_line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| front int8 | {start}"))


def test_int8_loss_goal_takes_the_worst_network_and_data_set(report, tmp_path):
    text = page(report, tmp_path, front_int8_quality=quality("int8-searched-s0", 30.7, 30.55) + quality("all-naf-s0", 30.6, 30.2))
    line = goal_line(text, "int8 export")
    assert "worst 0.40 dB over 2 networks" in line and "**MISSED**" in line
    text = page(report, tmp_path / "b", front_int8_quality=quality("int8-searched-s0", 30.7, 30.65))
    assert "| met |" in goal_line(text, "int8 export")


def test_speed_goal_holds_only_when_every_repeat_holds(report, tmp_path):
    fast = {("all-naf-s0", "fp32"): [60.0, 61.0, 59.0], ("int8-searched-s0", "int8"): [18.0, 19.0, 18.5]}
    line = goal_line(page(report, tmp_path, front_int8_latency=latency(fast)), "int8 searched")
    assert "3.24x (worst repeat 3.19x)" in line and "| met |" in line
    mixed = latency({("cbr-fallback", "mixed"): [25.0]})[0] | {"predicted_ms": float("nan")}  # no table predicts it
    text = page(report, tmp_path / "m", front_int8_latency=latency(fast) + [mixed])
    assert "| cbr-fallback | mixed | 25.00 | 25.00 .. 25.00 | - | - |" in text
    slow = {**fast, ("int8-searched-s0", "int8"): [18.0, 21.0, 18.5]}  # repeat 1: 61 / 21 = 2.9x
    line = goal_line(page(report, tmp_path / "b", front_int8_latency=latency(slow)), "int8 searched")
    assert "worst repeat 2.90x" in line and "**MISSED**" in line


def test_fallback_lists_what_it_kept_and_the_most_sensitive_activations(report, tmp_path):
    row = {"network": "cbr", "min_psnr": 47.0, "method": "percentile", "crops": 32, "activations": 40, "kept_16bit": 2,
           "tensors_16bit": 3, "check_8bit_db": 44.1, "check_db": 47.5, "weights_only_db": 60.0, "kept": "/a /b",
           "export_s": 20.0, "CBSD68_int8": 30.5, "CBSD68_lost_db": 0.05, "Kodak24_int8": 31.1, "Kodak24_lost_db": 0.06}
    sens = [{"tensor": f"t{i}", "producer": f"/p{i}", "psnr_db": 40.0 + i} for i in range(8)]
    write(tmp_path / "results" / "calibration_sensitivity" / "cbr.csv", sens)
    text = page(report, tmp_path, calibration_fallback=[row])
    assert "| cbr | 47 | 2 of 40 | 44.10 | 47.50 | 0.050 | 0.060 | /a /b |" in text
    assert "/p4" in text and "/p5" not in text  # the five most sensitive only
    assert "calibration_sensitivity" not in [line.strip("# ") for line in text.splitlines() if line.startswith("## ")]
