"""benchmarks/report.py renders RESULTS.md from CSVs and says plainly where a goal is missed."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def latency_rows(searched_ms: float) -> list[dict]:
    rows = []
    for repeat in range(2):
        for network, kind, ms, naf in (("all-naf", "uniform", 400.0, 36), ("all-cbr", "uniform", 150.0, 0),
                                       ("searched-mu1", "searched", searched_ms, 10)):
            rows.append({"repeat": repeat, "network": network, "kind": kind, "median_ms": ms + repeat, "p10_ms": ms - 5,
                         "p90_ms": ms + 5, "runs": 10, "params": 29e6, "gmacs": 16.0, "predicted_ms": ms * 0.95,
                         "naf_blocks": naf, "image_size": 256, "threads": 2, "choices": "naf cbr"})
    return rows


def fidelity_rows(worst_pct: float, run: str = "a", other_cores: float = 0.02, batch: bool = True) -> list[dict]:
    rows = []
    for seed, err in enumerate([1.0, -2.0, worst_pct]):
        measured = 300.0
        rows.append({"run": run, "seed": seed, **({"batch": 0} if batch else {}), "network": f"random-{seed}",
                     "lut": f"{run}.csv", "lut_created": "2026-01-01",
                     "predicted_ms": measured * (1 + err / 100), "measured_ms": measured, "p10_ms": 290.0, "p90_ms": 310.0,
                     "runs": 30, "error_pct": err, "predicted_same_rounds_ms": measured * 1.01, "error_same_rounds_pct": 1.0,
                     "load_1min": 2.0, "other_cores": other_cores, "n_naf": 9, "n_cbr": 27})
    return rows


def search_cost_rows(soft_time: float) -> list[dict]:
    out = []
    for variant, t, mb in (("naf:train", 1.0, 500.0), ("sampled:weight", 1.2, 700.0), ("soft:weight", soft_time, 1500.0),
                           ("soft:iteration", 2 * soft_time, 1600.0)):
        network, phase = variant.split(":")
        out.append({"round": 0, "variant": variant, "network": network, "phase": phase, "median_s": t, "min_s": t,
                    "steps": 3, "peak_mb": mb, "rss_peak_mb": mb + 300, "params": 29e6, "crop": 64, "batch_size": 8,
                    "threads": 1})
    return out


def fill(results: Path, *, searched_ms: float, worst_pct: float, soft_time: float) -> None:
    results.mkdir()
    write_csv(results / "latency.csv", latency_rows(searched_ms))
    write_csv(results / "fidelity.csv", fidelity_rows(worst_pct))
    write_csv(results / "search_cost.csv", search_cost_rows(soft_time))
    write_csv(results / "quality.csv", [
        {"kind": k, "network": n, "dataset": d, "sigma": s, "psnr": p, "predicted_ms": 100.0}
        for k, n, p in (("baseline", "all-naf", 30.1), ("searched", "searched", 29.9)) for d in ("CBSD68", "Kodak24")
        for s in (15, 25)])
    write_csv(results / "extra_numbers.csv", [{"what": "x", "value": 1.5}])
    (results / "latency.meta.json").write_text(json.dumps({
        "name": "latency", "command": "python benchmarks/bench_latency.py --lut t.csv", "date": "2026-01-01",
        "machine": {"cpu_model": "Test CPU 9000", "cores": 2, "logical_cpus": 2}, "versions": {"onnxruntime": "1.32.0"},
        "runs": [{"command": "python benchmarks/bench_latency.py --lut t.csv", "status": "done", "load_start": [1.0],
                  "load_end": [1.5]}]}))


def test_page_marks_missed_goals(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    fill(results, searched_ms=300.0, worst_pct=14.0, soft_time=6.0)  # 1.33x, one at +14%, soft 6x
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    goals = text.split("## 1.")[0]
    assert "**MISSED**" in goals and "3 of 7 goals missed." in goals
    assert "| latency | a searched network >= 2x faster than all-naf | best: searched-mu1 1.33x (300 ms) | **MISSED** |" in goals
    # ratios 1.01, 0.98, 1.14 over their geometric mean 1.041: -3.0%, -5.9%, +9.5%
    assert "| fidelity | run a (table `a.csv`): scale-free mean \\|error\\| <= 3% | 6.1% | **MISSED** |" in goals
    assert "| fidelity | run a (table `a.csv`): scale-free, every network within +-10% | 3/3 within; worst +9.5% | met |" in goals
    assert "| search cost | soft weight update <= 4.5x an all-naf training step (time) | 6.00x | **MISSED** |" in goals
    assert "| search cost | sampled weight update <= 1.5x an all-naf training step (time) | 1.20x | met |" in goals
    assert "*Likely cause:*" in text and "all-cbr" in text  # a cause that names the numbers behind it
    for png in ("latency.png", "fidelity.png", "search_cost.png"):
        assert (results / png).stat().st_size > 1000
        assert f"(results/{png})" in text
    assert "`python benchmarks/bench_latency.py --lut t.csv`" in text and "Test CPU 9000" in text
    assert "No sidecar for `fidelity.csv`" in text
    assert "timed again in the networks' own rounds, mean |error| is 1.0%" in text  # the absolute error's cause, a diagnostic
    assert ("| a | `a.csv` (2026-01-01) | 3 | 6.1% | +9.5% | 3/3 | +4.1% | 5.7% | +14.0% | 2/3 | +4.3% | 1.0% (worst +1.0%) "
            "| 0.02 | 2.0 | goal |") in text
    assert "Kodak24 s=25" in text and "## 4. Quality (quality.csv)" in text
    assert "## 5. extra_numbers.csv" in text and "| x | 1.500 |" in text
    assert "| latency.csv | 2026-01-01 | Test CPU 9000 | 2 | 1.2 |" in text  # the machines table


def test_page_says_all_goals_met(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    fill(results, searched_ms=180.0, worst_pct=4.0, soft_time=3.0)
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    assert "All 7 goals met." in text and "MISSED" not in text
    assert "(not measured)" not in text


def test_missing_results_folder_is_one_line_error(report, tmp_path, capsys):
    assert report.main(["--results", str(tmp_path / "nope"), "--out", str(tmp_path / "R.md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no results folder") and err.count("\n") == 1
    assert not (tmp_path / "R.md").exists()


def test_fidelity_runs_under_load_are_diagnostics_not_verdicts(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    write_csv(results / "fidelity.csv", fidelity_rows(30.0, run="busy", other_cores=0.9))
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    goals = text.split("## 1.")[0]
    assert "| no quiet run | not measured |" in goals and "MISSED" not in goals
    assert "diagnostic (machine busy)" in text and "Runs measured while other processes used the CPU (busy)" in text
    write_csv(results / "fidelity.csv", fidelity_rows(30.0, run="busy", other_cores=0.9) + fidelity_rows(3.0, run="b"))
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    goals = page.read_text().split("## 1.")[0]
    assert "run b (table `b.csv`): scale-free, every network within +-10%" in goals and "run busy" not in goals


def test_fidelity_batches_of_rows_from_before_the_batch_column_are_inferred_only_when_the_load_record_agrees(report):
    import pandas as pd

    rows = pd.DataFrame(fidelity_rows(4.0, batch=False) + fidelity_rows(4.0, batch=False))
    rows["load_1min"] = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]  # one load record per batch of 3
    assert report.fidelity_batches(rows, 3) == ([0, 0, 0, 1, 1, 1], True)
    assert report.fidelity_batches(rows, 2) == (None, False)  # a "batch" whose rows hold two load records
    assert report.fidelity_batches(rows, None) == (None, False)  # the sidecar does not say the batch size


def test_fidelity_rows_without_batches_are_not_judged(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    write_csv(results / "fidelity.csv", fidelity_rows(30.0, batch=False))  # no batch column, no sidecar
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    goals = page.read_text().split("## 1.")[0]
    assert "rows carry no batch | not measured |" in goals and "MISSED" not in goals


def test_the_int8_table_is_judged_scale_free_and_its_bias_without_drift(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    rows = [{"network": f"random-{i}", "predicted_ms": 130.0 * (1 + 0.01 * i) * (1.1 if i >= 5 else 1.0),
             "measured_ms": 100.0 * (1 + 0.01 * i), "error_pct": 0.0, "predicted_same_rounds_ms": 0.0,
             "error_same_rounds_pct": 15.0, "load_1min": 1.2} for i in range(8)]
    write_csv(results / "precision_fidelity.csv", rows)
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    # a 30% bias and a batch 10% slower than the other leave no scale-free error (batches of 5 inferred)
    assert "scale-free mean \\|error\\| <= 5% | 0.0% | met |" in text and "8/8 within" in text
    assert "batch factors +30.0%, +43.0%" in text and "batches inferred" in text
    assert "absolute mean \\|error\\| <= 10% (units timed in the networks' own rounds, so no drift) | 15.0% | **MISSED** |" in text


def test_fidelity_cause_tells_drift_from_bias(report):
    drift = report.FidelityRun("a", "a.csv", "", 3, 12.0, 15.0, 12.0, 1, 5.0, {"n": 3, "mean_abs": 2.0, "worst": 3.0,
                               "mean": 1.0, "within": 3}, 0.0, 2.0)
    assert report.fidelity_cause(drift).startswith("the machine ran at another speed")
    bias = report.FidelityRun("a", "a.csv", "", 3, 12.0, 15.0, 12.0, 1, 5.0, None, 0.0, 2.0)
    assert report.fidelity_cause(bias).startswith("the table over-predicts on average (signed mean +12.0%)")


def test_builds_section_judges_quiet_builds_against_two_minutes(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    write_csv(results / "fidelity_builds.csv", [
        {"run": "a", "lut": "a.csv", "created": "2026-01-01", "seconds": 75.0, "units": 30, "load_1min_start": 0.5,
         "other_cores": 0.01, "noisy_units": 0, "extra_passes": 0, "runs": 60},
        {"run": "busy", "lut": "busy.csv", "created": "2026-01-01", "seconds": 300.0, "units": 30, "load_1min_start": 3.0,
         "other_cores": 1.2, "noisy_units": 12, "extra_passes": 2, "runs": 60}])
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    goals = page.read_text().split("## 1.")[0]
    assert "| build-lut | paper table built in under 2 minutes (quiet machine) | slowest quiet build 75 s | met |" in goals


def test_drift_section_gives_each_run_s_spread_and_largest_change_within_five_minutes(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    rounds = [(0, 500.0, 0.1), (60, 600.0, 2.0), (120, 450.0, 0.2), (400, 500.0, 0.1)]  # 600 -> 450 within 5 min: +33.3%
    write_csv(results / "drift.csv", [{"run": "a", "round": i, "t_s": t, "clock": "00:00:00", "median_ms": ms, "p10_ms": ms - 5,
                                       "p90_ms": ms + 5, "runs": 10, "steal_pct": steal, "other_cores": 0.0, "load_1min": 0.1}
                                      for i, (t, ms, steal) in enumerate(rounds)])
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    assert "How far this machine's speed moves by itself" in text
    assert "| a | 4 | 6.7 | 500.0 | -10.0% .. +20.0% | 3/4 | 33.3% | 0.60% (max 2.0%) | 0.00 |" in text


def test_commit_goal_counts_only_the_current_defaults_series(report, tmp_path):
    from hwnas.contracts.config import MIN_LR
    from hwnas.nas.schedule import ARCH_TRAVEL

    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    now = {"arch_travel": f"{ARCH_TRAVEL:g}", "min_lr": f"{MIN_LR:g}"}
    row = dict(warmup_epochs=1, arch_lr=0.1, committed=True, min_largest_alpha=0.99, alpha_entropy=0.01,
               argmax_changed_last_quarter=0, predicted_speedup=1.5, seconds=100.0)
    write_csv(results / "paper_commit.csv", [
        {"steps": 600, "arch_travel": now["arch_travel"], "min_lr": "0.002", **row, "committed": False},  # earlier default
        {"steps": 60, **now, **row}, {"steps": 600, **now, **row}])
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    goals = page.read_text().split("## 1.")[0]
    assert "| 2 of 2 lengths committed (60, 600 steps) | met |" in goals


def test_a_uniform_searched_network_is_named_as_the_uniform_network(report, tmp_path):
    """Issue 22: the page never calls a collapsed (all-one-candidate) search result just 'searched'."""
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    write_csv(results / "paper.csv", [
        {"network": net, "params": p, "gmacs": 1.0, "weight_updates": 100, "dataset": "CBSD68", "sigma": 25,
         "psnr": v, "ssim": 0.8} for net, p, v in (("searched", 1e6, 30.1), ("naf-s0", 2e6, 30.0))])
    choices = {f"p{i}": "cbr" for i in range(4)}
    (results / "paper.meta.json").write_text(json.dumps({"runs": [], "settings": {"search": {
        "choices": choices, "target_ms": 10.5, "predicted_ms": 10.0, "base_ms": 25.0, "commitment": {}}}}))
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    assert "**The searched network is the uniform all-cbr network** (`cbr` at all 4 positions)" in text
    assert "only 1.05x the prediction of all-cbr itself" in text
    assert "| searched (= uniform all-cbr) |" in text


def test_provenance_names_the_kept_table_where_it_is(report):
    kept = report.provenance({"settings": {"lut": "paper-ort.csv"}}, "paper.csv")
    assert "`benchmarks/results/lut/paper-ort.csv`" in kept[-1]
    path = report.provenance({"settings": {"lut": "benchmarks/results/front_lut/ort-small-256.csv"}}, "front.csv")
    assert "rerun with `--lut benchmarks/results/front_lut/ort-small-256.csv`" in path[-1] and "lut/benchmarks" not in path[-1]


def test_provenance_does_not_call_a_run_without_an_end_record_running(report):
    runs = [{"command": "python benchmarks/bench_front.py uniform", "status": "running", "started": "t0"},
            {"command": "python benchmarks/bench_front.py latency", "status": "done", "started": "t1"}]
    lines = report.provenance({"runs": runs}, "front_uniform.csv")
    assert "(no end recorded: stopped, or still running, t0)" in lines[2] and "(done, t1)" in lines[3]


def _precision_results(results: Path, quality: list[dict]) -> None:
    results.mkdir()
    write_csv(results / "precision_latency.csv", [
        {"repeat": r, "precision": p, "network": n, "median_ms": ms, "load_1min": 0.5}
        for r in range(2) for p, n, ms in (("fp32", "all-naf", 400.0), ("int8", "searched", 100.0))])
    write_csv(results / "precision_quality.csv", quality)


def _ptq_rows(network: str, model: str, calibration: str, fp32: float, int8: float) -> list[dict]:
    return [{"network": network, "precision": p, "dataset": d, "sigma": 25, "psnr": v + (0.5 if d == "Kodak24" else 0),
             "ssim": 0.8, "images": 1, "quant_psnr_db": "", "model": model, "calibration": c}
            for p, v, c in (("fp32", fp32, ""), ("int8", int8, calibration)) for d in ("CBSD68", "Kodak24")]


def test_precision_goal_judges_today_s_calibration_on_every_trained_network(report, tmp_path):
    """Issue 24: rows of the former MinMax default stay on the page but no longer decide the goal; the worst
    network and data set with today's default does."""
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    legacy = "minmax, weights per channel, 32 inputs (former default)"
    today = "percentile, weights per channel, 32 inputs"
    _precision_results(results, _ptq_rows("searched", "", legacy, 30.6, 30.0)
                       + _ptq_rows("cbr-s0", "sha256:abc", today, 30.6, 30.45) + _ptq_rows("naf-s0", "sha256:def", today, 30.5, 30.25))
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    assert "4.00x, 4.00x (every repeat), at most 0.25 dB lost (naf-s0, CBSD68) | met |" in text
    assert f"| searched | - | {legacy} | CBSD68 | 30.60 | 30.00 | 0.60 |" in text  # shown, not judged


def test_precision_goal_with_only_former_rows_says_how_to_measure_today_s(report, tmp_path):
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    _precision_results(results, _ptq_rows("searched", "", "minmax (former default)", 30.6, 30.0))
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    goals = page.read_text().split("## 1.")[0]
    assert "0.60 dB lost (searched, CBSD68) | **MISSED** |" in goals
    assert "bench_paper.py train --networks cbr-s0,naf-s0" in page.read_text()


def test_a_collapsed_search_is_set_beside_the_same_network_trained_from_scratch(report, tmp_path):
    """Issue 22 item 1: the paper section names the uniform twin's score, and the drop table compares against it."""
    results, page = tmp_path / "results", tmp_path / "RESULTS.md"
    results.mkdir()
    write_csv(results / "paper.csv", [
        {"network": net, "params": p, "gmacs": 1.0, "weight_updates": 100, "dataset": "CBSD68", "sigma": 25,
         "psnr": v, "ssim": 0.8} for net, p, v in (("searched", 1e6, 30.62), ("naf-s0", 2e6, 30.57), ("cbr-s0", 1e6, 30.70))])
    (results / "paper.meta.json").write_text(json.dumps({"runs": [], "settings": {"search": {
        "choices": {f"p{i}": "cbr" for i in range(4)}, "target_ms": 10.5, "predicted_ms": 10.0, "base_ms": 25.0,
        "commitment": {}}}}))
    assert report.main(["--results", str(results), "--out", str(page)]) == 0
    text = page.read_text()
    assert ("the same network (`cbr-s0`) scores 30.70 dB on CBSD68 s=25, the searched copy (super-net weights, then "
            "fine-tuning) 30.62 dB: -0.08 dB, the search's whole contribution here, since the architecture is the one a "
            "user picks without a search; all-naf (naf-s0) scores 30.57 dB.") in text
    assert "| cbr-s0 | 0.26 |" in text  # the drop table's row: (30.70 - 30.62) / 30.70
