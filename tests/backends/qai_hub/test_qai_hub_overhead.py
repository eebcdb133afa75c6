"""Per-unit AI Hub tables that add up: a network's 46 units sum to the network, not to it plus 46
per-inference overheads. Against the fake service behind the real client (conftest.py): the
fake device charges every inference `overhead_us` on top of its layers, as a runtime does for
its graph call; every number is a synthetic response of the documented shape."""

from __future__ import annotations

import pytest

from hwnas.backends.qai_hub_profile import without_overhead
from hwnas.contracts.latency import LatencyTable, Measurement, predict_ms, shape_str
from hwnas.contracts.space import Architecture, freeze
from hwnas.tables.building import new_meta

SIZE = 32
OVERHEAD_US = 150  # what the fake device adds to every inference


@pytest.fixture(scope="module")
def paper_layout():
    """The paper preset's structure (36 positions and 10 fixed parts) at width 8, for speed."""
    from hwnas.contracts.plugins import get_space

    space = get_space("nafnet-unet").from_options("paper", width=8)
    positions, fixed = space.positions(SIZE), space.fixed_units(SIZE)
    assert len(positions) + len(fixed) == 46
    return space, positions, fixed


def test_a_46_unit_table_sums_to_the_whole_network_within_5_percent(make_backend, fake_hub, paper_layout):
    space, positions, fixed = paper_layout
    fake_hub.overhead_us = OVERHEAD_US
    arch = Architecture(space=space.name, choices={p.label: "naf" for p in positions})
    units = [u for u in space.candidate_units(SIZE) if u.name == "naf"] + list(fixed)
    backend = make_backend()
    book = {}
    backend.attach(book, lambda: None)
    table = LatencyTable(new_meta(space, SIZE, backend))
    for m in backend.measure(units):
        table.add(m)

    predicted = predict_ms(table, positions, fixed, arch)
    measured = backend.measure_network(freeze(space, arch), tuple(space.example_input(SIZE).shape)).median_ms
    assert abs(predicted / measured - 1) < 0.05, (predicted, measured)

    # the same rows without the probes' subtraction carry one overhead per unit: far off
    shapes = [shape_str(p.input_shape) for p in positions] + [shape_str(u.input_shape) for u in fixed]
    raw = predicted + sum(backend.overhead_ms[s] for s in shapes)
    assert raw / measured - 1 > 0.25, (raw, measured)
    assert set(backend.protocol()["overhead_ms"]) == set(shapes)  # one probe per input shape, in the sidecar
    assert all(book[f"probe@{s}"]["state"] == "done" for s in shapes)


def test_finished_probes_are_reused_when_a_build_resumes(make_backend, fake_hub, tiny_space):
    unit = next(u for u in tiny_space.candidate_units(16) if u.name == "cbr")
    book = {}
    first = make_backend()
    first.attach(book, lambda: None)
    [a] = first.measure([unit])
    probes = [n for n in fake_hub.created("create_compile_job") if "overhead probe" in n]

    second = make_backend()
    second.attach(book, lambda: None)  # a resumed build: the book holds the finished probe
    assert second.planned_jobs([unit]) == 2  # the unit again (e.g. --force), not its probe
    [b] = second.measure([unit])
    assert [n for n in fake_hub.created("create_compile_job") if "overhead probe" in n] == probes
    assert b.median_ms == pytest.approx(a.median_ms) and second.protocol()["overhead_ms"] == first.protocol()["overhead_ms"]


def test_a_failed_probe_ends_the_build_without_unsubtracted_rows(make_backend, fake_hub, tiny_space):
    from hwnas.contracts.latency import MeasurementError

    fake_hub.compile_failures["overhead probe"] = "Failed to compile: graph has no ops"
    unit = next(u for u in tiny_space.candidate_units(16) if u.name == "cbr")
    delivered = []
    with pytest.raises(MeasurementError, match=r"AI Hub compile job jc\d+ for the overhead probe at 1x8x16x16 failed: "
                                               r"Failed to compile: graph has no ops"):
        make_backend().measure([unit], delivered.append)
    assert delivered == []  # no row is written without its overhead


def test_subtracting_the_overhead_never_makes_a_unit_free():
    m = Measurement(kind="candidate", name="cbr", input_shape=(1, 8, 4, 4), median_ms=0.20, p10_ms=0.18, p90_ms=0.30,
                    runs=5, device="sm8650", runtime="r", service_ms=0.19)
    probe = m.model_copy(update={"median_ms": 0.25, "service_ms": 0.10})
    got = without_overhead(m, probe)
    assert (got.median_ms, got.p10_ms, got.p90_ms) == (0.001, 0.001, pytest.approx(0.05))  # 1 us, never 0 or below
    assert got.service_ms == pytest.approx(0.09)
