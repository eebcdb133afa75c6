"""The search loop (`Search`): train a super-net's weights and architecture logits together.

Every step (an epoch is a fixed number of steps) is the bilevel step of `hwnas.nas.bilevel`:

1. weight step -- AdamW on the candidate weights, minimising the task loss on a
   "train" batch (logits held fixed);
2. architecture step (after the warm-up epochs) -- Adam with its own learning rate on
   the logits phi, minimising the composite objective (`hwnas.nas.objective`) on a
   held-out "arch" batch (weights held fixed): first-order bilevel optimisation
   (DARTS, Liu et al. 2019). With `bilevel=False` (single-level) one "train" batch
   updates both at once.

During warm-up only weights train, so the candidates are worth choosing between
before alpha moves; the task loss averaged over the last warm-up epoch becomes the
reference L_ref that makes mu and lambda relative to the task loss. lambda follows
the run's entropy plan (`hwnas.nas.schedule`), re-planned when a resumed run is extended.

Determinism: batches come from `task.batch(split, seed, epoch, step)` and Gumbel
samples from (seed, epoch, step, phase), so the state after a step is a function of
the state before it. The run skeleton (`hwnas.runs.run`: folder, checkpoints every
`checkpoint_every` steps and at each epoch's end, exact `--resume`, signals, NaN
guard, data-parallel agreement, steps.csv) is shared with `hwnas.runs.training`.

Data parallel (`torchrun`, see `hwnas.runs.distributed`): `batch_size` is the global batch,
each rank trains on its slice; gradients of weights and logits and BatchNorm
statistics are averaged over ranks, so every rank holds the same state; logged losses
are rank means; every checkpoint and the end of the run check that all ranks hold the
same logits; only rank 0 writes files.

Each epoch the derived network (argmax alpha) is frozen from a copy of the super-net,
its BatchNorm statistics recalibrated (`hwnas.nas.batchnorm`), and validated.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from hwnas.runs import distributed

from hwnas.nas import search_outputs
from hwnas.nas.batchnorm import recalibrate
from hwnas.nas.bilevel import Bilevel
from hwnas.runs.checkpoint import rng_state, set_rng_state
from hwnas.nas.combine import COMBINATIONS
from hwnas.runs.compute import auto_threads, compute_for
from hwnas.contracts.config import SearchConfig
from hwnas.nas.devices import Device, devices
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable, predict_ms
from hwnas.nas.objective import DeviceLatency, Objective, Terms, latency_model, normalised_entropy
from hwnas.runs.prefetch import Prefetcher
from hwnas.runs.run import Progress, guard, guard_spike, stop_if_diverged
from hwnas.runs.rundir import RunDir
from hwnas.nas.schedule import CosinePlan, EntropyPlan
from hwnas.contracts.space import Architecture, SearchSpace, freeze
from hwnas.nas.supernet import alpha_matrix, alphas, derive, draw_gumbel, stable_seed, to_supernet
from hwnas.nas.target_hold import Budget, Swap, hold_target
from hwnas.tables.latency_table import fixed_ms

logger = logging.getLogger(__name__)

FORMAT = "hwnas-search"
VERSION = 1
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




@dataclass
class SearchProgress(Progress):
    """The search's own part of the progress record (see `hwnas.runs.run.Progress`)."""

    reference_loss: float | None = None
    warmup_sum: float = 0.0
    warmup_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: alphas and entropy
    entropy_plan: dict[str, float] | None = None  # hwnas.nas.schedule.EntropyPlan, re-planned when a run is extended
    lr_plan: dict[str, float] | None = None  # hwnas.nas.schedule.CosinePlan of the weights, re-planned likewise
    argmax_trail: list[tuple[int, list[str]]] = field(default_factory=list)  # (arch step, argmax) at every change


class Search:
    """The search loop (`hwnas.runs.run.Loop`): the super-net, its two optimisers and the objective.

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
        costs = tuple(DeviceLatency(d.name, latency_model(d.table, self.positions, self.fixed), d.weight, d.target_ms,
                                    config.target_form)
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
        """Threads for a search without --threads, from the base network's work per step (`hwnas.runs.compute`)."""
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
        arch, _ = self.derived_arch()
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

    def derived_arch(self) -> tuple[Architecture, list[Swap]]:
        """The network the search derives: the argmax at every position, then (with targets and `hold_target`)
        the swaps that bring it under every device's target (`hwnas.nas.target_hold`)."""
        arch = derive(self.net, self.space.name)
        budgets = [Budget(d.name, d.table, d.target_ms, fixed_ms(d.table, self.fixed))
                   for d in self.devices if d.target_ms is not None]
        if not (self.config.hold_target and budgets):
            return arch, []
        shapes = {p.label: p.input_shape for p in self.positions}
        return hold_target(arch, alphas(self.net), shapes, budgets)

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

    # -- outputs (`hwnas.nas.search_outputs`) ------------------------------------------

    def device_summary(self, arch: Architecture) -> dict[str, dict[str, Any]]:
        return search_outputs.device_summary(self, arch)

    def summary(self, arch: Architecture, scores: dict[str, float] | None) -> dict[str, Any]:
        return search_outputs.summary(self, arch, scores)

    def write_outputs(self, plots: bool = True) -> dict[str, Any] | None:
        return search_outputs.write_outputs(self, plots)
