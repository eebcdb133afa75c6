"""Bad-input sweep over every user-facing command.

Each case must end in one clear `error:` line on stderr (progress notes may precede
it), a non-zero exit, no traceback, and no
partial output left behind (the `--out` path, when the case names one, does not exist
afterwards unless it existed before).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from skimage import io as skio


def hwnas(args, cwd, env=None):
    full_env = {**os.environ, "HWNAS_TEST": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with a valid tiny table, a valid architecture and a zoo of bad files."""
    root = tmp_path_factory.mktemp("bad")
    out = hwnas(["build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "32", "--out", "lut.csv"], root)
    assert out.returncode == 0, out.stderr
    (root / "empty").mkdir()
    (root / "texts").mkdir()
    (root / "texts" / "notes.png").write_text("this is not an image")
    (root / "tinyimgs").mkdir()
    skio.imsave(root / "tinyimgs" / "a.png", np.zeros((8, 8, 3), np.uint8), check_contrast=False)
    (root / "notimage.jpg").write_text("plain text")
    (root / "garbage.json").write_text("{not json")
    arch = json.loads((root / "lut.meta.json").read_text())
    (root / "foreign_arch.json").write_text(json.dumps({"space": "other-space", "choices": {"a": "b"}}))
    (root / "wrong_preset_arch.json").write_text(json.dumps({"space": "nafnet-unet", "choices": {"enc0.0": "naf"}}))
    (root / "a_file").write_text("a regular file")
    for name, bad in [("nan", "nan"), ("negative", "-3.0")]:
        lines = (root / "lut.csv").read_text().splitlines()
        header = lines[0].split(",")
        row = lines[1].split(",")
        row[header.index("median_ms")] = bad
        (root / f"{name}.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
        (root / f"{name}.meta.json").write_text(json.dumps(arch))
    lines = (root / "lut.csv").read_text().splitlines()
    (root / "missing.csv").write_text("\n".join(lines[:-3]) + "\n")
    (root / "missing.meta.json").write_text(json.dumps(arch))
    other = dict(arch, space="other-space")
    (root / "other.csv").write_text((root / "lut.csv").read_text())
    (root / "other.meta.json").write_text(json.dumps(other))
    (root / "notmodel.pt").write_bytes(b"not a checkpoint")
    (root / "python_tag.yaml").write_text('epochs: !!python/object/apply:os.system ["echo hi"]\n')
    return root


SEARCH = ["search", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1"]

CASES = {
    # search
    "search: empty data folder": (SEARCH + ["--lut", "lut.csv", "--data", "empty", "--out", "o"], "no image files"),
    "search: missing data folder": (SEARCH + ["--lut", "lut.csv", "--data", "nowhere", "--out", "o"], "nowhere"),
    "search: non-image files": (SEARCH + ["--lut", "lut.csv", "--data", "texts", "--out", "o"], "notes.png"),
    "search: images smaller than the crop": (SEARCH + ["--lut", "lut.csv", "--data", "tinyimgs", "--out", "o"], "crop"),
    "search: table for another space": (SEARCH + ["--lut", "other.csv", "--out", "o"], "other-space"),
    "search: table with NaN": (SEARCH + ["--lut", "nan.csv", "--out", "o"], "invalid"),
    "search: table with negative entry": (SEARCH + ["--lut", "negative.csv", "--out", "o"], "invalid"),
    "search: table with missing entries": (SEARCH + ["--lut", "missing.csv", "--out", "o"], "lacks"),
    "search: missing table": (SEARCH + ["--lut", "nope.csv", "--out", "o"], "nope.csv"),
    "search: unwritable output": (SEARCH + ["--lut", "lut.csv", "--out", "a_file/run"], "a_file"),
    "search: sigma < 0": (SEARCH + ["--lut", "lut.csv", "--sigma", "-5", "--out", "o"], "sigma"),
    "search: unknown space": (SEARCH + ["--space", "nope", "--out", "o"], "nope"),
    # build-lut / lut / profile
    "build-lut: unknown backend": (["build-lut", "--backend", "nope", "--preset", "tiny", "--out", "o.csv"], "nope"),
    "build-lut: unknown device": (["build-lut", "--backend", "onnxruntime", "--device", "pixel9", "--preset", "tiny", "--out", "o.csv"], "pixel9"),
    "build-lut: unwritable output": (["build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "32", "--out", "a_file/t.csv"], "a_file"),
    "build-lut: table for another size": (["build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "64", "--out", "lut.csv"], "32"),
    "lut show: NaN table": (["lut", "show", "nan.csv"], "invalid"),
    "profile: malformed arch": (["profile", "--lut", "lut.csv", "--arch", "garbage.json"], "garbage.json"),
    "profile: foreign arch": (["profile", "--lut", "lut.csv", "--arch", "foreign_arch.json"], "other-space"),
    "profile: arch for another preset": (["profile", "--lut", "lut.csv", "--arch", "wrong_preset_arch.json"], "positions"),
    # train / eval / export / denoise
    "train: malformed arch": (["train", "--arch", "garbage.json", "--epochs", "1", "--out", "o"], "garbage.json"),
    "train: foreign arch": (["train", "--arch", "foreign_arch.json", "--epochs", "1", "--out", "o"], "other-space"),
    "train: empty data": (["train", "--preset", "tiny", "--uniform", "naf", "--data", "empty", "--epochs", "1", "--out", "o"], "no image files"),
    "train: sigma < 0": (["train", "--preset", "tiny", "--uniform", "naf", "--sigma", "-1", "--epochs", "1", "--out", "o"], "sigma"),
    "train: unknown candidate": (["train", "--preset", "tiny", "--uniform", "conv9", "--epochs", "1", "--out", "o"], "conv9"),
    "train: min-lr above lr": (["train", "--preset", "tiny", "--uniform", "naf", "--min-lr", "0.5", "--epochs", "1", "--out", "o"],
                               "give --min-lr at most --lr"),
    "search: min-lr above lr": ([*SEARCH, "--lut", "lut.csv", "--image-size", "32", "--lr", "1e-3", "--min-lr", "1e-2", "--out", "o"],
                                "min_lr 0.01 is above lr 0.001"),
    "eval: not a model": (["eval", "--model", "notmodel.pt", "--data", "tinyimgs"], "notmodel.pt"),
    "export: not a model": (["export", "--model", "notmodel.pt", "--out", "o.onnx"], "notmodel.pt"),
    "denoise: not a model": (["denoise", "--model", "notmodel.pt", "notimage.jpg", "o.png"], "notmodel.pt"),
    "train: a --config with a Python tag": (["train", "--config", "python_tag.yaml", "--out", "o"],
                                            "holds a Python tag (!!python/...), which hwnas refuses for safety"),
    # inf passes every bound (inf >= 0): refused up front, before a run folder exists
    "search: entropy weight inf": ([*SEARCH, "--lut", "lut.csv", "--entropy-weight", "inf", "--out", "o"],
                                   "invalid --entropy-weight: Input should be a finite number"),
    "sweep: a latency weight inf": (["sweep", "--lut", "lut.csv", "--latency-weight", "0,inf", "--epochs", "1", "--out", "o"],
                                    "invalid --latency-weight: Input should be a finite number"),
    "train: lr nan": (["train", "--preset", "tiny", "--uniform", "naf", "--lr", "nan", "--epochs", "1", "--out", "o"],
                      "invalid --lr: Input should be a finite number"),
    "build-lut: backend option inf": (["build-lut", "--backend", "macs", "--preset", "tiny", "--image-size", "32",
                                       "--backend-option", "ms_per_gmac=inf", "--out", "o.csv"], "finite number"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_line(ws, case):
    args, fragment = CASES[case]
    before = set(os.listdir(ws))
    out = hwnas(args, ws)
    assert out.returncode != 0, f"{case}: exit 0\n{out.stdout}"
    assert "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"{case}: expected one error line, got:\n{out.stderr}"
    assert out.stderr.strip().splitlines()[-1] == errors[0], f"{case}: the error is not the last word:\n{out.stderr}"
    assert fragment.lower() in errors[0].lower(), f"{case}: {errors[0]!r} does not mention {fragment!r}"
    assert set(os.listdir(ws)) == before, f"{case}: left {set(os.listdir(ws)) - before}"


def test_ai_hub_not_configured(ws, tmp_path):
    env = {"QAIHUB_CLIENT_INI": str(tmp_path / "missing.ini"), "HOME": str(tmp_path)}
    out = hwnas(["build-lut", "--backend", "qai-hub", "--preset", "tiny", "--image-size", "32", "--out", "hub.csv"], ws, env)
    assert out.returncode != 0 and "qai-hub configure --api_token" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (ws / "hub.csv").exists() and not (ws / "hub.meta.json").exists()


def test_denoise_non_image_input_leaves_no_output(ws, tmp_path):
    """A real model with a bad input image: one line, no output file."""
    run = tmp_path / "run"
    out = hwnas(
        ["train", "--preset", "tiny", "--uniform", "cbr", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--out", str(run)],
        ws,
    )
    assert out.returncode == 0, out.stderr
    out = hwnas(["denoise", "--model", str(run / "model.pt"), "notimage.jpg", str(tmp_path / "o.png")], ws)
    assert out.returncode != 0 and "notimage.jpg" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()
