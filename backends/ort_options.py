"""The ONNX Runtime backend's options (`OnnxRuntimeOptions`: how to time, on which CPU, at which
precision) and this machine's CPU model name (`cpu_model`), which its tables record as their device."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CPU_PRECISIONS = ("fp32", "int8")  # int8: ORT fuses QDQ pairs into integer kernels; fp16/16-bit ints have none on CPU


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """This machine's CPU model name, e.g. 'AMD EPYC' or 'Intel(R) Xeon(R) ... @ 2.90GHz'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.partition(":")[2].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


class OnnxRuntimeOptions(BaseModel):
    """How to time: `device` (this machine's CPU), intra-op `threads`, `warmup` rounds, `runs`
    timed rounds in `passes` passes (rounded up to a multiple of `passes`), `noisy_pct` and
    `extra_passes` (module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # inf passes every bound

    device: str = "cpu"
    threads: int = Field(2, ge=1, le=256)
    warmup: int = Field(3, ge=0)
    runs: int = Field(60, ge=1)
    passes: int = Field(3, ge=1)
    noisy_pct: float = Field(10.0, gt=0)
    extra_passes: int = Field(2, ge=0)
    precision: str = "fp32"  # fp32, or int8: each unit statically quantised (QDQ) before it is timed
    # per-unit: each unit timed alone (interleaved); whole-network: one uniform network per candidate,
    # its node profile attributed to units by the engine (`hwnas.tables.whole_network`)
    mode: Literal["per-unit", "whole-network"] = "per-unit"

    @model_validator(mode="after")
    def _whole_network_fp32(self) -> "OnnxRuntimeOptions":
        if self.mode == "whole-network" and self.precision != "fp32":
            raise ValueError("whole-network mode profiles fp32 networks only; use --mode per-unit for int8 tables")
        return self

    @field_validator("precision")
    @classmethod
    def _cpu_precisions(cls, v: str) -> str:
        from hwnas.deploy.quantize import check_precision

        return check_precision(v, CPU_PRECISIONS, "onnxruntime on this CPU", why="its CPU kernels have no other path worth timing")

    @field_validator("device")
    @classmethod
    def _this_cpu(cls, v: str) -> str:
        here = f"cpu:{cpu_model()}"
        if v.strip().lower() == "cpu" or v.strip() == here:
            return "cpu"
        if v.lower().startswith("cpu:"):
            raise ValueError(f"{v!r} is not this machine's CPU ({here}); measure on that machine, or pass --device cpu here")
        raise ValueError(f"onnxruntime measures this machine's CPU only, not {v!r}; pass --device cpu (for a phone chip use --backend qai-hub)")
