"""Node names and file metadata of an exported ONNX file.

`name_nodes_by_module` names a dynamo export's nodes by module path (what per-layer
attribution to positions reads, `hwnas.tables.attribution`) and drops the rest of dynamo's
node metadata; `add_metadata` writes a shipped file's metadata_props and counts what
folding and fusion left (BatchNorm nodes, Conv -> Relu pairs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hwnas.tables.attribution import MODULE_PATH_KEY


# The node metadata a shipped file keeps: the node's module path (`MODULE_PATH_KEY`). What the
# dynamo exporter writes (module stack with class names, stack traces and FX node text naming the
# exporting machine's source paths) is dropped: a third of the file for a small network.


def name_nodes_by_module(model) -> None:
    """Rename every node of a dynamo-exported `model` (in place) to `/<module path>/<OpType>[_k]`
    and record the path in its metadata (`hwnas.module_path`), from the module stack dynamo keeps in each
    node's `pkg.torch.onnx.name_scopes` (innermost module's dotted path). A node the optimiser
    made (e.g. a Split) has no stack: it takes the longest module path its producers and
    consumers share. Top-level glue (the input padding, a skip addition) gets `/<OpType>`."""
    import ast

    nodes = list(model.graph.node)
    paths: list[str | None] = []
    for node in nodes:
        meta = {p.key: p.value for p in node.metadata_props}
        path = None
        if "pkg.torch.onnx.name_scopes" in meta:
            try:
                scopes = [s for s in ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])[:-1]
                          if not s.startswith("_empty_nn_module_stack")]  # torch.export's stand-in for no module
                path = scopes[-1] if scopes else ""
            except (ValueError, SyntaxError, TypeError):
                path = None
        paths.append(path)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    for _ in range(len(nodes)):  # fill the gaps from the neighbours until nothing changes
        changed = False
        for i, node in enumerate(nodes):
            if paths[i] is not None:
                continue
            near = [producer[n] for n in node.input if n in producer]
            near += [j for n in node.output for j in consumers.get(n, [])]
            known = [paths[j] for j in near if paths[j] is not None]
            if known:
                paths[i] = _common_module_path(known)
                changed = True
        if not changed:
            break
    used: dict[str, int] = {}
    for node, path in zip(nodes, paths):
        path = path or ""
        base = f"/{path}/{node.op_type}" if path else f"/{node.op_type}"
        k = used.get(base, 0)
        used[base] = k + 1
        node.name = base if k == 0 else f"{base}_{k}"
        del node.metadata_props[:]
        entry = node.metadata_props.add()
        entry.key, entry.value = MODULE_PATH_KEY, path


def _common_module_path(paths: Sequence[str]) -> str:
    parts = [p.split(".") if p else [] for p in paths]
    common: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def add_metadata(path: Path, metadata: dict[str, str]) -> dict:
    """Write `metadata` into the file's metadata_props; count BN nodes and Conv->Relu pairs."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    nodes = model.graph.node
    producers = {out: node for node in nodes for out in node.output}
    conv_relu = sum(
        1 for node in nodes
        if node.op_type == "Relu" and producers.get(node.input[0]) is not None and producers[node.input[0]].op_type == "Conv"
    )
    return {
        "batchnorm_nodes": sum(node.op_type == "BatchNormalization" for node in nodes),
        "conv_relu_pairs": conv_relu,
        "nodes": len(nodes),
    }
