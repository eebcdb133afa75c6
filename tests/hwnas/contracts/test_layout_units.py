"""A space's layout (`hwnas.contracts.layout`): traced once per space and image size, and a structural
fingerprint per unit that ignores weights and follows structure and input shape."""

from __future__ import annotations

import torch
from torch import nn

import hwnas.contracts.layout
from hwnas.backends.macs import MacsBackend
from hwnas.contracts.layout import unit_fingerprint
from hwnas.searchspaces.nafnet_blocks import LayerNorm2d, NAFBlock
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace
from hwnas.contracts.space import Unit
from hwnas.tables.building import build_table, describe_table, plan_build, table_units

SIZE = 32


def test_the_layout_is_traced_once_per_space_and_image_size(tmp_path, monkeypatch):
    calls = []
    compute = hwnas.contracts.layout.compute_layout
    monkeypatch.setattr(hwnas.contracts.layout, "compute_layout", lambda space, size: calls.append(size) or compute(space, size))
    space = NAFNetUNetSpace.from_options("tiny")
    space.positions(SIZE)
    space.candidate_units(SIZE)
    table_units(space, SIZE, meta=True)
    path = tmp_path / "t.csv"
    plan = plan_build(space, SIZE, MacsBackend(), path)
    table = build_table(space, SIZE, MacsBackend(), path, plan=plan)
    build_table(space, SIZE, MacsBackend(), path)  # complete: opened and checked again
    describe_table(table, space)
    assert calls == [SIZE]
    space.positions(64)
    assert calls == [SIZE, 64]


def test_the_layout_holds_positions_units_base_and_fingerprints():
    space = NAFNetUNetSpace.from_options("tiny")
    layout = space.layout(SIZE)
    assert [p.label for p in layout.positions] == [p.label for p in space.positions(SIZE)]
    assert layout.fingerprint == space.fingerprint() and layout.image_size == SIZE
    assert set(layout.base.choices.values()) == {"naf"} and set(layout.base.choices) == {p.label for p in layout.positions}
    assert [u.kind for u in layout.units] == ["candidate"] * 16 + ["fixed"] * 8
    assert layout.fixed == layout.units[16:]
    assert len(layout.unit_fingerprints) == 24
    again = NAFNetUNetSpace.from_options("tiny").layout(SIZE)  # another instance: traced anew, same result
    assert again is not layout and again.unit_fingerprints == layout.unit_fingerprints


def test_a_unit_fingerprint_ignores_weights_and_device():
    shape = (1, 8, 32, 32)
    block = NAFBlock(8)
    before = unit_fingerprint(Unit("naf", shape, block))
    with torch.no_grad():
        for p in block.parameters():
            p.normal_()
    assert unit_fingerprint(Unit("naf", shape, block)) == before
    with torch.device("meta"):
        assert unit_fingerprint(Unit("naf", shape, NAFBlock(8))) == before


def test_a_unit_fingerprint_follows_structure_hyper_parameters_and_shape():
    shape = (1, 8, 32, 32)
    base = unit_fingerprint(Unit("naf", shape, NAFBlock(8)))
    assert unit_fingerprint(Unit("naf", (1, 8, 16, 16), NAFBlock(8))) != base
    assert unit_fingerprint(Unit("naf", shape, NAFBlock(8, expand=3))) != base  # wider hidden layers
    assert unit_fingerprint(Unit("naf", shape, NAFBlock(8, norm="batch"))) != base  # another class
    assert unit_fingerprint(Unit("naf", shape, NAFBlock(8, attention=False))) != base  # a module less
    other_eps = NAFBlock(8)
    other_eps.norm1 = LayerNorm2d(8, eps=1e-3)
    assert unit_fingerprint(Unit("naf", shape, other_eps)) != base  # a plain attribute
    strided = nn.Conv2d(8, 8, 3, padding=1, stride=2)
    assert unit_fingerprint(Unit("c", shape, strided)) != unit_fingerprint(Unit("c", shape, nn.Conv2d(8, 8, 3, padding=1)))
