"""What a latency backend may do beyond measuring units: typed, optional capabilities.

`LatencyBackend` is the narrow contract every backend implements (`measure` and its
records). A backend that can also time an ONNX file, break a network's time down per
layer, profile whole networks per layer (so the engine's whole-network mode attributes
their layers to units, `hwnas.tables.whole_network`), or run a model on its device to
check its accuracy implements the matching protocol below -- a plain method, found with
`isinstance(backend, TimesOnnx)` -- instead of overriding a base method that raises.
`require(backend, TimesOnnx)` returns the backend, or raises the one sentence a user
reads when the chosen backend cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, TypeVar, runtime_checkable

from hwnas.contracts.errors import naming, setting

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from torch import nn

    from hwnas.contracts.latency_backend import Measurement
    from hwnas.contracts.space import Position, Unit


@runtime_checkable
class TimesOnnx(Protocol):
    """End-to-end latency of an ONNX file, taken like `measure_network`; dimensions the file
    leaves free come from `input_shape`."""

    def measure_onnx(self, path: str | Path, input_shape: Sequence[int] | None = None) -> "Measurement": ...


@runtime_checkable
class BreaksDown(Protocol):
    """Per-layer time of one forward pass: a DataFrame with columns `name` (the layer or ONNX
    node name, which carries the module path, e.g. `/enc0.0.norm1/ReduceMean`), `op_type` and
    `ms` (milliseconds per pass)."""

    def breakdown(self, module: "nn.Module", input_shape: Sequence[int]) -> "pd.DataFrame": ...


@dataclass(frozen=True)
class Layer:
    """One profiled layer (a row of AI Hub's `execution_detail`, a node of ONNX Runtime's profile). `time_us` is None when the runtime gave no time."""

    name: str
    type: str
    compute_unit: str
    time_us: float | None


@dataclass(frozen=True)
class NetworkRequest:
    """One whole network to profile per layer: `key` names it in a job book, `label` in messages."""

    key: str
    label: str
    build: Callable[[], "nn.Module"]
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerTimes:
    """A profiled network's layers (`Layer`, times in µs) and the factor
    that turns their times into the network's median pass (AI Hub reports per-layer minima)."""

    layers: Sequence[Layer]
    to_median: float = 1.0
    source: str = ""  # where the profile came from, for messages (e.g. "AI Hub job j1a2b3c")


@runtime_checkable
class ProfilesLayers(Protocol):
    """Profiles whole networks and reports each one's per-layer times: what the engine's
    whole-network mode needs (`hwnas.tables.whole_network.measure_space`, which
    `LatencyBackend.measure_space` calls when `whole_network()` is true). One entry per
    request, in order: its `LayerTimes`, or the `MeasurementError` that stopped it."""

    def runtime(self) -> str: ...

    def whole_network(self) -> bool:
        """Whether this backend's options ask for whole-network mode (`--mode whole-network`)."""
        ...

    def profile_layers(self, networks: Sequence[NetworkRequest]) -> list["LayerTimes | Exception"]: ...


@runtime_checkable
class ChecksAccuracy(Protocol):
    """Runs the ONNX file `model` on the backend's device on `inputs` (N x C x H x W) and scores
    its outputs against PyTorch's `reference` by PSNR; returns an object with `as_dict()` (its
    `overall_psnr_db` at least)."""

    def check_accuracy(self, model: str | Path, inputs: "np.ndarray", reference: "np.ndarray") -> Any: ...


_CANNOT = {
    TimesOnnx: ("cannot time an ONNX file; choose another {backend} (see `hwnas backends`), e.g. onnxruntime for "
                "this CPU.", {"backend": setting("backend")}),
    BreaksDown: ("cannot break latency down per layer; choose another {backend} (see `hwnas backends`) for "
                 "{breakdown}.", {"backend": setting("backend"), "breakdown": setting("breakdown")}),
    ProfilesLayers: ("cannot profile a whole network per layer, which whole-network mode needs; use {mode}.",
                     {"mode": setting("mode", "per-unit")}),
    ChecksAccuracy: ("cannot run a model on its device to check its accuracy; use {check_on}.",
                     {"check_on": setting("check_on", "qai-hub")}),
}

B = TypeVar("B")


def require(backend: B, capability: type) -> B:
    """`backend` if it implements `capability`, else the one-line refusal that names the fix."""
    if isinstance(backend, capability):
        return backend
    text, names = _CANNOT[capability]
    raise naming(f"the {getattr(backend, 'name', type(backend).__name__)} backend {text}", **names)


def network_candidates(units: Sequence[Unit], positions: Sequence[Position] = ()) -> list[str]:
    """Candidates whose uniform network whole-network mode profiles for `units` (a backend counts its jobs from it), in first-seen order; fixed parts alone
    need one network (given `positions`: the first candidate of the first position)."""
    names = list(dict.fromkeys(u.name for u in units if u.kind == "candidate"))
    if not names and units and positions:
        names = [positions[0].candidates[0]]
    return names


CAPABILITIES = (TimesOnnx, BreaksDown, ProfilesLayers, ChecksAccuracy)
_METHODS = {TimesOnnx: ("measure_onnx",), BreaksDown: ("breakdown",),
            ProfilesLayers: ("runtime", "whole_network", "profile_layers"), ChecksAccuracy: ("check_accuracy",)}


def capabilities(backend) -> list[str]:
    """The capabilities `backend` (an instance, or a backend class) implements, by name (`hwnas backends NAME`)."""
    return [c.__name__ for c in CAPABILITIES if all(callable(getattr(backend, m, None)) for m in _METHODS[c])]
