"""Which activations int8 hurts most, and the mixed-precision fallback that keeps them at 16 bits.

Sensitivity, one tensor at a time (the AIMET / qai_hub_models practice): the quantised
file with every activation QuantizeLinear/DequantizeLinear pair bypassed but one tensor's,
run on held-out inputs; that tensor's score is the PSNR of the output against the same
file with all pairs bypassed (int8 weights, float activations), so it measures what
quantising that one tensor costs, with the file's own scale and zero point. Lowest PSNR:
most sensitive. `weights_psnr_db` (the all-bypassed file against PyTorch) says what the
8-bit weights alone cost. A pair whose range starts at zero (zero point at the type's lowest
value) is also a ReLU: ONNX Runtime's quantiser drops a Relu after a Conv and lets the
quantised range clip, so bypassing it keeps a Relu in its place (without it the "float"
file has no activation function). One session serves every tensor: each pair is gated by an
entry of an extra input (t + g * (DQ(Q(t)) - t), g 0 or 1), so a network with hundreds
of activations is not compiled hundreds of times.

The fallback (`choose_sixteen_bit`): quantise again with the N most sensitive tensors at
16-bit activations (`hwnas.deploy.quantize.quantize_static_onnx(sixteen_bit=...)`), N fixed or
the fewest that reach a PSNR floor, found by doubling then bisecting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hwnas.deploy.quantize import output_psnr, quantised_tensors


@dataclass(frozen=True)
class TensorSensitivity:
    """One activation tensor: the node that makes it and the output PSNR with only it quantised."""

    tensor: str
    producer: str  # node name ("input" for the graph's input)
    op_type: str
    psnr_db: float


@dataclass(frozen=True)
class Sensitivity:
    """Every quantised activation tensor, most sensitive first, and what the weights alone cost."""

    tensors: list[TensorSensitivity]
    weights_psnr_db: float  # int8 weights, float activations, against PyTorch

    def most_sensitive(self, n: int) -> list[str]:
        return [t.tensor for t in self.tensors[:n]]

    def rows(self) -> list[dict]:
        return [{"rank": i + 1, "tensor": t.tensor, "producer": t.producer, "op_type": t.op_type,
                 "psnr_db": round(t.psnr_db, 3)} for i, t in enumerate(self.tensors)]


def layer_sensitivity(quantised, check: np.ndarray, reference: np.ndarray) -> Sensitivity:
    """The sensitivity of every activation tensor of the QDQ model `quantised` (an onnx.ModelProto),
    run on `check` (N x C x H x W); `reference`: PyTorch's float outputs on `check`."""
    tensors = list(quantised_tensors(quantised))
    run = _gated_runner(gated(quantised), check)
    float_acts = run(np.zeros(len(tensors), np.float32))
    producers = {out: n for n in quantised.graph.node for out in n.output}
    rows = []
    for i, tensor in enumerate(tensors):
        psnr = output_psnr(float_acts, run(np.eye(len(tensors), dtype=np.float32)[i]))
        node = producers.get(tensor)
        rows.append(TensorSensitivity(tensor, node.name if node else "input", node.op_type if node else "Input", psnr))
    rows.sort(key=lambda r: r.psnr_db)
    return Sensitivity(rows, output_psnr(reference, float_acts))


GATE = "hwnas_quantise"  # the extra input of `gated`: one 0/1 entry per quantised activation tensor


_LOWEST = {2: 0, 3: -128, 4: 0, 5: -32768}  # ONNX UINT8, INT8, UINT16, INT16 -> the type's lowest value


def float_of(tensor: str, activations: dict[str, tuple[float, int, int]], inputs: set[str]) -> str:
    """The float tensor that stands for `tensor`'s Q/DQ pair when it is bypassed: `tensor` itself, or its Relu
    when the pair clips at zero (see the module docstring) -- never for a graph input, whose range is the data's."""
    _, zero, elem = activations[tensor]
    return f"{tensor}_hwnas_relu" if _LOWEST.get(elem) == zero and tensor not in inputs else tensor


def gated(model):
    """The QDQ `model` with every activation Q/DQ pair bypassed, and tensor i (in `quantised_tensors`
    order) replaced by b + GATE[i] * (DQ(Q(b)) - b), its file's scale and zero point (b: `float_of`)."""
    from onnx import TensorProto, helper

    activations, inputs = quantised_tensors(model), {i.name for i in model.graph.input}
    tensors = {float_of(t, activations, inputs): v for t, v in activations.items()}
    model = only_quantised(model, None)
    graph = model.graph
    renamed = {t: f"{t}_hwnas_gated" for t in tensors}
    for node in graph.node:
        for j, name in enumerate(node.input):
            node.input[j] = renamed.get(name, name)
    after: dict[str, list] = {}  # producer's output -> the gate's nodes, placed right after it
    for i, (t, (scale, zero, elem)) in enumerate(tensors.items()):
        p = f"{t}_hwnas_gate"
        graph.initializer.extend([helper.make_tensor(p + "_scale", TensorProto.FLOAT, [], [scale]),
                                  helper.make_tensor(p + "_zero", elem, [], [zero]),
                                  helper.make_tensor(p + "_index", TensorProto.INT64, [], [i])])
        after[t] = [helper.make_node("QuantizeLinear", [t, p + "_scale", p + "_zero"], [p + "_q"]),
                    helper.make_node("DequantizeLinear", [p + "_q", p + "_scale", p + "_zero"], [p + "_dq"]),
                    helper.make_node("Sub", [p + "_dq", t], [p + "_error"]),
                    helper.make_node("Gather", [GATE, p + "_index"], [p + "_on"]),
                    helper.make_node("Mul", [p + "_error", p + "_on"], [p + "_added"]),
                    helper.make_node("Add", [t, p + "_added"], [renamed[t]])]
    nodes = [n for t in after if t in {i.name for i in graph.input} for n in after[t]]
    for node in graph.node:
        nodes += [node, *(n for out in node.output for n in after.get(out, []))]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.append(helper.make_tensor_value_info(GATE, TensorProto.FLOAT, [len(tensors)]))
    return model


def only_quantised(model, keep: str | None):
    """A copy of the QDQ `model` with every activation Q/DQ pair bypassed except those of tensor
    `keep` (None: all bypassed). Weights stay as stored (int8 behind their DequantizeLinear)."""
    import onnx
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    activations = quantised_tensors(model)
    q_nodes = {n.output[0]: n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in activations
               and n.input[0] != keep}
    inputs = {i.name for i in graph.input}
    dq_nodes = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in q_nodes]
    source = {d.output[0]: float_of(q_nodes[d.input[0]].input[0], activations, inputs)
              for d in dq_nodes}  # dequantised name -> the float tensor standing for it
    relus = {t: helper.make_node("Relu", [t], [f]) for t in activations if (f := float_of(t, activations, inputs)) != t
             and f in source.values()}
    dropped = {id(n) for n in [*q_nodes.values(), *dq_nodes]}
    kept = [n for n in graph.node if id(n) not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = source.get(name, name)
    nodes = []
    for node in kept:
        nodes += [node, *(relus[out] for out in node.output if out in relus)]
    outputs = [helper.make_node("Identity", [source[o.name]], [o.name]) for o in graph.output if o.name in source]
    del graph.node[:]
    graph.node.extend(nodes + outputs)  # producers before consumers: the Identity nodes read earlier tensors
    return model


def choose_sixteen_bit(sensitivity: Sensitivity, quantise: Callable[[Sequence[str]], float],
                       floor: float | None, fixed: int | None,
                       known: dict[int, float] | None = None) -> tuple[list[str], float, list[tuple[int, float]]]:
    """The tensors to keep at 16 bits: the `fixed` most sensitive, or (floor given) the fewest
    most sensitive whose quantised file reaches `floor` dB; `quantise(tensors) -> PSNR` makes and
    checks a file (`known`: N -> PSNR of files made already). Returns the tensors, their file's PSNR
    and every (N, PSNR) tried."""
    tried: dict[int, float] = dict(known or {})

    def attempt(n: int) -> float:
        if n not in tried:
            tried[n] = quantise(sensitivity.most_sensitive(n))
        return tried[n]

    total = len(sensitivity.tensors)
    if fixed is not None:
        n = min(fixed, total)
        return sensitivity.most_sensitive(n), attempt(n), sorted(tried.items())
    low, high = 0, 1  # low: the largest N known to miss the floor
    if attempt(0) >= floor:
        return [], tried[0], sorted(tried.items())
    while attempt(high) < floor:
        if high == total:
            return sensitivity.most_sensitive(high), tried[high], sorted(tried.items())
        low, high = high, min(2 * high, total)
    while high - low > 1:  # the fewest N that reaches it (PSNR grows with N, near enough to bisect)
        mid = (low + high) // 2
        low, high = (low, mid) if attempt(mid) >= floor else (mid, high)
    return sensitivity.most_sensitive(high), tried[high], sorted(tried.items())


def _gated_runner(model, inputs: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """gates -> the outputs of `model` (from `gated`) on `inputs`, one session for all calls."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # keep each Q/DQ pair as written
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = next(i.name for i in session.get_inputs() if i.name != GATE)
    return lambda gates: np.concatenate([session.run(None, {name: x[None], GATE: gates})[0] for x in inputs])
