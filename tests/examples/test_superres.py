"""The second task, end to end: x2 super-resolution (examples/superres, installed by the README's
test command) through search -> train -> eval -> export -> tiled inference, all by the `hwnas`
command with no change to the engine: the task arrives through its entry point, the space
builds its x2 ending from the `scale` the task declares.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.io


ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--crop", "16", "--batch-size", "2", "--steps-per-epoch", "2"]


def ok(cli, *args) -> str:
    """stdout of a run of the `hwnas` command that succeeded (`cli`: the conftest fixture)."""
    code, out, err = cli(*args)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Small crops of a real photograph: 4 to train on (one held out), 2 to test on."""
    root = tmp_path_factory.mktemp("sr")
    image = skimage.data.astronaut()
    for i, (top, left) in enumerate([(0, 0), (100, 200), (250, 50), (300, 300)]):
        (root / "train").mkdir(exist_ok=True)
        skimage.io.imsave(root / "train" / f"t{i}.png", image[top:top + 64, left:left + 72], check_contrast=False)
    for i, (top, left) in enumerate([(180, 180), (400, 100)]):
        (root / "test").mkdir(exist_ok=True)
        skimage.io.imsave(root / "test" / f"e{i}.png", image[top:top + 48, left:left + 57], check_contrast=False)
    return root


def test_sr2_is_an_installed_task(cli):
    report = json.loads(ok(cli, "tasks", "--json"))
    sr2 = next(t for t in report if t["name"] == "sr2")
    assert sr2["scale"] == 2 and sr2["shorthands"] == ["data", "crop"] and sr2["primary_metric"] == "psnr"


def test_search_train_eval_export_and_tiled_inference(cli, photos):
    work = photos
    ok(cli, "build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "32", "-o", "scale=2",
       "--out", work / "x2.csv")
    found = json.loads(ok(cli, "search", "--task", "sr2", "--lut", work / "x2.csv", "--data", work / "train", *FAST,
                          "--epochs", "2", "--out", work / "s1", "--json"))
    assert found["task"] == "sr2" and np.isfinite(found["val"]["psnr"])
    trained = json.loads(ok(cli, "train", "--init-from", work / "s1", "--data", work / "train", *FAST, "--epochs", "1",
                            "--out", work / "ft", "--json"))
    assert np.isfinite(trained["metrics"]["val_psnr"])
    scores = json.loads(ok(cli, "eval", "--model", work / "ft" / "model.pt", "--data", work / "test", "--json"))
    assert [(r["scale"], r["images"]) for r in scores["summary"]] == [("x2", 2)]
    assert all(np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in scores["summary"])
    ok(cli, "export", "--model", work / "ft" / "model.pt", "--out", work / "ft.onnx")
    facts = json.loads(ok(cli, "infer", "--model", work / "ft.onnx", work / "test" / "e0.png", work / "e0_x2.png",
                          "--tile", "24", "--json"))
    assert (facts["height"], facts["width"]) == (96, 114)
    assert skimage.io.imread(work / "e0_x2.png").shape == (96, 114, 3)
    onnx_scores = json.loads(ok(cli, "eval", "--model", work / "ft.onnx", "--data", work / "test", "--tile", "24",
                                "--json"))  # tiled ONNX: the whole protocol again, finite scores
    assert all(np.isfinite(r["psnr"]) for r in onnx_scores["summary"])


def test_the_python_api_trains_a_x2_baseline_and_loads_it_tiled(tmp_path, photos):
    import torch

    import hwnas

    trained = hwnas.train(spec={"preset": "tiny"}, uniform="cbr", task={"name": "sr2", "options": {"data": str(photos / "train"),
                          "crop": 16}}, epochs=1, steps_per_epoch=1, batch_size=2, out=tmp_path / "sr")
    model = hwnas.load(trained.model, tile=32, overlap=8)
    assert (model.task, model.scale, model.spec.options["scale"]) == ("sr2", 2, 2)
    x = torch.rand(1, 3, 40, 70)
    tiled, whole = model(x), hwnas.load(trained.model)(x)
    assert tiled.shape == whole.shape == (1, 3, 80, 140)
    assert float((tiled - whole).abs().mean()) < 0.01  # a misplaced tile of noise would be off by ~0.3


def test_a_shorthand_the_task_does_not_take_is_refused_in_one_line(cli, photos):
    code, _, err = cli("search", "--task", "sr2", "--sigma", "25", "--out", photos / "never")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: --sigma does not apply to task sr2")


def test_the_readme_test_command_installs_the_example():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command in readme and "-e examples/superres" in command


def test_a_phone_photo_is_read_upright(tmp_path):
    from PIL import Image

    from hwnas_superres.images import read_rgb

    stored = np.zeros((4, 6, 3), np.uint8)
    stored[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    np.testing.assert_array_equal(read_rgb(tmp_path / "phone.png"), np.rot90(stored, -1).astype(np.float32) / 255)
