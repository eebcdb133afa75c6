"""ONNX Runtime backend: real export, real sessions, interleaved timing in context, overhead, breakdown."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from pydantic import ValidationError
from torch import nn

from hwnas.backends import onnxruntime as ort_backend
from hwnas.tables.breakdown import attribute, summarise
from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions, _NodeNames, cpu_model
from hwnas.tables.building import build_table, make_backend
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, MeasurementError
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace
from hwnas.contracts.space import Architecture, Unit, freeze

SIZE = 32


@pytest.fixture(scope="module")
def tiny():
    return NAFNetUNetSpace.from_options("tiny")


@pytest.fixture(scope="module")
def backend():
    return OnnxRuntimeBackend(OnnxRuntimeOptions(runs=4, warmup=1))


def uniform(space, name):
    return freeze(space, Architecture.uniform(space.name, {p.label: p.candidates for p in space.positions(SIZE)}, name))


def test_device_is_this_cpu_and_cpu_is_the_only_target():
    here = f"cpu:{cpu_model()}"
    assert OnnxRuntimeBackend().device == here
    assert OnnxRuntimeOptions(device=here).device == "cpu"  # the recorded name is accepted back (--lut)
    with pytest.raises(ValidationError, match="not this machine's CPU"):
        OnnxRuntimeOptions(device="cpu:Some Other CPU")
    with pytest.raises(HwnasError, match=r"invalid backend_options\['device'\] for backend onnxruntime: .*cpu") as err:
        make_backend("onnxruntime", {"device": "sm8650"})
    assert err.value.cli.startswith("invalid --device for backend onnxruntime")
    with pytest.raises(HwnasError, match=r"invalid backend_options\['threads'\]"):
        make_backend("onnxruntime", {"threads": 0})


def test_measures_every_unit_once_in_order_with_a_spread(tiny, backend, monkeypatch):
    units = tiny.candidate_units(SIZE)[:3] + tiny.fixed_units(SIZE)[:1]
    exported = []
    real_export = ort_backend.OnnxRuntimeBackend._export
    monkeypatch.setattr(ort_backend.OnnxRuntimeBackend, "_export", lambda self, u, tmp: exported.append(u.name) or real_export(self, u, tmp))
    seen = []
    got = backend.measure(units + units[:2], on_result=seen.append)  # duplicates are measured once
    assert [(m.kind, m.name, m.input_shape) for m in got] == [(u.kind, u.name, u.input_shape) for u in units + units[:2]]
    assert len(exported) == len(seen) == 4
    for m in got:
        assert 0 < m.p10_ms <= m.median_ms <= m.p90_ms and m.runs == 6  # 4 rounded up to 3 passes of 2
        assert m.spread_pct is not None and m.spread_pct >= 0 and isinstance(m.noisy, bool)
        assert m.device == backend.device and m.runtime.startswith("onnxruntime ")
    protocol = backend.protocol()
    assert set(protocol["overhead_ms"]) == {"1x8x32x32", "1x3x32x32"} and all(0 < v < 1 for v in protocol["overhead_ms"].values())
    assert protocol["passes"] == 3 and set(protocol["load"]) >= {"load_1min_start", "other_processes_cores"}


def test_groups_bound_memory_and_save_as_they_finish(tiny, backend, monkeypatch, tmp_path):
    monkeypatch.setattr(ort_backend, "GROUP_UNITS", 5)
    calls = []
    table = build_table(tiny, SIZE, backend, tmp_path / "t.csv", on_progress=lambda m: calls.append(len(LatencyTable.load(tmp_path / "t.csv").frame)))
    assert len(table.frame) == 24
    assert calls == list(range(1, 25))  # each row is on disk when its progress is reported
    saved = LatencyTable.load(tmp_path / "t.csv")
    meta = saved.meta
    assert meta.settings["threads"] == 2 and meta.settings["allow_spinning"] is False
    assert meta.settings["protocol_version"] == ort_backend.PROTOCOL_VERSION
    assert meta.settings["runs"] == 4 and len(meta.settings["overhead_ms"]) == 5
    assert meta.settings["load"]["cores"] >= 1  # the machine's load while measuring
    assert {"spread_pct", "noisy"} <= set(saved.frame.columns) and saved.frame["spread_pct"].notna().all()
    assert "onnxruntime" in meta.versions and meta.device.startswith("cpu:")


def test_a_table_of_an_older_protocol_is_refused(tiny, backend, tmp_path):
    path = tmp_path / "old.csv"
    build_table(tiny, SIZE, backend, path)
    table = LatencyTable.load(path)
    del table.meta.settings["protocol_version"]  # as a table from before protocol versions
    table.save(path)
    with pytest.raises(HwnasError, match="timed by another protocol .version 1.*force=True"):  # build_table's parameter
        build_table(tiny, SIZE, backend, path)
    assert len(build_table(tiny, SIZE, backend, path, force=True).frame) == 24


def test_naf_costs_more_than_cbr_at_the_same_shape(tiny):
    # A loose, not a timing, assertion: naf does ~2x the MACs of cbr plus LayerNorm and attention.
    units = {u.name: u for u in tiny.candidate_units(64)[:4]}
    got = OnnxRuntimeBackend(OnnxRuntimeOptions(runs=15)).measure([units["naf"], units["cbr"]])
    assert got[0].median_ms > got[1].median_ms


def test_whole_network_measurement(tiny, backend):
    m = backend.measure_network(uniform(tiny, "cbr"), (1, 3, SIZE, SIZE))
    assert (m.kind, m.name, m.input_shape) == ("network", "network", (1, 3, SIZE, SIZE)) and m.median_ms > 0
    assert "1x3x32x32 single call" in backend.protocol()["overhead_ms"]  # a network: one call, minus a Shape-only one


def test_an_onnx_file_is_timed_like_a_network(tiny, backend, tmp_path):
    from hwnas.deploy.onnx_export import to_onnx

    path = to_onnx(uniform(tiny, "cbr"), (1, 3, SIZE, SIZE), tmp_path / "net.onnx", dynamic=True)
    m = backend.measure_onnx(path, (1, 3, SIZE, SIZE))  # free height and width come from the given shape
    assert (m.kind, m.name, m.input_shape) == ("network", "net", (1, 3, SIZE, SIZE)) and m.median_ms > 0
    with pytest.raises(HwnasError, match="leaves its input size free"):
        backend.measure_onnx(path)
    with pytest.raises(HwnasError, match="no ONNX file at"):
        backend.measure_onnx(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_text("not onnx")
    with pytest.raises(HwnasError, match="cannot load .*bad.onnx"):
        backend.measure_onnx(tmp_path / "bad.onnx", (1, 3, SIZE, SIZE))


def test_a_module_that_cannot_export_is_a_measurement_error(backend):
    class Broken(nn.Module):
        def forward(self, x):
            return torch.linalg.eigvals(x)  # no ONNX symbolic

    with pytest.raises(MeasurementError, match="cannot export candidate broken@1x2x2") as err:
        backend.measure([Unit("broken", (1, 2, 2), Broken())])
    assert "\n" not in str(err.value)


def test_breakdown_attributes_time_to_module_classes(tiny, backend):
    net = uniform(tiny, "naf")
    frame = attribute(backend.breakdown(net, (1, 3, SIZE, SIZE)), net)
    assert {"name", "op_type", "ms", "module", "group"} <= set(frame.columns) and (frame["ms"] >= 0).all()
    groups = summarise(frame)
    assert {"LayerNorm2d", "ChannelAttention", "SimpleGate", "Conv2d 1x1", "Conv2d 3x3 depthwise"} <= set(groups["group"])
    assert groups["share"].sum() == pytest.approx(100.0)
    layer_norm = frame[frame["group"] == "LayerNorm2d"]
    assert set(layer_norm["op_type"]) >= {"ReduceMean", "Sqrt"} and layer_norm["module"].str.endswith(("norm1", "norm2")).all()
    # Convs the runtime fused with the Mul after them are still the convs, not the block's own ops.
    assert not ((frame["group"] == "NAFBlock (own ops)") & (frame["op_type"] == "Conv")).any()
    assert frame.attrs["run_ms"] > 0


def test_breakdown_of_a_network_without_custom_modules(backend):
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    groups = set(summarise(attribute(backend.breakdown(net, (1, 3, 16, 16)), net))["group"])
    assert groups & {"Conv2d 3x3", "Conv2d 3x3 depthwise"} and not any("Sequential" in g for g in groups)


def test_runtime_names_map_back_to_exported_nodes():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2, 1, 1], np.ones(4, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["/blk/conv3/Conv_output_0"], name="/blk/conv3/Conv"),
         helper.make_node("Mul", ["/blk/conv3/Conv_output_0", "x"], ["/blk/Mul_output_0"], name="/blk/Mul"),
         helper.make_node("Slice", ["/blk/Mul_output_0"], ["y"], name="/blk/sg/Slice_1")],
        "g", [x], [y], [w])
    names = _NodeNames(onnx.helper.make_model(graph).graph)
    assert names.original("/blk/Mul", "Mul") == "/blk/Mul"
    assert names.original("/blk/Mul_output_0_nchwc", "Conv") == "/blk/conv3/Conv"  # a Conv fused with its Mul
    assert names.original("/blk/sg/Slice_1/GatherSliceToSplitFusion", "Split") == "/blk/sg/Slice_1"
    assert names.original("ReorderOutput_token_7", "ReorderOutput") == "ReorderOutput_token_7"


def test_int8_units_are_timed_with_8_bit_boundaries_and_a_protocol_of_their_own(tiny, monkeypatch):
    """issue 24: an int8 unit's input and output stay 8-bit (its neighbours' kernels quantise them in a
    network), its overhead probe takes the same 8-bit input, and its table is of protocol 3."""
    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(runs=3, warmup=1, precision="int8"))
    sessions = []
    real_session = ort_backend.OnnxRuntimeBackend._session
    monkeypatch.setattr(ort_backend.OnnxRuntimeBackend, "_session",
                        lambda self, model, unit, so=None, keep=False: sessions.append(real_session(self, model, unit, so, keep)) or sessions[-1])
    unit = tiny.candidate_units(SIZE)[0]
    assert backend.measure([unit])[0].median_ms > 0
    timed = lambda: [(s.get_inputs()[0].type, s.get_outputs()[0].type) for s in sessions  # noqa: E731
                     if s.get_outputs()[0].type != "tensor(int64)"]  # not the Shape-only probes
    assert timed() == [("tensor(uint8)", "tensor(uint8)")]
    assert set(backend.protocol()["overhead_ms"]) == {"1x8x32x32 uint8"}
    assert backend.settings()["protocol_version"] == ort_backend.INT8_PROTOCOL_VERSION != ort_backend.PROTOCOL_VERSION
    assert backend.measure_network(uniform(tiny, "cbr"), (1, 3, SIZE, SIZE)).median_ms > 0
    assert timed()[1:] == [("tensor(float)", "tensor(float)")]  # a whole network keeps its float input and output
