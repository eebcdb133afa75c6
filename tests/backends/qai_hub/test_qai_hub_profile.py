"""Parsing AI Hub profiles and attributing layer times (pure; profiles of the documented shape).

The dicts are made by the client's own converter from `ProfileDetail` protobufs, so
they have exactly the schema `download_profile()` returns.
"""

from __future__ import annotations

import numpy as np
import pytest
from qai_hub import public_api_pb2 as pb
from qai_hub.client import _profile_pb_to_python_dict

from hwnas.backends import qai_hub_profile as hp
from hwnas.contracts.latency import MeasurementError


def profile(execution_time=3652, times=(10003, 4205), peak=166711296, peak_range=None, minor=8, layers=()):
    detail = pb.ProfileDetail(major_version=1, minor_version=minor, execution_time=execution_time, after_execution_peak_memory=peak)
    detail.all_execution_times.extend(times)
    if peak_range:
        detail.execution_memory.peak.lower, detail.execution_memory.peak.upper = peak_range
    for name, op_type, t in layers:
        row = pb.LayerDetail(name=name, layer_type_name=op_type, compute_unit=pb.COMPUTE_UNIT_NPU)
        if t is not None:
            row.execution_time = t
        detail.layer_details.append(row)
    return _profile_pb_to_python_dict(detail)


def measure(p):
    return hp.measurement(p, kind="candidate", name="naf", input_shape=(1, 8, 16, 16), device="sm8650", runtime="r")


def test_summary_is_converted_from_microseconds():
    m = measure(profile())  # the client's own test profile: 3652 us estimated, iterations 10003 (cold) and 4205
    assert m.median_ms == m.p10_ms == m.p90_ms == pytest.approx(4.205) and m.runs == 1
    assert m.service_ms == pytest.approx(3.652) and m.peak_memory_bytes == 166711296
    assert (m.kind, m.name, m.input_shape, m.device, m.runtime) == ("candidate", "naf", (1, 8, 16, 16), "sm8650", "r")


def test_p10_median_and_p90_come_from_the_same_warm_iterations():
    times = (9000, 3500, 3700, 3600, 3900, 3550, 4100, 3650, 3580, 3620, 3700)
    p = profile(execution_time=3400, times=times)
    m = measure(p)
    warm = np.array(times[1:]) / 1000
    assert (m.p10_ms, m.median_ms, m.p90_ms) == pytest.approx(tuple(np.percentile(warm, [10, 50, 90])))
    assert m.p10_ms <= m.median_ms <= m.p90_ms and m.runs == 10 and m.service_ms == pytest.approx(3.4)
    assert hp.timing(p, "x").used == "iterations 2-11 of 11 (first 1 cold, dropped)"
    assert measure_all(p).runs == 11 and hp.timing(p, "x", cold=0).used == "iterations 1-11 of 11"


def measure_all(p):
    return hp.measurement(p, kind="candidate", name="naf", input_shape=(1, 8, 16, 16), device="sm8650", runtime="r", cold=0)


@pytest.mark.parametrize("times", [(), (5000,)])
def test_without_warm_iteration_times_the_service_estimate_is_used_and_said(times):
    p = profile(minor=1 if not times else 8, times=times)  # format 1.1 has no all_inference_times
    m = measure(p)
    assert m.p10_ms == m.p90_ms == m.median_ms == m.service_ms == pytest.approx(3.652) and m.runs == 1
    assert hp.timing(p, "x").used.startswith("service estimate estimated_inference_time (")


def test_peak_memory_falls_back_to_the_range_then_to_none():
    assert measure(profile(peak=0, peak_range=(1000, 5000))).peak_memory_bytes == 5000
    assert measure(profile(peak=0)).peak_memory_bytes is None


@pytest.mark.parametrize("bad", [0, None])
def test_a_missing_time_is_an_error_never_a_number(bad):
    p = profile(minor=1, times=())  # no iteration times either
    p["execution_summary"]["estimated_inference_time"] = bad
    with pytest.raises(MeasurementError, match="no inference time"):
        measure(p)
    with pytest.raises(MeasurementError):
        measure({})
    p = profile()
    p["execution_summary"]["estimated_inference_time"] = bad
    m = measure(p)  # the warm iterations are the statistic; the service's figure is simply absent
    assert m.median_ms == pytest.approx(4.205) and m.service_ms is None


def test_layers_keep_missing_times_missing():
    rows = hp.layers(profile(layers=[("a", "Conv", 7), ("b", "Relu", None)]))
    assert rows == [hp.Layer("a", "Conv", "NPU", 7.0), hp.Layer("b", "Relu", "NPU", None)]


@pytest.mark.parametrize("name", ["/enc0/enc0.0/conv1/Conv", "_enc0_enc0_0_conv1_Conv", "enc0/enc0.0/conv1/Conv;enc0/enc0.0/relu"])
def test_exported_and_converted_names_find_their_position(name):
    assert hp.owner(name, ["enc0.0", "enc1.0", "enc0", "down0"]) == "enc0.0"  # innermost path wins over enc0


def test_paths_match_whole_name_parts_only():
    paths = ["mid.1", "mid.10", "up0", "dec0.0"]
    assert hp.owner("_mid_mid_10_conv1_Conv", paths) == "mid.10"
    assert hp.owner("/mid/mid.1/conv1/Conv", paths) == "mid.1"
    assert hp.owner("/up0/conv/Conv", paths) == "up0"
    assert hp.owner("/dec0/dec0.0/Add", paths) == "dec0.0"
    assert hp.owner("/Pad", paths) is None and hp.owner("_Add_3", paths) is None


def test_attribution_sums_layer_times_per_path():
    rows = hp.layers(profile(layers=[
        ("_intro_Conv", "Conv", 40), ("_enc0_enc0_0_conv1_Conv", "Conv", 30), ("_enc0_enc0_0_Add", "Add", 5),
        ("_Pad", "Pad", 3), ("_enc0_enc0_0_relu", "Relu", None),
    ]))
    found = hp.attribute(rows, ["intro", "enc0.0", "ending"])
    assert found.time_us == {"intro": 40.0, "enc0.0": 35.0, "ending": 0.0}
    assert found.layer_count == {"intro": 1, "enc0.0": 3, "ending": 0}
    assert found.unattributed_us == 3.0 and found.untimed == 1


def test_layer_time_ratio_and_op_types():
    p = profile(execution_time=100, layers=[("a", "Conv", 40), ("b", "Conv", 20), ("c", "ReduceMean", 30), ("d", "Relu", None)])
    assert hp.layer_time_ratio(p) == pytest.approx(0.9)
    assert hp.layer_time_ratio(profile()) is None
    assert hp.op_type_ms(hp.layers(p)) == {"Conv": pytest.approx(0.06), "ReduceMean": pytest.approx(0.03)}


def test_converted_layer_names_map_back_to_exported_nodes():
    exported = {hp.normalise(n): n for n in ["/enc0/enc0.0/conv1/Conv", "/enc0/enc0.0/conv1/Conv_1", "/Pad"]}
    assert hp.exported_name("_enc0_enc0_0_conv1_Conv", exported) == "/enc0/enc0.0/conv1/Conv"
    assert hp.exported_name("_enc0_enc0_0_conv1_Conv_1", exported) == "/enc0/enc0.0/conv1/Conv_1"
    assert hp.exported_name("_enc0_enc0_0_conv1_Conv_post_reshape", exported) == "/enc0/enc0.0/conv1/Conv"
    assert hp.exported_name("layout_transform_17", exported) == "layout_transform_17"
