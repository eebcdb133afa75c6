"""benchmarks/bench_front.py's front stages without training: what the sweep is asked, which rows go where."""

from __future__ import annotations

import csv
import json
from argparse import Namespace
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bf(benchmark_script):
    return benchmark_script("bench_front.py")


def write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def uniform_rows(**psnr: list[float]) -> list[dict]:
    return [{"network": n, "steps": 6000, "seed": s, "cbsd68_s25_psnr": p} for n, ps in psnr.items() for s, p in enumerate(ps)]


def test_narrow_takes_the_best_uniform_network_by_its_seeds_mean_and_naf(bf, tmp_path):
    write(tmp_path / "front_uniform.csv", uniform_rows(naf=[30.5, 30.1], cbr=[30.2], cbr_e4=[30.4]))
    assert bf.narrow_list(tmp_path) == "cbr_e4,naf"
    write(tmp_path / "front_uniform.csv", uniform_rows(naf=[30.5, 30.4], cbr=[30.2]))
    assert bf.narrow_list(tmp_path) == "naf"
    flags = [str(f) for f in bf.sweep_flags(0.45, "cbr_e4,naf")]
    joined = " ".join(flags)
    assert ("--target-ratio 0.45 --latency-weight 0.1 --seeds 0,1 --baselines --budget-steps 6000 "
            "--uniform-candidates none --narrow cbr_e4,naf --random-per-target 2") in joined
    assert "-o candidates=[naf,naf_bn,naf_bn_lite,cbr,cbr_e4] " in joined  # searched without skip (bench_front says why)
    assert "--score-option sigma=[25]" in joined and "--executor ray --cpus-per-run 1" in joined
    epochs, per_epoch = int(flags[flags.index("--epochs") + 1]), int(flags[flags.index("--steps-per-epoch") + 1])
    assert epochs * per_epoch == bf.SEARCH_STEPS < bf.FRONT_STEPS and "--mode sampled" in joined


def test_the_int8_search_asks_the_sweep_for_its_searched_network_alone(benchmark_script, tmp_path, monkeypatch):
    int8 = benchmark_script("bench_front_int8.py")
    asked = []
    monkeypatch.setattr(int8, "LUT", tmp_path / "t.csv")
    (tmp_path / "t.csv").write_text("")
    runner = type("R", (), {"hwnas": lambda self, *a, log: asked.append([str(x) for x in a])})()
    args = int8.parse_args(["search", "--workdir", str(tmp_path / "w"), "--results", str(tmp_path / "r")])
    int8.stage_search(args, runner)
    joined = " ".join(asked[0])
    assert f"--lut {int8.rel(tmp_path / 't.csv')} " in joined and "--target-ratio 0.4 " in joined
    assert "--seeds 0 " in joined and "--random-per-target 0 " in joined and "--narrow none " in joined
    assert joined.endswith(f"--executor local --out {int8.rel(tmp_path / 'w' / 'sweep-0.4x')}")


def test_a_uniform_network_rebuilds_from_the_constants(bf):
    from hwnas.nas.front import network_of

    cols = bf.uniform_spec_arch("cbr_e4")
    assert json.loads(cols["spec"])["options"] == {"candidates": list(bf.CANDIDATES)}
    space, _ = network_of(cols)
    assert set(json.loads(cols["arch"])["choices"].values()) == {"cbr_e4"}
    assert len(json.loads(cols["arch"])["choices"]) == len(space.positions(bf.IMAGE_SIZE))


def test_front_skips_a_target_there_and_appends_a_new_ones_rows(bf, tmp_path, monkeypatch):
    results, work = tmp_path / "results", tmp_path / "work"
    results.mkdir()
    lut = tmp_path / "lut.csv"
    lut.write_text("")
    monkeypatch.setattr(bf, "LUT", lut)
    write(results / "front_uniform.csv", uniform_rows(naf=[30.5]))
    write(results / "front.csv", [{"target": 0.6, "kind": "searched", "name": "old", "run": "x"}])
    asked = []

    class FakeRunner:
        def hwnas(self, *args, log):
            asked.append(args)
            out = Path(args[args.index("--out") + 1])
            out = out if out.is_absolute() else bf.ROOT / out
            out.mkdir(parents=True)
            write(out / "front.csv", [{"kind": "random", "name": "random-0.45x-1", "seed": 0, "spec": "{}", "arch": "{}",
                                       "run": "baselines/random-0.45x-1"}])

    bf.stage_front(Namespace(target=[0.6, 0.45], results=results, workdir=work), FakeRunner())
    assert len(asked) == 1 and "0.45" in asked[0] and "--resume" not in asked[0]
    rows = list(csv.DictReader(open(results / "front.csv", newline="")))
    assert [(r["target"], r["name"]) for r in rows] == [("0.6", "old"), ("0.45", "random-0.45x-1")]
    assert rows[1]["spec"] == "{}" and rows[1]["sweep_wall_seconds"] != "" and rows[1]["run"].endswith("random-0.45x-1")


def test_the_int8_quality_stage_finds_the_fine_tuned_searched_network_and_the_baselines(benchmark_script, tmp_path):
    int8 = benchmark_script("bench_front_int8.py")
    args = int8.parse_args(["quality", "--workdir", str(tmp_path / "w"), "--front-work", str(tmp_path / "f")])
    sweep = int8.sweep_folder(args)
    (sweep / "mu-0.1-target0.4x-seed0" / "finetune").mkdir(parents=True)
    (sweep / "mu-0.1-target0.4x-seed0" / "finetune" / "model.pt").write_bytes(b"")
    write(sweep / "front.csv", [{"kind": "searched", "seed": 0, "run": "mu-0.1-target0.4x-seed0/finetune"},
                                {"kind": "random", "seed": 0, "run": "baselines/random-0.4x-1"}])
    (tmp_path / "f" / "uniform" / "naf-6000-s0").mkdir(parents=True)
    (tmp_path / "f" / "uniform" / "naf-6000-s0" / "model.pt").write_bytes(b"")
    nets = int8.trained_networks(args)
    assert list(nets) == ["int8-searched-s0", "all-naf-s0"]  # all-cbr_e4 not trained here: left out
    assert nets["int8-searched-s0"] == sweep / "mu-0.1-target0.4x-seed0" / "finetune" / "model.pt"


def test_held_fine_tunes_a_changed_network_as_its_argmax_was_and_scores_both(bf, tmp_path):
    results, search = tmp_path / "results", tmp_path / "sweep-0.6x" / "mu-0.1-target0.6x-seed1"
    results.mkdir()
    (search / "finetune").mkdir(parents=True)
    write(results / "front_hold.csv", [
        {"target": "0.6x", "seed": 1, "swaps": 1, "search": str(search), "held_arch": json.dumps({"enc0.0": "cbr"})},
        {"target": "0.75x", "seed": 0, "swaps": 0, "search": str(tmp_path / "other"), "held_arch": "{}"}])
    asked = []

    class FakeRunner:
        def hwnas(self, command, *args, log):
            asked.append((command, *map(str, args)))
            out = Path(args[args.index("--out") + 1])
            out = out if out.is_absolute() else bf.ROOT / out
            if command == "train":
                out.mkdir(parents=True)
                (out / "model.pt").write_bytes(b"")
                write(out / "metrics.csv", [{"steps": 4500, "train_seconds": 900.0}])
            else:  # eval: the held network scores 0.1 dB under its argmax
                held = "finetune-held" in args[args.index("--model") + 1]
                write(out, [{"dataset": d, "sigma": 25, "psnr": 30.7 - 0.1 * held + (d == "Kodak24"), "ssim": 0.8}
                            for d in ("CBSD68", "Kodak24")])

    bf.stage_held(Namespace(results=results, workdir=tmp_path, jobs=1, target=[0.75]), FakeRunner())
    assert asked == []  # --target 0.75: only that target's networks, and 0.75x holds nothing
    bf.stage_held(Namespace(results=results, workdir=tmp_path, jobs=1, target=None), FakeRunner())
    train = next(a for a in asked if a[0] == "train")
    assert train[train.index("--config") + 1].endswith("finetune/config.yaml")
    assert json.loads((search / "held-arch.json").read_text())["choices"] == {"enc0.0": "cbr"}
    rows = list(csv.DictReader(open(results / "front_hold.csv", newline="")))
    assert float(rows[0]["held_cbsd68_s25_psnr"]) == 30.6 and float(rows[0]["argmax_kodak24_s25_psnr"]) == 31.7
    assert rows[1]["held_cbsd68_s25_psnr"] == "" and sum(a[0] == "train" for a in asked) == 1  # nothing changed: not trained
