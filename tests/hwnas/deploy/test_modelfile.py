"""model.pt: round trip, weights_only loading, foreign files and mismatching networks refused in one line."""

from __future__ import annotations

import io

import pytest
import torch

from hwnas.contracts.config import SpaceSpec
from hwnas.contracts.errors import HwnasError
from hwnas.deploy.modelfile import ModelFile, load_model, save_model, weight_mismatch
from hwnas.contracts.space import Architecture, freeze, position_names

SPEC = SpaceSpec(preset="tiny")


def tiny_model(candidate: str = "cbr", seed: int = 0) -> ModelFile:
    space = SPEC.create()
    arch = Architecture.uniform(space.name, position_names(space.build()), candidate)
    torch.manual_seed(seed)
    net = freeze(space, arch)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    return ModelFile(SPEC, arch, net.state_dict(), {"val_psnr": 30.5, "steps": 3})


def one_line_error(call) -> str:
    with pytest.raises(HwnasError) as err:
        call()
    message = str(err.value)
    assert message and "\n" not in message
    return message


def test_round_trip_keeps_everything(tmp_path):
    model = tiny_model()
    path = save_model(tmp_path / "model.pt", model)
    loaded = load_model(path)
    assert loaded.spec == SPEC and loaded.arch == model.arch and loaded.info == model.info
    assert loaded.state_dict.keys() == model.state_dict.keys()
    assert all(torch.equal(loaded.state_dict[k], model.state_dict[k]) for k in model.state_dict)
    _, net = loaded.build()
    x = torch.rand(1, 3, 19, 23)
    _, reference = model.build()
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_loads_with_weights_only(tmp_path, monkeypatch):
    path = save_model(tmp_path / "model.pt", tiny_model())
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_model(path)
    assert seen.get("weights_only") is True


class Evil:  # a pickled object: weights_only refuses to construct it
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize("kind", ["text", "tensor", "dict", "pickle", "missing", "search"])
def test_foreign_files_are_refused(tmp_path, kind):
    path = tmp_path / "x.pt"
    if kind == "text":
        path.write_text("hello")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "dict":
        torch.save({"format": "something-else", "state_dict": {}}, path)
    elif kind == "pickle":
        torch.save({"format": "hwnas-model", "evil": Evil()}, path)
    elif kind == "search":
        torch.save({"supernet": {"a": torch.zeros(1)}}, path)
    message = one_line_error(lambda: load_model(path))
    assert str(path) in message
    if kind == "search":
        assert "--init-from" in message


def test_another_space_preset_is_refused(tmp_path):
    model = tiny_model()
    other = ModelFile(SpaceSpec(preset="paper"), model.arch, model.state_dict)
    save_model(tmp_path / "m.pt", other)
    message = one_line_error(lambda: load_model(tmp_path / "m.pt").build())
    assert "does not fit" in message and "preset" in message  # a Python caller: the setting, not the flag


def test_another_architecture_is_refused_before_load_state_dict(tmp_path):
    model = tiny_model("cbr")
    naf_arch = tiny_model("naf").arch
    save_model(tmp_path / "m.pt", ModelFile(SPEC, naf_arch, model.state_dict))
    message = one_line_error(lambda: load_model(tmp_path / "m.pt").build())
    assert "do not fit" in message and "missing" in message


def test_another_width_is_a_shape_message_not_a_traceback(tmp_path):
    model = tiny_model()
    wide = SpaceSpec(preset="tiny", options={"width": 16})
    save_model(tmp_path / "m.pt", ModelFile(wide, model.arch, model.state_dict))
    message = one_line_error(lambda: load_model(tmp_path / "m.pt").build())
    assert "another shape" in message


def test_weight_mismatch_none_when_equal():
    model = tiny_model()
    _, net = model.build()
    assert weight_mismatch(net, model.state_dict) is None


def test_unknown_space_is_refused(tmp_path):
    model = tiny_model()
    buffer = io.BytesIO()
    payload = model.payload()
    payload["space"] = {"space": "no-such-space", "preset": None, "options": {}}
    torch.save(payload, buffer)
    (tmp_path / "m.pt").write_bytes(buffer.getvalue())
    message = one_line_error(lambda: load_model(tmp_path / "m.pt").build())
    assert "no-such-space" in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_by_name(tmp_path, bad):
    model = tiny_model()
    name = next(k for k, v in model.state_dict.items() if v.is_floating_point() and v.numel() > 1)
    model.state_dict[name].view(-1)[1] = bad
    path = save_model(tmp_path / "diverged.pt", model)
    message = one_line_error(lambda: load_model(path))
    assert message.startswith(f"{path} holds NaN or infinite weights ({name}): ") and "prev.pt" in message
    checkpoint = tmp_path / "last.pt"  # a training checkpoint embeds the same dict
    torch.save({"format": "hwnas-train-checkpoint", "model": model.payload()}, checkpoint)
    assert "holds NaN or infinite weights" in one_line_error(lambda: load_model(checkpoint))
