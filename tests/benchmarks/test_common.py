"""benchmarks/common.py: the sidecar every benchmark keeps beside its rows."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def common(benchmark_script):
    return benchmark_script("common.py")


def test_two_runs_at_once_keep_each_others_record_and_changes(common, tmp_path):
    """Two stages of one benchmark running at once (as the plateau's two networks did): each run's end used to write
    back the sidecar it read at its start, so the first to finish read "running" for ever."""
    with common.record_run("b", settings={"a": 1}, results_dir=tmp_path, argv=["x", "--net", "cbr"]) as first:
        with common.record_run("b", settings={"b": 2}, results_dir=tmp_path, argv=["x", "--net", "naf"]) as second:
            second.setdefault("searches", {})["naf"] = "cmd naf"
            second["notes"].append("naf note")
        first.setdefault("searches", {})["cbr"] = "cmd cbr"
    meta = json.loads((tmp_path / "b.meta.json").read_text())
    assert [(r["command"].split()[-1], r["status"]) for r in meta["runs"]] == [("cbr", "done"), ("naf", "done")]
    assert meta["searches"] == {"naf": "cmd naf", "cbr": "cmd cbr"} and meta["notes"] == ["naf note"]
    assert meta["settings"] == {"a": 1, "b": 2}
    assert [r["settings"] for r in meta["runs"]] == [{"a": 1}, {"b": 2}]  # each run's own, not the merge


def test_a_failed_run_is_recorded_as_failed_and_the_error_goes_on(common, tmp_path):
    with pytest.raises(RuntimeError):
        with common.record_run("b", results_dir=tmp_path, argv=["x"]):
            raise RuntimeError("boom")
    (run,) = json.loads((tmp_path / "b.meta.json").read_text())["runs"]
    assert run["status"] == "failed" and run["finished"]


def test_a_run_that_replaces_the_notes_replaces_them(common, tmp_path):
    with common.record_run("b", results_dir=tmp_path, argv=["x"]) as meta:
        meta["notes"].append("old wording")
    with common.record_run("b", results_dir=tmp_path, argv=["x"]) as meta:
        meta["notes"] = ["new wording"]  # as bench_quality sets its NOTES
    assert json.loads((tmp_path / "b.meta.json").read_text())["notes"] == ["new wording"]
