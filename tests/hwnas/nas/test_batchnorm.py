"""BatchNorm recalibration of a derived network."""

import torch
from torch import nn

from hwnas.nas.batchnorm import recalibrate


def net():
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))


def test_running_statistics_become_the_mean_over_the_batches():
    model = net().eval()
    model[1].running_mean.fill_(100.0)  # stale
    model[1].momentum = 0.3
    batches = [torch.randn(8, 3, 5, 5) + i for i in range(3)]
    assert recalibrate(model, batches) == 2
    with torch.no_grad():
        per_batch = [model[0](x).mean(dim=(0, 2, 3)) for x in batches]
    torch.testing.assert_close(model[1].running_mean, torch.stack(per_batch).mean(0))
    assert model[1].num_batches_tracked == 3
    assert not model.training and model[1].momentum == 0.3  # flags and momentum restored


def test_no_gradients_and_no_parameter_changes():
    model = net()
    before = [p.clone() for p in model.parameters()]
    recalibrate(model, [torch.randn(4, 3, 5, 5)])
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(before, model.parameters()))
    assert model.training


def test_a_network_without_batchnorm_is_left_alone():
    def never():
        raise AssertionError("batches must not be consumed")
        yield

    assert recalibrate(nn.Sequential(nn.Conv2d(3, 3, 1)), never()) == 0
