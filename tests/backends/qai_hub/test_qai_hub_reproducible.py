"""Reproducible AI Hub tables: the QAIRT version pinned and read back, extra job options, what AI Hub
can run checked before any job, errors told apart by type and HTTP status, any ONNX file profiled.
Against the fake service behind the real client (conftest.py); numbers are synthetic responses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from pydantic import ValidationError
from qai_hub.public_rest_api import DEFAULT_HUB_WEB_URL, APIException

from hwnas.backends.qai_hub import AUTH_FAILED, NOT_CONFIGURED, QaiHubOptions
from hwnas.backends.qai_hub_client import WEB_URL
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, sidecar_path

SIZE = 16


@pytest.fixture(scope="module")
def unit(tiny_space):
    return next(u for u in tiny_space.candidate_units(SIZE) if u.name == "cbr")


def _jobs(fake_hub, kind):
    return [e["pb"] for e in fake_hub.jobs.values() if e["kind"] == kind]


def test_the_qairt_version_and_extra_options_reach_both_jobs(make_backend, fake_hub, unit):
    backend = make_backend(qairt_version="2.32", extra_compile_options="--truncate_64bit_io",
                           extra_profile_options="--max_profiler_time 10")
    book = {}
    backend.attach(book, lambda: None)
    backend.measure([unit])
    assert {j.options for j in _jobs(fake_hub, "compile")} == {
        "--target_runtime qnn_context_binary --compute_unit npu --qairt_version 2.32 --truncate_64bit_io"}
    assert {j.options for j in _jobs(fake_hub, "profile")} == {
        "--compute_unit npu --max_profiler_iterations 20 --qairt_version 2.32 --max_profiler_time 10"}
    entry = book[f"candidate:cbr@1x8x{SIZE}x{SIZE}"]
    assert entry["qairt"] == fake_hub.releases["2.32"]  # what the jobs ran with, read back from their results
    assert entry["tools"]["compile"] == entry["tools"]["profile"] == {"QAIRT": fake_hub.releases["2.32"]}
    assert backend.protocol()["qairt_version"] == "2.32" and backend.protocol()["qairt"] == fake_hub.releases["2.32"]


def test_default_leaves_the_flag_out_and_records_the_version_used(make_backend, fake_hub, unit):
    backend = make_backend()
    backend.measure([unit])
    assert all("--qairt_version" not in j.options for j in _jobs(fake_hub, "compile") + _jobs(fake_hub, "profile"))
    assert backend.tool_versions()["qairt"] == fake_hub.releases["2.31"]


def test_a_resume_refuses_to_mix_qairt_versions(tmp_path, fake_hub, configured, cli):
    first = fake_hub.qairt
    out = tmp_path / "t.csv"
    args = ["build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", str(SIZE), "--out", str(out), "--yes"]
    fake_hub.compile_failures["'cbr' at 1x64x2x2"] = "Failed to compile: out of memory"  # an interrupted build
    code, _, _ = cli(*args)
    assert code == 2 and len(LatencyTable.load(out).frame) == 23
    assert LatencyTable.load(out).meta.settings["qairt"] == first

    fake_hub.compile_failures.clear()
    fake_hub.qairt = fake_hub.releases["2.32"]  # weeks later AI Hub's default moved on
    code, _, stderr = cli(*args)
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and f"with QAIRT {fake_hub.qairt}, but this table's rows were measured with QAIRT {first}" in line
    assert "pass --qairt-version 2.31 to complete it" in line and len(LatencyTable.load(out).frame) == 23  # nothing mixed in

    code, _, stderr = cli(*args, "--qairt-version", "2.31")  # as the sentence says
    assert code == 0, stderr
    table = LatencyTable.load(out)
    assert len(table.frame) == 24 and table.meta.settings["qairt"] == first and table.meta.settings["qairt_version"] == "2.31"
    assert fake_hub.token not in sidecar_path(out).read_text()


@pytest.mark.parametrize("flags, says", [
    (["--target-runtime", "tflite", "--precision", "w8a16"], "--target-runtime tflite cannot run --precision w8a16 on AI Hub"),
    (["--compute-unit", "gpu", "--precision", "int8"], "--compute-unit gpu runs float activations only"),
    (["--extra-compile-options", "--quantize_full_type int8"], "--quantize_full_type is set by hwnas; use --precision"),
    (["--extra-profile-options", "'--unbalanced"], "cannot read"),
    (["--qairt-version", "newest"], "'newest' is not a QAIRT version"),
])
def test_impossible_combinations_are_one_sentence_at_dry_run(tmp_path, no_network, cli, flags, says, monkeypatch):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))  # no token needed to be refused
    code, stdout, stderr = cli("build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", str(SIZE),
                               "--out", str(tmp_path / "t.csv"), "--dry-run", *flags)
    assert code == 2 and stdout == "" and list(tmp_path.iterdir()) == []
    [line] = stderr.strip().splitlines()
    assert line.startswith("error: invalid --") and says in line and not line.endswith("..")


def test_what_ai_hub_runs_passes():
    for runtime, precision, unit in (("tflite", "int8", "npu"), ("onnx", "w8a16", "npu"), ("qnn_dlc", "fp16", "gpu")):
        QaiHubOptions(target_runtime=runtime, precision=precision, compute_unit=unit)
    with pytest.raises(ValidationError):
        QaiHubOptions(target_runtime="tflite", precision="w8a16")


@pytest.mark.parametrize("status, detail, expected", [
    (401, "anything", AUTH_FAILED),
    (403, '{"detail": "Failed to authenticate your organisation for this device."}',
     "AI Hub refused looking up device 'sm8650': Failed to authenticate your organisation for this device."),
])
def test_errors_are_told_apart_by_status_not_by_words(make_backend, fake_hub, unit, status, detail, expected):
    fake_hub.errors["get_device_list"] = [APIException(detail, status_code=status, url=f"{fake_hub.api_url}/api/v1/devices/")]
    with pytest.raises(HwnasError) as caught:
        make_backend().measure([unit])
    assert str(caught.value) == expected


def test_messages_link_the_current_service_address():
    assert WEB_URL == DEFAULT_HUB_WEB_URL  # the client's own
    assert f"{WEB_URL}/account/" in NOT_CONFIGURED and f"{WEB_URL}/account/" in AUTH_FAILED
    assert "app.aihub.qualcomm.com" not in NOT_CONFIGURED + AUTH_FAILED


def test_the_accuracy_check_never_calibrates_on_the_scored_images(make_backend, fake_hub):
    net = torch.nn.Conv2d(3, 3, 1).eval()
    images = np.random.default_rng(1).random((2, 3, SIZE, SIZE), dtype=np.float32)
    with torch.no_grad():
        reference = net(torch.from_numpy(images)).numpy()
    backend = make_backend(precision="int8")
    with pytest.raises(HwnasError, match="needs calibration inputs other than the scored ones"):
        backend.check_accuracy(net, images, reference)
    with pytest.raises(HwnasError, match="1 of the 2 calibration input\\(s\\) are also scored"):
        backend.check_accuracy(net, images, reference, calibration=np.stack([images[1], images[0] + 0.5]))
    assert not fake_hub.created("create_compile_job")


def _onnx_file(path, shape=("N", 3, SIZE, SIZE)):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, list(shape))
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["image"], ["out"], name="relu")], "g", [x], [y])),
              str(path))
    return path


def test_any_onnx_file_is_compiled_and_profiled_as_it_is(make_backend, fake_hub, tmp_path):
    path = _onnx_file(tmp_path / "model.onnx")
    m = make_backend().measure_onnx(path, (1, 3, SIZE, SIZE))
    [compiled] = _jobs(fake_hub, "compile")
    assert [d for d in compiled.tensor_type_list.types[0].tensor_type.shape] == [1, 3, SIZE, SIZE]
    assert compiled.tensor_type_list.types[0].name == "image"  # its own input name, not the export's x
    [detail] = fake_hub.profiles.values()
    assert (m.kind, m.name) == ("network", "model")
    assert m.median_ms == pytest.approx(np.median(list(detail.all_execution_times)[1:]) / 1000)  # nothing subtracted
    with pytest.raises(HwnasError, match="leaves its input size free"):
        make_backend().measure_onnx(path)


def test_profile_onnx_on_ai_hub_from_the_command_line(tmp_path, fake_hub, configured, cli):
    path = _onnx_file(tmp_path / "model.onnx")
    args = ["profile", "--backend", "qai-hub", "--preset", "tiny", "--image-size", str(SIZE), "--onnx", str(path)]
    code, _, stderr = cli(*args)  # asks before paying: no terminal, so refused with the count
    assert code == 2 and "this would submit 2 qai-hub jobs" in stderr and not fake_hub.created("upload")
    code, stdout, stderr = cli(*args, "--yes")
    assert code == 0, stderr
    assert "model.onnx: qai-hub on sm8650" in stdout and "measured" in stdout
    assert len(fake_hub.created("create_compile_job")) == 1
