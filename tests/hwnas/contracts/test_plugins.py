from __future__ import annotations

import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hwnas.contracts import plugins
from hwnas.contracts.errors import HwnasError

ROOT = Path(__file__).resolve().parents[3]


def test_entry_points_find_the_nafnet_space():
    assert "nafnet-unet" in plugins.space_names()
    assert plugins.get_space("nafnet-unet").name == "nafnet-unet"


def test_unknown_names_are_one_line():
    with pytest.raises(HwnasError, match="unknown search space 'nope'; pass space with one of") as err:
        plugins.get_space("nope")
    assert err.value.cli.startswith("unknown search space 'nope'; pass --space with one of")  # on the command line
    with pytest.raises(HwnasError, match="unknown latency backend 'nope'; pass backend with one of"):
        plugins.get_backend("nope")


def test_custom_space_example_runs_without_touching_hwnas():
    result = runpy.run_path(str(ROOT / "examples" / "custom_space.py"))["main"]()
    assert result["positions"] == ["body.0", "body.1"]
    assert result["output_shape"] == [1, 3, 32, 32]
    assert "tiny-conv" in plugins.space_names()  # registered explicitly, not by import side effect


def test_a_space_packaged_by_a_third_party_is_discovered_through_its_entry_point(tmp_path):
    """A real distribution on sys.path declaring an `hwnas.searchspaces` entry point."""
    (tmp_path / "thirdparty_space.py").write_text(
        (ROOT / "examples" / "custom_space.py").read_text()
    )
    dist = tmp_path / "thirdparty_space-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-space\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hwnas.searchspaces]\ntiny-conv = thirdparty_space:TinyConvSpace\n")
    code = textwrap.dedent(
        """
        import json, sys
        sys.argv = ["hwnas", "describe", "--space", "tiny-conv", "--image-size", "16", "--json"]
        from hwnas.cli import main
        main()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": ""}, check=True
    )
    import json

    report = json.loads(out.stdout)
    assert [p["label"] for p in report["positions"]] == ["body.0", "body.1", "body.2"]
