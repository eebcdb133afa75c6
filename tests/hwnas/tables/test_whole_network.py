"""The engine's whole-network mode (`hwnas.tables.whole_network`) over the `ProfilesLayers` protocol:
a backend's per-layer profiles attributed to units -- with a synthetic profiler (exact sums) and
with ONNX Runtime's real node profiler (`--mode whole-network`)."""

from __future__ import annotations

import pytest

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import Layer, LayerTimes, LatencyBackend, MeasurementError
from hwnas.contracts.plugins import get_space
from hwnas.tables.building import make_backend
from hwnas.tables.whole_network import measure_space

SIZE = 16
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def space():
    return get_space("nafnet-unet").from_options("tiny")


class Synthetic(LatencyBackend):
    """Profiles a network as one layer per position and fixed part, named by its module path, 1 µs per
    input channel of the position's shape times the candidate's index + 1 (so every row's time is known)."""

    name = "synthetic"
    Options = None  # type: ignore[assignment]
    device = "synthetic-device"

    def __init__(self, space, names="paths", to_median=1.0):
        self.space, self.names, self.to_median, self.requests = space, names, to_median, []

    def measure(self, units, on_result=None):
        raise AssertionError("whole-network mode does not measure units one by one")

    def runtime(self):
        return "synthetic whole-network"

    def whole_network(self):
        return True

    def profile_layers(self, networks):
        self.requests += networks
        out = []
        for n in networks:
            choice = n.key.split(":")[1].split("@")[0]
            layers = []
            for p in self.space.positions(SIZE):
                cand = choice if choice in p.candidates else p.candidates[0]
                us = p.input_shape[1] * (p.candidates.index(cand) + 1)
                name = f"/{p.path}/conv/Conv" if self.names == "paths" else f"layer{len(layers)}"
                layers.append(Layer(name, "Conv", "cpu", float(us)))
            layers += [Layer(f"/{u.path}/Conv", "Conv", "cpu", 7.0) for u in self.space.fixed_units(SIZE)]
            out.append(LayerTimes(layers, self.to_median, source="a synthetic profile"))
        return out


def test_layer_times_are_summed_per_unit_and_scaled_to_the_median(space):
    units = space.layout(SIZE).units
    backend = Synthetic(space, to_median=2.0)
    rows = backend.measure_space(space, SIZE, units)  # the contract's default hands it to the engine
    assert len(rows) == len(units) and len(backend.requests) == len({u.name for u in units if u.kind == "candidate"})
    positions = space.positions(SIZE)
    for m in rows:
        if m.kind == "candidate":
            p = next(p for p in positions if p.input_shape == m.input_shape and m.name in p.candidates)
            assert m.median_ms == pytest.approx(2.0 * p.input_shape[1] * (p.candidates.index(m.name) + 1) / 1000)
        else:
            assert m.median_ms == pytest.approx(2.0 * 7.0 / 1000)
        assert m.runtime == "synthetic whole-network" and m.device == "synthetic-device"


def test_layer_names_without_module_paths_are_refused(space):
    with pytest.raises(MeasurementError, match="a synthetic profile .* do not carry module paths; use --mode per-unit"):
        measure_space(Synthetic(space, names="opaque"), space, SIZE, space.layout(SIZE).units)


def test_a_backend_that_cannot_profile_layers_is_refused(space):
    with pytest.raises(HwnasError, match="the macs backend cannot profile a whole network per layer"):
        measure_space(make_backend("macs", {}), space, SIZE, space.layout(SIZE).units)


def test_onnxruntime_whole_network_mode_gives_every_unit_a_row(space):
    backend = make_backend("onnxruntime", {"mode": "whole-network", "runs": 3, "warmup": 1})
    units = space.layout(SIZE).units
    rows = backend.measure_space(space, SIZE, units)
    assert [(m.kind, m.name, m.input_shape) for m in rows] == [(u.kind, u.name, tuple(u.input_shape)) for u in units]
    assert all(m.median_ms > 0 for m in rows) and rows[0].runtime.endswith("whole-network")
    assert backend.settings()["mode"] == "whole-network"


def test_onnxruntime_whole_network_mode_is_fp32_only():
    with pytest.raises(HwnasError, match="whole-network mode profiles fp32 networks only"):
        make_backend("onnxruntime", {"mode": "whole-network", "precision": "int8"})
