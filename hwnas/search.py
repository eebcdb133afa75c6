"""The differentiable search: train a super-net's weights and architecture logits together.

Every step (an epoch is a fixed number of steps):

1. weight step -- AdamW on the candidate weights, minimising the task loss on a
   "train" batch (logits held fixed);
2. architecture step (after the warm-up epochs) -- Adam with its own learning rate on
   the logits phi, minimising the composite objective (`hwnas.objective`) on a
   held-out "arch" batch (weights held fixed). This is first-order bilevel
   optimisation (DARTS, Liu et al. 2019, first-order variant). With
   `bilevel=False` (single-level) one "train" batch updates both at once.

During warm-up only weights train, so the candidates are worth choosing between
before alpha moves; the task loss averaged over the last warm-up epoch becomes the
reference L_ref that makes mu and lambda relative to the task loss.

Determinism: batches come from `task.batch(split, seed, epoch, step)` and Gumbel
samples from (seed, epoch, step, phase), so the state after a step is a function of
the state before it. Checkpoints are written every `checkpoint_every` steps and at
the end of each epoch; `--resume` continues from the latest one exactly (optimisers,
RNG, reference loss, lambda schedule, history).

Data parallel (`torchrun`, see `hwnas.distributed`): `batch_size` is the global batch,
each rank trains on its slice; gradients of weights and logits and BatchNorm
statistics are averaged over ranks, so every rank holds the same state; logged losses
are rank means; every checkpoint and the end of the run check that all ranks hold the
same logits; only rank 0 writes files.

Each epoch the derived network (argmax alpha) is frozen from a copy of the super-net,
its BatchNorm statistics recalibrated (`hwnas.batchnorm`), and validated.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import yaml
from torch import nn

from hwnas import distributed, outdir
from hwnas.batchnorm import recalibrate
from hwnas.commitment import commitment
from hwnas.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from hwnas.compute import compute_for
from hwnas.config import SearchConfig, write_config
from hwnas.cost import count_params
from hwnas.errors import HwnasError
from hwnas.history import plot_alpha, plot_entropy, write_alpha_history
from hwnas.io import atomic_write_text, write_failure
from hwnas.latency import LatencyTable, predict_ms
from hwnas.prefetch import Prefetcher
from hwnas.objective import Objective, Terms, latency_model, normalised_entropy
from hwnas.rundir import RunDir
from hwnas.schedule import EntropyPlan
from hwnas.space import Architecture, SearchSpace, Unit, freeze
from hwnas.supernet import (
    alpha_matrix,
    alphas,
    arch_parameters,
    derive,
    draw_gumbel,
    mixed_choices,
    stable_seed,
    to_supernet,
    weight_parameters,
)

logger = logging.getLogger(__name__)

FORMAT = "hwnas-search"
VERSION = 1
RESUMABLE_CHANGES = {"epochs", "lut", "threads", "prefetch"}  # may differ between a run and its --resume


class SearchDiverged(HwnasError):
    """A loss term or the parameters became NaN/inf; the last good checkpoint is kept."""


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


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    arch: Architecture
    summary: dict[str, Any]


# -- inputs --------------------------------------------------------------------


def task_options(config: SearchConfig) -> dict[str, Any]:
    """The options given to `space.task` (unset ones are left to the task's defaults)."""
    return {k: v for k, v in (("data", config.data), ("crop", config.crop), ("sigma", config.sigma)) if v is not None}


def lookup_units(space: SearchSpace, image_size: int) -> list[Unit]:
    """Every table key a search of `space` needs: candidates per position shape, and fixed parts."""
    keys = {(name, p.input_shape) for p in space.positions(image_size) for name in p.candidates}
    with torch.device("meta"):  # only the keys matter: no weights allocated
        fixed = space.fixed_units(image_size)
    return [Unit(name, shape, None) for name, shape in sorted(keys)] + fixed


def check_table(table: LatencyTable, space: SearchSpace, config: SearchConfig) -> None:
    """Refuse a table for another space, configuration, size or device, or one lacking entries."""
    table.check(space=space.name, fingerprint=space.fingerprint(), image_size=config.image_size, device=config.device,
                backend=config.backend)
    table.require(lookup_units(space, config.image_size))


def accelerator(config: SearchConfig) -> torch.device:
    if config.accelerator == "cuda" and not torch.cuda.is_available():
        raise HwnasError("--accelerator cuda was given but no CUDA device is visible; pass --accelerator cpu.")
    return torch.device(config.accelerator)


def read_config(run: RunDir) -> SearchConfig:
    try:
        return SearchConfig.model_validate(yaml.safe_load(run.config.read_text()))
    except Exception:
        raise HwnasError(f"{run.config} is not a search config written by `hwnas search`; choose the run folder as --out.") from None


def check_resumable(saved: SearchConfig, given: SearchConfig) -> None:
    """A resumed run must be the same search (only `epochs` may grow)."""
    a, b = saved.model_dump(mode="json"), given.model_dump(mode="json")
    for key in a:
        if key not in RESUMABLE_CHANGES and a[key] != b.get(key):
            raise HwnasError(
                f"this run was started with {key.replace('_', '-')}={a[key]!r}, not {b.get(key)!r}; "
                "resume with the run's own settings (omit the flag) or start a new run with another --out."
            )


def load_supernet(run_dir: str | Path, map_location: str | torch.device = "cpu") -> tuple[SearchSpace, nn.Module]:
    """(space, super-net) of a search run, with the weights and logits of its latest checkpoint.

    The super-net is in eval mode; `hwnas.freeze(net, Architecture.load(run_dir / "arch.json"))`
    gives the derived network with the searched weights of the chosen candidates.
    """
    run = RunDir(Path(run_dir))
    if not run.config.is_file():
        raise HwnasError(f"{run.root} is not a search run (no config.yaml); pass the --out folder of `hwnas search`.")
    config = read_config(run)
    state = load_checkpoint(run.checkpoints, map_location=map_location)
    if state is None:
        raise HwnasError(f"{run.root} has no checkpoint yet; finish or resume its search first (`hwnas search --out {run.root} --resume`).")
    space = config.spec.create()
    net = to_supernet(space.build(), config.mode, config.temperature)
    net.load_state_dict(state["supernet"])
    return space, net.eval()


# -- the loop ------------------------------------------------------------------


@dataclass
class _Progress:
    """Everything besides modules and optimisers that a checkpoint must restore."""

    epoch: int = 0  # the next step to run is (epoch, step)
    step: int = 0
    global_step: int = 0
    reference_loss: float | None = None
    warmup_sum: float = 0.0
    warmup_count: int = 0
    sums: dict[str, float] = field(default_factory=dict)  # this epoch's term sums
    counts: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    entropy_plan: dict[str, float] | None = None  # hwnas.schedule.EntropyPlan, re-planned when a run is extended
    argmax_trail: list[tuple[int, list[str]]] = field(default_factory=list)  # (arch step, argmax) at every change

    def state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "_Progress":
        return cls(**{k: state[k] for k in cls.__dataclass_fields__ if k in state})

    def add(self, name: str, value: float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}


class Search:
    """One search run: the super-net, its optimisers, the objective and the run directory."""

    def __init__(self, config: SearchConfig, run: RunDir, space: SearchSpace, task, table: LatencyTable):
        self.config, self.run, self.space, self.task, self.table = config, run, space, task, table
        self.compute = compute_for(config.accelerator, config.threads)
        self.device = self.compute.device
        self.writer = distributed.is_main()
        self.positions = space.positions(config.image_size)
        self.fixed = space.fixed_units(config.image_size)
        latency = latency_model(table, self.positions, self.fixed)
        self.objective = Objective(latency.to(self.device), config.latency_weight, config.target_ms)
        torch.manual_seed(config.seed)
        self.net = self.compute.module(to_supernet(space.build(), config.mode, config.temperature))
        self.labels = [p.label for p in self.positions]
        self.weights, self.logits = weight_parameters(self.net), arch_parameters(self.net)
        # Candidates that did not run this step have grad None: AdamW skips them (no momentum, no decay).
        self.weight_opt = torch.optim.AdamW(self.weights, lr=config.lr, weight_decay=config.weight_decay)
        self.arch_opt = torch.optim.Adam(self.logits, lr=config.arch_lr, betas=(0.5, 0.999))
        self.progress = _Progress()
        self.plan_entropy()
        self.stop = _StopRequest()
        self.steps_log: _StepsCsv | None = None
        self.loader: Prefetcher | None = None

    # -- checkpoints -----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.model_dump(mode="json"),
            "supernet": self.net.state_dict(),
            "weight_optimizer": self.weight_opt.state_dict(),
            "arch_optimizer": self.arch_opt.state_dict(),
            "rng": rng_state(self.device),
            "progress": self.progress.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("format") != FORMAT:
            raise HwnasError(f"the checkpoint in {self.run.checkpoints} is not a search checkpoint; choose another --out.")
        self.net.load_state_dict(state["supernet"])
        self.weight_opt.load_state_dict(state["weight_optimizer"])
        self.arch_opt.load_state_dict(state["arch_optimizer"])
        set_rng_state(state["rng"], self.device)
        self.progress = _Progress.from_state(state["progress"])
        self.plan_entropy()

    def checkpoint(self) -> None:
        bad = _nonfinite_parameters(self.net, set(map(id, self.logits)))
        if bad:
            self._diverged(f"the {bad} became NaN or infinite after the optimiser step")
        distributed.all_gather_check(torch.cat([t.detach() for t in self.logits]), "architecture logits")
        if self.writer:
            if self.steps_log is not None:  # rows first: a kill between the two leaves rows a resume drops, none missing
                self.steps_log.flush()
            save_checkpoint(self.run.checkpoints, self.state())

    def check_ranks_agree(self, when: str) -> None:
        """Raise `RanksDisagree` unless every rank holds the same position, weights and logits (no-op in one process)."""
        if not distributed.is_distributed():
            return
        p = self.progress
        distributed.all_gather_check(torch.tensor([p.epoch, p.step, p.global_step]), f"positions in the run ({when})")
        distributed.all_gather_check(distributed.state_digest(self.net), f"super-net weights and logits ({when})")
        logger.info("%s identical on all %d ranks", when, distributed.world_size())

    def _diverged(self, what: str) -> None:
        p = self.progress
        last = self.run.checkpoints / "last.pt"
        kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint had been written yet"
        raise SearchDiverged(
            f"{what} at epoch {p.epoch}, step {p.step}; {kept}; lower --lr/--arch-lr "
            "(or --latency-weight/--entropy-weight) and resume with --resume."
        )

    # -- steps -------------------------------------------------------------------

    def arch_steps_planned(self) -> int:
        """Architecture steps the run has planned in all (after warm-up)."""
        c = self.config
        return max(0, c.epochs - c.warmup_epochs) * c.steps_per_epoch

    def arch_steps_done(self) -> int:
        """Architecture steps done before the current one (t in lambda(t))."""
        return max(0, self.progress.global_step - self.config.warmup_epochs * self.config.steps_per_epoch)

    def plan_entropy(self) -> None:
        """A fresh plan over the run's length, or, for an extended run, one that continues from the current lambda."""
        c, p = self.config, self.progress
        if p.entropy_plan is None:
            plan = EntropyPlan.fresh(c.entropy_weight, c.entropy_growth, self.arch_steps_planned())
        else:
            plan = EntropyPlan(**p.entropy_plan).extended(self.arch_steps_done(), self.arch_steps_planned())
        p.entropy_plan = plan.as_dict()
        self.entropy = plan

    def lam(self) -> float:
        """lambda for the current architecture step."""
        return self.entropy.at(self.arch_steps_done())

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
            p.reference_loss = distributed.mean([float(task_loss.detach())])[0]
            if not (p.reference_loss > 0 and math.isfinite(p.reference_loss)):
                self._diverged(f"the task loss is {p.reference_loss} and cannot serve as the reference scale")
        return self.objective(task_loss, p.reference_loss, alpha_matrix(self.net, self.labels), self.lam())

    def weight_step(self) -> float:
        with _frozen(self.logits):
            loss = self.forward("train")
        self._guard_task(loss)
        self.weight_opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.weights)
        self.weight_opt.step()
        return float(loss.detach())

    def arch_step(self) -> Terms:
        with _frozen(self.weights):
            terms = self.terms(self.forward("arch"))
        self._guard(terms)
        self.arch_opt.zero_grad(set_to_none=True)
        terms.total.backward()
        distributed.average_gradients(self.logits)
        self.arch_opt.step()
        self.note_argmax()
        return terms

    def note_argmax(self) -> None:
        """Append to the argmax trail when any position's argmax changed (for the commitment report)."""
        current = list(derive(self.net, self.space.name).choices.values())
        trail = self.progress.argmax_trail
        if not trail or trail[-1][1] != current:
            trail.append((self.arch_steps_done() + 1, current))

    def joint_step(self) -> tuple[float, Terms]:
        """Single-level: one "train" batch, the full objective, both optimisers."""
        loss = self.forward("train")
        self._guard_task(loss)
        terms = self.terms(loss)
        self._guard(terms)
        self.weight_opt.zero_grad(set_to_none=True)
        self.arch_opt.zero_grad(set_to_none=True)
        terms.total.backward()
        distributed.average_gradients(self.weights + self.logits)
        self.weight_opt.step()
        self.arch_opt.step()
        self.note_argmax()
        return float(loss.detach()), terms

    def _guard_task(self, loss: torch.Tensor) -> None:
        finite = bool(torch.isfinite(loss.detach()))
        if distributed.any_rank(not finite):  # decided together: no rank left waiting in a collective
            self._diverged(f"the task loss became {float(loss.detach())}" if not finite
                           else "the task loss became NaN or infinite on another rank")

    def _guard(self, terms: Terms) -> None:
        name = terms.first_nonfinite()
        if distributed.any_rank(name is not None):
            self._diverged(f"the {name} term became {float(dict(terms.items())[name].detach())}" if name is not None
                           else "a loss term became NaN or infinite on another rank")

    def step(self) -> StepLog:
        p, c = self.progress, self.config
        searching = p.epoch >= c.warmup_epochs
        terms = None
        if searching and not c.bilevel:
            train_loss, terms = self.joint_step()
        else:
            train_loss = self.weight_step()
            if searching:
                terms = self.arch_step()
        distributed.average_buffers(self.net)  # BatchNorm statistics: the same on every rank
        local = [train_loss] + ([] if terms is None else [float(v.detach()) for _, v in terms.items()])
        train_loss, *term_values = distributed.mean(local)  # what is logged: the mean over ranks
        p.add("train_loss", train_loss)
        if not searching and p.epoch == c.warmup_epochs - 1:
            p.warmup_sum += train_loss
            p.warmup_count += 1
        log = StepLog(p.epoch, p.step, c.steps_per_epoch, p.global_step, train_loss)
        if terms is not None:
            values = {name: v for (name, _), v in zip(terms.items(), term_values)}
            for name, v in values.items():
                p.add(name, v)
            with torch.no_grad():
                expected = float(self.objective.latency.expected_ms(alpha_matrix(self.net, self.labels)))
            log = StepLog(p.epoch, p.step, c.steps_per_epoch, p.global_step, train_loss, expected_ms=expected, **values)
        return log

    # -- epochs ------------------------------------------------------------------

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
               "lambda": self.lam() if p.epoch >= c.warmup_epochs else 0.0}
        row.update({k: p.means().get(k) for k in ("train_loss", "task", "latency", "entropy", "total")})
        row.update({"alpha_entropy": entropy, "expected_ms": expected,
                    "derived_ms": predict_ms(self.table, self.positions, self.fixed, arch),
                    **{f"val_{k}": v for k, v in scores.items()}})
        p.metrics.append(row)
        logger.info("epoch %d: entropy %.3f, expected %.4g ms, derived %.4g ms, val %s", p.epoch, entropy, expected,
                    row["derived_ms"], ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        p.epoch, p.step, p.sums, p.counts = p.epoch + 1, 0, {}, {}

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

    def run_loop(self, on_step: Callable[[StepLog], None] | None) -> None:
        with Prefetcher(self.make_batch, self.batch_keys(), depth=self.config.prefetch, pin=self.compute.cuda) as loader:
            self.loader = loader
            try:
                self._loop(on_step)
            finally:
                self.loader = None

    def _loop(self, on_step: Callable[[StepLog], None] | None) -> None:
        c, p = self.config, self.progress
        while p.epoch < c.epochs:
            log = self.step()
            self.steps_log.write(log)
            if on_step is not None:
                on_step(log)
            p.global_step += 1
            saved = False
            if p.step + 1 == c.steps_per_epoch:
                self.end_epoch()
                self.checkpoint()
                self.write_outputs(plots=False)
                saved = True
            else:
                p.step += 1
                if p.global_step % c.checkpoint_every == 0:
                    self.checkpoint()
                    saved = True
            if distributed.any_rank(self.stop.requested):  # every rank stops after the same step
                if not saved:
                    self.checkpoint()
                self.write_outputs()
                if self.writer:
                    logger.warning("interrupted; checkpoint (next: epoch %d, step %d) written to %s; continue with "
                                   "`hwnas search --out %s --resume`", p.epoch, p.step, self.run.checkpoints / "last.pt",
                                   self.run.root)
                raise KeyboardInterrupt

    # -- outputs ---------------------------------------------------------------

    def summary(self, arch: Architecture, scores: dict[str, float] | None) -> dict[str, Any]:
        c, p, lat = self.config, self.progress, self.objective.latency
        chosen = alphas(self.net)
        firsts = {pos.candidates[0] for pos in self.positions}
        predicted = predict_ms(self.table, self.positions, self.fixed, arch)
        return {
            "space": self.space.name,
            "preset": self.space.preset,
            "mode": c.mode,
            "latency_weight": c.latency_weight,
            "target_ms": c.target_ms,
            "entropy_weight": c.entropy_weight,
            "entropy_growth": c.entropy_growth,
            "arch_lr": c.arch_lr,
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
                              "image_size": self.table.meta.image_size},
        }

    def write_outputs(self, plots: bool = True) -> dict[str, Any] | None:
        """Rewrite every derived file from the in-memory state (no appends: resume-safe).

        Plots take about a second, so the loop redraws them only at the end or on a stop.
        """
        if not self.writer:
            return None
        p, run = self.progress, self.run
        arch = derive(self.net, self.space.name)
        arch.save(run.arch)
        write_alpha_history(run.alpha_history, p.history)
        atomic_write_text(run.metrics, _csv(p.metrics))
        if plots:
            title = f"{self.space.name} ({self.space.preset or 'custom'}), {self.config.mode}, mu={self.config.latency_weight}"
            plot_alpha(run.alpha_png, p.history, title=title)
            plot_entropy(run.entropy_png, p.history)
        scores = {k.removeprefix("val_"): v for k, v in p.metrics[-1].items() if k.startswith("val_")} if p.metrics else None
        summary = self.summary(arch, scores)
        atomic_write_text(run.summary, json.dumps(summary, indent=2) + "\n")
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
    """`_run_search` with `run_dir` claimed for the whole run (marker, lock; rank 0 only: `hwnas.outdir`)."""
    with outdir.claim(Path(run_dir), "search", resume, via=distributed.from_main):
        return _run_search(config, run_dir, table, resume=resume, on_step=on_step, task=task)


def _run_search(
    config: SearchConfig,
    run_dir: str | Path,
    table: LatencyTable | None = None,
    *,
    resume: bool = False,
    on_step: Callable[[StepLog], None] | None = None,
    task=None,
) -> SearchResult:
    """Search `config.spec` steered by `table`, writing the run directory `run_dir`.

    Fresh: `table` is required; it is checked against the space and copied into the
    run. With `resume` and a checkpoint in `run_dir`: the run's own config and table
    copy are used (`config` must agree except for `epochs`, which may grow), and the
    search continues exactly where the checkpoint left it; with no checkpoint yet it
    starts fresh with a warning. `task` is the space's task built from
    `task_options(config)`, when the caller already has it (it holds decoded images). Raises `HwnasError` for a user's mistake,
    `SearchDiverged` on NaN/inf, KeyboardInterrupt after checkpointing on SIGINT/SIGTERM.
    """
    run = RunDir(Path(run_dir))
    run.check_writable(resume)
    distributed.local_batch_size(config.batch_size)  # refuse a batch that does not split over the ranks
    state = None
    if resume:
        state = load_checkpoint(run.checkpoints)
        if state is None:
            logger.warning("--resume: no checkpoint in %s yet; starting a fresh search", run.root)
    if state is not None:
        check_resumable(read_config(run), config)
        table = LatencyTable.load(run.lut)
    elif table is None:
        raise ValueError("a fresh search needs a latency table")
    space = config.spec.create()
    check_table(table, space, config)
    if config.warmup_epochs >= config.epochs:
        logger.warning("warm-up (%d epochs) >= epochs (%d): the architecture logits never train; "
                       "lower --warmup-epochs or raise --epochs", config.warmup_epochs, config.epochs)
    if task is None:
        task = space.task(**task_options(config))  # data errors surface before anything is written
    search = Search(config, run, space, task, table)
    if state is not None:
        search.restore(state)
        if search.progress.epoch > config.epochs:
            raise HwnasError(f"this run already did {search.progress.epoch} epochs; pass --epochs >= {search.progress.epoch} to resume it.")
        logger.info("resuming %s at epoch %d, step %d", run.root, search.progress.epoch, search.progress.step)
    search.check_ranks_agree("starting state")  # also the barrier before rank 0 writes anything
    if search.writer:
        run.root.mkdir(parents=True, exist_ok=True)
        write_config(config, run.config)
        if state is None:
            table.save(run.lut)
    start = time.perf_counter()
    with _StepsCsv(run.steps, search.progress.global_step, search.writer) as steps_log, search.stop.installed():
        search.steps_log = steps_log
        search.run_loop(on_step)
    search.check_ranks_agree("final state")
    summary = search.write_outputs() or {}
    summary["seconds"] = round(time.perf_counter() - start, 3)
    if search.writer:
        atomic_write_text(run.summary, json.dumps(summary, indent=2) + "\n")
    return SearchResult(run.root, derive(search.net, space.name), summary)


# -- helpers -------------------------------------------------------------------


@contextlib.contextmanager
def _frozen(params: list[nn.Parameter]) -> Iterator[None]:
    """Hold `params` out of the autograd graph (their gradients are neither needed nor computed)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def derived_params(net: nn.Module, arch: Architecture) -> int:
    """Parameters of the derived network: the super-net's weights less unchosen candidates (no copy made)."""
    blocks = mixed_choices(net)
    unchosen = sum(count_params(module) for label, block in blocks.items()
                   for name, module in block.candidates.items() if name != arch.choices[label])
    return count_params(net) - unchosen - sum(block.logits.numel() for block in blocks.values())


def _nonfinite_parameters(net: nn.Module, logit_ids: set[int]) -> str | None:
    with torch.no_grad():
        for p in net.parameters():
            if not bool(torch.isfinite(p).all()):
                return "architecture logits" if id(p) in logit_ids else "network weights"
    return None


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


class _StepsCsv:
    """steps.csv: one row per step, appended; on resume, rows after the checkpoint are dropped first."""

    FIELDS = ["global_step", "epoch", "step", "train_loss", "task", "latency", "entropy", "total", "expected_ms"]

    def __init__(self, path: Path, resume_from: int, enabled: bool):
        self.path, self.resume_from, self.enabled, self.fh = path, resume_from, enabled, None

    def __enter__(self) -> "_StepsCsv":
        if not self.enabled:
            return self
        kept = [self._header()]
        if self.resume_from > 0 and self.path.exists():
            kept += [line + "\n" for line in self.path.read_text().splitlines()[1:]
                     if line and int(line.split(",")[0]) < self.resume_from]
        atomic_write_text(self.path, "".join(kept))
        self.fh = open(self.path, "a")
        return self

    def _header(self) -> str:
        return ",".join(self.FIELDS) + "\n"

    def write(self, log: StepLog) -> None:
        if self.fh is not None:
            try:
                self.fh.write(",".join("" if (v := getattr(log, f)) is None else repr(v) for f in self.FIELDS) + "\n")
            except OSError as err:  # a full disk: name the file (the OS error alone does not)
                raise write_failure(self.path, err) from None

    def flush(self) -> None:
        if self.fh is not None:
            try:
                self.fh.flush()
            except OSError as err:
                raise write_failure(self.path, err) from None

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            self.fh.close()


class _StopRequest:
    """SIGINT/SIGTERM ask the loop to stop after the current step (checkpoint first); a second one aborts at once."""

    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("stopping after this step to write a checkpoint (press Ctrl-C again to abort at once)")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
