"""The AI Hub backend against a fake service behind the real client (see conftest.py).

Every number asserted here comes from the fake's synthetic responses; none is a
measurement of any device.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import requests
from qai_hub.public_rest_api import APIException

from hwnas.backends.qai_hub import AUTH_FAILED, NOT_CONFIGURED, QaiHubBackend, QaiHubOptions
from hwnas.contracts.errors import HwnasError, ServiceError
from hwnas.contracts.latency import MeasurementError, shape_str

SIZE = 16


@pytest.fixture(scope="module")
def units(tiny_space):
    return tiny_space.candidate_units(SIZE) + tiny_space.fixed_units(SIZE)


def test_per_unit_submits_everything_then_reads_the_profiles(make_backend, fake_hub, units):
    backend = make_backend()
    book, saved, delivered = {}, [], []
    backend.attach(book, lambda: saved.append({k: dict(v) for k, v in book.items()}))
    shapes = {shape_str(u.input_shape) for u in units}  # one overhead probe per input shape
    assert backend.planned_jobs(units) == 2 * (len(units) + len(shapes))

    results = backend.measure(units, delivered.append)

    assert results == delivered and len(results) == len(units)
    compiles, profiles = fake_hub.created("create_compile_job"), fake_hub.created("create_inference_job")
    assert len(compiles) == len(profiles) == len(fake_hub.created("upload")) == len(units) + len(shapes)
    first_result = next(i for i, (name, _) in enumerate(fake_hub.calls) if name == "get_job_results")
    last_submit = max(i for i, (name, _) in enumerate(fake_hub.calls) if name.startswith("create_"))
    assert last_submit < first_result  # all jobs submitted before any result is read
    by_profile = {entry["profile"]: key for key, entry in book.items()}
    for m in results:
        job = next(j for j, key in by_profile.items() if key == f"{m.kind}:{m.name}@{shape_str(m.input_shape)}")
        detail = fake_hub.profiles[job]
        probe = book[f"probe@{shape_str(m.input_shape)}"]  # the do-nothing graph at the unit's input, subtracted
        warm = list(detail.all_execution_times)[1:]  # the first, cold iteration is left out
        expected = np.percentile(warm, [10, 50, 90]) / 1000 - probe["overhead_ms"]
        assert (m.p10_ms, m.median_ms, m.p90_ms) == pytest.approx(tuple(expected))
        assert m.p10_ms <= m.median_ms <= m.p90_ms and m.runs == len(warm)
        assert m.service_ms == pytest.approx(detail.execution_time / 1000 - probe["service_ms"])  # the service's estimate, alike
        assert m.peak_memory_bytes == detail.execution_memory.peak.upper
        assert (m.device, m.runtime) == ("sm8650", "qai-hub 0.56.0 qnn_context_binary npu")
    assert all(entry["state"] == "done" for entry in book.values())
    assert {entry["used"] for entry in book.values()} == {"iterations 2-6 of 6 (first 1 cold, dropped)"}
    assert backend.protocol()["overhead_ms"] == {shape: book[f"probe@{shape}"]["overhead_ms"] for shape in shapes}


def test_jobs_carry_the_options_and_a_real_export(make_backend, fake_hub, units):
    backend = make_backend(target_runtime="tflite", compute_unit="gpu", max_profiler_iterations=7)
    unit = units[0]
    [m] = backend.measure([unit])
    compile_job = next(e["pb"] for e in fake_hub.jobs.values() if e["kind"] == "compile" and "candidate" in e["pb"].name)
    profile_job = next(e["pb"] for e in fake_hub.jobs.values() if e["kind"] == "profile" and "candidate" in e["pb"].name)
    assert compile_job.options == "--target_runtime tflite --compute_unit gpu"
    assert profile_job.options == "--compute_unit gpu --max_profiler_iterations 7"
    assert set(fake_hub.created("get_device_list")) == {"Samsung Galaxy S24 (Family)"}  # sm8650 -> the S24
    assert compile_job.device.name == "Samsung Galaxy S24 (Family)"
    assert [d for d in compile_job.tensor_type_list.types[0].tensor_type.shape] == list(unit.input_shape)
    uploaded = next(m for m in fake_hub.models.values() if "candidate" in m["name"])
    assert uploaded["input"] == list(unit.input_shape) and any(op == "Conv" for _, op in uploaded["nodes"])
    probe = next(m for m in fake_hub.models.values() if "probe" in m["name"])  # the do-nothing graph: one Relu
    assert probe["input"] == list(unit.input_shape) and [op for _, op in probe["nodes"]] == ["Relu"]
    assert m.runtime == "qai-hub 0.56.0 tflite gpu"


def test_recorded_profile_numbers_are_converted_to_ms(make_backend, fake_hub, units):
    # the summary of the client's own test profile (format 1.8): 3652 us, two iterations
    fake_hub.recorded["intro"] = {"execution_time": 3652, "all_execution_times": [10003, 4205], "after_execution_peak_memory": 166711296}
    fake_hub.recorded["overhead probe"] = {"execution_time": 152, "all_execution_times": [900, 160]}
    [m] = make_backend().measure([u for u in units if u.name == "intro"])
    assert m.median_ms == m.p10_ms == m.p90_ms == pytest.approx(4.205 - 0.160) and m.runs == 1  # warm, less the probe's
    assert m.service_ms == pytest.approx(3.652 - 0.152) and m.peak_memory_bytes == 166711296


@pytest.mark.parametrize("runtime, names", [("qnn_context_binary", ("naf", "cbr")), ("tflite", ("naf_bn",))])  # QNN rewrites names
def test_whole_network_attributes_layer_times_to_positions(make_backend, fake_hub, tiny_space, units, runtime, names):
    candidates = len(names)
    units = [u for u in units if u.kind == "fixed" or u.name in names]
    backend = make_backend(mode="whole-network", target_runtime=runtime)
    assert backend.planned_jobs(units) == 2 * candidates  # one network per candidate
    results = backend.measure_space(tiny_space, SIZE, units)

    assert len(results) == len(units) and len(fake_hub.created("create_compile_job")) == candidates
    positions = tiny_space.positions(SIZE)
    fixed = tiny_space.fixed_units(SIZE)
    for m in results:
        samples = []
        for name, nodes, scale in _networks(fake_hub):
            if m.kind == "candidate" and f"-{m.name}-" not in name:
                continue
            if m.kind == "candidate":
                paths = [p.path for p in positions if p.input_shape == m.input_shape]
            else:
                paths = [u.path for u in fixed if (u.name, u.input_shape) == (m.name, m.input_shape)]
            timed = [(node, op) for node, op in nodes if op not in fake_hub.folded_ops]
            samples += [scale * sum(fake_hub.layer_time_us(op) for node, op in timed if _within(node, path)) / 1000
                        for path in paths]
        assert samples and all(t > 0 for t in samples)
        assert m.median_ms == pytest.approx(float(np.median(samples))), (m.name, m.input_shape)
        assert m.runtime.endswith("whole-network") and m.peak_memory_bytes is None
    enc, dec = (p for p in positions if p.input_shape == (1, 8, SIZE, SIZE))  # enc0.0 and dec0.0 share a row
    assert (enc.label, dec.label) == ("enc0.0", "dec0.0")


def _networks(fake_hub):
    """(uploaded name, nodes, median / fastest warm iteration) of each profiled network: per-layer times are
    minima over iterations, scaled to the network's median so rows compare with measured networks."""
    for entry in fake_hub.jobs.values():
        if entry["kind"] == "profile":
            model = fake_hub.models[entry["pb"].model.model_id]
            warm = list(fake_hub.profiles[entry["pb"].inference_job_id].all_execution_times)[1:]
            yield model["name"], model["nodes"], float(np.median(warm)) / min(warm)


def _within(node: str, path: str) -> bool:
    """Whether an exported node belongs to the module at `path` or one inside it: the exporter
    names nodes by module path ('/enc0.0.conv1/Conv', '/enc0.0/Add' are in 'enc0.0')."""
    return node.startswith((f"/{path}/", f"/{path}."))


def test_whole_network_refuses_names_without_module_paths(make_backend, fake_hub, tiny_space, units):
    fake_hub.opaque_layer_names = True
    with pytest.raises(MeasurementError, match="do not carry module paths; use --mode per-unit"):
        make_backend(mode="whole-network").measure_space(tiny_space, SIZE, units[:1])


def test_whole_network_refuses_profiles_without_layer_times(make_backend, fake_hub, tiny_space, units):
    fake_hub.untimed_layers = True
    with pytest.raises(MeasurementError, match="no per-layer execution_time"):
        make_backend(mode="whole-network").measure_space(tiny_space, SIZE, units[:1])


@pytest.mark.parametrize("polls", [2, 4])  # compile failed before / after its profile job was queued
def test_failed_compile_job_names_unit_job_and_message(make_backend, fake_hub, units, polls):
    fake_hub.polls_to_finish = polls
    fake_hub.compile_failures["'naf_bn'"] = "Failed to compile: op LayerNorm is not supported by QNN"
    backend = make_backend()
    book, delivered = {}, []
    backend.attach(book, lambda: None)
    chosen = [u for u in units[:4]]
    with pytest.raises(MeasurementError) as caught:
        backend.measure(chosen, delivered.append)
    message = str(caught.value)
    failed = next(key for key, entry in book.items() if entry["state"] == "failed")
    assert "compile job" in message and book[failed]["compile"] in message and "naf_bn" in message
    assert "op LayerNorm is not supported by QNN" in message and "\n" not in message
    assert len(delivered) == 3  # the others are kept, never a number for the failure
    assert sorted(e["state"] for k, e in book.items() if not k.startswith("probe@")) == ["done"] * 3 + ["failed"]
    assert (book[failed]["profile"] is not None) == (polls > 2)  # queued on the seeded target model, then failed


def test_failed_profile_job_reports_its_message(make_backend, fake_hub, units):
    fake_hub.profile_failures["'cbr'"] = "Failed to profile the model: device disconnected"
    backend = make_backend()
    with pytest.raises(MeasurementError, match=r"AI Hub profile job jp\d+ for candidate 'cbr' .* device disconnected"):
        backend.measure([u for u in units if u.name == "cbr"][:1])


def test_authentication_failure_is_one_line_without_the_token(make_backend, fake_hub, units, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake_hub.errors["get_device_list"] = [APIException(status_code=401, url=f"{fake_hub.api_url}/api/v1/devices/")]
    with pytest.raises(HwnasError) as caught:
        make_backend().measure(units[:1])
    assert str(caught.value) == AUTH_FAILED
    _assert_token_hidden(fake_hub.token, caught.value, caplog, capsys)


def test_rate_limit_is_retried_with_backoff(make_backend, fake_hub, units, capsys):
    url = f"{fake_hub.api_url}/api/v1/jobs/"
    fake_hub.errors["create_compile_job"] = [APIException(status_code=429, url=url), APIException(status_code=429, url=url)]
    [m] = make_backend(poll_s=1).measure(units[:1])
    assert m.median_ms > 0
    assert fake_hub.sleeps[:2] == [10.0, 20.0]  # back-off before the job was created
    assert len(fake_hub.created("create_compile_job")) == 3 + 1  # the overhead probe's, tried thrice; the unit's
    assert capsys.readouterr().out == ""  # the client's own retry (which prints) was not used


def test_connection_errors_end_in_one_line_after_bounded_retries(make_backend, fake_hub, units, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake_hub.errors["get_device_list"] = [requests.exceptions.ConnectionError("Connection refused")] * 10
    with pytest.raises(ServiceError) as caught:  # exit 3, not a usage error
        make_backend().measure(units[:1])
    message = str(caught.value)
    assert message.startswith(f"cannot reach Qualcomm AI Hub at {fake_hub.api_url} while looking up device 'sm8650' "
                              "(6 tries in 60 s); check the network") and "\n" not in message
    assert fake_hub.sleeps == [2.0, 4.0, 8.0, 16.0, 30.0] and sum(fake_hub.sleeps) <= 60  # within retry_budget_s
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "retrying for up to 60 s" in warnings[0].getMessage()  # one line, not one per try
    assert not fake_hub.created("upload")
    _assert_token_hidden(fake_hub.token, caught.value, caplog, capsys)


def test_the_clients_own_retries_are_off_during_each_call_and_restored_after(make_backend, fake_hub, units):
    from qai_hub.util import session

    seen = []
    real = fake_hub.get_device_list

    def watch(*args, **kwargs):
        seen.append(session.MAX_RETRIES)
        return real(*args, **kwargs)

    fake_hub.get_device_list = watch
    import qai_hub.public_rest_api as rest

    rest.get_device_list = watch  # the fake is patched in; this test watches it (monkeypatch restores it)
    before = session.MAX_RETRIES
    make_backend().measure(units[:1])
    assert seen and set(seen) == {0} and session.MAX_RETRIES == before == 6


def test_a_submission_that_cannot_connect_is_not_retried(make_backend, fake_hub, units):
    fake_hub.errors["create_compile_job"] = [requests.exceptions.ConnectionError("reset")]
    with pytest.raises(HwnasError, match=r"\(1 try in 0 s\)"):
        make_backend().measure(units[:1])
    assert fake_hub.sleeps == []  # a job may exist: rerunning re-attaches


@pytest.mark.parametrize("detail", ['{"detail": "This version of qai_hub is no longer supported."}', None])
def test_a_client_too_old_for_the_service_says_upgrade(make_backend, fake_hub, units, detail):
    fake_hub.errors["get_device_list"] = [APIException(detail, status_code=426, url=f"{fake_hub.api_url}/api/v1/devices/")]
    with pytest.raises(HwnasError) as caught:
        make_backend().measure(units[:1])
    assert str(caught.value) == ("AI Hub no longer accepts this qai-hub client (0.56.0): upgrade qai-hub "
                                 "(`pip install -U qai-hub`) and run the same command again.")


def test_boxed_client_messages_become_one_readable_line():
    from qai_hub.client import _visible_textbox

    from hwnas.backends.qai_hub import one_line

    text = "Failed to load configuration file.\n" + _visible_textbox(
        "Your API token is missing. Please go to your Account page to view your current token: https://x/account/.")
    assert "┌" in text and text.count("\n") >= 4
    assert one_line(text) == ("Failed to load configuration file. Your API token is missing. Please go to your Account page "
                              "to view your current token: https://x/account/.")
    assert one_line("╭──╮\n│ a │\n╰──╯") == "a"


def test_a_boxed_refusal_is_one_line_with_its_words(make_backend, fake_hub, units):
    fake_hub.errors["get_device_list"] = [APIException('{"detail": "Your organisation has no access to this device family."}',
                                                       status_code=403, url=f"{fake_hub.api_url}/api/v1/devices/")]
    with pytest.raises(HwnasError) as caught:
        make_backend().measure(units[:1])
    assert str(caught.value) == ("AI Hub refused looking up device 'sm8650': Your organisation has no access to this "
                                 "device family.")


def test_unknown_device_is_one_line_naming_it(make_backend, fake_hub, units):
    with pytest.raises(HwnasError) as caught:
        make_backend(device="Nokia 3310").measure(units[:1])
    message = str(caught.value)
    assert "Nokia 3310" in message and "qai-hub list-devices" in message and "\n" not in message
    assert not fake_hub.created("upload")


def test_device_names_and_attributes(make_backend):
    assert make_backend().device == "sm8650"
    assert make_backend(device="SM8650").device_spec() == ("Samsung Galaxy S24 (Family)", ("chipset:qualcomm-snapdragon-8gen3",))
    assert make_backend(device="QCS8550 (Proxy)").device_spec() == ("QCS8550 (Proxy)", ())
    chip = make_backend(device="chipset:qualcomm-qcs8550-proxy, os:android")
    assert chip.device_spec() == ("", ("chipset:qualcomm-qcs8550-proxy", "os:android"))


def test_attribute_device_is_accepted(make_backend, fake_hub, units):
    [m] = make_backend(device="chipset:qualcomm-qcs8550-proxy").measure(units[:1])
    assert m.device == "chipset:qualcomm-qcs8550-proxy"
    assert next(e["pb"] for e in fake_hub.jobs.values()).device.name == "QCS8550 (Proxy)"


@pytest.mark.parametrize("content", [None, "[api]\napi_url = https://x\nweb_url = https://x\n", "[api]\napi_token =\napi_url = a\nweb_url = b\n"])
def test_missing_configuration_stops_before_any_export(tmp_path, monkeypatch, no_network, units, content):
    ini = tmp_path / "client.ini"
    if content is not None:
        ini.write_text(content)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    monkeypatch.setattr("hwnas.deploy.onnx_export.to_onnx", lambda *a, **k: pytest.fail("exported before checking the configuration"))
    backend = QaiHubBackend(QaiHubOptions())
    with pytest.raises(HwnasError) as caught:
        backend.check_configured()
    assert str(caught.value) == NOT_CONFIGURED
    with pytest.raises(HwnasError, match="AI Hub is not configured"):
        backend.measure(units[:1])


def test_a_configured_client_file_is_accepted(tmp_path, monkeypatch, no_network):
    from hwnas.backends.qai_hub import load_config

    ini = tmp_path / "client.ini"
    ini.write_text("[api]\napi_token = tok-123\napi_url = https://example.invalid\nweb_url = https://example.invalid\nverbose = True\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    backend = QaiHubBackend(QaiHubOptions())
    backend.check_configured()
    hub = backend._hub()
    assert hub.config.api_url == "https://example.invalid" and hub.verbose is False
    assert load_config().api_token == "tok-123"  # progress printing off: stdout stays clean


def test_interrupted_build_reattaches_instead_of_resubmitting(make_backend, fake_hub, units):
    chosen = units[:3]
    book = {}
    fake_hub.stall = True
    first = make_backend(timeout_s=60, poll_s=20)
    first.attach(book, lambda: None)
    with pytest.raises(HwnasError) as caught:
        first.measure(chosen)
    ids = [entry[stage] for entry in book.values() for stage in ("compile", "profile")]
    assert len(ids) == 8 and all(i in str(caught.value) for i in ids)  # names the jobs to re-attach to (and the
    # overhead probe's: the three units share one input shape)
    assert "run the same command again" in str(caught.value)
    submitted = len(fake_hub.created("create_compile_job")), len(fake_hub.created("create_inference_job"))

    fake_hub.stall = False
    second = make_backend()
    second.attach(book, lambda: None)
    assert second.planned_jobs(chosen) == 0
    results = second.measure(chosen)
    assert len(results) == 3
    assert (len(fake_hub.created("create_compile_job")), len(fake_hub.created("create_inference_job"))) == submitted
    assert len(fake_hub.created("upload")) == 4  # nothing exported or uploaded again
    assert all(entry["state"] == "done" for entry in book.values())
    # a finished book is history: measuring again (e.g. --force) submits anew; the finished probe is reused
    assert second.planned_jobs(chosen) == 6


def test_job_ids_are_saved_before_waiting(make_backend, fake_hub, units):
    snapshots = []
    backend = make_backend()
    book = {}
    backend.attach(book, lambda: snapshots.append((len(fake_hub.calls), {k: dict(v) for k, v in book.items()})))
    backend.measure(units[:2])
    first_result = next(i for i, (name, _) in enumerate(fake_hub.calls) if name == "get_job_results")
    before = [s for at, s in snapshots if at <= first_result]
    assert before and all(e["profile"] and e["state"] == "pending" for e in before[-1].values())
    assert len(before[-1]) == 3  # the two units and the overhead probe at their input shape


def test_changed_settings_do_not_reattach(make_backend, fake_hub, units):
    book = {}
    a = make_backend()
    a.attach(book, lambda: None)
    key = f"{units[0].kind}:{units[0].name}@{shape_str(units[0].input_shape)}"
    book[key] = {"compile": "jc0001", "profile": "jp0002", "setup": "sm8650|tflite|npu|20", "state": "pending"}
    assert a.planned_jobs(units[:1]) == 2 + 2  # the unit's pair and the overhead probe's


def test_lost_jobs_are_submitted_again(make_backend, fake_hub, units):
    backend = make_backend()
    key = f"{units[0].kind}:{units[0].name}@{shape_str(units[0].input_shape)}"
    book = {key: {"compile": "jc9999", "profile": "jp9999", "setup": backend._setup(), "state": "pending"}}
    backend.attach(book, lambda: None)
    [m] = backend.measure(units[:1])
    assert len([n for n in fake_hub.created("create_compile_job") if "candidate" in n]) == 1
    assert book[key]["compile"] != "jc9999"


def test_timeout_names_the_jobs(make_backend, fake_hub, units):
    fake_hub.stall = True
    with pytest.raises(HwnasError, match=r"AI Hub jobs jc0001, jc0002, jp0003, jp0004 were still running after 30 s"):
        make_backend(timeout_s=30).measure(units[:1])


def test_token_never_appears_in_failures(make_backend, fake_hub, units, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake_hub.compile_failures["'naf'"] = "Failed to compile"
    backend = make_backend()
    with pytest.raises(MeasurementError) as caught:
        backend.measure(units[:1])
    _assert_token_hidden(fake_hub.token, caught.value, caplog, capsys)
    assert fake_hub.token not in repr(backend.settings())


def test_importing_the_backend_does_not_import_the_client():
    code = "import sys, hwnas.backends.qai_hub as b; b.QaiHubBackend().settings(); print('qai_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_whole_network_mode_needs_the_space(make_backend, units):
    with pytest.raises(HwnasError, match="measure_space"):
        make_backend(mode="whole-network").measure(units[:1])


def _assert_token_hidden(token, error, caplog, capsys):
    captured = capsys.readouterr()
    for text in (str(error), repr(error), caplog.text, captured.out, captured.err):
        assert token not in text


@pytest.fixture(scope="module")
def cbr_network(tiny_space):
    from hwnas.contracts.space import Architecture, freeze

    positions = tiny_space.positions(SIZE)
    return freeze(tiny_space, Architecture(space=tiny_space.name, choices={p.label: "cbr" for p in positions}))


def test_measure_network_profiles_the_whole_network(make_backend, fake_hub, cbr_network):
    backend = make_backend(mode="whole-network")
    book = {}
    backend.attach(book, lambda: None)
    m = backend.measure_network(cbr_network, (1, 3, SIZE, SIZE))
    [job] = fake_hub.profiles
    assert (m.kind, m.name, m.input_shape) == ("network", "network", (1, 3, SIZE, SIZE))
    detail = fake_hub.profiles[job]
    assert m.median_ms == pytest.approx(np.median(list(detail.all_execution_times)[1:]) / 1000)  # warm, as table rows
    assert m.service_ms == pytest.approx(detail.execution_time / 1000)
    assert m.runtime == "qai-hub 0.56.0 qnn_context_binary npu"
    assert len(fake_hub.created("create_compile_job")) == 1 and book == {}  # a check, not a table entry


def test_breakdown_maps_converted_layer_names_back_to_the_export(make_backend, fake_hub, cbr_network):
    backend = make_backend()
    measured = backend.measure_network(cbr_network, (1, 3, SIZE, SIZE))
    frame = backend.breakdown(cbr_network, (1, 3, SIZE, SIZE))
    assert len(fake_hub.created("create_inference_job")) == 1  # the check and its breakdown share one profile job
    assert frame.attrs["run_ms"] == pytest.approx(measured.median_ms)
    exported = {name for name, _ in next(iter(fake_hub.models.values()))["nodes"]}
    assert {"name", "op_type", "ms", "runtime_name", "compute_unit"} <= set(frame.columns)
    assert set(frame["name"]) <= exported  # '_enc0_0_expand_0_Conv' -> '/enc0.0.expand.0/Conv'
    assert (frame["runtime_name"] != frame["name"]).all()
    conv = frame[frame["name"] == "/enc0.0.expand.0/Conv"]
    assert len(conv) == 1 and conv["ms"].item() == pytest.approx(fake_hub.layer_time_us("Conv") / 1000)
    warm = list(next(iter(fake_hub.profiles.values())).all_execution_times)[1:]
    assert frame.attrs["run_ms"] == pytest.approx(np.median(warm) / 1000)


def test_settings_hold_what_changes_numbers_and_protocol_the_rest(make_backend):
    backend = make_backend(device="SM8650", max_profiler_iterations=50)
    assert backend.settings() == {"device": "sm8650", "target_runtime": "qnn_context_binary", "compute_unit": "npu", "mode": "per-unit",
                                  "cold_iterations": 1, "precision": "fp32",
                                  "extra_compile_options": "", "extra_profile_options": ""}
    protocol = backend.protocol()
    assert protocol["profile_options"] == "--compute_unit npu --max_profiler_iterations 50"  # default QAIRT: no flag
    assert protocol["hub_device"] == {"name": "Samsung Galaxy S24 (Family)", "attributes": ["chipset:qualcomm-snapdragon-8gen3"]}
    assert "warm iterations" in protocol["statistic"] and "without the first 1 (cold)" in protocol["statistic"]
    assert "service_ms = estimated_inference_time" in protocol["statistic"]
    assert backend.tool_versions()["qai-hub"] == "0.56.0"
    assert "assumed us" in make_backend(mode="whole-network").protocol()["statistic"]
