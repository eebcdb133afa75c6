"""benchmarks/bench_front_width.py: the cheapest uniform network widened or deepened, trained with the front's recipe."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_front_width.py")


def test_train_asks_for_each_width_at_the_fronts_recipe(bench, tmp_path, monkeypatch, hwnas_calls):
    calls = hwnas_calls
    monkeypatch.setattr(bench, "Runner", lambda workdir: calls)
    bench.stage_train(bench.parse_args(["train", "--widths", "20,24", "--workdir", str(tmp_path), "--results",
                                        str(tmp_path), "--jobs", "1"]))
    assert [a[a.index("--uniform") + 1] for a in calls.argv] == ["cbr", "cbr"]
    assert [a[i + 1] for a in calls.argv for i, x in enumerate(a) if x == "-o" and a[i + 1].startswith("width=")] == \
        ["width=20", "width=24"]
    assert all(a[a.index("--lr") + 1] == "0.002" and a[a.index("--epochs") + 1] == "60" for a in calls.argv)
    assert calls.argv[1][calls.argv[1].index("--out") + 1].endswith("cbr-w24-6000-lr0.002-s0")


@pytest.mark.parametrize("shape, options", [
    ("deep6", ["enc_blocks=[1,1,2,4]", "middle_blocks=6"]),  # deeper at low resolution only; width kept
    ("wide0", ["level_widths=[24,32,64,128,256]"]),  # wider at full resolution only
])
def test_train_places_capacity_at_some_levels_only(bench, tmp_path, monkeypatch, hwnas_calls, shape, options):
    calls = hwnas_calls
    monkeypatch.setattr(bench, "Runner", lambda workdir: calls)
    bench.stage_train(bench.parse_args(["train", "--widths", "none", "--shapes", shape, "--workdir", str(tmp_path),
                                        "--results", str(tmp_path), "--jobs", "1"]))
    [argv] = calls.argv
    assert [argv[i + 1] for i, x in enumerate(argv) if x == "-o"][1:] == options  # after the front's candidates
    assert argv[argv.index("--out") + 1].endswith(f"cbr-{shape}-6000-lr0.002-s0")


def test_train_at_a_harder_noise_names_it_in_the_folder(bench, tmp_path, monkeypatch, hwnas_calls):
    calls = hwnas_calls
    monkeypatch.setattr(bench, "Runner", lambda workdir: calls)
    bench.stage_train(bench.parse_args(["train", "--networks", "naf", "--widths", "16", "--train-sigma", "50.0",
                                        "--workdir", str(tmp_path), "--results", str(tmp_path), "--jobs", "1"]))
    [argv] = calls.argv
    assert argv[argv.index("--sigma") + 1] == "50" and argv[argv.index("--uniform") + 1] == "naf"
    assert argv[argv.index("--out") + 1].endswith("naf-w16-t50-6000-lr0.002-s0")
    # the front's blind range keeps the folders named before the option
    assert bench.run_dir(tmp_path, "cbr", "w20", 0).name == "cbr-w20-6000-lr0.002-s0"


@pytest.mark.parametrize("sigma", ["5x", "50,10", "-5", "1,2,3", "nan", "0,inf"])
def test_bad_train_sigma_is_one_line(bench, tmp_path, sigma):
    with pytest.raises(SystemExit, match=f"--train-sigma '{sigma}' is not a noise level or a range"):
        bench.main(["train", "--train-sigma", sigma, "--workdir", str(tmp_path), "--results", str(tmp_path)])


def test_unknown_shape_is_one_line(bench, tmp_path):
    with pytest.raises(SystemExit, match=r"unknown shapes \['deep7'\]; choose among deep6,deep10,wide0,wide01"):
        bench.main(["train", "--shapes", "deep7", "--workdir", str(tmp_path), "--results", str(tmp_path)])


def test_deeper_networks_keep_the_preset_width_and_decoder(bench):
    from hwnas.nas.front import network_of

    for depth, extra in (("deep6", 6), ("deep10", 12)):
        space, net = network_of(bench.spec_arch("cbr", bench.SHAPES[depth]))
        positions = space.positions(64)
        assert len(positions) == 12 + extra and net.intro.out_channels == bench.PRESET_WIDTH
        assert sum(p.label.startswith("dec") for p in positions) == 4


@pytest.mark.parametrize("widths, message", [("20,two", "--widths '20,two' is not a comma-separated list"),
                                             ("21", "width 21 is not an even number"), ("0", "width 0 is not")])
def test_bad_widths_are_one_line(bench, tmp_path, widths, message):
    with pytest.raises(SystemExit, match=message):
        bench.main(["train", "--widths", widths, "--workdir", str(tmp_path), "--results", str(tmp_path)])


def test_unknown_network_is_one_line(bench, tmp_path):
    with pytest.raises(SystemExit, match="unknown networks"):
        bench.main(["train", "--networks", "cbr4", "--workdir", str(tmp_path), "--results", str(tmp_path)])


def test_a_network_wide_at_full_resolution_only_keeps_the_other_levels(bench):
    from hwnas.nas.front import network_of

    _, net = network_of(bench.spec_arch("cbr", bench.SHAPES["wide0"]))
    assert (net.intro.out_channels, net.down0.out_channels, net.down3.out_channels) == (24, 32, 256)
    assert bench.layout_text(bench.SHAPES["wide0"]) == "enc 1,1,2,2 mid 2; channels 24,32,64,128,256"


def test_spec_of_a_widened_network_builds_at_that_width(bench):
    from hwnas.nas.front import network_of

    space, net = network_of(bench.spec_arch("cbr", {"width": 20}))
    assert net.intro.out_channels == 20 and space.name == "nafnet-unet"


def test_eval_scores_both_sigmas_and_paddings_once(bench, tmp_path, monkeypatch, trained_run):
    data = tmp_path / "CBSD68"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 27, 3), dtype=np.uint8)).save(data / "im0.png")
    monkeypatch.setattr(bench, "TEST_DATA", (data,))
    work, results = tmp_path / "work", tmp_path / "results"
    results.mkdir()
    trained_run(bench.run_dir(work, "cbr", "w20", 0))  # width 24 not trained: skipped, left for later
    args = bench.parse_args(["eval", "--workdir", str(work), "--results", str(results)])
    bench.stage_eval(args)
    bench.stage_eval(args)  # a row already there is not scored again
    [row] = list(csv.DictReader(open(results / "front_width.csv")))
    assert (row["network"], row["width"], row["seed"], row["steps"]) == ("cbr", "20", "0", "100")
    assert (row["shape"], row["layout"]) == ("", "enc 1,1,2,2 mid 2; channels 20,40,80,160,320")
    assert row["train_sigma"] == "0,55"
    assert float(row["cbsd68_s50_psnr_zeros"]) < float(row["cbsd68_s25_psnr_zeros"])
    assert {"cbsd68_s25_psnr_edge", "cbsd68_s50_psnr_edge", "params", "gmacs"} <= set(row)
