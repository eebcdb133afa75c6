"""On-device accuracy of a deployed model on Qualcomm AI Hub: its outputs on a phone vs PyTorch's.

One compile job and one inference job (`submit_inference_job(..., inputs=..., profile=False)`,
qai-hub 0.56), with the backend's device, runtime, compute unit and precision:

- a float model (an `nn.Module`, exported like `hwnas export`, or a float ONNX file) is
  compiled at the backend's precision with `--quantize_full_type` -- AI Hub's own
  post-training quantisation, calibrated (`calibration_data`) on the given calibration
  images, which must be others than the scored ones: a model calibrated on the images it
  is scored on looks better than it is, so that is refused;
- an ONNX file that is already quantised (QuantizeLinear nodes, e.g. from
  `hwnas export --precision int8`) is compiled as it is: the compiler reads its QDQ pairs.

Without `--quantize_io`: the inference job takes the float images and returns float outputs,
which are scored as they are. The score is the PSNR between the device's outputs and the
PyTorch reference outputs (`hwnas.deploy.quantize.output_psnr`, peak 1.0), per image and over all
images together. A failed job, a missing configuration or a missing output ends in one
`HwnasError` sentence; the API token is never shown.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hwnas.backends.qai_hub_options import compile_options, qairt_option
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import shape_str
from hwnas.deploy.quantize import QUANTISED, output_psnr

if TYPE_CHECKING:
    from torch import nn

    from hwnas.backends.qai_hub import QaiHubBackend
    from hwnas.backends.qai_hub_client import HubSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceCheck:
    """What `check_on_device` found: PSNR (dB) of the device's outputs against PyTorch's."""

    precision: str  # what ran on the device: the backend's, or the quantised file's own
    psnr_db: list[float]  # per image
    overall_psnr_db: float  # over all images together
    device: str
    compile_job: str
    inference_job: str
    compile_options: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_on_device(
    backend: "QaiHubBackend", model: "nn.Module | str | Path", inputs: np.ndarray | Sequence[np.ndarray],
    reference: np.ndarray | Sequence[np.ndarray], calibration: np.ndarray | Sequence[np.ndarray] | None = None,
) -> DeviceCheck:
    """Run `model` on `backend`'s device on `inputs` (C x H x W each, or N x C x H x W) and score its
    outputs against `reference` (PyTorch's outputs on the same inputs, one per input)."""
    images, expected = _stack(inputs, "input"), _stack(reference, "reference output")
    if len(images) != len(expected):
        raise HwnasError(f"the accuracy check got {len(images)} input(s) but {len(expected)} reference output(s); "
                         "give one PyTorch output per input.")
    backend.check_configured()
    session = backend.session
    with tempfile.TemporaryDirectory(prefix="hwnas-qai-hub-check-") as tmp:
        path = _onnx_file(model, images.shape[1:], Path(tmp))
        name, quantised = input_name_and_quantised(path)
        precision = _file_precision(path) if quantised else backend.options.precision
        calib = None
        if precision in QUANTISED and not quantised:
            calib = {name: [x[None] for x in _held_out(calibration, images)]}
        hub = session.client()
        device = backend.resolve_device()
        uploaded = session.call("uploading the model to check", hub.upload_model, str(path), name=path.name)
    options = compile_options(backend.options, quantize_io=False, quantise=not quantised)  # float in and out
    label = f"the {precision} accuracy check at {shape_str((1, *images.shape[1:]))}"
    compiled = session.call(
        f"submitting the compile job for {label}", hub.submit_compile_job, uploaded, device, name=f"hwnas {label}",
        input_specs={name: ((1, *images.shape[1:]), "float32")}, options=options, calibration_data=calib,
        retry=False, retry_connection=False,
    )
    _finished(session, compiled, "compile", label)
    target = compiled.get_target_model()
    inference = session.call(
        f"submitting the inference job for {label}", hub.submit_inference_job, target, device,
        inputs={name: [x[None] for x in images]}, name=f"hwnas {label}",
        options=f"--compute_unit {backend.options.compute_unit}{qairt_option(backend.options)}", profile=False,
        retry=False, retry_connection=False,
    )
    _finished(session, inference, "inference", label)
    outputs = session.call(f"downloading the outputs of job {inference.job_id}", inference.download_output_data)
    got = _first_output(outputs, inference, len(images), expected.shape)
    per_image = [round(output_psnr(r, o), 2) for r, o in zip(expected, got)]
    overall = round(output_psnr(expected, got), 2)
    log.info("AI Hub %s vs PyTorch: PSNR %.2f dB over %d images (jobs %s, %s)", precision, overall, len(images),
             compiled.job_id, inference.job_id)
    return DeviceCheck(precision, per_image, overall, backend.device, compiled.job_id, inference.job_id, options)


def _stack(arrays, what: str) -> np.ndarray:
    """N x ... float32 from an array or a list of per-image arrays (a missing batch axis added)."""
    stacked = np.asarray(arrays if isinstance(arrays, np.ndarray) else [np.asarray(a) for a in arrays], dtype=np.float32)
    if stacked.ndim == 3:
        stacked = stacked[None]
    if stacked.ndim != 4 or len(stacked) == 0:
        raise HwnasError(f"the accuracy check needs at least one {what} of C x H x W, not shape {list(stacked.shape)}.")
    return stacked


def _onnx_file(model, image_shape: Sequence[int], tmp: Path) -> Path:
    """The ONNX file to upload: `model` itself if it is a path, else its export at one image's shape."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise HwnasError(f"model file {path} does not exist; check the path.")
        return path
    from hwnas.deploy import onnx_export

    return onnx_export.to_onnx(model, (1, *image_shape), tmp / "model.onnx")


def input_name_and_quantised(path: Path) -> tuple[str, bool]:
    """The model's first input name, and whether it is quantised already (QuantizeLinear nodes)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return graph.input[0].name, any(n.op_type == "QuantizeLinear" for n in graph.node)


def _file_precision(path: Path) -> str:
    """A quantised file's precision from its metadata (`hwnas export` writes it), else "quantised"."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return props.get("precision", "quantised")


def _held_out(calibration, images: np.ndarray) -> np.ndarray:
    """The calibration inputs, refused when missing or when they include a scored image."""
    if calibration is None:
        raise HwnasError("an integer-precision accuracy check needs calibration inputs other than the scored ones "
                         "(calibrating on the images it scores flatters the result); pass calibration=...")
    calib = _stack(calibration, "calibration input")
    shared = sum(any(np.array_equal(c, x) for x in images) for c in calib)
    if shared:
        raise HwnasError(f"{shared} of the {len(calib)} calibration input(s) are also scored; calibrate on other "
                         "images than the ones the check scores.")
    return calib


def _finished(session: "HubSession", job, stage: str, label: str) -> None:
    """Wait for `job`; one `HwnasError` sentence with AI Hub's message if it failed."""
    session.wait([job])
    message = session.failure(job)
    if message:
        raise HwnasError(f"AI Hub {stage} job {job.job_id} for {label} failed: {message} (see {job.url}).")


def _first_output(outputs, job, count: int, shape: tuple[int, ...]) -> np.ndarray:
    """The model's (only) output as N x ...; one sentence if it is missing or does not match."""
    if not outputs:
        raise HwnasError(f"AI Hub inference job {job.job_id} finished without output data; run the check again.")
    name, arrays = next(iter(outputs.items()))
    if len(arrays) != count:
        raise HwnasError(f"AI Hub inference job {job.job_id} returned {len(arrays)} output(s) of {name!r} for {count} "
                         "input(s); run the check again.")
    got = np.concatenate([np.asarray(a, dtype=np.float32).reshape(1, *np.shape(a)[-3:]) for a in arrays])
    if got.shape != shape:
        raise HwnasError(f"AI Hub inference job {job.job_id} returned outputs of shape {list(got.shape)}, not the "
                         f"reference's {list(shape)}; compare them in the same layout.")
    return got
