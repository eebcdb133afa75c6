"""The differentiable search: train a super-net's weights and architecture logits together.

Every step (an epoch is a fixed number of steps) is the bilevel step of `hwnas.bilevel`:

1. weight step -- AdamW on the candidate weights, minimising the task loss on a
   "train" batch (logits held fixed);
2. architecture step (after the warm-up epochs) -- Adam with its own learning rate on
   the logits phi, minimising the composite objective (`hwnas.objective`) on a
   held-out "arch" batch (weights held fixed): first-order bilevel optimisation
   (DARTS, Liu et al. 2019). With `bilevel=False` (single-level) one "train" batch
   updates both at once.

During warm-up only weights train, so the candidates are worth choosing between
before alpha moves; the task loss averaged over the last warm-up epoch becomes the
reference L_ref that makes mu and lambda relative to the task loss. lambda follows
the run's entropy plan (`hwnas.schedule`), re-planned when a resumed run is extended.

Determinism: batches come from `task.batch(split, seed, epoch, step)` and Gumbel
samples from (seed, epoch, step, phase), so the state after a step is a function of
the state before it. The run skeleton (`hwnas.run`: folder, checkpoints every
`checkpoint_every` steps and at each epoch's end, exact `--resume`, signals, NaN
guard, data-parallel agreement, steps.csv) is shared with `hwnas.training`.

Data parallel (`torchrun`, see `hwnas.distributed`): `batch_size` is the global batch,
each rank trains on its slice; gradients of weights and logits and BatchNorm
statistics are averaged over ranks, so every rank holds the same state; logged losses
are rank means; every checkpoint and the end of the run check that all ranks hold the
same logits; only rank 0 writes files.

Each epoch the derived network (argmax alpha) is frozen from a copy of the super-net,
its BatchNorm statistics recalibrated (`hwnas.batchnorm`), and validated.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping

import torch
from torch import nn

from hwnas import distributed
from hwnas.collapse import collapse_summary, target_warning
from hwnas.batchnorm import recalibrate
from hwnas.bilevel import Bilevel
from hwnas.checkpoint import load_checkpoint, rng_state, set_rng_state
from hwnas.commitment import commitment
from hwnas.compute import auto_threads, compute_for, device_for
from hwnas.config import SearchConfig, build_config, plain
from hwnas.devices import Device, check_same_network, devices
from hwnas.cost import count_params
from hwnas.errors import HwnasError
from hwnas.history import plot_alpha, plot_entropy, write_alpha_history
from hwnas.io import atomic_write_text
from hwnas.latency import LatencyTable, predict_ms
from hwnas.combine import COMBINATIONS
from hwnas.objective import DeviceLatency, Objective, Terms, latency_model, normalised_entropy
from hwnas.prefetch import Prefetcher
from hwnas.rows import write_rows
from hwnas.run import Progress, Run, guard, guard_spike, read_run_config, stop_if_diverged
from hwnas.rundir import RunDir
from hwnas.schedule import CosinePlan, EntropyPlan
from hwnas.space import Architecture, SearchSpace, Unit, freeze
from hwnas.supernet import alpha_matrix, alphas, derive, draw_gumbel, mixed_choices, stable_seed, to_supernet
from hwnas.task import make_task, resolve_task

logger = logging.getLogger(__name__)

FORMAT = "hwnas-search"
VERSION = 1
DEFAULT_SPACE = "nafnet-unet"
QUICK_PRESET = "tiny"  # the preset of a search given none, where the space has it
MAY_CHANGE_ON_RESUME = {"epochs", "threads", "prefetch"}  # a longer run; compute settings never change results
IGNORED_ON_RESUME = {"lut", "tables", "device"}  # the run keeps its own copies of its tables (and the device recorded)
STEP_COLUMNS = ["global_step", "epoch", "step", "train_loss", "task", "latency", "entropy", "total", "expected_ms"]


@dataclass(frozen=True)
class StepLog:
    """One step's numbers, for progress bars and steps.csv. Arch terms are None during warm-up."""

    epoch: int
    step: int
    steps_per_epoch: int
    global_step: int
    train_loss: float
    task: float | None = None
    latency: float | None = None
    entropy: float | None = None
    total: float | None = None
    expected_ms: float | None = None
    total_steps: int | None = None  # of the whole run (progress bars)

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in STEP_COLUMNS}


@dataclass(frozen=True)
class SearchResult:
    """What `hwnas.search` returns: the run folder, the derived architecture and summary.json's contents."""

    run_dir: Path
    arch: Architecture
    summary: dict[str, Any]


# -- inputs --------------------------------------------------------------------


def lookup_units(space: SearchSpace, image_size: int) -> list[Unit]:
    """Every table key a search of `space` needs: candidates per position shape, and fixed parts."""
    return list(space.layout(image_size).units)


def check_table(table: LatencyTable, space: SearchSpace, config: SearchConfig, *, device: bool = True) -> None:
    """Refuse a table for another space, configuration, size (or, with `device`, the config's
    backend and device), one whose rows measured other blocks, or one lacking entries.
    Further devices' tables keep their own backend."""
    from hwnas.tables.target import MeasurementTarget

    target = MeasurementTarget.of(space, config.image_size, config.backend if device else None, config.device if device else None)
    target.check(table, settings=False)
    table.require(lookup_units(space, config.image_size))


def resolve_config(fields: Mapping[str, Any]) -> tuple[SearchConfig, LatencyTable | None]:
    """A `SearchConfig` from what was given (None = not given), and the table of a given `lut`.

    `spec` may be given in part. With `lut`, space, preset, options, image size and
    backend come from the table's sidecar; a given one that contradicts it is refused.
    Without, the space defaults to `DEFAULT_SPACE` and the preset to `QUICK_PRESET`
    where the space has it (a search of about a minute).
    """
    from hwnas.tables.target import MeasurementTarget

    values = {k: plain(v) for k, v in fields.items() if v is not None}
    spec = dict(values.pop("spec", None) or {})
    refs = [dict(t) for t in values.pop("tables", None) or ()]
    if refs:  # several devices: the first table is the run's lut
        if values.get("lut") is not None and Path(values["lut"]).resolve() != Path(refs[0]["path"]).resolve():
            raise HwnasError("give the tables either as lut or as tables, not both.")
        values["lut"] = refs[0]["path"]
    lut = values.get("lut")
    if lut is None:
        space = spec.get("space") or DEFAULT_SPACE
        return build_config(SearchConfig, spec={**spec, "space": space, "preset": spec.get("preset") or quick_preset(space)},
                            **values), None
    table = distributed.from_main(lambda: LatencyTable.load(lut))  # rank 0 reads it and sends it to the others
    given = MeasurementTarget(spec.get("space"), spec.get("preset"), spec.get("options") or None, values.get("image_size"),
                              values.get("backend"))
    got = given.with_table(table.meta, str(lut))
    values.update(image_size=got.image_size, backend=got.backend, lut=str(Path(lut).resolve()))
    if refs:
        refs = [{**ref, "path": str(Path(ref["path"]).resolve())} for ref in refs]
        check_same_network(table, [(ref["name"], LatencyTable.load(ref["path"])) for ref in refs[1:]])
        values["tables"] = refs
    return build_config(SearchConfig, spec={"space": got.space, "preset": got.preset, "options": dict(got.options or {})},
                        **values), table


def quick_preset(space: str) -> str | None:
    from hwnas.plugins import get_space

    return QUICK_PRESET if QUICK_PRESET in get_space(space).presets else None


def prepare(config: SearchConfig, table: LatencyTable | None, task, cached_table: Callable[[SearchConfig], LatencyTable]):
    """(config, table, task) of a fresh search, checked in the order that writes nothing on a mistake.

    The accelerator, then the task (resolved: `hwnas.task.resolve_task`; it decodes its
    images), then the table: `table`, else the one at `config.lut`, else
    `cached_table(config)`. The config records the task as resolved and the device the
    table was measured on.
    """
    device_for(config.accelerator)
    config = resolve_task(config)
    space = config.spec.create()
    if task is None:
        task = make_task(config.task, space)
    if table is None:
        table = distributed.from_main(lambda: LatencyTable.load(config.lut) if config.lut else cached_table(config))
    if config.device is not None:  # given as asked ('cpu') or as recorded ('cpu:<model>'): either must fit the table
        from hwnas.tables.target import MeasurementTarget

        MeasurementTarget.of(space, config.image_size, device=config.device).check(table, settings=False)
    return config.model_copy(update={"device": table.meta.device}), table, task


def read_config(run_dir: str | Path) -> SearchConfig:
    """The config.yaml of a search run."""
    return read_run_config(RunDir(Path(run_dir)).config, SearchConfig, "search")


def load_supernet(run_dir: str | Path, map_location: str | torch.device = "cpu") -> tuple[SearchSpace, nn.Module]:
    """(space, super-net) of a search run, with the weights and logits of its latest checkpoint.

    The super-net is in eval mode; `hwnas.freeze(net, Architecture.load(run_dir / "arch.json"))`
    gives the derived network with the searched weights of the chosen candidates.
    """
    run = RunDir(Path(run_dir))
    if not run.config.is_file():
        raise HwnasError(f"{run.root} is not a search run (no config.yaml); pass the --out folder of `hwnas search`.")
    config = read_config(run.root)
    state = load_checkpoint(run.checkpoints, map_location=map_location)
    if state is None:
        raise HwnasError(f"{run.root} has no checkpoint yet; finish or resume its search first (`hwnas search --out {run.root} --resume`).")
    space = config.spec.create()
    net = to_supernet(space.build(), config.mode, config.temperature)
    net.load_state_dict(state["supernet"])
    return space, net.eval()


# -- the loop ------------------------------------------------------------------


@dataclass
class SearchProgress(Progress):
    """The search's own part of the progress record (see `hwnas.run.Progress`)."""

    reference_loss: float | None = None
    warmup_sum: float = 0.0
    warmup_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: alphas and entropy
    entropy_plan: dict[str, float] | None = None  # hwnas.schedule.EntropyPlan, re-planned when a run is extended
    lr_plan: dict[str, float] | None = None  # hwnas.schedule.CosinePlan of the weights, re-planned likewise
    argmax_trail: list[tuple[int, list[str]]] = field(default_factory=list)  # (arch step, argmax) at every change


class Search:
    """The search loop (`hwnas.run.Loop`): the super-net, its two optimisers and the objective.

    `folder` is where the run's files go; nothing is written unless `write_outputs` or
    the run skeleton asks.
    """

    ADVICE: ClassVar[str] = "lower --lr/--arch-lr (or --latency-weight/--entropy-weight) and start a new run with another --out"

    def __init__(self, config: SearchConfig, folder: RunDir, space: SearchSpace, task, table: LatencyTable,
                 devices_: list[Device] | None = None):
        self.config, self.folder, self.space, self.task = config, folder, space, task
        self.devices = devices_ or devices(config, table)
        self.table = self.devices[0].table  # the first device's: logs and the single-table fields
        self.positions = space.positions(config.image_size)
        self.compute = compute_for(config.accelerator, config.threads or self.auto_threads(space, task))
        self.device = self.compute.device
        self.writer = distributed.is_main()
        self.fixed = space.fixed_units(config.image_size)
        costs = tuple(DeviceLatency(d.name, latency_model(d.table, self.positions, self.fixed), d.weight, d.target_ms)
                      for d in self.devices)
        self.objective = Objective(costs, config.latency_weight, COMBINATIONS[config.combine]).to(self.device)
        torch.manual_seed(config.seed)
        self.net = self.compute.module(to_supernet(space.build(), config.mode, config.temperature))
        self.labels = [p.label for p in self.positions]
        self.bilevel = Bilevel(self.net, lr=config.lr, arch_lr=config.arch_lr, weight_decay=config.weight_decay)
        self.progress = SearchProgress()
        self.plan()
        self.loader: Prefetcher | None = None

    def auto_threads(self, space: SearchSpace, task) -> int | None:
        """Threads for a search without --threads, from the base network's work per step (`hwnas.compute`)."""
        with torch.device("meta"):
            base = freeze(space, Architecture(space=space.name, choices={p.label: p.candidates[0] for p in self.positions}))
        x = task.batch("train", seed=0, epoch=0, step=0, batch_size=1)[0]
        return auto_threads(self.config.accelerator, base, (self.config.batch_size, *x.shape[1:]))

    # -- checkpoints -----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.model_dump(mode="json"),
            "supernet": self.net.state_dict(),
            **self.bilevel.state(),
            "rng": rng_state(self.device),
            "progress": self.progress.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise HwnasError(f"the checkpoint in {self.folder.checkpoints} is not a search checkpoint; choose another --out.")
        self.net.load_state_dict(state["supernet"])
        self.bilevel.load(state)
        set_rng_state(state["rng"], self.device)
        self.progress = SearchProgress.from_state(state["progress"])
        self.plan()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"network weights": self.bilevel.weights, "architecture logits": self.bilevel.logits}

    def agreement(self) -> torch.Tensor:
        """The logits: every rank must derive the same architecture (compared at every checkpoint)."""
        return torch.cat([t.detach() for t in self.bilevel.logits])

    # -- the plans: entropy weight and the weights' learning rate ---------------

    def arch_steps_planned(self) -> int:
        """Architecture steps the run has planned in all (after warm-up)."""
        c = self.config
        return max(0, c.epochs - c.warmup_epochs) * c.steps_per_epoch

    def arch_steps_done(self) -> int:
        """Architecture steps done before the current one (t in lambda(t))."""
        return max(0, self.progress.global_step - self.config.warmup_epochs * self.config.steps_per_epoch)

    def plan(self) -> None:
        """Fresh plans over the run's length, or, for an extended run, ones that continue from the current values."""
        c, p = self.config, self.progress
        if p.entropy_plan is None:
            entropy = EntropyPlan.fresh(c.entropy_weight, c.entropy_growth, self.arch_steps_planned())
        else:
            entropy = EntropyPlan(**p.entropy_plan).extended(self.arch_steps_done(), self.arch_steps_planned())
        total = c.epochs * c.steps_per_epoch
        if p.lr_plan is None:
            lr = CosinePlan.fresh(c.lr, c.min_lr, total)
        else:
            lr = CosinePlan(**p.lr_plan).extended(p.global_step, total)
        p.entropy_plan, p.lr_plan = entropy.as_dict(), lr.as_dict()
        self.entropy, self.weight_lr = entropy, lr

    def lam(self) -> float:
        """lambda for the current architecture step."""
        return self.entropy.at(self.arch_steps_done())

    # -- batches -----------------------------------------------------------------

    def make_batch(self, key: tuple[str, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        split, epoch, step = key
        return self.task.batch(split, seed=self.config.seed, epoch=epoch, step=step, batch_size=self.config.batch_size)

    def batch_keys(self) -> Iterator[tuple[str, int, int]]:
        """The (split, epoch, step) of every batch the loop asks for from here on, in order."""
        c, p = self.config, self.progress
        step = p.step
        for epoch in range(p.epoch, c.epochs):
            for s in range(step, c.steps_per_epoch):
                yield ("train", epoch, s)
                if c.bilevel and epoch >= c.warmup_epochs:
                    yield ("arch", epoch, s)
            step = 0

    def batch(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.progress
        key = (split, p.epoch, p.step)
        x, y = self.loader.get(key) if self.loader is not None else self.make_batch(key)
        return self.compute.tensor(distributed.shard(x)), self.compute.tensor(distributed.shard(y))

    # -- steps -------------------------------------------------------------------

    def forward(self, split: str) -> torch.Tensor:
        """The task loss of one batch of `split`; in sampled mode, paths drawn from (seed, epoch, step, split)."""
        p = self.progress
        if self.config.mode == "sampled":
            draw_gumbel(self.net, self.config.seed, p.epoch, p.step, split)
        x, y = self.batch(split)
        with self.compute.forward():
            out = self.net(x)
        return self.task.loss(out.float(), y)

    def terms(self, task_loss: torch.Tensor) -> Terms:
        p = self.progress
        if p.reference_loss is None:  # no warm-up: the first architecture batch sets the scale
            p.reference_loss = distributed.mean([float(task_loss.detach())])[0]  # the same on every rank
            usable = p.reference_loss > 0 and math.isfinite(p.reference_loss)
            stop_if_diverged(None if usable else f"the task loss is {p.reference_loss} and cannot serve as the reference scale",
                             p, self.folder.checkpoints, self.ADVICE)
        return self.objective(task_loss, p.reference_loss, alpha_matrix(self.net, self.labels), self.lam())

    def check(self, values) -> None:
        guard(values, self.progress, self.folder.checkpoints, self.ADVICE)

    def weight_step(self) -> float:
        return self.bilevel.weight_step(lambda: self.forward("train"), self.check)

    def arch_step(self) -> Terms:
        terms = self.bilevel.arch_step(lambda: self.terms(self.forward("arch")), self.check)
        self.note_argmax()
        return terms

    def joint_step(self) -> tuple[float, Terms]:
        """Single-level: one "train" batch, the full objective, both optimisers."""
        loss, terms = self.bilevel.joint_step(lambda: self.forward("train"), self.terms, self.check)
        self.note_argmax()
        return loss, terms

    def note_argmax(self) -> None:
        """Append to the argmax trail when any position's argmax changed (for the commitment report)."""
        current = list(derive(self.net, self.space.name).choices.values())
        trail = self.progress.argmax_trail
        if not trail or trail[-1][1] != current:
            trail.append((self.arch_steps_done() + 1, current))

    def step(self) -> StepLog:
        p, c = self.progress, self.config
        searching = p.epoch >= c.warmup_epochs
        terms = None
        self.bilevel.set_weight_lr(self.weight_lr.at(p.global_step))
        if searching and not c.bilevel:
            train_loss, terms = self.joint_step()
        else:
            train_loss = self.weight_step()
            if searching:
                terms = self.arch_step()
        distributed.average_buffers(self.net)  # BatchNorm statistics: the same on every rank
        local = [train_loss] + ([] if terms is None else [float(v.detach()) for _, v in terms.items()])
        train_loss, *term_values = distributed.mean(local)  # what is logged: the mean over ranks
        guard_spike(train_loss, p, self.folder.checkpoints, self.ADVICE)
        p.add("train_loss", train_loss)
        if not searching and p.epoch == c.warmup_epochs - 1:
            p.warmup_sum += train_loss
            p.warmup_count += 1
        total = c.epochs * c.steps_per_epoch
        if terms is None:
            return StepLog(p.epoch, p.step, c.steps_per_epoch, p.global_step, train_loss, total_steps=total)
        values = {name: v for (name, _), v in zip(terms.items(), term_values)}
        for name, v in values.items():
            p.add(name, v)
        with torch.no_grad():
            expected = float(self.objective.latency.expected_ms(alpha_matrix(self.net, self.labels)))
        return StepLog(p.epoch, p.step, c.steps_per_epoch, p.global_step, train_loss, expected_ms=expected,
                       total_steps=total, **values)

    # -- epochs ------------------------------------------------------------------

    def epoch_over(self) -> bool:
        return self.progress.step >= self.config.steps_per_epoch

    def finished(self) -> bool:
        return self.progress.epoch >= self.config.epochs

    def end_epoch(self) -> None:
        p, c = self.progress, self.config
        if p.epoch == c.warmup_epochs - 1 and p.warmup_count:
            p.reference_loss = p.warmup_sum / p.warmup_count
        with torch.no_grad():
            alpha = alpha_matrix(self.net, self.labels)
            entropy = float(normalised_entropy(alpha, self.objective.latency.mask))
            expected = float(self.objective.latency.expected_ms(alpha))
        p.history.append({"epoch": p.epoch, "alphas": alphas(self.net), "entropy": entropy})
        arch = derive(self.net, self.space.name)
        scores = self.validate(arch)
        row = {"epoch": p.epoch, "searching": int(p.epoch >= c.warmup_epochs),
               "lambda": self.lam() if p.epoch >= c.warmup_epochs else 0.0, "lr": self.weight_lr.at(p.global_step - 1)}
        row.update({k: p.means().get(k) for k in ("train_loss", "task", "latency", "entropy", "total")})
        row.update({"alpha_entropy": entropy, "expected_ms": expected,
                    "derived_ms": predict_ms(self.table, self.positions, self.fixed, arch),
                    **self.device_columns(alpha, arch), **{f"val_{k}": v for k, v in scores.items()}})
        p.metrics.append(row)
        logger.info("epoch %d: entropy %.3f, expected %.4g ms, derived %.4g ms, val %s", p.epoch, entropy, expected,
                    row["derived_ms"], ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        p.next_epoch()

    def device_columns(self, alpha: torch.Tensor, arch: Architecture) -> dict[str, float]:
        """Per device (when there are several): expected and derived-network latency in ms."""
        if len(self.devices) < 2:
            return {}
        out = {}
        for d, cost in zip(self.devices, self.objective.devices):
            out[f"expected_ms:{d.name}"] = float(cost.model.expected_ms(alpha))
            out[f"derived_ms:{d.name}"] = predict_ms(d.table, self.positions, self.fixed, arch)
        return out

    def device_summary(self, arch: Architecture) -> dict[str, dict[str, Any]]:
        """summary.json's `devices`: per device, its table and the derived network's latency."""
        out = {}
        for d, cost in zip(self.devices, self.objective.devices):
            predicted = predict_ms(d.table, self.positions, self.fixed, arch)
            out[d.name] = {**d.describe(), "weight": d.weight, "target_ms": d.target_ms, "predicted_ms": predicted,
                           "base_ms": cost.model.base_ms, "ratio": predicted / cost.model.base_ms}
        return out

    def derived_network(self, arch: Architecture) -> nn.Module:
        """The derived network from a copy of the super-net, BatchNorm recalibrated on training batches."""
        net = freeze(self.net, arch).to(self.device)
        c = self.config
        seed = stable_seed(c.seed, "recalibrate")
        batches = (self.task.batch("train", seed=seed, epoch=self.progress.epoch, step=i, batch_size=c.batch_size)[0]
                   for i in range(c.recalibration_batches))
        recalibrate(net, batches, self.device)
        return net

    def validate(self, arch: Architecture) -> dict[str, float]:
        return self.task.validate(self.derived_network(arch), self.device)

    # -- outputs ---------------------------------------------------------------

    def summary(self, arch: Architecture, scores: dict[str, float] | None) -> dict[str, Any]:
        c, p, lat = self.config, self.progress, self.objective.latency
        chosen = alphas(self.net)
        firsts = {pos.candidates[0] for pos in self.positions}
        predicted = predict_ms(self.table, self.positions, self.fixed, arch)
        return {
            "space": self.space.name,
            "preset": self.space.preset,
            "task": self.config.task.name,
            "primary_metric": self.task.primary_metric,
            "mode": c.mode,
            "latency_weight": c.latency_weight,
            "target_ms": c.target_ms,
            "entropy_weight": c.entropy_weight,
            "entropy_growth": c.entropy_growth,
            "arch_lr": c.arch_lr,
            "lr": c.lr,
            "min_lr": c.min_lr,
            "warmup_epochs": c.warmup_epochs,
            "epochs_done": p.epoch,
            "epochs": c.epochs,
            "choices": {label: {"candidate": name, "alpha": round(chosen[label][name], 6)} for label, name in arch.choices.items()},
            "predicted_ms": predicted,
            "base": f"all-{firsts.pop()}" if len(firsts) == 1 else "base",
            "base_ms": lat.base_ms,
            "speedup": lat.base_ms / predicted if predicted > 0 else None,
            "alpha_entropy": p.history[-1]["entropy"] if p.history else None,
            "commitment": commitment(chosen, p.history[-1]["entropy"] if p.history else None, p.argmax_trail,
                                     self.arch_steps_planned()),
            "params": derived_params(self.net, arch),
            "val": scores,
            "latency_table": {"backend": self.table.meta.backend, "device": self.table.meta.device,
                              "image_size": self.table.meta.image_size,
                              "precision": self.table.meta.precision},
            "combine": c.combine,
            "devices": self.device_summary(arch),
            **collapse_summary(arch, self.positions, self.objective.devices[0], c.latency_weight),
        }

    def write_outputs(self, plots: bool = True) -> dict[str, Any] | None:
        """Rewrite every derived file from the in-memory state (no appends: resume-safe).

        Plots take about a second, so the loop redraws them only at the end or on a stop.
        """
        if not self.writer:
            return None
        p, folder = self.progress, self.folder
        arch = derive(self.net, self.space.name)
        arch.save(folder.arch)
        write_alpha_history(folder.alpha_history, p.history)
        write_rows(folder.metrics, p.metrics)
        if plots:
            title = f"{self.space.name} ({self.space.preset or 'custom'}), {self.config.mode}, mu={self.config.latency_weight}"
            plot_alpha(folder.alpha_png, p.history, title=title)
            plot_entropy(folder.entropy_png, p.history)
        scores = {k.removeprefix("val_"): v for k, v in p.metrics[-1].items() if k.startswith("val_")} if p.metrics else None
        summary = self.summary(arch, scores)
        atomic_write_text(folder.summary, json.dumps(summary, indent=2) + "\n")
        return summary


def run_search(
    config: SearchConfig,
    run_dir: str | Path,
    table: LatencyTable | None = None,
    *,
    resume: bool = False,
    on_step: Callable[[StepLog], None] | None = None,
    task=None,
) -> SearchResult:
    """Search `config.spec` steered by `table`, writing the run folder `run_dir` (claimed while it runs).

    Fresh: `table` is required; it is checked against the space and copied into the
    run. With `resume` and a checkpoint in `run_dir`: the run's own config and table
    copy are used (`config` must agree except for `MAY_CHANGE_ON_RESUME`, e.g. a larger
    `epochs` extends the run), and the search continues exactly where the checkpoint
    left it; with no checkpoint yet it starts fresh with a warning. `task` is the
    task built from `config.task`, when the caller already has it (it holds decoded
    images). Raises `HwnasError` for a user's mistake, `hwnas.run.Diverged`
    on NaN/inf, KeyboardInterrupt after checkpointing on SIGINT/SIGTERM.
    """
    run = Run("search", run_dir, resume)
    with run.claimed():
        state = run.saved_state()
        if state is not None:
            config = run.resumed_config(config, MAY_CHANGE_ON_RESUME, IGNORED_ON_RESUME)
        distributed.local_batch_size(config.batch_size)  # refuse a batch that does not split over the ranks
        config = resolve_task(config)  # what config.yaml records: an old run's task gets its name
        space = config.spec.create()
        chips = run_devices(config, space, table, run.folder if state is not None else None)
        table = chips[0].table
        if config.warmup_epochs >= config.epochs:
            logger.warning("warm-up (%d epochs) >= epochs (%d): the architecture logits never train; "
                           "lower --warmup-epochs or raise --epochs", config.warmup_epochs, config.epochs)
        if task is None:
            task = make_task(config.task, space)  # data errors surface before the run writes anything
        search = Search(config, run.folder, space, task, table, chips)
        for device in search.objective.devices:
            if (warning := target_warning(device)) is not None:
                logger.warning(warning)
        if state is not None:
            search.restore(state)
            if search.progress.epoch > config.epochs:
                raise HwnasError(f"this run already did {search.progress.epoch} epochs; pass --epochs >= {search.progress.epoch} to resume it.")
            run.resuming(search)
        run.start(search, config)
        if run.writer and state is None:
            table.save(run.folder.lut)
            for chip in chips[1:]:
                chip.table.save(run.folder.device_lut(chip.name))  # a resumed run reads these copies
        start = time.perf_counter()
        run.drive(search, checkpoint_every=config.checkpoint_every, prefetch=config.prefetch, pin=search.compute.cuda,
                  step_columns=STEP_COLUMNS, on_step=on_step)
        run.finish(search)
        summary = search.write_outputs() or {}
        summary["seconds"] = round(time.perf_counter() - start, 3)
        if run.writer:
            atomic_write_text(run.folder.summary, json.dumps(summary, indent=2) + "\n")
        return SearchResult(run.folder.root, derive(search.net, space.name), summary)


def run_devices(config: SearchConfig, space: SearchSpace, table: LatencyTable | None, resumed: RunDir | None) -> list[Device]:
    """The devices of a run, their tables checked: a resumed run's own copies, else `table` and
    the files `config.tables` names."""
    if resumed is not None:
        table = LatencyTable.load(resumed.lut)
        chips = devices(config, table, lambda ref: LatencyTable.load(resumed.device_lut(ref.name)))
    elif table is None:
        raise ValueError("a fresh search needs a latency table")
    else:
        chips = devices(config, table, lambda ref: LatencyTable.load(ref.path))
    for chip in chips:
        check_table(chip.table, space, config, device=chip is chips[0])
    check_same_network(table, [(d.name, d.table) for d in chips[1:]])
    return chips


def derived_params(net: nn.Module, arch: Architecture) -> int:
    """Parameters of the derived network: the super-net's weights less unchosen candidates (no copy made)."""
    blocks = mixed_choices(net)
    unchosen = sum(count_params(module) for label, block in blocks.items()
                   for name, module in block.candidates.items() if name != arch.choices[label])
    return count_params(net) - unchosen - sum(block.logits.numel() for block in blocks.values())
