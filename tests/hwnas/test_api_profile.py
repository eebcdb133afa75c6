"""`hwnas.profile`: what `hwnas profile` runs, from Python."""

from __future__ import annotations

import importlib.util

import pytest

import hwnas
from hwnas.contracts.errors import HwnasError


@pytest.fixture(scope="module")
def macs_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "m.csv"
    hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=32, out=path)
    return path


def test_profile_measures_against_the_tables_target(macs_table):
    assert "profile" in hwnas.__all__ and importlib.util.find_spec("hwnas.profile") is None
    report = hwnas.profile(lut=macs_table, uniform="naf")
    assert (report.space.preset, report.config.image_size, report.backend.name) == ("tiny", 32, "macs")  # from the sidecar
    assert report.result.label == "all-naf" and report.result.error_pct == pytest.approx(0, abs=1e-6)
    document = report.to_dict()
    assert document["backend"] == "macs" and document["predicted_ms"] == pytest.approx(document["measured"]["median_ms"])


def test_profile_random_count_sums_up_the_fidelity(macs_table):
    seen = []
    report = hwnas.profile(lut=macs_table, random_count=2, on_result=seen.append)
    assert len(report.results) == len(seen) == 2 and report.fidelity.to_dict()["count"] == 2


def test_profile_refuses_what_contradicts_the_table(macs_table):
    with pytest.raises(HwnasError, match="image_size=64 contradicts the latency table"):
        hwnas.profile(lut=macs_table, uniform="naf", image_size=64)
    with pytest.raises(HwnasError, match="give exactly one of"):
        hwnas.profile(lut=macs_table)
