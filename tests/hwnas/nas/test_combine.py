import math

import pytest
import torch

from hwnas.nas.combine import COMBINATIONS, SMOOTH_TEMPERATURE, smooth_worst, weighted_sum


def test_with_one_device_both_combinations_are_that_device_s_term():
    term = torch.tensor([0.7])
    assert float(weighted_sum(term, torch.tensor([3.0]))) == pytest.approx(0.7)
    assert float(smooth_worst(term, torch.tensor([1.0]))) == pytest.approx(0.7)


def test_weighted_sum_is_the_weighted_mean():
    assert float(weighted_sum(torch.tensor([1.0, 0.5]), torch.tensor([2.0, 1.0]))) == pytest.approx(2.5 / 3)


def test_smooth_worst_stays_within_t_log_d_below_the_maximum():
    terms, weights = torch.tensor([0.9, 0.4, 0.6]), torch.ones(3)
    value = float(smooth_worst(terms, weights))
    assert 0.9 - SMOOTH_TEMPERATURE * math.log(3) - 1e-6 <= value <= 0.9 + 1e-6


def test_smooth_worst_sends_the_gradient_mostly_to_the_worst_device():
    terms = torch.tensor([0.9, 0.4], requires_grad=True)
    smooth_worst(terms, torch.ones(2)).backward()
    assert terms.grad[0] > 0.99 and 0 < terms.grad[1] < 0.01


def test_the_combinations_are_named_for_the_command_line():
    assert set(COMBINATIONS) == {"sum", "worst"}
