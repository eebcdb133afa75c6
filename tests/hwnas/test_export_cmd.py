"""`export_model`: BatchNorm folded away, metadata, verified error, dynamic and static shapes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from hwnas.contracts.config import SpaceSpec
from hwnas.contracts.errors import HwnasError
from hwnas.deploy.onnx_export import export_model
from hwnas.deploy.inference import onnx_metadata, space_align
from hwnas.contracts.space import Architecture, freeze, position_names
from hwnas.searchspaces.nafnet_blocks import CANDIDATES

SPEC = SpaceSpec(preset="tiny")
BN_CANDIDATES = [c for c in CANDIDATES if c != "naf"]  # the candidates built with BatchNorm


def trained_like(arch: Architecture) -> nn.Module:
    """A frozen network with non-trivial BN statistics and residual scales (so folding matters)."""
    torch.manual_seed(0)
    net = freeze(SPEC.create(), arch).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net


def arch_of(choice: str | dict) -> Architecture:
    space = SPEC.create()
    positions = position_names(space.build())
    if isinstance(choice, str):
        return Architecture.uniform(space.name, positions, choice)
    return Architecture(space=space.name, choices=choice)


def export(net, arch, path, **kwargs):
    space = SPEC.create()
    return export_model(net, path, metadata=onnx_metadata(SPEC, arch, space_align(space)), in_channels=3,
                        align=space_align(space), **kwargs)


MIXED = {"enc0.0": "naf_bn_lite", "enc1.0": "cbr", "enc2.0": "naf_bn", "mid.0": "cbr",
         "dec2.0": "naf_bn", "dec1.0": "naf_bn_lite", "dec0.0": "cbr"}


@pytest.mark.parametrize("choice", [*BN_CANDIDATES, MIXED], ids=[*BN_CANDIDATES, "mixed"])
def test_no_batchnorm_node_and_small_error(tmp_path, choice):
    arch = arch_of(choice)
    net = trained_like(arch)
    report = export(net, arch, tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops and report["batchnorm_nodes"] == 0
    assert 0 < report["max_abs_error"] <= 1e-4
    if choice == "cbr":
        assert report["conv_relu_pairs"] == 2 * 7  # expand and depthwise of each of the 7 blocks


def test_metadata_marks_the_file(tmp_path):
    arch = arch_of("cbr")
    export(trained_like(arch), arch, tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert meta["producer"] == "hwnas" and Architecture.model_validate_json(meta["arch"]) == arch
    assert SpaceSpec.model_validate_json(meta["space"]) == SPEC and meta["align"] == "8"


def test_dynamic_export_runs_on_odd_sizes(tmp_path):
    arch = arch_of(MIXED)
    net = trained_like(arch)
    report = export(net, arch, tmp_path / "m.onnx")
    assert report["dynamic"] and len(report["checked_shapes"]) == 2
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for h, w in [(45, 77), (17, 9), (128, 96)]:
        x = torch.rand(1, 3, h, w)
        got = session.run(None, {"x": x.numpy()})[0]
        with torch.no_grad():
            ref = net(x).numpy()
        assert got.shape == (1, 3, h, w)
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_static_export_has_fixed_shape(tmp_path):
    arch = arch_of("naf_bn_lite")
    report = export(trained_like(arch), arch, tmp_path / "s.onnx", static_hw=(64, 96))
    assert not report["dynamic"] and report["checked_shapes"] == [[1, 3, 64, 96]]
    dims = onnx.load(str(tmp_path / "s.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 64, 96]


def test_error_above_tolerance_writes_nothing(tmp_path):
    arch = arch_of("naf_bn")
    target = tmp_path / "m.onnx"
    with pytest.raises(HwnasError) as err:
        export(trained_like(arch), arch, target, tolerance=1e-12)
    assert "tolerance" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_export_does_not_touch_the_given_network(tmp_path):
    arch = arch_of("cbr")
    net = trained_like(arch)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export(net, arch, tmp_path / "m.onnx")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
