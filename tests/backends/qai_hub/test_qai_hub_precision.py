"""Deployment precision on AI Hub, against the fake service behind the real client (conftest.py):
the compile options and calibration data a precision sends, the table it makes, and the
on-device accuracy check. Every number here comes from the fake's recorded responses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from pydantic import ValidationError
from qai_hub import client as hub_client_module
from qai_hub import public_api_pb2 as pb

from hwnas.backends.qai_hub import NOT_CONFIGURED, QaiHubBackend, QaiHubOptions
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, sidecar_path
from hwnas.deploy.quantize import output_psnr

SIZE = 16


@pytest.fixture(scope="module")
def unit(tiny_space):
    return next(u for u in tiny_space.candidate_units(SIZE) if u.name == "cbr")


def _compile_jobs(fake_hub):
    """The compile jobs of the measured models (not of the overhead probes)."""
    return [e["pb"] for e in fake_hub.jobs.values() if e["kind"] == "compile" and "overhead probe" not in e["pb"].name]


# -- timing: precision -> compile options and calibration data ----------------------------------------


@pytest.mark.parametrize("precision, full_type, calibrated", [
    ("fp16", "float16", False), ("int8", "int8", True), ("w8a16", "w8a16", True),
])
def test_precision_becomes_compile_options_and_calibration_data(make_backend, fake_hub, unit, precision, full_type, calibrated):
    backend = make_backend(precision=precision)
    book = {}
    backend.attach(book, lambda: None)
    backend.measure([unit])

    [job] = _compile_jobs(fake_hub)
    sent = f"--target_runtime qnn_context_binary --compute_unit npu --quantize_full_type {full_type} --quantize_io"
    assert job.options == sent
    entry = book[f"candidate:cbr@{'x'.join(map(str, unit.input_shape))}"]
    assert entry["compile_options"] == sent and entry["state"] == "done"  # what was sent, per job
    if calibrated:
        data = fake_hub.datasets[job.calibration_dataset.dataset_id]  # as uploaded, read back from the client's h5 file
        assert list(data) == ["x"] and len(data["x"]) == 4
        # uploaded once for the input shape: the overhead probe at the same shape reuses it by handle
        probe = next(e["pb"] for e in fake_hub.jobs.values() if "overhead probe" in e["pb"].name and e["kind"] == "compile")
        assert probe.calibration_dataset.dataset_id == job.calibration_dataset.dataset_id
        assert len(fake_hub.created("upload_dataset")) == 1
        rng = np.random.default_rng(0)  # seeded: the same inputs every build
        for got in data["x"]:
            assert got.dtype == np.float32 and np.array_equal(got, rng.standard_normal(unit.input_shape, dtype=np.float32))
    else:
        assert not job.calibration_dataset.dataset_id and not fake_hub.datasets
    assert backend.settings()["precision"] == precision


def test_fp32_sends_no_quantisation(make_backend, fake_hub, unit):
    backend = make_backend()
    backend.measure([unit])
    [job] = _compile_jobs(fake_hub)
    assert job.options == "--target_runtime qnn_context_binary --compute_unit npu"
    assert not job.calibration_dataset.dataset_id and not fake_hub.created("upload_dataset")
    assert backend.settings()["precision"] == "fp32" and "calibration" not in backend.protocol()


def test_a_pending_job_of_another_precision_is_not_reattached(make_backend, unit):
    book = {}
    fp32 = make_backend()
    fp32.attach(book, lambda: None)
    key = f"candidate:cbr@{'x'.join(map(str, unit.input_shape))}"
    book[key] = {"compile": "jc0001", "profile": "jp0002", "setup": "sm8650|qnn_context_binary|npu|20", "state": "pending"}
    assert fp32.planned_jobs([unit]) == 2  # the setup written before precisions existed is fp32's: only the probe is new
    int8 = make_backend(precision="int8")
    int8.attach(book, lambda: None)
    assert int8.planned_jobs([unit]) == 4


def test_quantised_jobs_keep_the_services_tool_versions(make_backend, fake_hub, unit):
    """The server sends `tool_versions` in every job's results; the 0.56 client's profile dict drops
    them, so they are read from the results themselves -- for a quantised unit as for a float one."""
    assert "tool_versions" not in hub_client_module._profile_pb_to_python_dict(pb.ProfileDetail(major_version=1))
    backend = make_backend(precision="int8")
    book = {}
    backend.attach(book, lambda: None)
    backend.measure([unit])
    entry = book[f"candidate:cbr@{'x'.join(map(str, unit.input_shape))}"]
    assert entry["tools"] == {"compile": {"QAIRT": fake_hub.qairt}, "profile": {"QAIRT": fake_hub.qairt}}
    assert entry["qairt"] == fake_hub.qairt and entry["used"].startswith("iterations 2-6")
    assert backend.protocol()["qairt"] == backend.tool_versions()["qairt"] == fake_hub.qairt


def test_a_bad_precision_is_one_sentence():
    with pytest.raises(ValidationError) as caught:
        QaiHubOptions(precision="int4")
    assert "unknown precision 'int4'; choose one of fp32, fp16, int8, w8a16" in str(caught.value)


@pytest.mark.parametrize("flags", [["--precision", "int4"], ["-b", "precision=int4"]])
def test_the_command_refuses_a_bad_precision_in_one_line(tmp_path, monkeypatch, capsys, no_network, flags, cli):
    code, stdout, stderr = cli("build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size",
                                 "16", "--out", str(tmp_path / "t.csv"), "--dry-run", *flags)
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines() == [
        "error: invalid --precision for backend qai-hub: unknown precision 'int4'; choose one of fp32, fp16, int8, w8a16."]


def test_build_lut_int8_table_says_int8(tmp_path, monkeypatch, capsys, fake_hub, configured, cli):
    out = tmp_path / "tiny-hub-int8.csv"
    args = ["build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16", "--out", str(out), "--yes"]
    code, _, stderr = cli(*args, "--precision", "int8")
    assert code == 0, stderr
    table = LatencyTable.load(out)
    assert table.meta.settings["precision"] == "int8" and len(table.frame) == 24
    assert "--quantize_full_type int8 --quantize_io" in table.meta.settings["compile_options"]
    assert "seed 0" in table.meta.settings["calibration"]
    assert {e["compile_options"] for e in table.meta.jobs.values()} == {
        "--target_runtime qnn_context_binary --compute_unit npu --quantize_full_type int8 --quantize_io"}
    assert all(job.calibration_dataset.dataset_id for job in _compile_jobs(fake_hub))
    assert fake_hub.token not in stderr + sidecar_path(out).read_text()

    code, _, stderr = cli(*args, "--precision", "fp32")  # the int8 table is not an fp32 one
    assert code == 2 and "precision int8, not fp32" in stderr


# -- on-device accuracy -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1)).eval()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((3, 3, SIZE, SIZE), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(net, images):
    with torch.no_grad():
        return net(torch.from_numpy(images)).numpy()


ERROR = np.array([0.01, 0.02, 0.005], dtype=np.float32)  # the recorded outputs' offset from PyTorch's, per image


@pytest.fixture(scope="module")
def held_out():
    """Calibration images apart from the scored ones."""
    return np.random.default_rng(2).random((2, 3, SIZE, SIZE), dtype=np.float32)


@pytest.fixture
def recorded(fake_hub, reference):
    """The device's recorded outputs: PyTorch's plus a known offset per image (the output name
    is the exported one, `y`)."""
    def outputs(inputs):
        assert len(inputs["x"]) == len(reference)
        return {"y": [(reference[i] + ERROR[i])[None] for i in range(len(reference))]}

    fake_hub.outputs["accuracy check"] = outputs
    return [output_psnr(reference[i], reference[i] + ERROR[i]) for i in range(len(reference))]


@pytest.mark.parametrize("precision, options, calibrated", [
    ("fp32", "--target_runtime qnn_context_binary --compute_unit npu", False),
    ("int8", "--target_runtime qnn_context_binary --compute_unit npu --quantize_full_type int8", True),
])
def test_accuracy_check_scores_the_devices_outputs(make_backend, fake_hub, net, images, reference, recorded, precision, options,
                                                   calibrated, held_out):
    check = make_backend(precision=precision).check_accuracy(net, images, reference, calibration=held_out)

    assert check.psnr_db == [round(p, 2) for p in recorded]
    expected = output_psnr(reference, reference + ERROR[:, None, None, None])
    assert check.overall_psnr_db == round(expected, 2) and check.precision == precision and check.device == "sm8650"
    [job] = _compile_jobs(fake_hub)
    assert job.options == options == check.compile_options  # float in, float out: no --quantize_io
    [inference] = [e["pb"] for e in fake_hub.jobs.values() if e["kind"] == "inference"]
    assert not inference.is_profiling_on and (check.compile_job, check.inference_job) == (job.compile_job_id,
                                                                                          inference.inference_job_id)
    sent = fake_hub.datasets[inference.dataset.dataset_id]["x"]
    assert len(sent) == 3 and all(np.array_equal(s[0], x) for s, x in zip(sent, images))
    if calibrated:  # on the held-out images, never on the scored ones
        calib = fake_hub.datasets[job.calibration_dataset.dataset_id]["x"]
        assert len(calib) == len(held_out) and all(np.array_equal(c[0], x) for c, x in zip(calib, held_out))
    else:
        assert not job.calibration_dataset.dataset_id


def test_accuracy_check_of_a_quantised_file_compiles_it_as_it_is(make_backend, fake_hub, tmp_path, images, reference, recorded):
    path = tmp_path / "model-int8.onnx"
    shape = [1, 3, SIZE, SIZE]
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.01]), helper.make_tensor("z", TensorProto.UINT8, [], [0])])
    model = helper.make_model(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "precision", "int8"
    onnx.save(model, str(path))

    check = make_backend(precision="fp32").check_accuracy(path, images, reference, calibration=images[:1])
    [job] = _compile_jobs(fake_hub)
    assert job.options == "--target_runtime qnn_context_binary --compute_unit npu"  # its QDQ pairs are read as they are
    assert not job.calibration_dataset.dataset_id and check.precision == "int8"
    assert check.psnr_db == [round(p, 2) for p in recorded]


@pytest.mark.parametrize("stage", ["compile", "inference"])
def test_a_failed_accuracy_job_is_one_sentence(make_backend, fake_hub, net, images, reference, recorded, stage, caplog, capsys):
    failures = fake_hub.compile_failures if stage == "compile" else fake_hub.profile_failures
    failures["accuracy check"] = f"Failed to run: out of memory ({fake_hub.token})"
    with pytest.raises(HwnasError) as caught:
        make_backend(precision="int8").check_accuracy(net, images, reference, calibration=images[:1] + 0.5)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and f"AI Hub {stage} job j" in message and "out of memory" in message
    assert "the int8 accuracy check at 1x3x16x16 failed" in message
    assert fake_hub.token not in message + caplog.text + "".join(capsys.readouterr())


def test_accuracy_check_refuses_mismatched_references(make_backend, fake_hub, net, images, reference):
    with pytest.raises(HwnasError, match="got 3 input\\(s\\) but 2 reference output\\(s\\)"):
        make_backend().check_accuracy(net, images, reference[:2])
    assert not fake_hub.calls  # refused before any call


def test_accuracy_check_without_configuration_is_one_line(tmp_path, monkeypatch, no_network, net, images, reference):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    with pytest.raises(HwnasError) as caught:
        QaiHubBackend(QaiHubOptions(precision="int8")).check_accuracy(net, images, reference)
    assert str(caught.value) == NOT_CONFIGURED
