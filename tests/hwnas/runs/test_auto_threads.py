"""Threads chosen per workload when --threads is not given (hwnas.runs.compute.auto_threads)."""

import pytest
import torch

from hwnas.runs.compute import auto_threads
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace
from hwnas.contracts.space import Architecture, freeze


def base(preset: str) -> torch.nn.Module:
    space = NAFNetUNetSpace.from_options(preset)
    with torch.device("meta"):
        return freeze(space, Architecture(space=space.name, choices={p.label: "naf" for p in space.positions(64)}))


@pytest.fixture(autouse=True)
def no_omp_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_tiny_and_small_steps_run_on_one_thread_and_a_paper_step_on_every_core():
    assert auto_threads("cpu", base("tiny"), (8, 3, 32, 32)) == 1
    assert auto_threads("cpu", base("small"), (8, 3, 64, 64)) == 1
    assert auto_threads("cpu", base("paper"), (8, 3, 64, 64)) is None


def test_the_users_thread_count_and_cuda_are_left_alone(monkeypatch):
    assert auto_threads("cuda", base("tiny"), (8, 3, 32, 32)) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert auto_threads("cpu", base("tiny"), (8, 3, 32, 32)) is None
