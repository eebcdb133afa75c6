"""`hwnas.predict`: the table's latency of a model, however it is given, with the per-unit sum it adds up."""

from __future__ import annotations

import json
import re

import onnx
import pytest
import torch

import hwnas
from hwnas.contracts.config import SpaceSpec
from hwnas.contracts.errors import HwnasError
from hwnas.deploy.inference import onnx_metadata
from hwnas.contracts.latency import LatencyTable
from hwnas.deploy.modelfile import ModelFile, save_model
from hwnas.deploy.onnx_export import export_model
from hwnas.tables.prediction import LatencyPrediction
from hwnas.contracts.space import Architecture, freeze
from hwnas.tables.profiling import random_architecture

SIZE = 32


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("lut") / "tiny.csv"
    hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=SIZE, out=path)
    return path


@pytest.fixture(scope="module")
def space():
    return SpaceSpec(preset="tiny").create()


@pytest.fixture(scope="module")
def files(tmp_path_factory, space):
    """One random tiny network as an Architecture, arch.json, model.pt and ONNX file from the export path."""
    folder = tmp_path_factory.mktemp("model")
    arch = random_architecture(space, SIZE, seed=3)
    arch.save(folder / "arch.json")
    net = freeze(space, arch).eval()
    model = save_model(folder / "model.pt", ModelFile(SpaceSpec(preset="tiny"), arch, net.state_dict()))
    export_model(net, folder / "model.onnx", metadata=onnx_metadata(SpaceSpec(preset="tiny"), arch, 8), in_channels=3)
    return arch, net, folder / "arch.json", model, folder / "model.onnx"


def test_every_form_of_a_model_gets_the_same_prediction_and_it_adds_up(table, files):
    arch, net, arch_json, model, onnx_file = files
    first = hwnas.predict(arch, table)
    assert isinstance(first, LatencyPrediction) and first.architecture == arch and first.table == str(table)
    assert first.total_ms == pytest.approx(sum(u.ms for u in first.units), rel=1e-12)
    assert first.by_position().keys() == arch.choices.keys() and first.fixed_ms > 0
    assert [u.name for u in first.units if u.position] == [arch.choices[p] for p in first.by_position()]
    for given in (arch_json, str(model), onnx_file, hwnas.load(model), hwnas.load(onnx_file), net, LatencyTable.load(table)):
        if isinstance(given, LatencyTable):  # the table as an object instead of a path
            again = hwnas.predict(arch, given)
            assert again.table == ""
        else:
            again = hwnas.predict(given, table)
        assert again.total_ms == first.total_ms and again.architecture == arch
    assert json.loads(json.dumps(first.as_dict()))["units"][0]["kind"] == "fixed"


def test_it_is_the_prediction_profile_compares_with(table, files, cli):
    code, out, err = cli("profile", "--lut", table, "--arch", files[2], "--json")
    assert code == 0, err
    assert json.loads(out)["predicted_ms"] == hwnas.predict(files[4], table).total_ms  # the ONNX file of that arch


def test_another_architecture_predicts_another_latency(table, space, files):
    arch = files[0]
    other = Architecture.uniform(space.name, {p.label: p.candidates for p in space.positions(SIZE)}, "naf")
    assert other != arch and hwnas.predict(other, table).total_ms != hwnas.predict(arch, table).total_ms


def one_line(call) -> str:
    with pytest.raises(HwnasError) as err:
        call()
    message = str(err.value)
    outside_commands = re.sub(r"`[^`]*`", "", message)  # a suggested command (`hwnas build-lut --out T`) may use flags
    assert "\n" not in message and "--" not in outside_commands  # a Python caller is told parameters, not flags
    return message


def test_the_mistakes_a_user_makes_are_one_sentence(table, space, files, tmp_path):
    arch, net = files[0], files[1]
    assert "model nowhere.pt does not exist" in one_line(lambda: hwnas.predict("nowhere.pt", table))
    assert "model is a dict" in one_line(lambda: hwnas.predict({"choices": {}}, table))
    assert "table is a int" in one_line(lambda: hwnas.predict(arch, 3))
    assert "no latency table at" in one_line(lambda: hwnas.predict(arch, tmp_path / "none.csv"))
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(files[4]))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    assert "no hwnas metadata" in one_line(lambda: hwnas.predict(foreign, table))
    assert "still holds every candidate at position" in one_line(lambda: hwnas.predict(space.build(), table))
    assert "has no module" in one_line(lambda: hwnas.predict(torch.nn.Conv2d(3, 3, 1), table))
    wide = SpaceSpec(preset="tiny", options={"width": 16})
    wide_arch = random_architecture(wide.create(), SIZE, seed=0)
    assert "another nafnet-unet configuration" in one_line(lambda: hwnas.predict(hwnas.load(save_model(
        tmp_path / "wide.pt", ModelFile(wide, wide_arch, freeze(wide.create(), wide_arch).state_dict()))), table))
    stranger = Architecture(space=arch.space, choices={**arch.choices, next(iter(arch.choices)): "nothing"})
    assert "has no candidate 'nothing'" in one_line(lambda: hwnas.predict(stranger, table))


def test_an_int8_export_is_refused_against_an_fp32_table(table, files, tmp_path):
    model = onnx.load(str(files[4]))
    entry = model.metadata_props.add()
    entry.key, entry.value = "precision", "int8"  # what the quantised export writes
    onnx.save(model, str(tmp_path / "int8.onnx"))
    assert "exported at precision int8, but the table times fp32" in one_line(lambda: hwnas.predict(tmp_path / "int8.onnx", table))
