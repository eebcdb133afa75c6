"""What every command's config model shares: the frozen base, the space and task specs, and building one.

`Frozen` (the base of every config model), `SpaceSpec` and `TaskSpec`; the field
helpers the models validate with (`default_min_lr`, `check_rates`, `move_task_fields`
for old runs' top-level task options); reading and writing settings (`parse_options`,
`read_settings`, `write_config`, `plain`, `merged`); and `build_config`, which turns a
validation error into one line naming the setting (its field, or its flag on the
command line). The per-command models are in `hwnas.contracts.config_search`,
`hwnas.contracts.config_runs` and `hwnas.contracts.config_tables`; `hwnas.contracts.config` re-exports them all.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from hwnas.contracts.errors import HwnasError, Setting, naming, setting
from hwnas.runs.io import atomic_write_text


class Frozen(BaseModel):
    # allow_inf_nan: an `inf` weight or rate passes every bound (inf >= 0) and only fails as NaN mid-run
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SpaceSpec(Frozen):
    """Which search space, which preset, and option overrides (validated by the space)."""

    space: str = "nafnet-unet"
    preset: str | None = None
    options: dict[str, Any] = {}

    def create(self):
        from hwnas.contracts.plugins import get_space

        return get_space(self.space).from_options(self.preset, **self.options)


class TaskSpec(Frozen):
    """Which task a run trains and scores on, and its options (validated by the task's own `Options`).

    `name` None means the space's default task (`SearchSpace.default_task`); the engine
    fills it in (`hwnas.contracts.task.resolve_task`) before a run writes its config. A plain
    string is read as the name (`task="sr2"`).
    """

    name: str | None = None
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("options", mode="before")
    @classmethod
    def _as_yaml_holds_them(cls, value: Any) -> Any:
        """Tuples as lists and paths as strings: a spec equals itself read back from config.yaml."""
        return _yaml_plain(value)


def _yaml_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _yaml_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_plain(v) for v in value]
    return str(value) if isinstance(value, PurePath) else value


# Before tasks were plugins, config.yaml (and keyword calls) held the denoising task's
# options at the top level. They are moved into `task.options` when read, so old run
# folders resume and old scripts run; nothing writes them there any more.
LEGACY_TASK_FIELDS = ("data", "crop", "sigma")


def move_task_fields(values: Any) -> Any:
    """`values` with top-level `data`/`crop`/`sigma` moved into `task.options` (they win: they are the newer override)."""
    if not isinstance(values, Mapping) or not any(k in values for k in LEGACY_TASK_FIELDS):
        return values
    values = dict(values)
    moved = {k: values.pop(k) for k in LEGACY_TASK_FIELDS if k in values}
    task = plain(values.get("task"))
    task = {"name": task} if isinstance(task, str) else dict(task or {})
    task["options"] = {**dict(task.get("options") or {}), **{k: v for k, v in moved.items() if v is not None}}
    values["task"] = task
    return values


MIN_LR = 1e-6  # where a cosine learning rate ends, by default


def default_min_lr(values: Any) -> Any:
    """min_lr not given: MIN_LR, or lr itself when lr is below it (a constant rate, not a rising one)."""
    if isinstance(values, dict) and values.get("min_lr") is None:
        lr = values.get("lr")
        values = {**values, "min_lr": min(MIN_LR, lr) if isinstance(lr, (int, float)) and lr > 0 else MIN_LR}
    return values


def check_rates(lr: float, min_lr: float) -> None:
    """A cosine from lr to min_lr must fall: a min_lr given above lr is a typo, not a schedule."""
    if min_lr > lr:
        raise ValueError(f"min_lr {min_lr:g} is above lr {lr:g}, so the rate would rise; give --min-lr at most --lr")


def parse_options(pairs: list[str] | None, flag: str = "--option", example: str = "width=16") -> dict[str, Any]:
    """`KEY=VALUE` strings -> dict; values are YAML (`width=16`, `enc_blocks=[1,1]`). `flag` names them in errors."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HwnasError(f"{flag} {pair!r} is not KEY=VALUE; write e.g. {flag} {example}.")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise HwnasError(f"{flag} {key} has an unreadable value {value!r}; write a YAML value, e.g. {key}=[1,1].") from None
    return out


def read_settings(path: str | Path, model: type[BaseModel]) -> dict[str, Any]:
    """The settings in a YAML file (`--config FILE`), by `model`'s field names -- a run's own config.yaml as it is.

    Only reads and checks the names: values are validated with the flags, once. An
    unknown name is refused in one line (a typo would otherwise be silently ignored).
    An old run's top-level data/crop/sigma come back as task options (`move_task_fields`).
    """
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as err:
        raise HwnasError(f"cannot read --config {path} ({err.strerror}); check the path.") from None
    except yaml.constructor.ConstructorError as err:  # valid YAML with a tag safe_load will not construct
        if "python/" in str(err.problem):
            raise HwnasError(f"--config {path} holds a Python tag (!!python/...), which hwnas refuses for safety (it could run "
                             "code); write plain values, e.g. `epochs: 4`.") from None
        raise HwnasError(f"--config {path} holds a YAML tag hwnas does not read ({err.problem}); write plain values, "
                         "e.g. `epochs: 4`.") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise HwnasError(f"--config {path} is not a YAML file; write one setting per line, e.g. `epochs: 4`.") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise HwnasError(f"--config {path} holds no settings; write one per line, e.g. `epochs: 4`.")
    has_task = "task" in model.model_fields
    known = set(model.model_fields) | (set(LEGACY_TASK_FIELDS) if has_task else set())
    unknown = [str(k) for k in values if k not in known]
    if unknown:
        raise HwnasError(f"--config {path} has an unknown setting {unknown[0]!r}; remove it (the settings are: "
                         f"{', '.join(model.model_fields)}).")
    return dict(move_task_fields(values)) if has_task else dict(values)



def write_config(config: BaseModel, path: Path) -> None:
    """The resolved config as YAML, next to a run's outputs."""
    atomic_write_text(Path(path), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))



WHOLE = {"arch"}  # a mapping replaced as one value when settings are merged: an architecture differs as a whole


def plain(value: Any) -> Any:
    """A config value as YAML would hold it: a nested model as a dict, a path as a string."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def merged(values: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with `changes` on top; nested mappings (a space spec, its options) are merged key by key."""
    out = dict(values)
    for key, value in changes.items():
        value = plain(value)
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key not in WHOLE:
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


FIELD_FLAGS = {"latency_weights": "--latency-weight", "target_ratios": "--target-ratio", "seeds": "--seeds",
               "uniform_candidates": "--uniform-candidates", "score_data": "--score-data", "score_options": "--score-option"}  # fields whose flag is not their name


def build_config(cls: type[BaseModel], **values: Any) -> BaseModel:
    """`cls(**values)`, a validation error becoming one `HwnasError` line naming the setting: the field
    (`image_size`) for a Python caller, the flag (`--image-size`) on the command line."""
    try:
        return cls(**values)
    except ValidationError as err:
        first = err.errors()[0]
        field = next((str(p) for p in reversed(first["loc"]) if isinstance(p, str)), "")  # an item of a tuple: its field
        named = setting(field, flag=FIELD_FLAGS.get(field)) if field else Setting("the options", "the options")
        if first["type"] == "missing":
            config_file = Setting(".", f" (or set {field} in the --config file).") if field else Setting(".", ".")
            raise naming("{field} is missing; pass it{config_file}", field=named, config_file=config_file) from None
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check across fields: its message says it all
            raise HwnasError(f"{message}.") from None
        if first["loc"][0] == "tables" and len(first["loc"]) == 3:
            named = _table_setting(values.get("tables"), *first["loc"][1:])
        raise naming("invalid {field}: " + message + ".", field=named) from None


TABLE_FIELD_FLAGS = {"weight": "--lut-weight", "target_ms": "--target-ms", "name": "--lut NAME=PATH", "path": "--lut"}


def _table_setting(tables: Any, index: Any, field: Any) -> Setting:
    """The setting behind a table's field, naming the table: `--lut-weight of table 'phone'` on the command
    line, `weight of table 'phone' (tables)` from Python."""
    try:
        entry = tables[index]
        name = entry["name"] if isinstance(entry, Mapping) else entry.name
    except (TypeError, LookupError, AttributeError):
        name = index
    return Setting(f"{field} of table {name!r} (tables)", f"{TABLE_FIELD_FLAGS.get(str(field), str(field))} of table {name!r}")

