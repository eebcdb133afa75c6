"""`hwnas export --check-on qai-hub`: the written file run on the (fake) device and scored against
PyTorch, through the command, against the fake service behind the real client (conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import skimage.io
import torch


OFFSET = 0.01  # the recorded device outputs: PyTorch's plus this -> PSNR 40 dB




@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    for i in range(4):
        skimage.io.imsave(root / "train" / f"t{i}.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), check_contrast=False)
    done = subprocess.run([sys.executable, "-m", "hwnas", "train", "--preset", "tiny", "--uniform", "cbr", "--data",
                           str(root / "train"), "--crop", "32", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
                           "--threads", "1", "--out", str(root / "run"), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return root / "run" / "model.pt"


@pytest.fixture
def device_outputs(fake_hub, model):
    import hwnas

    net = hwnas.load(model).module

    def outputs(inputs):
        with torch.no_grad():
            return {"y": [net(torch.from_numpy(x)).numpy() + OFFSET for x in inputs["x"]]}

    fake_hub.outputs["accuracy check"] = outputs


def test_export_checks_the_file_on_the_device(model, tmp_path, cli, configured, fake_hub, device_outputs):
    code, out, err = cli("export", "--model", model, "--out", tmp_path / "m.onnx", "--static", "32x32",
                               "--check-on", "qai-hub", "--check-images", "2", "--yes", "--json")
    assert code == 0, err
    check = json.loads(out)["device_check"]
    assert check["backend"] == "qai-hub" and check["device"] == "sm8650" and check["images"] == 2
    assert check["overall_psnr_db"] == pytest.approx(-10 * np.log10(OFFSET ** 2), abs=0.05)
    assert (tmp_path / "m.onnx").is_file()
    kinds = sorted(e["kind"] for e in fake_hub.jobs.values())
    assert kinds == ["compile", "inference"]


def test_without_yes_and_no_terminal_nothing_is_submitted(model, tmp_path, cli, configured, fake_hub):
    code, _, err = cli("export", "--model", model, "--out", tmp_path / "m.onnx", "--static", "32x32",
                             "--check-on", "qai-hub")
    assert code != 0 and "pass --yes" in err and not fake_hub.jobs
    assert not (tmp_path / "m.onnx").exists()  # refused before anything was written


def test_a_backend_that_cannot_run_models_is_one_sentence(model, tmp_path, cli):
    code, _, err = cli("export", "--model", model, "--out", tmp_path / "m.onnx", "--check-on", "macs")
    assert code != 0 and "cannot run a model on its device" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
