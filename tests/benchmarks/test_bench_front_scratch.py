"""benchmarks/bench_front_scratch.py: the front's searched architectures trained from scratch like the baselines."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

SPEC = {"options": {"candidates": ["naf", "cbr"]}, "preset": "small", "space": "nafnet-unet"}


def arch(choices: dict[str, str]) -> str:
    return json.dumps({"choices": choices, "space": "nafnet-unet"})


def write_front(results, rows):
    """A front.csv with `rows` (name, kind, seed, psnr, choices)."""
    results.mkdir(exist_ok=True)
    with open(results / "front.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["target", "kind", "name", "seed", "psnr:CBSD68:sigma=25:seed=0", "spec", "arch"])
        w.writeheader()
        for name, kind, seed, psnr, choices in rows:
            w.writerow({"target": "0.6", "kind": kind, "name": name, "seed": seed, "psnr:CBSD68:sigma=25:seed=0": psnr,
                        "spec": json.dumps(SPEC), "arch": arch(choices)})


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_front_scratch.py")


@pytest.fixture
def front(tmp_path):
    results = tmp_path / "results"
    write_front(results, [("s-0.6x-seed0", "searched", 0, 30.75, {"enc0.0": "cbr", "dec0.0": "naf"}),
                          ("s-0.6x-seed1", "searched", 1, 30.72, {"enc0.0": "naf", "dec0.0": "naf"}),
                          ("uniform-cbr-s0", "uniform", 0, 30.73, {"enc0.0": "cbr", "dec0.0": "cbr"})])
    return results


def test_train_trains_each_searched_architecture_from_scratch_with_the_baselines_recipe(bench, front, hwnas_calls,
                                                                                         tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "Runner", lambda workdir: hwnas_calls)
    work = tmp_path / "work"
    args = bench.parse_args(["train", "--workdir", str(work), "--results", str(front), "--jobs", "1"])
    bench.train(args, bench.searched_rows(front), ["s-0.6x-seed1", "s-0.6x-seed0"])
    first, second = hwnas_calls.argv
    assert "--init-from" not in first and "--uniform" not in first  # from scratch, the searched architecture
    assert first[first.index("--seed") + 1] == "1" and second[second.index("--seed") + 1] == "0"  # the search's seed
    assert first[first.index("--lr") + 1] == "0.002" and first[first.index("--epochs") + 1] == "60"  # 6000 steps
    assert first[first.index("-o") + 1] == 'candidates=["naf", "cbr"]'  # the space the search built it in
    written = json.loads((work / "archs" / "s-0.6x-seed1.json").read_text())
    assert first[first.index("--arch") + 1].endswith("s-0.6x-seed1.json")
    assert written["choices"] == {"enc0.0": "naf", "dec0.0": "naf"}
    assert first[first.index("--out") + 1].endswith("s-0.6x-seed1-scratch-6000-lr0.002")


def test_only_searched_networks_are_chosen_and_a_typo_is_one_line(bench, front, tmp_path):
    assert list(bench.searched_rows(front)) == ["s-0.6x-seed0", "s-0.6x-seed1"]
    with pytest.raises(SystemExit, match=r"unknown networks \['uniform-cbr-s0'\]"):
        bench.main(["train", "--networks", "uniform-cbr-s0", "--workdir", str(tmp_path), "--results", str(front)])


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_no_jobs_is_one_line(bench, front, tmp_path, jobs):
    with pytest.raises(SystemExit, match="runs nothing"):
        bench.main(["train", "--jobs", jobs, "--workdir", str(tmp_path), "--results", str(front)])


def test_a_front_without_searched_networks_is_one_line(bench, tmp_path):
    results = tmp_path / "results"
    write_front(results, [("uniform-cbr-s0", "uniform", 0, 30.73, {"enc0.0": "cbr"})])
    with pytest.raises(SystemExit, match="has no searched networks; run `python benchmarks/bench_front.py front`"):
        bench.main(["eval", "--workdir", str(tmp_path), "--results", str(results)])


def test_eval_sets_each_score_beside_its_fine_tuned_one_and_skips_what_is_missing(bench, front, trained_run, tmp_path,
                                                                                  monkeypatch):
    data = tmp_path / "CBSD68"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 27, 3), dtype=np.uint8)).save(data / "im0.png")
    monkeypatch.setattr(bench, "TEST_DATA", (data,))
    work = tmp_path / "work"
    trained_run(bench.run_dir(work, "s-0.6x-seed0"))  # seed 1 not trained yet
    args = bench.parse_args(["eval", "--workdir", str(work), "--results", str(front)])
    rows = bench.searched_rows(front)
    bench.evaluate(args, rows, list(rows))
    bench.evaluate(args, rows, list(rows))  # a row already there is not scored again
    [row] = list(csv.DictReader(open(front / "front_scratch.csv")))
    assert (row["name"], row["seed"], row["target"], row["steps"]) == ("s-0.6x-seed0", "0", "0.6", "100")
    assert float(row["cbsd68_s25_psnr_finetuned_zeros"]) == 30.75
    assert float(row["cbsd68_s25_psnr_zeros"]) != float(row["cbsd68_s25_psnr_edge"])  # 21x27: padded in the U-Net
    assert json.loads(row["arch"])["choices"] == {"enc0.0": "cbr", "dec0.0": "naf"}


def test_the_renormalised_study_has_its_own_folder_and_results_file(bench, front, trained_run, tmp_path, monkeypatch):
    data = tmp_path / "CBSD68"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(data / "im0.png")
    monkeypatch.setattr(bench, "TEST_DATA", (data,))
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    args = bench.parse_args(["eval", "--name", "front_scratch_renorm", "--results", str(front)])
    assert args.workdir == tmp_path / "benchmarks" / "work" / "front_scratch_renorm"
    assert bench.parse_args(["eval"]).workdir == tmp_path / "benchmarks" / "work" / "front_scratch"
    trained_run(bench.run_dir(args.workdir, "s-0.6x-seed1"))
    rows = bench.searched_rows(front)
    bench.evaluate(args, rows, list(rows))
    [row] = list(csv.DictReader(open(front / "front_scratch_renorm.csv")))
    assert row["name"] == "s-0.6x-seed1" and not (front / "front_scratch.csv").exists()
    assert json.loads((front / "front_scratch_renorm.meta.json").read_text())["settings"]["steps"] == 6000


def test_an_unknown_study_name_is_refused(bench, tmp_path):
    with pytest.raises(SystemExit):
        bench.parse_args(["eval", "--name", "front_scratch_bn"])
