"""Tasks as plugins (`hwnas.contracts.task`, `hwnas.contracts.config.TaskSpec`): resolving a spec, options and
shorthands, output scales, and the runs and model files written before tasks were plugins."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import skimage.io
import torch
import yaml
from pydantic import BaseModel, ConfigDict
from torch import nn

import hwnas
from hwnas.contracts.config import SearchConfig, SpaceSpec, TaskSpec, TrainConfig, read_settings
from hwnas.contracts.errors import HwnasError
from hwnas.deploy.modelfile import load_model, read_payload
from hwnas.contracts.plugins import register_space
from hwnas.contracts.space import Architecture, ChoiceBlock, SearchSpace
from hwnas.contracts.task import file_task, make_task, resolve_task, resolved, spec_for_scale, task_class, task_options
from hwnas.runs.training import plan, run_training

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

TINY = SpaceSpec(preset="tiny")
UNIFORM_CBR = {label: "cbr" for label in ("enc0.0", "enc1.0", "enc2.0", "mid.0", "dec2.0", "dec1.0", "dec0.0")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        skimage.io.imsave(folder / f"p{i}.png", rng.integers(0, 256, (40, 44, 3), dtype=np.uint8), check_contrast=False)
    return folder


class Stop(Exception):
    pass


# -- resolving ----------------------------------------------------------------------------------


def test_a_spec_resolves_to_the_space_s_default_task_with_its_options_normalised(tmp_path):
    task, spec = resolved(TaskSpec(options={"data": str(tmp_path / ".." / tmp_path.name), "sigma": "25"}), TINY)
    assert task.name == "denoising" and spec == TINY  # scale 1: the space spec is left as it was
    assert task.options == {"data": str(tmp_path.resolve()), "sigma": 25.0}  # only what was given, as the task reads it
    assert resolved(task, spec) == (task, spec)  # idempotent


def test_a_task_name_alone_is_a_spec_and_old_top_level_options_move_into_it():
    assert TaskSpec.model_validate("sr2") == TaskSpec(name="sr2")
    config = SearchConfig(spec=TINY, crop=16, sigma=(0, 55), data=None)
    assert config.task == TaskSpec(options={"crop": 16, "sigma": [0, 55]})
    assert "crop" not in config.model_dump()
    newer = SearchConfig(spec=TINY, task={"options": {"crop": 32, "val_crops": 2}}, crop=16)  # the keyword wins
    assert newer.task.options == {"crop": 16, "val_crops": 2}


def test_options_and_shorthands_a_task_lacks_are_refused_in_one_line():
    cls = task_class("denoising", "nafnet-unet")
    with pytest.raises(HwnasError, match=r"^-t nope does not apply to task denoising; its options are: data, crop"):
        task_options(cls, {"nope": 1})
    with pytest.raises(HwnasError, match=r"^invalid --sigma for task denoising: .*sigma must be finite and >= 0"):
        task_options(cls, {"sigma": -1})
    with pytest.raises(HwnasError, match=r"unknown task 'nope'; pass task with one of: denoising"):
        resolved(TaskSpec(name="nope"), TINY)


class OnlyImages(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = ChoiceBlock("b", {"id": nn.Identity()})


class ScaleOneSpace(SearchSpace):
    """A space that builds only image-to-image networks (scales (1,), no `scale` option)."""

    name: ClassVar[str] = "scale-one"

    class Config(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")

    default_task: ClassVar[str] = "denoising"

    def build(self):
        return OnlyImages()


def test_a_space_that_cannot_build_the_task_s_scale_refuses_in_one_line():
    register_space(ScaleOneSpace)
    with pytest.raises(HwnasError, match=r"space 'scale-one' cannot build a network whose output is 2x its input, which "
                                         r"task sr2 needs \(it builds scale 1\)"):
        resolved(TaskSpec(name="sr2"), SpaceSpec(space="scale-one"))
    sr2 = task_class("sr2", "nafnet-unet")
    assert spec_for_scale(TINY, sr2).options == {"scale": 2}
    with pytest.raises(HwnasError, match="set to output scale 2 .* but task denoising needs scale 1"):
        resolved(TaskSpec(name="denoising"), SpaceSpec(preset="tiny", options={"scale": 2}))


class ScoresSpace(ScaleOneSpace):
    """A space that declares a vector of scores as its output (a classifier's)."""

    name: ClassVar[str] = "scores-only"
    output: ClassVar[str] = "scores"


def test_a_task_and_a_space_of_different_output_kinds_refuse_in_one_line():
    register_space(ScoresSpace)
    with pytest.raises(HwnasError, match=r"^task denoising trains networks that output image, but space 'scores-only' "
                                         r"outputs scores; pass a --task for scores or a --space for image\.$"):
        resolved(TaskSpec(name="denoising"), SpaceSpec(space="scores-only"))
    with pytest.raises(HwnasError, match=r"^task denoising trains networks that output image"):
        make_task(TaskSpec(name="denoising"), ScoresSpace.from_options())


def test_a_task_makes_its_calibration_inputs(data):
    """A quantised export calibrates on the task's own batches; only a task that reads a folder takes one."""
    space = SpaceSpec(preset="tiny").create()
    denoising = task_class("denoising", "nafnet-unet")
    options = denoising.calibration_options({"data": "/nowhere", "crop": 64, "sigma": 15.0}, str(data), 32)
    assert options == {"data": str(data), "crop": 32, "sigma": 15.0}  # the training data is not read
    calib, check = make_task(TaskSpec(name="denoising", options=options), space).calibration_batches(4)
    assert calib.shape == (4, 3, 32, 32) and check.shape == (2, 3, 32, 32)

    class NoFolder(hwnas.Task):
        name = "no-folder"

    assert NoFolder.calibration_options({"x": 1}, None, 32) == {"x": 1}
    with pytest.raises(HwnasError, match=r"^task no-folder reads no calibration folder; leave out --calibration"):
        NoFolder.calibration_options({}, str(data), 32)


# -- the past: runs and model files from before tasks were plugins -------------------------------------


def test_an_old_config_yaml_resumes_as_denoising(tmp_path, data):
    """config.yaml had data/crop/sigma at the top level and no task: it resumes, and is rewritten resolved."""
    out = tmp_path / "run"
    config = plan(out, spec=TINY, arch=Architecture(space="nafnet-unet", choices=UNIFORM_CBR), data=str(data),
                  crop=32, sigma=15, epochs=1, steps_per_epoch=3, batch_size=2, checkpoint_every=1)

    def stop(info):
        if info.global_step == 2:
            raise Stop

    with pytest.raises(Stop):
        run_training(config, out, on_step=stop)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    task = saved.pop("task")
    (out / "config.yaml").write_text(yaml.safe_dump({**saved, **task["options"]}, sort_keys=False))  # the old layout
    assert read_settings(out / "config.yaml", TrainConfig)["task"]["options"]["sigma"] == 15
    with pytest.raises(HwnasError, match="was started with --sigma 15.0, not 25"):
        plan(out, resume=True, sigma=25)
    resumed = plan(out, resume=True, data=str(data))  # the same folder given again is no change
    result = run_training(resumed, out, resume=True)
    assert result.steps == 3
    assert yaml.safe_load((out / "config.yaml").read_text())["task"]["name"] == "denoising"
    assert load_model(result.model).task.name == "denoising"


def test_an_old_model_file_loads_and_scores_as_its_space_s_default_task(tmp_path, data):
    out = tmp_path / "run"
    config = plan(out, spec=TINY, arch=Architecture(space="nafnet-unet", choices=UNIFORM_CBR), data=str(data),
                  epochs=1, steps_per_epoch=1, batch_size=2)
    model = run_training(config, out).model
    payload = read_payload(model)
    del payload["task"]  # as written before tasks were plugins
    torch.save(payload, tmp_path / "old.pt")
    loaded = hwnas.load(tmp_path / "old.pt")
    assert loaded.task is None and loaded.scale == 1
    assert file_task(loaded.task, loaded.spec.space).name == "denoising"
    scores = hwnas.evaluate(model=tmp_path / "old.pt", data=[str(data)], task_options={"sigma": [25]})
    assert [row["sigma"] for row in scores.summary] == ["25"]


def test_a_resolved_config_records_the_task_and_the_network_s_scale():
    config = resolve_task(SearchConfig(spec=TINY, task="sr2"))
    assert config.task == TaskSpec(name="sr2") and config.spec.options == {"scale": 2}
    space = config.spec.create()
    assert space.scale == 2 and space.fingerprint() != TINY.create().fingerprint()
    with pytest.raises(HwnasError, match="task sr2 needs output scale 2, but this nafnet-unet network has scale 1"):
        make_task(TaskSpec(name="sr2"), TINY.create())
