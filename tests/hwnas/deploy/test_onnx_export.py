"""hwnas.deploy.onnx_export: the dynamo exporter, its fallback to the TorchScript one, and node names by module path."""

from __future__ import annotations

import logging

import onnx
import pytest
import torch
from torch import nn

from hwnas.deploy import onnx_export
from hwnas.contracts.errors import HwnasError
from hwnas.deploy.onnx_export import DYNAMO_MIN_OPSET, EXPORTER_ENV, export_model, onnx_max_error, to_onnx
from hwnas.contracts.plugins import get_space
from hwnas.contracts.space import Architecture, freeze
from hwnas.tables.attribution import MODULE_PATH_KEY, node_owners, normalise, owner

SIZE = 32


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No exporter forced from outside, and every fallback reason warned anew."""
    monkeypatch.delenv(EXPORTER_ENV, raising=False)
    monkeypatch.setattr(onnx_export, "_warned", set())


@pytest.fixture(scope="module")
def tiny():
    """The tiny nafnet-unet space and its all-naf_bn network, BN statistics made non-trivial."""
    space = get_space("nafnet-unet").from_options("tiny")
    positions = {p.label: p.candidates for p in space.positions(SIZE)}
    net = freeze(space, Architecture.uniform(space.name, positions, "naf_bn")).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return space, net


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory):
    """The tiny network exported once by the dynamo exporter (forced: a failure fails the tests)."""
    _, net = tiny
    return to_onnx(net, (1, 3, SIZE, SIZE), tmp_path_factory.mktemp("dynamo") / "tiny.onnx", exporter="dynamo")


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()


def test_dynamo_export_of_the_tiny_network_matches_pytorch(tiny, tiny_onnx):
    _, net = tiny
    model = onnx.load(str(tiny_onnx))
    assert [f.name for f in tiny_onnx.parent.iterdir()] == ["tiny.onnx"]  # one self-contained file, no external data
    assert {o.domain: o.version for o in model.opset_import}.get("", None) == DYNAMO_MIN_OPSET
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, SIZE, SIZE]  # static
    assert (model.graph.input[0].name, model.graph.output[0].name) == ("x", "y")
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}  # folded by our code
    assert onnx_max_error(net, tiny_onnx, torch.rand(1, 3, SIZE, SIZE)) < 1e-4
    # no stack traces (the exporting machine's source paths) shipped: only the module path per node
    assert {p.key for n in model.graph.node for p in n.metadata_props} == {MODULE_PATH_KEY}


def test_attribution_gives_every_position_and_fixed_part_its_nodes(tiny, tiny_onnx):
    space, _ = tiny
    paths = [p.path for p in space.positions(SIZE)] + [u.path for u in space.fixed_units(SIZE)]
    model = onnx.load(str(tiny_onnx))
    owners = node_owners(model, paths)
    assert all(any(owner_ == path for owner_ in owners.values()) for path in paths), (
        [p for p in paths if p not in owners.values()])
    assert len({n.name for n in model.graph.node}) == len(model.graph.node)  # names unique
    for node in model.graph.node:  # the names carry what the metadata says, also as a QNN converter rewrites them
        assert owner(node.name, paths) == owners[node.name], node.name
        assert owner("_" + normalise(node.name), paths) == owners[node.name], node.name
    convs = [n.name for n in model.graph.node if n.op_type == "Conv" and owners[n.name] == "enc0.0"]
    assert convs and all(name.startswith("/enc0.0.") for name in convs)


def test_node_module_paths_name_real_modules_and_the_breakdown_reads_them(tiny, tiny_onnx):
    from hwnas.tables.breakdown import module_path

    _, net = tiny
    modules = dict(net.named_modules())
    for node in onnx.load(str(tiny_onnx)).graph.node:
        [path] = [p.value for p in node.metadata_props if p.key == MODULE_PATH_KEY]
        assert path in modules, (node.name, path)  # '' (the network itself) included
        assert module_path(node.name, modules) == path, node.name


def _failing_dynamo(monkeypatch, error: Exception) -> None:
    real = torch.onnx.export

    def export(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)


def test_a_failing_dynamo_export_falls_back_to_the_torchscript_exporter_and_says_why(monkeypatch, tmp_path, caplog):
    _failing_dynamo(monkeypatch, RuntimeError("Unsupported: data-dependent control flow\nmore detail"))
    net = small_net()
    with caplog.at_level(logging.WARNING, logger="hwnas.deploy.onnx_export"):
        report = export_model(net, tmp_path / "m.onnx", metadata={"k": "v"}, in_channels=3, static_hw=(16, 16))
        to_onnx(net, (1, 3, 16, 16), tmp_path / "again.onnx")  # the same reason: not warned twice
    assert report["exporter"] == "legacy" and report["max_abs_error"] < 1e-4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "RuntimeError: Unsupported: data-dependent control flow" in warnings[0] and "more detail" not in warnings[0]
    assert "dynamo=False" in warnings[0] and EXPORTER_ENV in warnings[0]


def test_a_dynamo_graph_that_fails_the_output_check_is_not_used(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(onnx_export, "_max_error", lambda module, path, x: (0.5, 1.0))
    with caplog.at_level(logging.WARNING, logger="hwnas.deploy.onnx_export"):
        assert onnx_export._write_onnx(small_net(), (1, 3, 16, 16), tmp_path / "m.onnx", dynamic=False,
                                       opset=DYNAMO_MIN_OPSET) == "legacy"
    assert "differs from PyTorch by 0.5" in caplog.text


def test_an_opset_below_the_dynamo_floor_is_written_by_the_torchscript_exporter(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hwnas.deploy.onnx_export"):
        path = to_onnx(small_net(), (1, 3, 16, 16), tmp_path / "m.onnx", opset=17)
    assert onnx.load(str(path)).opset_import[0].version == 17
    assert f"opset 17 was asked for and the dynamo exporter writes {DYNAMO_MIN_OPSET} and up" in caplog.text


def test_either_exporter_can_be_forced(monkeypatch, tmp_path, caplog):
    _failing_dynamo(monkeypatch, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):  # forced dynamo: no fallback
        to_onnx(small_net(), (1, 3, 16, 16), tmp_path / "a.onnx", exporter="dynamo")
    with pytest.raises(HwnasError, match="dynamo exporter.*cannot be used: opset 17 was asked for"):
        to_onnx(small_net(), (1, 3, 16, 16), tmp_path / "a.onnx", opset=17, exporter="dynamo")
    monkeypatch.setenv(EXPORTER_ENV, "legacy")
    with caplog.at_level(logging.WARNING, logger="hwnas.deploy.onnx_export"):
        to_onnx(small_net(), (1, 3, 16, 16), tmp_path / "b.onnx")  # chosen, so not warned about
    assert not caplog.records
    monkeypatch.setenv(EXPORTER_ENV, "torchscript")
    with pytest.raises(HwnasError, match=r"\$HWNAS_ONNX_EXPORTER is 'torchscript'; choose one of auto, dynamo, legacy"):
        to_onnx(small_net(), (1, 3, 16, 16), tmp_path / "c.onnx")
