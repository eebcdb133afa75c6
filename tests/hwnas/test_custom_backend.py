"""A backend defined in user code, registered through the `hwnas.backends` entry-point group,
used by `hwnas build-lut` without touching hwnas (examples/custom_backend.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.cli import main
from hwnas.tables.cost import count_macs
from hwnas.contracts.latency import LatencyTable
from hwnas.contracts.plugins import backend_names, get_backend
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """An installed distribution in miniature: a .dist-info declaring the entry point."""
    site = tmp_path_factory.mktemp("site")
    info = site / "stub_device_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stub-device-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hwnas.backends]\nstub-device = custom_backend:StubDeviceBackend\n")
    return site


def test_build_lut_with_the_plugin_on_pythonpath(plugin_site, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_site), str(EXAMPLES), env.get("PYTHONPATH", "")])
    path = tmp_path / "stub.csv"
    out = subprocess.run(
        [sys.executable, "-m", "hwnas", "build-lut", "--backend", "stub-device", "--preset", "tiny", "--image-size", "32",
         "--device", "board-7", "-b", "ms_per_gmac=3", "--out", str(path), "--json"],
        capture_output=True, text=True, env=env,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["measured"] == 24
    table = LatencyTable.load(path)
    assert (table.meta.backend, table.meta.device, table.meta.settings["ms_per_gmac"]) == ("stub-device", "board-7", 3.0)
    space = NAFNetUNetSpace.from_options("tiny")
    for u in space.candidate_units(32) + space.fixed_units(32):
        assert table.ms(u.name, u.input_shape, kind=u.kind) == pytest.approx(count_macs(u.module, u.input_shape) / 1e9 * 3)


def test_listed_and_its_options_checked(plugin_site, monkeypatch, capsys, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.syspath_prepend(str(plugin_site))
    assert "stub-device" in backend_names()
    assert get_backend("stub-device").__name__ == "StubDeviceBackend"
    monkeypatch.setattr(sys, "argv", ["hwnas", "build-lut", "--backend", "stub-device", "--threads", "2", "--out", str(tmp_path / "x.csv")])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    assert "--threads does not apply to backend stub-device" in capsys.readouterr().err
