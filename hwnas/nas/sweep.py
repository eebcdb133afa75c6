"""The latency/quality trade-off: one search per sweep point, and their Pareto front.

A point is a latency weight mu, optionally a latency target (a ratio of the base
network's predicted latency: the constraint form) and a seed (`SweepConfig`).
`run_sweep` runs `hwnas.nas.searching.run_search` once per point (each in
`<out>/<point name>/`, e.g. `mu-0.1`, `mu-1-target0.6x-seed1`: a complete search run
directory), then writes

    sweep.csv    latency_weight, target_ratio, target_ms, seed, predicted_ms, base_ms,
                 speedup, val_<metric> for each validation score of the task (its
                 primary metric first: val_psnr, val_ssim for denoising), params,
                 alpha_entropy, uniform, pareto, run
    pareto.png   table-predicted latency vs the task's primary validation metric of
                 each derived network, the Pareto front (no other point is both faster
                 and better) joined, each point labelled.

The searches share everything but the point (same data, table), so the front shows
what the latency term alone buys. With `resume`, finished searches are reused and
an interrupted one continues. With `baselines` (`hwnas.nas.front`) the sweep also
fine-tunes every derived network, trains the baselines a user would pick without a
search and writes front.csv and front.png on measured latency. Every run goes
through the sweep's executor (`hwnas.runs.executors`) as a job (`hwnas.nas.sweep_jobs`).
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hwnas.runs import outdir
from hwnas.contracts.config import SearchConfig, SweepConfig, write_config
from hwnas.runs.io import atomic_write_bytes
from hwnas.contracts.latency import LatencyTable
from hwnas.runs.rows import write_rows
from hwnas.runs.executors import executor
from hwnas.nas.searching import SearchResult, StepLog
from hwnas.nas.sweep_jobs import Local, SearchJob, run_job

logger = logging.getLogger(__name__)

HEAD = ["latency_weight", "target_ratio", "target_ms", "seed", "predicted_ms", "base_ms", "speedup"]  # then val_<metric>
TAIL = ["params", "alpha_entropy", "uniform", "pareto", "run"]


@dataclass(frozen=True)
class Point:
    """One search of a sweep: its mu, target ratio (None: the penalty form) and seed (None: the search's)."""

    mu: float
    ratio: float | None = None
    seed: int | None = None

    @property
    def name(self) -> str:
        target = "" if self.ratio is None else f"-target{self.ratio:g}x"
        seed = "" if self.seed is None else f"-seed{self.seed}"
        return f"{run_name(self.mu)}{target}{seed}"

    @property
    def label(self) -> str:
        parts = [f"mu={self.mu:g}"] + ([] if self.ratio is None else [f"{self.ratio:g}x"])
        return " ".join(parts + ([] if self.seed is None else [f"s{self.seed}"]))

    def config(self, search: SearchConfig, base_ms: float) -> SearchConfig:
        """The search of this point: `search` with its mu, target (ratio x `base_ms`) and seed."""
        update: dict[str, Any] = {"latency_weight": self.mu}
        if self.ratio is not None:
            update["target_ms"] = float(f"{self.ratio * base_ms:.6g}")
        if self.seed is not None:
            update["seed"] = self.seed
        return SearchConfig.model_validate(search.model_copy(update=update).model_dump())  # re-validated


def run_name(mu: float) -> str:
    return f"mu-{mu:g}"


def points(config: SweepConfig) -> list[Point]:
    """Every point of the sweep (`grid`)."""
    return grid(config.latency_weights, config.target_ratios, config.seeds, config.search.latency_weight)


def grid(latency_weights: Sequence[float], target_ratios: Sequence[float], seeds: Sequence[int],
         search_mu: float = 0.1) -> list[Point]:
    """mu x target ratio x seed; a missing axis gives one point without it. Target ratios without
    latency weights take mu 1, the constraint form's default (`SearchConfig`); else `search_mu`."""
    weights = latency_weights or ((1.0,) if target_ratios else (search_mu,))
    return [Point(mu, r, s) for mu in weights for r in (target_ratios or (None,)) for s in (seeds or (None,))]


@dataclass(frozen=True)
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]
    table: Path
    plot: Path
    metric: str  # the column the front is drawn on: val_<the task's primary metric>
    front: Any = None  # hwnas.nas.front.FrontResult with `baselines`


def check_sweep_dir(out: Path, config_points: Sequence[Point], resume: bool) -> None:
    """Refuse an --out that cannot hold the sweep, or one holding runs, unless resuming (`hwnas.runs.outdir`)."""
    if resume:
        _adopt(Path(out))
    outdir.check(out, "sweep", resume)
    for point in config_points:
        outdir.check(out / point.name, "search", resume)
        outdir.check(out / point.name / "finetune", "train", resume)
    if (out / "baselines").is_dir():
        for run in sorted(p for p in (out / "baselines").iterdir() if p.is_dir()):
            outdir.check(run, "train", resume)


def run_sweep(
    config: SweepConfig,
    out: str | Path,
    table: LatencyTable,
    *,
    task=None,
    resume: bool = False,
    on_run: Callable[[Point, int, int], None] | None = None,
    on_step: Callable[[StepLog], None] | None = None,
) -> SweepResult:
    """One search per point of `config` (`points`), then sweep.csv and pareto.png in `out`.

    `on_run(point, index, count)` is called before each search starts.
    """
    out = Path(out)
    check_sweep_dir(out, points(config), resume)
    if config.baselines is not None:
        from hwnas.nas.front import check

        check(config, table)
    with outdir.claim(out, "sweep", resume):  # held until the sweep ends; each search holds its own folder too
        return _sweep(config, out, table, task=task, resume=resume, on_run=on_run, on_step=on_step)


def _adopt(out: Path) -> None:
    """A folder holding only baselines/ of training runs (trained ahead with `hwnas train`, e.g. by a benchmark)
    becomes the sweep's: marked as one, so --resume starts the sweep there and reuses them."""
    if not out.is_dir() or outdir.run_kind(out) is not None:
        return
    entries = [p for p in out.iterdir() if p.name not in outdir.BOOKKEEPING]
    runs = [p for p in (out / "baselines").iterdir() if p.is_dir()] if (out / "baselines").is_dir() else []
    if [p.name for p in entries] == ["baselines"] and runs and all(outdir.run_kind(p) == "train" for p in runs):
        from hwnas.runs.io import atomic_write_text

        atomic_write_text(out / outdir.MARKER, "sweep\n")


def _sweep(config: SweepConfig, out: Path, table: LatencyTable, *, task, resume: bool, on_run, on_step) -> SweepResult:
    todo = points(config)
    base = base_ms(config.search, table) if config.target_ratios else 0.0
    runner = executor(config.executor, cpus=config.cpus_per_run, gpus=config.gpus_per_run)  # refuses a missing Ray first
    write_config(config, out / "sweep.yaml")  # then: an interrupted sweep resumes from it
    local = config.executor == "local"  # only a run in this process gets callbacks and the decoded task
    where = out if local else out.resolve()  # a cluster's worker may run in another folder
    jobs = [SearchJob(point.name, point.config(config.search, base), where / point.name, table, resume,
                      Local(task, on_step, _starting(on_run, point, i, len(todo))) if local else Local())
            for i, point in enumerate(todo)]
    front = None
    with runner if hasattr(runner, "__enter__") else contextlib.nullcontext():  # one connection for all maps
        if config.baselines is None:
            found = runner.map(run_job, jobs)
        else:
            from hwnas.nas.front import run_front

            found, front = run_front(config, out, table, jobs, runner, resume=resume, local=local)
    results: list[tuple[Point, SearchResult]] = list(zip(todo, found))
    metric = f"val_{results[0][1].summary.get('primary_metric') or 'score'}"
    rows, columns = sweep_rows(results, out, metric)
    write_rows(out / "sweep.csv", rows, columns)
    plot_pareto(out / "pareto.png", rows, metric)
    return SweepResult(out, rows, out / "sweep.csv", out / "pareto.png", metric, front)


def _starting(on_run, point: Point, index: int, count: int) -> Callable[[], None] | None:
    return None if on_run is None else (lambda: on_run(point, index, count))


def base_ms(search: SearchConfig, table: LatencyTable) -> float:
    """The table's prediction of the space's base network (every position's first candidate)."""
    from hwnas.nas.objective import latency_model

    space = search.spec.create()
    return latency_model(table, space.positions(search.image_size), space.fixed_units(search.image_size)).base_ms


def sweep_rows(results: list[tuple[Point, SearchResult]], out: Path, metric: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, columns): one row per search; `metric` (val_<primary metric>) decides the Pareto front."""
    scores = [metric] + [f"val_{k}" for _, r in results for k in (r.summary.get("val") or {}) if f"val_{k}" != metric]
    columns = HEAD + list(dict.fromkeys(scores)) + TAIL
    rows = []
    for point, result in results:
        s = result.summary
        rows.append({
            "latency_weight": point.mu,
            "target_ratio": point.ratio,
            "target_ms": s.get("target_ms"),
            "seed": point.seed,
            "label": point.label,
            "predicted_ms": s["predicted_ms"],
            "base_ms": s["base_ms"],
            "speedup": s["speedup"],
            **{f"val_{k}": v for k, v in (s.get("val") or {}).items()},
            "params": s["params"],
            "alpha_entropy": s["alpha_entropy"],
            "uniform": s.get("uniform"),
            "run": relative(result.run_dir, out),
        })
    front = pareto_front([(r["predicted_ms"], r.get(metric)) for r in rows])
    for i, row in enumerate(rows):
        row["pareto"] = i in front
    columns += device_columns(results, rows, metric)
    return rows, columns


def device_columns(results: list[tuple[Point, SearchResult]], rows: list[dict[str, Any]], metric: str) -> list[str]:
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


def relative(path: Path, out: Path) -> str:
    """`path` as a path inside the sweep folder `out` when it lies there (however either was written), else as it is."""
    path, out = Path(path), Path(out)
    if path.resolve().is_relative_to(out.resolve()):
        return str(path.resolve().relative_to(out.resolve()))
    return str(path)


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
        ax.annotate(r.get("label") or f"mu={r['latency_weight']:g}", (r["predicted_ms"], r[metric]), textcoords="offset points",
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
