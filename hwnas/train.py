"""Training a derived network: fine-tuning after a search, or a baseline from scratch.

The method's last step (DESIGN.md step 6): the discrete network chosen by the search
inherits the super-net weights of its chosen candidates (`--init-from`), BatchNorm
statistics are re-estimated on the derived network (they were estimated on mixed or
sampled paths, see `hwnas.batchnorm`), and the network is fine-tuned. A uniform
network (all one candidate, e.g. NAFNet = all `naf`) trains from scratch under the
same budget for comparison.

Loop: AdamW (NAFNet's betas 0.9/0.9), cosine learning rate from lr to min_lr over the
run -- over steps for `epochs`, over elapsed training time for `time_budget`.
Batches come from `Task.batch(seed, epoch, step)`, a pure function, so a resumed run
continues exactly: `--resume` restores weights, optimiser, position and metrics from
`checkpoints/last.pt` and the next steps see the same data as an uninterrupted run
(bitwise with `epochs`; a time budget ends at a time, which no run repeats exactly).

Data parallel (`torchrun`, see `hwnas.distributed`): `batch_size` is the global batch,
each rank trains on its slice, gradients and BatchNorm statistics are averaged over
ranks (every rank holds the same weights, checked at the start and the end), the
logged loss is the rank mean, a step's time is the slowest rank's (time budgets end
together), and only rank 0 writes files.

Run directory (`--out`):

    config.yaml          resolved TrainConfig (space spec and architecture included)
    arch.json            the architecture trained
    checkpoints/last.pt  every `checkpoint_every` steps and each epoch (prev.pt before it)
    metrics.csv          per epoch: steps, train loss, lr, training seconds, val_<metric>
    model.pt             the final network (hwnas.modelfile), written at the end
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from torch import nn

from hwnas import distributed, outdir
from hwnas.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from hwnas.compute import compute_for
from hwnas.config import SpaceSpec, TrainConfig, build_config, write_config
from hwnas.errors import HwnasError
from hwnas.evaluate import write_csv
from hwnas.prefetch import Prefetcher
from hwnas.modelfile import CHECKPOINT_FORMAT, ModelFile, from_payload, load_weights, save_model
from hwnas.space import Architecture, SearchSpace, freeze, position_names
from hwnas.task import Task

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainPaths:
    root: Path

    config = property(lambda self: self.root / "config.yaml")
    arch = property(lambda self: self.root / "arch.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    metrics = property(lambda self: self.root / "metrics.csv")
    model = property(lambda self: self.root / "model.pt")


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
    `uniform`, or the --init-from run's arch.json. With `resume` and a config.yaml in
    `out`, that config is kept and anything given that contradicts it is refused.
    """
    paths = TrainPaths(Path(out))
    _check_out(paths, resume)
    if settings.get("data") is not None:  # absolute, so a resume from another folder reads the same images
        settings["data"] = str(Path(settings["data"]).expanduser().resolve())
    if resume and paths.config.is_file():
        return _resumed_config(paths, spec, arch, uniform, init_from, settings)
    if sum(x is not None for x in (arch, uniform)) > 1:
        raise HwnasError("give either --arch or --uniform, not both.")
    if init_from is not None:
        run_spec, run_arch = search_run_spec(init_from)
        if spec is not None and spec != run_spec:
            raise HwnasError(
                f"--init-from {init_from} was searched in {_describe(run_spec)}, not {_describe(spec)}; "
                "drop --space/--preset/--option (they come from the run)."
            )
        spec = run_spec
        if arch is None and uniform is None:
            arch = run_arch
    if arch is None and uniform is None:
        raise HwnasError("nothing to train: pass --arch arch.json, --uniform CANDIDATE or --init-from SEARCH_RUN.")
    if spec is None:
        spec = SpaceSpec(space=arch.space) if arch is not None else SpaceSpec()
    space = spec.create()
    positions = position_names(_meta_net(space))
    if uniform is not None:
        arch = Architecture.uniform(space.name, positions, uniform)
    arch.check(space.name, positions)
    return build_config(
        TrainConfig, spec=spec, arch=arch.model_dump(), init_from=None if init_from is None else str(Path(init_from).resolve()),
        **{k: v for k, v in settings.items() if v is not None},
    )


def _describe(spec: SpaceSpec) -> str:
    extra = f" with options {spec.options}" if spec.options else ""
    return f"space {spec.space!r} preset {spec.preset!r}{extra}"


def _meta_net(space: SearchSpace) -> nn.Module:
    with torch.device("meta"):
        return space.build()


def _check_out(paths: TrainPaths, resume: bool) -> None:
    outdir.check(paths.root, "train", resume)  # a file, another run, foreign files: refused before any write


def _resumed_config(paths, spec, arch, uniform, init_from, settings) -> TrainConfig:
    try:
        saved = TrainConfig.model_validate(yaml.safe_load(paths.config.read_text()))
    except Exception:  # yaml and pydantic errors: either way the file is not ours
        raise HwnasError(f"{paths.config} is not an hwnas training config; start a new run with another --out.") from None
    compute = {k: settings.pop(k) for k in ("threads", "prefetch") if settings.get(k) is not None}  # may change on resume
    conflicts = [name for name, value in settings.items() if value is not None and getattr(saved, name) != value]
    if spec is not None and spec != saved.spec:
        conflicts.append("space")
    if arch is not None and arch.model_dump() != saved.arch:
        conflicts.append("arch")
    if uniform is not None and set(saved.arch["choices"].values()) != {uniform}:
        conflicts.append("uniform")
    if init_from is not None and str(Path(init_from).resolve()) != saved.init_from:
        conflicts.append("init_from")
    if conflicts:
        name = conflicts[0]
        if name in ("arch", "uniform"):
            what = f"architecture ({', '.join(saved.arch['choices'].values())})"
        else:
            what = f"--{name.replace('_', '-')} ({getattr(saved, name, None)})"
        raise HwnasError(
            f"the run in {paths.root} was started with another {what}; "
            "resume it with its own settings (drop the flag) or start a new run with another --out."
        )
    return saved.model_copy(update=compute)


# -- search runs -----------------------------------------------------------------------

def search_run_spec(run_dir: str | Path) -> tuple[SpaceSpec, Architecture | None]:
    """The space spec and derived architecture (arch.json, if written yet) of a search run."""
    from hwnas.rundir import RunDir
    from hwnas.search import read_config

    run = RunDir(Path(run_dir))
    if not run.config.is_file():
        raise HwnasError(f"{run.root} is not a search run (no config.yaml); pass the --out folder of `hwnas search`.")
    spec = read_config(run).spec
    return spec, (Architecture.load(run.arch) if run.arch.is_file() else None)


def inherit(run_dir: str | Path, arch: Architecture) -> nn.Module:
    """The derived network with its chosen candidates' weights from a search run's super-net.

    `hwnas.search.load_supernet` rebuilds the super-net from the run's latest checkpoint;
    `freeze` puts each chosen candidate -- weights, and BN statistics that
    `_recalibrate` then re-estimates -- at its position's module path.
    """
    from hwnas.search import load_supernet

    _, supernet = load_supernet(run_dir)
    return freeze(supernet, arch)


# -- the loop ----------------------------------------------------------------------------

def cosine_lr(progress: float, lr: float, min_lr: float) -> float:
    """Cosine annealing (Loshchilov & Hutter, SGDR 2017) from lr at progress 0 to min_lr at 1."""
    progress = min(max(progress, 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


class _Trainer:
    """One training run; `run()` goes from wherever the run directory stands to the end."""

    def __init__(self, config: TrainConfig, out: Path, task: Task | None, on_step, on_epoch):
        self.cfg, self.paths = config, TrainPaths(out)
        self.on_step, self.on_epoch = on_step, on_epoch
        self.compute = compute_for(config.accelerator, config.threads)
        self.device = self.compute.device
        self.space = config.spec.create()
        self.arch = config.architecture()
        self.task = task if task is not None else self.space.task(**config.task_options())
        self.budget_s = None if config.time_budget is None else config.time_budget * 60.0
        self.total_steps = None if config.epochs is None else config.epochs * config.steps_per_epoch
        self.progress = {"epoch": 0, "step": 0, "global_step": 0, "elapsed_s": 0.0, "loss_sum": 0.0, "loss_count": 0}
        self.metrics: list[dict] = []
        self.loader: Prefetcher | None = None

    def setup(self, resume: bool) -> None:
        distributed.local_batch_size(self.cfg.batch_size)  # refuse a batch that does not split over the ranks
        state = load_checkpoint(self.paths.checkpoints) if resume else None
        if resume and state is None:
            log.warning("no checkpoint in %s yet; starting the run from the beginning", self.paths.checkpoints)
        torch.manual_seed(self.cfg.seed)
        if state is not None:
            self.net = self._from_checkpoint(state)
        elif self.cfg.init_from is not None:
            self.net = inherit(self.cfg.init_from, self.arch)
        else:
            self.net = freeze(self.space, self.arch)
        self.net = self.compute.module(self.net)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, betas=(0.9, 0.9), weight_decay=self.cfg.weight_decay)
        if state is not None:
            self.opt.load_state_dict(state["optimizer"])
            self.progress, self.metrics = dict(state["progress"]), list(state["metrics"])
            set_rng_state(state["rng"], self.device)
            log.info("resuming at epoch %d step %d", self.progress["epoch"] + 1, self.progress["step"])
            self._check_ranks_agree("starting state")
            return
        if self.cfg.init_from is not None:
            self._recalibrate()
        self._check_ranks_agree("starting state")  # also the barrier before rank 0 writes anything
        if distributed.is_main():
            write_config(self.cfg, self.paths.config)
            self.arch.save(self.paths.arch)

    def _check_ranks_agree(self, when: str) -> None:
        """Raise `RanksDisagree` unless every rank holds the same position and weights (no-op in one process)."""
        if not distributed.is_distributed():
            return
        p = self.progress
        distributed.all_gather_check(torch.tensor([p["epoch"], p["step"], p["global_step"]]), f"positions in the run ({when})")
        distributed.all_gather_check(distributed.state_digest(self.net), f"network weights ({when})")
        log.info("%s identical on all %d ranks", when, distributed.world_size())

    def _from_checkpoint(self, state: dict) -> nn.Module:
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise HwnasError(f"{self.paths.checkpoints} holds no hwnas training checkpoint; start a new run with another --out.")
        model = from_payload(state["model"], source=str(self.paths.checkpoints / "last.pt"))
        if model.arch != self.arch or model.spec != self.cfg.spec:
            raise HwnasError(
                f"the checkpoint in {self.paths.checkpoints} is for another space or architecture than "
                f"{self.paths.config}; start a new run with another --out."
            )
        net = freeze(self.space, self.arch)
        load_weights(net, model.state_dict, source=str(self.paths.checkpoints / "last.pt"))
        return net

    def _recalibrate(self) -> None:
        from hwnas.batchnorm import recalibrate

        n = self.cfg.recalibration_batches
        batches = (self.compute.tensor(self._make_batch((-1, i))[0]) for i in range(n))  # whole batches: every rank the same
        layers = recalibrate(self.net, batches, self.device) if n else 0
        if layers:
            log.info("recalibrated %d BatchNorm layers on %d batches", layers, n)

    def _make_batch(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, step = key
        return self.task.batch("train", seed=self.cfg.seed, epoch=epoch, step=step, batch_size=self.cfg.batch_size)

    def _batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (noisy, clean) batch of (epoch, step), sharded to this rank and on the device."""
        key = (epoch, step)
        x, y = self.loader.get(key) if self.loader is not None else self._make_batch(key)
        return self.compute.tensor(distributed.shard(x)), self.compute.tensor(distributed.shard(y))

    def _batch_keys(self):
        """Every (epoch, step) from here on (a time budget may stop earlier; then the rest is never asked for)."""
        epoch, step = self.progress["epoch"], self.progress["step"]
        while self.cfg.epochs is None or epoch < self.cfg.epochs:
            for s in range(step, self.cfg.steps_per_epoch):
                yield (epoch, s)
            epoch, step = epoch + 1, 0

    def finished(self) -> bool:
        p = self.progress
        if self.budget_s is not None:
            return p["elapsed_s"] >= self.budget_s
        return p["epoch"] >= self.cfg.epochs

    def lr(self) -> float:
        p = self.progress
        done = p["elapsed_s"] / self.budget_s if self.budget_s is not None else p["global_step"] / self.total_steps
        return cosine_lr(done, self.cfg.lr, self.cfg.min_lr)

    def run(self) -> dict:
        with Prefetcher(self._make_batch, self._batch_keys(), depth=self.cfg.prefetch, pin=self.compute.cuda) as loader:
            self.loader = loader
            while not self.finished():
                self._epoch()
            self.loader = None
        self._check_ranks_agree("final weights")
        self._write_model()
        return {"out": str(self.paths.root), "model": str(self.paths.model), "steps": self.progress["global_step"],
                "train_seconds": self.progress["elapsed_s"], "metrics": self.metrics[-1] if self.metrics else {}}

    def _epoch(self) -> None:
        p, cfg = self.progress, self.cfg
        self.net.train()
        while p["step"] < cfg.steps_per_epoch and not (self.budget_s is not None and p["elapsed_s"] >= self.budget_s):
            self._step()
            if p["global_step"] % cfg.checkpoint_every == 0:
                self._checkpoint()
        self._end_epoch()

    def _step(self) -> None:
        p = self.progress
        start = time.perf_counter()
        lr = self.lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, y = self._batch(p["epoch"], p["step"])
        with self.compute.forward():
            out = self.net(x)
        loss = self.task.loss(out.float(), y)
        if distributed.any_rank(not torch.isfinite(loss)):  # decided together: no rank left waiting
            raise HwnasError(
                f"the training loss became {'NaN or infinite' if torch.isfinite(loss) else loss.item()} at epoch "
                f"{p['epoch'] + 1} step {p['step']}; lower --lr (or resume from the last checkpoint with a lower --lr in a new run)."
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.net.parameters())
        self.opt.step()
        distributed.average_buffers(self.net)
        value = distributed.mean([float(loss.item())])[0]
        p["elapsed_s"] += distributed.maximum(time.perf_counter() - start)
        p["step"] += 1
        p["global_step"] += 1
        p["loss_sum"] += value
        p["loss_count"] += 1
        if self.on_step:
            self.on_step(StepInfo(p["epoch"], p["step"], p["global_step"], self.total_steps, p["elapsed_s"],
                                  self.budget_s, value, lr))

    def _end_epoch(self) -> None:
        p = self.progress
        scores = self.task.validate(self.net, self.device)
        row = {"epoch": p["epoch"] + 1, "steps": p["step"],
               "train_loss": p["loss_sum"] / max(p["loss_count"], 1), "lr": self.lr(),
               "train_seconds": round(p["elapsed_s"], 3)}
        row.update({f"val_{k}": float(v) for k, v in scores.items()})
        self.metrics.append(row)
        p.update(epoch=p["epoch"] + 1, step=0, loss_sum=0.0, loss_count=0)
        if distributed.is_main():  # before the checkpoint: a kill between the two cannot lose this epoch's row
            write_csv(self.paths.metrics, self.metrics)
        self._checkpoint()
        log.debug("epoch %d: %s", row["epoch"], ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k.startswith("val_")))
        if self.on_epoch:
            self.on_epoch(row)

    def _model_file(self) -> ModelFile:
        info = {"steps": self.progress["global_step"], "train_seconds": self.progress["elapsed_s"],
                "init_from": self.cfg.init_from or ""}
        if self.metrics:
            info.update({k: v for k, v in self.metrics[-1].items() if k.startswith("val_")})
        return ModelFile(self.cfg.spec, self.arch, self.net.state_dict(), info)

    def _checkpoint(self) -> None:
        if not distributed.is_main():
            return
        save_checkpoint(self.paths.checkpoints, {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "model": self._model_file().payload(), "optimizer": self.opt.state_dict(),
            "progress": dict(self.progress), "metrics": list(self.metrics),
            "rng": rng_state(self.device), "config": self.cfg.model_dump(mode="json"),
        })

    def _write_model(self) -> None:
        if not distributed.is_main():
            return
        save_model(self.paths.model, self._model_file())
        log.debug("wrote %s", self.paths.model)


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    task: Task | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train `config`'s network in run directory `out` (see the module docstring).

    `task` overrides the space's task built from the config (library use and tests).
    `on_step` / `on_epoch` receive a `StepInfo` / the epoch's metrics row (progress
    bars); an exception they raise stops the run after the last checkpoint. Returns
    {"out", "model", "steps", "train_seconds", "metrics"} (the last epoch's row).
    """
    out = Path(out)
    _check_out(TrainPaths(out), resume)
    trainer = _Trainer(config, out, task, on_step, on_epoch)
    with outdir.claim(out, "train", resume, via=distributed.from_main):  # marker + lock while it runs (rank 0)
        trainer.setup(resume)
        return trainer.run()
