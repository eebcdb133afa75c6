"""The measuring side of the latency contract: `LatencyBackend` (what a backend implements),
`Measurement` (one unit's timing), `MeasurementError`, and the shape and key helpers that
name a unit's row (`shape_str`, `parse_shape`, `unit_key`). Re-exported by `hwnas.contracts.latency`,
the path plugins import."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.space import SearchSpace, Shape, Unit

if TYPE_CHECKING:
    from torch import nn


def shape_str(shape: Sequence[int]) -> str:
    """(1, 32, 256, 256) -> '1x32x256x256' (the CSV form of an input shape)."""
    return "x".join(str(int(d)) for d in shape)


def parse_shape(text: str) -> Shape:
    return tuple(int(d) for d in str(text).split("x"))


Key = tuple[str, str, str]  # (kind, name, input shape) -- a table's row key


def unit_key(unit: "Unit | Measurement") -> Key:
    return (unit.kind, unit.name, shape_str(unit.input_shape))


class MeasurementError(HwnasError):
    """A backend could not measure a unit; the message says which and why."""


class Measurement(BaseModel):
    """One measured unit. Times are milliseconds; a failure is raised, never recorded."""

    model_config = ConfigDict(frozen=True)

    kind: str = "candidate"
    name: str
    input_shape: Shape
    median_ms: float = Field(ge=0)
    p10_ms: float = Field(ge=0)
    p90_ms: float = Field(ge=0)
    runs: int = Field(ge=1)
    device: str
    runtime: str
    peak_memory_bytes: int | None = None
    service_ms: float | None = Field(None, ge=0)  # the measuring service's own figure, when it reports one (AI Hub's estimate)
    spread_pct: float | None = Field(None, ge=0)  # how far repeated passes' medians disagree, % of the median
    noisy: bool | None = None  # True: the passes disagree by more than the backend trusts (the row is suspect)

    @field_validator("median_ms", "p10_ms", "p90_ms", "service_ms", "spread_pct")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("latency must be finite")
        return v


class LatencyBackend(ABC):
    """Measures units on one target. Subclasses set `name` and `Options` (pydantic).

    What a backend may do beyond this (time an ONNX file, break a network down per layer,
    profile whole networks per layer, check a model's accuracy on its device) are typed
    protocols in `hwnas.contracts.capabilities`, implemented by the backends that can."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    # True when measuring queues jobs on a remote service (shared devices, quotas): commands then say
    # how many (`planned_jobs`) and ask before submitting (`hwnas.cli.jobs`).
    submits_jobs: ClassVar[bool] = False

    def __init__(self, options: BaseModel):
        self.options = options

    @property
    @abstractmethod
    def device(self) -> str:
        """The measured target, as recorded in tables (e.g. 'sm8650', a CPU model)."""

    def settings(self) -> dict[str, Any]:
        """Everything that changes the numbers (threads, runtime, compute unit).

        A table refuses a backend whose settings differ from those it was measured with
        (keys present in both are compared), so keep out what only changes precision.
        """
        return self.options.model_dump(mode="json")

    def protocol(self) -> dict[str, Any]:
        """How the numbers were taken (repeats, warm-up, subtracted overheads): recorded in
        the sidecar's settings beside `settings()`, never compared."""
        return {}

    def tool_versions(self) -> dict[str, str]:
        """Versions of the tools that produced the numbers (recorded, not compared)."""
        return versions("hwnas", "torch", "onnx")

    def check_configured(self) -> None:
        """Raise one clear `HwnasError` when the backend cannot measure yet (a missing token,
        an absent runtime). Called before anything is measured, asked or submitted; local
        backends that need nothing keep this default."""

    @abstractmethod
    def measure(
        self, units: Sequence[Unit], on_result: Callable[[Measurement], None] | None = None
    ) -> list[Measurement]:
        """One `Measurement` per unit, in order. `on_result` is called as each arrives,
        so a caller can persist it at once. Raise `MeasurementError` on any failure."""

    def planned_jobs(self, units: Sequence[Unit]) -> int:
        """How many jobs (remote submissions, or local sessions) measuring `units` costs."""
        return len(units)

    def attach(self, jobs: dict[str, Any], save: Callable[[], None]) -> None:
        """Hand the backend the table's persistent job book (`TableMeta.jobs`).

        A remote backend records each submitted job id in `jobs` and calls `save()` at
        once, so an interrupted build re-attaches to running jobs instead of paying for
        them again. Local backends ignore it.
        """

    def measure_space(
        self, space: SearchSpace, image_size: int, units: Sequence[Unit],
        on_result: Callable[[Measurement], None] | None = None,
    ) -> list[Measurement]:
        """Measure `units` of `space`: each unit alone, or -- for a backend that `ProfilesLayers` and
        whose options ask for it (`whole_network()`) -- the engine's whole-network mode
        (`hwnas.tables.whole_network`): uniform networks profiled per layer, times attributed to units."""
        from hwnas.contracts.capabilities import ProfilesLayers

        if units and isinstance(self, ProfilesLayers) and self.whole_network():
            from hwnas.tables.whole_network import measure_space

            return measure_space(self, space, image_size, units, on_result)
        return self.measure(units, on_result)

    def measure_network(self, module: "nn.Module", input_shape: Sequence[int]) -> Measurement:
        """End-to-end latency of a whole network at `input_shape` (kind "network", name
        "network"), taken the same way as the table's units so the two compare. The
        default measures it as one unit."""
        return self.measure([Unit("network", tuple(input_shape), module, kind="network")])[0]


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of the named distributions (for sidecars and results)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
