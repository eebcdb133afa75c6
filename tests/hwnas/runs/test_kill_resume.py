"""Exact resume after SIGKILL: `hwnas search` and `hwnas train` killed mid-epoch, resumed, and compared
with an uninterrupted run of the same seed (started beside it, so the two share the wall time)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hwnas.deploy.modelfile import load_model

# Long epochs, frequent checkpoints: the kill lands mid-epoch, whatever the machine's speed (steps take ~50 ms).
SEARCH = ["search", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "20", "--epochs", "2", "--warmup-epochs", "1",
          "--mode", "sampled", "--checkpoint-every", "4", "--seed", "5"]
TRAIN = ["train", "--preset", "tiny", "--uniform", "naf_bn", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "30",
         "--epochs", "2", "--checkpoint-every", "5", "--seed", "5"]


def start(*args, cwd: Path) -> subprocess.Popen:
    """`python -m hwnas ARGS` in the background, its output in files (a full pipe would stall it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count in every run: the same float sums
    env.pop("WORLD_SIZE", None)
    log = cwd / f"stderr-{len(list(cwd.glob('stderr-*')))}.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "hwnas", *map(str, args)], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    proc.log = log
    return proc


def finish(proc: subprocess.Popen) -> str:
    proc.wait(timeout=300)
    err = proc.log.read_text()
    assert proc.returncode == 0, err[-3000:]
    return err


def progress(folder: Path) -> dict | None:
    try:
        return torch.load(folder / "last.pt", weights_only=True)["progress"]
    except Exception:  # not written yet, or replaced while we read: ask again
        return None


def kill_mid_epoch(proc: subprocess.Popen, checkpoints: Path, after_step: int) -> dict:
    """SIGKILL `proc` as soon as its checkpoint has passed global step `after_step`; the checkpoint's progress."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        p = progress(checkpoints)
        if p is not None and p["global_step"] >= after_step:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return progress(checkpoints)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def lut(tmp_path_factory):
    from hwnas.backends.macs import MacsBackend
    from hwnas.tables.building import build_table
    from hwnas.contracts.config import SpaceSpec

    path = tmp_path_factory.mktemp("lut") / "macs.csv"
    build_table(SpaceSpec(preset="tiny").create(), 32, MacsBackend(), path)
    return path


def test_search_killed_mid_epoch_resumes_to_the_same_bytes(tmp_path, lut):
    whole = start(*SEARCH, "--lut", lut, "--out", "whole", "--json", cwd=tmp_path)
    killed = start(*SEARCH, "--lut", lut, "--out", "killed", "--json", cwd=tmp_path)
    at = kill_mid_epoch(killed, tmp_path / "killed" / "checkpoints", after_step=24)  # epoch 1, searching
    assert at["step"] != 0 and at["epoch"] == 1, f"want a mid-epoch checkpoint of a searching epoch, got {at}"
    err = finish(start("search", "--out", "killed", "--resume", "--json", cwd=tmp_path))
    assert f"resuming killed at epoch {at['epoch']}, step {at['step']}" in err
    finish(whole)
    for name in ("alpha_history.csv", "arch.json", "metrics.csv", "steps.csv"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in ("killed", "whole")]
    for s in summaries:
        s.pop("seconds")
    assert summaries[0] == summaries[1]


def test_train_killed_with_a_truncated_checkpoint_falls_back_and_resumes_to_the_same_weights(tmp_path):
    whole = start(*TRAIN, "--out", "whole", "--json", cwd=tmp_path)
    killed = start(*TRAIN, "--out", "killed", "--json", cwd=tmp_path)
    checkpoints = tmp_path / "killed" / "checkpoints"
    at = kill_mid_epoch(killed, checkpoints, after_step=10)
    assert at["step"] != 0, f"want a mid-epoch checkpoint, got {at}"
    previous = torch.load(checkpoints / "prev.pt", weights_only=True)["progress"]
    last = checkpoints / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # as if the disk filled up mid-write
    err = finish(start("train", "--out", "killed", "--resume", "--json", cwd=tmp_path))
    assert "unreadable" in err and "using the previous checkpoint" in err and "prev.pt" in err
    assert f"resuming killed at epoch {previous['epoch'] + 1}, step {previous['step']}" in err
    finish(whole)
    a, b = load_model(tmp_path / "whole" / "model.pt").state_dict, load_model(tmp_path / "killed" / "model.pt").state_dict
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst <= 1e-6, f"max abs weight difference {worst}"
    rows = [r.split(",")[0] for r in (tmp_path / "killed" / "metrics.csv").read_text().splitlines()[1:]]
    assert rows == ["1", "2"]  # no epoch written twice


def test_steps_csv_on_disk_covers_every_checkpoint_the_moment_it_lands(tmp_path, lut, monkeypatch):
    """A kill just after a checkpoint is written must not lose steps.csv rows that the checkpoint covers
    (the resumed run keeps the rows before its checkpoint and never writes them again)."""
    import hwnas.runs.run
    from hwnas.contracts.config import SearchConfig, SpaceSpec
    from hwnas.contracts.latency import LatencyTable

    real, seen = hwnas.runs.run.save_checkpoint, []

    def save_and_look(folder, state):
        path = real(folder, state)
        rows = (tmp_path / "run" / "steps.csv").read_text().splitlines()[1:]  # what a SIGKILL now would leave
        seen.append((state["progress"]["global_step"], len(rows)))
        return path

    monkeypatch.setattr(hwnas.runs.run, "save_checkpoint", save_and_look)
    config = SearchConfig(spec=SpaceSpec(preset="tiny"), image_size=32, backend="macs", crop=16, batch_size=2,
                          steps_per_epoch=3, epochs=1, warmup_epochs=0, checkpoint_every=2, recalibration_batches=1)
    from hwnas.nas.searching import run_search

    run_search(config, tmp_path / "run", LatencyTable.load(lut))
    assert [gs for gs, _ in seen] == [2, 3]
    assert all(rows >= gs for gs, rows in seen), seen
