"""hwnas.deploy.onnx_registry: torch.onnx's op registry built once and reused, only inside the block,
and exports that reuse it write the same file as exports that do not."""

from __future__ import annotations

import contextlib

import pytest
from torch import nn

from hwnas.deploy.onnx_export import to_onnx
from hwnas.deploy.onnx_registry import reused_registry

_registration = pytest.importorskip("torch.onnx._internal.exporter._registration")


def test_inside_the_block_one_registry_is_reused():
    with reused_registry():
        first = _registration.ONNXRegistry.from_torchlib()
        assert _registration.ONNXRegistry.from_torchlib() is first


def test_outside_the_block_torch_builds_its_own_again():
    before = _registration.ONNXRegistry.__dict__["from_torchlib"]
    with reused_registry():
        cached = _registration.ONNXRegistry.from_torchlib()
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is before
    assert _registration.ONNXRegistry.from_torchlib() is not cached


def test_the_original_comes_back_when_the_block_raises():
    before = _registration.ONNXRegistry.__dict__["from_torchlib"]
    with pytest.raises(RuntimeError), reused_registry():
        raise RuntimeError("export failed")
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is before


def test_one_registry_per_opset():
    with reused_registry():
        assert _registration.ONNXRegistry.from_torchlib(opset_version=18) is not \
            _registration.ONNXRegistry.from_torchlib(opset_version=20)


def test_an_export_with_the_reused_registry_writes_the_same_file(tmp_path, monkeypatch):
    """The second export in a process reuses the registry; its file equals one written by torch's own path."""
    from hwnas.deploy import onnx_export

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GELU(), nn.Conv2d(4, 3, 1)).eval()
    shape = (1, 3, 16, 16)
    to_onnx(net, shape, tmp_path / "warm.onnx", exporter="dynamo")  # the registry is built here
    reused = to_onnx(net, shape, tmp_path / "reused.onnx", exporter="dynamo")
    monkeypatch.setattr(onnx_export, "reused_registry", contextlib.nullcontext)  # torch left alone
    built = to_onnx(net, shape, tmp_path / "built.onnx", exporter="dynamo")
    assert reused.read_bytes() == built.read_bytes()


def test_torch_still_has_the_classmethod_this_module_replaces():
    """If a torch release renames it, the exports stay correct but slow: this says so."""
    assert isinstance(_registration.ONNXRegistry.__dict__.get("from_torchlib"), classmethod)


def test_forget_makes_the_next_export_build_its_own():
    from hwnas.deploy import onnx_registry

    with reused_registry():
        first = _registration.ONNXRegistry.from_torchlib()
        onnx_registry.forget()
        assert _registration.ONNXRegistry.from_torchlib() is not first
