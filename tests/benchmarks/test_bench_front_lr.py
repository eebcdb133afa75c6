"""benchmarks/bench_front_lr.py: the front's uniform networks trained again at the sweeps' learning rate."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from hwnas.contracts.config import SearchConfig


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_front_lr.py")


def test_train_asks_hwnas_train_for_the_sweeps_rate_every_network_and_seed(bench, hwnas_calls, tmp_path, monkeypatch):
    calls = hwnas_calls
    monkeypatch.setattr(bench, "Runner", lambda workdir: calls)
    bench.train(bench.parse_args(["train", "--workdir", str(tmp_path), "--jobs", "1"]), ["naf", "cbr_e4"])
    assert bench.SWEEP_LR == SearchConfig.model_fields["lr"].default == 0.002  # the search's default, which every sweep network trains with
    assert len(calls.argv) == 4 and all(a[a.index("--lr") + 1] == "0.002" for a in calls.argv)
    assert [(a[a.index("--uniform") + 1], a[a.index("--seed") + 1]) for a in calls.argv] == \
        [("naf", "0"), ("naf", "1"), ("cbr_e4", "0"), ("cbr_e4", "1")]
    assert calls.argv[0][calls.argv[0].index("--out") + 1].endswith("naf-6000-lr0.002-s0")


def test_steps_and_seeds_choose_the_plateau_run(bench, hwnas_calls, tmp_path, monkeypatch):
    calls = hwnas_calls
    monkeypatch.setattr(bench, "Runner", lambda workdir: calls)
    bench.train(bench.parse_args(["train", "--workdir", str(tmp_path), "--steps", "12000", "--seeds", "0"]), ["naf"])
    [argv] = calls.argv
    assert argv[argv.index("--epochs") + 1] == "120" and argv[argv.index("--seed") + 1] == "0"
    assert argv[argv.index("--out") + 1].endswith("naf-12000-lr0.002-s0")


@pytest.mark.parametrize("flags, message", [(["--seeds", "0,one"], "--seeds '0,one' is not a comma-separated list"),
                                            (["--steps", "12050"], "12050 steps is not a multiple of 100")])
def test_bad_steps_or_seeds_are_one_line(bench, tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message):
        bench.main(["train", "--networks", "naf", "--workdir", str(tmp_path), "--results", str(tmp_path), *flags])


def test_unknown_network_is_one_line(bench, tmp_path):
    with pytest.raises(SystemExit, match="unknown networks"):
        bench.main(["train", "--networks", "naf,cbre4", "--workdir", str(tmp_path)])


def test_eval_scores_each_trained_run_with_both_paddings_and_skips_what_is_missing(bench, trained_run, tmp_path, monkeypatch):
    data = tmp_path / "CBSD68"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (21, 27, 3), dtype=np.uint8)).save(data / f"im{i}.png")
    monkeypatch.setattr(bench, "TEST_DATA", (data,))
    work, results = tmp_path / "work", tmp_path / "results"
    results.mkdir()
    trained_run(bench.run_dir(work, "naf", 0))  # seed 1 is not trained: left for a later run
    args = bench.parse_args(["eval", "--networks", "naf", "--workdir", str(work), "--results", str(results)])
    bench.evaluate(args, ["naf"])
    rows = list(csv.DictReader(open(results / "front_uniform_lr.csv")))
    assert [(r["network"], r["seed"], r["lr"], r["steps"], r["train_seconds"]) for r in rows] == \
        [("naf", "0", "0.002", "100", "12.5")]
    zeros, edge = float(rows[0]["cbsd68_s25_psnr_zeros"]), float(rows[0]["cbsd68_s25_psnr_edge"])
    assert zeros != edge  # 21x27 is padded inside the U-Net: the two paddings give two scores
    bench.evaluate(args, ["naf"])  # a row already there is not scored again
    assert len(list(csv.DictReader(open(results / "front_uniform_lr.csv")))) == 1
    trained_run(bench.run_dir(work, "naf", 0, 12000))  # the same network and seed trained longer: a row of its own
    bench.evaluate(bench.parse_args(["eval", "--networks", "naf", "--steps", "12000", "--seeds", "0", "--workdir",
                                     str(work), "--results", str(results)]), ["naf"])
    rows = list(csv.DictReader(open(results / "front_uniform_lr.csv")))
    assert [r["run"].rsplit("/", 1)[1] for r in rows] == ["naf-6000-lr0.002-s0", "naf-12000-lr0.002-s0"]


def test_eval_at_another_sigma_writes_a_file_of_its_own(bench, trained_run, tmp_path, monkeypatch):
    data = tmp_path / "CBSD68"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 27, 3), dtype=np.uint8)).save(data / "im0.png")
    monkeypatch.setattr(bench, "TEST_DATA", (data,))
    work, results = tmp_path / "work", tmp_path / "results"
    results.mkdir()
    trained_run(bench.run_dir(work, "naf", 0))
    flags = ["--networks", "naf", "--seeds", "0", "--workdir", str(work), "--results", str(results)]
    bench.evaluate(bench.parse_args(["eval", *flags]), ["naf"])
    bench.evaluate(bench.parse_args(["eval", "--sigma", "50", *flags]), ["naf"])  # the same run, not skipped
    [s25] = list(csv.DictReader(open(results / "front_uniform_lr.csv")))
    [s50] = list(csv.DictReader(open(results / "front_uniform_lr_s50.csv")))
    assert "cbsd68_s50_psnr_zeros" in s50 and "cbsd68_s25_psnr_zeros" not in s50
    assert float(s50["cbsd68_s50_psnr_zeros"]) < float(s25["cbsd68_s25_psnr_zeros"])  # more noise, a lower score


@pytest.mark.parametrize("sigma", ["0", "300"])
def test_a_sigma_off_the_scale_is_one_line(bench, tmp_path, sigma):
    with pytest.raises(SystemExit, match="not a noise level on the 0-255 scale"):
        bench.main(["eval", "--sigma", sigma, "--workdir", str(tmp_path), "--results", str(tmp_path)])
