"""`model.pt`: a trained network as data -- space spec, architecture and weights.

Format (a plain dict, saved with `torch.save`, read with `torch.load(weights_only=True)`
so that opening a file never runs code from it):

    {"format": "hwnas-model", "version": 1,
     "space": SpaceSpec dump, "arch": Architecture dump, "task": TaskSpec dump,
     "state_dict": {name: tensor}, "info": {str: plain values}}

"task" (the task trained on: name and options) was added without a version change:
a file written before it has none and loads as its space's default task (denoising
for every file of that time).

A training checkpoint (`checkpoints/last.pt` of `hwnas train`) holds the same dict
under "model", so every command that takes a model file takes a checkpoint too.

Loading rebuilds the network from the space and architecture and compares parameter
names and shapes *before* `load_state_dict`: a file for another space, preset or
architecture ends in one `HwnasError` sentence, never a shape-mismatch traceback.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from hwnas.contracts.config import SpaceSpec, TaskSpec
from hwnas.contracts.errors import HwnasError
from hwnas.runs.io import atomic_write_bytes
from hwnas.contracts.space import Architecture, SearchSpace, freeze

log = logging.getLogger(__name__)

FORMAT = "hwnas-model"
VERSION = 1
CHECKPOINT_FORMAT = "hwnas-train-checkpoint"


@dataclass(frozen=True)
class ModelFile:
    """The contents of a model file: what network it is and its weights."""

    spec: SpaceSpec
    arch: Architecture
    state_dict: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)
    task: TaskSpec = field(default_factory=TaskSpec)  # name None: the space's default task

    def payload(self) -> dict[str, Any]:
        """The dict that is saved (also embedded in training checkpoints)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "space": self.spec.model_dump(mode="json"),
            "arch": self.arch.model_dump(mode="json"),
            "task": self.task.model_dump(mode="json"),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "info": dict(self.info),
        }

    def build(self, device: torch.device | str = "cpu") -> tuple[SearchSpace, nn.Module]:
        """(space, network in eval mode with these weights); one-line `HwnasError` if they do not fit."""
        space = self.spec.create()
        net = freeze(space, self.arch)
        load_weights(net, self.state_dict, source="the model file")
        return space, net.to(device).eval()


def save_model(path: str | Path, model: ModelFile) -> Path:
    """Write `model` atomically (a reader sees the old file or the new one)."""
    buffer = io.BytesIO()
    torch.save(model.payload(), buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def read_payload(path: str | Path, what: str = "model file") -> dict[str, Any]:
    """`torch.load(path, weights_only=True)` as a dict; unreadable or foreign files -> `HwnasError`."""
    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"{what} {path} does not exist; check the path.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises many types for foreign bytes (KeyError, UnpicklingError, ...)
        reason = "it is an ONNX file, already exported" if path.suffix.lower() == ".onnx" else _load_failure(err)
        raise HwnasError(f"{path} is not a readable hwnas {what} ({reason}); pass a model.pt written by `hwnas train`.") from None
    if not isinstance(payload, dict):
        raise HwnasError(f"{path} is not an hwnas {what}; pass a model.pt written by `hwnas train`.")
    return payload


def _load_failure(err: Exception) -> str:
    """A short reason for a failed torch.load (its own messages are long, multi-line advice)."""
    text = str(err)
    if "Unsupported global" in text:  # the weights-only unpickler met a class; other bytes are "Unsupported operand"
        return "it holds Python objects, not only tensors and plain values; hwnas never loads those"
    if isinstance(err, OSError):
        return err.strerror or "cannot read it"
    return "not a PyTorch file, or damaged"


def load_model(path: str | Path) -> ModelFile:
    """Read a `model.pt` or a training checkpoint; anything else -> one-line `HwnasError`."""
    path = Path(path)
    payload = read_payload(path)
    if payload.get("format") == CHECKPOINT_FORMAT and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    return from_payload(payload, source=str(path))


def from_payload(payload: Mapping[str, Any], source: str) -> ModelFile:
    """Validate a loaded model dict (see the module docstring)."""
    if payload.get("format") != FORMAT:
        hint = " (it looks like a search checkpoint: train the derived network with `hwnas train --init-from RUN`)" if "supernet" in payload else ""
        raise HwnasError(f"{source} is not an hwnas model file{hint}; pass a model.pt written by `hwnas train`.")
    if payload.get("version") != VERSION:
        raise HwnasError(
            f"{source} is model format version {payload.get('version')}, this hwnas reads version {VERSION}; "
            "re-export it with the hwnas that wrote it."
        )
    try:
        spec = SpaceSpec.model_validate(payload.get("space"))
        arch = Architecture.model_validate(payload.get("arch"))
        task = TaskSpec.model_validate(payload.get("task") or {})
    except ValidationError:
        raise HwnasError(f"{source} has a damaged space, architecture or task record; retrain or pass another model file.") from None
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HwnasError(f"{source} has no weights; pass a model.pt written by `hwnas train`.")
    check_finite(state.items(), source)
    return ModelFile(spec=spec, arch=arch, state_dict=state, info=dict(payload.get("info") or {}), task=task)


def check_finite(weights: Iterable[tuple[str, Any]], source: str) -> None:
    """Refuse weights holding NaN or infinity (a diverged run): every output would be NaN.

    `weights`: (name, tensor or numpy array) pairs -- a state dict's items, or an ONNX
    file's initializers. Integer tensors (BatchNorm's counters) cannot be non-finite.
    """
    bad = [name for name, value in weights if not _finite(value)]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise HwnasError(
            f"{source} holds NaN or infinite weights ({bad[0]}{more}): the training that wrote it diverged; "
            "pass an earlier checkpoint (checkpoints/prev.pt) or retrain with a lower --lr."
        )


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    array = np.asarray(value)
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def weight_mismatch(net: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """None if `state` has exactly `net`'s names and shapes, else a short description."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of another shape, e.g. {k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}")
    return "; ".join(parts) or None


def load_weights(net: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """`net.load_state_dict(state)` after checking names and shapes (one-line `HwnasError` if they differ)."""
    problem = weight_mismatch(net, state)
    if problem:
        raise HwnasError(
            f"the weights in {source} do not fit this network ({problem}); they belong to another "
            "space, preset or architecture -- pass the matching --space/--preset/--arch or another file."
        )
    net.load_state_dict(state)
