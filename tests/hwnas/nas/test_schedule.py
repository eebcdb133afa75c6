import math

import pytest

from hwnas.contracts.config import SearchConfig, SpaceSpec
from hwnas.nas.schedule import ARCH_TRAVEL, MIN_ARCH_LR, CosinePlan, EntropyPlan, auto_arch_lr, auto_warmup_epochs


def test_lambda_grows_exponentially_from_lambda0_to_lambda0_times_growth_over_any_length():
    for steps in (40, 400, 4000):
        plan = EntropyPlan.fresh(0.05, 100.0, steps)
        assert plan.at(0) == pytest.approx(0.05)
        assert plan.at(steps) == pytest.approx(5.0)
        assert plan.at(steps / 2) == pytest.approx(0.5)  # geometric midpoint: exponential in the step
        ratios = [plan.at(s + steps / 10) / plan.at(s) for s in (0, steps / 3, steps / 2)]
        assert ratios == pytest.approx([ratios[0]] * 3)  # a constant ratio per equal interval


def test_lambda_is_held_outside_the_plan_and_zero_when_off():
    plan = EntropyPlan.fresh(0.05, 100.0, 100)
    assert plan.at(-5) == pytest.approx(0.05) and plan.at(500) == pytest.approx(5.0)
    assert EntropyPlan.fresh(0.0, 100.0, 100).at(50) == 0.0  # --entropy-weight 0: the ablation


def test_an_extended_run_continues_from_the_current_lambda_without_a_jump_to_the_same_end():
    plan = EntropyPlan.fresh(0.05, 100.0, 100)
    now = plan.at(60)
    longer = plan.extended(60, 300)
    assert longer.at(60) == pytest.approx(now)
    assert longer.at(300) == pytest.approx(5.0)
    assert all(longer.at(s) <= longer.at(s + 1) for s in range(60, 300))
    assert plan.extended(60, 100) is plan  # same length: nothing re-planned


def test_the_weights_rate_anneals_from_lr_to_min_lr_and_an_extension_continues_from_the_current_rate():
    plan = CosinePlan.fresh(2e-3, 1e-6, 600)
    assert plan.at(0) == pytest.approx(2e-3) and plan.at(600) == pytest.approx(1e-6) == plan.at(900)
    assert plan.at(300) == pytest.approx((2e-3 + 1e-6) / 2)
    assert all(plan.at(s + 1) <= plan.at(s) for s in range(600))
    longer = plan.extended(450, 1200)
    assert longer.at(450) == pytest.approx(plan.at(450))  # no jump
    assert longer.at(1200) == pytest.approx(1e-6)
    assert all(longer.at(s + 1) <= longer.at(s) for s in range(450, 1200))
    assert CosinePlan.fresh(2e-3, 2e-3, 600).at(377) == pytest.approx(2e-3)  # min_lr = lr: constant


def test_warmup_and_arch_lr_are_sized_to_the_run():
    assert auto_warmup_epochs(10) == 2 and auto_warmup_epochs(3) == 1 and auto_warmup_epochs(1) == 0
    assert auto_arch_lr(10_000) == MIN_ARCH_LR
    assert auto_arch_lr(40) == pytest.approx(ARCH_TRAVEL / 40)
    config = SearchConfig(spec=SpaceSpec(), epochs=3, steps_per_epoch=20)
    assert config.warmup_epochs == 1 and config.arch_lr == pytest.approx(ARCH_TRAVEL / 40)
    given = SearchConfig(spec=SpaceSpec(), epochs=3, steps_per_epoch=20, warmup_epochs=0, arch_lr=0.5)
    assert given.warmup_epochs == 0 and given.arch_lr == 0.5
    assert not math.isnan(SearchConfig(spec=SpaceSpec()).arch_lr)
