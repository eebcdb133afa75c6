"""Training a derived network: fine-tuning after a search, or a baseline from scratch.

The method's last step (DESIGN.md step 6): the discrete network chosen by the search
inherits the super-net weights of its chosen candidates (`--init-from`), BatchNorm
statistics are re-estimated on the derived network (they were estimated on mixed or
sampled paths, see `hwnas.nas.batchnorm`), and the network is fine-tuned. A uniform
network (all one candidate, e.g. NAFNet = all `naf`) trains from scratch under the
same budget for comparison.

Loop: AdamW (NAFNet's betas 0.9/0.9), cosine learning rate from lr to min_lr over the
run -- over steps for `epochs`, over elapsed training time for `time_budget`.
Batches come from `Task.batch(seed, epoch, step)`, a pure function, so a resumed run
continues exactly: `--resume` restores weights, optimiser, position and metrics from
`checkpoints/last.pt` and the next steps see the same data as an uninterrupted run
(bitwise with `epochs`; a time budget ends at a time, which no run repeats exactly).
The run skeleton (`hwnas.runs.run`: folder, checkpoints every `checkpoint_every` steps and
at each epoch's end, resume, SIGINT/SIGTERM, NaN guard, data-parallel agreement) is
shared with `hwnas.nas.searching`.

Data parallel (`torchrun`, see `hwnas.runs.distributed`): `batch_size` is the global batch,
each rank trains on its slice, gradients and BatchNorm statistics are averaged over
ranks (every rank holds the same weights, checked at the start and the end), the
logged loss is the rank mean, a step's time is the slowest rank's (time budgets end
together), and only rank 0 writes files.

Run folder (`--out`, `hwnas.runs.rundir`):

    config.yaml          resolved TrainConfig (space spec and architecture included)
    arch.json            the architecture trained
    checkpoints/last.pt  every `checkpoint_every` steps and each epoch (prev.pt before it)
    metrics.csv          per epoch: steps, train loss, lr, training seconds, val_<metric>
    model.pt             the final network (hwnas.deploy.modelfile), written at the end
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from hwnas.runs import distributed, outdir
from hwnas.runs.checkpoint import rng_state, set_rng_state
from hwnas.runs.compute import auto_threads, compute_for
from hwnas.contracts.config import SpaceSpec, TaskSpec, TrainConfig, build_config, move_task_fields
from hwnas.contracts.errors import HwnasError, Setting, naming, setting
from hwnas.deploy.modelfile import CHECKPOINT_FORMAT, ModelFile, from_payload, load_weights, save_model
from hwnas.runs.prefetch import Prefetcher
from hwnas.runs.rows import write_rows
from hwnas.runs.run import Progress, Run, guard, guard_spike, read_run_config, resume_config
from hwnas.runs.rundir import RunDir
from hwnas.nas.schedule import cosine_lr
from hwnas.contracts.space import Architecture, SearchSpace, freeze, position_names
from hwnas.contracts.task import Task, make_task, resolve_task, resolved

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2  # 1: progress without sums/metrics (read too, see `_progress_state`)
MAY_CHANGE_ON_RESUME = {"threads", "prefetch"}  # compute settings never change results


@dataclass(frozen=True)
class StepInfo:
    """What the progress callback sees after every step."""

    epoch: int
    step: int
    global_step: int
    total_steps: int | None  # None under a time budget
    elapsed_s: float
    budget_s: float | None
    loss: float
    lr: float


@dataclass(frozen=True)
class TrainResult:
    """What `hwnas.train` returns: the run folder, the model file, steps and seconds trained, the last epoch's row."""

    out: Path
    model: Path
    steps: int
    train_seconds: float
    metrics: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "model": str(self.model), "steps": self.steps,
                "train_seconds": self.train_seconds, "metrics": self.metrics}


# -- resolving what to train -----------------------------------------------------------

def plan(
    out: str | Path,
    *,
    resume: bool = False,
    spec: SpaceSpec | None = None,
    arch: Architecture | None = None,
    uniform: str | None = None,
    init_from: str | Path | None = None,
    **settings: Any,
) -> TrainConfig:
    """The resolved `TrainConfig` for a run in `out`, from what the user gave (None = not given).

    Fresh run: the space comes from `spec`, else from the --init-from run, else the
    architecture's space with its default preset; the architecture from `arch`,
    `uniform`, or the --init-from run's arch.json; the task's name from `task`, else
    the --init-from run's (its options are not inherited), else the space's default
    (`hwnas.contracts.task.resolve_task`, which also sets the network's output scale). With
    `resume` and a config.yaml in `out`, that config is kept and anything given that
    contradicts it is refused (`hwnas.runs.run.resume_config`).
    """
    folder = RunDir(Path(out))
    outdir.check(folder.root, "train", resume)  # a file, another run, foreign files: refused before any write
    settings = move_task_fields(settings)
    if sum(x is not None for x in (arch, uniform)) > 1:
        raise naming("give either {arch} or {uniform}, not both.", arch=setting("arch"), uniform=setting("uniform"))
    if init_from is not None:
        init_from = str(Path(init_from).resolve())
    if resume and folder.config.is_file():
        return _resumed(folder, spec, arch, uniform, init_from, settings)
    task = TaskSpec.model_validate(settings.pop("task", None) or {})
    if init_from is not None:
        run_spec, run_arch, run_task = search_run_spec(init_from)
        task = task if task.name is not None else task.model_copy(update={"name": run_task.name})
        if spec is not None and spec != run_spec:
            raise naming(f"{{init_from}} was searched in {_describe(run_spec)}, not {_describe(spec)}; "
                         "drop {spec} (it comes from the run).", init_from=init_from,
                         spec=Setting("spec", "--space/--preset/--option"))
        spec = run_spec
        if arch is None and uniform is None:
            arch = run_arch
    if arch is None and uniform is None:
        raise naming("nothing to train: pass {arch}, {uniform} or {init_from}.", arch=setting("arch", python="arch (an arch.json)", flag="--arch arch.json"),
                     uniform=setting("uniform", python="uniform (a candidate)", flag="--uniform CANDIDATE"),
                     init_from=setting("init_from", python="init_from (a search run)", flag="--init-from SEARCH_RUN"))
    if spec is None:
        spec = SpaceSpec(space=arch.space) if arch is not None else SpaceSpec()
    task, spec = resolved(task, spec)
    space = spec.create()
    if uniform is not None:
        arch = _uniform(space, uniform)
    arch.check(space.name, position_names(_meta_net(space)))
    return build_config(TrainConfig, spec=spec, arch=arch.model_dump(), init_from=init_from, task=task,
                        **{k: v for k, v in settings.items() if v is not None})


def _resumed(folder: RunDir, spec, arch, uniform, init_from, settings) -> TrainConfig:
    """The run's own config; what was given must agree with it (`hwnas.runs.run.resume_config`)."""
    saved = read_run_config(folder.config, TrainConfig, "train")
    if uniform is not None:
        arch = _uniform(saved.spec.create(), uniform)
    given = {**settings, "spec": spec, "arch": None if arch is None else arch.model_dump(), "init_from": init_from}
    return resume_config(saved, given, may_change=MAY_CHANGE_ON_RESUME, root=folder.root)


def _uniform(space: SearchSpace, candidate: str) -> Architecture:
    return Architecture.uniform(space.name, position_names(_meta_net(space)), candidate)


def _describe(spec: SpaceSpec) -> str:
    extra = f" with options {spec.options}" if spec.options else ""
    return f"space {spec.space!r} preset {spec.preset!r}{extra}"


def _meta_net(space: SearchSpace) -> nn.Module:
    with torch.device("meta"):
        return space.build()


# -- search runs -----------------------------------------------------------------------

def search_run_spec(run_dir: str | Path) -> tuple[SpaceSpec, Architecture | None, TaskSpec]:
    """The space spec, derived architecture (arch.json, if written yet) and task of a search run."""
    from hwnas.nas.search_setup import read_config

    run = RunDir(Path(run_dir))
    if not run.config.is_file():
        raise naming(f"{run.root} is not a search run (no config.yaml); pass the {{out}} folder of a search.", out=setting("out"))
    config = resolve_task(read_config(run.root))  # a run written before tasks were plugins: its space's default
    return config.spec, (Architecture.load(run.arch) if run.arch.is_file() else None), config.task


def inherit(run_dir: str | Path, arch: Architecture) -> nn.Module:
    """The derived network with its chosen candidates' weights from a search run's super-net.

    `hwnas.nas.searching.load_supernet` rebuilds the super-net from the run's latest checkpoint;
    `freeze` puts each chosen candidate -- weights, and BN statistics that
    `Trainer.recalibrate` then re-estimates -- at its position's module path.
    """
    from hwnas.nas.search_setup import load_supernet

    _, supernet = load_supernet(run_dir)
    return freeze(supernet, arch)


# -- the loop ----------------------------------------------------------------------------

@dataclass
class TrainProgress(Progress):
    """The training run's own part of the progress record (see `hwnas.runs.run.Progress`)."""

    FIRST_EPOCH: ClassVar[int] = 1  # metrics.csv numbers a training run's epochs from 1

    elapsed_s: float = 0.0  # seconds of training steps (validation and checkpoints not counted)


class Trainer:
    """The training loop (`hwnas.runs.run.Loop`): one network, AdamW, the cosine schedule."""

    ADVICE: ClassVar[str] = "lower --lr and start a new run with another --out"

    def __init__(self, config: TrainConfig, folder: RunDir, space: SearchSpace, task: Task, state: dict | None):
        self.config, self.folder, self.task = config, folder, task
        self.arch = config.architecture()
        self.compute = compute_for(config.accelerator, config.threads or self.auto_threads(space, task))
        self.device = self.compute.device
        self.budget_s = None if config.time_budget is None else config.time_budget * 60.0
        self.total_steps = None if config.epochs is None else config.epochs * config.steps_per_epoch
        self.progress = TrainProgress()
        self.loader: Prefetcher | None = None
        torch.manual_seed(config.seed)
        if state is not None:
            net = self._from_checkpoint(state, space)
        elif config.init_from is not None:
            net = inherit(config.init_from, self.arch)
        else:
            net = freeze(space, self.arch)
        self.net = self.compute.module(net)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=config.lr, betas=(0.9, 0.9), weight_decay=config.weight_decay)
        if state is not None:
            self.opt.load_state_dict(state["optimizer"])
            self.progress = TrainProgress.from_state(_progress_state(state))
            set_rng_state(state["rng"], self.device)
        elif config.init_from is not None:
            self.recalibrate()
        self.net.train()

    def auto_threads(self, space: SearchSpace, task: Task) -> int | None:
        """Threads for a run without --threads, from the network's work per step (`hwnas.runs.compute`)."""
        with torch.device("meta"):
            net = freeze(space, self.arch)
        x = task.batch("train", seed=0, epoch=0, step=0, batch_size=1)[0]
        return auto_threads(self.config.accelerator, net, (self.config.batch_size, *x.shape[1:]))

    def _from_checkpoint(self, state: dict, space: SearchSpace) -> nn.Module:
        source = str(self.folder.checkpoints / "last.pt")
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") not in (1, CHECKPOINT_VERSION):
            raise HwnasError(f"{self.folder.checkpoints} holds no hwnas training checkpoint; start a new run with another --out.")
        model = from_payload(state["model"], source=source)
        if model.arch != self.arch or model.spec != self.config.spec:
            raise HwnasError(
                f"the checkpoint in {self.folder.checkpoints} is for another space or architecture than "
                f"{self.folder.config}; start a new run with another --out."
            )
        net = freeze(space, self.arch)
        load_weights(net, model.state_dict, source=source)
        return net

    def recalibrate(self) -> None:
        from hwnas.nas.batchnorm import recalibrate

        n = self.config.recalibration_batches
        batches = (self.compute.tensor(self.make_batch((-1, i))[0]) for i in range(n))  # whole batches: every rank the same
        layers = recalibrate(self.net, batches, self.device) if n else 0
        if layers:
            log.info("recalibrated %d BatchNorm layers on %d batches", layers, n)

    # -- checkpoints -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "model": self.model_file().payload(), "optimizer": self.opt.state_dict(),
            "progress": self.progress.state(), "rng": rng_state(self.device),
            "config": self.config.model_dump(mode="json"),
        }

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"network weights": list(self.net.parameters())}

    def agreement(self) -> None:
        return None  # the whole state is compared at the start and the end (`hwnas.runs.run.Run.agree`)

    # -- batches and steps -------------------------------------------------------

    def make_batch(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, step = key
        return self.task.batch("train", seed=self.config.seed, epoch=epoch, step=step, batch_size=self.config.batch_size)

    def batch_keys(self) -> Iterator[tuple[int, int]]:
        """Every (epoch, step) from here on (a time budget may stop earlier; then the rest is never asked for)."""
        epoch, step = self.progress.epoch, self.progress.step
        while self.config.epochs is None or epoch < self.config.epochs:
            for s in range(step, self.config.steps_per_epoch):
                yield (epoch, s)
            epoch, step = epoch + 1, 0

    def batch(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The (input, target) batch of (epoch, step), sharded to this rank and on the device."""
        x, y = self.loader.get(key) if self.loader is not None else self.make_batch(key)
        return self.compute.tensor(distributed.shard(x)), self.compute.tensor(distributed.shard(y))

    def lr(self) -> float:
        p = self.progress
        done = p.elapsed_s / self.budget_s if self.budget_s is not None else p.global_step / self.total_steps
        return cosine_lr(done, self.config.lr, self.config.min_lr)

    def step(self) -> StepInfo:
        p = self.progress
        start = time.perf_counter()
        lr = self.lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, y = self.batch((p.epoch, p.step))
        with self.compute.forward():
            out = self.net(x)
        loss = self.task.loss(out.float(), y)
        guard([("training loss", loss)], p, self.folder.checkpoints, self.ADVICE)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.net.parameters())
        self.opt.step()
        distributed.average_buffers(self.net)
        value = distributed.mean([float(loss.item())])[0]
        guard_spike(value, p, self.folder.checkpoints, self.ADVICE)
        p.elapsed_s += distributed.maximum(time.perf_counter() - start)
        p.add("train_loss", value)
        return StepInfo(p.epoch, p.step + 1, p.global_step + 1, self.total_steps, p.elapsed_s, self.budget_s, value, lr)

    # -- epochs --------------------------------------------------------------------

    def out_of_time(self) -> bool:
        return self.budget_s is not None and self.progress.elapsed_s >= self.budget_s

    def epoch_over(self) -> bool:
        return self.progress.step >= self.config.steps_per_epoch or self.out_of_time()

    def finished(self) -> bool:
        return self.out_of_time() if self.budget_s is not None else self.progress.epoch >= self.config.epochs

    def end_epoch(self) -> None:
        p = self.progress
        scores = self.task.validate(self.net, self.device)
        self.net.train()
        row = {"epoch": p.epoch + 1, "steps": p.step,
               "train_loss": p.sums.get("train_loss", 0.0) / max(p.counts.get("train_loss", 0), 1), "lr": self.lr(),
               "train_seconds": round(p.elapsed_s, 3)}
        row.update({f"val_{k}": float(v) for k, v in scores.items()})
        p.metrics.append(row)
        p.next_epoch()
        log.debug("epoch %d: %s", row["epoch"], ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k.startswith("val_")))

    # -- outputs -------------------------------------------------------------------

    def write_outputs(self, plots: bool = True) -> None:
        if self.progress.metrics:  # metrics.csv appears with the first epoch's row
            write_rows(self.folder.metrics, self.progress.metrics)

    def model_file(self) -> ModelFile:
        p = self.progress
        info = {"steps": p.global_step, "train_seconds": p.elapsed_s, "init_from": self.config.init_from or ""}
        if p.metrics:
            info.update({k: v for k, v in p.metrics[-1].items() if k.startswith("val_")})
        return ModelFile(self.config.spec, self.arch, self.net.state_dict(), info, task=self.config.task)


def _progress_state(state: dict[str, Any]) -> dict[str, Any]:
    """The progress record of a checkpoint; version 1 kept the loss sum and the metrics beside it."""
    progress = dict(state["progress"])
    if "loss_sum" in progress:
        total, count = progress.pop("loss_sum"), progress.pop("loss_count")
        progress.update(sums={"train_loss": total} if count else {}, counts={"train_loss": count} if count else {},
                        metrics=list(state.get("metrics", [])))
    return progress


def run_training(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    task: Task | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train `config`'s network in the run folder `out` (see the module docstring).

    `task` overrides the task built from `config.task` (library use and tests).
    `on_step` / `on_epoch` receive a `StepInfo` / the epoch's metrics row (progress
    bars); an exception they raise stops the run after the last checkpoint. SIGINT and
    SIGTERM checkpoint after the current step and raise KeyboardInterrupt.
    """
    run = Run("train", out, resume)
    config = resolve_task(config)
    space = config.spec.create()
    task = task if task is not None else make_task(config.task, space)  # data errors before anything is written
    with run.claimed():
        distributed.local_batch_size(config.batch_size)  # refuse a batch that does not split over the ranks
        state = run.saved_state()
        if state is not None:
            config = resolve_task(run.resumed_config(config, MAY_CHANGE_ON_RESUME))
        trainer = Trainer(config, run.folder, space, task, state)
        if state is not None:
            run.resuming(trainer)
        run.start(trainer, config)
        if run.writer:
            trainer.arch.save(run.folder.arch)
        run.drive(trainer, checkpoint_every=config.checkpoint_every, prefetch=config.prefetch, pin=trainer.compute.cuda,
                  on_step=on_step, on_epoch=on_epoch)
        run.finish(trainer)
        if run.writer:
            save_model(run.folder.model, trainer.model_file())
        p = trainer.progress
        return TrainResult(run.folder.root, run.folder.model, p.global_step, p.elapsed_s, p.metrics[-1] if p.metrics else {})
