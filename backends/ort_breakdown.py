"""The ONNX Runtime backend's per-node breakdown of one network (`hwnas profile --breakdown`):
ONNX Runtime's profiler over the timed passes, and its optimised graph's node names mapped
back to the exported graph's (`_NodeNames`)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from hwnas.backends.ort_session import call_of
from hwnas.contracts.latency import MeasurementError
from hwnas.contracts.space import Unit

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from hwnas.backends.onnxruntime import OnnxRuntimeBackend


def breakdown(backend: OnnxRuntimeBackend, module: nn.Module, input_shape: Sequence[int]) -> pd.DataFrame:
    """Per-node time from ONNX Runtime's profiler over `runs` passes (after `warmup`).

    Columns: `name` (the exported graph's node name, e.g. `/enc0/enc0.0/norm1/ReduceMean`;
    for nodes the runtime fused or re-laid out, the original node they stand for),
    `op_type` (as executed), `ms` (per pass), `runtime_name`. `frame.attrs["run_ms"]`
    is the median profiled pass, for comparing with the sum of node times.
    """
    import onnx
    import pandas as pd

    shape = tuple(int(d) for d in input_shape)
    unit = Unit("network", shape, module, kind="network")
    with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
        path = backend._export(unit, Path(tmp))
        graph = onnx.load(str(path), load_external_data=False).graph
        so = backend._session_options()
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        session = backend._session(path, unit, so)
        feed = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        call = call_of(session, feed)
        for _ in range(backend.options.warmup + backend.options.runs):
            call()
        events = json.loads(Path(session.end_profiling()).read_text())
    rows, run_ms = _node_times(events, skip_runs=backend.options.warmup)
    if not rows:
        raise MeasurementError("onnxruntime's profile holds no node times; try more --runs.")
    names = _NodeNames(graph)
    frame = pd.DataFrame(
        [{"name": names.original(rt, op), "op_type": op, "ms": us / 1e3 / backend.options.runs, "runtime_name": rt}
         for rt, (op, us) in rows.items()]
    )
    frame.attrs["run_ms"] = run_ms
    return frame


def _node_times(events: list[dict], skip_runs: int) -> tuple[dict[str, tuple[str, float]], float]:
    """runtime node name -> (op type, summed µs) over the profiled passes after the first
    `skip_runs`; and the median pass in ms."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"])
    kept = runs[skip_runs:]
    if not kept:
        return {}, 0.0
    start = kept[0]["ts"]
    out: dict[str, tuple[str, float]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time") or e["ts"] < start:
            continue
        node = name.removesuffix("_kernel_time")
        op = e.get("args", {}).get("op_name", "?")
        out[node] = (op, out.get(node, (op, 0.0))[1] + float(e["dur"]))
    return out, float(np.median([e["dur"] for e in kept])) / 1e3


class _NodeNames:
    """Maps node names of ONNX Runtime's optimised graph back to the exported graph.

    Most nodes keep their names. Nodes the runtime fused or converted to its blocked
    layout are named after a tensor (`/enc0/enc0.0/Mul_output_0_nchwc` is a Conv fused
    with the Mul after it): that tensor's producer is found, then the nearest node
    upstream with the executed op type (the Conv). Fusions named inside a node's scope
    (`.../sg/Slice_1/GatherSliceToSplitFusion`) map to that node. Anything else (layout
    reorders the runtime inserted) keeps its runtime name.
    """

    def __init__(self, graph):
        self.nodes = {n.name: n for n in graph.node}
        self.producer = {out: n for n in graph.node for out in n.output}

    def original(self, runtime_name: str, op_type: str) -> str:
        if runtime_name in self.nodes:
            return runtime_name
        parts = runtime_name.split("_")
        for end in range(len(parts), 0, -1):
            tensor = "_".join(parts[:end])
            if tensor in self.producer:
                return self._upstream(self.producer[tensor], op_type).name
        head = runtime_name
        while "/" in head.strip("/"):
            head = head.rsplit("/", 1)[0]
            if head in self.nodes:
                return head
        return runtime_name

    def _upstream(self, node, op_type: str, depth: int = 4):
        frontier, seen = [node], set()
        for _ in range(depth):
            for n in frontier:
                if n.op_type == op_type:
                    return n
            seen.update(id(n) for n in frontier)
            frontier = [self.producer[i] for n in frontier for i in n.input if i in self.producer and id(self.producer[i]) not in seen]
        return node
