"""`hwnas build-lut --backend qai-hub` end to end, against the fake service (see conftest.py):
the CLI builds its own backend and client from the configuration file, as for a user."""

from __future__ import annotations

import json
import os
import sys

import pytest

from hwnas.contracts.latency import LatencyTable, sidecar_path


def test_build_lut_writes_a_table_and_a_finished_job_book(tmp_path, monkeypatch, capsys, fake_hub, configured, cli):
    out = tmp_path / "tiny-hub.csv"
    mode, jobs = "per-unit", 58  # 24 units and 5 overhead probes (one per input shape), 2 jobs each
    args = ["build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16", "--out", str(out), "--json"]
    for flags, planned in ((["--mode", "whole-network"], 8), (["--mode", mode], jobs)):
        code, stdout, stderr = cli(*args, *flags, "--dry-run")
        assert code == 0 and json.loads(stdout)["jobs"] == planned and not out.exists()
    args += ["--mode", mode]

    code, stdout, stderr = cli(*args)  # no terminal to ask on: refused, with the count
    assert code == 2 and stdout == "" and not out.exists() and not fake_hub.created("create_compile_job")
    assert stderr.strip().splitlines() == [f"error: this would submit {jobs} qai-hub jobs on sm8650; pass --yes to submit "
                                           "them (stdin is not a terminal, so hwnas cannot ask)."]
    args += ["--yes"]

    code, stdout, stderr = cli(*args)
    assert code == 0, stderr
    report = json.loads(stdout)  # nothing but JSON on stdout
    assert report["measured"] == 24 and report["device"] == "sm8650"
    assert len(fake_hub.created("create_compile_job")) + len(fake_hub.created("create_inference_job")) == jobs
    table = LatencyTable.load(out)
    assert len(table.frame) == 24 and table.meta.backend == "qai-hub" and table.meta.settings["mode"] == mode
    assert table.meta.jobs and all(entry["state"] == "done" for entry in table.meta.jobs.values())
    assert fake_hub.token not in stdout + stderr + sidecar_path(out).read_text()

    code, stdout, _ = cli(*args)  # complete: nothing submitted again
    assert code == 0 and json.loads(stdout)["measured"] == 0
    assert len(fake_hub.created("create_compile_job")) + len(fake_hub.created("create_inference_job")) == jobs


def test_build_lut_without_configuration_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, no_network, cli):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    out = tmp_path / "t.csv"
    code, stdout, stderr = cli("build-lut", "--backend", "qai-hub", "--preset", "tiny", "--out", str(out))
    assert code == 2 and stdout == ""
    assert stderr.strip().splitlines() == [
        "error: AI Hub is not configured: run `qai-hub configure --api_token YOUR_TOKEN` (your token is on "
        "https://workbench.aihub.qualcomm.com/account/)."
    ]
    assert list(tmp_path.iterdir()) == []


def test_failed_job_is_one_line_and_keeps_the_other_rows(tmp_path, monkeypatch, capsys, fake_hub, configured, cli):
    fake_hub.compile_failures["'cbr' at 1x64x2x2"] = "Failed to compile: out of memory"
    out = tmp_path / "t.csv"
    code, stdout, stderr = cli("build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16",
                                 "--out", str(out), "--yes")
    assert code == 2
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "candidate 'cbr' at 1x64x2x2" in line and "out of memory" in line and "compile job jc" in line
    assert len(LatencyTable.load(out).frame) == 23  # every other row kept; the failure is no number


def test_dry_run_needs_no_token(tmp_path, monkeypatch, capsys, no_network, cli):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    code, stdout, stderr = cli("build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16",
                                 "--out", str(tmp_path / "t.csv"), "--dry-run")
    assert code == 0, stderr
    assert stdout.startswith("would measure 24 of 24 units (58 jobs) with qai-hub on sm8650")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("answer, code", [("n\n", 1), ("y\n", 0)])
def test_on_a_terminal_it_asks_before_submitting(tmp_path, monkeypatch, capsys, fake_hub, configured, answer, code, cli):
    import io

    monkeypatch.setattr("hwnas.cli.jobs.interactive", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
    out = tmp_path / "t.csv"
    got, _, stderr = cli("build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16",
                           "--out", str(out))
    assert got == code, stderr
    assert "Submit 58 qai-hub jobs on sm8650? [y/N]" in stderr
    assert out.exists() == (code == 0) and bool(fake_hub.created("create_compile_job")) == (code == 0)


def test_profile_asks_for_its_two_jobs(tmp_path, monkeypatch, capsys, fake_hub, configured, cli):
    code, _, stderr = cli("profile", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16",
                            "--uniform", "cbr")
    assert code == 2 and stderr.strip().splitlines()[-1].startswith("error: this would submit 2 qai-hub jobs on sm8650; pass --yes")
    assert not fake_hub.created("upload")


def test_offline_with_the_real_client_ends_fast_in_at_most_three_lines(tmp_path):
    """No fake: the real client against a closed local port. hwnas alone retries (the client's own
    transport retries would take ~45 s per call and log each try); here within a 3 s budget."""
    import socket
    import subprocess
    import time

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = tok-OFFLINE-42\napi_url = http://127.0.0.1:{port}\nweb_url = http://127.0.0.1:{port}\n")
    env = {**os.environ, "QAIHUB_CLIENT_INI": str(ini)}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hwnas", "build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "16",
         "--out", str(tmp_path / "t.csv"), "--yes", "-b", "retry_budget_s=3"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    seconds = time.monotonic() - start
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3 and done.stdout == ""
    assert len(lines) <= 3 and lines[-1].startswith(f"error: cannot reach Qualcomm AI Hub at http://127.0.0.1:{port} "), done.stderr
    assert "(2 tries in 2 s)" in lines[-1] and "Retry attempt" not in done.stderr and "tok-OFFLINE-42" not in done.stderr
    assert seconds < 60, seconds  # the interpreter and torch start, two refused connections and one 2 s wait (the next, 4 s, would pass the budget)
