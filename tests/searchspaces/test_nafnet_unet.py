from __future__ import annotations

import pytest
import torch

from hwnas.tables.cost import count_params
from hwnas.contracts.errors import HwnasError
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace
from hwnas.contracts.space import Architecture, freeze, position_names


def test_paper_preset_is_nafnet_width32():
    space = NAFNetUNetSpace.from_options("paper")
    positions = space.positions(256)
    assert len(positions) == 36
    net = freeze(space, Architecture.uniform(space.name, position_names(space.build()), "naf"))
    assert count_params(net) == 29_159_715  # NAFNet-width32 reference: 29.16 M
    shapes = {p.label: p.input_shape for p in positions}
    assert shapes["enc0.0"] == (1, 32, 256, 256)
    assert shapes["enc3.7"] == (1, 256, 32, 32)
    assert shapes["mid.11"] == (1, 512, 16, 16)
    assert shapes["dec0.1"] == (1, 32, 256, 256)


def test_paper_table_needs_20_candidate_units_and_8_fixed():
    space = NAFNetUNetSpace.from_options("paper")
    assert len(space.candidate_units(256)) == 20  # 5 distinct shapes x 4 candidates
    assert len(space.fixed_units(256)) == 2 + 2 * 4


def test_cbr_is_no_larger_than_naf():
    space = NAFNetUNetSpace.from_options("paper")
    for unit_naf, unit_cbr in zip(*[[u for u in space.candidate_units(64) if u.name == n] for n in ("naf", "cbr")]):
        assert count_params(unit_cbr.module) <= count_params(unit_naf.module)


def test_width_and_blocks_are_settable():
    space = NAFNetUNetSpace.from_options("tiny", width=4, enc_blocks=(2, 1), dec_blocks=(1, 1), middle_blocks=0)
    labels = [p.label for p in space.positions(16)]
    assert labels == ["enc0.0", "enc0.1", "enc1.0", "dec1.0", "dec0.0"]


def test_padding_crops_back_to_input_size():
    space = NAFNetUNetSpace.from_options("tiny")
    net = freeze(space, Architecture.uniform(space.name, position_names(space.build()), "naf")).eval()
    x = torch.randn(1, 3, 13, 21)  # neither side a multiple of 2^3
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_padding_repeats_edge_pixels_not_zeros():
    # A zero strip is unlike every training crop; BatchNorm candidates diverged on it (results/padding.csv).
    space = NAFNetUNetSpace.from_options("tiny")
    net = freeze(space, Architecture.uniform(space.name, position_names(space.build()), "cbr")).eval()
    seen = []
    net.intro.register_forward_hook(lambda module, inp, out: seen.append(inp[0]))
    x = torch.rand(1, 3, 13, 21) + 0.5  # positive everywhere, so a zero pixel can only be padding
    with torch.no_grad():
        net(x)
    padded = seen[0]
    assert padded.shape[-2:] == (16, 24)
    assert torch.equal(padded[..., 13:, :21], x[..., 12:13, :].expand(-1, -1, 3, -1))
    assert torch.equal(padded[..., :13, 21:], x[..., :, 20:21].expand(-1, -1, -1, 3))


@pytest.mark.parametrize(
    "preset,options,fragment",
    [
        ("nope", {}, "no preset 'nope'"),
        ("tiny", {"enc_blocks": (1, 1), "dec_blocks": (1,)}, "decoder level per encoder level"),
        ("tiny", {"enc_blocks": ()}, "at least one encoder level"),
        ("tiny", {"width": 0}, "option width"),
        ("tiny", {"candidates": ("naf", "conv7")}, "unknown candidates"),
        ("tiny", {"enc_blocks": (1, -1, 1)}, "negative"),
        ("tiny", {"depth": 3}, "option depth"),
        ("tiny", {"level_widths": (8, 16)}, "level_widths has 2 values but the U-Net has 3 levels and a middle; give 4"),
        ("tiny", {"level_widths": (8, 16, 0, 64)}, "every level width must lie between 2 and 4096"),
    ],
)
def test_bad_options_are_one_line(preset, options, fragment):
    with pytest.raises(HwnasError) as err:
        NAFNetUNetSpace.from_options(preset, **options)
    assert fragment in str(err.value) and "\n" not in str(err.value)


EXTRA = ("naf", "cbr", "cbr_e4", "naf_bn_lite_e1", "skip")  # width variants and skip: space options for the front


@pytest.mark.parametrize("candidate", EXTRA)
def test_width_variants_and_skip_build_and_run(candidate):
    space = NAFNetUNetSpace.from_options("tiny", candidates=EXTRA)
    net = freeze(space, Architecture.uniform(space.name, position_names(space.build()), candidate)).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    if candidate == "skip":  # no block: only the fixed parts remain
        assert count_params(net) == count_params(freeze(space, Architecture.uniform(space.name, position_names(space.build()), "skip")))
        assert all(u.name != "skip" or count_params(u.module) == 0 for u in space.candidate_units(16))


def test_inner_width_scales_parameters():
    space = NAFNetUNetSpace.from_options("tiny", candidates=("cbr_e1", "cbr", "cbr_e4"))
    params = {u.name: count_params(u.module) for u in space.candidate_units(16) if u.input_shape[1] == 8}
    assert params["cbr_e1"] < params["cbr"] < params["cbr_e4"]


@pytest.mark.parametrize("candidates, message", [
    (("cbr", "cbr_x4"), "unknown candidates ['cbr_x4']"),
    (("skip_e2",), "unknown candidates ['skip_e2']"),
    (("cbr", "cbr"), "listed twice"),
])
def test_bad_candidate_lists_are_refused(candidates, message):
    with pytest.raises(HwnasError, match=message.replace("[", r"\[").replace("]", r"\]")):
        NAFNetUNetSpace.from_options("tiny", candidates=candidates)


def test_the_space_is_scalable_and_every_variant_builds():
    """`hwnas.contracts.space.Scalable`: narrower (width) and shallower (block counts) variants, largest first, each a
    valid network of the space with fewer parameters than the one before it; wider ones, smallest first, more."""
    from hwnas.contracts.space import Scalable

    space = NAFNetUNetSpace.from_options("tiny")
    assert isinstance(space, Scalable)
    kinds = space.scaled_variants()
    assert set(kinds) == {"narrower", "shallower", "wider"}
    assert [v["width"] for v in kinds["narrower"]] == [6, 4, 2]
    assert [v["width"] for v in kinds["wider"]] == [10, 12, 14, 16]
    for kind, variants in kinds.items():
        params = []
        for options in variants:
            small = NAFNetUNetSpace.from_options("tiny", **options)
            net = freeze(small, Architecture.uniform(small.name, {p.label: p.candidates for p in small.positions(32)}, "naf"))
            assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
            params.append(count_params(net))
        assert params == sorted(params, reverse=kind != "wider") and len(set(params)) == len(params)
    assert sum(kinds["shallower"][-1]["enc_blocks"]) + kinds["shallower"][-1]["middle_blocks"] + sum(
        kinds["shallower"][-1]["dec_blocks"]) == 1  # at least one block is left


def test_level_widths_place_channels_per_level():
    """`level_widths`: wide at full resolution only; `width` is the first level's, every unit sees its level's
    channels, and the published doubling is the default."""
    space = NAFNetUNetSpace.from_options("small", level_widths=(24, 32, 64, 128, 256))
    assert space.config.width == 24 and space.config.channels() == [24, 32, 64, 128, 256]
    shapes = {p.label: p.input_shape[1] for p in space.positions(64)}
    assert (shapes["enc0.0"], shapes["enc1.0"], shapes["mid.1"], shapes["dec0.0"]) == (24, 32, 256, 24)
    fixed = [(u.name, u.input_shape[1]) for u in space.fixed_units(64)]
    assert fixed[:3] == [("intro", 3), ("down", 24), ("up", 32)] and fixed[-1] == ("ending", 24)
    net = freeze(space, Architecture.uniform(space.name, position_names(space.build()), "cbr"))
    assert net(torch.zeros(1, 3, 32, 48)).shape == (1, 3, 32, 48)
    assert NAFNetUNetSpace.from_options("small").config.channels() == [16, 32, 64, 128, 256]


def test_level_widths_scale_every_level_alike():
    kinds = NAFNetUNetSpace.from_options("small", level_widths=(24, 32, 64, 128, 256)).scaled_variants()
    assert kinds["narrower"][0] == {"level_widths": [20, 28, 56, 112, 224]}
    assert kinds["wider"][-1] == {"level_widths": [48, 64, 128, 256, 512]}
    assert all(set(v) == {"level_widths"} for k in ("narrower", "wider") for v in kinds[k])


def test_level_widths_left_out_keep_earlier_fingerprints(monkeypatch):
    """Tables, runs and model files fingerprinted before the option existed stay valid: the fingerprint of a space
    without `level_widths` is the one its config gave without the field, and setting it changes the fingerprint."""
    from pydantic import BaseModel

    space = NAFNetUNetSpace.from_options("tiny")
    now = space._compute_fingerprint()
    config_type = type(space.config)
    monkeypatch.setattr(config_type, "model_dump", lambda self, **kw: {
        k: v for k, v in BaseModel.model_dump(self, **kw).items() if k != "level_widths"})
    assert space._compute_fingerprint() == now
    monkeypatch.undo()
    assert NAFNetUNetSpace.from_options("tiny", level_widths=(8, 16, 32, 64)).fingerprint() != now
