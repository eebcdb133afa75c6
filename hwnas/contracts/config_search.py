"""The config models of searching: `SearchConfig` (`hwnas search`), its tables (`TableRef`),
`SweepConfig` (`hwnas sweep`) and `FrontConfig` (a sweep's baselines). Re-exported by `hwnas.contracts.config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, field_validator, model_validator

from hwnas.contracts.config_fields import (
    MIN_LR, Frozen, SpaceSpec, TaskSpec, _yaml_plain, check_rates, default_min_lr, move_task_fields,
)


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
    at the end of warm-up (see `hwnas.nas.objective`); mu defaults to 0.1, or 1.0 with
    `target_ms` (the constraint form). `device` is the latency target recorded in the
    table; `accelerator` is where the search computes.

    Several devices (issue 15): `tables` names each device's table, its weight and
    (constraint form) its target; `combine` (`hwnas.nas.combine`) makes their latency terms
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
    # how a target penalises (hwnas.nas.objective): absolute |E/T - 1| or hinge max(0, E/T - 1);
    # None: absolute with one table, hinge with several (resolved below)
    target_form: Literal["absolute", "hinge"] | None = None
    # with targets: the argmax network brought under every device's target by the swaps that give up the least
    # alpha per ms (hwnas.nas.target_hold); off: the argmax as it is, which can land above the target
    hold_target: bool = True
    entropy_weight: float = Field(0.05, ge=0)
    entropy_growth: float = Field(100.0, ge=1)  # lambda ends this many times lambda0 (hwnas.nas.schedule)
    warmup_epochs: int | None = Field(None, ge=0)  # None: WARMUP_FRACTION of the epochs, resolved below
    bilevel: bool = True
    lr: float = Field(2e-3, gt=0)
    min_lr: float = Field(MIN_LR, ge=0)  # the weights' rate anneals from lr to this (hwnas.nas.schedule.CosinePlan)
    arch_lr: float | None = Field(None, gt=0)  # None: sized to the run's architecture steps, resolved below
    weight_decay: float = Field(1e-4, ge=0)
    checkpoint_every: int = Field(20, ge=1)
    recalibration_batches: int = Field(4, ge=1)
    threads: int | None = Field(None, ge=1)  # torch threads; None: every usable core (hwnas.runs.compute)
    prefetch: int = Field(2, ge=0)  # batches made ahead in a background thread (0: on demand)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, values: Any) -> Any:
        """Resolve the defaults that depend on other fields, so config.yaml records numbers."""
        from hwnas.nas.schedule import auto_arch_lr, auto_warmup_epochs

        values = default_min_lr(move_task_fields(values))
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if values.get("latency_weight") is None:
            targets = [t.get("target_ms") if isinstance(t, Mapping) else getattr(t, "target_ms", None)
                       for t in values.get("tables") or ()]
            constrained = values.get("target_ms") is not None or any(t is not None for t in targets)
            values["latency_weight"] = 1.0 if constrained else 0.1
        if values.get("target_form") is None:
            values["target_form"] = "hinge" if len(values.get("tables") or ()) > 1 else "absolute"
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
    """The baselines of a sweep's latency-quality front (`hwnas sweep --baselines`, `hwnas.nas.front`).

    Every network gets `budget_steps` weight updates: a searched one is fine-tuned for
    what its search left of them; the baselines (uniform networks, random mixes at each
    target's predicted latency, the base and best uniform networks -- or those of the
    candidates in `narrow` -- made narrower and shallower, the best uniform network faster
    than a target made wider) train that long from scratch
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
    (`FrontConfig`). Runs go through `executor` (`hwnas.runs.executors`), each asking for
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
        from hwnas.runs.executors import EXECUTORS

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

