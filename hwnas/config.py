"""Validated, frozen configuration: one model per command, built once from the flags.

Each command's model is validated at the edge (CLI or library call) and passed down
as the part a function needs -- never as a dict threaded through everything. Runs
write their resolved model next to their outputs (`config.yaml`).
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hwnas.errors import HwnasError, Setting, naming, setting
from hwnas.io import atomic_write_text


class Frozen(BaseModel):
    # allow_inf_nan: an `inf` weight or rate passes every bound (inf >= 0) and only fails as NaN mid-run
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SpaceSpec(Frozen):
    """Which search space, which preset, and option overrides (validated by the space)."""

    space: str = "nafnet-unet"
    preset: str | None = None
    options: dict[str, Any] = {}

    def create(self):
        from hwnas.plugins import get_space

        return get_space(self.space).from_options(self.preset, **self.options)


class TaskSpec(Frozen):
    """Which task a run trains and scores on, and its options (validated by the task's own `Options`).

    `name` None means the space's default task (`SearchSpace.default_task`); the engine
    fills it in (`hwnas.task.resolve_task`) before a run writes its config. A plain
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


class DescribeConfig(Frozen):
    spec: SpaceSpec
    image_size: int = Field(256, ge=8)


def write_config(config: BaseModel, path: Path) -> None:
    """The resolved config as YAML, next to a run's outputs."""
    atomic_write_text(Path(path), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


class TableRef(Frozen):
    """One device's latency table in a search for several devices (`--lut NAME=PATH`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)  # names a file in the run folder
    path: str
    weight: float = Field(1.0, gt=0)
    target_ms: float | None = Field(None, gt=0)


class SearchConfig(Frozen):
    """A differentiable search (`hwnas search`): written resolved to the run's config.yaml.

    `task` is what the super-net trains on (None: the space's default task).
    `latency_weight` (mu) and `entropy_weight` (lambda0) are relative to the task loss
    at the end of warm-up (see `hwnas.objective`); mu defaults to 0.1, or 1.0 with
    `target_ms` (the constraint form). `device` is the latency target recorded in the
    table; `accelerator` is where the search computes.

    Several devices (issue 15): `tables` names each device's table, its weight and
    (constraint form) its target; `combine` (`hwnas.combine`) makes their latency terms
    one. `lut`, `backend` and `device` are then the first table's.
    """

    spec: SpaceSpec
    image_size: int = Field(256, ge=8)
    backend: str = "onnxruntime"
    device: str | None = None
    lut: str | None = None
    tables: tuple[TableRef, ...] = ()  # several devices; empty: `lut` alone
    combine: Literal["sum", "worst"] = "sum"
    accelerator: Literal["cpu", "cuda"] = "cpu"
    task: TaskSpec = TaskSpec()
    epochs: int = Field(10, ge=1)
    steps_per_epoch: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)
    mode: Literal["soft", "sampled"] = "soft"
    temperature: float = Field(1.0, gt=0)
    latency_weight: float = Field(0.1, ge=0)  # 1.0 when target_ms is given and this is not
    target_ms: float | None = Field(None, gt=0)
    entropy_weight: float = Field(0.05, ge=0)
    entropy_growth: float = Field(100.0, ge=1)  # lambda ends this many times lambda0 (hwnas.schedule)
    warmup_epochs: int | None = Field(None, ge=0)  # None: WARMUP_FRACTION of the epochs, resolved below
    bilevel: bool = True
    lr: float = Field(2e-3, gt=0)
    min_lr: float = Field(MIN_LR, ge=0)  # the weights' rate anneals from lr to this (hwnas.schedule.CosinePlan)
    arch_lr: float | None = Field(None, gt=0)  # None: sized to the run's architecture steps, resolved below
    weight_decay: float = Field(1e-4, ge=0)
    checkpoint_every: int = Field(20, ge=1)
    recalibration_batches: int = Field(4, ge=1)
    threads: int | None = Field(None, ge=1)  # torch threads; None: every usable core (hwnas.compute)
    prefetch: int = Field(2, ge=0)  # batches made ahead in a background thread (0: on demand)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, values: Any) -> Any:
        """Resolve the defaults that depend on other fields, so config.yaml records numbers."""
        from hwnas.schedule import auto_arch_lr, auto_warmup_epochs

        values = default_min_lr(move_task_fields(values))
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if values.get("latency_weight") is None:
            targets = [t.get("target_ms") if isinstance(t, Mapping) else getattr(t, "target_ms", None)
                       for t in values.get("tables") or ()]
            constrained = values.get("target_ms") is not None or any(t is not None for t in targets)
            values["latency_weight"] = 1.0 if constrained else 0.1
        epochs = values.get("epochs", 10)
        steps = values.get("steps_per_epoch", 40)
        if not (isinstance(epochs, int) and isinstance(steps, int) and epochs >= 1 and steps >= 1):
            return values  # field validation reports the bad value
        if values.get("warmup_epochs") is None:
            values["warmup_epochs"] = auto_warmup_epochs(epochs)
        if values.get("arch_lr") is None and isinstance(values["warmup_epochs"], int):
            values["arch_lr"] = auto_arch_lr((epochs - values["warmup_epochs"]) * steps)
        return values

    @model_validator(mode="after")
    def _rates(self) -> "SearchConfig":
        check_rates(self.lr, self.min_lr)
        return self

    @model_validator(mode="after")
    def _tables(self) -> "SearchConfig":
        """Several tables: distinct names, the first is `lut`, and targets per device or none."""
        if not self.tables:
            return self
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise ValueError(f"two tables are named {next(n for n in names if names.count(n) > 1)!r}; name each "
                             "with --lut NAME=PATH")
        if self.lut is not None and Path(self.lut).resolve() != Path(self.tables[0].path).resolve():
            raise ValueError("lut must be the first of tables")
        if self.target_ms is not None and len(self.tables) > 1:
            raise ValueError("one --target-ms for several tables is ambiguous; give one per table, e.g. "
                             f"--target-ms {names[0]}=12")
        with_target = [t.name for t in self.tables if t.target_ms is not None]
        if with_target and len(with_target) != len(self.tables):
            missing = [n for n in names if n not in with_target]
            raise ValueError(f"table {missing[0]!r} has no target while {with_target[0]!r} has one; give every table "
                             f"a target (--target-ms {missing[0]}=MS) or none")
        return self


class FrontConfig(Frozen):
    """The baselines of a sweep's latency-quality front (`hwnas sweep --baselines`, `hwnas.front`).

    Every network gets `budget_steps` weight updates: a searched one is fine-tuned for
    what its search left of them; the baselines (uniform networks, random mixes at each
    target's predicted latency, the base and best uniform networks -- or those of the
    candidates in `narrow` -- made narrower and shallower) train that long from scratch
    with the search's recipe. Then each is
    measured end to end (ONNX Runtime on this CPU, `measure_runs` interleaved rounds,
    `measure_threads` threads) and scored on the task's validation and on `score_data`
    (with `score_options`, the task's evaluation options, e.g. {"sigma": [25]})."""

    budget_steps: int = Field(ge=1)
    uniform_candidates: tuple[str, ...] = ()  # empty: every candidate of the space; ("none",): no uniform network
    narrow: tuple[str, ...] = ()  # the candidates made narrower/shallower per target; empty: base + best uniform slower
    random_per_target: int = Field(2, ge=0)
    random_tolerance: float = Field(0.03, gt=0, lt=1)  # a random mix's prediction within this fraction of the target
    random_tries: int = Field(20000, ge=1)
    score_data: tuple[str, ...] = ()
    score_options: dict[str, Any] = {}
    measure_runs: int = Field(60, ge=1)
    measure_threads: int = Field(2, ge=1)

    @field_validator("score_options", mode="before")
    @classmethod
    def _yaml_plain(cls, value: Any) -> Any:
        return _yaml_plain(value)


class SweepConfig(Frozen):
    """Several searches that differ only in mu, latency target or seed (`hwnas sweep`).

    Runs: every mu x every target ratio (none: the penalty form) x every seed (none: the
    search's own). A target ratio R gives the search `target_ms` = R x the table's base
    network (every position's first candidate), so one sweep spans the front between
    the cheapest network and the base one (issue 22). With `baselines` the sweep also
    fine-tunes every derived network and trains the baselines of the front
    (`FrontConfig`). Runs go through `executor` (`hwnas.executors`), each asking for
    `cpus_per_run` CPUs and `gpus_per_run` GPUs of a cluster node."""

    search: SearchConfig
    latency_weights: tuple[float, ...] = ()
    target_ratios: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    baselines: FrontConfig | None = None
    executor: str = "local"
    cpus_per_run: float = Field(1.0, gt=0)
    gpus_per_run: float = Field(0.0, ge=0)

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, v: str) -> str:
        from hwnas.executors import EXECUTORS

        if v not in EXECUTORS:
            raise ValueError(f"unknown executor {v!r}; choose one of {', '.join(EXECUTORS)}")
        return v

    @model_validator(mode="after")
    def _budget(self) -> "SweepConfig":
        """A searched network's fine-tuning gets what its search left of the budget: something must be left."""
        if self.baselines is None:
            return self
        searched = self.search.epochs * self.search.steps_per_epoch
        if self.baselines.budget_steps <= searched:
            raise ValueError(f"the training budget of {self.baselines.budget_steps} steps leaves nothing to fine-tune after "
                             f"the search's {searched} steps ({self.search.epochs} epochs x {self.search.steps_per_epoch}); "
                             f"raise the budget above {searched} steps or search for fewer")
        return self

    @model_validator(mode="after")
    def _distinct(self) -> "SweepConfig":
        if not self.latency_weights and not self.target_ratios:
            raise ValueError("give latency weights or target ratios to sweep")
        if any(w < 0 for w in self.latency_weights):
            raise ValueError("latency weights must be >= 0")
        if any(not 0 < r for r in self.target_ratios):
            raise ValueError("target ratios must be > 0 (a fraction of the base network's predicted latency)")
        if any(s < 0 for s in self.seeds):
            raise ValueError("seeds must be >= 0")
        for name in ("latency_weights", "target_ratios", "seeds"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name.replace('_', ' ')} must be distinct")
        return self


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


class TrainConfig(Frozen):
    """Fine-tuning or training a derived network (`hwnas train`): the run's config.yaml.

    `arch` is the resolved architecture (from --arch, --uniform or the --init-from run);
    `task` what it trains on (None: the space's default task). Length: `epochs` x
    `steps_per_epoch` steps, or as many as fit in `time_budget` minutes of training
    steps (validation and checkpoints not counted) -- give one.
    AdamW with NAFNet's betas (0.9, 0.9), cosine learning rate from `lr` to `min_lr`.
    """

    spec: SpaceSpec
    arch: dict[str, Any]  # an Architecture dump (kept plain: hwnas.space imports torch)
    init_from: str | None = None
    accelerator: Literal["cpu", "cuda"] = "cpu"
    task: TaskSpec = TaskSpec()
    epochs: int | None = Field(None, ge=1)
    steps_per_epoch: int = Field(100, ge=1)
    time_budget: float | None = Field(None, gt=0)
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(MIN_LR, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    checkpoint_every: int = Field(50, ge=1)
    recalibration_batches: int = Field(8, ge=0)
    threads: int | None = Field(None, ge=1)  # torch threads; None: every usable core (hwnas.compute)
    prefetch: int = Field(2, ge=0)  # batches made ahead in a background thread (0: on demand)

    @model_validator(mode="before")
    @classmethod
    def _length(cls, values: Any) -> Any:
        values = default_min_lr(move_task_fields(values))
        if isinstance(values, dict):
            if values.get("epochs") is not None and values.get("time_budget") is not None:
                raise ValueError("give either --epochs or --time-budget, not both")
            if values.get("epochs") is None and values.get("time_budget") is None:
                values = {**values, "epochs": 10}
        return values

    @model_validator(mode="after")
    def _rates(self) -> "TrainConfig":
        check_rates(self.lr, self.min_lr)
        return self

    def architecture(self):
        """`arch` as an `hwnas.space.Architecture`."""
        from hwnas.space import Architecture

        return Architecture.model_validate(self.arch)


class EvalConfig(Frozen):
    """`hwnas eval`: a model scored on folders by its task's protocol (`Task.evaluate_folder`).

    `task_options` are that protocol's keyword options (e.g. noise levels), checked
    against its signature; the task itself is the one the model was trained for.
    """

    model: str
    data: tuple[str, ...] = Field(min_length=1)
    task_options: dict[str, Any] = {}
    out: str | None = None
    tile: int | None = Field(None, ge=8)
    overlap: int | None = Field(None, ge=0)  # None: min(32, tile // 4)
    accelerator: Literal["cpu", "cuda"] = "cpu"
    threads: int = Field(0, ge=0)


class ExportConfig(Frozen):
    """`hwnas export`: BN folded, ONNX with dynamic H/W or a static (H, W), verified by ONNX Runtime."""

    model: str
    out: str
    static: tuple[int, int] | None = None
    tolerance: float = Field(1e-4, gt=0)
    opset: int = Field(18, ge=13)  # the dynamo exporter's floor (hwnas.onnx_export); below it the TorchScript one
    cost_size: int = Field(256, ge=8)
    precision: str = "fp32"  # ONNX Runtime's static QDQ quantisation (hwnas.quantize)
    calibration: str | None = None  # image folder for int8/w8a16; None: the task's sample images
    calibration_count: int = Field(32, ge=1, le=4096)
    calibration_method: str = "minmax"  # how activation ranges are read from the calibration inputs (hwnas.quantize)
    per_channel: bool = True  # 8-bit weights per output channel (else one scale per tensor)
    keep_16bit: int | Literal["auto"] = 0  # int8: the N most sensitive activations at 16 bits; auto: the fewest for min_psnr
    sensitivity: str | None = None  # CSV of each activation's sensitivity (hwnas.sensitivity)
    min_psnr: float = Field(35.0, gt=0)  # dB between the quantised file and PyTorch (hwnas.quantized_export)
    check_on: str | None = None  # a backend that runs the written file on its device (qai-hub): PSNR vs PyTorch
    check_device: str | None = None  # its device (default: the backend's)
    check_images: int = Field(4, ge=1, le=64)  # inputs the device check runs

    @field_validator("precision")
    @classmethod
    def _export_precision(cls, v: str) -> str:
        from hwnas.quantize import QUANTISED, check_precision

        return check_precision(v, ("fp32", *QUANTISED), "hwnas export",
                               fix="export fp32 for fp16: a device's compiler converts it, e.g. --check-on qai-hub")

    @field_validator("calibration_method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        from hwnas.quantize import CALIBRATION_METHODS

        if v not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {v!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
        return v

    @field_validator("keep_16bit", mode="before")
    @classmethod
    def _count_or_auto(cls, v: Any) -> Any:
        text = str(v).strip().lower()
        if text == "auto":
            return "auto"
        if not text.isdigit():  # negative numbers and words alike
            raise ValueError(f"{v!r} is neither a number of activations (0 or more) nor auto; e.g. --keep-16bit auto")
        return int(text)

    @model_validator(mode="after")
    def _positive_static(self) -> "ExportConfig":
        if self.static is not None and min(self.static) < 1:
            raise ValueError("a static shape needs positive height and width, e.g. --static 256x256")
        quantised_only = {"--calibration": self.calibration is not None, "--sensitivity": self.sensitivity is not None,
                          "--calibration-method": self.calibration_method != type(self).model_fields["calibration_method"].default,
                          "--per-tensor": not self.per_channel, "--keep-16bit": self.keep_16bit != 0}
        for flag, given in quantised_only.items():
            if given and self.precision == "fp32":
                raise ValueError(f"{flag} applies to a quantised export; add --precision int8 (or w8a16)")
        if self.keep_16bit != 0 and self.precision != "int8":
            raise ValueError(f"--keep-16bit keeps int8 activations at 16 bits, and {self.precision} has no 8-bit activations; "
                             "use it with --precision int8")
        return self


class InferConfig(Frozen):
    """`hwnas infer` (alias `hwnas denoise`): one input file through a model into one output file, by its task."""

    model: str
    input: str
    output: str
    tile: int | None = Field(None, ge=8)
    overlap: int | None = Field(None, ge=0)  # None: min(32, tile // 4)
    accelerator: Literal["cpu", "cuda"] = "cpu"
    threads: int = Field(0, ge=0)


DenoiseConfig = InferConfig  # the name before `hwnas infer` ran any task


class BuildLutConfig(Frozen):
    """`hwnas build-lut`: measure what a latency table of the space lacks.

    `backend_options` are the backend's own Options fields given by the user (only
    those: the backend's defaults fill the rest). `out` None means the per-user cache
    (`hwnas.tables.building.default_table_path`).
    """

    spec: SpaceSpec = SpaceSpec()
    image_size: int = Field(256, ge=8)
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = {}
    out: str | None = None
    force: bool = False
    dry_run: bool = False


class ProfileConfig(Frozen):
    """`hwnas profile`: networks (from --arch, --uniform, --random, --random-count or an
    --onnx file) measured end to end and compared with a table's prediction; optionally the
    per-layer breakdown of one network."""

    spec: SpaceSpec
    image_size: int = Field(256, ge=8)
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = {}
    lut: str | None = None
    arch: str | None = None
    uniform: str | None = None
    random: int | None = Field(None, ge=0)  # with random_count: the first seed
    random_count: int | None = Field(None, ge=1, le=1000)
    onnx: str | None = None
    same_rounds: bool = False  # with random_count: the table's units timed again in the networks' rounds
    breakdown: bool = False

    @model_validator(mode="after")
    def _one_architecture(self) -> "ProfileConfig":
        random = "--random-count" if self.random_count is not None else "--random"
        picked = (("--arch", self.arch), ("--uniform", self.uniform), ("--onnx", self.onnx),
                  (random, self.random if self.random_count is None else self.random_count))
        given = [flag for flag, v in picked if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of --arch FILE, --uniform CANDIDATE, --random SEED, --random-count N "
                             f"or --onnx FILE (got {' and '.join(given) or 'none'})")
        if self.breakdown and (self.random_count is not None or self.onnx is not None):
            raise ValueError(f"--breakdown takes one network from --arch, --uniform or --random, not {given[0]}")
        if self.same_rounds and self.random_count is None:
            raise ValueError("--same-rounds goes with --random-count N")
        return self
