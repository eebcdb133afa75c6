"""`hwnas spaces`, `hwnas describe` through the real entry point (subprocess: exit codes, stderr)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def hwnas(*args):
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True)


def test_spaces_lists_nafnet():
    out = hwnas("spaces")
    assert out.returncode == 0 and "nafnet-unet" in out.stdout and "tiny" in out.stdout


def test_describe_json_schema():
    out = hwnas("describe", "--space", "nafnet-unet", "--preset", "tiny", "--image-size", "64", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # stdout is JSON only
    assert len(report["positions"]) == 7
    first = report["positions"][0]
    assert first["label"] == "enc0.0" and first["input_shape"] == [1, 8, 64, 64]
    assert [c["name"] for c in first["candidates"]] == ["naf", "naf_bn", "naf_bn_lite", "cbr"]
    assert all(c["params"] > 0 and c["macs"] > 0 for c in first["candidates"])
    assert {u["name"] for u in report["fixed"]} == {"intro", "down", "up", "ending"}


def test_describe_text():
    out = hwnas("describe", "--preset", "tiny", "--image-size", "32")
    assert out.returncode == 0 and "mid.0" in out.stdout and "all-naf" in out.stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["describe", "--space", "nope"], "unknown search space 'nope'"),
        (["describe", "--preset", "huge"], "no preset 'huge'"),
        (["describe", "--preset", "tiny", "-o", "enc_blocks=[1,1]"], "decoder level per encoder level"),
        (["describe", "--preset", "tiny", "-o", "candidates=[naf,foo]"], "unknown candidates"),
        (["describe", "--preset", "tiny", "-o", "width"], "not KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment):
    out = hwnas(*args)
    assert out.returncode == 2
    assert fragment in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_python_m_from_repo_root_finds_subpackages():
    out = hwnas("--help")
    assert out.returncode == 0 and "describe" in out.stdout
