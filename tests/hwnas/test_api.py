"""The public Python API (`hwnas.api`): the README's example end to end, keywords vs configs, lazy names."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import skimage.io
import torch

import hwnas
from hwnas.contracts.config import SearchConfig, SpaceSpec
from hwnas.contracts.errors import HwnasError

SEARCH = dict(crop=16, batch_size=2, steps_per_epoch=2, epochs=2, warmup_epochs=1, recalibration_batches=1)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(2):
        skimage.io.imsave(folder / f"p{i}.png", rng.integers(0, 256, (24, 28, 3), dtype=np.uint8), check_contrast=False)
    return folder


def test_the_readme_example_from_a_table_to_a_loaded_model(tmp_path, photos):
    table = hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=32, out=tmp_path / "tiny.csv")
    assert table.measured == table.units > 0 and table.path.is_file()
    steps = []
    found = hwnas.search(lut=tmp_path / "tiny.csv", out=tmp_path / "s1", on_step=steps.append, **SEARCH)
    assert len(steps) == 4 and steps[-1].total_steps == 4
    assert found.summary["space"] == "nafnet-unet" and found.summary["preset"] == "tiny"  # from the table's sidecar
    trained = hwnas.train(init_from=tmp_path / "s1", out=tmp_path / "ft", epochs=1, steps_per_epoch=2, batch_size=2, crop=16)
    assert trained.steps == 2 and trained.model.is_file() and trained.as_dict()["model"] == str(trained.model)
    scores = hwnas.evaluate(model=trained.model, data=[str(photos)], task_options={"sigma": [25]})
    assert [(row["sigma"], row["images"]) for row in scores.summary] == [("25", 2)] and scores.csv.is_file()
    onnx = hwnas.export(model=trained.model, out=tmp_path / "ft.onnx", cost_size=32)
    assert onnx.path.is_file() and onnx.report["max_abs_error"] <= 1e-4 and onnx.static is None
    x = torch.rand(1, 3, 24, 28)
    torch_model, onnx_model = hwnas.load(trained.model), hwnas.load(onnx.path)
    assert torch_model.runtime == "torch" and isinstance(torch_model.module, torch.nn.Module)
    assert onnx_model.runtime == "onnxruntime" and onnx_model.module is None
    torch.testing.assert_close(onnx_model(x), torch_model(x), atol=1e-4, rtol=0)
    tiled = hwnas.load(trained.model, tile=24, overlap=8)
    assert tiled(x).shape == x.shape
    ms = hwnas.predict(onnx.path, tmp_path / "tiny.csv")  # the table's latency of the exported network
    assert ms.total_ms == pytest.approx(sum(ms.by_position().values()) + ms.fixed_ms) and ms.architecture == torch_model.arch


def test_keywords_override_a_config_and_resume_takes_the_run_s_own(tmp_path):
    hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=32, out=tmp_path / "t.csv")
    config = SearchConfig(spec=SpaceSpec(preset="tiny"), image_size=32, backend="macs", lut=str(tmp_path / "t.csv"), **SEARCH)
    first = hwnas.search(config, out=tmp_path / "run", epochs=1)
    assert first.summary["epochs_done"] == 1
    extended = hwnas.search(out=tmp_path / "run", resume=True, epochs=2)  # keywords only: the rest is the run's
    assert extended.summary["epochs_done"] == 2
    with pytest.raises(HwnasError, match="was started with --mode soft, not sampled"):
        hwnas.search(out=tmp_path / "run", resume=True, mode="sampled")


def test_a_mistake_is_one_sentence_before_anything_is_written(tmp_path):
    with pytest.raises(HwnasError, match=r"^invalid image_size: Input should be greater than or equal to 8") as err:
        hwnas.build_table(backend="macs", image_size=4, out=tmp_path / "t.csv")  # the parameter, not the flag
    assert err.value.cli.startswith("invalid --image-size: Input should be")  # what `hwnas build-lut` prints
    with pytest.raises(HwnasError, match=r"^model is missing; pass it\.$"):
        hwnas.export(out=tmp_path / "m.onnx")
    with pytest.raises(HwnasError, match=r"^out='.*' is a folder; give a file name"):
        hwnas.export(model=tmp_path / "m.pt", out=tmp_path)
    with pytest.raises(HwnasError, match="nothing to train"):
        hwnas.train(out=tmp_path / "run", spec={"preset": "tiny"})
    assert list(tmp_path.iterdir()) == []


def test_the_functions_are_lazy_and_no_module_shadows_them():
    for name in ("build_table", "search", "train", "evaluate", "export", "load", "predict"):
        assert callable(getattr(hwnas, name)) and name in hwnas.__all__
        assert importlib.util.find_spec(f"hwnas.{name}") is None, f"a module hwnas.{name} would shadow the function"
    probe = "import sys, hwnas; hwnas.search, hwnas.train, hwnas.load, hwnas.predict; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr  # `hwnas --help` and `import hwnas` stay light
