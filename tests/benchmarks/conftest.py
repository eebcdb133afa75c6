"""The scripts under benchmarks/ as modules: loaded once by file name, with their folder on
sys.path while they load (they import their sibling `common`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def benchmark_script():
    """`benchmark_script("bench_drift.py")` -> that script as a module (one load per session)."""
    loaded: dict[str, object] = {}

    def load(filename: str):
        if filename not in loaded:
            name = f"benchmark_{Path(filename).stem}_under_test"
            sys.path.insert(0, str(BENCH))
            try:
                spec = importlib.util.spec_from_file_location(name, BENCH / filename)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module  # dataclasses look their module up while the class is built
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(BENCH))
            loaded[filename] = module
        return loaded[filename]

    yield load
    for module in loaded.values():
        sys.modules.pop(module.__name__, None)


@pytest.fixture(scope="session")
def report(benchmark_script):
    return benchmark_script("report.py")


class HwnasCalls:
    """A benchmark's `Runner` that records each `hwnas` command's arguments instead of running it."""

    def __init__(self):
        self.argv: list[list[str]] = []

    def hwnas(self, *args, log: str, **_):
        self.argv.append([str(a) for a in args])


@pytest.fixture
def hwnas_calls():
    return HwnasCalls()


def _trained_run(run: Path) -> None:
    """A finished `hwnas train` run folder (tiny all-naf model.pt, one epoch of 100 steps in 12.5 s)."""
    import torch

    from hwnas.contracts.config import SpaceSpec
    from hwnas.contracts.space import Architecture, freeze, position_names
    from hwnas.deploy.modelfile import ModelFile, save_model

    run.mkdir(parents=True)
    spec = SpaceSpec(preset="tiny")
    space = spec.create()
    torch.manual_seed(0)
    arch = Architecture.uniform(space.name, position_names(space.build()), "naf")
    save_model(run / "model.pt", ModelFile(spec, arch, freeze(space, arch).state_dict()))
    with open(run / "metrics.csv", "w", newline="") as fh:
        fh.write("epoch,steps,train_loss,lr,train_seconds,val_psnr,val_ssim\n1,100,0.1,0.002,12.5,20,0.5\n")


@pytest.fixture
def trained_run():
    """`trained_run(folder)` makes `folder` a finished training run."""
    return _trained_run
