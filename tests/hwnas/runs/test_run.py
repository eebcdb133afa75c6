"""`hwnas.runs.run`, the run skeleton of search and train: progress record, the one resume check, NaN guard, signals."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from hwnas.contracts.config import SearchConfig, SpaceSpec, TrainConfig
from hwnas.contracts.errors import HwnasError
from hwnas.runs.run import SPIKE_FACTOR, SPIKE_WINDOW, Diverged, Progress, StopRequest, guard, guard_parameters, guard_spike, resume_config

SAVED = SearchConfig(spec=SpaceSpec(preset="tiny", options={"width": 8}), epochs=4, mode="soft", sigma=(0.0, 55.0))


def resumed(given, saved=SAVED, **kwargs):
    return resume_config(saved, given, may_change={"epochs", "threads"}, root=Path("runs/s1"), **kwargs)


def test_progress_round_trips_and_says_where_it_is():
    p = Progress(epoch=2, step=3, global_step=11)
    p.add("loss", 1.0)
    p.add("loss", 3.0)
    assert p.means() == {"loss": 2.0} and p.where() == "epoch 2, step 3"
    assert Progress.from_state(p.state()) == p
    p.next_epoch()
    assert (p.epoch, p.step, p.sums, p.global_step) == (3, 0, {}, 11)


def test_resume_applies_only_the_fields_that_may_change():
    config = resumed({"epochs": 8, "threads": 1, "mode": "soft", "spec": {"preset": "tiny"}})
    assert (config.epochs, config.threads) == (8, 1)
    assert config.model_dump(exclude={"epochs", "threads"}) == SAVED.model_dump(exclude={"epochs", "threads"})
    assert resumed(SAVED.model_dump(mode="json")) == SAVED  # the run's own config, as config.yaml holds it


@pytest.mark.parametrize("given, named", [
    ({"mode": "sampled"}, "--mode soft, not sampled"),
    ({"spec": {"preset": "paper"}}, "--preset tiny, not paper"),
    ({"spec": {"options": {"width": 16}}}, "--option width=8, not width=16"),
    ({"sigma": (0.0, 50.0)}, "--sigma 0.0,55.0, not 0.0,50.0"),
])
def test_resume_refuses_any_other_change_in_one_line_naming_the_flag(given, named):
    with pytest.raises(HwnasError) as err:
        resumed(given)
    message = str(err.value)
    assert message.startswith("runs/s1 was started with ") and named in message and "\n" not in message


def test_ignored_fields_are_neither_compared_nor_applied():
    config = resumed({"lut": "other.csv", "device": "sm8650"}, ignored={"lut", "device"})
    assert config == SAVED


def test_an_architecture_differs_as_a_whole():
    saved = TrainConfig(spec=SpaceSpec(preset="tiny"), arch={"space": "nafnet-unet", "choices": {"a": "naf", "b": "cbr"}})
    with pytest.raises(HwnasError, match=r"another architecture \(naf, cbr\)"):
        resumed({"arch": {"space": "nafnet-unet", "choices": {"a": "naf"}}}, saved=saved)


def test_guard_names_the_value_where_and_what_to_do(tmp_path):
    p = Progress(epoch=1, step=2)
    guard([("task loss", torch.tensor(0.5))], p, tmp_path, "lower --lr")
    with pytest.raises(Diverged, match=r"^the task loss became nan at epoch 1, step 2; no checkpoint had been written yet; lower --lr$"):
        guard([("task loss", torch.tensor(float("nan")))], p, tmp_path, "lower --lr")
    (tmp_path / "last.pt").write_bytes(b"")
    weights = [torch.nn.Parameter(torch.tensor([1.0, float("inf")]))]
    with pytest.raises(Diverged, match=r"network weights became NaN or infinite after the optimiser step at epoch 1, step 2; the last good checkpoint .*last\.pt is kept"):
        guard_parameters({"network weights": weights}, p, tmp_path, "lower --lr")


def test_sigint_and_sigterm_ask_to_stop_and_a_second_one_aborts():
    for sig in (signal.SIGINT, signal.SIGTERM):
        stop = StopRequest()
        with stop.installed():
            os.kill(os.getpid(), sig)
            assert stop.requested
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), sig)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored


def test_the_spike_guard_waits_for_a_full_window_then_stops_a_blow_up_not_the_batch_to_batch_spread(tmp_path):
    p = Progress()
    for i in range(SPIKE_WINDOW):  # a noisy, falling loss; no yardstick yet for the first ones
        guard_spike((1e-2 if i == 0 else 1e-3) * (1 + (i % 5)), p, tmp_path, "lower --lr")
    assert len(p.recent_losses) == SPIKE_WINDOW
    guard_spike(0.5 * SPIKE_FACTOR * 3e-3, p, tmp_path, "lower --lr")  # large, but within the factor of the median
    assert len(p.recent_losses) == SPIKE_WINDOW  # the window rolls
    with pytest.raises(Diverged, match=r"training loss jumped to 153, .* times its median .*no checkpoint.*lower --lr"):
        guard_spike(153.0, p, tmp_path, "lower --lr")
