"""`hwnas.runs.training`: run directory, exact resume, uniform baselines, inheriting super-net weights, budgets."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import skimage.io
import torch
from torch import nn

from hwnas.runs.checkpoint import save_checkpoint
from hwnas.contracts.config import SearchConfig, SpaceSpec, write_config
from hwnas.contracts.errors import HwnasError
from hwnas.deploy.modelfile import load_model
from hwnas.contracts.space import Architecture
from hwnas.nas.supernet import to_supernet
from hwnas.nas.schedule import cosine_lr
from hwnas.runs.training import inherit, plan, run_training as train

SPEC = SpaceSpec(preset="tiny")
FAST = dict(steps_per_epoch=3, batch_size=2, crop=32)
MIXED = {"enc0.0": "naf_bn_lite", "enc1.0": "cbr", "enc2.0": "naf", "mid.0": "naf_bn",
         "dec2.0": "cbr", "dec1.0": "naf_bn_lite", "dec0.0": "naf"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Six small random photos (split by image: one held out)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        skimage.io.imsave(folder / f"p{i}.png", rng.integers(0, 256, (40, 44, 3), dtype=np.uint8), check_contrast=False)
    return str(folder)


def arch(choices=MIXED):
    return Architecture(space="nafnet-unet", choices=choices)


def weights(out):
    return load_model(out / "model.pt").state_dict


def rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


class Stop(Exception):
    pass


def test_run_directory_layout(tmp_path, data):
    out = tmp_path / "run"
    cfg = plan(out, spec=SPEC, arch=arch(), data=data, epochs=2, **FAST)
    result = train(cfg, out)
    for name in ("config.yaml", "arch.json", "metrics.csv", "model.pt", "checkpoints/last.pt", "checkpoints/prev.pt"):
        assert (out / name).is_file(), name
    metrics = rows(out / "metrics.csv")
    assert [r["epoch"] for r in metrics] == ["1", "2"] and all(float(r["val_psnr"]) > 0 for r in metrics)
    assert result.steps == 6 and Architecture.load(out / "arch.json") == arch()
    model = load_model(out / "model.pt")
    assert model.arch == arch() and model.spec == SPEC and model.info["val_psnr"] == pytest.approx(float(metrics[-1]["val_psnr"]))
    # the checkpoint is a model file too
    assert load_model(out / "checkpoints" / "last.pt").arch == arch()


@pytest.mark.parametrize("stop_at", ["epoch", "step"])
def test_resume_is_exact(tmp_path, data, stop_at):
    settings = dict(spec=SPEC, arch=arch(), data=data, epochs=2, checkpoint_every=2, **FAST)
    whole = tmp_path / "whole"
    train(plan(whole, **settings), whole)

    part = tmp_path / "part"
    cfg = plan(part, **settings)

    def on_epoch(row):  # interrupted after epoch 1 (its checkpoint written)
        raise Stop

    def on_step(info):  # interrupted at global step 5, after the checkpoint at step 4
        if info.global_step == 5:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, part, on_epoch=on_epoch if stop_at == "epoch" else None, on_step=on_step if stop_at == "step" else None)
    assert not (part / "model.pt").exists()
    with pytest.raises(HwnasError, match="resume=True"):  # from Python, the parameter (the command line says --resume)
        plan(part, **settings)
    train(plan(part, resume=True), part, resume=True)
    a, b = weights(whole), weights(part)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert [r["epoch"] for r in rows(part / "metrics.csv")] == ["1", "2"]  # no duplicated rows
    assert rows(part / "metrics.csv")[-1]["val_psnr"] == pytest.approx(rows(whole / "metrics.csv")[-1]["val_psnr"])


def test_sigterm_checkpoints_after_the_step_and_resumes_exactly(tmp_path, data):
    """Like `hwnas search`, training stops cleanly on SIGTERM (a scheduler's kill): checkpoint, then KeyboardInterrupt."""
    import os
    import signal

    settings = dict(spec=SPEC, arch=arch(), data=data, epochs=2, checkpoint_every=50, **FAST)
    whole, part = tmp_path / "whole", tmp_path / "part"
    train(plan(whole, **settings), whole)

    def terminate(info):
        if info.global_step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        train(plan(part, **settings), part, on_step=terminate)
    progress = torch.load(part / "checkpoints" / "last.pt", weights_only=True)["progress"]
    assert (progress["epoch"], progress["step"], progress["global_step"]) == (0, 2, 2)
    train(plan(part, resume=True), part, resume=True)
    a, b = weights(whole), weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_written_before_the_shared_run_skeleton_still_resumes(tmp_path, data):
    """Version 1 kept the loss sum and the metrics beside the progress record (`hwnas.runs.training._progress_state`)."""
    settings = dict(spec=SPEC, arch=arch(), data=data, epochs=2, **FAST)
    whole, part = tmp_path / "whole", tmp_path / "part"
    train(plan(whole, **settings), whole)

    def stop(info):
        if info.global_step == 5:
            raise Stop

    with pytest.raises(Stop):
        train(plan(part, checkpoint_every=1, **settings), part, on_step=stop)
    last = part / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    p = state["progress"]
    state.update(version=1, metrics=p["metrics"], progress={
        "epoch": p["epoch"], "step": p["step"], "global_step": p["global_step"], "elapsed_s": p["elapsed_s"],
        "loss_sum": p["sums"]["train_loss"], "loss_count": p["counts"]["train_loss"]})
    torch.save(state, last)
    train(plan(part, resume=True), part, resume=True)
    a, b = weights(whole), weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert rows(part / "metrics.csv")[-1]["train_loss"] == rows(whole / "metrics.csv")[-1]["train_loss"]


def test_resume_refuses_other_settings(tmp_path, data):
    out = tmp_path / "run"
    train(plan(out, spec=SPEC, arch=arch(), data=data, epochs=1, **FAST), out)
    with pytest.raises(HwnasError) as err:
        plan(out, resume=True, epochs=3)
    assert "epochs" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(HwnasError, match="another architecture"):
        plan(out, resume=True, uniform="naf")


def test_resume_without_checkpoint_starts_fresh(tmp_path, data, caplog):
    out = tmp_path / "run"
    cfg = plan(out, resume=True, spec=SPEC, arch=arch(), data=data, epochs=1, **FAST)
    train(cfg, out, resume=True)
    assert (out / "model.pt").is_file() and "starting a fresh training run" in caplog.text


def test_uniform_naf_baseline(tmp_path, data):
    out = tmp_path / "naf"
    cfg = plan(out, spec=SPEC, uniform="naf", data=data, epochs=1, **FAST)
    assert set(cfg.architecture().choices.values()) == {"naf"} and len(cfg.architecture().choices) == 7
    train(cfg, out)
    assert set(load_model(out / "model.pt").arch.choices.values()) == {"naf"}


def test_unknown_uniform_candidate_and_missing_arch(tmp_path):
    with pytest.raises(HwnasError, match="choose one of"):
        plan(tmp_path / "a", spec=SPEC, uniform="resnet")
    with pytest.raises(HwnasError, match="nothing to train"):
        plan(tmp_path / "b", spec=SPEC)
    with pytest.raises(HwnasError, match="check the space's preset"):  # a tiny architecture in the paper preset
        plan(tmp_path / "c", arch=arch())


def test_time_budget_stops_and_anneals(tmp_path, data):
    out = tmp_path / "run"
    cfg = plan(out, spec=SPEC, arch=arch(), data=data, time_budget=0.01, **FAST)  # 0.6 s of training steps
    assert cfg.epochs is None
    result = train(cfg, out)
    assert result.train_seconds >= 0.6 and (out / "model.pt").is_file()  # stops at the first step past the budget
    assert float(rows(out / "metrics.csv")[-1]["lr"]) == pytest.approx(cfg.min_lr)
    with pytest.raises(HwnasError, match="not both"):
        plan(tmp_path / "x", spec=SPEC, arch=arch(), epochs=2, time_budget=1.0)


def test_cosine_lr():
    assert cosine_lr(0, 1e-3, 0) == pytest.approx(1e-3)
    assert cosine_lr(0.5, 1e-3, 0) == pytest.approx(5e-4)
    assert cosine_lr(1.0, 1e-3, 1e-6) == pytest.approx(1e-6) == cosine_lr(3.0, 1e-3, 1e-6)


# -- inheriting from a search run ----------------------------------------------------------

def fake_search_run(root, choices=MIXED):
    """A search run directory as `hwnas search` leaves it: config.yaml, arch.json, checkpoints/last.pt."""
    space = SPEC.create()
    torch.manual_seed(1)
    supernet = to_supernet(space.build())
    with torch.no_grad():
        for p in supernet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in supernet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(7.0)  # stale statistics, to be recalibrated
    write_config(SearchConfig(spec=SPEC, epochs=1), root / "config.yaml")
    Architecture(space=space.name, choices=choices).save(root / "arch.json")
    save_checkpoint(root / "checkpoints", {"supernet": supernet.state_dict()})
    return supernet.state_dict()


def test_inherit_takes_the_chosen_candidates(tmp_path):
    supernet = fake_search_run(tmp_path)
    net = inherit(tmp_path, arch())
    state = net.state_dict()
    for label, name in MIXED.items():
        key = f"{label}.conv1.weight" if name != "cbr" else f"{label}.expand.0.weight"
        source = key.replace(f"{label}.", f"{label}.candidates.{name}.", 1)
        assert torch.equal(state[key], supernet[source]), key
    assert not any(k.endswith("logits") for k in state)


def test_init_from_run_trains_inherited_weights(tmp_path, data):
    run = tmp_path / "search"
    supernet = fake_search_run(run)
    out = tmp_path / "ft"
    cfg = plan(out, init_from=run, data=data, epochs=1, steps_per_epoch=1, batch_size=2, crop=32, lr=1e-9, recalibration_batches=2)
    assert cfg.spec == SPEC and cfg.architecture() == arch()  # both from the run
    train(cfg, out)
    state = weights(out)
    key = "enc1.0.expand.0.weight"  # enc1.0 chose cbr
    torch.testing.assert_close(state[key], supernet["enc1.0.candidates.cbr.expand.0.weight"], atol=1e-6, rtol=0)
    mean = state["enc0.0.norm1.running_mean"]  # naf_bn_lite's BN: recalibrated, not the stale 7.0
    assert not torch.allclose(mean, torch.full_like(mean, 7.0))
    assert load_model(out / "model.pt").info["init_from"] == str(run)


def test_init_from_other_preset_is_refused(tmp_path):
    run = tmp_path / "search"
    fake_search_run(run)
    with pytest.raises(HwnasError) as err:
        plan(tmp_path / "ft", init_from=run, spec=SpaceSpec(preset="paper"))
    assert "preset" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(HwnasError, match="not a search run"):
        plan(tmp_path / "ft", init_from=tmp_path / "nowhere")


def test_out_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(HwnasError, match="file"):
        plan(tmp_path / "file" / "run", spec=SPEC, arch=arch())


def test_trains_on_paired_noisy_clean_folder(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(6):
        clean = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        for sub, img in (("clean", clean), ("noisy", np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8))):
            (tmp_path / "pairs" / sub).mkdir(parents=True, exist_ok=True)
            skimage.io.imsave(tmp_path / "pairs" / sub / f"p{i}.png", img, check_contrast=False)
    out = tmp_path / "run"
    train(plan(out, spec=SPEC, uniform="cbr", data=str(tmp_path / "pairs"), epochs=1, **FAST), out)
    assert (out / "model.pt").is_file()
