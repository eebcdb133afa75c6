"""The differentiable search's entry point: `run_search`, one search into a run folder.

The search trains a super-net's weights and architecture logits together; its parts live
in their own modules and are re-exported here (tests, plugins, benchmarks and
`hwnas.api` import them from this module):

- `hwnas.nas.search_setup` -- the inputs: `resolve_config`, `prepare`, `check_table`,
  `run_devices`, `read_config`, `load_supernet`, `DEFAULT_SPACE`, `QUICK_PRESET`;
- `hwnas.nas.search_loop` -- the loop `Search` (the bilevel step, epochs, plans, batches),
  `StepLog`, `SearchProgress`, `STEP_COLUMNS`;
- `hwnas.nas.search_outputs` -- summary.json and the run's other derived files.

`run_search` claims the folder, resumes from its checkpoint when asked, drives the loop
with the run skeleton (`hwnas.runs.run`) and returns a `SearchResult`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hwnas.runs import distributed
from hwnas.nas.collapse import target_warning
from hwnas.contracts.config import SearchConfig
from hwnas.contracts.errors import HwnasError
from hwnas.runs.io import atomic_write_text
from hwnas.contracts.latency import LatencyTable
from hwnas.runs.run import Run
from hwnas.nas.search_loop import FORMAT, STEP_COLUMNS, VERSION, Search, SearchProgress, StepLog  # re-exported
from hwnas.nas.search_outputs import derived_params  # re-exported
from hwnas.nas.search_setup import (  # re-exported
    DEFAULT_SPACE, QUICK_PRESET, check_table, load_supernet, lookup_units, prepare, quick_preset, read_config,
    resolve_config, run_devices,
)
from hwnas.contracts.space import Architecture
from hwnas.contracts.task import make_task, resolve_task

__all__ = [
    "DEFAULT_SPACE", "FORMAT", "IGNORED_ON_RESUME", "MAY_CHANGE_ON_RESUME", "QUICK_PRESET", "STEP_COLUMNS", "VERSION",
    "Search", "SearchProgress", "SearchResult", "StepLog", "check_table", "derived_params", "load_supernet",
    "lookup_units", "prepare", "quick_preset", "read_config", "resolve_config", "run_devices", "run_search",
]

logger = logging.getLogger(__name__)

MAY_CHANGE_ON_RESUME = {"epochs", "threads", "prefetch", "hold_target"}  # a longer run; compute settings never change
# results; holding the target only changes which network is derived from the trained super-net
IGNORED_ON_RESUME = {"lut", "tables", "device"}  # the run keeps its own copies of its tables (and the device recorded)


@dataclass(frozen=True)
class SearchResult:
    """What `hwnas.search` returns: the run folder, the derived architecture and summary.json's contents."""

    run_dir: Path
    arch: Architecture
    summary: dict[str, Any]


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
    images). Raises `HwnasError` for a user's mistake, `hwnas.runs.run.Diverged`
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
        return SearchResult(run.folder.root, search.derived_arch()[0], summary)

