"""Scoring a trained network on folders of data with its task's protocol (`hwnas eval`).

The protocol itself (noise, metrics, file formats) belongs to the model's task
(`Task.evaluate_folder`); this module runs it over several folders, averages the
per-sample rows into one row per data set and condition (mean of per-sample metrics,
as the published tables do); `hwnas.api.evaluate` writes both as CSV (`hwnas.runs.rows`).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from hwnas.contracts.errors import HwnasError
from hwnas.contracts.task import Predict, Task

log = logging.getLogger(__name__)


def check_options(hook: Callable, options: dict[str, Any], what: str) -> None:
    """Refuse, in one line, options that `hook` does not take (instead of a TypeError traceback)."""
    params = inspect.signature(hook).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [name for name in options if name not in known]
    if unknown:
        raise HwnasError(f"{what} takes no option {unknown[0]!r}; it takes: {', '.join(known) or 'none'}.")


def evaluate(
    task: Task,
    predict: Predict,
    folders: Sequence[str | Path],
    options: dict[str, Any] | None = None,
    on_folder: Callable[[str], None] | None = None,
) -> tuple[list[dict], list[dict]]:
    """(per-sample rows, summary rows) of `predict` on every folder, by `task.evaluate_folder`."""
    options = dict(options or {})
    check_options(task.evaluate_folder, options, f"the {type(task).__name__} evaluation")
    rows: list[dict] = []
    for folder in folders:
        if on_folder:
            on_folder(str(folder))
        rows.extend(task.evaluate_folder(predict, folder, **options))
    return rows, summarize(rows)


def metric_columns(rows: Iterable[dict]) -> list[str]:
    """Columns holding floats (the metrics); the others, except "image", are labels."""
    names: list[str] = []
    for row in rows:
        names.extend(k for k, v in row.items() if isinstance(v, float) and k not in names)
    return names


def summarize(rows: Sequence[dict]) -> list[dict]:
    """One row per distinct label combination, in first-seen order: labels, images, metric means."""
    metrics = metric_columns(rows)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = tuple((k, v) for k, v in row.items() if k != "image" and k not in metrics)
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        summary = dict(key)
        summary["images"] = len(members)
        for name in metrics:
            values = [m[name] for m in members if name in m]
            summary[name] = sum(values) / len(values)
        out.append(summary)
    return out


def per_sample_path(path: str | Path) -> Path:
    """Where the per-sample rows go beside a summary CSV: results.csv -> results_per_image.csv."""
    path = Path(path)
    return path.with_name(f"{path.stem}_per_image{path.suffix or '.csv'}")
