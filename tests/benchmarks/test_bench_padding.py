"""benchmarks/bench_padding.py and its page section: zero padding against edge padding, side by side."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.contracts.space import Architecture, freeze, position_names
from hwnas.deploy.inference import open_model
from hwnas.deploy.modelfile import ModelFile, save_model
from hwnas.contracts.config import SpaceSpec


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("bench_padding.py")


def tiny_model(path: Path) -> Path:
    spec = SpaceSpec(preset="tiny")
    space = spec.create()
    arch = Architecture.uniform(space.name, position_names(space.build()), "naf_bn")
    torch.manual_seed(0)
    save_model(path, ModelFile(spec, arch, freeze(space, arch).state_dict()))
    return path


def test_zero_padding_is_patched_in_for_the_comparison_only(bench):
    from hwnas.searchspaces import nafnet_unet

    x = torch.rand(1, 3, 13, 21) + 0.5
    with bench.zero_padding():
        assert nafnet_unet.pad_to_multiple(x, 8)[..., 13:, :].abs().max() == 0
    assert nafnet_unet.pad_to_multiple(x, 8)[..., 13:, :].min() >= 0.5  # edge pixels again


def test_summary_counts_images_worse_than_their_noisy_input(bench, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    rows = bench.per_image(open_model(tiny_model(tmp_path / "model.pt")).predict, folder, "zeros")
    assert [r["image"] for r in rows] == ["im0.png", "im1.png"]
    inputs = bench.input_psnrs(folder, ["im0.png", "im1.png"])
    assert all(r["psnr"] < inputs[r["image"]] for r in rows)  # an untrained network (random ending conv) is below its noisy input
    s = bench.summary(rows, inputs, {"im1.png"})
    assert s["images"] == 2 and s["worse_than_input"] == 2 and s["common_images"] == 1
    assert s["psnr_common"] == round(rows[1]["psnr"], 4) and s["worst_psnr"] == round(min(r["psnr"] for r in rows), 2)


def test_unknown_network_is_one_line(bench, tmp_path):
    with pytest.raises(SystemExit, match="unknown networks"):
        bench.main(["eval", "--networks", "naf,nafbn", "--workdir", str(tmp_path)])


def test_page_sets_zeros_beside_edge(report, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    rows = [{"network": "naf_bn", "steps": 2000, "padding": p, "dataset": "CBSD68", "sigma": "25", "images": 68,
             "psnr": m, "ssim": 0.8, "worst_psnr": w, "worst_image": "105025.png", "worse_than_input": n,
             "common_images": 64, "psnr_common": c}
            for p, m, w, n, c in (("zeros", 28.306, 2.58, 4, 29.9), ("edge", 29.905, 26.07, 0, 29.95))]
    with open(results / "padding.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = report.render(results, tmp_path / "RESULTS.md")
    assert "Padding whole images: zeros against edge pixels" in text
    assert "| naf_bn | CBSD68 | 28.306 | 2.58 (4/68) | 29.905 | 26.07 (0/68) | +1.599 | +0.050 (64) |" in text
