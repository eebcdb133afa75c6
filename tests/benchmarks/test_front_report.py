"""benchmarks/report_front.py (issue 22): the plateau test at the front's budget and the uniform ranking."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


def write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        # Rows may add columns, as common.append_row widens a header: earlier rows leave them blank.
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
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
    assert "All 0 measured goals met; 2 not measured yet." in text  # the plateau test and the front (not run)


def test_plateau_goal_missed_and_met(report, tmp_path):
    missed = page(report, tmp_path / "a", plateau({("naf", 6000): 30.5, ("naf", 12000): 30.8, ("cbr", 6000): 30.4,
                                                    ("cbr", 12000): 30.45}), [uniform("naf", 0, 30.5)])
    assert "largest gain +0.30 dB (naf)" in missed and "**MISSED**" in missed
    met = page(report, tmp_path / "b", plateau({("naf", 6000): 30.5, ("naf", 12000): 30.55}), [uniform("naf", 0, 30.5)])
    assert "largest gain +0.05 dB (naf)" in met and "All 1 measured goals met; 1 not measured yet." in met


def test_uniform_ranking_sorted_with_seed_spread(report, tmp_path):
    text = page(report, tmp_path, plateau({("naf", 3000): 30.0}),
                [uniform("cbr", 0, 30.40), uniform("naf", 0, 30.50), uniform("naf", 1, 30.70), uniform("cbr", 1, 30.40)])
    table = text[text.index("| network | seeds |"):]
    assert table.index("| naf | 0,1 | 31.60 +-0.10 | 30.60 +-0.10 |") < table.index("| cbr | 0,1 |")


# -- the front (front.csv, front_latency.csv) -------------------------------------------------------------------------

PSNR = "psnr:CBSD68:sigma=25:seed=0"


def net(kind: str, name: str, target: float, seed: int, ms: float, psnr: float, choices=("naf", "cbr")) -> dict:
    arch = json.dumps({"space": "nafnet-unet", "choices": {f"p{i}": c for i, c in enumerate(choices * 2)}})
    return {"target": target, "kind": kind, "name": name, "target_ratio": target, "seed": seed, "predicted_ms": ms,
            "measured_ms": ms, "val_psnr": psnr - 1, PSNR: psnr, "params": 500_000, "gmacs": 0.8,
            "steps": 6000, "train_seconds": 900.0, "pareto": False, "spec": "{}", "arch": arch, "run": f"x/{name}"}


def uniform_with_ms(net_: str, seed: int, psnr: float, ms: float) -> tuple[dict, dict]:
    return ({**uniform(net_, seed, psnr), "train_steps": 6000, "train_seconds": 800.0},
            {"network": net_, "seed": seed, "repeat": 0, "median_ms": ms})


def front_page(report, tmp_path: Path, searched: list[dict], *, front_latency: list[dict] | None = None) -> str:
    """naf (100 ms, 30.50/30.60 dB) and cbr (40 ms, 30.00 dB) uniform; a random mix at 60 ms, 30.10 dB."""
    results = tmp_path / "results"
    results.mkdir(parents=True)
    naf0, naf0_ms = uniform_with_ms("naf", 0, 30.5, 100)
    naf1, naf1_ms = uniform_with_ms("naf", 1, 30.6, 100)
    cbr0, cbr0_ms = uniform_with_ms("cbr", 0, 30.0, 40)
    write(results / "front_uniform.csv", [naf0, naf1, cbr0])
    write(results / "front_uniform_latency.csv", [naf0_ms, naf1_ms, cbr0_ms])
    write(results / "front.csv", [net("random", "random-0.6x-1", 0.6, 0, 60, 30.1), *searched])
    if front_latency:
        write(results / "front_latency.csv", front_latency)
    return report.render(results, tmp_path / "RESULTS.md")


def goal_line(text: str, target: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| front | at {target}:"))


def test_front_margin_met(report, tmp_path):
    text = front_page(report, tmp_path, [net("searched", "mu-1-target0.6x-seed0", 0.6, 0, 60, 30.50),
                                         net("searched", "mu-1-target0.6x-seed1", 0.6, 1, 60, 30.45)])
    line = goal_line(text, "0.6x")
    assert "30.48 dB at 60.0 ms vs the baselines' 30.10 dB: +0.38 dB, seed spread 0.05 dB" in line and "MISSED" not in line
    assert "none of 2 is uniform" in text
    assert (tmp_path / "results" / "front.png").read_bytes()[:4] == b"\x89PNG" and "![front](results/front.png)" in text
    assert "| searched | mu-1-target0.6x-seed0 | 0.6x | 0 | 60.00 | 30.50 |" in text
    assert "| uniform | uniform-naf-s1 | - | 1 | 100.00 | 30.60 |" in text
    assert "not yet timed together" in text  # no front_latency.csv: the sweeps' own measurements
    assert ("fastest first: all-cbr 40.0 ms 30.00 dB; random-0.6x-1 60.0 ms 30.10 dB; all-naf 100.0 ms 30.55 dB. "
            "Uniform networks on it: all-cbr, all-naf -- a user gets these without a search.") in text


def test_front_margin_missed_by_margin_and_by_spread(report, tmp_path):
    small = front_page(report, tmp_path / "a", [net("searched", "s0", 0.6, 0, 60, 30.20),
                                                net("searched", "s1", 0.6, 1, 60, 30.25)])
    assert "+0.12 dB" in goal_line(small, "0.6x") and "**MISSED**" in goal_line(small, "0.6x")
    noisy = front_page(report, tmp_path / "b", [net("searched", "s0", 0.6, 0, 60, 30.0),
                                                net("searched", "s1", 0.6, 1, 60, 30.8)])
    assert "+0.30 dB, seed spread 0.80 dB" in goal_line(noisy, "0.6x") and "**MISSED**" in goal_line(noisy, "0.6x")


def test_front_is_interpolated_along_the_baselines_front(report, tmp_path):
    """At 70 ms the baselines' front runs from the random mix (60 ms, 30.10) to all-naf's mean (100 ms, 30.55): 30.2125;
    front_latency.csv's timings replace the sweeps' own."""
    timed = [{"source": "front", "kind": "searched", "name": n, "target": 0.6, "seed": s, "repeat": 0, "median_ms": 70}
             for n, s in (("s0", 0), ("s1", 1))]
    text = front_page(report, tmp_path, [net("searched", "s0", 0.6, 0, 61, 30.50), net("searched", "s1", 0.6, 1, 62, 30.50)],
                      front_latency=timed)
    assert "30.50 dB at 70.0 ms vs the baselines' 30.21 dB: +0.29 dB" in goal_line(text, "0.6x")
    assert "front_latency.csv, median over repeats" in text


def test_front_at_and_pareto(report):
    import importlib.util

    spec = importlib.util.spec_from_file_location("report_front", Path(report.__file__).parent / "report_front.py")
    module = importlib.util.module_from_spec(spec)
    module.report = report
    spec.loader.exec_module(module)
    front = module.pareto([(40, 30.0, "a"), (50, 29.0, "worse"), (100, 30.6, "b"), (120, 30.5, "slower, worse")])
    assert [p[2] for p in front] == ["a", "b"]
    assert module.front_at(front, 70) == pytest.approx(30.3)
    assert module.front_at(front, 200) == 30.6 and module.front_at(front, 30) is None


def test_a_uniform_searched_network_is_named_and_pending_front_says_what_to_run(report, tmp_path):
    text = front_page(report, tmp_path / "a", [net("searched", "s0", 0.6, 0, 60, 30.5, choices=("cbr",)),
                                               net("searched", "s1", 0.6, 1, 60, 30.45)])
    assert "uniform: s0" in text and "collapsed to one candidate" in text
    pending = page(report, tmp_path / "b", plateau({("naf", 3000): 30.0}), [uniform("naf", 0, 30.5)])
    assert "python benchmarks/bench_front.py front --target 0.45 --target 0.6" in pending
    assert "not run yet: python benchmarks/bench_front.py front" in pending


def test_calibration_goal_is_judged_at_the_default_method_only(report, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    rows = [{"network": net, "method": m, "crops": 16, "per_channel": True, "CBSD68_lost_db": lost, "Kodak24_lost_db": lost + 0.02}
            for net in ("a", "b") for m, lost in (("minmax", 0.45), ("percentile", 0.2))]
    write(results / "calibration.csv", rows)
    text = report.render(results, tmp_path / "RESULTS.md")
    assert "worst 0.22 dB over a, b (2 settings)" in text and "| met |" in text  # minmax's 0.47 is shown, not judged
    rows[-1]["Kodak24_lost_db"] = 0.35
    write(results / "calibration.csv", rows)
    assert "worst 0.35 dB" in report.render(results, tmp_path / "RESULTS.md")


def test_front_latency_section_gives_each_network_its_time_against_all_naf_of_the_same_repeat(report, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    timings = [("uniform", "uniform-naf-s0", "", 0, 100.0), ("uniform", "uniform-naf-s0", "", 1, 120.0),
               ("searched", "mu-0.1-target0.6x-seed0", 0.6, 0, 55.0), ("searched", "mu-0.1-target0.6x-seed0", 0.6, 1, 72.0)]
    write(results / "front_latency.csv", [{"source": "front", "kind": k, "name": n, "target": t, "seed": 0, "repeat": r,
                                           "median_ms": ms, "load_start": 0.5, "load_end": 0.9} for k, n, t, r, ms in timings])
    text = report.render(results, tmp_path / "RESULTS.md")
    line = next(x for x in text.splitlines() if x.startswith("| searched | mu-0.1-target0.6x-seed0"))
    # 55/100 and 72/120: the ratio within each repeat, not 63.5/110 across them
    assert line.split(" | ")[-1].rstrip(" |") == "0.60x" and "55.0 .. 72.0" in line


def test_front_latency_section_takes_all_naf_alone_as_the_reference(report, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    timings = [("uniform-naf-s0", 100.0), ("uniform-naf_bn-s0", 50.0), ("random-0.6x-1", 60.0)]
    write(results / "front_latency.csv", [{"source": "front", "kind": "uniform", "name": n, "target": "", "seed": 0,
                                           "repeat": 0, "median_ms": ms, "load_start": 0.5, "load_end": 0.9}
                                          for n, ms in timings])
    text = report.render(results, tmp_path / "RESULTS.md")
    line = next(x for x in text.splitlines() if "| random-0.6x-1 |" in x)
    assert line.rstrip(" |").endswith("0.60x")  # 60/100: all-naf_bn is not all-naf


def test_hold_section_sets_each_search_s_argmax_beside_the_held_network(report, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write(results / "front_hold.csv", [
        {"target": "0.6x", "seed": 1, "target_ms": 42.8, "argmax_ms": 48.05, "argmax_off_pct": 12.28, "held_ms": 39.9,
         "held_off_pct": -6.79, "swaps": 1, "moves": "dec0.0 naf->cbr_e4"},
        {"target": "0.75x", "seed": 0, "target_ms": 53.5, "argmax_ms": 47.2, "argmax_off_pct": -11.73, "held_ms": 47.2,
         "held_off_pct": -11.73, "swaps": 0, "moves": ""}])
    assert report.main(["--results", str(results), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "| 0.6x | 1 | 42.8 | 48.0 | +12.3% | 39.9 | -6.8% | dec0.0 naf->cbr_e4 |" in text
    assert "| 0.75x | 0 | 53.5 | 47.2 | -11.7% | 47.2 | -11.7% | - |" in text


def test_hold_section_gives_the_quality_a_held_network_gave_up_once_scored(report, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write(results / "front_hold.csv", [
        {"target": "0.6x", "seed": 1, "target_ms": 42.8, "argmax_ms": 48.05, "argmax_off_pct": 12.28, "held_ms": 39.9,
         "held_off_pct": -6.79, "swaps": 1, "moves": "dec0.0 naf->cbr_e4", "held_cbsd68_s25_psnr": 30.68,
         "argmax_cbsd68_s25_psnr": 30.72, "argmax_cbsd68_s25_worst_image_psnr": 26.4,
         "held_cbsd68_s25_worst_image_psnr": 4.8},
        {"target": "0.75x", "seed": 0, "target_ms": 53.5, "argmax_ms": 47.2, "argmax_off_pct": -11.73, "held_ms": 47.2,
         "held_off_pct": -11.73, "swaps": 0, "moves": "", "held_cbsd68_s25_psnr": "", "argmax_cbsd68_s25_psnr": "",
         "argmax_cbsd68_s25_worst_image_psnr": "", "held_cbsd68_s25_worst_image_psnr": ""}])
    assert report.main(["--results", str(results), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "| dec0.0 naf->cbr_e4 | 30.72 | 30.68 | -0.04 | 26.4 / 4.8 |" in text and "| - | - | - | - | - |" in text
    assert "fine-tuned it as its argmax network was" in text


def lr_row(net_: str, seed: int, zeros: float, edge: float, steps: int = 6000) -> dict:
    return {"network": net_, "seed": seed, "lr": 0.002, "steps": steps, "cbsd68_s25_psnr_zeros": zeros,
            "cbsd68_s25_worst_zeros": 26.0, "cbsd68_s25_psnr_edge": edge, "cbsd68_s25_worst_edge": 26.1,
            "train_seconds": 1900.0, "model": "sha256:x", "eval_seconds": 60.0, "run": f"x/{net_}-{seed}"}


def test_uniform_rows_at_the_sweeps_rate_replace_those_at_the_default_and_the_goals_are_judged_with_both(report, tmp_path):
    """all-naf retrained at 0.002 scores 30.70/30.80 (zeros) where it scored 30.50/30.60 at 0.001; all-cbr was not
    retrained, so the front leaves it out rather than set a row of another recipe beside the sweeps'."""
    searched = [net("searched", "s0", 0.6, 0, 60, 30.50), net("searched", "s1", 0.6, 1, 60, 30.45)]
    before = front_page(report, tmp_path / "a", searched)
    assert "+0.38 dB" in goal_line(before, "0.6x")
    results = tmp_path / "b" / "results"
    results.mkdir(parents=True)
    for name in ("front_uniform.csv", "front_uniform_latency.csv", "front.csv"):
        (results / name).write_bytes((tmp_path / "a" / "results" / name).read_bytes())
    write(results / "front_uniform_lr.csv", [lr_row("naf", 0, 30.70, 30.75), lr_row("naf", 1, 30.80, 30.86)])
    text = report.render(results, tmp_path / "b" / "RESULTS.md")
    assert "| naf | 0,1 | 30.55 +-0.05 | 30.75 +-0.05 | +0.20 | 30.80 +-0.05 | 26.1 | 1900 |" in text
    assert "| uniform | uniform-naf-s1 | - | 1 | 100.00 | 30.80 |" in text and "uniform-cbr-s0" not in text
    assert "all-naf trained again at the sweeps' learning rate (0.002" in text
    # the stretch goal's reference moved: the searched networks (30.50 at 0.6x) now lose more than all-naf's spread
    stretch = next(line for line in text.splitlines() if line.startswith("- stretch:"))
    assert "(met) -> with all-naf at 0.002:" in stretch and stretch.endswith("(0.150 dB short) (**MISSED**)")


def test_at_sweep_lr_keeps_a_network_only_when_every_seed_was_retrained(benchmark_script):
    import pandas as pd

    report_front = benchmark_script("report_front.py")

    before = pd.DataFrame([uniform("naf", 0, 30.5), uniform("naf", 1, 30.6), uniform("cbr", 0, 30.0)])
    before["train_seconds"] = 800.0
    one_seed = pd.DataFrame([lr_row("naf", 0, 30.7, 30.75)])
    same, nets = report_front.at_sweep_lr(before, one_seed)
    assert nets == [] and same is before
    both = pd.DataFrame([lr_row("naf", 0, 30.7, 30.75), lr_row("naf", 1, 30.8, 30.85), lr_row("cbr", 0, 30.1, 30.2)])
    matched, nets = report_front.at_sweep_lr(before, both)
    assert nets == ["naf", "cbr"] and list(matched.cbsd68_s25_psnr) == [30.7, 30.8, 30.1]
    assert list(before.cbsd68_s25_psnr) == [30.5, 30.6, 30.0]  # the caller's frame is left alone
    longer = pd.concat([both, pd.DataFrame([lr_row("naf", 0, 31.0, 31.0, steps=12000)])])
    assert list(report_front.at_sweep_lr(before, longer)[0].cbsd68_s25_psnr) == [30.7, 30.8, 30.1]  # B's rows only


def test_the_plateau_at_the_sweeps_rate_sets_each_longer_run_beside_its_seed_at_b(report, tmp_path):
    """naf seed 0 trained for 12000 steps at 0.002 scores 30.78 against 30.70 at 6000: +0.08 dB, the plateau met at
    that rate (while front_plateau.csv's runs at 0.001 gained 0.30); its row does not stand in for the 6000-step one."""
    results = tmp_path / "results"
    results.mkdir()
    write(results / "front_plateau.csv", plateau({("naf", 6000): 30.5, ("naf", 12000): 30.8}))
    write(results / "front_uniform.csv", [uniform("naf", 0, 30.5), uniform("naf", 1, 30.6)])
    write(results / "front_uniform_lr.csv", [lr_row("naf", 0, 30.70, 30.75), lr_row("naf", 1, 30.80, 30.86),
                                             lr_row("naf", 0, 30.78, 30.80, steps=12000)])
    text = report.render(results, tmp_path / "RESULTS.md")
    assert "| naf | 0,1 | 30.55 +-0.05 | 30.75 +-0.05 | +0.20 | 30.80 +-0.05 | 26.1 | 1900 |" in text  # B only
    assert "| naf | 0 | 12000 | 30.700 | 30.780 | +0.08 dB | 30.800 | 1900 |" in text
    goals = [line for line in text.splitlines() if "training 2B gains" in line]
    assert any("lr 0.001" in g and "+0.30 dB (naf)" in g and "MISSED" in g for g in goals)
    assert any("lr 0.002" in g and "+0.08 dB (naf s0)" in g and "| met |" in g for g in goals)


def s50_row(net_: str, seed: int, psnr: float, steps: int = 6000) -> dict:
    return {"network": net_, "seed": seed, "lr": 0.002, "steps": steps, "cbsd68_s50_psnr_zeros": psnr,
            "cbsd68_s50_worst_zeros": 23.0, "cbsd68_s50_psnr_edge": psnr + 0.01, "cbsd68_s50_worst_edge": 23.1,
            "train_seconds": 1900.0, "model": "sha256:x", "eval_seconds": 60.0,
            "run": f"x/{net_}-{seed}" if steps == 6000 else f"x/{net_}-{steps}-{seed}"}


def test_the_noise_section_sets_each_network_beside_all_naf_of_its_length_at_both_sigmas(report, tmp_path):
    """cbr matches naf at sigma 25 (30.70 vs 30.75) but loses 0.30 dB at sigma 50: the harder task sets them apart."""
    results = tmp_path / "results"
    results.mkdir()
    write(results / "front_uniform_lr.csv", [lr_row("naf", 0, 30.70, 30.75), lr_row("naf", 1, 30.80, 30.86),
                                             lr_row("cbr", 0, 30.72, 30.7), lr_row("cbr", 1, 30.68, 30.7)])
    write(results / "front_uniform_lr_s50.csv", [s50_row("naf", 0, 27.5), s50_row("naf", 1, 27.7),
                                                 s50_row("cbr", 0, 27.3), s50_row("cbr", 1, 27.3)])
    (results / "front_uniform_lr_s50.meta.json").write_text(json.dumps({"settings": {"eval_sigma": 50.0}}))
    text = report.render(results, tmp_path / "RESULTS.md")
    assert "The uniform networks at sigma 50 (front_uniform_lr_s50.csv)" in text
    assert "| naf | 6000 | 0,1 | 30.750 | - | 27.600 | - | 27.610 |" in text
    assert "| cbr | 6000 | 0,1 | 30.700 | -0.05 | 27.300 | -0.30 | 27.310 |" in text


def width_row(width: int, s25: float, s50: float) -> dict:
    return {"network": "cbr", "width": width, "seed": 0, "lr": 0.002, "steps": 6000, "params": 1_000_000,
            "gmacs": 1.0, "cbsd68_s25_psnr_zeros": s25, "cbsd68_s25_psnr_edge": s25 + 0.01,
            "cbsd68_s50_psnr_zeros": s50, "cbsd68_s50_psnr_edge": s50, "train_seconds": 2000.0,
            "model": "sha256:x", "eval_seconds": 60.0, "run": f"x/cbr-w{width}"}


def test_the_width_section_sets_the_widened_network_beside_the_blocks_and_the_front(report, tmp_path):
    """all-cbr at width 24 takes 0.6x all-naf's latency (medians of the same rounds: 54.5 / 90.5) and scores 30.90: on
    the front's clock (all-naf 100 ms) that is 60.2 ms, where the baselines' front gives 30.10 (the random mix) and the best searched network 30.50."""
    front_page(report, tmp_path, [net("searched", "mu-1-target0.6x-seed0", 0.6, 0, 60, 30.50),
                                  net("searched", "mu-1-target0.6x-seed1", 0.6, 1, 61, 30.45)])
    results = tmp_path / "results"
    write(results / "front_width.csv", [width_row(24, 30.90, 27.70)])
    write(results / "front_width_latency.csv", [
        {"network": n, "width": w, "repeat": r, "median_ms": ms, "load_start": 0.1, "load_end": 0.2}
        for r in range(2) for n, w, ms in (("cbr", 24, 54.0 + r), ("naf", 16, 90.0 + r), ("cbr", 16, 30.0))])
    write(results / "front_uniform_lr.csv", [lr_row("naf", 0, 30.70, 30.75), lr_row("naf", 1, 30.80, 30.86)])
    write(results / "front_uniform_lr_s50.csv", [s50_row("naf", 0, 27.5), s50_row("naf", 1, 27.7)])
    text = report.render(results, tmp_path / "RESULTS2.md")
    assert "Width and depth against block: the cheapest network grown (front_width.csv)" in text
    assert "| all-naf | 16 | enc 1,1,2,2 mid 2; channels 16,32,64,128,256 | 0,1 | 1.00 | 30.75 +-0.05 | 27.600 | 1900 |" in text
    assert "| all-cbr | 24 | enc 1,1,2,2 mid 2; channels 24,48,96,192,384 | 0 | 0.60 | 30.90 | 27.700 | 2000 |" in text
    line = next(x for x in text.splitlines() if x.startswith("- all-cbr at width 24"))
    assert "(0.60x all-naf, ~60.2 ms on the front's clock): 30.90 dB; the baselines' front there 30.10 dB (+0.80)" in line
    assert "the best searched network at most as slow, mu-1-target0.6x-seed0: 30.50 dB (+0.40)" in line


def test_the_width_section_names_a_placed_network_by_its_layout(report, tmp_path):
    """A deeper network (rows with shape and layout) beside widened rows written before shapes existed (neither
    column): each is timed under its own key, and the deeper one is named by its layout on the front."""
    front_page(report, tmp_path, [net("searched", "mu-1-target0.6x-seed0", 0.6, 0, 60, 30.50)])
    results = tmp_path / "results"
    write(results / "front_width.csv", [width_row(24, 30.90, 27.70),
                                        {**width_row(16, 30.95, 27.60), "run": "x/cbr-deep6", "shape": "deep6",
                                         "layout": "enc 1,1,2,4 mid 6; channels 16,32,64,128,256"}])
    write(results / "front_width_latency.csv", [
        {"network": n, "width": w, "repeat": 0, "median_ms": ms, "load_start": 0.1, "load_end": 0.2, "shape": d}
        for n, w, d, ms in (("cbr", 24, "", 54.0), ("naf", 16, "", 90.0), ("cbr", 16, "", 30.0), ("cbr", 16, "deep6", 36.0))])
    write(results / "front_uniform_lr.csv", [lr_row("naf", 0, 30.70, 30.75)])
    text = report.render(results, tmp_path / "RESULTS2.md")
    assert "| all-cbr | 16 | enc 1,1,2,4 mid 6; channels 16,32,64,128,256 | 0 | 0.40 | 30.95 | 27.600 | 2000 |" in text
    assert "| all-cbr | 24 | enc 1,1,2,2 mid 2; channels 24,48,96,192,384 | 0 | 0.60 | 30.90 | 27.700 | 2000 |" in text
    assert any(x.startswith("- all-cbr deep6 (enc 1,1,2,4 mid 6; channels 16,32,64,128,256) (0.40x all-naf")
               for x in text.splitlines())


def test_the_width_section_sets_networks_trained_at_a_harder_noise_apart(report, tmp_path):
    """Rows trained at a fixed sigma 50 (`--train-sigma 50`, read back by pandas as the float 50.0) get their own
    table, each against all-naf trained the same way and against itself trained blind; the main table and the front
    lines keep the blind-trained networks only."""
    front_page(report, tmp_path, [net("searched", "mu-1-target0.6x-seed0", 0.6, 0, 60, 30.50)])
    results = tmp_path / "results"
    write(results / "front_width.csv", [
        width_row(24, 30.90, 27.70),
        {**width_row(16, 30.20, 27.90), "network": "naf", "run": "x/naf-w16-t50", "train_sigma": "50"},
        {**width_row(16, 30.10, 27.70), "run": "x/cbr-w16-t50", "train_sigma": "50"}])
    write(results / "front_width_latency.csv", [
        {"network": n, "width": w, "repeat": 0, "median_ms": ms, "load_start": 0.1, "load_end": 0.2}
        for n, w, ms in (("cbr", 24, 54.0), ("naf", 16, 90.0), ("cbr", 16, 30.0))])
    write(results / "front_uniform_lr.csv", [lr_row("naf", 0, 30.70, 30.75), lr_row("cbr", 0, 30.70, 30.72)])
    write(results / "front_uniform_lr_s50.csv", [s50_row("naf", 0, 27.5), s50_row("cbr", 0, 27.3)])
    text = report.render(results, tmp_path / "RESULTS2.md")
    assert "| 50 | all-naf | 16 | enc 1,1,2,2 mid 2; channels 16,32,64,128,256 | 0 | 1.00 | 27.900 | - | 27.500 |" in text
    assert "| 50 | all-cbr | 16 | enc 1,1,2,2 mid 2; channels 16,32,64,128,256 | 0 | 0.33 | 27.700 | -0.20 | 27.300 |" in text
    assert not any(x.startswith("- all-cbr at width 16") for x in text.splitlines())  # not set on the blind front
    assert "| all-cbr | 16 | enc 1,1,2,2 mid 2; channels 16,32,64,128,256 | 0 | 0.33 | 30.70 |" in text  # blind only


def scratch_row(name: str, seed: int, finetuned: float, zeros: float) -> dict:
    return {"name": name, "target": 0.6, "seed": seed, "steps": 6000, "cbsd68_s25_psnr_finetuned_zeros": finetuned,
            "cbsd68_s25_psnr_zeros": zeros, "cbsd68_s25_worst_zeros": 25.0, "cbsd68_s25_psnr_edge": zeros + 0.02,
            "cbsd68_s25_worst_edge": 25.1, "train_seconds": 1300.0, "model": "sha256:x", "eval_seconds": 60.0,
            "arch": "{}", "run": f"x/{name}-scratch"}


def test_the_scratch_section_sets_each_architecture_beside_its_fine_tuned_score_and_the_front(report, tmp_path):
    """The searched networks at 60 ms were fine-tuned to 30.00/29.90; from scratch they score 30.40/30.30, against the
    baselines' front there (the random mix at 60 ms, 30.10 dB)."""
    front_page(report, tmp_path, [net("searched", "s0", 0.6, 0, 60, 30.00), net("searched", "s1", 0.6, 1, 60, 29.90)])
    results = tmp_path / "results"
    write(results / "front_scratch.csv", [scratch_row("s0", 0, 30.00, 30.40), scratch_row("s1", 1, 29.90, 30.30)])
    text = report.render(results, tmp_path / "RESULTS2.md")
    assert "The searched architectures trained from scratch (front_scratch.csv)" in text
    assert "| s0 | 0.6x | 60.0 | 30.000 | 30.400 | +0.40 | 30.10 | +0.30 | 30.420 | 25.1 | 1300 |" in text
    assert ("- at 0.6x, from scratch: 30.35 dB (seed spread 0.10) at 60.0 ms vs the baselines' front 30.10 dB: +0.25 dB "
            "(the goal asks +0.15)") in text


def test_the_renorm_section_sets_each_architecture_beside_its_plain_batchnorm_training_and_the_front(report, tmp_path):
    """Plain BatchNorm from scratch: 30.40 (worst image 25.0) and 29.00 (one image broken); with Batch Renormalization
    30.45 and 30.35, against the baselines' front at 60 ms (30.10 dB)."""
    front_page(report, tmp_path, [net("searched", "s0", 0.6, 0, 60, 30.00), net("searched", "s1", 0.6, 1, 60, 29.90)])
    results = tmp_path / "results"
    write(results / "front_scratch.csv", [scratch_row("s0", 0, 30.00, 30.40),
                                          {**scratch_row("s1", 1, 29.90, 29.00), "cbsd68_s25_worst_zeros": 8.3}])
    write(results / "front_scratch_renorm.csv", [scratch_row("s0", 0, 30.00, 30.45), scratch_row("s1", 1, 29.90, 30.35)])
    text = report.render(results, tmp_path / "RESULTS2.md")
    assert "with Batch Renormalization (front_scratch_renorm.csv)" in text
    assert "| s1 | 0.6x | 60.0 | 29.000 | 8.3 | 30.350 | 25.0 | +1.35 | 30.10 | +0.25 | 1300 |" in text
    assert ("- at 0.6x, Batch Renormalization from scratch: 30.40 dB (seed spread 0.10) at 60.0 ms vs the baselines' "
            "front 30.10 dB: +0.30 dB (the goal asks +0.15)") in text
    assert "- at 0.6x, from scratch: 29.70 dB (seed spread 1.40)" in text  # the plain section keeps its own numbers
