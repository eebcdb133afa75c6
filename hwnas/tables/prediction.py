"""How fast is this model on that device? The latency table's prediction for one network (`hwnas.predict`).

A table predicts a network as the sum of its rows: every fixed part (stem, resampling,
head) plus the candidate chosen at every position, at the table's image size -- what
the search optimises and what `hwnas profile --lut` compares with a measurement. The
network may be given as

- an `Architecture` (or an arch.json path): of the table's own space;
- a model file (`model.pt` or a training checkpoint) or an ONNX file from `hwnas export`:
  each says its space and architecture, and must be of the table's space;
- anything `hwnas.load` returns (it says its space and architecture);
- a plain PyTorch network of the table's space (`freeze(space, arch)`, `hwnas.load(...).module`):
  the candidate at each position is recognised by its structure (`hwnas.contracts.layout`).

The module is named `prediction`, not `predict`: `hwnas.predict` is the function, and a
submodule of that name would replace it on the package once imported.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, predict_ms
from hwnas.contracts.space import Architecture, SearchSpace

if TYPE_CHECKING:
    from torch import nn

    from hwnas.contracts.config import SpaceSpec
    from hwnas.deploy.inference import LoadedModel

ModelLike = Union[Architecture, str, Path, "LoadedModel", "nn.Module"]
ACCEPTS = "an Architecture, an arch.json, a model.pt, an ONNX file from `hwnas export`, a model from hwnas.load or a network"


@dataclass(frozen=True)
class UnitTime:
    """One table row the prediction sums: a fixed part, or the candidate chosen at `position`."""

    kind: str  # "fixed" or "candidate"
    name: str
    input_shape: tuple[int, ...]
    ms: float
    position: str | None = None


@dataclass(frozen=True)
class LatencyPrediction:
    """The table's prediction for one network: `total_ms` and the `units` it sums (fixed parts first)."""

    total_ms: float
    units: tuple[UnitTime, ...]
    architecture: Architecture
    table: str  # the table's path ("" for a table given as an object)
    backend: str
    device: str
    precision: str
    image_size: int

    @property
    def fixed_ms(self) -> float:
        return sum(u.ms for u in self.units if u.kind == "fixed")

    def by_position(self) -> dict[str, float]:
        """Position label -> ms of the candidate chosen there."""
        return {u.position: u.ms for u in self.units if u.position is not None}

    def as_dict(self) -> dict[str, Any]:
        return {"predicted_ms": self.total_ms, "fixed_ms": self.fixed_ms, "table": self.table, "backend": self.backend,
                "device": self.device, "precision": self.precision, "image_size": self.image_size,
                "architecture": self.architecture.model_dump(),
                "units": [{"kind": u.kind, "name": u.name, "position": u.position,
                           "input_shape": "x".join(map(str, u.input_shape)), "ms": u.ms} for u in self.units]}


def predict(model: ModelLike, table: "str | Path | LatencyTable") -> LatencyPrediction:
    """The table's predicted latency of `model` (see the module docstring for what `model` may be)."""
    table, source = _open_table(table)
    spec, arch, precision = _describe(model, table)
    space = _space_of(spec, table) if spec is not None else _table_space(table)
    if arch is None:  # a plain network: recognise its candidates
        arch = _recognise(model, space, table.meta.image_size)
    if precision is not None and precision != _precision(table):
        raise HwnasError(f"model is exported at precision {precision}, but the table times {_precision(table)}; pass a "
                         f"table built at precision {precision} (`hwnas build-lut --precision {precision}`) or the "
                         f"{_precision(table)} export.")
    return table_prediction(table, space, arch, source)


def table_prediction(table: LatencyTable, space: SearchSpace, arch: Architecture, source: str = "") -> LatencyPrediction:
    """`arch` of `space` predicted by `table` (checked against the space): the sum `hwnas profile` compares."""
    import torch

    size = table.meta.image_size
    positions = space.positions(size)
    arch.check(space.name, {p.label: p.candidates for p in positions})
    with torch.device("meta"):  # only names and shapes are needed: nothing is allocated
        fixed = space.fixed_units(size)
    total = predict_ms(table, positions, fixed, arch)  # the very sum the search and `profile` use
    units = [UnitTime("fixed", u.name, tuple(u.input_shape), table.ms(u.name, u.input_shape, kind="fixed")) for u in fixed]
    units += [UnitTime("candidate", arch.choices[p.label], tuple(p.input_shape), table.ms(arch.choices[p.label], p.input_shape),
                       p.label) for p in positions]
    return LatencyPrediction(total, tuple(units), arch, source, table.meta.backend, table.meta.device, _precision(table), size)


# -- the table ------------------------------------------------------------------------------


def _open_table(table: "str | Path | LatencyTable") -> tuple[LatencyTable, str]:
    if isinstance(table, LatencyTable):
        return table, ""
    if not isinstance(table, (str, Path)):
        raise HwnasError(f"table is a {type(table).__name__}; pass the path of a table from `hwnas build-lut` "
                         "(or a LatencyTable).")
    return LatencyTable.load(table), str(table)


def _precision(table: LatencyTable) -> str:
    return table.meta.precision


def _table_space(table: LatencyTable) -> SearchSpace:
    """The space the table was built for, rebuilt from its sidecar."""
    from hwnas.contracts.plugins import get_space

    meta = table.meta
    space = get_space(meta.space).from_options(meta.preset, **meta.space_config)
    _check(table, space)
    return space


def _space_of(spec: "SpaceSpec", table: LatencyTable) -> SearchSpace:
    """The model's own space, refused unless the table was built for it."""
    space = spec.create()
    meta = table.meta
    if space.name != meta.space:
        raise HwnasError(f"model is a {space.name} network, but the table was built for {meta.space}; pass a table "
                         f"built for {space.name} (`hwnas build-lut --space {space.name}`).")
    _check(table, space, f"model is a {space.name} (preset {space.preset}) network, but the table was built for "
                          f"another {meta.space} configuration (preset {meta.preset}); pass a table built for the model's "
                          "space (`hwnas build-lut` with its preset and options).")
    return space


def _check(table: LatencyTable, space: SearchSpace, mismatch: str | None = None) -> None:
    """The table's rows must be of `space`'s units (row fingerprints where the table has them)."""
    units = space.layout(table.meta.image_size).unit_fingerprints
    if table.fingerprinted:
        fits = bool(table.matching(units)) and not table.stale(units)
    else:
        fits = table.meta.fingerprint == space.fingerprint()
    if not fits:
        raise HwnasError(mismatch or f"the table's rows no longer fit the {space.name} space they were measured for "
                         "(its blocks changed); rebuild the table with `hwnas build-lut`.")


# -- the model --------------------------------------------------------------------------------


def _describe(model: ModelLike, table: LatencyTable) -> "tuple[SpaceSpec | None, Architecture | None, str | None]":
    """(space spec or None: the table's space, architecture or None: recognise it, precision of an export or None)."""
    if isinstance(model, Architecture):
        return None, model, None
    if isinstance(model, (str, Path)):
        return _describe_file(Path(model))
    if hasattr(model, "spec") and isinstance(getattr(model, "arch", None), Architecture):  # hwnas.load's LoadedModel
        return model.spec, model.arch, None
    from torch import nn

    if isinstance(model, nn.Module):
        return None, None, None
    raise HwnasError(f"model is a {type(model).__name__}; pass {ACCEPTS}.")


def _describe_file(path: Path) -> "tuple[SpaceSpec | None, Architecture | None, str | None]":
    if not path.is_file():
        raise HwnasError(f"model {path} does not exist; pass {ACCEPTS}.")
    if path.suffix.lower() == ".json":
        return None, Architecture.load(path), None
    if zipfile.is_zipfile(path):  # torch.save writes a zip archive
        from hwnas.deploy.modelfile import load_model

        model = load_model(path)
        return model.spec, model.arch, None
    spec, arch, precision = _exported(path)
    return spec, arch, precision


def _exported(path: Path) -> "tuple[SpaceSpec, Architecture, str]":
    """Space, architecture and precision from the metadata `hwnas export` writes into an ONNX file."""
    import onnx

    from hwnas.tables.profiling import exported_architecture

    named = exported_architecture(path)
    if named is None:
        raise HwnasError(f"model {path} is neither a model.pt nor an ONNX file from `hwnas export` (no hwnas metadata "
                         "names its architecture); pass the file `hwnas export` wrote, or its arch.json.")
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return named[0], named[1], meta.get("precision", "fp32")  # `hwnas export` marks only quantised files


def _recognise(net: "nn.Module", space: SearchSpace, image_size: int) -> Architecture:
    """The architecture of a plain network of `space`: at each position, the candidate of the same structure
    (class names, hyper-parameters and tensor shapes at that input shape; never weights)."""
    import torch

    from hwnas.contracts.layout import unit_fingerprint
    from hwnas.contracts.space import ChoiceBlock, Unit, choice_blocks

    with torch.device("meta"):
        supernet = space.build()
    blocks = choice_blocks(supernet)
    choices = {}
    for p in space.positions(image_size):
        try:
            module = net.get_submodule(p.path)
        except AttributeError:
            raise HwnasError(f"model is not a {space.name} (preset {space.preset}) network, the table's space: it has no "
                             f"module {p.path!r} (position {p.label}); pass a network of the table's space, or a table "
                             "built for the network's.") from None
        if isinstance(module, ChoiceBlock):
            raise HwnasError(f"model still holds every candidate at position {p.label} (a super-net); pass its derived "
                             "architecture (arch.json) or the frozen network (`hwnas.freeze(space, arch)`).")
        own = unit_fingerprint(Unit(p.label, p.input_shape, module))
        block = blocks[p.label][1]
        same = [name for name in block.names if unit_fingerprint(Unit(p.label, p.input_shape, block.candidates[name])) == own]
        if len(same) != 1:
            what = "none of its candidates" if not same else f"several candidates ({', '.join(same)})"
            raise HwnasError(f"the module at position {p.label} of model matches {what} of the table's {space.name} "
                             f"(preset {space.preset}) space; pass its architecture (arch.json) instead.")
        choices[p.label] = same[0]
    return Architecture(space=space.name, choices=choices)
