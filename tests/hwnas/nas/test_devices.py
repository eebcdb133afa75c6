"""One search for several devices (issue 15): flags, config, objective, and a search, sweep and
profile end to end on two tables of the tiny preset whose cost structures differ.

The two tables stand for two AI Hub chipsets (Snapdragon 8 Gen 3 and 8 Gen 2): the
AI Hub backend's table format and sidecar, with costs written here (the MACs table's,
scaled per candidate so the chips disagree on which block is cheap), not measured.
"""

import json
import sys

import matplotlib.font_manager  # noqa: F401 -- font cache found before XDG_CACHE_HOME moves
import pytest
import torch

from hwnas.backends.macs import MacsBackend
from hwnas.cli import main
from hwnas.cli.devices import table_fields
from hwnas.nas.combine import SMOOTH_TEMPERATURE, smooth_worst, weighted_sum
from hwnas.contracts.config import SearchConfig, SpaceSpec, build_config
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable
from hwnas.nas.objective import DeviceLatency, LatencyModel, Objective
from hwnas.tables.building import build_table

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

SIZE = 32
FAST = ["--crop", "16", "--batch-size", "2", "--steps-per-epoch", "2", "--epochs", "2", "--warmup-epochs", "1"]
# Per-candidate cost factors: on the "8 Gen 3" the BatchNorm blocks are cheap (they fuse), on the
# "8 Gen 2" the original block is (a made-up but plausible disagreement).
CHIPS = {
    "gen3": ("Samsung Galaxy S24 (Family)", {"naf": 1.0, "naf_bn": 0.5, "naf_bn_lite": 0.4, "cbr": 0.2}),
    "gen2": ("Samsung Galaxy S23 (Family)", {"naf": 1.0, "naf_bn": 1.6, "naf_bn_lite": 1.8, "cbr": 2.5}),
}




@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """{name: path} of two AI Hub-format tables of the tiny preset at 32 px."""
    folder = tmp_path_factory.mktemp("chips")
    space = SpaceSpec(space="nafnet-unet", preset="tiny").create()
    base = build_table(space, SIZE, MacsBackend(), folder / "macs.csv")
    paths = {}
    for name, (device, factor) in CHIPS.items():
        table = LatencyTable.load(folder / "macs.csv")
        frame = table.frame
        for candidate, f in factor.items():
            rows = (frame["kind"] == "candidate") & (frame["name"] == candidate)
            for column in ("median_ms", "p10_ms", "p90_ms"):
                if column in frame:
                    frame.loc[rows, column] = frame.loc[rows, column] * f
        table.meta = table.meta.model_copy(update={"backend": "qai-hub", "device": device,
                                                   "settings": {"device": device, "precision": "int8"}})
        table.save(folder / f"{name}.csv")
        paths[name] = folder / f"{name}.csv"
    assert base.meta.backend == "macs"
    return paths


# -- flags and config ----------------------------------------------------------------------


def test_one_plain_table_keeps_the_single_table_fields():
    assert table_fields(["a.csv"], None, ["12"]) == {"lut": "a.csv", "target_ms": 12.0}
    assert table_fields(None, None, None) == {}


def test_named_weighted_tables_with_targets():
    got = table_fields(["phone=a.csv", "b.csv"], ["phone=2"], ["phone=12", "b=300"])
    assert got == {"tables": [{"name": "phone", "path": "a.csv", "weight": 2.0, "target_ms": 12.0},
                              {"name": "b", "path": "b.csv", "target_ms": 300.0}]}


@pytest.mark.parametrize("luts, weights, targets, message", [
    (["a=x.csv", "b=y.csv"], ["c=2"], None, "--lut-weight names the table 'c'"),
    (["a=x.csv", "b=y.csv"], ["a=heavy"], None, "not NAME=NUMBER"),
    (["a=x.csv", "b=y.csv"], None, ["a=1", "5"], "not both"),
    (["a=x.csv"], None, ["fast"], "not a number of milliseconds"),
    (None, ["a=2"], None, "pass the tables with --lut NAME=PATH"),
])
def test_flag_mistakes_are_one_sentence(luts, weights, targets, message):
    with pytest.raises(HwnasError, match=message):
        table_fields(luts, weights, targets)


def test_a_lut_path_with_an_equals_sign_is_a_path_and_a_name_it_cannot_take_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my table!=lut.csv").write_text("")
    assert table_fields(["my table!=lut.csv"], None, None) == {"lut": "my table!=lut.csv"}  # it exists: a path
    (tmp_path / "my table!=lut.csv").unlink()
    (tmp_path / "lut.csv").write_text("")
    with pytest.raises(HwnasError) as err:  # NAME=PATH meant: the name is refused, not the whole text sought as a file
        table_fields(["my table!=lut.csv"], None, None)
    assert str(err.value) == ("--lut 'my table!=lut.csv': 'my table!' is not a table name (letters, digits, '.', '_' and '-', "
                              "starting with a letter or digit) and no file 'my table!=lut.csv' exists; write e.g. "
                              "--lut my_table=lut.csv.")


@pytest.mark.parametrize("tables, extra, message", [
    ([{"name": "a", "path": "x.csv"}, {"name": "a", "path": "y.csv"}], {}, "two tables are named 'a'"),
    ([{"name": "a", "path": "x.csv"}, {"name": "b", "path": "y.csv"}], {"target_ms": 5}, "one per table"),
    ([{"name": "a", "path": "x.csv", "target_ms": 5}, {"name": "b", "path": "y.csv"}], {}, "table 'b' has no target"),
    ([{"name": "a", "path": "x.csv", "weight": 0}, {"name": "b", "path": "y.csv"}], {}, "weight"),
])
def test_config_refuses_ambiguous_devices(tables, extra, message):
    with pytest.raises(HwnasError, match=message):
        build_config(SearchConfig, spec={"space": "nafnet-unet"}, tables=tables, **extra)


def test_per_device_targets_make_the_constraint_form():
    c = build_config(SearchConfig, spec={"space": "nafnet-unet"},
                     tables=[{"name": "a", "path": "x.csv", "target_ms": 5}, {"name": "b", "path": "y.csv", "target_ms": 9}])
    assert c.latency_weight == 1.0 and c.combine == "sum"


# -- the objective ---------------------------------------------------------------------------


def model(ms) -> LatencyModel:
    ms = torch.tensor(ms, dtype=torch.float32)
    return LatencyModel(ms, torch.ones_like(ms, dtype=torch.bool), 0.0, float(ms[:, 0].sum()))


def test_sum_and_worst_combine_each_devices_normalised_term():
    a, b = model([[4.0, 1.0]]), model([[1.0, 4.0]])  # the devices disagree on the cheap candidate
    alpha = torch.tensor([[0.0, 1.0]])
    devices = (DeviceLatency("a", a, 1.0), DeviceLatency("b", b, 3.0))
    terms = torch.tensor([0.25, 4.0])
    summed = Objective(devices, 1.0, weighted_sum).latency_term(alpha)
    assert float(summed) == pytest.approx((0.25 + 3 * 4.0) / 4)
    worst = Objective(devices, 1.0, smooth_worst).latency_term(alpha)
    assert float(worst) == pytest.approx(float(smooth_worst(terms, torch.tensor([1.0, 3.0]))))
    assert 12.0 - SMOOTH_TEMPERATURE * 0.7 <= float(worst) <= 12.0


def test_the_worst_device_takes_almost_all_of_the_gradient():
    """A worst case, not a blend: terms as a search ends them (~0.4), one device 0.04 below the other."""
    terms = torch.tensor([0.40, 0.36], requires_grad=True)
    smooth_worst(terms, torch.ones(2)).backward()
    assert float(terms.grad.sum()) == pytest.approx(1.0)
    assert float(terms.grad[0]) > 0.97 and float(terms.grad[1]) > 0  # the other still gets a (small) gradient
    tied = torch.tensor([0.40, 0.40], requires_grad=True)
    smooth_worst(tied, torch.ones(2)).backward()
    assert tied.grad.tolist() == pytest.approx([0.5, 0.5], abs=1e-5)


def test_one_device_is_the_single_table_objective():
    m = model([[4.0, 1.0], [2.0, 2.0]])
    alpha = torch.tensor([[0.3, 0.7], [0.5, 0.5]])
    for combine in (weighted_sum, smooth_worst):
        one = Objective((DeviceLatency("x", m, 1.0, 5.0),), 1.0, combine)
        assert float(one.latency_term(alpha)) == pytest.approx(float(Objective.single(m, 1.0, 5.0).latency_term(alpha)))


def test_the_constraint_form_penalises_only_devices_over_their_target():
    a, b = model([[4.0, 1.0]]), model([[1.0, 4.0]])
    alpha = torch.tensor([[0.0, 1.0]], requires_grad=True)  # 1 ms on a, 4 ms on b
    objective = Objective((DeviceLatency("a", a, 1.0, 2.0), DeviceLatency("b", b, 1.0, 2.0)), 1.0, weighted_sum)
    term = objective.latency_term(alpha)
    assert float(term.detach()) == pytest.approx((0.0 + (4.0 / 2.0 - 1.0)) / 2)
    term.backward()
    assert alpha.grad[0, 1] > 0  # only b's hinge is active: its cost of candidate 1 pushes it down


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def joint(tables, tmp_path_factory):
    """A two-device worst-case search through the CLI (run once for the tests below)."""
    out = tmp_path_factory.mktemp("joint") / "run"
    mp = pytest.MonkeyPatch()
    cap = []
    mp.setattr(sys, "argv", ["hwnas", "search", "--lut", f"gen3={tables['gen3']}", "--lut", f"gen2={tables['gen2']}",
                             "--lut-weight", "gen2=2", "--combine", "worst", *FAST, "--out", str(out), "--json"])
    try:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                main()
            except SystemExit as done:
                assert done.code in (0, None)
        cap.append(buf.getvalue())
    finally:
        mp.undo()
    return out, json.loads(cap[0])


def test_the_summary_reports_every_device(joint, tables):
    out, report = joint
    devices = report["devices"]
    assert list(devices) == ["gen3", "gen2"] and report["combine"] == "worst"
    for name, d in devices.items():
        assert d["backend"] == "qai-hub" and d["precision"] == "int8" and d["device"] == CHIPS[name][0]
        assert d["ratio"] == pytest.approx(d["predicted_ms"] / d["base_ms"])
    assert devices["gen2"]["weight"] == 2.0 and devices["gen3"]["weight"] == 1.0
    assert report["predicted_ms"] == pytest.approx(devices["gen3"]["predicted_ms"])  # the first table's fields stay
    assert (out / "lut.csv").is_file() and (out / "lut-gen2.csv").is_file() and (out / "lut-gen2.meta.json").is_file()
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"expected_ms:gen3", "derived_ms:gen3", "expected_ms:gen2", "derived_ms:gen2"} <= set(header)


def test_a_resumed_run_reads_its_own_copies(joint, tables, cli, tmp_path):
    out, _ = joint
    code, stdout, err = cli("search", "--out", out, "--resume", "--epochs", "3")
    assert code == 0, err
    assert "per device (worst" in stdout and "gen2" in stdout and "Galaxy S23" in stdout


def test_tables_of_different_networks_are_refused(tables, cli, tmp_path):
    other = LatencyTable.load(tables["gen2"])
    other.meta = other.meta.model_copy(update={"image_size": 64})
    other.save(tmp_path / "big.csv")
    code, _, err = cli("search", "--lut", f"a={tables['gen3']}", "--lut", f"b={tmp_path / 'big.csv'}",
                         *FAST, "--out", tmp_path / "run")
    assert code != 0 and err.startswith("error: ") and "image size" in err and "same network" in err
    assert not (tmp_path / "run").exists()


def test_a_missing_table_is_named(tables, cli, tmp_path):
    code, _, err = cli("search", "--lut", f"a={tables['gen3']}", "--lut", f"b={tmp_path / 'nope.csv'}",
                         *FAST, "--out", tmp_path / "run")
    assert code != 0 and "nope.csv" in err and len(err.strip().splitlines()) == 1


def test_sweep_has_one_front_per_device(tables, cli, tmp_path):
    code, out, err = cli("sweep", "--latency-weight", "0,3", "--lut", f"gen3={tables['gen3']}",
                           "--lut", f"gen2={tables['gen2']}", "--crop", "16", "--batch-size", "2", "--steps-per-epoch", "1",
                           "--epochs", "2", "--warmup-epochs", "1", "--out", tmp_path / "sweep", "--json")
    assert code == 0, err
    header = (tmp_path / "sweep" / "sweep.csv").read_text().splitlines()[0].split(",")
    for name in ("gen3", "gen2"):
        assert {f"predicted_ms:{name}", f"ratio:{name}", f"pareto:{name}"} <= set(header)
    assert (tmp_path / "sweep" / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_profile_measures_an_architecture_on_every_tables_device(tmp_path, cli):
    space = SpaceSpec(space="nafnet-unet", preset="tiny").create()
    build_table(space, SIZE, MacsBackend(), tmp_path / "a.csv")
    build_table(space, SIZE, MacsBackend(), tmp_path / "b.csv")
    code, out, err = cli("profile", "--lut", f"x={tmp_path / 'a.csv'}", "--lut", f"y={tmp_path / 'b.csv'}",
                           "--uniform", "cbr", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert set(report["devices"]) == {"x", "y"}
    code, _, err = cli("profile", "--lut", f"x={tmp_path / 'a.csv'}", "--lut", f"y={tmp_path / 'b.csv'}",
                         "--random-count", "2")
    assert code == 2 or code == 1
    assert "one table at a time" in err
