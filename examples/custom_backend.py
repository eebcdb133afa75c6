"""Your own latency backend: a stub device whose latency is MACs x a constant.

Replace `_time_ms` with a call to your device (an SSH runner, a vendor profiler, ...);
everything else -- cached tables, resume, `hwnas profile`, the search -- comes with it.

Register it without touching hwnas, in your package's pyproject.toml:

    [project.entry-points."hwnas.backends"]
    stub-device = "custom_backend:StubDeviceBackend"

then `pip install -e .` and run

    hwnas build-lut --backend stub-device --preset tiny --image-size 64 --out stub.csv -b ms_per_gmac=3

Library users can call `hwnas.contracts.plugins.register_backend(StubDeviceBackend)` instead.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, Field

from hwnas.tables.cost import count_macs
from hwnas.contracts.latency import LatencyBackend, Measurement, MeasurementError
from hwnas.contracts.space import Unit


class StubDeviceOptions(BaseModel):
    """Every field is settable from the command line (`--device`, `-b ms_per_gmac=3`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = "stub-board"
    ms_per_gmac: float = Field(2.0, gt=0)


class StubDeviceBackend(LatencyBackend):
    """A stub device: latency = GMACs x ms_per_gmac (an example plugin)."""

    name: ClassVar[str] = "stub-device"
    Options: ClassVar[type[BaseModel]] = StubDeviceOptions

    @property
    def device(self) -> str:
        return self.options.device

    def measure(
        self, units: Sequence[Unit], on_result: Callable[[Measurement], None] | None = None
    ) -> list[Measurement]:
        out = []
        for unit in units:
            ms = self._time_ms(unit)
            m = Measurement(
                kind=unit.kind, name=unit.name, input_shape=tuple(unit.input_shape), median_ms=ms,
                p10_ms=ms, p90_ms=ms, runs=1, device=self.device, runtime="stub",
            )
            if on_result:
                on_result(m)  # the table saves each result at once
            out.append(m)
        return out

    def _time_ms(self, unit: Unit) -> float:
        macs = count_macs(unit.module, unit.input_shape)
        if macs < 0:  # a real device reports failures: raise, never return a number
            raise MeasurementError(f"the stub device could not run {unit.name}.")
        return macs / 1e9 * self.options.ms_per_gmac
