"""Batch Renormalization of the NAF blocks' BatchNorm: plain BatchNorm first, then the deployed function."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hwnas.searchspaces import batch_renorm
from hwnas.searchspaces.batch_renorm import limits, renormalised
from hwnas.searchspaces.nafnet_blocks import make_candidate


def _bn(channels: int = 4, batches: int = 0) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.8, 1.2)
    bn.num_batches_tracked.fill_(batches)
    return bn


def _x(seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(8, 4, 6, 6, generator=torch.Generator().manual_seed(seed)) * scale


def test_limits_start_plain_and_widen_to_the_papers():
    assert [float(v) for v in limits(0)] == [1.0, 0.0]
    assert [float(v) for v in limits(torch.tensor(batch_renorm.PLAIN_BATCHES))] == [1.0, 0.0]  # the module's counter
    r, d = limits(batch_renorm.PLAIN_BATCHES + batch_renorm.WIDEN_BATCHES // 2)
    assert 1.0 < r < batch_renorm.R_MAX and 0.0 < d < batch_renorm.D_MAX
    assert [float(v) for v in limits(10**6)] == [batch_renorm.R_MAX, batch_renorm.D_MAX]


def test_evaluation_is_plain_batchnorm():
    bn = _bn(batches=10**6).eval()
    x = _x()
    assert torch.equal(renormalised(bn, x), bn(x))


def test_the_first_batches_train_as_batchnorm_and_update_the_same_statistics():
    bn, twin = _bn(), None
    twin = copy.deepcopy(bn)
    bn.train(), twin.train()
    for seed in range(3):
        x = _x(seed, scale=2.0)
        torch.testing.assert_close(renormalised(bn, x), twin(x))
    torch.testing.assert_close(bn.running_mean, twin.running_mean)
    torch.testing.assert_close(bn.running_var, twin.running_var)
    assert int(bn.num_batches_tracked) == int(twin.num_batches_tracked) == 3


def test_once_widened_training_computes_the_deployed_function():
    bn = _bn(batches=10**6).train()
    x = _x(1, scale=1.3) + 0.1  # batch statistics within the limits of the running ones
    deployed = copy.deepcopy(bn).eval()(x)
    plain = copy.deepcopy(bn)(x)  # nn.BatchNorm2d's training output: the batch's own statistics
    out = renormalised(bn, x)
    torch.testing.assert_close(out, deployed, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, plain, atol=1e-3)


def test_corrections_are_clipped_when_the_batch_is_far_from_the_running_statistics():
    bn = _bn(batches=10**6).train()
    x = _x(2, scale=100.0)  # std ~100 against running std ~1: r would be ~100
    deployed = copy.deepcopy(bn).eval()(x)
    out = renormalised(bn, x)
    assert out.abs().max() < deployed.abs().max() / 10  # r clipped at R_MAX, not the running statistics' ~100


def test_gradients_flow_through_the_batch_statistics_not_the_corrections():
    bn = _bn(batches=10**6).train()
    x = _x(3).requires_grad_()
    renormalised(bn, x).sum().backward()
    # With r, d constant the output sum does not depend on x: d(sum)/dx = 0, as in BatchNorm training.
    assert torch.allclose(x.grad, torch.zeros_like(x), atol=1e-5)
    assert bn.weight.grad is not None and bn.bias.grad is not None and bn.bias.grad.abs().sum() > 0


def test_a_cumulative_momentum_recalibrates_like_batchnorm():
    bn, twin = _bn(), None
    twin = copy.deepcopy(bn)
    for m in (bn, twin):
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for seed in range(4):
        x = _x(seed, scale=1.0 + seed)
        renormalised(bn, x)
        twin(x)
    torch.testing.assert_close(bn.running_mean, twin.running_mean)
    torch.testing.assert_close(bn.running_var, twin.running_var)


@pytest.mark.parametrize("name", ["naf_bn", "naf_bn_lite", "naf_bn_e1"])
def test_a_batchnorm_naf_block_trains_the_function_it_deploys(name):
    torch.manual_seed(0)
    block = make_candidate(name, 4)
    with torch.no_grad():
        block.beta.fill_(0.5), block.gamma.fill_(0.5)  # not the identity it starts as
    norms = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [type(m) for m in norms] == [nn.BatchNorm2d] * 2  # plain modules: checkpoints, tables and export unchanged
    for bn in norms:
        bn.num_batches_tracked.fill_(10**6)
    x = _x(4) * 0.6  # batch std within [1/R_MAX, R_MAX] of the default running std 1
    deployed = copy.deepcopy(block).eval()(x)
    torch.testing.assert_close(block.train()(x), deployed, rtol=1e-4, atol=1e-4)


def test_a_layernorm_naf_block_is_untouched():
    torch.manual_seed(0)
    block = make_candidate("naf", 4).train()
    x = _x(5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    torch.testing.assert_close(block(x), block.eval()(x))


def test_under_bf16_autocast_statistics_stay_float32_and_the_output_keeps_the_input_dtype():
    """The CUDA path trains under bf16 autocast: BatchNorm's running statistics are float32 buffers."""
    bn = _bn(batches=10**6).train()
    x = _x(6).to(torch.bfloat16)
    y = renormalised(bn, x)
    assert y.dtype == torch.bfloat16 and bn.running_mean.dtype == bn.running_var.dtype == torch.float32
    block = make_candidate("naf_bn", 4).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        block(_x(7)).float().sum().backward()
    assert all(p.grad is not None for p in block.parameters() if p.requires_grad)
