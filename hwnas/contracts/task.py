"""The task contract: what a space's networks are trained on and scored by.

A task is a plugin (entry-point group ``hwnas.tasks``, or `hwnas.contracts.plugins.register_task`)
that owns the data, the loss, the metrics and the evaluation protocol. The engine
names no task-specific field: a run's config holds a `hwnas.contracts.config.TaskSpec` (the
task's name and its options), the task validates the options with its own pydantic
`Options` model, and `resolve_task` / `make_task` below turn a spec into a task.

Batches are pure functions of (split, seed, epoch, step): a resumed run, or another
rank of a distributed run, asks for the same indices and gets the same tensors, with
no data-loader state to save.

Output scale: a task whose outputs are `scale` times larger than its inputs (x2
super-resolution) needs a network that ends in an upsampling. The network is the
space's, so the space builds that ending (its `scale` option, see
`hwnas.contracts.space.SearchSpace.scales`); the task only declares the scale it needs and the
engine sets the space's option from it.

Output kind: a task trains networks that return an image (`output = "image"`, the
default) or one vector of scores per input (`"scores"`, e.g. a classifier); it pairs
only with spaces that declare the same `SearchSpace.output`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.space import OUTPUTS

if TYPE_CHECKING:
    from hwnas.contracts.config import SpaceSpec, TaskSpec
    from hwnas.contracts.space import SearchSpace

Predict = Callable[[torch.Tensor], torch.Tensor]  # one input batch -> output (see hwnas.deploy.inference)

SPLITS = ("train", "arch")  # weights train on "train"; architecture logits on held-out "arch"



class NoOptions(BaseModel):
    """The options of a task that has none."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Task(ABC):
    """Data, loss, metrics and evaluation protocol of one learning problem.

    A subclass sets `name` (its registry name), `Options` (a frozen pydantic model,
    extra="forbid"; every field has a default and a `description` that `hwnas tasks`
    shows), `shorthands` (the `Options` fields it takes as command-line flags of their
    own, `--data DIR` for `-t data=DIR`; any other shorthand flag is refused),
    `scale` (output size / input size), `output` (its networks' output kind, one of
    `OUTPUTS`) and `primary_metric` (the score a higher value improves: the sweep's y
    axis, the first validation column). A quantised export calibrates on inputs the
    task makes (`calibration_options`, `calibration_batches`). The engine builds it as
    `cls(options, space)`: validated options and the space whose network it trains
    (for hints such as `space.train_crop`; None when only the file hooks are used).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    shorthands: ClassVar[tuple[str, ...]] = ()
    scale: ClassVar[int] = 1
    output: ClassVar[str] = "image"  # or "scores": see the module docstring
    primary_metric: ClassVar[str] = "score"

    def __init__(self, options: BaseModel | None = None, space: "SearchSpace | None" = None):
        self.options = options if options is not None else self.Options()
        self.space = space

    @abstractmethod
    def batch(self, split: str, *, seed: int, epoch: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) for one step; deterministic in its arguments. target is `scale` x input in H and W."""

    @abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar task loss (the L_task of the composite objective)."""

    @abstractmethod
    def validate(self, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, float]:
        """Score `model` on the task's fixed validation set; includes `primary_metric`."""

    # Optional hooks for deployment commands (`hwnas eval`, `hwnas infer`). They work on
    # whole files, not on the task's own data; a task that cannot do this keeps the defaults.

    def evaluate_folder(self, predict: Predict, folder: str | Path, **options) -> list[dict]:
        """Score `predict` on every sample in `folder` by the task's published protocol.

        Returns one dict per sample (and condition): "image", label columns (str or int,
        e.g. data set and noise level) and metric columns (float). `options` are the
        protocol's own keyword-only options (e.g. noise levels, seed, where to save images).
        """
        raise HwnasError(f"the task {self.name or type(self).__name__} does not support evaluating a folder; use its validate().")

    def infer_file(self, predict: Predict, in_path: str | Path, out_path: str | Path) -> dict:
        """Run `predict` on one input file and write the result to `out_path`; returns facts about it."""
        raise HwnasError(f"the task {self.name or type(self).__name__} does not support running on files.")

    # Calibration of a quantised export (`hwnas export --precision int8 --calibration DIR`).

    @classmethod
    def calibration_options(cls, options: dict[str, Any], folder: str | None, side: int) -> dict[str, Any]:
        """Options of the task whose batches calibrate a model trained with `options`.

        `folder` is the user's `--calibration` data (None: the task's own) and `side` the
        smallest input side wanted. The default keeps the training options and refuses a
        folder; a task that reads a data folder overrides this to read `folder` instead.
        """
        if folder is not None:
            raise HwnasError(f"task {cls.name} reads no calibration folder; leave out --calibration (its own data "
                             "calibrates the model).")
        return dict(options)

    def calibration_batches(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(calibration inputs, held-out check inputs), N x C x H x W: `count` from "train", max(2, count // 4)
        from "arch" -- inputs like those the model will see, not random tensors."""
        calib = [self.batch("train", seed=0, epoch=0, step=i, batch_size=1)[0] for i in range(count)]
        check = [self.batch("arch", seed=1, epoch=0, step=i, batch_size=1)[0] for i in range(max(2, count // 4))]
        return torch.cat(calib), torch.cat(check)


# -- from a TaskSpec to a task -----------------------------------------------------------

S = TypeVar("S")


def task_class(name: str | None, space: str) -> type[Task]:
    """The task registered as `name`, or the default task of the space registered as `space`."""
    from hwnas.contracts.plugins import get_space, get_task

    if name is None:
        name = get_space(space).default_task
        if name is None:
            raise HwnasError(f"space {space!r} names no default task; pass --task (see `hwnas tasks`).")
    return get_task(name)


def task_options(cls: type[Task], options: dict[str, Any]) -> BaseModel:
    """`cls.Options(**options)`; a mistake is one `HwnasError` line naming the flag that set it."""
    fields = cls.Options.model_fields
    for key in options:
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise HwnasError(f"{_flag(key)} does not apply to task {cls.name}; its options are: {known} (see `hwnas tasks`).")
    try:
        return cls.Options(**options)
    except ValidationError as err:
        first = err.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        raise HwnasError(f"invalid {_flag(key) if key else 'task options'} for task {cls.name}: {message}.") from None


def _flag(key: str) -> str:
    return f"--{key}" if key in shorthand_options() else f"-t {key}"


def shorthand_options() -> set[str]:
    """Every option some installed task takes as a flag of its own (`Task.shorthands`): the
    flags a user may have typed, so a message names `--sigma` rather than `-t sigma`."""
    from hwnas.contracts.plugins import get_task, task_names

    return {key for name in task_names() for key in get_task(name).shorthands}


def resolve_task(config: S, defaults: bool = False) -> S:
    """`config` (anything with `spec` and `task`) with the task resolved: its name filled
    in, its options normalised by the task's `Options` (as the task writes them back,
    e.g. a data folder made absolute; only those given, or with `defaults` every one),
    and the space's `scale` option set to the scale the task needs. Idempotent; refuses
    a space that cannot produce that scale."""
    task, spec = resolved(config.task, config.spec, defaults)
    return config.model_copy(update={"task": task, "spec": spec})


def resolved(task: "TaskSpec", spec: "SpaceSpec", defaults: bool = False) -> tuple["TaskSpec", "SpaceSpec"]:
    """(task spec, space spec) as `resolve_task` describes."""
    from hwnas.contracts.config import TaskSpec

    cls = task_class(task.name, spec.space)
    check_output(cls, _space_output(spec.space), spec.space)
    options = task_options(cls, task.options).model_dump(mode="json", exclude_unset=not defaults)
    return TaskSpec(name=cls.name, options=options), spec_for_scale(spec, cls)


def spec_for_scale(spec: "SpaceSpec", cls: type[Task]) -> "SpaceSpec":
    """`spec` with the space option `scale` set to `cls.scale` (left out at 1, as every space builds scale 1)."""
    from hwnas.contracts.plugins import get_space

    given = spec.options.get("scale")
    if given is not None and given != cls.scale:
        raise HwnasError(
            f"the {spec.space} network is set to output scale {given} (space option scale, given or from the latency "
            f"table), but task {cls.name} needs scale {cls.scale}; pass another --task, or a table built with "
            f"-o scale={cls.scale}."
        )
    if cls.scale == 1:
        return spec
    scales = get_space(spec.space).scales
    if cls.scale not in scales:
        raise HwnasError(
            f"space {spec.space!r} cannot build a network whose output is {cls.scale}x its input, which task "
            f"{cls.name} needs (it builds scale {', '.join(map(str, scales))}); pass another --space or --task."
        )
    return spec.model_copy(update={"options": {**spec.options, "scale": cls.scale}})


def _space_output(space: str) -> str:
    from hwnas.contracts.plugins import get_space

    return get_space(space).output


def check_output(cls: type[Task], output: str, space: str) -> None:
    """Refuse a task whose networks' output kind (image or scores) is not the `output` of space `space`."""
    for who, kind in ((f"space {space!r}", output), (f"task {cls.name}", cls.output)):
        if kind not in OUTPUTS:
            raise HwnasError(f"{who} declares output {kind!r}, none of {', '.join(OUTPUTS)}; fix its `output`.")
    if cls.output != output:
        raise HwnasError(f"task {cls.name} trains networks that output {cls.output}, but space {space!r} outputs "
                         f"{output}; pass a --task for {output} or a --space for {cls.output}.")


def make_task(task: "TaskSpec", space: "SearchSpace") -> Task:
    """The task of `task` (name None: the space's default) for the networks of `space`."""
    cls = task_class(task.name, space.name)
    check_output(cls, space.output, space.name)
    if cls.scale != space.scale:
        raise HwnasError(f"task {cls.name} needs output scale {cls.scale}, but this {space.name} network has scale "
                         f"{space.scale}; pass -o scale={cls.scale} or another --task.")
    return cls(task_options(cls, task.options), space)


def file_task(name: str | None, space: str) -> Task:
    """A task built only for its file hooks (`evaluate_folder`, `infer_file`): default options, no space.

    Its INFO log about its own training data is silenced: it is not the data in use here.
    """
    import logging

    cls = task_class(name, space)
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        return cls(cls.Options(), None)
    finally:
        logging.disable(previous)
