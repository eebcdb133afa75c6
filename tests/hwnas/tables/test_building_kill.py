"""A `hwnas build-lut` killed with SIGKILL mid-way keeps every row it measured, and the rerun measures only the rest.

The backend is a slow, deterministic plugin installed through a temporary .dist-info
entry point (as a user's would be): it sleeps per unit and, once the table has the
unit's row (`on_result` returned), leaves a marker file naming the unit.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hwnas.tables.building import table_units, unit_key
from hwnas.contracts.latency import LatencyTable
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace

PLUGIN = '''
import os
import time
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from hwnas.contracts.latency import LatencyBackend, Measurement


class SlowOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    device: str = "slow-board"


class SlowBackend(LatencyBackend):
    """Sleeps SLOW_DELAY_S per unit; latency = a function of the unit's key; a marker per saved unit."""

    name: ClassVar[str] = "slow-test"
    Options: ClassVar[type[BaseModel]] = SlowOptions

    @property
    def device(self) -> str:
        return self.options.device

    def measure(self, units, on_result=None):
        out = []
        for unit in units:
            time.sleep(float(os.environ.get("SLOW_DELAY_S", "0")))
            shape = "x".join(map(str, unit.input_shape))
            ms = 1.0 + len(unit.name) + sum(unit.input_shape) / 1000
            m = Measurement(kind=unit.kind, name=unit.name, input_shape=tuple(unit.input_shape), median_ms=ms,
                            p10_ms=ms, p90_ms=ms, runs=1, device=self.device, runtime="slow")
            if on_result:
                on_result(m)
            (Path(os.environ["SLOW_MARKERS"]) / f"{unit.kind}|{unit.name}|{shape}").touch()
            out.append(m)
        return out
'''

SIZE = 32


def plugin_env(tmp_path: Path, markers: Path, delay: float) -> dict:
    site = tmp_path / "site"
    if not site.exists():
        info = site / "slow_test_plugin-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-test-plugin\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[hwnas.backends]\nslow-test = slow_backend:SlowBackend\n")
        (site / "slow_backend.py").write_text(PLUGIN)
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "SLOW_MARKERS": str(markers), "SLOW_DELAY_S": str(delay), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return env


def build_lut(path: Path) -> list[str]:
    return [sys.executable, "-m", "hwnas", "build-lut", "--backend", "slow-test", "--preset", "tiny",
            "--image-size", str(SIZE), "--out", str(path), "--json"]


def marked(folder: Path) -> set[tuple[str, str, str]]:
    return {tuple(p.name.split("|")) for p in folder.iterdir()}


def test_a_killed_build_keeps_its_rows_and_the_rerun_measures_only_the_rest(tmp_path):
    path = tmp_path / "slow.csv"
    first = tmp_path / "first"
    env = plugin_env(tmp_path, first, delay=0.3)
    proc = subprocess.Popen(build_lut(path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and len(list(first.iterdir())) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the build ended before it could be killed"

    saved = marked(first)
    assert len(saved) >= 3
    partial = LatencyTable.load(path)  # the table loads: nothing half-written
    rows = set(zip(partial.frame["kind"], partial.frame["name"], partial.frame["input_shape"]))
    assert saved <= rows  # every unit measured before the kill is still there
    space = NAFNetUNetSpace.from_options("tiny")
    wanted = {unit_key(u) for u in table_units(space, SIZE, meta=True)}
    assert rows < wanted

    second = tmp_path / "second"
    env = plugin_env(tmp_path, second, delay=0.0)
    done = subprocess.run(build_lut(path), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    again = marked(second)
    assert again == wanted - rows  # only the rest, nothing twice
    assert json.loads(done.stdout)["measured"] == len(wanted) - len(rows)
    whole = LatencyTable.load(path)
    assert set(zip(whole.frame["kind"], whole.frame["name"], whole.frame["input_shape"])) == wanted
    assert len(whole.frame) == len(wanted)
