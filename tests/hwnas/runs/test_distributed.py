"""Data-parallel runs under torchrun on the CPU (gloo, 2 processes): helpers, `hwnas search`, `hwnas train`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.runs import distributed
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable
from hwnas.contracts.space import Architecture

PROBE = Path(__file__).with_name("distributed_probe.py")
TINY = ["--preset", "tiny", "--crop", "16", "--batch-size", "4", "--steps-per-epoch", "2", "--epochs", "2"]


def torchrun(*args, cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )


@pytest.fixture(scope="module")
def lut(tmp_path_factory):
    """`hwnas build-lut --backend macs` in this process (a subprocess costs seconds of imports)."""
    from unittest import mock

    from hwnas.cli import main

    path = tmp_path_factory.mktemp("lut") / "macs.csv"
    argv = ["hwnas", "build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "32", "--out", str(path), "--json"]
    with mock.patch.object(sys, "argv", argv), pytest.raises(SystemExit) as done:
        main()
        raise SystemExit(0)
    assert done.value.code == 0
    return path


def test_in_one_process_every_helper_is_the_identity(monkeypatch):
    import torch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.session():
        assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
        x = torch.arange(3.0)
        assert distributed.shard(x) is x and distributed.local_batch_size(3) == 3
        assert distributed.mean([1.5]) == [1.5] and distributed.maximum(2.0) == 2.0 and distributed.any_rank(True)
        distributed.all_gather_check(x, "anything")
        assert distributed.from_main(lambda: 7) == 7


def test_helpers_on_two_ranks(tmp_path):
    done = torchrun(PROBE, tmp_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["main"] for r in ranks] == [True, False] and {r["world"] for r in ranks} == {2}
    assert ranks[0]["shard"] == [0, 1, 2] and ranks[1]["shard"] == [3, 4, 5]  # each rank its slice of the global batch
    for seen in ranks:
        # grads 1 and 2 average to 1.5; a grad on rank 1 only counts as zeros elsewhere; none anywhere stays None
        assert seen["grads"] == [[1.5] * 3, [1.0] * 3, None]
        assert seen["running_mean"] == [0.5, 0.5]
        assert seen["mean"] == [0.5, 10.0] and seen["maximum"] == 1.0 and seen["any"] == [True, False]
        assert "does not split over 2 ranks" in seen["odd_batch"]
        assert seen["same"] is None  # identical tensors pass
        assert seen["differ"].startswith("RanksDisagree: ranks [1] hold other logits than rank 0")  # raised on both ranks
        assert seen["digest_differ"].startswith("RanksDisagree: ranks [1] hold other weights")
        assert seen["from_main"] == "made by rank 0"
        assert seen["from_main_error"] == "HwnasError: the table is for another device; pass --force."


def one_json_document(stdout: str) -> dict:
    """Only rank 0 prints: a second rank's report would make this fail to parse."""
    return json.loads(stdout)


def test_search_on_two_ranks_agrees_and_only_rank_0_writes(tmp_path, lut):
    run = tmp_path / "run"
    done = torchrun("-m", "hwnas", "search", "--lut", lut, *TINY, "--warmup-epochs", "1", "--mode", "sampled",
                    "--checkpoint-every", "1", "--out", run, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = one_json_document(done.stdout)
    assert report["epochs_done"] == 2
    # every checkpoint compared the logits of both ranks; the start and the end compared whole states
    assert done.stderr.count("starting state identical on all 2 ranks") == 1  # logged by rank 0 only
    assert done.stderr.count("final state identical on all 2 ranks") == 1
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [".hwnas-lock", ".hwnas-run", "alpha.png", "alpha_history.csv", "arch.json", "checkpoints", "config.yaml",
         "entropy.png", "lut.csv", "lut.meta.json", "metrics.csv", "steps.csv", "summary.json"])
    assert (run / ".hwnas-run").read_text() == "search\n"  # rank 0 claimed the folder (hwnas.runs.outdir)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt", "prev.pt"]  # no stray temporaries
    assert len((run / "steps.csv").read_text().splitlines()) == 1 + 4  # one writer: no rows appended twice
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 2
    arch = Architecture.load(run / "arch.json")
    assert {label: c["candidate"] for label, c in report["choices"].items()} == arch.choices
    assert LatencyTable.load(run / "lut.csv").frame.equals(LatencyTable.load(lut).frame)


def test_train_on_two_ranks_agrees_and_only_rank_0_writes(tmp_path):
    out = tmp_path / "ft"
    done = torchrun("-m", "hwnas", "train", "--preset", "tiny", "--uniform", "cbr", "--crop", "16", "--batch-size", "4",
                    "--steps-per-epoch", "2", "--epochs", "1", "--checkpoint-every", "1", "--out", out, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = one_json_document(done.stdout)
    assert report["steps"] == 2
    assert done.stderr.count("final state identical on all 2 ranks") == 1
    assert sorted(p.name for p in out.iterdir()) == [".hwnas-lock", ".hwnas-run", "arch.json", "checkpoints", "config.yaml",
                                                     "metrics.csv", "model.pt"]
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 1


def test_other_commands_refuse_to_run_under_torchrun(monkeypatch, capsys):
    from hwnas.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(sys, "argv", ["hwnas", "build-lut", "--backend", "macs", "--preset", "tiny", "--dry-run"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: hwnas build-lut does not run data-parallel; run it without torchrun (only search and train do)."


def test_a_launch_without_torchrun_variables_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(HwnasError, match="start data-parallel runs with torchrun"):
        with distributed.session():
            pass
