"""A network that outputs class scores, end to end: the MobileNetV2-style space and the digits task of
examples/classifier (installed by the README's test command) through build-lut (ONNX Runtime) ->
search -> train -> export -> ONNX Runtime, all by the `hwnas` command and `hwnas.load`, with no
engine line that names them: both arrive through entry points and declare `output = "scores"`.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import hwnas
from hwnas.contracts.errors import HwnasError
from hwnas_classifier.digits import DigitsClassification

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 16  # the digits upsampled to 16x16: the tiny preset's three stages see 16, 8 and 4 pixels
FAST = ["-t", f"size={SIZE}", "--batch-size", "16"]
QUICK_ORT = ["-b", "warmup=1", "-b", "runs=5", "-b", "passes=1", "-b", "extra_passes=0"]


def ok(cli, *args) -> str:
    code, out, err = cli(*args)
    assert code == 0, err
    return out


def test_the_space_and_the_task_declare_a_scores_output(cli):
    spaces = {s["name"]: s for s in json.loads(ok(cli, "spaces", "--json"))}
    tasks = {t["name"]: t for t in json.loads(ok(cli, "tasks", "--json"))}
    assert spaces["mobilenet-v2"]["default_task"] == "digits"
    assert tasks["digits"]["output"] == "scores" and tasks["digits"]["primary_metric"] == "accuracy"
    assert tasks["digits"]["shorthands"] == []


def test_build_lut_search_train_export_and_run_on_onnx_runtime(cli, tmp_path):
    work = tmp_path
    ok(cli, "build-lut", "--backend", "onnxruntime", "--space", "mobilenet-v2", "--preset", "tiny", "--image-size", SIZE,
       *QUICK_ORT, "--out", work / "t.csv")
    found = json.loads(ok(cli, "search", "--lut", work / "t.csv", *FAST, "--epochs", "2", "--steps-per-epoch", "3",
                          "--out", work / "s1", "--json"))
    assert found["task"] == "digits" and 0 <= found["val"]["accuracy"] <= 1
    assert found["predicted_ms"] > 0 and set(found["choices"]) == {"s0.0", "s1.0", "s1.1", "s2.0", "s2.1"}
    trained = json.loads(ok(cli, "train", "--init-from", work / "s1", *FAST, "--epochs", "1", "--steps-per-epoch", "3",
                            "--out", work / "ft", "--json"))
    assert 0 <= trained["metrics"]["val_accuracy"] <= 1
    report = json.loads(ok(cli, "export", "--model", work / "ft" / "model.pt", "--out", work / "c.onnx", "--json"))
    assert report["max_abs_error"] < 1e-4 and report["batchnorm_nodes"] == 0

    onnx_model, torch_model = hwnas.load(work / "c.onnx"), hwnas.load(work / "ft" / "model.pt")
    assert (onnx_model.runtime, onnx_model.output, onnx_model.task) == ("onnxruntime", "scores", "digits")
    task = DigitsClassification(DigitsClassification.Options(size=SIZE))
    x = task.test_images[:32]
    onnx_scores = torch.cat([onnx_model(image[None]) for image in x])
    assert onnx_scores.shape == (32, 10)
    torch.testing.assert_close(onnx_scores, torch_model(x), atol=1e-4, rtol=1e-4)  # the same network, run by ORT
    with pytest.raises(HwnasError, match="one vector of scores for its whole input"):
        hwnas.load(work / "c.onnx", tile=8)

    timed = json.loads(ok(cli, "profile", "--lut", work / "t.csv", "--onnx", work / "c.onnx", "--json"))
    measured_ms, predicted_ms = timed["measured"]["median_ms"], timed["predicted_ms"]  # the file, and the table's sum
    assert 0 < measured_ms < 1000 and 0 < predicted_ms < 1000 and math.isfinite(timed["error_pct"])


def test_a_task_for_images_on_the_classifier_space_is_refused_in_one_line(cli, tmp_path):
    code, _, err = cli("search", "--space", "mobilenet-v2", "--preset", "tiny", "--task", "denoising",
                             "--backend", "macs", "--out", tmp_path / "never")
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: task denoising trains networks that output image, but space 'mobilenet-v2' outputs scores; "
        "pass a --task for scores or a --space for image.")

