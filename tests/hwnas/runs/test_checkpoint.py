"""Checkpoints: atomic rotation, weights_only loading, fallback from a corrupt latest file."""

import logging

import pytest
import torch

from hwnas.runs.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from hwnas.contracts.errors import HwnasError


def state(step: int) -> dict:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))])
    return {"step": step, "weights": torch.full((4,), float(step)), "optimizer": opt.state_dict(),
            "rng": rng_state(), "run": "runs/x", "history": [{"epoch": 0, "alphas": {"p": {"a": 0.5}}}]}


def test_save_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "prev.pt"]
    loaded = load_checkpoint(tmp_path)
    assert loaded["step"] == 2 and torch.equal(loaded["weights"], torch.full((4,), 2.0))
    assert loaded["history"][0]["alphas"]["p"]["a"] == 0.5
    assert torch.load(tmp_path / "prev.pt", weights_only=True)["step"] == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog, damage):
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    last = tmp_path / "last.pt"
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(b"not a checkpoint")
    else:
        last.unlink()
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(tmp_path)["step"] == 1
    assert "prev.pt" in caplog.text


def test_no_checkpoint_is_none_and_all_corrupt_is_one_clear_error(tmp_path):
    assert load_checkpoint(tmp_path / "nothing") is None
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    for name in ("last.pt", "prev.pt"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(HwnasError, match="can be read"):
        load_checkpoint(tmp_path)


def test_pickled_code_is_refused(tmp_path):
    import pathlib

    torch.save({"path": pathlib.Path("x")}, tmp_path / "last.pt")  # not loadable with weights_only
    with pytest.raises(HwnasError):
        load_checkpoint(tmp_path)


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(7)
    save_checkpoint(tmp_path, {"rng": rng_state()})
    expected = torch.rand(3)
    torch.manual_seed(99)
    set_rng_state(load_checkpoint(tmp_path)["rng"])
    assert torch.equal(torch.rand(3), expected)


def test_an_unwritable_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HwnasError, match=r"cannot write .*checkpoints/last.pt \(Not a directory\)"):
        save_checkpoint(blocker / "checkpoints", state(1))
