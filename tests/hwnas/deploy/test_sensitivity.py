"""Per-activation sensitivity of an int8 file, and the fallback that keeps the worst at 16 bits."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from hwnas.deploy.onnx_export import to_onnx
from hwnas.deploy.quantize import output_psnr, quantised_tensors, quantize_static_onnx
from hwnas.deploy.sensitivity import GATE, Sensitivity, TensorSensitivity, choose_sixteen_bit, gated, layer_sensitivity, only_quantised

SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A float file and its int8 file, one activation made hard to quantise: a channel 100x larger than the rest."""
    tmp = tmp_path_factory.mktemp("sens")
    torch.manual_seed(0)
    first = nn.Conv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        first.weight[0] *= 100  # an outlier channel: 8 bits over its range leave the other channels few steps
    net = nn.Sequential(first, nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()
    src = to_onnx(net, SHAPE, tmp / "f.onnx", opset=17)
    rng = np.random.default_rng(0)
    calib = [rng.random(SHAPE, dtype=np.float32) for _ in range(8)]
    dst = quantize_static_onnx(src, tmp / "q.onnx", calib)
    check = rng.random((3, *SHAPE[1:]), dtype=np.float32)
    with torch.no_grad():
        reference = net(torch.from_numpy(check)).numpy()
    return src, onnx.load(str(dst)), check, reference


def run(model, inputs, **feed):
    """`model`'s outputs on N x C x H x W `inputs`, one at a time (the files take a batch of 1)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {session.get_inputs()[0].name: x[None], **feed})[0] for x in inputs])


def test_one_gate_quantises_exactly_one_tensor_as_the_file_does(files):
    _, model, check, _ = files
    tensors = list(quantised_tensors(model))
    one = gated(model)
    x = check[:2]
    np.testing.assert_allclose(run(one, x, **{GATE: np.zeros(len(tensors), np.float32)}), run(only_quantised(model, None), x), atol=1e-6)
    for i, tensor in enumerate(tensors):
        gates = np.eye(len(tensors), dtype=np.float32)[i]
        np.testing.assert_allclose(run(one, x, **{GATE: gates}), run(only_quantised(model, tensor), x), atol=1e-5)
    bypassed = only_quantised(model, None)
    assert not any(n.op_type == "QuantizeLinear" for n in bypassed.graph.node)  # only weights' DQs are left


def test_the_outlier_activation_is_the_most_sensitive(files):
    _, model, check, reference = files
    s = layer_sensitivity(model, check, reference)
    assert len(s.tensors) == len(quantised_tensors(model))
    assert [t.psnr_db for t in s.tensors] == sorted(t.psnr_db for t in s.tensors)
    assert s.tensors[0].tensor == "/1/Relu_output_0" and s.tensors[0].producer == "/0/Conv"  # the 100x channel (ReLU fused)
    assert s.weights_psnr_db == output_psnr(reference, run(only_quantised(model, None), check))  # int8 weights alone
    # ...are close to PyTorch: the quantiser fused each ReLU into its pair's range, and the bypass keeps a Relu there
    assert s.weights_psnr_db > 35 and sum(n.op_type == "Relu" for n in only_quantised(model, None).graph.node) == 2
    assert s.rows()[0]["rank"] == 1 and s.most_sensitive(2) == [t.tensor for t in s.tensors[:2]]


def test_keeping_the_most_sensitive_at_16_bits_recovers_quality(files, tmp_path):
    src, model, check, reference = files
    s = layer_sensitivity(model, check, reference)
    rng = np.random.default_rng(0)
    calib = [rng.random(SHAPE, dtype=np.float32) for _ in range(8)]

    def quantise(names):
        path = quantize_static_onnx(src, tmp_path / f"q{len(names)}.onnx", calib, sixteen_bit=names, cache=tmp_path / "r.json")
        return output_psnr(reference, run(onnx.load(str(path)), check))

    all8 = quantise([])
    kept, psnr, tried = choose_sixteen_bit(s, quantise, all8 + 3, None)
    assert kept[0] == "/1/Relu_output_0" and psnr >= all8 + 3
    assert [n for n, _ in tried][0] == 0 and dict(tried)[len(kept)] == psnr
    assert all(p < all8 + 3 for n, p in tried if n < len(kept))  # nothing fewer reached it


def fake(psnrs):
    """A Sensitivity of len(psnrs) tensors and a quantise() whose PSNR is psnrs[N] for the N most sensitive."""
    s = Sensitivity([TensorSensitivity(f"t{i}", f"n{i}", "Conv", float(i)) for i in range(len(psnrs) - 1)], 50.0)
    calls = []
    return s, lambda names: calls.append(len(names)) or psnrs[len(names)], calls


def test_the_fewest_tensors_that_reach_the_floor_are_found_by_doubling_and_bisecting():
    s, quantise, calls = fake([30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40])
    kept, psnr, tried = choose_sixteen_bit(s, quantise, 35.0, None)
    assert (kept, psnr) == (["t0", "t1", "t2", "t3", "t4"], 35) and len(calls) == len(set(calls)) < 8
    assert choose_sixteen_bit(*fake([36, 37])[:2], 35.0, None)[:2] == ([], 36)  # int8 alone reaches it
    assert choose_sixteen_bit(*fake([30, 31, 32])[:2], 35.0, None)[:2] == (["t0", "t1"], 32)  # never: all, and said
    assert choose_sixteen_bit(*fake([30, 31, 32])[:2], None, 1)[:2] == (["t0"], 31)  # a fixed count
    assert choose_sixteen_bit(*fake([30, 31, 32])[:2], None, 9)[:2] == (["t0", "t1"], 32)  # at most all
    s, quantise, calls = fake([30, 36])
    assert choose_sixteen_bit(s, quantise, 35.0, None, known={0: 30})[:2] == (["t0"], 36) and calls == [1]  # 0 not redone
