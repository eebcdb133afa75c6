"""Every installed space x every candidate: shape, freeze round-trip, ONNX export.

Generated from the plugin registry, so a new space plugin is covered by installing it.
"""

from __future__ import annotations

import onnx
import pytest
import torch

from hwnas.export import onnx_max_error, to_onnx
from hwnas.plugins import get_space, space_names
from hwnas.space import Architecture, ChoiceBlock, choice_blocks, freeze, position_names


def small_space(name):
    cls = get_space(name)
    return cls.from_options(cls.small_preset)


def cases():
    for name in space_names():
        space = small_space(name)
        names = {n for cands in position_names(space.build()).values() for n in cands}
        for candidate in sorted(names):
            yield pytest.param(name, candidate, id=f"{name}-{candidate}")


def uniform(space, net, candidate):
    return Architecture.uniform(space.name, position_names(net), candidate)


def randomise_norm_stats(net):
    """Non-trivial BN statistics and residual scales, so folding errors would show."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        for p in net.parameters():
            if not p.any():  # zero-initialised residual scales
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("space_name,candidate", list(cases()))
def test_forward_shape_odd_sizes(space_name, candidate):
    space = small_space(space_name)
    net = freeze(space, uniform(space, space.build(), candidate)).eval()
    for h, w in [(32, 32), (37, 45), (19, 64)]:
        x = torch.randn(1, space.in_channels, h, w)
        with torch.no_grad():
            assert net(x).shape == x.shape


@pytest.mark.parametrize("space_name,candidate", list(cases()))
def test_freeze_round_trip_keeps_weights(space_name, candidate):
    space = small_space(space_name)
    supernet = space.build()
    arch = Architecture.from_json(uniform(space, supernet, candidate).to_json())
    frozen = freeze(supernet, arch)
    assert not any(isinstance(m, ChoiceBlock) for m in frozen.modules())
    for label, (path, block) in choice_blocks(supernet).items():
        chosen = block.candidates[arch.choices[label]].state_dict()
        got = frozen.get_submodule(path).state_dict()
        assert chosen.keys() == got.keys()
        assert all(torch.equal(chosen[k], got[k]) for k in chosen)


@pytest.mark.parametrize("space_name,candidate", list(cases()))
def test_onnx_export_matches_pytorch(space_name, candidate, tmp_path):
    space = small_space(space_name)
    net = freeze(space, uniform(space, space.build(), candidate))
    randomise_norm_stats(net)
    net.eval()
    path = to_onnx(net, (1, space.in_channels, 32, 32), tmp_path / "net.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in ops  # every BN folded by our code
    assert onnx_max_error(net, path, torch.randn(1, space.in_channels, 32, 32)) < 1e-4


@pytest.mark.parametrize("space_name", space_names())
def test_positions_and_units_are_consistent(space_name):
    space = small_space(space_name)
    positions = space.positions(64)
    assert [p.label for p in positions] == list(position_names(space.build()))
    units = space.candidate_units(64)
    # one unit per distinct (candidate, shape): shared shapes are measured once
    assert len(units) == len({(u.name, u.input_shape) for u in units})
    assert {(n, p.input_shape) for p in positions for n in p.candidates} == {(u.name, u.input_shape) for u in units}
    assert space.fingerprint() == small_space(space_name).fingerprint()
