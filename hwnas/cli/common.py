"""Options shared by every command, so the vocabulary is learnt once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel

from hwnas.contracts.config import DescribeConfig


def bounds(model: type[BaseModel], field: str) -> str:
    """The accepted range of a numeric config field as help text, e.g. "(>= 8)" or "(0 to 1)".

    Ranges live in the pydantic configs (one place, where values are validated); help
    strings quote them from there rather than repeating numbers that could drift.
    """
    low = high = None
    for rule in model.model_fields[field].metadata:
        for attr, strict in (("ge", False), ("gt", True)):
            if getattr(rule, attr, None) is not None:
                low = (getattr(rule, attr), strict)
        for attr, strict in (("le", False), ("lt", True)):
            if getattr(rule, attr, None) is not None:
                high = (getattr(rule, attr), strict)
    if low and high and not low[1] and not high[1]:
        return f"({low[0]:g} to {high[0]:g})"
    parts = ([f"{'>' if low[1] else '>='} {low[0]:g}"] if low else []) + ([f"{'<' if high[1] else '<='} {high[0]:g}"] if high else [])
    return f"({', '.join(parts)})" if parts else ""

SpaceOpt = typer.Option("nafnet-unet", "--space", help="Search space (see `hwnas spaces`).")
PresetOpt = typer.Option(None, "--preset", help="Preset of the space, e.g. paper or tiny.")
OptionOpt = typer.Option(None, "--option", "-o", help="Space option override KEY=VALUE (YAML value), e.g. -o width=16 -o enc_blocks=[1,1].")
ImageSizeOpt = typer.Option(256, "--image-size", help=f"H=W at which latency is measured and shapes are reported {bounds(DescribeConfig, 'image_size')}.")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON only.")

OptionalStrList = Optional[list[str]]

# Compute settings of `search`, `sweep` and `train` (not table settings: see hwnas.runs.compute).
TorchThreadsOpt = typer.Option(None, "--threads", help="Torch threads for training compute (default: torch's own, every usable core or OMP_NUM_THREADS; measured 1.8x faster than one at the paper preset on 2 cores). On a busy machine fewer threads avoid spin-waiting. >= 1.")
PrefetchOpt = typer.Option(None, "--prefetch", help="Batches prepared ahead in a background thread (default 2; 0: on demand). Never changes the batches. >= 0.")


# The task a run trains on (a plugin: see `hwnas tasks`) and its options. --data, --crop
# and --sigma are shorthands for -t data=..., -t crop=..., -t sigma=...; a task that has
# no such option refuses them (hwnas.contracts.task.task_options).
TaskOpt = typer.Option(None, "--task", help="Task to train on (see `hwnas tasks`); default: the space's (denoising for nafnet-unet).")
TaskOptionOpt = typer.Option(None, "--task-option", "-t", help="Task option KEY=VALUE (YAML value), e.g. -t val_crops=16; `hwnas tasks` lists them.")


def task_fields(task: Optional[str], task_option: Optional[list[str]], **shorthands: Any) -> dict[str, Any]:
    """--task, -t and the shorthand flags given, as the config field `task` ({} when none was given)."""
    from hwnas.contracts.config import parse_options

    options = parse_options(task_option, flag="-t", example="val_crops=16")
    options.update({k: str(v) if isinstance(v, Path) else v for k, v in shorthands.items() if v is not None})
    if "sigma" in shorthands and shorthands["sigma"] is not None:
        options["sigma"] = parse_level(shorthands["sigma"])
    given = {"name": task} if task is not None else {}
    if options:
        given["options"] = options
    return {"task": given} if given else {}


ConfigOpt = typer.Option(None, "--config", help="YAML file of settings named as in the command's config (a run's own config.yaml works as it is); flags given as well override it.")


def settings(path: Optional[Path], model: type[BaseModel], flags: dict[str, Any]) -> dict[str, Any]:
    """A command's settings by config field: those of the --config file, the flags given on top."""
    from hwnas.contracts.config import merged, read_settings

    return merged(read_settings(path, model) if path is not None else {}, flags)


def parse_level(text: Optional[str]):
    """`--sigma`: "25" -> 25.0, "0,55" -> (0.0, 55.0) (a range drawn per crop); None stays None."""
    from hwnas.contracts.errors import HwnasError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise HwnasError(f"--sigma {text!r} is not a level or a range; write e.g. --sigma 25 or --sigma 0,55.")
    return values[0] if len(values) == 1 else (values[0], values[1])
