"""`hwnas train|eval|export|denoise` through the real entry point: outputs, --json, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import skimage.io
import torch

from hwnas.cli import main
from hwnas.deploy.modelfile import load_model, save_model


def hwnas(capsys, *args):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["hwnas", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code or 0
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err, fragment):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    (root / "test").mkdir()
    for i in range(6):
        skimage.io.imsave(root / "train" / f"t{i}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), check_contrast=False)
    for i in range(2):
        skimage.io.imsave(root / "test" / f"e{i}.png", rng.integers(0, 256, (33, 45, 3), dtype=np.uint8), check_contrast=False)
    return root


@pytest.fixture(scope="module")
def trained(workspace):
    """A tiny network trained for 2 steps through the CLI (run in a subprocess: the real entry point)."""
    out = workspace / "run"
    done = subprocess.run(
        [sys.executable, "-m", "hwnas", "train", "--preset", "tiny", "--uniform", "cbr", "--data", workspace / "train",
         "--crop", "32", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--out", out, "--json"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is JSON only
    assert report["steps"] == 2 and "val_psnr" in report["metrics"]
    return out / "model.pt"


def test_train_writes_the_run(trained):
    run = trained.parent
    assert all((run / name).exists() for name in ("config.yaml", "arch.json", "metrics.csv", "checkpoints/last.pt"))


def test_export_reports_and_verifies(capsys, trained, workspace):
    target = workspace / "m.onnx"
    code, out, err = hwnas(capsys, "export", "--model", trained, "--out", target, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["batchnorm_nodes"] == 0 and report["max_abs_error"] <= 1e-4
    assert report["params"] > 0 and report["gmacs"] > 0 and report["cost_size"] == 256
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(target)).graph.node}
    code, out, _ = hwnas(capsys, "export", "--model", trained, "--out", workspace / "s.onnx", "--static", "64x64")
    assert code == 0 and "static 64x64" in out and "GMACs at 256x256" in out and "max abs error" in out


def test_eval_table_and_csv(capsys, trained, workspace):
    csv_path = workspace / "eval.csv"
    code, out, err = hwnas(capsys, "eval", "--model", trained, "--data", workspace / "test", "--sigma", "15,50",
                           "--seed", "2", "--out", csv_path, "--save-images", workspace / "shots")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["dataset", "sigma", "seed", "images", "psnr", "ssim"]
    assert [line.split()[:4] for line in lines[1:3]] == [["test", "15", "2", "2"], ["test", "50", "2", "2"]]
    assert csv_path.read_text().startswith("dataset,sigma,seed,images,psnr,ssim")
    assert len((workspace / "eval_per_image.csv").read_text().splitlines()) == 1 + 2 * 2
    assert len(list((workspace / "shots" / "test").rglob("*.png"))) == 4


def test_eval_onnx_json_matches_torch(capsys, trained, workspace):
    hwnas(capsys, "export", "--model", trained, "--out", workspace / "e.onnx")
    results = []
    for model in (trained, workspace / "e.onnx"):
        code, out, err = hwnas(capsys, "eval", "--model", model, "--data", workspace / "test", "--sigma", "25",
                               "--out", workspace / "e.csv", "--json")
        assert code == 0, err
        results.append(json.loads(out)["summary"][0]["psnr"])
    assert results[0] == pytest.approx(results[1], abs=0.01)


def test_denoise_whole_tiled_and_onnx(capsys, trained, workspace):
    src = workspace / "test" / "e0.png"
    code, out, err = hwnas(capsys, "denoise", "--model", trained, src, workspace / "d.png")
    assert code == 0, err and "wrote" in out
    assert skimage.io.imread(workspace / "d.png").shape == (33, 45, 3)
    hwnas(capsys, "export", "--model", trained, "--out", workspace / "d.onnx")
    code, _, err = hwnas(capsys, "denoise", "--model", workspace / "d.onnx", src, workspace / "d2.png", "--tile", "24", "--overlap", "8")
    assert code == 0, err
    assert skimage.io.imread(workspace / "d2.png").shape == (33, 45, 3)


def test_denoise_non_image_writes_nothing(capsys, trained, workspace):
    bad = workspace / "bad.png"
    bad.write_text("not an image")
    code, _, err = hwnas(capsys, "denoise", "--model", trained, bad, workspace / "never.png")
    one_line_error(code, err, "cannot read image")
    assert not (workspace / "never.png").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_foreign_onnx_refused(capsys, workspace):
    path = workspace / "foreign.onnx"
    with torch.no_grad():
        torch.onnx.export(torch.nn.Conv2d(3, 3, 1), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    code, _, err = hwnas(capsys, "denoise", "--model", path, workspace / "test" / "e0.png", workspace / "f.png")
    one_line_error(code, err, "did not export")
    assert not (workspace / "f.png").exists()


def test_model_for_another_space_refused(capsys, trained, workspace):
    model = load_model(trained)
    wrong = workspace / "wrong.pt"
    save_model(wrong, type(model)(model.spec.model_copy(update={"preset": "paper"}), model.arch, model.state_dict))
    code, _, err = hwnas(capsys, "export", "--model", wrong, "--out", workspace / "w.onnx")
    one_line_error(code, err, "does not fit")
    assert not (workspace / "w.onnx").exists()


@pytest.mark.parametrize("args,fragment", [
    (["train", "--preset", "tiny", "--out", "{run}"], "already holds a training run"),
    (["train", "--preset", "tiny", "--uniform", "naf", "--epochs", "1", "--time-budget", "1", "--out", "{new}"], "not both"),
    (["train", "--preset", "tiny", "--uniform", "naf", "--data", "{tiny_images}", "--epochs", "1", "--out", "{new}"], "smaller than"),
    (["export", "--model", "{model}", "--out", "{ws}/x.onnx", "--static", "big"], "--static"),
    (["eval", "--model", "{model}", "--data", "{ws}/test", "--sigma", "x"], "--sigma"),
    (["eval", "--model", "{model}", "--data", "{ws}/test", "-t", "noise=3"], "takes no option 'noise'"),
    (["eval", "--model", "{ws}/nope.pt", "--data", "{ws}/test"], "does not exist"),
    # an output that is an input would destroy it
    (["export", "--model", "{model}", "--out", "{model}"], "is the model given with --model"),
    (["eval", "--model", "{model}", "--data", "{ws}/test", "--out", "{model}"], "is the model given with --model"),
    (["eval", "--model", "{model}", "--data", "{ws}/test", "--save-images", "{ws}/test/shown"], "lies in the data folder"),
    (["denoise", "--model", "{model}", "{ws}/test/e0.png", "{ws}/test/./e0.png"], "is the input image"),
    (["denoise", "--model", "{model}", "{ws}/folder.png", "{ws}/out.png"], "folder.png is a folder; pass one image file"),
    (["export", "--model", "{ws}/given.onnx", "--out", "{ws}/x.onnx"], "(it is an ONNX file, already exported)"),
    (["export", "--model", "{model}", "--out", "{ws}/c.onnx", "--precision", "int8", "--calibration", "{tiny_images}"],
     "smaller than the 128-pixel crop (as are all 1 images); calibrate on images at least 128 pixels on each side "
     "(--calibration DIR), or export a fixed input size that fits them (--static HxW)."),
    (["train", "--preset", "tiny", "--uniform", "naf", "--epochs", "1", "--out", "{ws}/test"], "not an hwnas run (e0.png, e1.png)"),
    (["train", "--init-from", "{run}", "--epochs", "1", "--out", "{search_run}"], "holds an hwnas search run, not a training run"),
])
def test_bad_input_is_one_line(capsys, trained, workspace, args, fragment):
    tiny = workspace / "tiny_images"
    tiny.mkdir(exist_ok=True)
    skimage.io.imsave(tiny / "s.png", np.zeros((12, 12, 3), np.uint8), check_contrast=False)
    (workspace / "folder.png").mkdir(exist_ok=True)
    (workspace / "given.onnx").write_bytes(b"\x08\x07\x12\x05hwnas")  # ONNX's protobuf, as torch.load meets it
    search_run = workspace / "search_run"
    search_run.mkdir(exist_ok=True)
    (search_run / ".hwnas-run").write_text("search\n")
    (search_run / "config.yaml").write_text("spec: {space: nafnet-unet}\nlatency_weight: 0.1\n")
    names = {"run": trained.parent, "new": workspace / "new_run", "model": trained, "ws": workspace, "tiny_images": tiny,
             "search_run": search_run}
    before = {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file()}
    code, _, err = hwnas(capsys, *[a.format(**names) for a in args])
    one_line_error(code, err, fragment)
    assert not (workspace / "new_run").exists()  # nothing half-written
    assert {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file()} == before  # no input touched


def test_a_run_s_config_yaml_trains_again_and_eval_takes_a_config_file(capsys, trained, workspace):
    code, out, err = hwnas(capsys, "train", "--config", trained.parent / "config.yaml", "--out", workspace / "again", "--json")
    assert code == 0, err
    a, b = load_model(trained).state_dict, load_model(workspace / "again" / "model.pt").state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)  # same settings, same seed: the same network
    settings = workspace / "eval.yaml"
    settings.write_text(f"model: {trained}\ndata: [{workspace / 'test'}]\ntask_options: {{sigma: [15]}}\nout: {workspace / 'c.csv'}\n")
    code, out, err = hwnas(capsys, "eval", "--config", settings, "--seed", "3", "--json")
    assert code == 0, err
    assert [(r["sigma"], r["seed"]) for r in json.loads(out)["summary"]] == [("15", 3)]  # the flag joins the file's options


def test_a_phone_photo_comes_out_upright(capsys, trained, workspace):
    """A JPEG stored sideways with EXIF orientation 6 (as phones write them) is denoised the way viewers show it."""
    from PIL import Image

    photo = workspace / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(photo, exif=exif)
    code, _, err = hwnas(capsys, "denoise", "--model", trained, photo, workspace / "upright.png")
    assert code == 0, err
    assert skimage.io.imread(workspace / "upright.png").shape == (40, 24, 3)


def test_a_full_disk_during_an_int8_export_names_the_output(capsys, trained, workspace, monkeypatch):
    """The float file and the quantised candidates are scratch files: a failed write is said of the file the user named."""
    import errno
    import os

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(onnx, "save_model", full)
    monkeypatch.setattr(onnx, "save", full)
    out = workspace / "full-int8.onnx"
    code, _, err = hwnas(capsys, "export", "--model", trained, "--out", out, "--precision", "int8", "--static", "32x32",
                         "--calibration-count", "2")
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"error: cannot write {out} (No space left on device); free disk space or choose an output on another disk."), err
    assert not out.exists() and not [p for p in workspace.iterdir() if p.name.startswith(".full-int8")]  # scratch removed
