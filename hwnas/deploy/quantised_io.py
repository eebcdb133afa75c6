"""A quantised unit as a whole int8 network runs it: 8-bit tensor in, 8-bit tensor out.

Quantised alone (QDQ), a unit starts with a QuantizeLinear of its float input and ends
with a DequantizeLinear of its output. Inside a whole int8 network neither is the unit's:
the tensor between two units is quantised once, by the producer's QuantizeLinear (which
ONNX Runtime fuses into the producer's integer kernel), and each consumer reads the
8-bit tensor through its own DequantizeLinear (fused into its kernel). So a unit timed
with its float boundaries pays a quantisation and a dequantisation per unit that the
network does not -- the int8 table over-predicted whole networks by 22-41% that way
(benchmarks/RESULTS.md, section 13). `quantised_io` cuts both: the input becomes the
8-bit tensor the leading QuantizeLinear made (now removed), the output the 8-bit tensor
its trailing DequantizeLinear read (now removed). What the units' sum then leaves out is
the network's own boundary: quantising the input image and dequantising the output
image (3-channel tensors, once per network).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantisedIO:
    """What `quantised_io` cut: whether the input and the output are now 8-bit tensors."""

    input: bool
    output: bool


def quantised_io(model) -> QuantisedIO:
    """Cut the leading QuantizeLinear and the trailing DequantizeLinear of the QDQ `model`
    (an onnx.ModelProto, edited in place) where its one input and one output have them."""
    return QuantisedIO(_quantised_input(model.graph), _quantised_output(model.graph))


def _quantised_input(graph) -> bool:
    """The input read as the tensor its QuantizeLinear made, when every consumer reads it that way."""
    x = graph.input[0]
    consumers = [n for n in graph.node if x.name in n.input]
    if not consumers or any(n.op_type != "QuantizeLinear" or n.input[0] != x.name for n in consumers):
        return False
    q = consumers[0]
    if any(list(n.input[1:]) != list(q.input[1:]) for n in consumers):  # one scale and zero point for all
        return False
    quantised = {n.output[0] for n in consumers}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in quantised:
                node.input[i] = x.name
    _drop(graph, consumers)
    x.type.tensor_type.elem_type = _elem_type(graph, q.input[2])
    return True


def _quantised_output(graph) -> bool:
    """The output taken before its DequantizeLinear, when that reads a QuantizeLinear's tensor."""
    y = graph.output[0]
    producers = {out: n for n in graph.node for out in n.output}
    dq = producers.get(y.name)
    if dq is None or dq.op_type != "DequantizeLinear" or getattr(producers.get(dq.input[0]), "op_type", None) != "QuantizeLinear":
        return False
    if any(dq.output[0] in n.input for n in graph.node):  # the float output is also used inside
        return False
    q = producers[dq.input[0]]
    q.output[0] = y.name  # the 8-bit tensor keeps the output's name
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == dq.input[0]:
                node.input[i] = y.name
    _drop(graph, [dq])
    y.type.tensor_type.elem_type = _elem_type(graph, q.input[2])
    return True


def _drop(graph, nodes) -> None:
    gone = {id(n) for n in nodes}
    kept = [n for n in graph.node if id(n) not in gone]
    del graph.node[:]
    graph.node.extend(kept)


def _elem_type(graph, name: str) -> int:
    """The element type of a zero point (an initializer): the quantised tensor's type."""
    return next(t.data_type for t in graph.initializer if t.name == name)
