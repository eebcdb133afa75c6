"""`hwnas export --precision int8|w8a16`: a quantised ONNX file, checked against PyTorch, that eval runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import skimage.io


def hwnas(*args):
    return subprocess.run([sys.executable, "-m", "hwnas", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny all-naf network (LayerNorm and the pooled attention: the hard case to quantise), trained briefly."""
    root = tmp_path_factory.mktemp("quant")
    rng = np.random.default_rng(0)
    for split, n, shape in (("train", 6, (48, 48, 3)), ("test", 2, (33, 45, 3))):
        (root / split).mkdir()
        for i in range(n):
            skimage.io.imsave(root / split / f"{split}{i}.png", rng.integers(0, 256, shape, dtype=np.uint8), check_contrast=False)
    done = hwnas("train", "--preset", "tiny", "--uniform", "naf", "--data", root / "train", "--crop", "32", "--epochs", "1",
                 "--steps-per-epoch", "3", "--batch-size", "2", "--out", root / "run", "--json")
    assert done.returncode == 0, done.stderr
    return root, root / "run" / "model.pt"


@pytest.mark.parametrize("precision", ["int8", "w8a16"])
def test_a_quantised_export_is_checked_and_runs_in_eval(trained, precision):
    root, model = trained
    out = root / f"m-{precision}.onnx"
    done = hwnas("export", "--model", model, "--out", out, "--precision", precision, "--calibration", root / "train",
                 "--calibration-count", "8", "--static", "32x32", "--min-psnr", "20", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["precision"] == precision and report["calibration_count"] == 8
    assert report["quant_psnr_db"] >= 20 and report["calibration_shape"] == [3, 32, 32]
    graph = onnx.load(str(out))
    assert sum(n.op_type == "QuantizeLinear" for n in graph.graph.node) == report["quant_nodes"] > 0
    assert {p.key: p.value for p in graph.metadata_props}["precision"] == precision
    scored = hwnas("eval", "--model", out, "--data", root / "test", "--sigma", "25", "--out", root / f"{precision}.csv", "--json")
    assert scored.returncode == 0, scored.stderr


def test_a_floor_it_misses_writes_nothing(trained):
    root, model = trained
    out = root / "too-strict.onnx"
    done = hwnas("export", "--model", model, "--out", out, "--precision", "int8", "--calibration", root / "train",
                 "--calibration-count", "4", "--static", "32x32", "--min-psnr", "200")
    assert done.returncode == 2  # a HwnasError: the command's contract (hwnas/cli/exits.py)
    assert done.stderr.strip().splitlines()[-1].startswith("error: the int8 file's outputs are")
    assert "--min-psnr 200" in done.stderr and not out.exists()


def test_calibration_without_a_quantised_precision_is_refused(trained):
    root, model = trained
    done = hwnas("export", "--model", model, "--out", root / "x.onnx", "--calibration", root / "train")
    assert done.returncode != 0 and "add --precision int8" in done.stderr and not (root / "x.onnx").exists()


def test_an_unknown_precision_is_refused(trained):
    root, model = trained
    done = hwnas("export", "--model", model, "--out", root / "y.onnx", "--precision", "int4")
    assert done.returncode != 0 and "precision" in done.stderr and not (root / "y.onnx").exists()


def test_without_a_folder_it_warns_and_uses_the_sample_images(trained):
    root, model = trained
    out = root / "samples.onnx"
    done = hwnas("export", "--model", model, "--out", out, "--precision", "int8", "--static", "32x32",
                 "--calibration-count", "4", "--min-psnr", "10")
    assert done.returncode == 0, done.stderr
    assert "no --calibration folder" in done.stderr and "sample images" in done.stdout


def test_an_int8_table_is_built_searched_against_and_kept_apart(tmp_path):
    """`build-lut --precision int8` (onnxruntime): units quantised before timing, the sidecar says int8,
    a search against it states the precision, and a float request is refused."""
    lut = tmp_path / "int8.csv"
    done = hwnas("build-lut", "--backend", "onnxruntime", "--preset", "tiny", "--image-size", "16", "--precision", "int8",
                 "--runs", "3", "--warmup", "1", "--out", lut, "--json")
    assert done.returncode == 0, done.stderr
    meta = json.loads(lut.with_suffix(".meta.json").read_text())
    assert meta["settings"]["precision"] == "int8"
    found = hwnas("search", "--lut", lut, "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "16",
                  "--out", tmp_path / "s", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["latency_table"]["precision"] == "int8"
    again = hwnas("build-lut", "--backend", "onnxruntime", "--preset", "tiny", "--image-size", "16", "--precision", "fp32",
                  "--runs", "3", "--out", lut)
    assert again.returncode != 0 and "precision int8, not fp32" in again.stderr


@pytest.mark.parametrize("precision,backend", [("fp16", "onnxruntime"), ("int8", "macs")])
def test_a_precision_a_backend_cannot_time_is_one_line(tmp_path, precision, backend):
    done = hwnas("build-lut", "--backend", backend, "--preset", "tiny", "--image-size", "16", "--precision", precision,
                 "--out", tmp_path / "t.csv")
    assert done.returncode != 0 and not (tmp_path / "t.csv").exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "precision" in last


def test_calibration_options_sensitivity_and_16_bit_fallback(trained):
    """issue 24: --calibration-method, --per-tensor, --sensitivity CSV and --keep-16bit auto in one export."""
    root, model = trained
    out, csv_path = root / "mixed.onnx", root / "sensitivity.csv"
    plain = hwnas("export", "--model", model, "--out", root / "plain.onnx", "--precision", "int8", "--calibration", root / "train",
                  "--calibration-count", "4", "--static", "32x32", "--calibration-method", "minmax", "--per-tensor",
                  "--min-psnr", "1", "--json")
    assert plain.returncode == 0, plain.stderr
    floor = json.loads(plain.stdout)["quant_psnr_db"] + 0.5  # more than all 8-bit gives with the same options
    done = hwnas("export", "--model", model, "--out", out, "--precision", "int8", "--calibration", root / "train",
                 "--calibration-count", "4", "--static", "32x32", "--calibration-method", "minmax", "--per-tensor",
                 "--keep-16bit", "auto", "--min-psnr", floor, "--sensitivity", csv_path, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is the JSON alone: the calibrators' progress went elsewhere
    assert report["calibration_method"] == "minmax" and report["per_channel"] is False
    assert report["quant_psnr_db"] >= floor > report["quant_psnr_8bit_db"] and report["sixteen_bit"]
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == report["activations"] and [r["tensor"] for r in rows[:len(report["sixteen_bit"])]] == report["sixteen_bit"]
    graph = onnx.load(str(out))
    meta = {p.key: p.value for p in graph.metadata_props}
    zero_types = {t.name: t.data_type for t in graph.graph.initializer}
    q16 = {n.input[0] for n in graph.graph.node if n.op_type == "QuantizeLinear" and zero_types.get(n.input[2]) == onnx.TensorProto.UINT16}
    assert set(report["sixteen_bit"]) <= q16 and len(q16) == report["activations_16bit"]  # and what shares their scale
    assert meta["calibration_method"] == "minmax" and meta["activations_16bit"] == str(len(q16))
    fixed = hwnas("export", "--model", model, "--out", root / "two.onnx", "--precision", "int8", "--calibration", root / "train",
                  "--calibration-count", "4", "--static", "32x32", "--keep-16bit", "2", "--min-psnr", "1")
    assert fixed.returncode == 0, fixed.stderr
    assert "kept the 2 most sensitive activations at 16 bits" in fixed.stdout and "most sensitive" in fixed.stdout


def test_a_floor_even_16_bit_activations_miss_writes_nothing(trained):
    root, model = trained
    out, csv_path = root / "never.onnx", root / "never.csv"
    done = hwnas("export", "--model", model, "--out", out, "--precision", "int8", "--calibration", root / "train",
                 "--calibration-count", "4", "--static", "32x32", "--keep-16bit", "auto", "--min-psnr", "200",
                 "--sensitivity", csv_path)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the int8 file's outputs are") and "even with all" in last and "8-bit weights alone" in last
    assert not out.exists() and not csv_path.exists()


@pytest.mark.parametrize("flags,message", [
    (["--calibration-method", "kl"], "unknown calibration method 'kl'; choose one of minmax, percentile, entropy"),
    (["--precision", "int8", "--keep-16bit", "-1"], "neither a number of activations"),
    (["--precision", "w8a16", "--keep-16bit", "auto"], "use it with --precision int8"),
    (["--keep-16bit", "3"], "--keep-16bit applies to a quantised export; add --precision int8"),
    (["--per-tensor"], "--per-tensor applies to a quantised export"),
    (["--sensitivity", "s.csv"], "--sensitivity applies to a quantised export"),
    (["--precision", "int8", "--sensitivity", "IN"], "--sensitivity"),
])
def test_calibration_mistakes_are_one_line(trained, flags, message):
    root, model = trained
    flags = [str(model) if f == "IN" else f for f in flags]
    out = root / "bad.onnx"
    done = hwnas("export", "--model", model, "--out", out, *flags)
    assert done.returncode != 0 and not out.exists()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and message in last and "Traceback" not in done.stderr
