"""Tiled inference (equal to whole-image inference), ONNX predictors and foreign ONNX files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwnas.contracts.config import SpaceSpec
from hwnas.contracts.errors import HwnasError
from hwnas.deploy.onnx_export import export_model
from hwnas.deploy.inference import fixed_size, model_predictor, onnx_metadata, open_model, space_align, tile_windows, tiled, torch_predictor
from hwnas.deploy.modelfile import ModelFile, save_model
from hwnas.contracts.space import Architecture, freeze, position_names

SPEC = SpaceSpec(preset="tiny")  # 3 levels: inputs pad to multiples of 8
RECEPTIVE_RADIUS = 40  # tiny: 3x3 convs at scales 1..8 plus resampling, about 31 px


def random_net(choices: dict[str, str] | str, seed: int = 0):
    space = SPEC.create()
    positions = position_names(space.build())
    arch = Architecture.uniform(space.name, positions, choices) if isinstance(choices, str) else Architecture(space=space.name, choices=choices)
    torch.manual_seed(seed)
    net = freeze(space, arch).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return space, arch, net


@pytest.mark.parametrize("length,tile,overlap,align", [(100, 40, 8, 8), (257, 64, 16, 8), (30, 64, 16, 8), (1000, 200, 30, 16), (65, 64, 0, 1)])
def test_tile_windows_partition_and_align(length, tile, overlap, align):
    windows = tile_windows(length, tile, overlap, align)
    covered = []
    for start, end, core_start, core_end in windows:
        assert start % align == 0 and end - start <= tile
        assert start <= core_start < core_end <= end
        # a core keeps its margin unless its window reaches the image border
        assert start == 0 or core_start - start >= overlap
        assert end == length or end - core_end >= overlap
        covered.extend(range(core_start, core_end))
    assert covered == list(range(length))


def test_tile_too_small_for_overlap_is_one_line():
    with pytest.raises(HwnasError) as err:
        tile_windows(100, 32, 16, 8)
    assert "pass tile of at least" in str(err.value) and "\n" not in str(err.value)
    assert "pass --tile of at least" in err.value.cli and "or a smaller --overlap" in err.value.cli


@pytest.mark.parametrize("choices", ["cbr", "naf_bn_lite", {"enc0.0": "naf_bn_lite", "enc1.0": "cbr", "enc2.0": "naf_bn_lite",
                                                            "mid.0": "cbr", "dec2.0": "naf_bn_lite", "dec1.0": "cbr", "dec0.0": "cbr"}])
@pytest.mark.parametrize("size", [(150, 201), (93, 130)])  # not multiples of 2^levels
def test_tiled_equals_whole_image(choices, size):
    space, _, net = random_net(choices)
    predict = torch_predictor(net)
    x = torch.rand(1, 3, *size)
    whole = predict(x)
    tiles = tiled(predict, tile=128, overlap=RECEPTIVE_RADIUS, align=space_align(space))(x)
    assert tiles.shape == whole.shape
    scale = float(whole.abs().max())  # random weights give outputs of a few units: float32 noise scales with them
    torch.testing.assert_close(tiles, whole, atol=1e-5 * scale, rtol=0)


def test_tiled_small_overlap_differs_only_near_tile_borders():
    """With too little overlap the error is confined to a band around the core seams."""
    space, _, net = random_net("cbr")
    predict = torch_predictor(net)
    x = torch.rand(1, 3, 96, 96)
    whole = predict(x)
    tiles = tiled(predict, tile=64, overlap=8, align=space_align(space))(x)
    diff = (tiles - whole).abs().amax(dim=(0, 1))
    seams = [c for c, *_ in [(w[2],) for w in tile_windows(96, 64, 8, 8)][1:]]
    far = torch.ones(96, 96, dtype=torch.bool)
    for s in seams:
        far[max(0, s - RECEPTIVE_RADIUS):s + RECEPTIVE_RADIUS, :] = False
        far[:, max(0, s - RECEPTIVE_RADIUS):s + RECEPTIVE_RADIUS] = False
    scale = float(whole.abs().max())
    assert diff.max() > 1e-3 * scale  # the seams do differ (so the test can fail)
    assert far.any() and diff[far].max() < 1e-5 * scale


def test_torch_predictor_keeps_size_for_odd_inputs():
    _, _, net = random_net("cbr")
    y = torch_predictor(net)(torch.rand(1, 3, 13, 27))
    assert y.shape == (1, 3, 13, 27)


def test_fixed_size_pads_and_refuses_larger():
    calls = []

    def predict(x):
        calls.append(tuple(x.shape))
        return x * 2

    fixed = fixed_size(predict, (16, 16))
    y = fixed(torch.ones(1, 3, 10, 12))
    assert calls == [(1, 3, 16, 16)] and y.shape == (1, 3, 10, 12) and torch.equal(y, torch.full_like(y, 2))
    seen = []
    fixed_size(lambda x: seen.append(x) or x, (16, 16))(torch.ones(1, 3, 10, 12))
    assert torch.equal(seen[0], torch.ones(1, 3, 16, 16))  # edge pixels repeated, no zero strip (as the U-Net pads)
    with pytest.raises(HwnasError):
        fixed(torch.ones(1, 3, 20, 12))


def test_onnx_and_torch_models_agree_tiled(tmp_path):
    space, arch, net = random_net("naf_bn_lite")
    save_model(tmp_path / "model.pt", ModelFile(SPEC, arch, net.state_dict()))
    export_model(net, tmp_path / "m.onnx", metadata=onnx_metadata(SPEC, arch, space_align(space)), in_channels=3, align=space_align(space))
    torch_model, onnx_model = open_model(tmp_path / "model.pt"), open_model(tmp_path / "m.onnx")
    assert (torch_model.runtime, onnx_model.runtime) == ("torch", "onnxruntime")
    assert onnx_model.arch == arch and onnx_model.spec == SPEC and onnx_model.align == 8
    x = torch.rand(1, 3, 77, 141)
    a = model_predictor(torch_model)(x)
    b = model_predictor(onnx_model, tile=96, overlap=RECEPTIVE_RADIUS)(x)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_an_onnx_model_says_what_input_it_accepts(tmp_path):
    space, arch, net = random_net("cbr")
    export_model(net, tmp_path / "m.onnx", metadata=onnx_metadata(SPEC, arch, 8), in_channels=3, align=8)
    model = open_model(tmp_path / "m.onnx")
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    cases = {(2, 3, 16, 16): "m.onnx takes a batch of 1 (input 1 x 3 x H x W), not 2; pass the images 1 at a time",
             (1, 4, 16, 16): "m.onnx takes 3 channels (input 1 x 3 x H x W), not 4.",
             (3, 16, 16): "m.onnx takes a 1 x 3 x H x W tensor, not one of shape (3, 16, 16); add the batch dimension"}
    for shape, message in cases.items():
        with pytest.raises(HwnasError) as err:
            model(torch.rand(shape))
        assert message in str(err.value) and "\n" not in str(err.value)


def test_static_onnx_is_tiled_at_its_size(tmp_path):
    space, arch, net = random_net("cbr")
    export_model(net, tmp_path / "s.onnx", metadata=onnx_metadata(SPEC, arch, 8), in_channels=3, align=8, static_hw=(64, 64))
    model = open_model(tmp_path / "s.onnx")
    assert model.static_hw == (64, 64)
    y = model_predictor(model)(torch.rand(1, 3, 100, 70))
    assert y.shape == (1, 3, 100, 70)
    with pytest.raises(HwnasError):
        model_predictor(model, tile=128)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_foreign_onnx_is_refused(tmp_path):
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(nn.Conv2d(3, 3, 3, padding=1), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(HwnasError) as err:
        open_model(path)
    assert "did not export" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x08\x01\x12\x03abc"])
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "x.onnx"
    path.write_bytes(content)
    with pytest.raises(HwnasError) as err:
        open_model(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_model_and_cuda_without_gpu(tmp_path):
    with pytest.raises(HwnasError):
        open_model(tmp_path / "nope.pt")
    if not torch.cuda.is_available():
        _, arch, net = random_net("cbr")
        save_model(tmp_path / "m.pt", ModelFile(SPEC, arch, net.state_dict()))
        with pytest.raises(HwnasError, match="cuda"):
            open_model(tmp_path / "m.pt", accelerator="cuda")


def test_onnx_with_non_finite_weights_is_refused(tmp_path):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    space, arch, net = random_net("cbr")
    path = tmp_path / "m.onnx"
    export_model(net, path, metadata=onnx_metadata(SPEC, arch, 8), in_channels=3, align=8)
    model = onnx.load(str(path))
    first = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) > 1)
    values = numpy_helper.to_array(first).copy()
    values.flat[0] = np.nan
    first.CopyFrom(numpy_helper.from_array(values, first.name))
    onnx.save(model, str(path))
    with pytest.raises(HwnasError, match=rf"^{path} holds NaN or infinite weights \({first.name}\)"):
        open_model(path)


def test_tiles_of_a_x2_network_land_at_twice_their_input_position():
    """Tile and overlap are input pixels; each core is placed at scale x its position (a local x2 network:
    tiled equals whole)."""
    conv = torch.nn.Conv2d(3, 12, 3, padding=1)
    net = torch.nn.Sequential(conv, torch.nn.PixelShuffle(2)).eval()

    def predict(x):
        with torch.no_grad():
            return net(x)

    x = torch.rand(1, 3, 45, 70)
    whole = predict(x)
    assert tiled(predict, tile=24, overlap=4, align=4, scale=2)(x).shape == (1, 3, 90, 140)
    torch.testing.assert_close(tiled(predict, tile=24, overlap=4, align=4, scale=2)(x), whole, atol=1e-6, rtol=0)
    with pytest.raises(HwnasError, match="not 1x that"):
        tiled(predict, tile=24, overlap=4, align=4, scale=1)(x)
    fixed = fixed_size(predict, (48, 80), scale=2)
    # the bottom/right output pixels see the padding (edge pixels, where the conv pads zeros): the rest is equal
    torch.testing.assert_close(fixed(x)[..., :-2, :-2], whole[..., :-2, :-2], atol=1e-6, rtol=0)
    assert fixed(x).shape == whole.shape


def scores_net():
    """A small classifier: its output is one vector of 5 scores per input, whatever its size."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 5)).eval()


@pytest.mark.parametrize("static", [None, (32, 32)])
def test_a_scores_network_exports_and_runs_whole_never_tiled(tmp_path, static):
    """Export follows the declared output kind; the file says it; the loader refuses tiles and, for a static
    file, any other input size (padding would change the scores)."""
    net, arch = scores_net(), Architecture(space="nafnet-unet", choices={})
    path = tmp_path / "c.onnx"
    report = export_model(net, path, metadata=onnx_metadata(SPEC, arch, 1, output="scores"), in_channels=3, align=1,
                          static_hw=static, output="scores")
    assert report["max_abs_error"] < 1e-4 and report["batchnorm_nodes"] == 0
    model = open_model(path)
    x = torch.rand(1, 3, 32, 32)
    assert model.output == "scores" and model(x).shape == (1, 5)
    torch.testing.assert_close(model(x), net(x).detach(), atol=1e-4, rtol=0)
    with pytest.raises(HwnasError, match=r"^the model outputs one vector of scores .* leave out --tile"):
        model_predictor(model, tile=16)
    if static is None:
        assert model(torch.rand(1, 3, 19, 45)).shape == (1, 5)
    else:
        assert model_predictor(model)(x).shape == (1, 5)
        with pytest.raises(HwnasError, match=r"^the model takes 32x32 inputs \(static ONNX\), the input is 16x32; resize"):
            model(torch.rand(1, 3, 16, 32))


def test_export_refuses_a_network_that_is_not_the_declared_output_kind(tmp_path):
    net, arch = scores_net(), Architecture(space="nafnet-unet", choices={})
    with pytest.raises(HwnasError, match=r"^the network maps a 61x69 input to 1x5, not to 61x69"):
        export_model(net, tmp_path / "c.onnx", metadata=onnx_metadata(SPEC, arch, 1), in_channels=3)
    _, arch, image_net = random_net("cbr")
    with pytest.raises(HwnasError, match=r"not to one vector of scores \(N x K\) as its space declares"):
        export_model(image_net, tmp_path / "c.onnx", metadata=onnx_metadata(SPEC, arch, 8), in_channels=3, align=8,
                     output="scores")
    assert not (tmp_path / "c.onnx").exists()
