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
