"""`hwnas.nas.searching`, the search loop on the tiny preset: exact resume, NaN guard, entropy ablation, refusals."""

import csv
import logging
import os
import signal

import pytest
import torch

from hwnas.backends.macs import MacsBackend
from hwnas.tables.building import build_table
from hwnas.runs.checkpoint import load_checkpoint
from hwnas.contracts.config import MIN_LR, SearchConfig, SpaceSpec
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, TableMeta
from hwnas.nas.objective import Objective
from hwnas.runs.rundir import RunDir
from hwnas.runs import run as run_module
from hwnas.runs.run import Diverged
from hwnas.nas.searching import Search, load_supernet, run_search
from hwnas.contracts.space import Architecture, freeze
from hwnas.nas.supernet import arch_parameters, mixed_choices, weight_parameters
from hwnas.contracts.task import make_task

SIZE = 32
BASE = dict(
    spec=SpaceSpec(preset="tiny"), image_size=SIZE, backend="macs", task={"options": {"crop": 16}}, batch_size=2, steps_per_epoch=3,
    epochs=2, warmup_epochs=1, arch_lr=0.1, checkpoint_every=2, recalibration_batches=1,
)


BASE_LR = SearchConfig.model_fields["lr"].default

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def config(**changes) -> SearchConfig:
    return SearchConfig(**{**BASE, **changes})


@pytest.fixture(scope="module")
def space():
    return config().spec.create()


@pytest.fixture(scope="module")
def table(space, tmp_path_factory):
    return build_table(space, SIZE, MacsBackend(), tmp_path_factory.mktemp("lut") / "macs.csv")


@pytest.fixture(scope="module")
def task(space):
    return make_task(config().task, space)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, table, task):
    """Uninterrupted 2-epoch runs, one per mode."""
    root = tmp_path_factory.mktemp("reference")
    return {mode: run_search(config(mode=mode), root / mode, table, task=task).run_dir for mode in ("soft", "sampled")}


def same_outputs(a, b):
    for name in ("alpha_history.csv", "arch.json", "metrics.csv", "steps.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_run_writes_its_whole_directory(reference):
    run = RunDir(reference["soft"])
    for path in (run.config, run.lut, run.lut.with_suffix(".meta.json"), run.checkpoints / "last.pt", run.metrics,
                 run.steps, run.alpha_history, run.alpha_png, run.entropy_png, run.arch, run.summary):
        assert path.is_file(), path
    state = load_checkpoint(run.checkpoints)
    assert state["progress"]["epoch"] == 2 and len(state["progress"]["history"]) == 2
    assert any(k.endswith(".logits") for k in state["supernet"])
    assert len(run.metrics.read_text().splitlines()) == 1 + 2
    assert len(run.steps.read_text().splitlines()) == 1 + 6


def test_one_epoch_plus_a_resumed_epoch_equals_two_epochs_at_a_constant_rate(tmp_path, table, task, caplog):
    constant = dict(min_lr=BASE_LR)  # a cosine re-plans when a run is extended (next test); the rest must not differ
    reference = run_search(config(**constant), tmp_path / "reference", table, task=task).run_dir
    with caplog.at_level(logging.WARNING):  # --resume with nothing to resume: a fresh start, and a warning
        run_search(config(epochs=1, **constant), tmp_path / "run", table, resume=True, task=task)
    assert "no checkpoint" in caplog.text and "starting a fresh search" in caplog.text
    run_search(config(epochs=2, **constant), tmp_path / "run", None, resume=True, task=task)
    same_outputs(reference, tmp_path / "run")


def test_an_extended_run_anneals_the_weights_rate_on_from_where_it_stopped(tmp_path, table, task):
    run_search(config(epochs=1), tmp_path, table, task=task)
    (last_step_lr,) = [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "metrics.csv"))]
    assert last_step_lr < BASE_LR / 2  # annealing
    run_search(config(epochs=2), tmp_path, None, resume=True, task=task)
    plan = load_checkpoint(tmp_path / "checkpoints")["progress"]["lr_plan"]
    steps = BASE["steps_per_epoch"]
    assert (plan["start_step"], plan["end_step"]) == (steps, 2 * steps)  # re-planned at the old end ...
    assert plan["start"] == pytest.approx(MIN_LR) and plan["end"] == pytest.approx(MIN_LR)  # ... from its rate: no jump


@pytest.mark.parametrize("mode", ["soft", "sampled"])
def test_an_interrupt_mid_epoch_checkpoints_and_resumes_exactly(tmp_path, reference, table, task, mode):
    def interrupt(log):
        if log.global_step == 4:  # epoch 1, step 1: mid-epoch, between checkpoints
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_search(config(mode=mode), tmp_path, table, task=task, on_step=interrupt)
    progress = load_checkpoint(tmp_path / "checkpoints")["progress"]
    assert (progress["epoch"], progress["step"]) == (1, 2)
    run_search(config(mode=mode), tmp_path, None, resume=True, task=task)
    same_outputs(reference[mode], tmp_path)


class NaNAfter:
    """The task, with a loss that turns NaN on its n-th call."""

    def __init__(self, task, n):
        self.task, self.n, self.calls = task, n, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def tick(self) -> int:
        self.calls += 1
        return self.calls

    def loss(self, output, target):
        self.tick()
        loss = self.task.loss(output, target)
        return loss * float("nan") if self.calls >= self.n else loss


def test_a_nan_task_loss_stops_names_it_and_keeps_the_last_good_checkpoint(tmp_path, table, task):
    with pytest.raises(Diverged, match=r"task (loss|term) became nan at epoch 1.*last good checkpoint .*last\.pt is kept"):
        run_search(config(), tmp_path, table, task=NaNAfter(task, n=7))  # warm-up: 3 losses; then 2 per step
    state = load_checkpoint(tmp_path / "checkpoints")
    assert state["progress"]["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())


def test_a_finite_blow_up_of_the_training_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
        tmp_path, table, task, monkeypatch):
    monkeypatch.setattr(run_module, "SPIKE_WINDOW", 2)
    blown = NaNAfter(task, n=6)  # the 6th loss: the weight step of global step 4
    blown.loss = lambda output, target: task.loss(output, target) * (1e6 if blown.tick() >= 6 else 1.0)
    with pytest.raises(Diverged, match=r"the training loss jumped to .* times its median over the last 2 steps at "
                                       r"epoch 1.*last\.pt is kept"):
        run_search(config(), tmp_path, table, task=blown)
    assert load_checkpoint(tmp_path / "checkpoints")["progress"]["global_step"] == 4


def test_a_nan_latency_term_is_named(tmp_path, table, task, monkeypatch):
    monkeypatch.setattr(Objective, "latency_term", lambda self, alpha: alpha.sum() * float("nan"))
    with pytest.raises(Diverged, match="the latency term became nan"):
        run_search(config(), tmp_path, table, task=task)


def test_the_entropy_term_makes_the_search_more_decisive(tmp_path, table, task):
    """Ablation: same seed, same data, lambda0 > 0 vs 0 -> lower final mean normalised entropy."""
    common = dict(epochs=4, arch_lr=0.1, entropy_growth=2.0)
    with_term = run_search(config(entropy_weight=1.0, **common), tmp_path / "with", table, task=task).summary
    without = run_search(config(entropy_weight=0.0, **common), tmp_path / "without", table, task=task).summary
    assert with_term["alpha_entropy"] < without["alpha_entropy"] - 0.02, (with_term["alpha_entropy"], without["alpha_entropy"])


def test_a_heavy_latency_weight_picks_the_cheapest_candidates(tmp_path, table, task, space):
    summary = run_search(config(latency_weight=50.0, epochs=3, arch_lr=0.2), tmp_path, table, task=task).summary
    cheapest = sum(min(table.ms(n, p.input_shape) for n in p.candidates) for p in space.positions(SIZE))
    fixed = summary["base_ms"] - sum(table.ms(p.candidates[0], p.input_shape) for p in space.positions(SIZE))
    assert summary["predicted_ms"] == pytest.approx(fixed + cheapest)
    assert summary["predicted_ms"] < summary["base_ms"]


def test_single_level_search_runs_and_moves_alpha(tmp_path, table, task):
    summary = run_search(config(bilevel=False), tmp_path, table, task=task).summary
    assert summary["alpha_entropy"] < 1.0


def test_logits_train_in_their_own_optimiser(tmp_path, table, task, space):
    search = Search(config(lr=1e-3, arch_lr=0.05), RunDir(tmp_path), space, task, table)
    opts = search.bilevel
    arch_ids = {id(p) for p in arch_parameters(search.net)}
    assert {id(p) for g in opts.arch_opt.param_groups for p in g["params"]} == arch_ids
    assert {id(p) for g in opts.weight_opt.param_groups for p in g["params"]} == {id(p) for p in weight_parameters(search.net)}
    assert isinstance(opts.weight_opt, torch.optim.AdamW) and opts.arch_opt.param_groups[0]["lr"] == 0.05


def test_a_table_for_another_space_is_refused_before_anything_is_written(tmp_path, table, task):
    other = LatencyTable(TableMeta(**{**table.meta.model_dump(), "space": "other-space"}), table.frame)
    with pytest.raises(HwnasError, match="built for space 'other-space'"):
        run_search(config(), tmp_path / "run", other, task=task)
    assert not (tmp_path / "run").exists()


def test_a_data_folder_without_images_is_refused_before_anything_is_written(tmp_path, table):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("no images here")
    with pytest.raises(HwnasError, match="holds no image files"):
        run_search(config(data=str(tmp_path / "data")), tmp_path / "run", table)
    assert not (tmp_path / "run").exists()


def test_a_fresh_run_over_an_existing_one_is_refused(reference, table, task):
    before = (reference["soft"] / "arch.json").read_bytes()
    with pytest.raises(HwnasError, match="already holds a search run; pass resume=True"):
        run_search(config(), reference["soft"], table, task=task)
    assert (reference["soft"] / "arch.json").read_bytes() == before


def test_resuming_with_other_settings_is_refused(reference, task):
    with pytest.raises(HwnasError, match="was started with --mode soft, not sampled"):
        run_search(config(mode="sampled"), reference["soft"], None, resume=True, task=task)


def test_warmup_not_shorter_than_the_run_warns(tmp_path, table, task, caplog):
    with caplog.at_level(logging.WARNING):
        summary = run_search(config(epochs=1, warmup_epochs=1), tmp_path, table, task=task).summary
    assert "never train" in caplog.text
    assert summary["alpha_entropy"] == pytest.approx(1.0)


def test_load_supernet_gives_the_searched_weights_and_logits(reference):
    space, net = load_supernet(reference["soft"])
    state = load_checkpoint(reference["soft"] / "checkpoints")["supernet"]
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    arch = Architecture.load(reference["soft"] / "arch.json")
    derived = freeze(net, arch)
    assert derived(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    assert set(mixed_choices(net)) == set(arch.choices)


def lambdas(run) -> list[float]:
    import csv

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [float(r["lambda"]) for r in rows if r["searching"] == "1"]


def test_an_extended_run_replans_lambda_from_where_it_is_without_a_jump(tmp_path, table, task):
    run = tmp_path / "run"
    run_search(config(epochs=3, entropy_weight=0.1, entropy_growth=100.0), run, table, task=task)
    short = lambdas(run)
    assert short[-1] == pytest.approx(10.0)  # a fresh plan ends at lambda0 x growth
    summary = run_search(config(epochs=5, entropy_weight=0.1, entropy_growth=100.0), run, None, resume=True, task=task).summary
    extended = lambdas(run)
    assert extended[: len(short)] == pytest.approx(short)
    assert extended[-1] == pytest.approx(10.0)  # the extension ends where a run planned that long ends
    assert all(b >= a * (1 - 1e-9) for a, b in zip(extended, extended[1:])), extended  # no jump back
    assert summary["epochs_done"] == 5


def test_a_run_too_short_to_commit_says_so(tmp_path, table, task):
    summary = run_search(config(epochs=2, arch_lr=1e-4, entropy_weight=0.0), tmp_path, table, task=task).summary
    report = summary["commitment"]
    assert not report["committed"] and report["verdict"].startswith("NOT committed")
    assert report["min_largest_alpha"] < 0.8


def test_the_default_schedule_commits_a_short_run(tmp_path, table, task):
    summary = run_search(SearchConfig(**{**BASE, "arch_lr": None, "warmup_epochs": None, "epochs": 4}), tmp_path, table,
                         task=task).summary
    assert summary["commitment"]["committed"], summary["commitment"]["verdict"]
