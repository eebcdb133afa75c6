"""The derived network against its latency target: told when it lands off it, and what to change."""

from __future__ import annotations

from hwnas.nas.target_gap import target_notes


def one(predicted: float, target: float | None) -> dict:
    return {"cpu": {"predicted_ms": predicted, "target_ms": target}}


def test_on_target_or_without_one_says_nothing():
    assert target_notes(one(53.0, 53.5), 0.1) == []
    assert target_notes(one(56.1, 53.5), 0.1) == []  # 4.9% above: within the table's own error
    assert target_notes(one(80.0, None), 0.1) == []


def test_above_the_target_names_both_and_the_stronger_weight():
    (note,) = target_notes(one(58.92, 53.5), 0.1)
    assert "predicted at 58.92 ms, 10% above the target 53.5 ms" in note
    assert "raise --latency-weight (e.g. 1)" in note and not note.startswith("cpu")


def test_below_the_target_says_the_budget_was_left_unspent():
    (note,) = target_notes(one(40.0, 53.5), 0.1)
    assert "25% below the target 53.5 ms" in note and "unspent" in note


def test_several_devices_name_the_one_off_target():
    devices = {**one(53.0, 53.5), "npu": {"predicted_ms": 12.0, "target_ms": 10.0}}
    assert target_notes(devices, 1.0) == [target_notes({"npu": devices["npu"]}, 1.0)[0].replace("the derived", "npu: the derived")]
