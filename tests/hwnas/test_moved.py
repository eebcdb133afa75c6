"""The 0.1 import paths (`hwnas.space`, `hwnas.searching`, ...) keep working for one release (`hwnas._moved`)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import hwnas
from hwnas._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_module_exists_at_its_new_path(old):
    assert importlib.util.find_spec(f"hwnas.{MOVED[old]}") is not None


def test_an_old_path_is_the_same_module_with_a_warning():
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n    import hwnas.space\nexcept DeprecationWarning as e:\n    print('warned:', e)\n"
        "warnings.simplefilter('ignore')\n"
        "import hwnas.space as old, hwnas.contracts.space as new\n"
        "from hwnas.searching import Search\n"
        "print(old is new, Search.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "warned: hwnas.space moved to hwnas.contracts.space" in out
    assert "True hwnas.nas." in out


def test_a_monkeypatch_through_the_old_path_reaches_the_new_module(monkeypatch):
    import hwnas.contracts.errors as new

    with pytest.warns(DeprecationWarning):
        importlib.import_module("hwnas.errors")
    monkeypatch.setattr("hwnas.errors.PLANTED", 1, raising=False)
    assert new.PLANTED == 1


def test_the_search_function_is_not_shadowed_by_a_subpackage():
    importlib.import_module("hwnas.nas.searching")
    assert callable(hwnas.search) and hwnas.search.__module__ == "hwnas.api"
