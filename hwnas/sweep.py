"""The latency/quality trade-off: one search per latency weight mu, and their Pareto front.

`run_sweep` runs `hwnas.searching.run_search` once per mu (each in `<out>/mu-<mu>/`, a
complete search run directory), then writes

    sweep.csv    latency_weight, predicted_ms, base_ms, speedup, val_<metric> for each
                 validation score of the task (its primary metric first: val_psnr,
                 val_ssim for denoising), params, alpha_entropy, pareto, run
    pareto.png   table-predicted latency vs the task's primary validation metric of
                 each derived network, the Pareto front (no other point is both faster
                 and better) joined, each point labelled with its mu.

The searches share everything but mu (same seed, data, table), so the front shows
what the latency penalty alone buys. With `resume`, finished searches are reused and
an interrupted one continues.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas import outdir
from hwnas.config import SearchConfig, SweepConfig, write_config
from hwnas.io import atomic_write_bytes
from hwnas.latency import LatencyTable
from hwnas.rows import write_rows
from hwnas.searching import SearchResult, StepLog, run_search

logger = logging.getLogger(__name__)

HEAD = ["latency_weight", "predicted_ms", "base_ms", "speedup"]  # then val_<metric> columns (the task's)
TAIL = ["params", "alpha_entropy", "pareto", "run"]


def run_name(mu: float) -> str:
    return f"mu-{mu:g}"


@dataclass(frozen=True)
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]
    table: Path
    plot: Path
    metric: str  # the column the front is drawn on: val_<the task's primary metric>


def check_sweep_dir(out: Path, latency_weights: Sequence[float], resume: bool) -> None:
    """Refuse an --out that cannot hold the sweep, or one holding runs, unless resuming (`hwnas.outdir`)."""
    outdir.check(out, "sweep", resume)
    for mu in latency_weights:
        outdir.check(out / run_name(mu), "search", resume)


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    table: LatencyTable,
    *,
    task=None,
    resume: bool = False,
    on_run: Callable[[float, int, int], None] | None = None,
    on_step: Callable[[StepLog], None] | None = None,
) -> SweepResult:
    """One search per `config.latency_weights` entry, then sweep.csv and pareto.png in `out`.

    `on_run(mu, index, count)` is called before each search starts.
    """
    out = Path(out)
    check_sweep_dir(out, config.latency_weights, resume)
    with outdir.claim(out, "sweep", resume):  # held until the sweep ends; each search holds its own folder too
        return _sweep(config, out, table, task=task, resume=resume, on_run=on_run, on_step=on_step)


def _sweep(config: SweepConfig, out: Path, table: LatencyTable, *, task, resume: bool, on_run, on_step) -> SweepResult:
    results: list[tuple[float, SearchResult]] = []
    for i, mu in enumerate(config.latency_weights):
        if on_run is not None:
            on_run(mu, i, len(config.latency_weights))
        search = config.search.model_copy(update={"latency_weight": mu})
        search = SearchConfig.model_validate(search.model_dump())  # re-validate the copy
        results.append((mu, run_search(search, out / run_name(mu), table, resume=resume, on_step=on_step, task=task)))
    write_config(config, out / "sweep.yaml")
    metric = f"val_{results[0][1].summary.get('primary_metric') or 'score'}"
    rows, columns = sweep_rows(results, out, metric)
    write_rows(out / "sweep.csv", rows, columns)
    plot_pareto(out / "pareto.png", rows, metric)
    return SweepResult(out, rows, out / "sweep.csv", out / "pareto.png", metric)


def sweep_rows(results: list[tuple[float, SearchResult]], out: Path, metric: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, columns): one row per search; `metric` (val_<primary metric>) decides the Pareto front."""
    scores = [metric] + [f"val_{k}" for _, r in results for k in (r.summary.get("val") or {}) if f"val_{k}" != metric]
    columns = HEAD + list(dict.fromkeys(scores)) + TAIL
    rows = []
    for mu, result in results:
        s = result.summary
        rows.append({
            "latency_weight": mu,
            "predicted_ms": s["predicted_ms"],
            "base_ms": s["base_ms"],
            "speedup": s["speedup"],
            **{f"val_{k}": v for k, v in (s.get("val") or {}).items()},
            "params": s["params"],
            "alpha_entropy": s["alpha_entropy"],
            "run": str(result.run_dir.relative_to(out)) if result.run_dir.is_relative_to(out) else str(result.run_dir),
        })
    front = pareto_front([(r["predicted_ms"], r.get(metric)) for r in rows])
    for i, row in enumerate(rows):
        row["pareto"] = i in front
    columns += device_columns(results, rows, metric)
    return [{k: row.get(k) for k in columns} for row in rows], columns


def device_columns(results: list[tuple[float, SearchResult]], rows: list[dict[str, Any]], metric: str) -> list[str]:
    """Several devices: per device, each run's predicted ms, its ratio to that device's base
    network and whether it is on that device's Pareto front (added to `rows`)."""
    names = list(results[0][1].summary.get("devices") or {})
    if len(names) < 2:
        return []
    for name in names:
        for (_, result), row in zip(results, rows):
            d = result.summary["devices"][name]
            row[f"predicted_ms:{name}"], row[f"ratio:{name}"] = d["predicted_ms"], d["ratio"]
        front = pareto_front([(r[f"predicted_ms:{name}"], r.get(metric)) for r in rows])
        for i, row in enumerate(rows):
            row[f"pareto:{name}"] = i in front
    return [f"{c}:{n}" for n in names for c in ("predicted_ms", "ratio", "pareto")]


def device_names(rows: list[dict[str, Any]]) -> list[str]:
    return [k.removeprefix("ratio:") for k in (rows[0] if rows else {}) if k.startswith("ratio:")]


def pareto_front(points: list[tuple[float, float | None]]) -> set[int]:
    """Indices of (latency, quality) points that no other point beats in both (lower latency, higher quality)."""
    front = set()
    for i, (ms, q) in enumerate(points):
        if q is None:
            continue
        dominated = any(
            j != i and q2 is not None and ms2 <= ms and q2 >= q and (ms2 < ms or q2 > q)
            for j, (ms2, q2) in enumerate(points)
        )
        if not dominated:
            front.add(i)
    return front


def plot_pareto(path: Path, rows: list[dict[str, Any]], metric: str) -> None:
    """Predicted latency (x) vs the validation `metric` column (y); the Pareto front joined by a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    scored = [r for r in rows if r[metric] is not None]
    if device_names(rows):
        _plot_devices(ax, scored, metric)
        return _save(fig, ax, path, "predicted latency / the device's base network")
    ax.scatter([r["predicted_ms"] for r in scored], [r[metric] for r in scored], color="C0", zorder=3)
    for r in scored:
        ax.annotate(f"mu={r['latency_weight']:g}", (r["predicted_ms"], r[metric]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    front = sorted((r for r in scored if r["pareto"]), key=lambda r: r["predicted_ms"])
    ax.plot([r["predicted_ms"] for r in front], [r[metric] for r in front], color="C1", label="Pareto front")
    if rows:
        ax.axvline(rows[0]["base_ms"], color="grey", linestyle="--", linewidth=1, label="base network")
    _save(fig, ax, path, "table-predicted latency (ms)", metric)


def _plot_devices(ax, scored: list[dict[str, Any]], metric: str) -> None:
    """One front per device, on latency relative to that device's base network (so they share an axis)."""
    for i, name in enumerate(device_names(scored)):
        x = [r[f"ratio:{name}"] for r in scored]
        ax.scatter(x, [r[metric] for r in scored], color=f"C{i}", zorder=3, label=name)
        front = sorted((r for r in scored if r[f"pareto:{name}"]), key=lambda r: r[f"ratio:{name}"])
        ax.plot([r[f"ratio:{name}"] for r in front], [r[metric] for r in front], color=f"C{i}")
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1, label="base network")
    ax.set_ylabel(f"validation {metric.removeprefix('val_')}")


def _save(fig, ax, path: Path, xlabel: str, metric: str | None = None) -> None:
    ax.set_xlabel(xlabel)
    if metric is not None:
        ax.set_ylabel(f"validation {metric.removeprefix('val_')}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
