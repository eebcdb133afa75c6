"""Cached latency tables: build only what is missing, resume, refuse foreign tables, find the cache."""

from __future__ import annotations

import math
import shutil
from typing import ClassVar

import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict

from hwnas.tables.building import (
    TableRequest,
    build_table,
    default_table_path,
    default_table_path_for,
    describe_table,
    dry_run_jobs,
    make_backend,
    plan_build,
    resolve_with_table,
    table_units,
)
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyBackend, LatencyTable, Measurement, TableMeta, predict_ms, sidecar_path
from hwnas.contracts.plugins import register_backend
from hwnas.searchspaces.nafnet_unet import NAFNetUNetSpace
from hwnas.contracts.space import Architecture

SIZE = 32
FACTOR = {"naf": 4.0, "naf_bn": 3.0, "naf_bn_lite": 2.0, "cbr": 1.0}


class CountingOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    device: str = "board-a"
    threads: int = 1
    fail_after: int | None = None  # raise after this many results (an interrupted build)


class CountingBackend(LatencyBackend):
    """Deterministic times from the unit's name and shape; counts every unit it measures."""

    name: ClassVar[str] = "counting"
    Options: ClassVar[type[BaseModel]] = CountingOptions

    def __init__(self, options=None):
        super().__init__(options or CountingOptions())
        self.measured: list[tuple[str, str]] = []
        self.attached: dict | None = None

    @property
    def device(self) -> str:
        return self.options.device

    def settings(self):
        return {"device": self.options.device, "threads": self.options.threads}  # fail_after changes no number

    def attach(self, jobs, save):
        self.attached = jobs

    def measure(self, units, on_result=None):
        out = []
        for u in units:
            if self.options.fail_after is not None and len(self.measured) >= self.options.fail_after:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build
            ms = expected_ms(u.kind, u.name, u.input_shape)
            m = Measurement(kind=u.kind, name=u.name, input_shape=tuple(u.input_shape), median_ms=ms, p10_ms=ms,
                            p90_ms=ms, runs=1, device=self.device, runtime="counting")
            self.measured.append((u.name, "x".join(map(str, u.input_shape))))
            if on_result:
                on_result(m)
            out.append(m)
        return out


def expected_ms(kind, name, shape) -> float:
    return FACTOR.get(name, 0.5) * math.prod(shape) / 1e4


@pytest.fixture(scope="module")
def tiny():
    return NAFNetUNetSpace.from_options("tiny")


@pytest.fixture(autouse=True)
def registered():
    register_backend(CountingBackend)


def backend(**options) -> CountingBackend:
    return CountingBackend(CountingOptions(**options))


@pytest.fixture(scope="module")
def built(tiny, tmp_path_factory):
    """A complete tiny table (built once; tests get a copy)."""
    register_backend(CountingBackend)
    path = tmp_path_factory.mktemp("built") / "t.csv"
    build_table(tiny, SIZE, backend(), path)
    return path


@pytest.fixture
def table_path(built, tmp_path):
    path = tmp_path / "t.csv"
    shutil.copy(built, path)
    shutil.copy(sidecar_path(built), sidecar_path(path))
    return path


def test_build_then_rebuild_measures_nothing(tiny, tmp_path):
    path = tmp_path / "t.csv"
    first = backend()
    table = build_table(tiny, SIZE, first, path)
    units = table_units(tiny, SIZE, meta=True)
    assert len(first.measured) == len(units) == len(set(first.measured)) == 24  # 4 shapes x 4 candidates + 8 fixed
    assert first.attached is table.meta.jobs
    again = backend()
    reloaded = build_table(tiny, SIZE, again, path)
    assert again.measured == []
    assert reloaded.frame.shape == table.frame.shape
    loaded = LatencyTable.load(path)
    loaded.require(units)
    for u in units:
        assert loaded.ms(u.name, u.input_shape, kind=u.kind) == pytest.approx(expected_ms(u.kind, u.name, u.input_shape))


def test_positions_share_rows_and_prediction_is_fixed_plus_chosen(tmp_path):
    space = NAFNetUNetSpace.from_options("tiny", enc_blocks=(2, 1, 1), dec_blocks=(1, 1, 2))
    b = backend()
    table = build_table(space, SIZE, b, tmp_path / "t.csv")
    assert len(b.measured) == 24  # enc0.0, enc0.1 and dec0.* share one row per candidate
    positions = space.positions(SIZE)
    fixed = table_units(space, SIZE, meta=True)[-8:]
    arch = Architecture.uniform(space.name, {p.label: p.candidates for p in positions}, "cbr")
    want = sum(expected_ms("fixed", u.name, u.input_shape) for u in fixed) + sum(
        expected_ms("candidate", "cbr", p.input_shape) for p in positions)
    assert predict_ms(table, positions, fixed, arch) == pytest.approx(want)


def test_interrupted_build_keeps_its_rows_and_resumes(tiny, tmp_path):
    path = tmp_path / "t.csv"
    with pytest.raises(KeyboardInterrupt):
        build_table(tiny, SIZE, backend(fail_after=5), path)
    partial = LatencyTable.load(path)  # loads: every finished row is on disk, nothing half-written
    assert len(partial.frame) == 5
    with pytest.raises(HwnasError, match="lacks 19 entries"):
        partial.require(table_units(tiny, SIZE, meta=True))
    rest = backend()
    build_table(tiny, SIZE, rest, path)
    assert len(rest.measured) == 19
    assert not any(key in rest.measured for key in zip(partial.frame["name"], partial.frame["input_shape"]))
    assert len(LatencyTable.load(path).frame) == 24


def test_force_measures_everything_again(tiny, table_path):
    again = backend()
    build_table(tiny, SIZE, again, table_path, force=True)
    assert len(again.measured) == 24
    elsewhere = backend(device="board-b")  # a table for another device is replaced, not refused
    build_table(tiny, SIZE, elsewhere, table_path, force=True)
    assert len(elsewhere.measured) == 24 and TableMeta.read(table_path).device == "board-b"


def test_progress_gets_every_measurement(tiny, tmp_path):
    seen = []
    build_table(tiny, SIZE, backend(), tmp_path / "t.csv", on_progress=seen.append)
    assert len(seen) == 24 and all(isinstance(m, Measurement) for m in seen)


@pytest.mark.parametrize(
    "space_options,size,options,fragment",
    [
        ({"width": 16}, SIZE, {}, "another nafnet-unet configuration"),
        ({}, 64, {}, "measured at 32px, not 64px"),
        ({}, SIZE, {"device": "board-b"}, "measured on 'board-a', not 'board-b'"),
        ({}, SIZE, {"threads": 4}, "measured with threads=1, not 4"),
    ],
)
def test_a_table_for_something_else_is_refused(table_path, space_options, size, options, fragment):
    path = table_path
    space = NAFNetUNetSpace.from_options("tiny", **space_options)
    other = backend(**options)
    with pytest.raises(HwnasError, match=fragment) as err:
        build_table(space, size, other, path)
    assert "pass force=True" in str(err.value) and "pass --force" in err.value.cli and "\n" not in str(err.value)
    assert other.measured == []


def test_a_table_of_another_space_is_refused(tiny, tmp_path):
    table = LatencyTable(TableMeta(space="other", fingerprint="x", image_size=SIZE, backend="counting", device="board-a"))
    table.save(tmp_path / "t.csv")
    with pytest.raises(HwnasError, match="built for space 'other', not 'nafnet-unet'"):
        build_table(tiny, SIZE, backend(), tmp_path / "t.csv")


def test_a_table_of_another_backend_is_refused(tiny, table_path):
    with pytest.raises(HwnasError, match="backend 'counting', not 'macs'"):
        build_table(tiny, SIZE, make_backend("macs", {}), table_path)


@pytest.mark.parametrize("bad", ["nan", "-1.5", "inf", ""])
def test_invalid_entries_are_refused_on_load(table_path, bad):
    path = table_path
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[3, "median_ms"] = bad
    frame.to_csv(path, index=False)
    with pytest.raises(HwnasError, match="invalid median_ms entries") as err:
        LatencyTable.load(path)
    assert "--force" in str(err.value)


def test_duplicate_rows_and_a_missing_sidecar_are_refused(table_path):
    path = table_path
    frame = pd.read_csv(path)
    pd.concat([frame, frame.iloc[:1]]).to_csv(path, index=False)
    with pytest.raises(HwnasError, match="two rows for"):
        LatencyTable.load(path)
    sidecar_path(path).unlink()
    with pytest.raises(HwnasError, match="has no sidecar"):
        LatencyTable.load(path)


def test_missing_entries_are_listed(tiny, table_path):
    path = table_path
    table = LatencyTable.load(path)
    table.frame = table.frame[table.frame["name"] != "cbr"]
    table.save(path)
    with pytest.raises(HwnasError, match=r"lacks 4 entries \(cbr@1x8x32x32") as err:
        LatencyTable.load(path).require(table_units(tiny, SIZE, meta=True))
    assert "hwnas build-lut" in str(err.value)
    plan = plan_build(tiny, SIZE, backend(), path)
    assert (plan.total, len(plan.missing), plan.jobs) == (24, 4, 4)
    assert dry_run_jobs(tiny, SIZE, backend(), path) == 4
    assert len(LatencyTable.load(path).frame) == 20  # a dry run writes nothing


def test_sidecar_records_what_was_measured(tiny, table_path):
    meta = TableMeta.read(table_path)
    assert (meta.space, meta.preset, meta.image_size, meta.backend, meta.device) == ("nafnet-unet", "tiny", SIZE, "counting", "board-a")
    assert meta.fingerprint == tiny.fingerprint() and meta.settings["threads"] == 1
    assert meta.space_config["width"] == 8 and "hwnas" in meta.versions and meta.created


def test_default_path_is_in_the_user_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = default_table_path(tiny, "onnxruntime", "cpu:AMD EPYC 7B13", 256)
    assert path.parent == tmp_path / "hwnas" / "luts"
    assert path.name == f"nafnet-unet-tiny-{tiny.fingerprint()}-onnxruntime-cpu_AMD_EPYC_7B13-256.csv"
    assert default_table_path(NAFNetUNetSpace.from_options("tiny", width=16), "onnxruntime", "cpu", 256) != path


def test_a_table_supplies_the_settings_and_refuses_contradictions(tiny, tmp_path):
    path = tmp_path / "t.csv"
    build_table(NAFNetUNetSpace.from_options("tiny", width=16), SIZE, backend(threads=3), path)
    meta = TableMeta.read(path)
    got = resolve_with_table(meta, TableRequest(), str(path))
    assert (got.space, got.preset, got.image_size, got.backend) == ("nafnet-unet", "tiny", SIZE, "counting")
    assert got.space_options["width"] == 16
    assert got.backend_options == {"device": "board-a", "threads": 3}
    rebuilt = NAFNetUNetSpace.from_options(got.preset, **got.space_options)
    assert rebuilt.fingerprint() == meta.fingerprint
    given = resolve_with_table(meta, TableRequest(backend_options={"threads": 5}), str(path))
    assert given.backend_options["threads"] == 5  # refused later by the table's check
    for request, python, flag in [(TableRequest(preset="paper"), "preset='paper'", "--preset paper"),
                                  (TableRequest(image_size=64), "image_size=64", "--image-size 64"),
                                  (TableRequest(backend="macs"), "backend='macs'", "--backend macs"),
                                  (TableRequest(space="other"), "space='other'", "--space other")]:
        with pytest.raises(HwnasError, match=f"{python} contradicts the latency table") as err:  # a Python caller's words
            resolve_with_table(meta, request, str(path))
        assert err.value.cli.startswith(f"{flag} contradicts the latency table")  # what the command line prints
    forced = resolve_with_table(meta, TableRequest(image_size=64), str(path), refuse=False)
    assert forced.image_size == 64


def test_make_backend_refuses_unknown_and_invalid_options():
    with pytest.raises(HwnasError, match=r"backend_options\['threads'\] does not apply to backend macs") as err:
        make_backend("macs", {"threads": 2})
    assert err.value.cli.startswith("--threads does not apply to backend macs")
    with pytest.raises(HwnasError, match=r"invalid backend_options\['ms_per_gmac'\] for backend macs") as err:
        make_backend("macs", {"ms_per_gmac": -1})
    assert err.value.cli.startswith("invalid --ms-per-gmac for backend macs")
    with pytest.raises(HwnasError, match="unknown latency backend 'nope'"):
        make_backend("nope", {})
    assert make_backend("counting", {"threads": 2}).options.threads == 2


def test_describe_table_ratios_and_uniform_totals(tiny, table_path):
    table = LatencyTable.load(table_path)
    report = describe_table(table, tiny)
    assert report["reference"] == "naf" and report["missing"] == []
    first = report["stages"][0]
    assert first["input_shape"] == "1x8x32x32" and first["positions"] == ["enc0.0", "dec0.0"]
    assert first["candidates"]["cbr"]["ratio"] == pytest.approx(FACTOR["cbr"] / FACTOR["naf"])
    assert report["uniform"]["naf"]["ratio"] == 1.0 and report["uniform"]["cbr"]["ratio"] < 1.0
    without_space = describe_table(table)
    assert without_space["stages"][0]["positions"] == [] and without_space["uniform"] == {}


def test_the_sidecar_keeps_what_the_backend_learnt_after_its_last_result(tmp_path):
    """The onnxruntime backend knows the machine's load over a build only when it ends: the sidecar has it."""
    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions

    path = tmp_path / "t.csv"
    build_table(NAFNetUNetSpace.from_options("tiny"), 16, OnnxRuntimeBackend(OnnxRuntimeOptions(runs=3, warmup=0)), path)
    load = LatencyTable.load(path).meta.settings["load"]
    assert load["cores"] >= 1 and load["seconds"] > 0 and "load_1min_start" in load


def test_a_quantised_table_has_its_own_cache_file():
    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions

    tiny = NAFNetUNetSpace.from_options("tiny")
    fp32 = default_table_path_for(tiny, OnnxRuntimeBackend(OnnxRuntimeOptions()), 32)
    int8 = default_table_path_for(tiny, OnnxRuntimeBackend(OnnxRuntimeOptions(precision="int8")), 32)
    assert int8 != fp32 and int8.name == fp32.name.replace(".csv", "-int8.csv")
