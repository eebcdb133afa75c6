"""The composite objective: normalised latency, target form, normalised entropy, lambda schedule."""

import math

import pytest
import torch

from hwnas.contracts.latency import LatencyTable, Measurement, TableMeta
from hwnas.nas.objective import Objective, latency_model, normalised_entropy
from hwnas.contracts.space import Position, Unit

MS = {"naf": 4.0, "naf_bn": 3.0, "lite": 2.0, "cbr": 1.0}


def table_for(positions, fixed_ms=0.5) -> LatencyTable:
    table = LatencyTable(TableMeta(space="s", fingerprint="f", image_size=32, backend="b", device="d"))
    for pos in positions:
        scale = pos.input_shape[1] / 8
        for name in pos.candidates:
            ms = MS[name] * scale
            table.add(Measurement(name=name, input_shape=pos.input_shape, median_ms=ms, p10_ms=ms, p90_ms=ms,
                                  runs=1, device="d", runtime="r"))
    table.add(Measurement(kind="fixed", name="stem", input_shape=(1, 3, 32, 32), median_ms=fixed_ms, p10_ms=fixed_ms,
                          p90_ms=fixed_ms, runs=1, device="d", runtime="r"))
    return table


POSITIONS = [
    Position("a", "a", tuple(MS), (1, 8, 32, 32)),
    Position("b", "b", tuple(MS), (1, 16, 16, 16)),
    Position("c", "c", tuple(MS), (1, 16, 16, 16)),  # shares b's table row
    Position("d", "d", ("naf", "cbr"), (1, 8, 32, 32)),  # fewer candidates: padded
]
FIXED = [Unit("stem", (1, 3, 32, 32), None, kind="fixed")]


@pytest.fixture
def model():
    return latency_model(table_for(POSITIONS), POSITIONS, FIXED)


def one_hot(index_per_position, k=4):
    alpha = torch.zeros(len(index_per_position), k)
    for i, j in enumerate(index_per_position):
        alpha[i, j] = 1.0
    return alpha


def uniform(model):
    mask = model.mask.float()
    return mask / mask.sum(dim=1, keepdim=True)


def test_the_base_network_costs_exactly_one(model):
    objective = Objective.single(model, latency_weight=1.0)
    assert float(objective.latency_term(one_hot([0, 0, 0, 0]))) == pytest.approx(1.0)
    # all-naf: 4 + 8 + 8 + 4 = 24 ms of blocks; all cheapest: 1 + 2 + 2 + 1 = 6 -> 0.25
    assert float(objective.latency_term(one_hot([3, 3, 3, 1]))) == pytest.approx(6 / 24)
    assert model.base_ms == pytest.approx(24.5) and model.fixed_ms == pytest.approx(0.5)


def test_expected_latency_is_the_alpha_weighted_table_sum(model):
    alpha = uniform(model)
    expected = 0.5 + (4 + 3 + 2 + 1) / 4 * (1 + 2 + 2) + (4 + 1) / 2
    assert float(model.expected_ms(alpha)) == pytest.approx(expected)


def test_latency_penalty_pushes_alpha_towards_cheaper_candidates(model):
    phi = torch.zeros(4, 4, requires_grad=True)
    objective = Objective.single(model, latency_weight=0.1)
    alpha = torch.softmax(phi.masked_fill(~model.mask, -math.inf), dim=1).nan_to_num(0.0)
    objective(torch.tensor(1.0), 1.0, alpha, 0).total.backward()
    g = phi.grad[0]
    assert g[0] > g[1] > g[2] > g[3]  # costlier candidates are pushed down harder


def test_hinge_target_is_free_under_the_target_and_linear_above(model):
    cheap, base = one_hot([3, 3, 3, 1]), one_hot([0, 0, 0, 0])
    objective = Objective.single(model, latency_weight=2.0, target_ms=12.25, target_form="hinge")
    assert float(objective.latency_term(cheap)) == 0.0  # 6.5 ms < 12.25 ms
    assert float(objective.latency_term(base)) == pytest.approx(24.5 / 12.25 - 1)
    terms = objective(torch.tensor(0.5), 0.25, base, 0)
    assert float(terms.latency) == pytest.approx(2.0) and float(terms.task) == pytest.approx(2.0)


def test_absolute_target_pulls_towards_the_target_from_both_sides(model):
    cheap, base = one_hot([3, 3, 3, 1]), one_hot([0, 0, 0, 0])
    objective = Objective.single(model, latency_weight=1.0, target_ms=12.25, target_form="absolute")
    assert float(objective.latency_term(cheap)) == pytest.approx(1 - 6.5 / 12.25)  # under the target: still a cost
    assert float(objective.latency_term(base)) == pytest.approx(24.5 / 12.25 - 1)
    cheap_phi = torch.full_like(model.ms, -4.0)
    for i, k in enumerate([3, 3, 3, 1]):
        cheap_phi[i, k] = 4.0
    cheap_phi.requires_grad_(True)
    alpha = torch.softmax(cheap_phi.masked_fill(~model.mask, -math.inf), dim=1).nan_to_num(0.0)
    objective.latency_term(alpha).backward()
    assert cheap_phi.grad[0, 0] < 0  # under the target, the costlier candidate is pulled up


def test_a_search_config_resolves_the_target_form_by_its_number_of_tables():
    from hwnas.contracts.config import SearchConfig, SpaceSpec

    assert SearchConfig(spec=SpaceSpec(), target_ms=5.0).target_form == "absolute"
    assert SearchConfig(spec=SpaceSpec(), target_ms=5.0, target_form="hinge").target_form == "hinge"


def test_normalised_entropy_is_one_when_uniform_and_zero_when_decisive(model):
    assert float(normalised_entropy(uniform(model), model.mask)) == pytest.approx(1.0)
    assert float(normalised_entropy(one_hot([1, 2, 3, 0]), model.mask)) == pytest.approx(0.0)
    half = uniform(model)
    half[0] = torch.tensor([1.0, 0, 0, 0])
    assert float(normalised_entropy(half, model.mask)) == pytest.approx(0.75)


def test_single_candidate_positions_are_left_out_of_the_entropy():
    mask = torch.tensor([[True, True], [True, False]])
    alpha = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert float(normalised_entropy(alpha, mask)) == pytest.approx(1.0)


def test_the_first_nonfinite_term_is_named(model):
    objective = Objective.single(model, latency_weight=0.1)
    alpha = uniform(model)
    assert objective(torch.tensor(1.0), 1.0, alpha, 0).first_nonfinite() is None
    assert objective(torch.tensor(float("nan")), 1.0, alpha, 0).first_nonfinite() == "task"
    bad = alpha.clone()
    bad[0, 0] = float("inf")
    assert objective(torch.tensor(1.0), 1.0, bad, 0).first_nonfinite() == "latency"


def test_a_zero_base_latency_is_refused():
    from hwnas.contracts.errors import HwnasError

    table = table_for(POSITIONS)
    table.frame.loc[table.frame["name"] == "naf", "median_ms"] = 0.0
    with pytest.raises(HwnasError, match="0 ms"):
        latency_model(table, POSITIONS, FIXED)
