import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.onnx_export import to_onnx
from hwnas.quantize import check_precision, output_psnr, quantize_static_onnx


def test_a_float_model_quantises_to_qdq_int8_that_stays_close_to_float(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()
    src = to_onnx(net, (1, 3, 16, 16), tmp_path / "f.onnx", opset=17)
    rng = np.random.default_rng(0)
    calib = [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(4)]
    dst = quantize_static_onnx(src, tmp_path / "q.onnx", calib, "int8")
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    ref, q = run(src, x), run(dst, x)
    peak = float(ref.max() - ref.min())
    assert output_psnr(ref, q, peak) > 30


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_precisions_outside_a_backend_s_list_are_refused_in_one_sentence():
    assert check_precision("int8", ("fp32", "int8"), "onnxruntime") == "int8"
    with pytest.raises(HwnasError, match="does not run w8a16; it supports fp32, int8"):
        check_precision("w8a16", ("fp32", "int8"), "onnxruntime on the CPU")
    with pytest.raises(HwnasError, match="unknown precision 'int4'"):
        check_precision("int4", ("fp32",), "x")


def test_output_psnr_is_infinite_for_identical_outputs():
    a = np.ones((2, 2))
    assert output_psnr(a, a) == float("inf") and output_psnr(a, a + 0.1) == pytest.approx(20.0)


def test_every_precision_setting_is_checked_by_the_one_check():
    """The backends' options and `hwnas export` refuse with check_precision's sentence."""
    import pydantic

    from backends.onnxruntime import OnnxRuntimeOptions
    from hwnas.config import ExportConfig

    with pytest.raises(pydantic.ValidationError, match="onnxruntime on this CPU does not run w8a16"):
        OnnxRuntimeOptions(precision="w8a16")
    with pytest.raises(pydantic.ValidationError, match="hwnas export does not run fp16"):
        ExportConfig(model="m.pt", out="m.onnx", precision="fp16")
    assert ExportConfig(model="m.pt", out="m.onnx", precision="w8a16").precision == "w8a16"


def test_the_quantisers_info_chatter_stays_out_of_the_users_log(tmp_path, caplog):
    """ONNX Runtime logs one root-logger INFO line per bias shared by two nodes; hwnas drops those, not warnings."""
    import logging

    a, b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 1)
    b.bias = a.bias  # one initializer, two consumers: the quantiser copies it and says so
    src = to_onnx(nn.Sequential(a, nn.ReLU(), b).eval(), (1, 3, 16, 16), tmp_path / "f.onnx", opset=17)
    calib = [np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)]
    with caplog.at_level(logging.INFO):
        quantize_static_onnx(src, tmp_path / "q.onnx", calib, "int8")
        logging.getLogger().info("hwnas's own line")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("Created a copy" in m for m in messages) and "hwnas's own line" in messages
    assert (tmp_path / "q.onnx").is_file() and logging.getLogger().filters == []
