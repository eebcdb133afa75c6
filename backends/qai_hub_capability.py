"""What AI Hub can run: target runtime x precision x compute unit, checked before any job is paid for.

The rules are qai_hub_models' (`TargetRuntime.supports_precision` and its profile
paths), in hwnas' precision names (int8 = w8a8: 8-bit weights and activations;
w8a16 = 8-bit weights, 16-bit activations):

- float (fp32, and fp16 through `--quantize_full_type float16`) runs on every runtime;
- TF Lite runs one integer precision only, w8a8 (int8): no w8a16;
- ONNX Runtime and the QNN runtimes (context binary, DLC, precompiled QNN ONNX) run
  int8 and w8a16;
- the QNN GPU path runs float activations only: int8 or w8a16 with `--compute-unit gpu`
  on a QNN runtime is refused.

A combination outside these is refused in one sentence when the backend's options are
validated -- so at `--dry-run` time, with no token and no job.
"""

from __future__ import annotations

FLOAT = ("fp32", "fp16")
QNN_RUNTIMES = ("qnn_context_binary", "qnn_dlc", "precompiled_qnn_onnx")

# target runtime -> precisions it compiles (qai_hub_models' TargetRuntime.supports_precision)
PRECISIONS: dict[str, tuple[str, ...]] = {
    "tflite": FLOAT + ("int8",),
    "onnx": FLOAT + ("int8", "w8a16"),
    **{runtime: FLOAT + ("int8", "w8a16") for runtime in QNN_RUNTIMES},
}
QUANTISED_ACTIVATIONS = ("int8", "w8a16")


def problem(target_runtime: str, precision: str, compute_unit: str) -> str | None:
    """Why AI Hub cannot run this combination (one sentence with the fix, no final stop), or None when it can."""
    allowed = PRECISIONS.get(target_runtime)
    if allowed is not None and precision not in allowed:
        others = [r for r, p in PRECISIONS.items() if precision in p]
        return (f"--target-runtime {target_runtime} cannot run --precision {precision} on AI Hub (it runs "
                f"{', '.join(allowed)}); choose one of those precisions, or --target-runtime {others[0]}")
    if compute_unit == "gpu" and target_runtime in QNN_RUNTIMES and precision in QUANTISED_ACTIVATIONS:
        return (f"--compute-unit gpu runs float activations only on {target_runtime}, not --precision {precision}; "
                "use --compute-unit npu for integer precisions, or --precision fp16 on the GPU")
    return None
