"""A space's layout at one image size: everything the latency side derives from its structure.

Positions (label, candidates, the input shape each sees), fixed parts, every unit a
complete latency table holds, the base architecture (each position's first
candidate), the space's fingerprint, and one structural fingerprint per unit. All of it
is traced on the meta device (no memory, no weights) and computed once per space and
image size (`SearchSpace.layout` memoises it), so commands that ask for positions,
units and fingerprints many times pay for one trace.

A unit's fingerprint hashes what decides its latency -- its input shape and its
modules' structure: class names, hyper-parameters, parameter and buffer shapes and
dtypes -- and never its weights (training changes no latency). A table keeps each row's
fingerprint, so adding a candidate leaves every existing row valid and a changed block
invalidates only its own rows. A change inside a `forward` that leaves the structure
alone is not seen (the space fingerprint never saw one either).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from hwnas.contracts.latency import Key, shape_str, unit_key
from hwnas.contracts.space import Architecture, Position, Shape, Unit, choice_blocks, freeze, units_at

if TYPE_CHECKING:
    from hwnas.contracts.space import SearchSpace


@dataclass(frozen=True)
class Layout:
    """What `space` looks like at `image_size`; units hold meta-device modules (keys and structure only)."""

    space: str
    image_size: int
    fingerprint: str  # the whole space's (`SearchSpace.fingerprint`)
    positions: tuple[Position, ...]
    fixed: tuple[Unit, ...]
    units: tuple[Unit, ...]  # candidates per distinct input shape, then fixed parts: a complete table's rows
    base: Architecture  # each position's first candidate: the network the space is a variation of
    unit_fingerprints: Mapping[Key, str]  # row key -> structural fingerprint


def compute_layout(space: "SearchSpace", image_size: int) -> Layout:
    """Trace `space` at `image_size` once; use `space.layout(image_size)`, which keeps the result."""
    with torch.device("meta"):
        net = space.build()
        fixed = tuple(space.fixed_units(image_size))
    positions = trace_positions(space, net, image_size)
    units = tuple(units_at(positions, net)) + fixed
    return Layout(
        space=space.name,
        image_size=image_size,
        fingerprint=space.fingerprint(),
        positions=positions,
        fixed=fixed,
        units=units,
        base=Architecture(space=space.name, choices={p.label: p.candidates[0] for p in positions}),
        unit_fingerprints={unit_key(u): unit_fingerprint(u) for u in units},
    )


def trace_positions(space: "SearchSpace", net: nn.Module, image_size: int) -> tuple[Position, ...]:
    """Each position's input shape: the first candidate of every position is frozen into a
    copy of the (meta-device) `net`, and forward pre-hooks record what reaches each."""
    with torch.device("meta"):
        x = space.example_input(image_size)
    blocks = choice_blocks(net)
    first = Architecture(space=space.name, choices={label: b.names[0] for label, (_, b) in blocks.items()})
    frozen = freeze(net, first)
    shapes: dict[str, Shape] = {}

    def recorder(label: str):
        def hook(_module, args):
            shapes.setdefault(label, tuple(args[0].shape))  # returns None: inputs unchanged

        return hook

    hooks = [frozen.get_submodule(path).register_forward_pre_hook(recorder(label)) for label, (path, _) in blocks.items()]
    try:
        with torch.no_grad():
            frozen(x)
    finally:
        for hook in hooks:
            hook.remove()
    return tuple(Position(label, path, block.names, shapes[label]) for label, (path, block) in blocks.items())


def unit_fingerprint(unit: Unit) -> str:
    """A stable hash of the unit's kind, input shape and module structure (never its weights)."""
    parts: list[Any] = [unit.kind, shape_str(unit.input_shape)]
    for path, module in unit.module.named_modules():
        tensors = [(name, list(t.shape), str(t.dtype)) for name, t in
                   [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)] if t is not None]
        parts.append([path, type(module).__qualname__, _hyper_parameters(module), tensors])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _hyper_parameters(module: nn.Module) -> dict[str, Any]:
    """The module's plain public attributes (kernel size, stride, groups, eps, ...): what
    changes its compute besides tensor shapes. `training` is left out: it is a mode."""
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training" and _plain(v)}


def _plain(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))
