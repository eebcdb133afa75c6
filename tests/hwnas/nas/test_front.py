"""`hwnas sweep --baselines`: the latency-quality front (hwnas.nas.front, hwnas.nas.baselines) on the tiny preset.

A macs table (device-free) steers the searches and picks the random mixes; the networks
are measured end to end with onnxruntime at 32 px, a few rounds only (the numbers are
noise on a busy machine; the test checks the plumbing, not the front).
"""

import csv
import json

import matplotlib.font_manager  # noqa: F401 -- font cache found before XDG_CACHE_HOME moves (else rebuilt: seconds)
import pytest

from hwnas.nas import baselines as bl
from hwnas.nas.front import KINDS
from hwnas.contracts.config import SpaceSpec

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

# one search of 2 steps at 0.9x the base network's prediction (the macs table's cheapest network is 0.8x)
SEARCH = ["--target-ratio", "0.9", "--image-size", "32", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "2",
          "--epochs", "1", "--warmup-epochs", "0", "--threads", "1", "--prefetch", "0"]
FRONT = ["--baselines", "--budget-steps", "4", "--uniform-candidates", "naf,cbr", "--measure-runs", "1"]


@pytest.fixture(scope="module")
def lut(tmp_path_factory):
    import hwnas

    path = tmp_path_factory.mktemp("lut") / "tiny.csv"
    hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=32, out=path)
    return path


@pytest.fixture(scope="module")
def front(lut, tmp_path_factory):
    """One sweep with --baselines, run once for the module (in-process, as the `cli` fixture does)."""
    import sys

    from hwnas.cli import main

    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("front")
    (root / "photos").mkdir()
    for i in range(2):  # a benchmark's folder (CBSD68), two random 32 px images here
        Image.fromarray((np.random.default_rng(i).random((32, 32, 3)) * 255).astype("uint8")).save(root / "photos" / f"{i}.png")
    out = root / "sweep"
    argv, sys.argv = sys.argv, ["hwnas", "sweep", "--lut", str(lut), *SEARCH, *FRONT, "--score-data", str(root / "photos"),
                                "--score-option", "sigma=[25]", "--out", str(out), "--json"]
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None)
    finally:
        sys.argv = argv
    return out


def rows(out):
    with open(out / "front.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_front_has_every_kind_its_table_and_plot(front):
    table = rows(front)
    # wider: all-cbr (0.8x) widened to the 0.9x target, when a variant measures below it here
    assert {"searched", "uniform", "narrower", "shallower", "random"} <= {r["kind"] for r in table} <= set(KINDS)
    assert list(table[0])[:6] == ["kind", "name", "target_ratio", "seed", "predicted_ms", "measured_ms"]
    assert {"val_psnr", "val_ssim", "params", "gmacs", "steps", "train_seconds", "pareto", "matched_by", "run"} <= set(table[0])
    names = {r["name"] for r in table}
    assert all(r["matched_by"] in names | {""} and (r["kind"] == "searched" or not r["matched_by"]) for r in table)
    assert {"psnr:photos:sigma=25:seed=0", "ssim:photos:sigma=25:seed=0"} <= set(table[0])  # --score-data
    assert all(float(r["psnr:photos:sigma=25:seed=0"]) > 0 for r in table)
    assert all(int(r["steps"]) == 4 for r in table)  # search 2 + fine-tune 2 = every baseline's budget
    assert all(float(r["measured_ms"]) > 0 for r in table) and any(r["pareto"] == "True" for r in table)
    assert (front / "front.png").read_bytes()[:4] == b"\x89PNG"
    names = {r["name"] for r in table}
    assert {"uniform-naf-s0", "uniform-cbr-s0", "random-0.9x-1", "random-0.9x-2", "mu-1-target0.9x"} <= names
    for r in table:
        assert (front / r["run"] / "model.pt").is_file()
    assert (front / "mu-1-target0.9x" / "finetune" / "config.yaml").is_file()
    tuned = json.loads(json.dumps(__import__("yaml").safe_load((front / "mu-1-target0.9x" / "finetune" / "config.yaml").read_text())))
    assert tuned["init_from"].endswith("mu-1-target0.9x") and tuned["epochs"] * tuned["steps_per_epoch"] == 2


def test_every_row_rebuilds_untrained_from_its_spec_and_arch(front):
    """A later session times a network again without its weights: front.csv's spec and arch columns rebuild it."""
    from hwnas.tables.cost import count_params
    from hwnas.nas.front import network_of

    table = rows(front)
    assert {json.loads(r["spec"])["preset"] for r in table} == {"tiny"}
    assert any(json.loads(r["spec"])["options"] for r in table if r["kind"] == "narrower")  # the variant's own options
    for r in table:
        space, net = network_of(r)
        assert count_params(net) == int(r["params"]) and space.name == json.loads(r["arch"])["space"]
        assert "\n" not in r["spec"] + r["arch"] and ", " not in r["arch"]  # compact JSON, one cell each


def test_no_uniform_networks_and_named_candidates_narrowed(lut, tmp_path, cli):
    """--uniform-candidates none trains no uniform network; --narrow cbr narrows all-cbr (not the base network) with
    nothing trained to choose it."""
    code, out, err = cli("sweep", "--lut", lut, *SEARCH, "--baselines", "--budget-steps", "4", "--uniform-candidates", "none",
                         "--narrow", "cbr", "--random-per-target", "0", "--measure-runs", "1", "--out", tmp_path / "sweep",
                         "--json")
    assert code == 0, err
    runs = json.loads(out)["front"]["runs"]
    assert sorted(r["name"] for r in runs) == ["mu-1-target0.9x", "narrower-cbr-0.9x", "shallower-cbr-0.9x"]
    assert all(json.loads(r["arch"])["choices"] and set(json.loads(r["arch"])["choices"].values()) == {"cbr"}
               for r in runs if r["kind"] != "searched")
    saved = __import__("yaml").safe_load((tmp_path / "sweep" / "sweep.yaml").read_text())
    assert saved["baselines"]["uniform_candidates"] == ["none"] and saved["baselines"]["narrow"] == ["cbr"]


def test_narrow_none_trains_the_searched_networks_alone(lut, tmp_path, cli):
    code, out, err = cli("sweep", "--lut", lut, *SEARCH, "--baselines", "--budget-steps", "4", "--uniform-candidates", "none",
                         "--narrow", "none", "--random-per-target", "0", "--measure-runs", "1", "--out", tmp_path / "sweep",
                         "--json")
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)["front"]["runs"]] == ["mu-1-target0.9x"]
    code, _, err = cli("sweep", "--lut", lut, *SEARCH, "--baselines", "--budget-steps", "4", "--narrow", "nnoe",
                       "--out", tmp_path / "typo")
    assert code != 0 and "--narrow names 'nnoe'" in err and "(or none alone: no narrowed network)" in err
    assert not (tmp_path / "typo").exists()


def test_resume_reuses_every_finished_run_and_finishes_an_interrupted_one(front, lut, cli):
    interrupted = front / "baselines" / "random-0.9x-1"
    (interrupted / "model.pt").unlink()  # stopped after its last checkpoint, before model.pt
    models = sorted(front.glob("**/model.pt"))
    before = {p: p.stat().st_mtime_ns for p in models}
    code, out, err = cli("sweep", "--out", front, "--resume", "--json")  # everything from sweep.yaml
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in models} == before  # nothing retrained
    assert (interrupted / "model.pt").is_file()
    assert [r["steps"] for r in json.loads(out)["front"]["runs"] if r["name"] == "random-0.9x-1"] == [4]
    report = json.loads(out)
    assert {r["name"] for r in report["front"]["runs"]} == {r["name"] for r in rows(front)}


def test_a_pretrained_uniform_run_is_reused(lut, tmp_path, cli):
    """A benchmark trains baselines/uniform-cbr-s0 with `hwnas train` first; the sweep takes it as it is."""
    run = tmp_path / "sweep" / "baselines" / "uniform-cbr-s0"
    code, _, err = cli("train", "--uniform", "cbr", "--preset", "tiny", "--crop", "16", "--batch-size", "2", "--epochs", "2",
                       "--steps-per-epoch", "2", "--lr", "0.002", "--threads", "1",
                       "--out", run)
    assert code == 0, err
    stamp = (run / "model.pt").stat().st_mtime_ns
    search = [f for f in SEARCH if f not in ("--target-ratio", "0.9")]  # no target: nothing narrowed, no random mixes
    code, out, err = cli("sweep", "--lut", lut, "--latency-weight", "0.1", *search, "--baselines", "--budget-steps", "4",
                         "--uniform-candidates", "cbr", "--measure-runs", "1", "--out", tmp_path / "sweep", "--resume", "--json")
    assert code == 0, err
    assert (run / "model.pt").stat().st_mtime_ns == stamp
    assert "uniform-cbr-s0" in {r["name"] for r in json.loads(out)["front"]["runs"]}


def test_random_mixes_match_the_target_within_3_percent(lut):
    from hwnas.contracts.latency import LatencyTable

    space = SpaceSpec(preset="tiny").create()
    costs = bl.Costs.of(space, 32, LatencyTable.load(lut))
    low, high = costs.extremes()
    target = low + 0.5 * (high - low)
    mixes = bl.random_mixes(space.name, costs, target, 3, tolerance=0.03, tries=5000, seed=1, label="mid")
    assert len(set(m.to_json() for m in mixes)) == 3
    assert all(abs(costs.ms(m) - target) <= 0.03 * target for m in mixes)
    assert mixes == bl.random_mixes(space.name, costs, target, 3, tolerance=0.03, tries=5000, seed=1, label="mid")
    with pytest.raises(Exception, match="choose a target between the cheapest"):
        bl.random_mixes(space.name, costs, 0.5 * low, 1, tolerance=0.03, tries=200, seed=1, label="0.4x")


def test_nafnet_unet_is_scalable_narrower_shallower_and_wider():
    from hwnas.contracts.space import Scalable

    spec = SpaceSpec(preset="small")
    space = spec.create()
    assert isinstance(space, Scalable)
    kinds = bl.variants(spec, space)
    assert set(kinds) == {"narrower", "shallower", "wider"}
    widths = [v.create().config.width for v in kinds["narrower"]]
    assert widths == sorted(widths, reverse=True) and widths[0] < 16 and min(widths) >= 2
    assert [v.create().config.width for v in kinds["wider"]] == [18, 20, 22, 24, 26, 28, 30, 32]
    depths = [len(v.create().positions(64)) for v in kinds["shallower"]]
    assert depths == sorted(depths, reverse=True) and depths[0] < len(space.positions(64)) and min(depths) >= 1


def test_a_space_without_the_capability_gets_no_narrowed_baselines():
    assert bl.variants(SpaceSpec(preset="tiny"), object()) is None


def test_scaled_sources_shrink_the_slower_networks_and_widen_the_best_faster_one():
    """naf 100 ms (the base), cbr_e4 50, cbr 35; at a 60 ms target: naf and the best slower (naf) shrink, the best
    faster (cbr_e4, though cbr is cheaper) is widened; at 30 ms nothing is faster, so nothing is widened."""
    ms = {"naf": 100.0, "cbr_e4": 50.0, "cbr": 35.0}
    score = {"naf": 30.8, "cbr_e4": 30.84, "cbr": 30.75}
    names = list(ms)
    kinds = ["narrower", "shallower", "wider"]
    at60 = bl.scaled_sources(kinds, "naf", names, lambda c: ms[c] > 60, score)
    assert at60 == [("narrower", "naf"), ("shallower", "naf"), ("wider", "cbr_e4")]
    at30 = bl.scaled_sources(kinds, "naf", names, lambda c: ms[c] > 30, score)
    assert at30 == [("narrower", "naf"), ("narrower", "cbr_e4"), ("shallower", "naf"), ("shallower", "cbr_e4")]
    assert bl.scaled_sources(kinds, "naf", names, lambda c: ms[c] > 60, {}) == [("narrower", "naf"), ("shallower", "naf")]


def test_pick_variant_takes_the_closest_at_or_below_the_target():
    assert bl.pick_variant([("a", 9.0), ("b", 7.0), ("c", 5.0)], 8.0) == ("b", True)
    assert bl.pick_variant([("a", 9.0), ("b", 8.5)], 8.0) == ("b", False)


def test_split_makes_exactly_the_steps():
    assert bl.split(5960) == (10, 596) and bl.split(7) == (7, 1) and bl.split(13) == (1, 13)


@pytest.mark.parametrize("flags, message", [
    (["--budget-steps", "10"], "error: --budget-steps applies to the baselines of a front; add --baselines (and --budget-steps)."),
    (["--baselines"], "error: --baselines needs a training budget: add --budget-steps B, the weight updates every network "
                      "gets (e.g. --budget-steps 6000)."),
    (["--baselines", "--budget-steps", "2"], "error: the training budget of 2 steps leaves nothing to fine-tune after the "
                                             "search's 2 steps (1 epochs x 2); raise the budget above 2 steps or search for fewer."),
    (["--baselines", "--budget-steps", "4", "--uniform-candidates", "naf,conv"], "error: --uniform-candidates names 'conv'"),
    (["--baselines", "--budget-steps", "4", "--narrow", "naf,conv"], "error: --narrow names 'conv', which is no candidate"),
    (["--baselines", "--budget-steps", "4", "--uniform-candidates", "none,naf"], "error: --uniform-candidates names 'none'"),
    (["--executor", "slurm"], "error: invalid --executor: unknown executor 'slurm'"),
])
def test_a_mistake_is_one_sentence_and_exit_2(flags, message, lut, tmp_path, cli):
    code, _, err = cli("sweep", "--lut", lut, *SEARCH, *flags, "--out", tmp_path / "sweep")
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith(message) and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()


class ShippingExecutor:
    """What Ray does to a run, in this process: the function and each job pickled there, the result pickled back."""

    def __init__(self):
        self.shipped = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def map(self, fn, items):
        import pickle

        out = []
        for item in items:
            job = pickle.loads(pickle.dumps(item))
            assert job.local.on_start is None and job.local.on_step is None and job.local.task is None
            self.shipped.append(job.name)
            out.append(pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(fn))(job))))
        return out


def test_every_run_is_a_picklable_job_for_a_cluster(lut, tmp_path, monkeypatch, cli):
    """--executor ray: each search and training travels as a pickled job, with no callbacks (the executor is faked)."""
    import hwnas.nas.sweep

    shipping = ShippingExecutor()
    asked = {}
    monkeypatch.setattr(hwnas.nas.sweep, "executor", lambda name, cpus, gpus: asked.update(name=name, cpus=cpus, gpus=gpus) or shipping)
    search = [f for f in SEARCH if f not in ("--target-ratio", "0.9")]
    code, out, err = cli("sweep", "--lut", lut, "--latency-weight", "0.1", *search, "--baselines", "--budget-steps", "4",
                         "--uniform-candidates", "cbr", "--measure-runs", "1", "--executor", "ray", "--cpus-per-run", "2",
                         "--out", tmp_path / "sweep", "--json")
    assert code == 0, err
    assert asked == {"name": "ray", "cpus": 2.0, "gpus": 0.0}
    assert shipping.shipped == ["mu-0.1", "uniform-cbr-s0", "mu-0.1"]  # search and baseline, then the fine-tuning
    front = json.loads(out)["front"]
    assert [(r["kind"], r["run"]) for r in front["runs"]] == [("uniform", "baselines/uniform-cbr-s0"),
                                                              ("searched", "mu-0.1/finetune")]
    assert any("no --target-ratio" in note for note in front["notes"])


def test_api_sweep_validates_the_front_once_and_names_the_fix(tmp_path):
    from hwnas import api
    from hwnas.contracts.errors import HwnasError

    with pytest.raises(HwnasError, match=r"^the training budget of 3 steps leaves nothing to fine-tune after the search's "
                                         r"4 steps \(2 epochs x 2\); raise the budget above 4 steps"):
        api.sweep(search={"spec": {"preset": "tiny"}, "epochs": 2, "steps_per_epoch": 2}, target_ratios=[0.9],
                  baselines={"budget_steps": 3}, out=tmp_path / "sweep")
    with pytest.raises(HwnasError, match=r"^invalid uniform_candidates"):
        api.sweep(search={"spec": {"preset": "tiny"}}, latency_weights=[0.1], baselines={"budget_steps": 900,
                  "uniform_candidates": "naf"}, out=tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_a_searched_network_no_better_than_a_baseline_as_fast_is_named_matched():
    from hwnas.nas.front import matched_by

    rows = [{"kind": "searched", "name": "s-beaten", "measured_ms": 26.0, "val_psnr": 30.5},
            {"kind": "searched", "name": "s-best", "measured_ms": 40.0, "val_psnr": 31.0},
            {"kind": "searched", "name": "s-unscored", "measured_ms": 50.0, "val_psnr": None},
            {"kind": "uniform", "name": "uniform-cbr-s0", "measured_ms": 22.0, "val_psnr": 30.6},
            {"kind": "random", "name": "random-0.45x-1", "measured_ms": 25.0, "val_psnr": 30.7},
            {"kind": "uniform", "name": "uniform-naf-s0", "measured_ms": 60.0, "val_psnr": 31.2}]
    notes = matched_by(rows, "val_psnr")
    assert [r["matched_by"] for r in rows] == ["random-0.45x-1", "", "", "", "", ""]  # the better of the two as fast
    assert notes == ["s-beaten (26.00 ms, val_psnr 30.50) is matched by the random baseline random-0.45x-1 "
                     "(25.00 ms, 30.70): a user gets that without a search"]
