"""`hwnas.nas.bilevel`: each step moves only its own parameter group, with its own optimiser; the guard runs first."""

from __future__ import annotations

import pytest
import torch

from hwnas.nas.bilevel import Bilevel
from hwnas.contracts.config import SpaceSpec
from hwnas.nas.objective import Terms
from hwnas.nas.supernet import alpha_matrix, to_supernet


@pytest.fixture
def supernet():
    torch.manual_seed(0)
    space = SpaceSpec(preset="tiny").create()
    return to_supernet(space.build()), [p.label for p in space.positions(32)]


def snapshot(params):
    return [p.detach().clone() for p in params]


def moved(before, params):
    return [not torch.equal(a, p) for a, p in zip(before, params)]


def objective(net, labels, x):
    def terms() -> Terms:
        task = net(x).square().mean()
        latency = alpha_matrix(net, labels)[:, 0].sum()  # pushes alpha away from the first candidate
        return Terms(task, latency, task * 0, task + latency)

    return terms


def test_the_weight_step_moves_weights_only_and_the_arch_step_logits_only(supernet):
    net, labels = supernet
    opt = Bilevel(net, lr=1e-2, arch_lr=0.1, weight_decay=0.0)
    x = torch.rand(2, 3, 16, 16)
    checked = []
    weights, logits = snapshot(opt.weights), snapshot(opt.logits)
    opt.weight_step(lambda: net(x).square().mean(), checked.extend)
    assert any(moved(weights, opt.weights)) and not any(moved(logits, opt.logits))
    assert all(p.requires_grad for p in opt.logits)  # held out of the graph only during the forward pass
    weights = snapshot(opt.weights)
    opt.arch_step(objective(net, labels, x), checked.extend)
    assert all(moved(logits, opt.logits)) and not any(moved(weights, opt.weights))
    assert [name for name, _ in checked] == ["task loss", "task term", "latency term", "entropy term", "total term"]


def test_the_joint_step_moves_both_and_the_optimisers_are_chosen_by_group(supernet):
    net, labels = supernet
    opt = Bilevel(net, lr=1e-2, arch_lr=0.1, weight_decay=1e-4)
    assert isinstance(opt.weight_opt, torch.optim.AdamW) and type(opt.arch_opt) is torch.optim.Adam
    assert opt.arch_opt.param_groups[0]["betas"] == (0.5, 0.999)  # DARTS' architecture optimiser
    x = torch.rand(2, 3, 16, 16)
    weights, logits = snapshot(opt.weights), snapshot(opt.logits)
    terms = objective(net, labels, x)
    opt.joint_step(lambda: net(x).square().mean(), lambda loss: terms(), lambda values: None)
    assert any(moved(weights, opt.weights)) and all(moved(logits, opt.logits))
    state = opt.state()
    again = Bilevel(net, lr=1e-2, arch_lr=0.1, weight_decay=1e-4)
    again.load(state)
    assert again.arch_opt.state_dict()["state"].keys() == opt.arch_opt.state_dict()["state"].keys()


def test_a_refusing_guard_stops_before_any_update(supernet):
    net, labels = supernet
    opt = Bilevel(net, lr=1e-2, arch_lr=0.1, weight_decay=0.0)
    weights = snapshot(opt.weights)

    def refuse(values):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError):
        opt.weight_step(lambda: net(torch.rand(1, 3, 16, 16)).mean(), refuse)
    assert not any(moved(weights, opt.weights)) and all(p.grad is None for p in opt.weights)
