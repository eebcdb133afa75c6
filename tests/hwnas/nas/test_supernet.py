"""The super-net: soft mixing, straight-through Gumbel sampling, logits as parameters."""

import pytest
import torch
from torch import nn

from hwnas.contracts.config import SpaceSpec
from hwnas.contracts.space import Architecture, ChoiceBlock, choice_blocks, freeze
from hwnas.nas.supernet import (
    MixedChoice,
    alpha_matrix,
    arch_parameters,
    derive,
    draw_gumbel,
    mixed_choices,
    to_supernet,
    weight_parameters,
)


def scaled_block(label: str) -> ChoiceBlock:
    """Three linear candidates with distinct, known outputs."""
    cands = {}
    for i, name in enumerate(("a", "b", "c")):
        lin = nn.Linear(4, 4)
        nn.init.constant_(lin.weight, 0.1 * (i + 1))
        nn.init.constant_(lin.bias, float(i))
        cands[name] = lin
    return ChoiceBlock(label, cands)


class TwoPositions(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = scaled_block("p0")
        self.second = nn.Sequential(scaled_block("p1"))

    def forward(self, x):
        return self.second(self.first(x))


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return SpaceSpec(preset="tiny").create().build()


def test_soft_output_is_the_alpha_weighted_sum():
    net = to_supernet(TwoPositions(), "soft", temperature=2.0)
    block = net.first
    with torch.no_grad():
        block.logits.copy_(torch.tensor([0.3, -1.0, 2.0]))
    x = torch.randn(5, 4)
    alpha = torch.softmax(block.logits / 2.0, dim=0)
    expected = sum(a * m(x) for a, m in zip(alpha, block.candidates.values()))
    torch.testing.assert_close(block(x), expected)
    assert torch.allclose(alpha_matrix(net)[0], alpha)


def count_calls(net: nn.Module) -> dict[str, int]:
    calls: dict[str, int] = {}
    for label, (_, block) in choice_blocks(net).items():
        for name, module in block.candidates.items():
            key = f"{label}/{name}"
            calls[key] = 0
            module.register_forward_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))
    return calls


def test_sampled_mode_runs_one_candidate_per_position_and_phi_gets_a_gradient(tiny_net):
    net = to_supernet(tiny_net, "sampled")
    calls = count_calls(net)
    draw_gumbel(net, 0, 0, 0, "train")
    net(torch.rand(2, 3, 16, 16)).square().mean().backward()
    positions = mixed_choices(net)
    for label in positions:
        ran = [k for k, n in calls.items() if k.startswith(f"{label}/") and n]
        assert len(ran) == 1 and calls[ran[0]] == 1, (label, calls)
    for label, block in positions.items():
        assert block.logits.grad is not None and block.logits.grad.abs().sum() > 0, label
        for name, module in block.candidates.items():
            used = calls[f"{label}/{name}"] > 0
            assert all((p.grad is not None) == used for p in module.parameters()), (label, name)


def test_sampled_gate_is_one_in_value():
    net = to_supernet(TwoPositions(), "sampled")
    draw_gumbel(net, 1, 2, 3, "arch")
    x = torch.randn(3, 4)
    k = int(torch.argmax(net.first.logits / 1.0 + net.first.noise))
    torch.testing.assert_close(net.first(x), list(net.first.candidates.values())[k](x))


def test_adamw_leaves_candidates_that_did_not_run_alone(tiny_net):
    """Even with momentum from an earlier step and weight decay, a candidate not run this step stays put."""
    net = to_supernet(tiny_net, "sampled")
    calls = count_calls(net)
    opt = torch.optim.AdamW(weight_parameters(net), lr=0.1, weight_decay=0.5)
    ran = []
    for step in range(2):
        for k in calls:
            calls[k] = 0
        before = {k: v.clone() for k, v in net.state_dict().items()}
        draw_gumbel(net, 0, 0, step, "train")
        opt.zero_grad(set_to_none=True)
        net(torch.rand(2, 3, 16, 16)).square().mean().backward()
        opt.step()
        ran.append({k for k, n in calls.items() if n})
    after = net.state_dict()
    paths = {label: path for label, (path, _) in choice_blocks(net).items()}
    idle_with_momentum = 0
    for key in calls:
        label, name = key.split("/")
        prefix = f"{paths[label]}.candidates.{name}."
        moved = any(not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix))
        assert moved == (key in ran[1]), key
        idle_with_momentum += key in ran[0] and key not in ran[1]
    assert idle_with_momentum > 0  # the case that matters was exercised


def test_logits_are_in_the_state_dict_and_candidate_keys_do_not_change(tiny_net):
    plain_keys = set(tiny_net.state_dict())
    net = to_supernet(tiny_net, "soft")
    keys = set(net.state_dict())
    paths = [path for path, _ in choice_blocks(net).values()]
    assert keys - plain_keys == {f"{p}.logits" for p in paths}
    assert plain_keys <= keys
    assert any(k.startswith(f"{paths[0]}.candidates.naf.") for k in keys)
    logits, weights = arch_parameters(net), weight_parameters(net)
    assert {id(p) for p in logits}.isdisjoint(id(p) for p in weights)
    assert len(logits) + len(weights) == len(list(net.parameters()))


def test_freeze_of_a_supernet_keeps_the_chosen_weights(tiny_net):
    net = to_supernet(tiny_net, "soft")
    with torch.no_grad():
        for block in mixed_choices(net).values():
            block.logits[2] = 5.0
    arch = derive(net, "nafnet-unet")
    assert set(arch.choices.values()) == {"naf_bn_lite"}
    frozen = freeze(net, arch)
    assert not choice_blocks(frozen)
    path = choice_blocks(net)["mid.0"][0]
    src = net.get_submodule(f"{path}.candidates.naf_bn_lite")
    assert torch.equal(frozen.get_submodule(path).conv1.weight, src.conv1.weight)


def test_gumbel_noise_is_a_function_of_its_seed_parts():
    a, b = to_supernet(TwoPositions(), "sampled"), to_supernet(TwoPositions(), "sampled")
    torch.manual_seed(123)  # the global RNG must not matter
    draw_gumbel(a, 0, 1, 2, "train")
    torch.manual_seed(456)
    draw_gumbel(b, 0, 1, 2, "train")
    assert torch.equal(a.first.noise, b.first.noise) and torch.equal(a.second[0].noise, b.second[0].noise)
    draw_gumbel(b, 0, 1, 3, "train")
    assert not torch.equal(a.first.noise, b.first.noise)


def test_sampled_eval_runs_the_argmax_candidate():
    net = to_supernet(TwoPositions(), "sampled").eval()
    with torch.no_grad():
        net.first.logits.copy_(torch.tensor([0.0, 3.0, 1.0]))
    x = torch.randn(2, 4)
    torch.testing.assert_close(net.first(x), net.first.candidates["b"](x))


def test_to_supernet_keeps_a_mixed_choice_a_choice_block():
    net = to_supernet(TwoPositions(), "soft")
    assert isinstance(net.first, MixedChoice) and isinstance(net.first, ChoiceBlock)
    with torch.no_grad():
        net.first.logits.fill_(1.5)
    to_supernet(net, "sampled", 0.5)  # re-configure, keep phi
    assert net.first.mode == "sampled" and net.first.temperature == 0.5
    assert torch.all(net.first.logits == 1.5)
    assert Architecture(space="x", choices={"p0": "a", "p1": "c"}).choices["p1"] == "c"
