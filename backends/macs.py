"""An analytic, device-free cost: multiply-accumulates as a stand-in for latency.

The paper notes the hardware cost can be latency or a proxy such as GFLOPs. This
backend counts each unit's MACs with `hwnas.tables.cost.count_macs` (PyTorch's FLOP counter
on the meta device: convolutions and matrix products; norms, pooling and element-wise
ops count 0) and records `MACs / 1e9 * ms_per_gmac` in the table's millisecond column,
so with the default `ms_per_gmac=1` the "ms" are GMACs. It needs no device, no export
and no runtime, and gives the same numbers on every machine.

It cannot tell `naf` from `naf_bn` (LayerNorm and BatchNorm both count 0) -- which is
exactly why the paper measures on the device.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hwnas.contracts.latency import LatencyBackend, Measurement, versions
from hwnas.contracts.space import Unit

DEVICE = "analytic"


class MacsOptions(BaseModel):
    """`ms_per_gmac`: the millisecond value recorded per 10^9 MACs (1 = record GMACs)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # inf passes every bound

    device: str = DEVICE
    ms_per_gmac: float = Field(1.0, gt=0)

    @field_validator("device")
    @classmethod
    def _no_device(cls, v: str) -> str:
        if v != DEVICE:
            raise ValueError(f"the macs backend is device-free (device {DEVICE!r}), not {v!r}; drop --device")
        return v


class MacsBackend(LatencyBackend):
    """Analytic MACs (device-free proxy; the 'ms' column holds GMACs x ms_per_gmac)."""

    name: ClassVar[str] = "macs"
    Options: ClassVar[type[BaseModel]] = MacsOptions

    def __init__(self, options: MacsOptions | None = None):
        super().__init__(options or MacsOptions())

    @property
    def device(self) -> str:
        return DEVICE

    def settings(self) -> dict[str, Any]:
        return {"device": DEVICE, "ms_per_gmac": self.options.ms_per_gmac, "counter": "torch.utils.flop_counter (MACs = FLOPs / 2)"}

    def tool_versions(self) -> dict[str, str]:
        return versions("hwnas", "torch")

    def measure(
        self, units: Sequence[Unit], on_result: Callable[[Measurement], None] | None = None
    ) -> list[Measurement]:
        from hwnas.tables.cost import count_macs

        out = []
        for u in units:
            ms = count_macs(u.module, u.input_shape) / 1e9 * self.options.ms_per_gmac
            m = Measurement(
                kind=u.kind, name=u.name, input_shape=tuple(u.input_shape), median_ms=ms, p10_ms=ms, p90_ms=ms,
                runs=1, device=DEVICE, runtime=f"torch {versions('torch').get('torch', '?')} flop counter",
            )
            if on_result:
                on_result(m)
            out.append(m)
        return out
