"""benchmarks/report_front.py (issue 22): the plateau test at the front's budget and the uniform ranking."""

from __future__ import annotations

import csv
from pathlib import Path


def write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plateau(psnr: dict[tuple[str, int], float]) -> list[dict]:
    return [{"network": n, "steps": s, "seed": 0, "cbsd68_s25_psnr": p, "cbsd68_s25_ssim": 0.8} for (n, s), p in psnr.items()]


def uniform(net: str, seed: int, psnr: float, steps: int = 6000) -> dict:
    scores = {f"{d}_s{sg}_{k}": psnr + (25 - sg) / 10 if k == "psnr" else 0.85
              for d in ("cbsd68", "kodak24") for sg in (15, 25, 50) for k in ("psnr", "ssim")}
    return {"network": net, "steps": steps, "seed": seed, "params": 1_000_000, "gmacs": 1.2, **scores}


def page(report, tmp_path: Path, plateau_rows, uniform_rows=None) -> str:
    results = tmp_path / "results"
    results.mkdir(parents=True)
    write(results / "front_plateau.csv", plateau_rows)
    if uniform_rows:
        write(results / "front_uniform.csv", uniform_rows)
    return report.render(results, tmp_path / "RESULTS.md")


def test_plateau_goal_is_judged_at_the_fronts_budget_only(report, tmp_path):
    text = page(report, tmp_path, plateau({("naf", 1500): 29.4, ("naf", 3000): 30.1, ("naf", 6000): 30.5}),
                [uniform("naf", 0, 30.5)])
    assert "B = 6000" in text and "not measured: no 12000-step runs yet" in text
    assert "MISSED" not in text  # the 1500/3000 doublings are shown, not judged
    assert "| naf | 3000 | 30.10 | +0.40 dB |" in text
    assert "All 0 measured goals met; 1 not measured yet." in text


def test_plateau_goal_missed_and_met(report, tmp_path):
    missed = page(report, tmp_path / "a", plateau({("naf", 6000): 30.5, ("naf", 12000): 30.8, ("cbr", 6000): 30.4,
                                                    ("cbr", 12000): 30.45}), [uniform("naf", 0, 30.5)])
    assert "largest gain +0.30 dB (naf)" in missed and "**MISSED**" in missed
    met = page(report, tmp_path / "b", plateau({("naf", 6000): 30.5, ("naf", 12000): 30.55}), [uniform("naf", 0, 30.5)])
    assert "largest gain +0.05 dB (naf)" in met and "All 1 goals met." in met


def test_uniform_ranking_sorted_with_seed_spread(report, tmp_path):
    text = page(report, tmp_path, plateau({("naf", 3000): 30.0}),
                [uniform("cbr", 0, 30.40), uniform("naf", 0, 30.50), uniform("naf", 1, 30.70), uniform("cbr", 1, 30.40)])
    table = text[text.index("| network | seeds |"):]
    assert table.index("| naf | 0,1 | 31.60 +-0.10 | 30.60 +-0.10 |") < table.index("| cbr | 0,1 |")
