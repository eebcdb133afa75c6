"""Collapse said plainly: a uniform derived network is named, and a cheapest-everywhere one explained."""

from hwnas.nas.collapse import collapse_summary, summary_line, target_warning, uniform_candidate
from hwnas.contracts.latency import LatencyTable, Measurement, TableMeta
from hwnas.nas.objective import DeviceLatency, latency_model
from hwnas.contracts.space import Architecture, Position, Unit

MS = {"naf": 4.0, "cbr": 1.0}  # per 8 channels
POSITIONS = [Position(x, x, tuple(MS), (1, 8 * n, 32, 32)) for x, n in zip("abcd", (1, 2, 2, 1))]
FIXED = [Unit("stem", (1, 3, 32, 32), None, kind="fixed")]


def table_for(positions) -> LatencyTable:
    table = LatencyTable(TableMeta(space="s", fingerprint="f", image_size=32, backend="b", device="d"))
    rows = [("candidate", name, p.input_shape, MS[name] * p.input_shape[1] / 8) for p in positions for name in MS]
    for kind, name, shape, ms in rows + [("fixed", "stem", (1, 3, 32, 32), 0.5)]:
        table.add(Measurement(kind=kind, name=name, input_shape=shape, median_ms=ms, p10_ms=ms, p90_ms=ms, runs=1,
                              device="d", runtime="r"))
    return table


def device(target_ms=None) -> DeviceLatency:
    return DeviceLatency("d", latency_model(table_for(POSITIONS), POSITIONS, FIXED), 1.0, target_ms)


def arch(**choices) -> Architecture:
    return Architecture(space="s", choices=choices)


ALL_CBR = arch(a="cbr", b="cbr", c="cbr", d="cbr")
MIXED = arch(a="cbr", b="naf", c="cbr", d="cbr")


def test_cheapest_network_adds_every_positions_cheapest_candidate():
    # cbr is 1 ms per 8 channels: a 1, b 2, c 2, d 1; stem 0.5
    assert device().model.cheapest_ms == 6.5


def test_a_mix_is_not_uniform():
    assert uniform_candidate(MIXED) is None
    assert collapse_summary(MIXED, POSITIONS, device(), 0.1) == {"uniform": None, "collapse": None}
    assert summary_line({"uniform": None, "collapse": None}) is None


def test_all_cheapest_under_mu_says_so_and_what_to_change():
    s = collapse_summary(ALL_CBR, POSITIONS, device(), 0.5)
    assert s["uniform"] == "cbr"
    text = summary_line(s)
    assert "collapsed" in text and "uniform all-cbr network, not a search result" in text
    assert "lower --latency-weight (e.g. 0.05)" in text


def test_all_cheapest_under_a_target_names_the_target_against_the_cheapest():
    s = collapse_summary(ALL_CBR, POSITIONS, device(target_ms=6.6), 0.1)
    assert "the target 6.6 ms is 1.02x the cheapest network's predicted 6.5 ms" in s["collapse"]["text"]
    assert "raise --target-ms" in s["collapse"]["text"]


def test_uniform_but_not_cheapest_is_named_without_blame():
    s = collapse_summary(arch(a="naf", b="naf", c="naf", d="naf"), POSITIONS, device(), 0.1)
    assert s == {"uniform": "naf", "collapse": None}
    assert summary_line(s) == "the derived network is uniform: all-naf (one candidate at every position)."


def test_a_target_at_or_below_the_cheapest_network_is_warned_about():
    assert target_warning(device(target_ms=None)) is None
    assert target_warning(device(target_ms=10.0)) is None
    assert "within 5% of the cheapest network" in target_warning(device(target_ms=6.7))
    assert "below the cheapest network" in target_warning(device(target_ms=5.0))
