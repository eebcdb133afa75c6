"""Where a network's time goes: per-layer times grouped by the module that owns them.

The paper's first step is to profile the base network and find the slow operations
(on the SM8650 NPU: channel LayerNorm and NAFNet's global-pool channel attention).
A backend's `breakdown` gives per-layer times whose names carry module paths
(`hwnas.deploy.onnx_export` names a dynamo export's nodes `/enc0.0.norm1/ReduceMean`, the
TorchScript exporter `/enc0/enc0.0/norm1/ReduceMean`; both read here); this module
maps each name to the module that produced it and groups the times -- generically,
by module class, with no knowledge of any particular network:

- a module built only from `torch.nn` parts (a custom LayerNorm, an attention block,
  a Conv-BN-ReLU block) is one group, named by its class;
- inside a module that holds other custom modules (a NAF block, the network), a
  `torch.nn` layer is grouped by its kind (`Conv2d 1x1`, `Conv2d 3x3 depthwise`) and
  the module's own operations (residual additions, padding) as `<Class> (own ops)`;
- names that carry no module path (layout reorders a runtime inserted) are grouped as
  `<op type> (runtime)`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def _is_torch_nn(m: "nn.Module") -> bool:
    return type(m).__module__.startswith("torch.nn.")


def module_path(name: str, modules: dict[str, "nn.Module"]) -> str | None:
    """The module path a layer name points into ('' for the root), None if it has none.

    Scope components are attribute names (`norm1`), or the parent's name plus an index
    for container children (`enc0` then `enc0.0`); a module called twice gets `_1`,
    `_2` on its later calls (`sg_1`). Walks as deep as the components resolve.
    """
    if "/" not in name:
        return None
    parts = [p for p in name.split("/") if p]
    path, prev = "", None
    for part in parts:
        found = None
        for rel in _relatives(part, prev):
            child = f"{path}.{rel}" if path else rel
            if child in modules:
                found = child
                break
        if found is None:
            break
        path, prev = found, part
    return path


def _relatives(part: str, prev: str | None) -> list[str]:
    out = []
    for p in (part, re.sub(r"_\d+$", "", part)):
        if prev and p.startswith(prev + "."):
            out.append(p[len(prev) + 1:])
        out.append(p)
    return out


def _describe_layer(m: "nn.Module") -> str:
    from torch import nn

    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        text = f"Conv2d {kh}x{kw}"
        if m.groups > 1 and m.groups == m.in_channels:
            text += " depthwise"
        elif m.groups > 1:
            text += " grouped"
        if max(m.stride) > 1:
            text += f" stride {max(m.stride)}"
        return text
    return type(m).__name__


def group_of(path: str | None, modules: dict[str, "nn.Module"], op_type: str) -> str:
    """The group of a layer owned by the module at `path` (see the module docstring)."""
    if path is None:
        return f"{op_type} (runtime)"
    parts = path.split(".") if path else []
    chain = [modules[""]] + [modules[".".join(parts[: i + 1])] for i in range(len(parts))]
    depth = next((i for i in reversed(range(len(chain))) if not _is_torch_nn(chain[i])), 0)
    owner = chain[depth]
    composite = _is_torch_nn(owner) or any(not _is_torch_nn(m) for m in owner.modules() if m is not owner)
    if not composite:
        return type(owner).__name__
    layers = [m for m in chain[depth + 1:] if type(m).__name__ not in _CONTAINERS]
    return _describe_layer(layers[-1]) if layers else f"{type(owner).__name__} (own ops)"


def attribute(frame: "pd.DataFrame", module: "nn.Module") -> "pd.DataFrame":
    """`frame` (name, op_type, ms) plus `module` (the owning module path) and `group`."""
    modules = dict(module.named_modules())
    out = frame.copy()
    paths = [module_path(str(n), modules) for n in out["name"]]
    out["module"] = paths
    out["group"] = [group_of(p, modules, str(op)) for p, op in zip(paths, out["op_type"])]
    return out


def summarise(frame: "pd.DataFrame", by: str = "group") -> "pd.DataFrame":
    """Per `by` value: ms, share (% of all layer time), layers, and its op types by time."""
    total = float(frame["ms"].sum()) or 1.0
    rows = []
    for key, part in frame.groupby(by, sort=False):
        ops = part.groupby("op_type")["ms"].sum().sort_values(ascending=False)
        rows.append({
            by: key, "ms": float(part["ms"].sum()), "share": 100.0 * float(part["ms"].sum()) / total,
            "layers": int(len(part)), "op_types": ", ".join(ops.index[:4]),
        })
    import pandas as pd

    return pd.DataFrame(rows).sort_values("ms", ascending=False, ignore_index=True)
