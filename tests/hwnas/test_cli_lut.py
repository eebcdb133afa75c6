"""`hwnas build-lut`, `hwnas lut show`, `hwnas profile`: real runs, pure JSON, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import hwnas as hwnas_api
from hwnas.contracts.latency import TableMeta, sidecar_path

TINY = ["--preset", "tiny", "--image-size", "32"]


def hwnas(*args):
    """The real entry point in a subprocess (stdout, stderr and exit code as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def ort_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("ort") / "tiny-ort.csv"
    out = hwnas("build-lut", "--backend", "onnxruntime", *TINY, "--runs", "3", "--warmup", "1", "--out", str(path), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # stdout is JSON only, even with a progress bar and logs
    assert report["measured"] == report["units"] == 24 and report["device"].startswith("cpu:")
    return path


def test_build_lut_onnxruntime_then_rebuild_measures_nothing(ort_table, cli):
    code, out, _ = cli("build-lut", "--out", str(ort_table))  # settings come from the table's sidecar
    assert code == 0 and out.startswith("nothing to measure")
    assert TableMeta.read(ort_table).settings["runs"] == 3


def test_profile_json_reports_measured_predicted_and_error(ort_table, cli):
    code, out, err = cli("profile", "--lut", str(ort_table), "--uniform", "naf", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["label"] == "all-naf" and report["preset"] == "tiny" and report["image_size"] == 32
    assert report["measured"]["median_ms"] > 0 and report["predicted_ms"] > 0
    want = 100 * (report["predicted_ms"] - report["measured"]["median_ms"]) / report["measured"]["median_ms"]
    assert report["error_pct"] == pytest.approx(want)
    assert report["protocol"]["runs"] == 3  # the table's measurement settings, from its sidecar


def test_profile_text_with_breakdown(ort_table, cli):
    code, out, err = cli("profile", "--lut", str(ort_table), "--random", "1", "--breakdown", "--runs", "2")
    assert code == 0, err
    assert "architecture  random (seed 1)" in out and "predicted" in out
    assert "error" in out and " %" in out
    assert "where the time goes" in out and "by operator type:" in out and "Conv" in out


def test_lut_show_text_and_json(ort_table, cli):
    code, out, _ = cli("lut", "show", str(ort_table))
    assert code == 0
    assert "1x8x32x32" in out and "enc0 x1, dec0 x1" in out and "x)" in out and "all-cbr" in out
    code, out, _ = cli("lut", "show", str(ort_table), "--json", "--reference", "cbr")
    report = json.loads(out)
    assert report["reference"] == "cbr" and report["stages"][0]["candidates"]["cbr"]["ratio"] == 1.0


def test_macs_build_dry_run_and_resume(cli, tmp_path):
    path = tmp_path / "m.csv"
    code, out, _ = cli("build-lut", "--backend", "macs", *TINY, "--out", str(path), "--dry-run")
    assert code == 0 and "would measure 24 of 24 units (24 jobs)" in out and not path.exists()
    code, out, _ = cli("build-lut", "--backend", "macs", *TINY, "--out", str(path), "-b", "ms_per_gmac=2")
    assert code == 0 and out.startswith("measured 24 of 24 units")
    assert TableMeta.read(path).settings["ms_per_gmac"] == 2
    code, out, _ = cli("build-lut", "--out", str(path), "--json")
    assert code == 0 and json.loads(out)["measured"] == 0


def test_profile_without_a_table_measures_only(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, out, _ = cli("profile", "--backend", "macs", *TINY, "--uniform", "cbr")
    assert code == 0 and "measured" in out and "predicted" not in out
    cli("build-lut", "--backend", "macs", *TINY)  # into the cache, where profile finds it
    assert list((tmp_path / "hwnas" / "luts").glob("nafnet-unet-tiny-*-macs-analytic-32.csv"))
    code, out, _ = cli("profile", "--backend", "macs", *TINY, "--uniform", "cbr")
    assert code == 0 and "error         +0.0 %" in out  # MACs add up exactly


def test_profile_random_count_sums_up_the_fidelity(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cli("build-lut", "--backend", "macs", *TINY)
    code, out, err = cli("profile", "--backend", "macs", *TINY, "--random-count", "3", "--random", "4")
    assert code == 0, err
    assert "random-4" in out and "random-6" in out and "random-7" not in out
    assert "fidelity      3 networks: mean |error| 0.0 %, worst +0.0 %, 3 of 3 within +-10 %" in out
    assert "scale-free    3 networks: mean |error| 0.0 %" in out and "one common factor per batch taken out: +0.0 %" in out
    code, out, err = cli("profile", "--backend", "macs", *TINY, "--random-count", "2", "--same-rounds", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [n["label"] for n in report["networks"]] == ["random-0", "random-1"]
    assert report["fidelity"]["within"] == 2 and report["fidelity_same_rounds"]["count"] == 2
    assert report["networks"][0]["error_same_rounds_pct"] == pytest.approx(0.0, abs=1e-6)
    assert report["fidelity_scale_free"]["count"] == 2 and report["networks"][1]["batch"] == 0
    assert report["networks"][1]["scale_free_error_pct"] == pytest.approx(0.0, abs=1e-6)


def test_profile_an_onnx_file_with_the_tables_settings(ort_table, cli, tmp_path):
    code, _, err = cli("train", *TINY[:2], "--uniform", "cbr", "--epochs", "1", "--steps-per-epoch", "1", "--out", str(tmp_path / "ft"))
    assert code == 0, err
    model = tmp_path / "ft" / "model.pt"
    onnx = tmp_path / "ft.onnx"
    assert cli("export", "--model", str(model), "--out", str(onnx))[0] == 0
    code, out, err = cli("profile", "--lut", str(ort_table), "--onnx", str(onnx))
    assert code == 0, err
    assert "measured" in out and "(from the file's hwnas metadata): cbr x7" in out and "error" in out and "input 1x3x32x32" in out
    code, out, err = cli("profile", "--lut", str(ort_table), "--onnx", str(onnx), "--json")
    assert code == 0, err
    assert json.loads(out)["predicted_ms"] == hwnas_api.predict(onnx, ort_table).total_ms  # hwnas.predict: the same sum
    code, out, err = cli("profile", "--lut", str(ort_table), "--onnx", str(onnx), "--json")
    report = json.loads(out)
    assert report["predicted_ms"] > 0 and report["error_pct"] is not None and report["protocol"]["runs"] == 3


@pytest.fixture
def macs_table(cli, tmp_path):
    path = tmp_path / "m.csv"
    assert cli("build-lut", "--backend", "macs", *TINY, "--out", str(path))[0] == 0
    return path


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["build-lut", "--backend", "nope"], "unknown latency backend 'nope'"),
        (["build-lut", "--backend", "macs", "--threads", "2"], "--threads does not apply to backend macs"),
        (["build-lut", "--backend", "onnxruntime", "--device", "sm8650"], "invalid --device for backend onnxruntime"),
        (["build-lut", "--backend", "onnxruntime", "--runs", "0"], "invalid --runs for backend onnxruntime"),
        (["build-lut", "--backend", "macs", "--preset", "huge"], "no preset 'huge'"),
        (["profile", "--backend", "macs"], "give exactly one of --arch FILE, --uniform CANDIDATE, --random SEED, --random-count N or --onnx FILE"),
        (["profile", "--backend", "macs", "--uniform", "naf", "--random-count", "3"], "(got --uniform and --random-count)"),
        (["profile", "--backend", "macs", *TINY, "--random-count", "2", "--breakdown"], "--breakdown takes one network"),
        (["profile", "--backend", "macs", *TINY, "--uniform", "naf", "--same-rounds"], "--same-rounds goes with --random-count N"),
        (["profile", "--backend", "macs", *TINY, "--random-count", "0"], "--random-count"),
        (["profile", "--backend", "macs", *TINY, "--onnx", "missing.onnx"], "cannot time an ONNX file"),
        (["profile", "--backend", "onnxruntime", *TINY, "--onnx", "missing.onnx"], "no ONNX file at missing.onnx"),
        (["profile", "--backend", "macs", "--uniform", "naf", "--random", "1"], "(got --uniform and --random)"),
        (["profile", "--backend", "macs", "--uniform", "nope", *TINY], "candidate 'nope' is not offered"),
        (["profile", "--lut", "missing.csv", "--uniform", "naf"], "no latency table at missing.csv"),
        (["profile", "--backend", "macs", *TINY, "--uniform", "naf", "--breakdown"], "cannot break latency down per layer"),
        (["lut", "show", "missing.csv"], "no latency table at missing.csv"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*args, "--out", "t.csv") if args[0] == "build-lut" else cli(*args)
    assert code == 2, err
    assert fragment in err and err.startswith("error: ") and err.count("\n") == 1
    assert out == "" and not (tmp_path / "t.csv").exists()  # nothing half-written


def test_a_table_for_another_preset_or_backend_is_refused(cli, macs_table):
    code, _, err = cli("build-lut", "--out", str(macs_table), "--preset", "paper")
    assert code == 2 and "--preset paper contradicts the latency table" in err and err.count("\n") == 1
    code, _, err = cli("profile", "--lut", str(macs_table), "--backend", "onnxruntime", "--uniform", "naf")
    assert code == 2 and "--backend onnxruntime contradicts" in err
    code, _, err = cli("build-lut", "--out", str(macs_table), "--image-size", "64")
    assert code == 2 and "--image-size 64 contradicts" in err
    code, out, _ = cli("build-lut", "--out", str(macs_table), "--image-size", "64", "--force")
    assert code == 0 and TableMeta.read(macs_table).image_size == 64


def test_a_table_with_a_bad_entry_is_refused(cli, macs_table):
    frame = pd.read_csv(macs_table)
    frame.loc[0, "median_ms"] = -1.0
    frame.to_csv(macs_table, index=False)
    for args in (["lut", "show", str(macs_table)], ["profile", "--lut", str(macs_table), "--uniform", "naf"]):
        code, _, err = cli(*args)
        assert code == 2 and "invalid median_ms entries" in err and err.count("\n") == 1


def test_a_broken_sidecar_is_refused(cli, macs_table):
    sidecar_path(macs_table).write_text("{not json")
    code, _, err = cli("build-lut", "--out", str(macs_table))
    assert code == 2 and "is not an hwnas table sidecar" in err


def test_lut_show_of_a_table_with_another_tables_sidecar_names_the_mismatch(cli, macs_table, tmp_path):
    other = tmp_path / "t64.csv"
    assert cli("build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "64", "--out", str(other))[0] == 0
    sidecar_path(macs_table).write_text(sidecar_path(other).read_text())  # the 64 px sidecar beside the 32 px rows
    code, out, err = cli("lut", "show", str(macs_table))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert (f"{macs_table} does not match its sidecar {sidecar_path(macs_table)}: the sidecar is for nafnet-unet (preset tiny) "
            "at 64px, but none of the table's 24 rows is a unit of that network (e.g. candidate cbr@1x8x32x32)") in err


def test_build_lut_onto_a_users_own_csv_says_it_is_not_a_table(cli, tmp_path):
    mine = tmp_path / "users.csv"
    mine.write_text("key,ms\na,1\n")
    code, _, err = cli("build-lut", "--backend", "macs", *TINY, "--out", str(mine))
    assert code == 2 and err == (f"error: {mine} already exists and is not an hwnas table (it has no sidecar users.meta.json); "
                                 f"choose another --out, or pass --force to replace {mine}.\n")
    assert mine.read_text() == "key,ms\na,1\n" and not sidecar_path(mine).exists()  # the user's file untouched


def test_lut_show_handles_a_degenerate_table_and_shows_small_numbers(tmp_path):
    """A reference of 0 ms gives '-' ratios, not a crash; a MACs table shows its tiny numbers, not 0.000."""
    import csv
    import shutil
    import subprocess
    import sys

    def hwnas(*args):
        return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, cwd=tmp_path)

    assert hwnas("build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "32", "--out", "m.csv").returncode == 0
    shown = hwnas("lut", "show", "m.csv")
    assert shown.returncode == 0 and "0.000 " not in shown.stdout and "analytic" in shown.stdout
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    for r in rows:
        if r["name"] == "naf" or r["kind"] == "fixed":
            r.update(median_ms="0", p10_ms="0", p90_ms="0")
    with open(tmp_path / "z.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    shutil.copy(tmp_path / "m.meta.json", tmp_path / "z.meta.json")
    degenerate = hwnas("lut", "show", "z.csv")
    assert degenerate.returncode == 0, degenerate.stderr
    assert "Traceback" not in degenerate.stderr and "(-)" in degenerate.stdout
