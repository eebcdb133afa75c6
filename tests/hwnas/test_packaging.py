"""Packaging: version ranges, one version number, and a plain install usable from the source tree.

The full check -- `pip install torch==2.13.0 .` into a fresh venv, then `hwnas` from any
folder and `python -m hwnas` from the repository root -- takes minutes and is done by
hand before a release (see the README); these are the fast parts of it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import hwnas

ROOT = Path(__file__).resolve().parents[2]


def test_dependencies_are_ranges_not_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [d for d in project["dependencies"] if "==" in d]
    assert pinned == []
    assert "torch>=2.5" in project["dependencies"] and "qai-hub>=0.56,<1" in project["dependencies"]
    assert project["dynamic"] == ["version"]


def test_the_readme_installs_the_cpu_torch_first_and_plainly():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install torch==2.13.0 ." in readme and "`-e` is for development only" in " ".join(readme.split())
    assert "pip install -q torch==2.13.0 -e '.[test,ray]'" in ci  # the suite tests the Ray executor for real


def test_ci_runs_the_readme_s_test_command_on_two_processes():
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("python3 -m venv .venv") and "pytest" in line)
    assert command in (ROOT / ".ci" / "run").read_text() and command.endswith("python -m pytest -n 2")
    test_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert any(d.startswith("pytest-xdist") for d in test_extra)  # `-n` is xdist's


def test_ray_is_an_optional_extra_and_the_lowest_versions_leave_it_out():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("ray")]
    assert project["optional-dependencies"]["ray"] == ["ray>=2.10"]
    assert not re.search(r"\bray\b", (ROOT / ".ci" / "lowest").read_text())


def test_the_source_tree_finds_the_plugins_of_an_installed_copy(tmp_path):
    """`python -m hwnas` in the repository root imports ./hwnas, which lacks backends/ and
    searchspaces/; the installed copy's are added to its package path."""
    installed = tmp_path / "site-packages" / "hwnas"
    for sub in ("backends", "searchspaces"):
        (installed / sub).mkdir(parents=True)
        (installed / sub / "__init__.py").write_text("")
    (installed / "__init__.py").write_text("")
    probe = "import hwnas; print(hwnas.__path__[0]); print(hwnas.__path__[-1])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site-packages")}, timeout=60)
    assert done.returncode == 0, done.stderr
    first, last = done.stdout.split()
    assert Path(first) == ROOT / "hwnas" and Path(last) == installed


def test_version_is_the_packages():
    from importlib.metadata import version

    assert version("hwnas") == hwnas.__version__


def test_the_package_ships_its_type_annotations():
    """PEP 561: `py.typed` in the package, and in what setuptools installs (package-data)."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in tool["package-data"]["hwnas"] and (ROOT / "hwnas" / "py.typed").is_file()


def test_the_api_functions_say_what_they_return():
    import inspect

    from hwnas import api

    for name in ("build_table", "search", "train", "evaluate", "export", "load", "predict"):
        assert inspect.signature(getattr(api, name)).return_annotation is not inspect.Signature.empty, name
