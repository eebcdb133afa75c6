"""`hwnas build-lut --backend qai-hub` end to end, against the fake service (see conftest.py):
the CLI builds its own backend and client from the configuration file, as for a user."""

from __future__ import annotations

import json
import sys

import pytest

from hwnas.cli import main
from hwnas.latency import LatencyTable, sidecar_path


@pytest.fixture
def configured(tmp_path, monkeypatch, fake_hub):
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {fake_hub.token}\napi_url = {fake_hub.api_url}\nweb_url = {fake_hub.api_url}\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    fake_hub.polls_to_finish = 1  # finished when first read: the CLI's backend would really sleep between polls


def hwnas(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["hwnas", *args])
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code
    out, err = capsys.readouterr()
    return code, out, err


def test_build_lut_writes_a_table_and_a_finished_job_book(tmp_path, monkeypatch, capsys, fake_hub, configured):
    out = tmp_path / "tiny-hub.csv"
    mode, jobs = "per-unit", 48
    args = ["build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16", "--out", str(out), "--json"]
    for flags, planned in ((["--mode", "whole-network"], 8), (["--mode", mode], jobs)):
        code, stdout, stderr = hwnas(monkeypatch, capsys, *args, *flags, "--dry-run")
        assert code == 0 and json.loads(stdout)["jobs"] == planned and not out.exists()
    args += ["--mode", mode]

    code, stdout, stderr = hwnas(monkeypatch, capsys, *args)
    assert code == 0, stderr
    report = json.loads(stdout)  # nothing but JSON on stdout
    assert report["measured"] == 24 and report["device"] == "sm8650"
    assert len(fake_hub.created("create_compile_job")) + len(fake_hub.created("create_inference_job")) == jobs
    table = LatencyTable.load(out)
    assert len(table.frame) == 24 and table.meta.backend == "qai-hub" and table.meta.settings["mode"] == mode
    assert table.meta.jobs and all(entry["state"] == "done" for entry in table.meta.jobs.values())
    assert fake_hub.token not in stdout + stderr + sidecar_path(out).read_text()

    code, stdout, _ = hwnas(monkeypatch, capsys, *args)  # complete: nothing submitted again
    assert code == 0 and json.loads(stdout)["measured"] == 0
    assert len(fake_hub.created("create_compile_job")) + len(fake_hub.created("create_inference_job")) == jobs


def test_build_lut_without_configuration_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, no_network):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    out = tmp_path / "t.csv"
    code, stdout, stderr = hwnas(monkeypatch, capsys, "build-lut", "--backend", "qai-hub", "--preset", "tiny", "--out", str(out))
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines() == [
        "error: AI Hub is not configured: run `qai-hub configure --api_token YOUR_TOKEN` (see https://app.aihub.qualcomm.com/account)."
    ]
    assert list(tmp_path.iterdir()) == []


def test_failed_job_is_one_line_and_keeps_the_other_rows(tmp_path, monkeypatch, capsys, fake_hub, configured):
    fake_hub.compile_failures["'cbr' at 1x64x2x2"] = "Failed to compile: out of memory"
    out = tmp_path / "t.csv"
    code, stdout, stderr = hwnas(monkeypatch, capsys, "build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16", "--out", str(out))
    assert code == 2
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "candidate 'cbr' at 1x64x2x2" in line and "out of memory" in line and "compile job jc" in line
    assert len(LatencyTable.load(out).frame) == 23  # every other row kept; the failure is no number
