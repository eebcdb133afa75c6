"""A fake Qualcomm AI Hub behind the real `qai_hub` client.

Only the network boundary is replaced: the REST functions of `qai_hub.public_rest_api`
that `qai_hub.client.Client` calls (device list, model upload, job creation, job status,
job results). They answer with the protobuf messages the server sends (`Job`,
`ProfileDetail` with `LayerDetail` rows, `major_version=1`, and datasets as the h5 files the
client itself writes and reads), so the client's own code
-- job objects, status handling, error translation, profile conversion, dataset
upload and download -- runs as in
production. Any real HTTP request or `time.sleep` fails the test.

Numbers served here are synthetic responses of the documented shapes, not measurements.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import h5py
import onnx
import pytest
import requests
from qai_hub import public_api_pb2 as pb
from qai_hub import public_rest_api as rest
from qai_hub.client import Client
from qai_hub.public_rest_api import APIException, ClientConfig
from qai_hub.util.dataset_entries_converters import dataset_entries_to_h5, h5_to_dataset_entries

from hwnas.backends.qai_hub import QaiHubBackend, QaiHubOptions

TOKEN = "tok-SECRET-3f9a2c7d"
API_URL = "https://example.invalid"

S24 = pb.Device(
    name="Samsung Galaxy S24 (Family)", os="14",
    attributes=["chipset:qualcomm-snapdragon-8gen3", "chipset:sm8650", "framework:qnn", "framework:onnx",
                "framework:tflite", "hexagon:v75", "os:android", "vendor:samsung", "format:phone"],
)
QCS8550 = pb.Device(
    name="QCS8550 (Proxy)", os="12",
    attributes=["chipset:qualcomm-qcs8550-proxy", "framework:qnn", "framework:onnx", "framework:tflite", "os:android"],
)
TARGET_TYPES = {
    "qnn_context_binary": pb.MODEL_TYPE_QNN_CONTEXT_BINARY, "qnn_dlc": pb.MODEL_TYPE_QNN_DLC,
    "tflite": pb.MODEL_TYPE_TFLITE, "onnx": pb.MODEL_TYPE_ONNX, "precompiled_qnn_onnx": pb.MODEL_TYPE_ONNX,
}
QAIRT = "2.31.0.250130"  # the tool version the fake service reports in its profiles
QAIRT_RELEASES = {"2.31": QAIRT, "2.32": "2.32.0.250228"}  # --qairt_version -> the release it stands for
FOLDED_OPS = {"Constant", "Identity", "Shape"}  # folded away by the converters: no profile row


def layer_time_us(op_type: str) -> int:
    """The fake device's per-layer time rule (µs)."""
    return {"Conv": 40, "ReduceMean": 25, "DepthToSpace": 12}.get(op_type, 5)


def qnn_name(onnx_name: str) -> str:
    """What the QNN converter makes of an ONNX node name: every other character -> '_'."""
    return re.sub(r"[^0-9A-Za-z_]", "_", onnx_name)


@dataclass
class FakeHub:
    token = TOKEN  # the fake client's API token, which must never be shown
    qairt: str = QAIRT  # the QAIRT version the service compiles and profiles with now
    releases = QAIRT_RELEASES
    api_url = API_URL
    layer_time_us = staticmethod(layer_time_us)
    folded_ops = FOLDED_OPS

    devices: list = field(default_factory=lambda: [S24, QCS8550])
    compile_failures: dict[str, str] = field(default_factory=dict)  # job-name substring -> failure reason
    profile_failures: dict[str, str] = field(default_factory=dict)
    recorded: dict[str, dict] = field(default_factory=dict)  # job-name substring -> summary fields
    errors: dict[str, list] = field(default_factory=dict)  # REST function -> exceptions raised on its next calls
    polls_to_finish: int = 2  # status reads before a job is finished
    overhead_us: int = 30  # what every inference costs beyond its layers (the runtime's call, input and output)
    stall: bool = False  # jobs never finish
    opaque_layer_names: bool = False  # a runtime that drops the ONNX node names
    untimed_layers: bool = False
    models: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    profiles: dict[str, pb.ProfileDetail] = field(default_factory=dict)
    datasets: dict[str, dict] = field(default_factory=dict)  # dataset id -> DatasetEntries (name -> list of arrays)
    outputs: dict[str, object] = field(default_factory=dict)  # job-name substring -> fn(input entries) -> output entries
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    # -- pacing injected into the backend ------------------------------------------------

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def created(self, kind: str) -> list[str]:
        return [arg for name, arg in self.calls if name == kind]

    # -- the REST functions ------------------------------------------------------------------

    def _enter(self, function: str, arg: str = "") -> None:
        self.calls.append((function, arg))
        queue = self.errors.get(function)
        if queue:
            raise queue.pop(0)

    def get_device_list(self, config, name="", os="", attributes=None, select=False):
        self._enter("get_device_list", name)
        found = [d for d in self.devices if (not name or d.name == name) and set(attributes or []) <= set(d.attributes)]
        out = pb.DeviceList(total_query_count=len(found))
        out.devices.extend(found[:1] if select else found)
        return out

    def create_and_upload_model(self, config, path, model_type, name=None, project_id=None, verbose=None, is_directory=False, **_):
        self._enter("upload", name or "")
        graph = onnx.load(path).graph  # a real ONNX file, or this fails
        model_id = f"m{len(self.models) + 1:04d}"
        self.models[model_id] = {
            "name": name, "model_type": model_type,
            "nodes": [(n.name, n.op_type) for n in graph.node],
            "input": [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim],
        }
        return pb.CreateUpdateResponse(id=model_id)

    def create_and_upload_dataset(self, config, path, name, permanent=False, project_id=None, verbose=None, **_):
        self._enter("upload_dataset", name)
        with h5py.File(path, "r") as h5f:  # the h5 file the client wrote, or this fails
            entries = h5_to_dataset_entries(h5f)
        dataset_id = f"d{len(self.datasets) + 1:04d}"
        self.datasets[dataset_id] = entries
        out = pb.CreateUpdateResponse(id=dataset_id)
        out.expiration_time.seconds = int(time.time()) + 30 * 86400  # the service keeps an upload 30 days
        return out

    def get_dataset(self, config, dataset_id):
        self._enter("get_dataset", dataset_id)
        return pb.Dataset(dataset_id=dataset_id, name=f"dataset-{dataset_id}")

    def download_dataset(self, config, dataset_id, file_path, verbose=None, **_):
        self._enter("download_dataset", dataset_id)
        with h5py.File(file_path, "w") as h5f:
            dataset_entries_to_h5(self.datasets[dataset_id], h5f)
        return file_path

    def create_compile_job(self, config, compile_job_pb, project_id=None):
        self._enter("create_compile_job", compile_job_pb.name)
        job_id = f"jc{len(self.jobs) + 1:04d}"
        runtime = re.search(r"--target_runtime (\S+)", compile_job_pb.options).group(1)
        target_id = f"t{job_id}"
        self.models[target_id] = {**self.models[compile_job_pb.model.model_id], "runtime": runtime, "producer": job_id}
        job = pb.CompileJob()
        job.CopyFrom(compile_job_pb)
        job.compile_job_id = job_id
        job.device.CopyFrom(self._select(compile_job_pb.devices.devices[0]))
        # seed_target_model=true: the target model exists from the start, so a profile job can queue behind it
        job.target_model.CopyFrom(pb.Model(model_id=target_id, name=compile_job_pb.name, model_type=TARGET_TYPES[runtime], producer_id=job_id))
        self.jobs[job_id] = {"kind": "compile", "pb": job, "polls": 0, "failure": self._failure(self.compile_failures, job.name),
                             "qairt": self._qairt(compile_job_pb.options)}
        return pb.CreateUpdateResponse(id=job_id)

    def _qairt(self, options: str) -> str:
        """The QAIRT version a job runs with: the one its --qairt_version names, else the service's default now."""
        asked = re.search(r"--qairt_version (\S+)", options)
        return self.qairt if asked is None or asked.group(1) in ("default", "latest") else QAIRT_RELEASES[asked.group(1)]

    def create_inference_job(self, config, inference_job_pb, project_id=None):
        self._enter("create_inference_job", inference_job_pb.name)
        profiling = inference_job_pb.is_profiling_on
        assert profiling or inference_job_pb.dataset.dataset_id, "an inference job without profiling needs inputs"
        job_id = f"{'jp' if profiling else 'ji'}{len(self.jobs) + 1:04d}"
        job = pb.InferenceJob()
        job.CopyFrom(inference_job_pb)
        job.inference_job_id = job_id
        job.device.CopyFrom(self._select(inference_job_pb.device))
        source = self.models[job.model.model_id]
        failure = self._failure(self.profile_failures, job.name)
        if self.jobs[source["producer"]]["failure"]:
            failure = f"The target model's producer job {source['producer']} failed."
        self.jobs[job_id] = {"kind": "profile" if profiling else "inference", "pb": job, "polls": 0, "failure": failure,
                             "qairt": self._qairt(inference_job_pb.options)}
        return pb.CreateUpdateResponse(id=job_id)

    def get_job(self, config, job_id):
        self._enter("get_job", job_id)
        if job_id not in self.jobs:
            raise APIException(f"Job ID '{job_id}' could not be found. It may not exist or you may not have permission to view it.",
                               status_code=404, url=f"{API_URL}/api/v1/jobs/{job_id}/")
        entry = self.jobs[job_id]
        entry["polls"] += 1
        inner = entry["pb"]
        if self.stall or entry["polls"] < self.polls_to_finish:
            inner.job_state = {"compile": pb.JOB_STATE_OPTIMIZING_MODEL, "profile": pb.JOB_STATE_MEASURING_PERFORMANCE,
                               "inference": pb.JOB_STATE_RUNNING_INFERENCE}[entry["kind"]]
        elif entry["failure"]:
            inner.job_state, inner.failure_reason = pb.JOB_STATE_FAILED, entry["failure"]
        else:
            inner.job_state = pb.JOB_STATE_DONE
        out = pb.Job()
        (out.compile_job if entry["kind"] == "compile" else out.inference_job).CopyFrom(inner)
        return out

    def get_job_results(self, config, job_id):
        self._enter("get_job_results", job_id)
        entry = self.jobs[job_id]
        assert entry["pb"].job_state == pb.JOB_STATE_DONE
        if entry["kind"] == "compile":  # the compiler's versions, as the service reports them
            detail = pb.CompileDetail(tool_versions=[pb.ToolVersion(name="QAIRT", version=entry["qairt"])])
            return pb.JobResult(compile_job_result=pb.CompileJobResult(compile_job_id=job_id, compile_detail=detail))
        if entry["kind"] == "inference":
            return pb.JobResult(inference_job_result=pb.InferenceJobResult(inference_job_id=job_id, output_dataset_id=self._outputs(entry["pb"])))
        detail = self.profiles.setdefault(job_id, self._profile(entry["pb"]))
        return pb.JobResult(inference_job_result=pb.InferenceJobResult(inference_job_id=job_id, detail=detail))

    # -- what the device "reports" -------------------------------------------------------------

    def _select(self, wanted: pb.Device) -> pb.Device:
        found = self.get_device_list(None, wanted.name, wanted.os, list(wanted.attributes), select=True).devices
        assert found, f"no device for {wanted}"
        return found[0]

    @staticmethod
    def _failure(table: dict[str, str], name: str) -> str | None:
        return next((reason for part, reason in table.items() if part in name), None)

    def _outputs(self, job: pb.InferenceJob) -> str:
        """The recorded outputs for the job's input dataset, stored as a new dataset; its id."""
        make = next((fn for part, fn in self.outputs.items() if part in job.name), None)
        assert make is not None, f"no recorded outputs for inference job {job.name!r}"
        dataset_id = f"d{len(self.datasets) + 1:04d}"
        self.datasets[dataset_id] = make(self.datasets[job.dataset.dataset_id])
        return dataset_id

    def _profile(self, job: pb.InferenceJob) -> pb.ProfileDetail:
        model = self.models[job.model.model_id]
        detail = pb.ProfileDetail(major_version=1, minor_version=8)
        detail.tool_versions.add(name="QAIRT", version=self.jobs[job.inference_job_id]["qairt"])  # the 0.56 converter drops it
        total = 0
        for i, (name, op_type) in enumerate(n for n in model["nodes"] if n[1] not in FOLDED_OPS):
            t = layer_time_us(op_type)
            total += t
            shown = f"op_{i}" if self.opaque_layer_names else (qnn_name(name) if model["runtime"].startswith("qnn") else name)
            row = pb.LayerDetail(name=shown, layer_type_name=op_type, id=f":0:{i}", compute_unit=pb.COMPUTE_UNIT_NPU,
                                 delegate_name="QNN", delegate_extra_info="HTP")
            if not self.untimed_layers:
                row.execution_time, row.execution_cycles = t, t * 1800
            detail.layer_details.append(row)
        summary = next((fields for part, fields in self.recorded.items() if part in job.name), None) or {
            # the first iteration is the cold one (loading, caches): slower than the service's estimate
            "execution_time": total + self.overhead_us,
            "all_execution_times": [total + self.overhead_us + d for d in (400, -3, 0, 2, 9, 40)],
            "after_execution_peak_memory": 0, "execution_peak": (1_000_000, 2_000_000 + total),
        }
        detail.execution_time = summary["execution_time"]
        detail.all_execution_times.extend(summary.get("all_execution_times", []))
        detail.after_execution_peak_memory = summary.get("after_execution_peak_memory", 0)
        if "execution_peak" in summary:
            detail.execution_memory.peak.lower, detail.execution_memory.peak.upper = summary["execution_peak"]
        return detail


@pytest.fixture
def no_network(monkeypatch):
    """Any real HTTP request or sleep fails the test (a refused connection costs ~45 s in the client)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the test reached for the network")

    def no_sleep(seconds):
        raise AssertionError(f"the test slept {seconds} s")

    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(time, "sleep", no_sleep)


@pytest.fixture
def fake_hub(monkeypatch, no_network) -> FakeHub:
    hub = FakeHub()
    for function in ("get_device_list", "create_and_upload_model", "create_compile_job", "create_inference_job",
                     "get_job", "get_job_results", "create_and_upload_dataset", "get_dataset", "download_dataset"):
        monkeypatch.setattr(rest, function, getattr(hub, function))
    return hub


@pytest.fixture
def hub_client(fake_hub) -> Client:
    """A real client, configured as `qai-hub configure` would, talking to the fake."""
    return Client(config=ClientConfig(api_token=TOKEN, api_url=API_URL, web_url=API_URL))


@pytest.fixture
def make_backend(fake_hub, hub_client):
    def make(**options) -> QaiHubBackend:
        return QaiHubBackend(QaiHubOptions(**options), client=hub_client, sleep=fake_hub.sleep, clock=fake_hub.clock)

    return make


@pytest.fixture
def configured(tmp_path, monkeypatch, fake_hub):
    """A client configuration file for the fake, as `qai-hub configure` writes it (for the CLI's own client)."""
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {fake_hub.token}\napi_url = {fake_hub.api_url}\nweb_url = {fake_hub.api_url}\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    fake_hub.polls_to_finish = 1  # finished when first read: the CLI's backend would really sleep between polls


@pytest.fixture(scope="session")
def tiny_space():
    from hwnas.contracts.plugins import get_space

    return get_space("nafnet-unet").from_options("tiny")
