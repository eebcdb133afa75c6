"""The run skeleton that `hwnas search` and `hwnas train` share: everything around the step.

A run is a folder (`hwnas.runs.rundir.RunDir`) and a loop (`Loop`: one step, the end of an
epoch, its outputs). `Run` does the rest, once for both commands:

- the folder: checked before anything is written, then claimed for the run's lifetime
  (marker + lock, `hwnas.runs.outdir`; rank 0 only);
- resume: the newest readable checkpoint (`hwnas.runs.checkpoint`), or a fresh start with a
  warning; the run's own config.yaml against what was given (`resume_config`: only
  the fields a command names as changeable may differ);
- data parallel (`hwnas.runs.distributed`): every rank holds the same state at the start,
  at every checkpoint (what the loop names in `agreement`) and at the end; only rank 0
  writes;
- the NaN guard (`guard`): losses at every step, parameters at every checkpoint; a
  NaN or infinity on any rank stops every rank with `Diverged`, the last good
  checkpoint kept; `guard_spike` does the same for a finite blow-up of the training loss;
- signals: SIGINT and SIGTERM ask the loop to stop after the current step; it writes a
  checkpoint and its outputs, then raises KeyboardInterrupt (a second signal aborts
  at once);
- the progress record (`Progress`), saved in every checkpoint;
- steps.csv (`hwnas.runs.rows.RowLog`) for a loop that logs every step, and the batches
  made ahead of time (`hwnas.runs.prefetch`).

After every step `Run.drive` does, in this order:

    step -> steps.csv row, on_step -> epoch over?  end_epoch, outputs, checkpoint, on_epoch
                                      else every N steps: checkpoint
         -> stop asked for?  checkpoint (unless just written), outputs, KeyboardInterrupt
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Collection, Hashable, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar

import torch
import yaml
from pydantic import BaseModel
from torch import nn

from hwnas.runs import distributed, outdir
from hwnas.runs.checkpoint import load_checkpoint, save_checkpoint
from hwnas.contracts.config import WHOLE, build_config, merged, move_task_fields, plain, write_config
from hwnas.contracts.errors import HwnasError
from hwnas.runs.prefetch import Prefetcher
from hwnas.runs.rows import RowLog
from hwnas.runs.rundir import RunDir
from hwnas.contracts.task import shorthand_options

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class Diverged(HwnasError):
    """A loss or the parameters became NaN or infinite; the last good checkpoint is kept."""


# -- the progress record ----------------------------------------------------------------------


@dataclass
class Progress:
    """Where a run stands and what it has logged: everything a checkpoint restores besides modules
    and optimisers. The next step to run is (epoch, step); a loop adds its own fields in a subclass."""

    FIRST_EPOCH: ClassVar[int] = 0  # how epochs are numbered in messages (as in the loop's metrics.csv)

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    sums: dict[str, float] = field(default_factory=dict)  # this epoch's sums of logged numbers
    counts: dict[str, int] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch
    recent_losses: list[float] = field(default_factory=list)  # the last SPIKE_WINDOW training losses (guard_spike)

    def state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]):
        return cls(**{k: state[k] for k in cls.__dataclass_fields__ if k in state})

    def add(self, name: str, value: float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts.get(k)}

    def next_epoch(self) -> None:
        self.epoch, self.step, self.sums, self.counts = self.epoch + 1, 0, {}, {}

    def where(self) -> str:
        return f"epoch {self.epoch + self.FIRST_EPOCH}, step {self.step}"


# -- what a loop provides ------------------------------------------------------------------------


class Loop(Protocol):
    """The part of a run that differs between search and training (see `Run.drive`)."""

    ADVICE: ClassVar[str]  # what to do when it diverges (the end of the `Diverged` message)
    progress: Progress
    net: nn.Module
    loader: Prefetcher | None  # set by `Run.drive` while it runs; the loop makes batches itself without it

    def make_batch(self, key: Hashable) -> tuple[torch.Tensor, ...]: ...
    def batch_keys(self) -> Iterator[Hashable]: ...  # every key the loop will ask for from here on, in order
    def step(self) -> Any: ...  # one step; returns the record for on_step (and its row() for steps.csv)
    def epoch_over(self) -> bool: ...
    def end_epoch(self) -> None: ...  # appends the epoch's row to progress.metrics, then progress.next_epoch()
    def finished(self) -> bool: ...
    def state(self) -> dict[str, Any]: ...  # the checkpoint
    def write_outputs(self, plots: bool = True) -> Any: ...  # rank 0 only; rewrites files from the state
    def parameter_groups(self) -> dict[str, Sequence[nn.Parameter]]: ...  # named, for the NaN guard
    def agreement(self) -> torch.Tensor | None: ...  # small; compared over ranks at every checkpoint


# -- the NaN guard -----------------------------------------------------------------------------------


def guard(values: Iterable[tuple[str, torch.Tensor]], progress: Progress, checkpoints: Path, advice: str) -> None:
    """Raise `Diverged` on every rank if any named tensor (a loss, a term) holds NaN or infinity on any rank.

    Collective: every rank calls it at the same point, so no rank is left waiting in the next one.
    """
    bad = next(((name, t.detach()) for name, t in values if not bool(torch.isfinite(t.detach()).all())), None)
    if bad is None:
        what = None
    elif bad[1].numel() == 1:
        what = f"the {bad[0]} became {float(bad[1])}"
    else:
        what = f"the {bad[0]} became NaN or infinite"
    stop_if_diverged(what, progress, checkpoints, advice)


SPIKE_WINDOW = 50  # steps whose median training loss is the yardstick
SPIKE_FACTOR = 1000.0  # far above batch-to-batch spread (blind denoising: a few times), far below a blow-up


def guard_spike(loss: float, progress: Progress, checkpoints: Path, advice: str) -> None:
    """Raise `Diverged` if the training loss (a rank mean: the same on every rank) jumped above
    SPIKE_FACTOR times its median over the last SPIKE_WINDOW steps.

    Why: a blow-up can stay finite for a long time -- a 600-step paper-preset search went from
    1e-3 to 153 within six steps and trained on for 100 more -- and the NaN guard never sees it.
    """
    recent = progress.recent_losses
    what = None
    if len(recent) >= SPIKE_WINDOW:
        median = sorted(recent)[len(recent) // 2]
        if median > 0 and loss > SPIKE_FACTOR * median:
            what = (f"the training loss jumped to {loss:.4g}, {loss / median:.3g} times its median over the last "
                    f"{len(recent)} steps")
    progress.recent_losses = (recent + [loss])[-SPIKE_WINDOW:]
    stop_if_diverged(what, progress, checkpoints, advice)


def guard_parameters(groups: Mapping[str, Sequence[nn.Parameter]], progress: Progress, checkpoints: Path,
                     advice: str) -> None:
    """`guard` for parameters (before a checkpoint): one device sync per named group."""
    with torch.no_grad():
        bad = next((name for name, params in groups.items()
                    if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all())), None)
    what = None if bad is None else f"the {bad} became NaN or infinite after the optimiser step"
    stop_if_diverged(what, progress, checkpoints, advice)


def stop_if_diverged(what: str | None, progress: Progress, checkpoints: Path, advice: str) -> None:
    """Raise `Diverged` on every rank if `what` (this rank's finding, or None) is set on any rank."""
    if not distributed.any_rank(what is not None):
        return
    last = Path(checkpoints) / "last.pt"
    kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint had been written yet"
    raise Diverged(f"{what or 'a value became NaN or infinite on another rank'} at {progress.where()}; {kept}; {advice}")


# -- resuming ---------------------------------------------------------------------------------------


def read_run_config(path: Path, model: type[M], command: str) -> M:
    """A run's own config.yaml as `model`."""
    try:
        return model.model_validate(yaml.safe_load(Path(path).read_text()))
    except Exception:  # yaml and pydantic errors: either way the file is not ours
        raise HwnasError(f"{path} is not a config written by `hwnas {command}`; choose that command's run folder "
                         "as --out, or start a new run with another --out.") from None


def resume_config(saved: M, given: Mapping[str, Any], *, may_change: Collection[str], root: Path,
                  ignored: Collection[str] = ()) -> M:
    """`saved` (the run's own config) with the `may_change` fields of `given` applied.

    `given` holds what the user passed (None = not given, at any depth), by config
    field; a nested model may be given in part (`{"spec": {"preset": "tiny"}}`). A
    given value that differs from the run's in any other field is refused in one line
    naming the flag; `ignored` fields are neither compared nor applied (e.g. a search's
    --lut: the run keeps its own copy of the table). Task options are compared as the
    task normalises them (`hwnas.contracts.task.resolve_task`: a relative data folder given again
    equals the absolute one the run recorded).
    """
    given = {k: _given(plain(v)) for k, v in move_task_fields(given).items() if v is not None and k not in ignored}
    old = saved.model_dump(mode="json")
    compared_old = _normalised(saved).model_dump(mode="json")
    new = build_config(type(saved), **merged(old, given))
    as_given, normalised = new.model_dump(mode="json"), None
    paths = [path for path in _leaves(given) if path[0] not in may_change]
    for path in sorted(paths, key=lambda p: p[:2] == ("task", "options")):  # a task's options once its name agrees
        if path[:2] == ("task", "options"):
            normalised = normalised or _normalised(new).model_dump(mode="json")
        compared_new = normalised or as_given
        if _at(compared_old, path) != _at(compared_new, path):
            raise HwnasError(f"{root} was started with {_setting(path, compared_old)}, not "
                             f"{_setting(path, compared_new, short=True)}; resume it with its own settings (omit the "
                             "flag) or start a new run with another --out.")
    changes = {k: v for k, v in given.items() if k in may_change}
    return build_config(type(saved), **merged(old, changes))


def _given(value: Any) -> Any:
    """`value` without the None entries of its mappings (None: not given)."""
    if isinstance(value, Mapping):
        return {k: _given(v) for k, v in value.items() if v is not None}
    return value


def _normalised(config: M) -> M:
    """A config with a task (search, train) with its name and every option as the task reads them
    (defaults included, so an option given at its default equals an unset one); any other as it is."""
    from hwnas.contracts.task import resolve_task

    return resolve_task(config, defaults=True) if "task" in type(config).model_fields else config


def _leaves(values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        if isinstance(value, Mapping) and key not in WHOLE:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _at(values: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        values = values.get(key) if isinstance(values, Mapping) else None
    return values


def _setting(path: tuple[str, ...], values: Mapping[str, Any], short: bool = False) -> str:
    """How the setting at `path` reads on the command line: `--mode soft`, `--option width=16`, ..."""
    value = _at(values, path)
    if path[0] == "arch":
        choices = ", ".join((value or {}).get("choices", {}).values())
        return f"another architecture ({choices})" if not short else f"({choices})"
    shown = "none" if value is None else ",".join(map(str, value)) if isinstance(value, list) else str(value)
    if path[:2] == ("spec", "options") and len(path) > 2:
        return f"{path[2]}={shown}" if short else f"--option {path[2]}={shown}"
    if path == ("task", "name"):
        return shown if short else f"--task {shown}"
    if path[:2] == ("task", "options") and len(path) > 2 and path[2] not in shorthand_options():
        return f"{path[2]}={shown}" if short else f"-t {path[2]}={shown}"
    flag = "--" + path[-1].replace("_", "-")
    return shown if short else f"{flag} {shown}"


# -- signals ----------------------------------------------------------------------------------------------


class StopRequest:
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


# -- the run ------------------------------------------------------------------------------------------------


class Run:
    """One run folder of `kind` ("search" or "train") and what its loop needs besides the step.

    `Run(kind, out, resume)` checks the folder at once (nothing is written yet);
    `with run.claimed():` holds it; inside, `saved_state()`, `start()`, `drive()`, `finish()`.
    """

    def __init__(self, kind: str, root: str | Path, resume: bool):
        self.kind, self.folder, self.resume = kind, RunDir(Path(root)), resume
        self.writer = distributed.is_main()
        self.stop = StopRequest()
        self.steps: RowLog | None = None
        outdir.check(self.folder.root, kind, resume)  # a file, another run, foreign files: refused before any write

    @property
    def noun(self) -> str:
        return outdir.NOUNS.get(self.kind, f"{self.kind} run")

    @contextlib.contextmanager
    def claimed(self) -> Iterator["Run"]:
        """The folder held (marker + lock) while the block runs; rank 0 holds it for every rank."""
        with outdir.claim(self.folder.root, self.kind, self.resume, via=distributed.from_main):
            yield self

    def saved_state(self) -> dict[str, Any] | None:
        """The checkpoint to resume from: None for a fresh run, or with --resume and no checkpoint yet (a warning)."""
        if not self.resume:
            return None
        state = load_checkpoint(self.folder.checkpoints)
        if state is None:
            logger.warning("--resume: no checkpoint in %s yet; starting a fresh %s", self.folder.root, self.noun)
        return state

    def resumed_config(self, config: M, may_change: Collection[str], ignored: Collection[str] = ()) -> M:
        """The run's own config, checked against `config` (see `resume_config`)."""
        saved = read_run_config(self.folder.config, type(config), self.kind)
        return resume_config(saved, config.model_dump(mode="json"), may_change=may_change, ignored=ignored,
                             root=self.folder.root)

    def resuming(self, loop: Loop) -> None:
        logger.info("resuming %s at %s", self.folder.root, loop.progress.where())

    def start(self, loop: Loop, config: BaseModel) -> None:
        """Every rank holds the same state (also the barrier before rank 0 writes); rank 0 writes config.yaml."""
        self.agree(loop, "starting state")
        if self.writer:
            self.folder.root.mkdir(parents=True, exist_ok=True)
            write_config(config, self.folder.config)

    def finish(self, loop: Loop) -> None:
        self.agree(loop, "final state")

    def agree(self, loop: Loop, when: str) -> None:
        """Raise `RanksDisagree` unless every rank holds the same position, weights and logits (no-op in one process)."""
        if not distributed.is_distributed():
            return
        p = loop.progress
        distributed.all_gather_check(torch.tensor([p.epoch, p.step, p.global_step]), f"positions in the run ({when})")
        distributed.all_gather_check(distributed.state_digest(loop.net), f"weights ({when})")
        logger.info("%s identical on all %d ranks", when, distributed.world_size())

    # -- the loop --------------------------------------------------------------------------------------

    def drive(
        self,
        loop: Loop,
        *,
        checkpoint_every: int,
        prefetch: int,
        pin: bool = False,
        step_columns: Sequence[str] | None = None,
        on_step: Callable[[Any], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Run `loop` from where its progress stands until it is finished (see the module docstring).

        `step_columns`: write steps.csv with these columns from each step record's `row()`.
        `on_step(record)` / `on_epoch(row)`: progress bars; an exception they raise stops the
        run after the last checkpoint.
        """
        p = loop.progress
        steps = (RowLog(self.folder.steps, step_columns, p.global_step, self.writer) if step_columns
                 else contextlib.nullcontext(None))
        with steps as self.steps, self.stop.installed(), \
                Prefetcher(loop.make_batch, loop.batch_keys(), depth=prefetch, pin=pin) as loader:
            loop.loader = loader
            try:
                while not loop.finished():
                    saved = self._advance(loop, checkpoint_every, on_step, on_epoch)
                    if distributed.any_rank(self.stop.requested):  # every rank stops after the same step
                        self._stop(loop, saved)
            finally:
                loop.loader, self.steps = None, None

    def _advance(self, loop: Loop, checkpoint_every: int, on_step, on_epoch) -> bool:
        """One step (unless the epoch is over already), then the epoch's end or a checkpoint; True if one was written."""
        p, saved = loop.progress, False
        if not loop.epoch_over():
            record = loop.step()
            p.step += 1
            p.global_step += 1
            if self.steps is not None:
                self.steps.write(record.row())
            if on_step is not None:
                on_step(record)
            if p.global_step % checkpoint_every == 0 and not loop.epoch_over():
                self.checkpoint(loop)
                saved = True
        if loop.epoch_over():
            loop.end_epoch()
            if self.writer:  # before the checkpoint: a kill between the two cannot lose the epoch's row
                loop.write_outputs(plots=False)
            self.checkpoint(loop)
            saved = True
            if on_epoch is not None:
                on_epoch(p.metrics[-1])
        return saved

    def _stop(self, loop: Loop, saved: bool) -> None:
        if not saved:
            self.checkpoint(loop)
        if self.writer:
            loop.write_outputs()
            logger.warning("interrupted; checkpoint (next: %s) written to %s; continue with `hwnas %s --out %s --resume`",
                           loop.progress.where(), self.folder.checkpoints / "last.pt", self.kind, self.folder.root)
        raise KeyboardInterrupt

    def checkpoint(self, loop: Loop) -> None:
        """Parameters checked (NaN guard, ranks agree), then rank 0 saves the loop's state."""
        guard_parameters(loop.parameter_groups(), loop.progress, self.folder.checkpoints, loop.ADVICE)
        check = loop.agreement()
        if check is not None:
            distributed.all_gather_check(check, "architecture logits")
        if self.writer:
            if self.steps is not None:  # rows first: a kill between the two leaves rows a resume drops, none missing
                self.steps.flush()
            save_checkpoint(self.folder.checkpoints, loop.state())
