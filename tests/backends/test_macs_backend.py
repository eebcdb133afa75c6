"""The analytic MACs backend: device-free, deterministic, exact MAC counts."""

from __future__ import annotations

import pytest

from hwnas.backends.macs import MacsBackend, MacsOptions
from hwnas.tables.building import build_table, make_backend
from hwnas.tables.cost import count_macs
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.plugins import get_backend
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace

SIZE = 32


@pytest.fixture(scope="module")
def tiny():
    return NAFNetUNetSpace.from_options("tiny")


def test_registered_as_macs():
    assert get_backend("macs") is MacsBackend


def test_ms_are_gmacs_times_the_factor(tiny):
    units = tiny.candidate_units(SIZE)[:4] + tiny.fixed_units(SIZE)
    got = MacsBackend(MacsOptions(ms_per_gmac=2.5)).measure(units)
    for u, m in zip(units, got):
        assert m.median_ms == m.p10_ms == m.p90_ms == pytest.approx(count_macs(u.module, u.input_shape) / 1e9 * 2.5)
        assert (m.kind, m.name, m.input_shape, m.device) == (u.kind, u.name, u.input_shape, "analytic")
    by_name = {m.name: m.median_ms for m in got[:4]}
    assert by_name["naf"] == by_name["naf_bn"] > by_name["cbr"] > 0  # norms count nothing: why the paper measures


def test_builds_a_complete_table_without_a_device(tiny, tmp_path):
    table = build_table(tiny, SIZE, MacsBackend(), tmp_path / "macs.csv")
    assert len(table.frame) == 24 and table.meta.device == "analytic" and table.meta.settings["ms_per_gmac"] == 1.0


def test_rejects_a_device_and_a_bad_factor():
    with pytest.raises(HwnasError, match="device-free"):
        make_backend("macs", {"device": "sm8650"})
    with pytest.raises(HwnasError, match=r"invalid backend_options\['ms_per_gmac'\]"):
        make_backend("macs", {"ms_per_gmac": 0})
