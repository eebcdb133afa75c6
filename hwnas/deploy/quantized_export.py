"""`hwnas export --precision int8|w8a16`: a post-training quantised ONNX file, checked against PyTorch.

The float file is exported and verified as usual (`hwnas.deploy.onnx_export`), then quantised
statically (QDQ, per-channel weights; `hwnas.deploy.quantize`) with calibration inputs made by
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from hwnas.contracts.errors import HwnasError, ImagesTooSmall, RuntimeFailure
from hwnas.runs.io import write_failure
from hwnas.deploy.quantize import output_psnr, quantised_tensors, quantize_static_onnx

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
    from hwnas.contracts.config import TaskSpec
    from hwnas.contracts.task import make_task, task_class

    h, w = static or (CALIBRATION_CROP, CALIBRATION_CROP)
    try:
        cls = task_class(model_file.task.name, space.name)
        options = cls.calibration_options(dict(model_file.task.options), folder, max(h, w))
        task = make_task(TaskSpec(name=cls.name, options=options), space)
    except ImagesTooSmall as err:  # its fix names the task's crop, which export has no flag for: the crop is ours
        fits = "a smaller --static HxW" if static else "a fixed input size that fits them (--static HxW)"
        raise HwnasError(f"cannot make calibration inputs from {folder or 'the sample images'}: {err.fact}; calibrate on "
                         f"images at least {max(h, w)} pixels on each side (--calibration DIR), or export {fits}.") from None
    except HwnasError as err:
        raise HwnasError(f"cannot make calibration inputs from {folder or 'the sample images'}: {err}") from None
    calib, check = task.calibration_batches(count)
    cut = lambda x: x[..., :h, :w].contiguous().numpy().astype(np.float32)  # noqa: E731
    return cut(calib), cut(check), folder or "the task's sample images"


def quantize_export(net: torch.nn.Module, float_path: Path, out: Path, precision: str, calib: np.ndarray,
                    check: np.ndarray, config) -> dict[str, Any]:
    """Quantise the verified float file `float_path` into `out` (atomically) as `config` (an ExportConfig)
    says -- calibration method, per-channel weights, activations kept at 16 bits -- if its outputs stay
    within `config.min_psnr` of PyTorch's on `check`; the report's part about it. With `config.sensitivity`
    each activation's sensitivity goes to that CSV (`hwnas.deploy.sensitivity`), written with the file."""
    import onnx

    from hwnas.runs.io import atomic_write
    from hwnas.deploy.sensitivity import choose_sixteen_bit, layer_sensitivity

    metadata = {p.key: p.value for p in onnx.load(str(float_path), load_external_data=False).metadata_props}
    with torch.no_grad():
        reference = np.concatenate([net(torch.from_numpy(x[None])).numpy() for x in check])
    report: dict[str, Any] = {"calibration_method": config.calibration_method, "per_channel": config.per_channel}
    with tempfile.TemporaryDirectory(prefix="quant-", dir=float_path.parent) as tmp:  # in the export's scratch folder
        files: dict[int, Path] = {}

        def quantise(sixteen_bit) -> float:
            """A quantised file with `sixteen_bit` activations at 16 bits (ranges calibrated once); its PSNR."""
            path = files[len(sixteen_bit)] = Path(tmp) / f"q{len(sixteen_bit)}.onnx"
            quantize_static_onnx(float_path, path, list(calib[:, None]), precision, method=config.calibration_method,
                                 per_channel=config.per_channel, sixteen_bit=sixteen_bit, cache=Path(tmp) / "ranges.json")
            return output_psnr(reference, _run(path, check))

        psnr = quantise(())
        report["quant_psnr_8bit_db"] = round(psnr, 2)
        sixteen: list[str] = []
        sensitivity = None
        if config.sensitivity is not None or config.keep_16bit != 0:
            sensitivity = layer_sensitivity(onnx.load(str(files[0])), check, reference)
            report.update(weights_psnr_db=round(sensitivity.weights_psnr_db, 2), activations=len(sensitivity.tensors),
                          most_sensitive=sensitivity.rows()[:5])
        if config.keep_16bit != 0:
            auto = config.keep_16bit == "auto"
            sixteen, psnr, tried = choose_sixteen_bit(sensitivity, quantise, config.min_psnr if auto else None,
                                                      None if auto else config.keep_16bit, known={0: psnr})
            report["keep_16bit_tried"] = [{"keep_16bit": n, "psnr_db": round(p, 2)} for n, p in tried]
        model = onnx.load(str(files[len(sixteen)]))
        # ONNX Runtime carries a 16-bit type through ops that keep their input's scale (Slice, Reshape, ...).
        in_file = [t for t, (_, _, elem) in quantised_tensors(model).items() if elem == onnx.TensorProto.UINT16]
        report.update(quant_psnr_db=round(psnr, 2), min_psnr=config.min_psnr, sixteen_bit=sixteen,
                      activations_16bit=len(in_file) if precision == "int8" else None,
                      quant_nodes=sum(n.op_type == "QuantizeLinear" for n in model.graph.node), nodes=len(model.graph.node))
        if not psnr >= config.min_psnr:
            raise HwnasError(_floor_message(precision, psnr, len(check), config, sensitivity))
        del model.metadata_props[:]
        for key, value in {**metadata, "precision": precision, "calibration_method": config.calibration_method,
                           "activations_16bit": str(len(in_file))}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        atomic_write(out, lambda path: onnx.save(model, str(path)))
    if config.sensitivity is not None:
        atomic_write(Path(config.sensitivity), lambda path: _write_csv(path, sensitivity.rows()))
        report["sensitivity"] = config.sensitivity
    return report


def _floor_message(precision: str, psnr: float, count: int, config, sensitivity) -> str:
    """Why the file is refused and what to try, one sentence."""
    found = f"the {precision} file's outputs are {psnr:.1f} dB from PyTorch's (PSNR on {count} held-out inputs)"
    if config.keep_16bit == "auto":
        return (f"{found} even with all {len(sensitivity.tensors)} activations at 16 bits, below --min-psnr "
                f"{config.min_psnr:g}; nothing was written -- the 8-bit weights alone reach {sensitivity.weights_psnr_db:.1f} "
                "dB, so lower --min-psnr or export --precision fp32.")
    return (f"{found}, below --min-psnr {config.min_psnr:g}; nothing was written -- calibrate on images like the "
            "model's (--calibration DIR), keep the most sensitive activations at 16 bits (--keep-16bit auto), "
            "or use --precision w8a16 or fp32.")


def _run(path: Path, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[None]})[0] for x in inputs])


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["rank", "tensor", "producer", "op_type", "psnr_db"])
        writer.writeheader()
        writer.writerows(rows)


@contextmanager
def _scratch(out: Path) -> Iterator[Path]:
    """A hidden folder beside `out` for the intermediate files (on the output's disk), removed afterwards.

    A write that fails there is reported as a failure to write `out`: the user named that file, not the float
    file or the candidates behind it."""
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
            yield Path(tmp)
    except RuntimeFailure as err:  # hwnas.runs.io's atomic writes inside the folder
        if tmp is None or getattr(err, "os_error", None) is None or Path(tmp) not in (err.path, *err.path.parents):
            raise
        raise write_failure(out, err.os_error) from None
    except OSError as err:  # a raw write by ONNX or ONNX Runtime
        raise write_failure(out, err) from None


def export_quantized(net: torch.nn.Module, model_file, space, out: Path, *, config, export_float) -> dict[str, Any]:
    """Export `net` in float with `export_float(path) -> report`, then quantise it into `out` as `config`
    (an ExportConfig) says."""
    if config.calibration is None:
        log.warning("no --calibration folder: calibrating on the task's sample images; pass --calibration DIR with "
                    "images like those the model will see for activation ranges that fit them")
    calib, check, source = calibration_inputs(model_file, space, config.calibration_count, config.calibration, config.static)
    with _scratch(out) as tmp:
        float_path = tmp / "float.onnx"
        report = export_float(float_path)
        report.update(quantize_export(net, float_path, out, config.precision, calib, check, config))
    report.update(path=str(out), precision=config.precision, calibration=source, calibration_count=len(calib),
                  calibration_shape=list(calib.shape[1:]), check_count=len(check))
    return report
