"""The `LatencyBackend` contract, checked for every backend in the `hwnas.backends` entry-point
group (generated from the registry, as the space contract is from the spaces): a backend added
by a plugin is held to the same rules without a test of its own.

Remote backends (`submits_jobs`) are not asked to measure here -- that would submit jobs; their
measuring is tested against recorded responses in their own tests.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyBackend, Measurement
from hwnas.contracts.plugins import backend_names, get_backend
from hwnas.contracts.space import Unit
from hwnas.tables.building import make_backend

pytestmark = pytest.mark.usefixtures("one_thread")


def unit(name: str = "probe", channels: int = 4, size: int = 8) -> Unit:
    return Unit(name, (1, channels, size, size), nn.Conv2d(channels, channels, 3, padding=1).eval())


@pytest.mark.parametrize("name", backend_names())
def test_a_backend_is_registered_under_its_own_name(name):
    cls = get_backend(name)
    assert issubclass(cls, LatencyBackend)
    assert cls.name == name, f"{cls.__name__}.name is {cls.name!r}, registered as {name!r}"


@pytest.mark.parametrize("name", backend_names())
def test_default_options_give_recordable_settings(name):
    backend = make_backend(name, {})
    settings = backend.settings()
    assert json.loads(json.dumps(settings)) == settings  # the sidecar stores them as JSON
    json.dumps(backend.protocol())
    json.dumps(backend.tool_versions())
    assert isinstance(backend.device, str) and backend.device


@pytest.mark.parametrize("name", backend_names())
def test_an_unknown_option_is_one_clear_error(name):
    with pytest.raises(HwnasError, match="does not apply to backend"):
        make_backend(name, {"no_such_option": 1})


@pytest.mark.parametrize("name", backend_names())
def test_check_configured_passes_or_says_what_is_missing(name, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no user configuration (e.g. no AI Hub token)
    for var in ("QAIHUB_API_TOKEN", "QAIHUB_CLIENT_INI"):
        monkeypatch.delenv(var, raising=False)
    backend = make_backend(name, {})
    try:
        backend.check_configured()
    except HwnasError as err:  # the only allowed failure: one sentence naming the fix
        assert "\n" not in str(err) and str(err).endswith(".")


@pytest.mark.parametrize("name", backend_names())
def test_planned_jobs_counts_units(name):
    backend = make_backend(name, {})
    jobs = backend.planned_jobs([unit("a"), unit("b")])
    assert isinstance(jobs, int) and jobs >= 0


@pytest.mark.parametrize("name", [n for n in backend_names() if not get_backend(n).submits_jobs])
def test_a_local_backend_measures_units_in_order(name):
    backend = make_backend(name, {})
    units = [unit("small", 4, 8), unit("large", 8, 16)]
    seen: list[Measurement] = []
    out = backend.measure(units, on_result=seen.append)
    assert [(m.name, m.input_shape) for m in out] == [(u.name, u.input_shape) for u in units]
    assert sorted(m.name for m in seen) == ["large", "small"]  # every result is handed over as it arrives
    for m in out:
        assert math.isfinite(m.median_ms) and m.median_ms > 0
        assert m.p10_ms <= m.median_ms <= m.p90_ms
        assert m.device == backend.device


@pytest.mark.parametrize("name", [n for n in backend_names() if not get_backend(n).submits_jobs])
def test_a_local_backend_measures_a_whole_network(name):
    backend = make_backend(name, {})
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)).eval()
    with torch.no_grad():
        m = backend.measure_network(net, (1, 3, 16, 16))
    assert m.kind == "network" and m.median_ms > 0


def test_optional_capabilities_are_protocols_not_base_methods_that_raise():
    from hwnas.contracts.capabilities import CAPABILITIES

    for capability in CAPABILITIES:
        for method in (m for m in vars(capability) if not m.startswith("_") and callable(getattr(capability, m))):
            if method != "runtime":
                assert not hasattr(LatencyBackend, method), f"LatencyBackend.{method}: make it {capability.__name__} only"


@pytest.mark.parametrize("name", backend_names())
def test_what_a_backend_cannot_do_is_refused_in_one_sentence_naming_the_fix(name):
    from hwnas.contracts.capabilities import CAPABILITIES, require

    backend = make_backend(name, {})
    for capability in CAPABILITIES:
        if isinstance(backend, capability):
            assert require(backend, capability) is backend
            continue
        with pytest.raises(HwnasError) as caught:
            require(backend, capability)
        text = str(caught.value)
        assert f"the {name} backend cannot" in text and "\n" not in text and ("use" in text or "choose" in text)
