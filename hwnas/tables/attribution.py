"""Whole-network layer attribution: a profiled network's per-layer times, summed per unit.

For any backend that profiles a whole network per layer (AI Hub's `execution_detail`
today; a second device backend reuses this instead of copying it). A layer belongs to
the unit whose module path its name carries. `hwnas.deploy.onnx_export` names every node by
its module path itself -- from the module stack the dynamo exporter keeps on each node
(`/enc0.0.conv1/Conv`, the path also in the node's `hwnas.module_path` metadata), or
from the scopes of the TorchScript exporter it falls back to (`/enc0/enc0.0/conv1/Conv`)
-- and converters rewrite names (the QNN converter turns every non-alphanumeric run into
`_`: `_enc0_0_conv1_Conv`), so names and paths are compared in that normalised form, as
whole `_`-separated parts. An ONNX file itself is attributed by `node_owners`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from hwnas.contracts.capabilities import Layer  # noqa: F401 (re-exported: one profiled layer)

US_PER_MS = 1000.0
MODULE_PATH_KEY = "hwnas.module_path"  # node metadata: the module path `hwnas.deploy.onnx_export` wrote


def normalise(name: str) -> str:
    """`/enc0/enc0.0/conv1/Conv` and `_enc0_enc0_0_conv1_Conv` -> `enc0_enc0_0_conv1_Conv`."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def owner(layer_name: str, paths: Iterable[str]) -> str | None:
    """The module path carried by `layer_name` as whole name parts; the longest (innermost) wins,
    then the earliest in the name. None when no path matches (glue such as the input padding)."""
    padded = f"_{normalise(layer_name)}_"
    best: tuple[int, int, str] | None = None
    for path in paths:
        at = padded.find(f"_{normalise(path)}_")
        if at >= 0:
            rank = (-len(normalise(path)), at, path)
            best = rank if best is None or rank < best else best
    return best[2] if best else None


def node_owners(model, paths: Iterable[str]) -> dict[str, str | None]:
    """ONNX node name -> the path in `paths` it belongs to (None: glue outside every path), for an
    `onnx.ModelProto` exported by `hwnas.deploy.onnx_export`: from the node's module path metadata
    (the innermost of `paths` that is that module or holds it), else from its name (`owner`)."""
    paths = list(paths)
    out: dict[str, str | None] = {}
    for node in model.graph.node:
        module = next((p.value for p in node.metadata_props if p.key == MODULE_PATH_KEY), None)
        if module is None:
            out[node.name] = owner(node.name, paths)
            continue
        holders = [p for p in paths if module == p or module.startswith(p + ".")]
        out[node.name] = max(holders, key=len) if holders else None
    return out


def exported_name(layer_name: str, exported: Mapping[str, str]) -> str:
    """The exported ONNX node name a profiled layer stands for, given `exported` (normalised
    name -> node name); converter suffixes are dropped part by part
    (`_enc0_enc0_0_conv1_Conv_post_reshape` -> `/enc0/enc0.0/conv1/Conv`). Else the layer name."""
    parts = normalise(layer_name).split("_")
    for end in range(len(parts), 0, -1):
        found = exported.get("_".join(parts[:end]))
        if found is not None:
            return found
    return layer_name


@dataclass(frozen=True)
class Attribution:
    """Per-layer times summed per module path (µs, as assumed above)."""

    time_us: dict[str, float]  # path -> summed execution_time of its timed layers
    layer_count: dict[str, int]  # path -> matched layers (timed or not)
    unattributed_us: float  # timed layers that belong to no path
    untimed: int  # layers without execution_time


def attribute(rows: Sequence[Layer], paths: Iterable[str]) -> Attribution:
    """Sum each layer's time into the module path its name carries."""
    paths = list(paths)
    time_us = {p: 0.0 for p in paths}
    count = {p: 0 for p in paths}
    unattributed, untimed = 0.0, 0
    for layer in rows:
        path = owner(layer.name, paths)
        if layer.time_us is None:
            untimed += 1
        if path is None:
            unattributed += layer.time_us or 0.0
            continue
        count[path] += 1
        time_us[path] += layer.time_us or 0.0
    return Attribution(time_us, count, unattributed, untimed)


def op_type_ms(rows: Sequence[Layer]) -> dict[str, float]:
    """Milliseconds per layer type (e.g. Conv, ReduceMean), largest first; untimed layers skipped."""
    out: dict[str, float] = {}
    for layer in rows:
        if layer.time_us is not None:
            out[layer.type] = out.get(layer.type, 0.0) + layer.time_us / US_PER_MS
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
