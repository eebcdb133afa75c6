import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from hwnas.contracts.errors import HwnasError
from hwnas.deploy.onnx_export import to_onnx
from hwnas.deploy.quantize import check_precision, output_psnr, quantised_tensors, quantize_static_onnx


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

    from hwnas.backends.onnxruntime import OnnxRuntimeOptions
    from hwnas.contracts.config import ExportConfig

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


def small_net_file(tmp_path, size=16):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()
    return to_onnx(net, (1, 3, size, size), tmp_path / "f.onnx", opset=17)


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_every_calibration_method_quantises_and_prints_nothing_on_stdout(tmp_path, method, capsys):
    src = small_net_file(tmp_path)
    rng = np.random.default_rng(0)
    calib = [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(16)]  # two passes of CALIBRATION_STRIDE
    dst = quantize_static_onnx(src, tmp_path / "q.onnx", calib, "int8", method=method)
    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    ref = run(src, x)
    assert output_psnr(ref, run(dst, x), float(ref.max() - ref.min())) > 30
    assert capsys.readouterr().out == ""  # the histogram calibrators' progress stays off stdout (--json)


def test_methods_set_different_ranges_and_an_unknown_one_is_refused(tmp_path):
    """One outlier pixel sets min/max's input range; the 99.999th percentile ignores it."""
    src = small_net_file(tmp_path, 64)
    rng = np.random.default_rng(0)
    calib = [rng.random((1, 3, 64, 64), dtype=np.float32) for _ in range(16)]  # 196608 values: 0.001% is 2
    calib[3][0, 0, 5, 5] = 50.0
    scales = {m: quantised_tensors(onnx.load(str(quantize_static_onnx(src, tmp_path / f"{m}.onnx", calib, method=m))))
              for m in ("minmax", "percentile")}
    assert scales["minmax"]["x"][0] == pytest.approx(50 / 255, rel=1e-3) and scales["percentile"]["x"][0] < 2.5 / 255
    with pytest.raises(ValueError, match="unknown calibration method 'kl'"):
        quantize_static_onnx(src, tmp_path / "x.onnx", calib, method="kl")


def test_per_tensor_weights_have_one_scale(tmp_path):
    src = small_net_file(tmp_path)
    calib = [np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)]
    scales = {}
    for per_channel in (True, False):
        model = onnx.load(str(quantize_static_onnx(src, tmp_path / f"{per_channel}.onnx", calib, per_channel=per_channel)))
        consts = {t.name: t for t in model.graph.initializer}
        weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in consts
                   and consts[n.input[0]].data_type == onnx.TensorProto.INT8]
        scales[per_channel] = [onnx.numpy_helper.to_array(consts[n.input[1]]).size for n in weights]
    assert scales[True] == [8, 8, 3] and scales[False] == [1, 1, 1]


def test_named_activations_are_kept_at_16_bits_from_the_same_calibration(tmp_path):
    src = small_net_file(tmp_path)
    calib = [np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32) for _ in range(4)]
    cache = tmp_path / "ranges.json"
    plain = quantised_tensors(onnx.load(str(quantize_static_onnx(src, tmp_path / "a.onnx", calib, cache=cache))))
    assert cache.is_file()
    keep = [t for t in plain if t != "x"][:1]
    mixed = quantised_tensors(onnx.load(str(quantize_static_onnx(src, tmp_path / "b.onnx", calib, sixteen_bit=keep, cache=cache))))
    assert mixed.keys() == plain.keys()
    for tensor, (scale, zero, elem) in mixed.items():
        if tensor in keep:
            assert elem == onnx.TensorProto.UINT16 and scale < plain[tensor][0] / 200  # the same range in 65536 steps
        else:
            assert (scale, zero, elem) == plain[tensor] and elem == onnx.TensorProto.UINT8
