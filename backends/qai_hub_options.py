"""The AI Hub backend's options, and the job option strings made from them.

Every field is a command-line flag of the backend (`--target-runtime`, `--qairt-version`,
...; `-b KEY=VALUE` for the rest). What AI Hub cannot run (`qai_hub_capability`) and
extra options that would override one of ours are refused here, in one sentence, when
the options are made -- before any token is read or job submitted.
"""

from __future__ import annotations

import re
import shlex
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hwnas.backends.qai_hub_capability import problem

# Short names for the chips this project targets -> the AI Hub device that stands for them.
# SM8650 is the Snapdragon 8 Gen 3; its devices carry `chipset:qualcomm-snapdragon-8gen3`.
DEVICE_ALIASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sm8650": ("Samsung Galaxy S24 (Family)", ("chipset:qualcomm-snapdragon-8gen3",)),
}

# hwnas precision -> the value of the compile option `--quantize_full_type` (fp32: no option).
QUANTIZE_FULL_TYPE = {"fp16": "float16", "int8": "int8", "w8a16": "w8a16"}

# Options hwnas sets from its own flags; an extra option may not override them.
OWN_COMPILE = {"target_runtime": "--target-runtime", "compute_unit": "--compute-unit", "quantize_full_type": "--precision",
               "quantize_io": "--precision", "qairt_version": "--qairt-version"}
OWN_PROFILE = {"compute_unit": "--compute-unit", "max_profiler_iterations": "-b max_profiler_iterations=N",
               "qairt_version": "--qairt-version"}
QAIRT_VERSION = re.compile(r"^(default|latest|\d+\.\d+(\.\d+)*)$")


class QaiHubOptions(BaseModel):
    """What to measure on and how; everything but the waiting knobs changes the numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # inf passes every bound

    device: str = Field("sm8650", description="`sm8650`, an AI Hub device name, or `chipset:...` attribute(s), comma-separated")
    target_runtime: Literal["qnn_context_binary", "qnn_dlc", "tflite", "onnx", "precompiled_qnn_onnx"] = "qnn_context_binary"
    compute_unit: Literal["npu", "gpu", "cpu", "all"] = "npu"
    mode: Literal["per-unit", "whole-network"] = "per-unit"
    max_profiler_iterations: int = Field(20, ge=1)
    cold_iterations: int = Field(1, ge=0, description="first profiler iterations left out of p10/median/p90 (cold start)")
    timeout_s: float = Field(7200.0, gt=0, description="how long to wait for submitted jobs; they stay re-attachable after it")
    poll_s: float = Field(10.0, gt=0, description="seconds between job status checks")
    retries: int = Field(5, ge=0, description="retries after rate limiting (10 s, doubling, at most 120 s apart)")
    retry_budget_s: float = Field(60.0, ge=0, description="how long to keep retrying connection errors and 5xx per call")
    qairt_version: str = Field("default", description="QAIRT version of compile and profile jobs (--qairt_version): "
                               "default (AI Hub's current default), latest, or a version such as 2.31")
    extra_compile_options: str = Field("", description="more compile job options, passed as they are, e.g. --truncate_64bit_io")
    extra_profile_options: str = Field("", description="more profile job options, passed as they are")
    precision: str = Field("fp32", description="fp32, fp16, int8 or w8a16: compiled with --quantize_full_type (module docstring)")

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, v: str | None) -> str:
        from hwnas.deploy.quantize import PRECISIONS, check_precision

        return "fp32" if v is None else check_precision(v, PRECISIONS, "qai-hub")  # None: flag not given

    @field_validator("precision")
    @classmethod
    def _runs_on_hub(cls, v: str, info: ValidationInfo) -> str:
        if "target_runtime" in info.data and "compute_unit" in info.data:
            reason = problem(info.data["target_runtime"], v, info.data["compute_unit"])
            if reason:
                raise ValueError(reason)
        return v

    @field_validator("device", mode="before")
    @classmethod
    def _named(cls, v: str | None) -> str:
        if v is None:  # flag not given
            return "sm8650"
        if not isinstance(v, str) or not v.strip():
            raise ValueError("an AI Hub device name, chipset attribute or alias such as sm8650 is required")
        return v.strip()

    @field_validator("qairt_version", mode="before")
    @classmethod
    def _version(cls, v: str | None) -> str:
        text = "default" if v is None else str(v).strip()
        if not QAIRT_VERSION.match(text):
            raise ValueError(f"{v!r} is not a QAIRT version: give default, latest or a version such as 2.31 "
                             "(`qai-hub list-frameworks` lists them)")
        return text

    @field_validator("extra_compile_options", "extra_profile_options", mode="before")
    @classmethod
    def _extra(cls, v: str | None, info: ValidationInfo) -> str:
        text = "" if v is None else str(v).strip()
        try:
            words = shlex.split(text)
        except ValueError as err:
            raise ValueError(f"cannot read {text!r} as job options ({err}); quote it as one string of --name value pairs")
        own = OWN_COMPILE if info.field_name == "extra_compile_options" else OWN_PROFILE
        for word in words:
            name = word.lstrip("-").split("=")[0].replace("-", "_")
            if word.startswith("--") and name in own:
                raise ValueError(f"{word} is set by hwnas; use {own[name]} instead")
        return text


def qairt_option(o: QaiHubOptions) -> str:
    """` --qairt_version V`, or nothing for `default`: like qai_hub_models, the service's default is
    asked for by leaving the flag out (the version it picked is read back from the results)."""
    return "" if o.qairt_version == "default" else f" --qairt_version {o.qairt_version}"


def compile_options(o: QaiHubOptions, quantize_io: bool = True, quantise: bool = True) -> str:
    """A compile job's options: runtime, compute unit, QAIRT version, precision, the user's extra ones.
    A precision other than fp32 adds `--quantize_full_type` (not with `quantise=False`: a file
    already quantised is compiled as it is), and `--quantize_io` unless the caller feeds and
    reads float tensors (the accuracy check)."""
    options = f"--target_runtime {o.target_runtime} --compute_unit {o.compute_unit}{qairt_option(o)}"
    if quantise and o.precision in QUANTIZE_FULL_TYPE:
        options += f" --quantize_full_type {QUANTIZE_FULL_TYPE[o.precision]}" + " --quantize_io" * quantize_io
    return f"{options} {o.extra_compile_options}".strip()


def profile_options(o: QaiHubOptions) -> str:
    """A profile job's options (qai_hub_models passes the same --qairt_version to compile and profile)."""
    options = f"--compute_unit {o.compute_unit} --max_profiler_iterations {o.max_profiler_iterations}{qairt_option(o)}"
    return f"{options} {o.extra_profile_options}".strip()
