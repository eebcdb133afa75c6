"""`hwnas search` and `hwnas sweep`: from the flags given (over a --config file) to config fields.

Which flags make a `SearchConfig` (`FIELDS`, `CONFIG_FLAGS`, the task and table flags)
and `given_fields`, which keeps only those passed; a sweep's file, axes and baselines
(`sweep_file`, `sweep_extra`, `parse_list`); the default run folder. The defaults here
mirror the engine's (`hwnas.nas.search_setup`) without importing it, so --help loads no torch.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from hwnas.cli.common import task_fields
from hwnas.cli.devices import table_fields
from hwnas.contracts.config import SearchConfig, SweepConfig, parse_options
from hwnas.contracts.errors import HwnasError

DEFAULT_SPACE = "nafnet-unet"  # as hwnas.nas.search_setup.DEFAULT_SPACE (not imported: it would load torch for --help)
DEFAULT_BACKEND = "onnxruntime"
QUICK_PRESET = "tiny"  # as hwnas.nas.search_setup.QUICK_PRESET (for --help)

# flag name -> SearchConfig field, for the flags that map one to one
FIELDS = {
    "image_size": "image_size", "backend": "backend", "device": "device", "accelerator": "accelerator",
    "epochs": "epochs", "steps_per_epoch": "steps_per_epoch", "seed": "seed", "mode": "mode",
    "latency_weight": "latency_weight", "combine": "combine", "target_form": "target_form", "hold_target": "hold_target",
    "entropy_weight": "entropy_weight",
    "entropy_growth": "entropy_growth", "warmup_epochs": "warmup_epochs", "bilevel": "bilevel", "arch_lr": "arch_lr",
    "lr": "lr", "min_lr": "min_lr", "batch_size": "batch_size", "temperature": "temperature",
    "checkpoint_every": "checkpoint_every", "threads": "threads", "prefetch": "prefetch",
}

CONFIG_FLAGS = set(FIELDS) | {"space", "preset", "option"}  # the flags that make a SearchConfig
TABLE_FLAGS = ("lut", "lut_weight", "target_ms")  # they make `lut`, `tables` and `target_ms` (hwnas.cli.devices)
TASK_FLAGS = ("task", "task_option", "data", "crop", "sigma")  # they make its `task` (hwnas.cli.common.task_fields)


def given_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The config flags actually passed (typer's None means 'not given'), by SearchConfig field.

    Only `CONFIG_FLAGS` and `TASK_FLAGS`: other locals of the caller (an import, --out,
    --resume) are no flags. --space, --preset and --option are parts of `spec`; --task,
    -t and the shorthands parts of `task`; paths are strings."""
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if k in CONFIG_FLAGS and v not in (None, [])}
    flags.update(task_fields(**{k: values.get(k) for k in TASK_FLAGS}))
    flags.update(table_fields(*(values.get(k) for k in TABLE_FLAGS)))
    spec = {key: flags.pop(flag) for flag, key in (("space", "space"), ("preset", "preset")) if flag in flags}
    if "option" in flags:
        spec["options"] = parse_options(flags.pop("option"))
    return {**flags, "spec": spec} if spec else flags


def merged_fields(base: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    from hwnas.contracts.config import merged

    return merged(base, flags)


SWEEP_AXES = ("latency_weights", "target_ratios", "seeds")
SWEEP_EXTRA = ("baselines", "executor", "cpus_per_run", "gpus_per_run")  # SweepConfig fields besides the search and axes
FRONT_FLAGS = {"budget_steps": "--budget-steps", "uniform_candidates": "--uniform-candidates", "narrow": "--narrow",
               "random_per_target": "--random-per-target", "score_data": "--score-data", "score_option": "--score-option",
               "measure_runs": "--measure-runs"}


def sweep_extra(path: Optional[Path], flags: dict[str, Any]) -> dict[str, Any]:
    """The SweepConfig fields of --baselines and --executor: sweep.yaml's (--config), the flags given on top.
    Baseline flags without --baselines, or --baselines without a budget: one sentence."""
    from hwnas.contracts.config import read_settings

    saved: dict[str, Any] = {}
    if path is not None:
        try:
            saved = {k: v for k, v in read_settings(path, SweepConfig).items() if k in SWEEP_EXTRA and v is not None}
        except HwnasError:
            saved = {}  # a search's config.yaml: no sweep settings
    out = {**saved, **{k: flags[k] for k in ("executor", "cpus_per_run", "gpus_per_run") if flags.get(k) is not None}}
    given = [flag for key, flag in FRONT_FLAGS.items() if flags.get(key) not in (None, [])]
    if not flags.get("baselines") and "baselines" not in saved:
        if given:
            raise HwnasError(f"{given[0]} applies to the baselines of a front; add --baselines (and --budget-steps).")
        return out
    front = dict(saved.get("baselines") or {})
    front.update({k: flags[k] for k in ("budget_steps", "random_per_target", "measure_runs") if flags.get(k) is not None})
    for key in ("uniform_candidates", "narrow"):
        if flags.get(key):
            front[key] = [c.strip() for c in flags[key].split(",") if c.strip()]
    if flags.get("score_data"):
        front["score_data"] = list(flags["score_data"])
    if flags.get("score_option"):
        front["score_options"] = parse_options(flags["score_option"], "--score-option", "sigma=[25]")
    if front.get("budget_steps") is None:
        raise HwnasError("--baselines needs a training budget: add --budget-steps B, the weight updates every network "
                         "gets (e.g. --budget-steps 6000).")
    return {**out, "baselines": front}


def sweep_file(path: Optional[Path]) -> tuple[dict[str, Any], dict[str, list]]:
    """The search settings and sweep axes (mu, target ratios, seeds) of --config: a sweep's sweep.yaml, or a search's config.yaml."""
    from hwnas.contracts.config import move_task_fields, read_settings

    if path is None:
        return {}, {}
    try:
        values = read_settings(path, SweepConfig)
    except HwnasError:
        return read_settings(path, SearchConfig), {}
    return dict(move_task_fields(dict(values.get("search") or {}))), {k: list(values[k]) for k in SWEEP_AXES if values.get(k)}


def default_out(fields: dict[str, Any]) -> Path:
    from hwnas.nas.search_setup import quick_preset as _quick_preset

    spec = fields.get("spec") or {}
    space = spec.get("space") or DEFAULT_SPACE
    preset = spec.get("preset") or ("lut" if fields.get("lut") or fields.get("tables") else _quick_preset(space)) or "default"
    name = f"search-{space}-{preset}-{datetime.now():%Y%m%d-%H%M%S}"
    return Path("runs") / name


def no_weights(resumed: Optional[Path]) -> str:
    """The error for a sweep without weights; a resumed one says why its folder did not give them."""
    if resumed is None or not resumed.is_dir():
        return "give the latency weights to sweep: --latency-weight 0,0.1,0.3,1 (or latency_weights in --config)."
    started = sorted(p.name.removeprefix("mu-") for p in resumed.glob("mu-*") if p.is_dir())
    return (f"{resumed} holds no sweep.yaml (a sweep writes it as it starts){' but runs for mu ' + ', '.join(started) if started else ''}; "
            "pass the weights it was started with, e.g. --latency-weight " + (",".join(started) or "0,0.1,0.3,1") + ".")


def parse_list(text: str, flag: str, kind: type, example: str) -> list:
    """A comma-separated list of distinct numbers >= 0 (ratios > 0) given to `flag`, or one line naming it."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HwnasError(f"{flag} {text!r} is not a comma-separated list of {'whole ' if kind is int else ''}numbers; "
                         f"write e.g. {example}.") from None
    low_ok = (lambda v: v > 0) if flag == "--target-ratio" else (lambda v: v >= 0)
    if not values or not all(low_ok(v) for v in values) or len(set(values)) != len(values):
        raise HwnasError(f"{flag} {text!r} needs distinct values {'> 0' if flag == '--target-ratio' else '>= 0'}; "
                         f"write e.g. {example}.")
    return values
