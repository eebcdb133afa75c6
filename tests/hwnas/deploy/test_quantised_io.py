"""An int8 unit as a whole int8 network runs it: 8-bit input and output, no Q/DQ of its own at the boundaries."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from hwnas.deploy.onnx_export import to_onnx
from hwnas.deploy.quantised_io import quantised_io
from hwnas.deploy.quantize import quantised_tensors, quantize_static_onnx

SHAPE = (1, 4, 16, 16)


def quantised_unit(tmp_path, net):
    torch.manual_seed(0)
    src = to_onnx(net.eval(), SHAPE, tmp_path / "f.onnx", opset=17)
    rng = np.random.default_rng(0)
    return quantize_static_onnx(src, tmp_path / "q.onnx", [rng.standard_normal(SHAPE, dtype=np.float32) for _ in range(4)])


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_a_unit_takes_and_gives_8_bit_tensors_with_no_boundary_q_or_dq(tmp_path):
    torch.manual_seed(0)
    path = quantised_unit(tmp_path, nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)))
    whole = onnx.load(str(path))
    cut = onnx.load(str(path))
    done = quantised_io(cut)
    assert done.input and done.output
    graph = cut.graph
    x, y = graph.input[0].name, graph.output[0].name
    assert not any(n.op_type == "QuantizeLinear" and x in n.input for n in graph.node)
    assert not any(n.op_type == "DequantizeLinear" and y in n.output for n in graph.node)
    assert graph.input[0].type.tensor_type.elem_type == graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert sum(n.op_type == "QuantizeLinear" for n in whole.graph.node) - sum(n.op_type == "QuantizeLinear" for n in graph.node) == 1
    # The same numbers as the unit with its boundaries: the 8-bit input its Q made, the 8-bit output its DQ read.
    scale, zero, _ = quantised_tensors(whole)[x]
    x_float = np.random.default_rng(1).standard_normal(SHAPE, dtype=np.float32)
    x_8bit = np.clip(np.rint(x_float / scale) + zero, 0, 255).astype(np.uint8)
    y_scale, y_zero, _ = next(v for k, v in quantised_tensors(whole).items() if _feeds_output(whole, k))
    y_8bit = run(cut, x_8bit)
    assert y_8bit.dtype == np.uint8
    np.testing.assert_allclose((y_8bit.astype(np.float32) - y_zero) * y_scale, run(whole, x_float), atol=1e-6)


def _feeds_output(model, tensor):
    """Whether `tensor`'s QuantizeLinear is the one whose DequantizeLinear makes the graph output."""
    graph = model.graph
    q = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor)
    return any(n.op_type == "DequantizeLinear" and n.input[0] == q.output[0] and graph.output[0].name in n.output
               for n in graph.node)


def test_a_unit_whose_boundary_is_float_keeps_it(tmp_path):
    """An input read by an op the quantiser leaves in float has no QuantizeLinear to take over: kept, and said."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Shape", ["x"], ["s"]), onnx.helper.make_node("Cast", ["s"], ["y"], to=onnx.TensorProto.FLOAT)],
        "float", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(SHAPE))],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    cut = quantised_io(model)
    assert (cut.input, cut.output) == (False, False)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT and len(model.graph.node) == 2
