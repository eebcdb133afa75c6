"""A sweep's runs as jobs: one picklable description each, one module-level function to run it.

`hwnas.runs.executors` maps `run_job` over a list of jobs -- here one after another, or as
Ray tasks on a cluster -- so a job holds only what pickles: its validated config
(pydantic), its run folder, the latency table. What only a run in this process can
use (progress callbacks, a task whose images are already decoded) travels in `Local`,
which the sweep leaves empty for any executor but the local one.

Resume: a search resumes as `hwnas search --resume` does (a finished one is reported
again, an interrupted one continues from its checkpoint); a training run whose
model.pt exists is reused as it is -- after a check that it trained the network and
number of steps asked for (a benchmark may train `baselines/uniform-naf-s0` ahead with
`hwnas train`) -- and an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from hwnas.contracts.config import SearchConfig, TrainConfig
from hwnas.contracts.errors import HwnasError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Local:
    """What a job run in this process may use (not shipped: None on a cluster)."""

    task: Any = None  # the search's task, already built (its images decoded)
    on_step: Callable[[Any], None] | None = None
    on_start: Callable[[], None] | None = None


@dataclass(frozen=True)
class SearchJob:
    """One search of a sweep (`hwnas.nas.searching.run_search` into `out`)."""

    name: str
    config: SearchConfig
    out: Path
    table: Any  # hwnas.contracts.latency.LatencyTable
    resume: bool = False
    local: Local = field(default_factory=Local)


@dataclass(frozen=True)
class TrainJob:
    """One network trained for the front: a searched network fine-tuned, or a baseline from scratch."""

    name: str
    kind: str  # searched | uniform | narrower | shallower | wider | random
    config: TrainConfig
    out: Path
    resume: bool = False
    local: Local = field(default_factory=Local)

    @property
    def steps(self) -> int:
        return int(self.config.epochs) * self.config.steps_per_epoch


@dataclass(frozen=True)
class Trained:
    """A finished training run: its folder, model file, steps, training seconds and last validation scores."""

    name: str
    kind: str
    out: Path
    model: Path
    steps: int
    train_seconds: float
    scores: dict[str, float]  # val_<metric> -> value
    reused: bool = False


Job = Union[SearchJob, TrainJob]


def run_job(job: Job):
    """Run one job (module level, so Ray can ship it): a `SearchResult` for a search, `Trained` for training."""
    if job.local.on_start is not None:
        job.local.on_start()
    if isinstance(job, SearchJob):
        from hwnas.nas.searching import run_search

        return run_search(job.config, job.out, job.table, resume=job.resume, on_step=job.local.on_step, task=job.local.task)
    return train(job)


def train(job: TrainJob) -> Trained:
    from hwnas.runs.training import run_training

    model = job.out / "model.pt"
    if job.resume and model.is_file():
        return finished(job)
    result = run_training(job.config, job.out, resume=job.resume)
    scores = {k: float(v) for k, v in result.metrics.items() if k.startswith("val_")}
    return Trained(job.name, job.kind, job.out, result.model, result.steps, result.train_seconds, scores)


def finished(job: TrainJob) -> Trained:
    """The finished run in `job.out`, reused; refused in one sentence if it is another network or length."""
    from hwnas.deploy.modelfile import load_model

    model = load_model(job.out / "model.pt")
    arch, steps = job.config.architecture(), int(model.info.get("steps", -1))
    if model.arch != arch or model.spec.create().fingerprint() != job.config.spec.create().fingerprint():
        raise HwnasError(f"{job.out} holds another network than the sweep's {job.name}; move it away or choose another --out.")
    if steps != job.steps:
        raise HwnasError(f"{job.out} was trained for {steps} steps, not the {job.steps} of the sweep's budget; "
                         "move it away or train it for that many steps.")
    _warn_if_other_recipe(job)
    log.info("%s: reusing the finished run in %s", job.name, job.out)
    scores = {k: float(v) for k, v in model.info.items() if k.startswith("val_")}
    return Trained(job.name, job.kind, job.out, job.out / "model.pt", steps, float(model.info.get("train_seconds", 0.0)),
                   scores, reused=True)


EXPERIMENT_KEYS = ("task", "batch_size", "lr", "min_lr", "weight_decay", "seed")  # what makes a reused run another experiment


def _warn_if_other_recipe(job: TrainJob) -> None:
    """A reused run trained with another recipe than the sweep's is taken as it is, with a warning naming the difference."""
    import yaml

    try:
        saved = yaml.safe_load((job.out / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return
    wanted = job.config.model_dump(mode="json")
    for key in EXPERIMENT_KEYS:
        if key in saved and saved[key] != wanted[key]:
            log.warning("%s was trained with %s %s, not the sweep's %s; it is reused as it is", job.out, key, saved[key],
                        wanted[key])
            return
