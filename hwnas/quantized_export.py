"""`hwnas export --precision int8|w8a16`: a post-training quantised ONNX file, checked against PyTorch.

The float file is exported and verified as usual (`hwnas.onnx_export`), then quantised
statically (QDQ, per-channel weights; `hwnas.quantize`) with calibration inputs made by
the model's own task: its training options (e.g. the noise range it learnt) with the
data replaced by `--calibration DIR` -- inputs like those the model will see, not random
tensors, which set activation ranges that real images never reach. Without a folder the
task's built-in sample images are used, with a warning.

The check: the PSNR between the quantised file's outputs and PyTorch's float outputs on
held-out inputs (the task's other split), over the whole batch. The default floor, 35 dB,
is about what a quantisation error adds to a denoiser that is itself at 30 dB from the
clean image when it costs 1.2 dB of its PSNR (independent errors add:
-10 log10(10^-3 + 10^-3.5) = 28.8 dB); below it the file is refused and nothing is
written. The numbers are in the report either way (`quant_psnr_db`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.errors import HwnasError

log = logging.getLogger(__name__)

DEFAULT_MIN_PSNR = 35.0
CALIBRATION_CROP = 128  # side of the calibration inputs for a file with dynamic height and width


def calibration_inputs(model_file, space, count: int, folder: str | None,
                       static: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration inputs, held-out check inputs, where they came from), N x C x H x W float32.

    Made by the model's task (`Task.calibration_options`, `Task.calibration_batches`):
    its training options with `folder` as its data (None: the task's own); cut to
    `static` (H, W) or CALIBRATION_CROP pixels.
    """
    from hwnas.config import TaskSpec
    from hwnas.task import make_task, task_class

    h, w = static or (CALIBRATION_CROP, CALIBRATION_CROP)
    try:
        cls = task_class(model_file.task.name, space.name)
        options = cls.calibration_options(dict(model_file.task.options), folder, max(h, w))
        task = make_task(TaskSpec(name=cls.name, options=options), space)
    except HwnasError as err:
        raise HwnasError(f"cannot make calibration inputs from {folder or 'the sample images'}: {err}") from None
    calib, check = task.calibration_batches(count)
    cut = lambda x: x[..., :h, :w].contiguous().numpy().astype(np.float32)  # noqa: E731
    return cut(calib), cut(check), folder or "the task's sample images"


def quantize_export(net: torch.nn.Module, float_path: Path, out: Path, precision: str, calib: np.ndarray,
                    check: np.ndarray, min_psnr: float) -> dict[str, Any]:
    """Quantise the verified float file `float_path` into `out` (atomically) if its outputs stay
    within `min_psnr` of PyTorch's on `check`; the report's part about it."""
    import onnx
    import onnxruntime as ort

    from hwnas.io import atomic_write
    from hwnas.quantize import output_psnr, quantize_static_onnx

    metadata = {p.key: p.value for p in onnx.load(str(float_path), load_external_data=False).metadata_props}
    report: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        quantize_static_onnx(float_path, tmp, list(calib[:, None]), precision)
        model = onnx.load(str(tmp))
        del model.metadata_props[:]
        for key, value in {**metadata, "precision": precision}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        with torch.no_grad():
            reference = np.concatenate([net(torch.from_numpy(x[None])).numpy() for x in check])
        quantised = np.concatenate([session.run(None, {name: x[None]})[0] for x in check])
        psnr = output_psnr(reference, quantised)
        report.update(quant_psnr_db=round(psnr, 2), min_psnr=min_psnr, quant_nodes=sum(
            n.op_type == "QuantizeLinear" for n in model.graph.node), nodes=len(model.graph.node))
        if not psnr >= min_psnr:
            raise HwnasError(f"the {precision} file's outputs are {psnr:.1f} dB from PyTorch's (PSNR on {len(check)} held-out "
                             f"inputs), below --min-psnr {min_psnr:g}; nothing was written -- calibrate on images like the "
                             "model's (--calibration DIR), or use --precision w8a16 or fp32.")

    atomic_write(out, write)
    return report


def export_quantized(net: torch.nn.Module, model_file, space, out: Path, *, precision: str, export_float,
                     calibration: str | None, count: int, static: tuple[int, int] | None, min_psnr: float) -> dict[str, Any]:
    """Export `net` in float with `export_float(path) -> report`, then quantise it into `out`."""
    if calibration is None:
        log.warning("no --calibration folder: calibrating on the task's sample images; pass --calibration DIR with "
                    "images like those the model will see for activation ranges that fit them")
    calib, check, source = calibration_inputs(model_file, space, count, calibration, static)
    with tempfile.TemporaryDirectory(prefix="hwnas-export-") as tmp:
        float_path = Path(tmp) / "float.onnx"
        report = export_float(float_path)
        report.update(quantize_export(net, float_path, out, precision, calib, check, min_psnr))
    report.update(path=str(out), precision=precision, calibration=source, calibration_count=len(calib),
                  calibration_shape=list(calib.shape[1:]), check_count=len(check))
    return report
