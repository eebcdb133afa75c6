"""Every installed space x every candidate: shape, freeze round-trip, ONNX export; every output
scale a space builds; every task, and every task x space pair whose scale and output kind the
space builds. Shapes follow each space's declared output (`SearchSpace.output`): an image
`scale` x the input, or one vector of scores per input.

Generated from the plugin registries, so a new space or task plugin is covered by installing it.
"""

from __future__ import annotations

import onnx
import pytest
import torch

from hwnas.contracts.config import SpaceSpec, TaskSpec
from hwnas.deploy.onnx_export import onnx_max_error, to_onnx
from hwnas.contracts.plugins import get_space, get_task, space_names, task_names
from hwnas.cli.search import TASK_FLAGS
from hwnas.contracts.space import OUTPUTS, Architecture, ChoiceBlock, choice_blocks, freeze, position_names
from hwnas.contracts.task import make_task, resolved

SHORTHAND_FLAGS = set(TASK_FLAGS) - {"task", "task_option"}  # the flags the command line has for task options


def small_space(name):
    cls = get_space(name)
    return cls.from_options(cls.small_preset)


def cases():
    for name in space_names():
        space = small_space(name)
        names = {n for cands in position_names(space.build()).values() for n in cands}
        for candidate in sorted(names):
            yield pytest.param(name, candidate, id=f"{name}-{candidate}")


def assert_declared_output(space, x, y):
    """`y = net(x)` is what `space` declares: an image `scale` x the input, or N x K scores."""
    if space.output == "scores":
        assert y.ndim == 2 and y.shape[0] == x.shape[0] and y.shape[1] >= 1
    else:
        assert y.shape == (*x.shape[:2], *(space.scale * d for d in x.shape[2:]))


def uniform(space, net, candidate):
    """`candidate` at every position that offers it (a skip may fit only where shapes match), the first elsewhere."""
    positions = position_names(net)
    return Architecture(space=space.name, choices={label: candidate if candidate in names else names[0]
                                                   for label, names in positions.items()})


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
    assert space.output in OUTPUTS and isinstance(space.multiple, int) and space.multiple >= 1
    outputs = []
    for h, w in [(32, 32), (37, 45), (19, 64)]:
        x = torch.randn(1, space.in_channels, h, w)
        with torch.no_grad():
            outputs.append(net(x))
        assert_declared_output(space, x, outputs[-1])
    assert space.output == "image" or len({y.shape for y in outputs}) == 1, "scores do not depend on the input size"


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


# -- output scales and tasks: every scale a space builds, every task x space pair it can train ------


def scale_cases():
    for name in space_names():
        for scale in get_space(name).scales:
            yield pytest.param(name, scale, id=f"{name}-x{scale}")


@pytest.mark.parametrize("space_name,scale", list(scale_cases()))
def test_every_scale_a_space_offers_builds_it_and_exports(space_name, scale, tmp_path):
    cls = get_space(space_name)
    space = cls.from_options(cls.small_preset, **({"scale": scale} if scale != 1 else {}))
    assert space.scale == scale
    net = freeze(space, first_candidates(space))
    randomise_norm_stats(net)
    net.eval()
    x = torch.randn(1, space.in_channels, 37, 45)
    with torch.no_grad():
        assert_declared_output(space, x, net(x))
    path = to_onnx(net, (1, space.in_channels, 32, 32), tmp_path / "net.onnx")
    assert onnx_max_error(net, path, torch.randn(1, space.in_channels, 32, 32)) < 1e-4
    if scale == 1:  # scale 1 is the network every space built before it had the option
        assert space.fingerprint() == cls.from_options(cls.small_preset).fingerprint()


def task_cases():
    for task in task_names():
        for space in space_names():
            if get_task(task).scale in get_space(space).scales and get_task(task).output == get_space(space).output:
                yield pytest.param(space, task, id=f"{space}-{task}")


@pytest.mark.parametrize("task_name", task_names())
def test_a_task_keeps_the_task_contract(task_name):
    cls = get_task(task_name)
    assert cls.name == task_name and isinstance(cls.scale, int) and cls.scale >= 1 and cls.primary_metric
    assert cls.output in OUTPUTS and (cls.output == "image" or cls.scale == 1)
    config = cls.Options.model_config
    assert config.get("frozen") and config.get("extra") == "forbid"
    cls.Options()  # every option has a default: `hwnas eval` builds the task without any
    fields = cls.Options.model_fields
    assert all(info.description for info in fields.values()), "`hwnas tasks` shows each option's description"
    assert set(cls.shorthands) <= set(fields) & SHORTHAND_FLAGS, "a shorthand is an option and a flag the CLI has"
    assert set(fields) & SHORTHAND_FLAGS <= set(cls.shorthands), "an option named like a shorthand flag is one"


@pytest.mark.parametrize("space_name,task_name", list(task_cases()))
def test_a_task_trains_and_scores_every_space_that_builds_its_scale(space_name, task_name):
    task_spec, spec = resolved(TaskSpec(name=task_name), SpaceSpec(space=space_name, preset=get_space(space_name).small_preset))
    space = spec.create()
    task = make_task(task_spec, space)
    x, y = task.batch("train", seed=0, epoch=0, step=0, batch_size=2)
    again = task.batch("train", seed=0, epoch=0, step=0, batch_size=2)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])  # a pure function of its arguments
    net = freeze(space, first_candidates(space))
    out = net(x)
    assert_declared_output(space, x, out)
    assert out.shape == y.shape if task.output == "image" else y.shape[0] == out.shape[0]  # scores: one target each
    loss = task.loss(out, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    scores = task.validate(net)
    assert task.primary_metric in scores and all(isinstance(v, float) for v in scores.values())


def first_candidates(space):
    """The architecture of every position's first candidate."""
    return Architecture(space=space.name, choices={label: names[0] for label, names in position_names(space.build()).items()})
