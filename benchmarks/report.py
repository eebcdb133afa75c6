"""Generate benchmarks/RESULTS.md (and its PNG plots) from the CSVs in benchmarks/results/.

Every `<name>.csv` in the results folder is rendered; the known ones specially:

- `latency.csv` (bench_latency.py): median end-to-end ms, ratio to all-`naf`,
  parameters, GMACs; goal: a searched network >= 2x faster than all-`naf`;
- `fidelity.csv` (bench_fidelity.py): table-predicted vs measured, per named run;
  goals, judged on runs where other processes stayed off the CPU, on the scale-free
  error (`hwnas.tables.fidelity`: one common factor per interleaved batch taken out):
  every network within +-10%, mean |error| <= 3%; the absolute error and each batch's
  factor (the machine's drift) are diagnostics; `fidelity_builds.csv`: each run's table
  build (goal: under 2 minutes);
- `search_cost.csv` (bench_search_cost.py): step time and peak memory relative to
  training all-`naf`; goals: sampled <= 1.5x, soft <= 4.5x;
- `quality*.csv` (bench_quality.py): PSNR per network, data set and noise level.

Any other CSV becomes a plain table. Each section names the command(s) that produced
its numbers, the machine and library versions, from the CSV's `<name>.meta.json`
sidecar. Every goal is checked against the numbers; a missed goal is marked MISSED
with the likely cause the numbers point to. Nothing on the page is typed by hand:
rerun this script after any benchmark.

    python benchmarks/report.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
MAX_ROWS = 40  # rows of an unknown CSV shown on the page

LATENCY_GOAL = 2.0  # searched >= 2x faster than all-naf
FIDELITY_MAX_PCT, FIDELITY_MEAN_PCT = 10.0, 5.0  # absolute error: a diagnostic (issue 12's goal, before drift was known)
SCALE_FREE_MEAN_PCT = 3.0  # fp32 table, scale-free mean |error| (issue 24); every network within FIDELITY_MAX_PCT
SEARCH_COST_GOALS = {"sampled": 1.5, "soft": 4.5}  # weight update vs an all-naf training step
INT8_GOAL_DB, INT8_STRETCH_DB = 0.3, 0.1  # dB an int8 file may lose to its fp32 file (issue 24; stretch)


@dataclass
class Goal:
    benchmark: str
    goal: str
    result: str
    met: bool | None  # None: not measured
    cause: str = ""  # why it was missed, from the numbers
    note: str = ""  # a caveat on a met goal (e.g. within the noise)

    def __post_init__(self) -> None:
        self.met = None if self.met is None else bool(self.met)  # numpy booleans are not `False`

    @property
    def status(self) -> str:
        return {True: "met", False: "**MISSED**", None: "not measured"}[self.met]


@dataclass
class Section:
    title: str
    body: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)  # plots this section drew


# -- small helpers -----------------------------------------------------------------------------


def md_table(headers: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def read_meta(results: Path, stem: str) -> dict:
    """`<stem>.meta.json`, else that of the longest `_`-separated prefix (quality_x.csv -> quality)."""
    parts = stem.split("_")
    for n in range(len(parts), 0, -1):
        path = results / f"{'_'.join(parts[:n])}.meta.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return {}
    return {}


def provenance(meta: dict, csv_name: str) -> list[str]:
    """How the numbers were made: commands of every run, machine, load, versions, settings."""
    if not meta:
        return [f"*No sidecar for `{csv_name}`: the command and machine that produced it are unknown.*"]
    m = meta.get("machine", {})
    lines = [f"Produced by (`results/{csv_name}`, last run {meta.get('date', '?')}):", ""]
    for run in meta.get("runs", []) or [{"command": meta.get("command", "?")}]:
        load = ""
        if run.get("load_start") or run.get("load_end"):
            load = f"; load average {_load(run.get('load_start'))} at start, {_load(run.get('load_end'))} at end"
        lines.append(f"- `{run.get('command', '?')}` ({_status(run)}, {run.get('started', '?')}{load})")
    for name, search in (meta.get("searches") or {}).items():
        lines.append(f"- search `{name}`: `{search.get('command', '?')}`")
    versions = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())
    lines += ["", f"Machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores usable "
              f"({m.get('logical_cpus', '?')} logical), {m.get('platform', '?')}, Python {m.get('python', '?')}. "
              f"Versions: {versions or '?'}."]
    settings = meta.get("settings") or {}
    if settings:
        lines.append("Settings: " + "; ".join(f"{k}={v}" for k, v in settings.items()) + ".")
    if settings.get("lut"):  # a file name under results/lut/, or a path from the repository root
        lut = settings["lut"] if "/" in str(settings["lut"]) else f"benchmarks/results/lut/{settings['lut']}"
        lines.append(f"The latency table it used is kept as `{lut}` (+ its sidecar): rerun with `--lut {lut}`.")
    for note in meta.get("notes") or []:
        lines.append(f"Note: {note}")
    return lines


def _status(run: dict) -> str:
    """A run's recorded status; "running" is all a run killed with its session leaves behind, so the page says both."""
    status = run.get("status", "?")
    return "no end recorded: stopped, or still running" if status == "running" else status


def _load(values) -> str:
    return "/".join(str(v) for v in values) if values else "?"


def image(path: Path, out: Path, alt: str) -> str:
    return f"![{alt}]({os.path.relpath(path, out.parent)})"


def mean_load(meta: dict) -> float | None:
    """Mean 1-minute load average over the runs' starts and ends (None if not recorded)."""
    values = [run[k][0] for run in meta.get("runs", []) for k in ("load_start", "load_end") if run.get(k)]
    return sum(values) / len(values) if values else None


def goal_lines(goals: list[Goal]) -> list[str]:
    """One line per goal, then each distinct likely cause of the missed ones, once."""
    lines = [f"- **Goal** ({g.goal}): {g.result} -- {g.status}." + (f" {g.note}" if g.note else "") for g in goals]
    causes = list(dict.fromkeys(g.cause for g in goals if g.met is False and g.cause))
    return [*lines, *(f"\n*Likely cause:* {c}" for c in causes), ""]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- 1. latency ----------------------------------------------------------------------------------


def latency_summary(df):
    """Per network: median ms over repeats, median per-repeat ratio to all-naf, static facts."""
    import pandas as pd

    base = df[df["network"] == "all-naf"].set_index("repeat")["median_ms"]
    rows = []
    for network, g in df.groupby("network", sort=False):
        ratios = [base[r] / ms for r, ms in zip(g["repeat"], g["median_ms"]) if r in base.index and ms > 0]
        first = g.iloc[0]
        rows.append({
            "network": network, "kind": first["kind"], "ms": g["median_ms"].median(),
            "ms_min": g["median_ms"].min(), "ms_max": g["median_ms"].max(), "repeats": len(g),
            "ratio": float(pd.Series(ratios).median()) if ratios else float("nan"),
            "ratio_min": min(ratios) if ratios else float("nan"), "ratio_max": max(ratios) if ratios else float("nan"),
            "params": first["params"], "gmacs": first["gmacs"], "predicted_ms": first.get("predicted_ms", float("nan")),
            "naf_blocks": first.get("naf_blocks", ""), "choices": first.get("choices", ""),
        })
    return pd.DataFrame(rows)


def latency_plot(summary, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(summary) + 1.5))
    colors = ["tab:blue" if k == "uniform" else "tab:red" for k in summary["kind"]]
    y = range(len(summary))
    ax.barh(list(y), summary["ms"], xerr=[summary["ms"] - summary["ms_min"], summary["ms_max"] - summary["ms"]],
            color=colors, capsize=3)
    for i, (ms, top, ratio) in enumerate(zip(summary["ms"], summary["ms_max"], summary["ratio"])):
        ax.text(top, i, f"  {ms:.0f} ms, {ratio:.2f}x", va="center", fontsize=8)
    base = summary.loc[summary["network"] == "all-naf", "ms"]
    if not base.empty:
        ax.axvline(base.iloc[0] / LATENCY_GOAL, ls="--", lw=1, color="k", label=f"goal: all-naf / {LATENCY_GOAL:g}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(list(y), summary["network"])
    ax.invert_yaxis()
    ax.set_xlabel("end-to-end latency, ms (median over repeats; bars: min-max)")
    ax.set_title("ONNX Runtime CPU, paper preset, 256x256 (blue: uniform, red: searched)")
    ax.set_xlim(0, summary["ms_max"].max() * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency_goal(summary) -> Goal:
    searched = summary[summary["kind"] == "searched"]
    text = f"a searched network >= {LATENCY_GOAL:g}x faster than all-naf"
    if searched.empty or summary["ratio"].isna().all():
        return Goal("latency", text, "no searched network measured", None)
    best = searched.loc[searched["ratio"].idxmax()]
    result = f"best: {best['network']} {best['ratio']:.2f}x ({best['ms']:.0f} ms)"
    if best["ratio"] >= LATENCY_GOAL:
        note = ("" if best["ratio_min"] >= LATENCY_GOAL else
                f"But its per-repeat speed-ups ({best['ratio_min']:.2f}-{best['ratio_max']:.2f}x) straddle the goal: "
                "within this machine's noise; more repeats on a quieter machine would settle it.")
        return Goal("latency", text, result, True, note=note)
    return Goal("latency", text, result, False, latency_cause(summary, best))


def latency_cause(summary, best) -> str:
    uniform = summary[summary["kind"] == "uniform"]
    fastest = uniform.loc[uniform["ratio"].idxmax()] if not uniform.empty else None
    base = summary[summary["network"] == "all-naf"]
    if fastest is not None and fastest["ratio"] < LATENCY_GOAL:
        return (f"even the fastest uniform network ({fastest['network']}, {fastest['ratio']:.2f}x) is below "
                f"{LATENCY_GOAL:g}x on this CPU, so no architecture of this space can reach it here: the alternatives "
                "save less on a CPU than on the SM8650 NPU the paper targets, where LayerNorm and the global-pool "
                "attention stall the pipeline.")
    predicted_ratio = (base["predicted_ms"].iloc[0] / best["predicted_ms"]) if not base.empty and best["predicted_ms"] else float("nan")
    if predicted_ratio >= LATENCY_GOAL:
        return (f"the table predicted {predicted_ratio:.2f}x for {best['network']} but it measured {best['ratio']:.2f}x "
                "end to end: the table's per-block sums miss this network (see the fidelity section).")
    return (f"{best['network']} kept {best['naf_blocks']} `naf` blocks (table-predicted {predicted_ratio:.2f}x) while "
            f"{fastest['network'] if fastest is not None else 'a uniform network'} reaches "
            f"{fastest['ratio']:.2f}x: the search did not trade enough quality for speed -- a larger mu "
            "(--latency-weight), a --target-ms, or a longer search would.")


def load_note(summary, meta: dict) -> str:
    """A caveat when absolute times are far off the table's: the machine was loaded."""
    base = summary[summary["network"] == "all-naf"]
    if base.empty or not base["predicted_ms"].iloc[0] > 0:
        return ""
    factor = base["ms"].iloc[0] / base["predicted_ms"].iloc[0]
    if 0.75 <= factor <= 1.3:
        return ""
    load = mean_load(meta)
    busy = f" (mean load average {load:.1f} on {(meta.get('machine') or {}).get('cores', '?')} cores)" if load else ""
    return (f" Absolute times here are {factor:.1f}x the table's for all-naf: the machine ran under another load than "
            f"when the table was built{busy}. The speed-ups, taken within interleaved repeats, are the numbers to read.")


def latency_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("Latency: searched vs uniform networks (ONNX Runtime, CPU)")
    summary = latency_summary(df)
    png = results / "latency.png"
    latency_plot(summary, png)
    s.pngs.append(png)
    rows = [[r["network"], r["kind"], fmt(r["ms"]), f"{fmt(r['ms_min'])}-{fmt(r['ms_max'])}", r["repeats"],
             f"{fmt(r['ratio'], 2)}x ({fmt(r['ratio_min'], 2)}-{fmt(r['ratio_max'], 2)})", fmt(r["params"] / 1e6, 2),
             fmt(r["gmacs"], 1), fmt(r["predicted_ms"]), r["naf_blocks"]] for _, r in summary.iterrows()]
    goal = latency_goal(summary)
    s.goals.append(goal)
    s.body += [
        "End-to-end latency of whole networks at 1x3x256x256, all measured in the same run with the same settings; "
        "each repeat interleaves every network round by round. Speed-up = all-naf ms / network ms within a repeat "
        "(median over repeats, range in brackets). Parameters and GMACs (multiply-accumulates of convolutions "
        "and matrix products, `hwnas.tables.cost`) as `hwnas describe` counts them; the table-predicted ms is what the "
        "search optimised." + load_note(summary, meta),
        "",
        md_table(["network", "kind", "ms (median)", "ms range", "repeats", "speed-up vs all-naf", "params (M)",
                  "GMACs", "table-predicted ms", "naf blocks"], rows),
        "",
        image(png, out, "latency per network"),
        "",
        *goal_lines([goal]),
    ]
    searched = summary[summary["kind"] == "searched"]
    if not searched.empty:
        s.body += ["", "Searched architectures (candidate per position, encoder to decoder):", ""]
        s.body += [f"- {r['network']}: {r['choices']}" for _, r in searched.iterrows()]
    return s


# -- 2. fidelity -------------------------------------------------------------------------------------

QUIET_CORES = 0.25  # a run the goals judge: other processes kept at most this many cores busy (hwnas.tables.machine_load)
BUILD_GOAL_S = 120.0  # `hwnas build-lut` of the paper table


@dataclass
class FidelityRun:
    """One named run of bench_fidelity.py: its table, the errors, and how busy the machine was."""

    label: str
    lut: str
    created: str
    n: int
    mean_abs: float
    worst: float
    mean: float
    within: int
    spread: float  # median p10-p90 spread of a network's own runs, % of its median
    same: dict | None  # the same statistics against the table's units timed in the networks' rounds
    other_cores: float | None  # the most other processes kept busy while a batch ran
    load: float | None  # mean 1-minute load average at the end of its batches
    free: dict | None = None  # the scale-free statistics (None: the rows carry no batches)
    factors: tuple[float, ...] = ()  # each batch's common factor, % (the drift the scale-free error takes out)
    inferred: bool = False  # batches inferred from the batch size and the per-batch load record

    @property
    def quiet(self) -> bool:
        return self.other_cores is not None and self.other_cores <= QUIET_CORES

    @property
    def met_absolute(self) -> bool:
        return self.within == self.n and self.mean_abs <= FIDELITY_MEAN_PCT


def _errors(err) -> dict:
    return {"n": int(len(err)), "mean_abs": float(err.abs().mean()), "worst": float(err.loc[err.abs().idxmax()]),
            "mean": float(err.mean()), "within": int((err.abs() <= FIDELITY_MAX_PCT).sum())}


def fidelity_batches(part, batch_size: int | None) -> tuple[list | None, bool]:
    """(each row's interleaved batch, whether inferred). Rows from before the `batch` column: the
    run's networks went `batch_size` at a time in seed order, and bench_fidelity recorded the
    machine's load once per batch, so an inferred batch is trusted only if its rows share one
    load record. (None, False) when neither says."""
    if "batch" in part and part["batch"].notna().all():
        return list(part["batch"]), False
    if not batch_size:
        return None, False
    guess = [i // batch_size for i in range(len(part))]
    record = [c for c in ("load_1min", "other_cores") if c in part]
    if not record or part[record].astype(str).groupby(guess).nunique().max().max() > 1:
        return None, False
    return guess, True


def scale_free(part, batches: list) -> tuple[dict, tuple[float, ...]]:
    """The scale-free statistics of rows (`_errors` keys) and each batch's factor in %."""
    import pandas as pd

    from hwnas.tables.fidelity import batch_factors, scale_free_errors

    predicted, measured = list(part["predicted_ms"]), list(part["measured_ms"])
    errors = pd.Series([e for e in scale_free_errors(predicted, measured, batches) if e is not None], dtype=float)
    factors = batch_factors(predicted, measured, batches)
    return _errors(errors), tuple(100.0 * (f - 1.0) for f in factors.values())


def scale_free_column(df, batch_size: int | None):
    """Each row's scale-free error in % (NaN where its run's batches are unknown or it was alone in its batch)."""
    import pandas as pd

    from hwnas.tables.fidelity import scale_free_errors

    column = pd.Series(float("nan"), index=df.index)
    for _, part in df.groupby("run", sort=False):
        batches, _ = fidelity_batches(part, batch_size)
        if batches is not None:
            errors = scale_free_errors(list(part["predicted_ms"]), list(part["measured_ms"]), batches)
            column[part.index] = [float("nan") if e is None else e for e in errors]
    return column


def fidelity_runs(df, batch_size: int | None = None) -> list[FidelityRun]:
    runs = []
    for label, part in df.groupby("run", sort=False):
        e = _errors(part["error_pct"])
        same = None
        if "error_same_rounds_pct" in part and part["error_same_rounds_pct"].notna().any():
            same = _errors(part["error_same_rounds_pct"].dropna())
        other = part["other_cores"].max() if "other_cores" in part and part["other_cores"].notna().any() else None
        load = part["load_1min"].mean() if "load_1min" in part and part["load_1min"].notna().any() else None
        spread = 100.0 * ((part["p90_ms"] - part["p10_ms"]) / part["measured_ms"]).median()
        batches, inferred = fidelity_batches(part, batch_size)
        free, factors = scale_free(part, batches) if batches is not None else (None, ())
        runs.append(FidelityRun(str(label), str(part["lut"].iloc[0]) if "lut" in part else "?",
                                str(part["lut_created"].iloc[0]) if "lut_created" in part else "?", e["n"], e["mean_abs"],
                                e["worst"], e["mean"], e["within"], float(spread), same,
                                None if other is None else float(other), None if load is None else float(load),
                                free, factors, inferred))
    return runs


def fidelity_plot(df, runs: list[FidelityRun], path: Path) -> None:
    """Predicted vs measured, one colour per run: filled markers the run's table, hollow ones its
    units timed again in the networks' rounds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6))
    same = "predicted_same_rounds_ms" in df.columns and df["predicted_same_rounds_ms"].notna().any()
    columns = ["measured_ms", "predicted_ms"] + (["predicted_same_rounds_ms"] if same else [])
    lo, hi = df[columns].min().min() * 0.85, df[columns].max().max() * 1.1
    xs = [lo, hi]
    ax.fill_between(xs, [x * 0.9 for x in xs], [x * 1.1 for x in xs], color="tab:green", alpha=0.15, label="+-10%")
    ax.plot(xs, xs, "k-", lw=1, label="predicted = measured")
    if same:
        ax.scatter([], [], facecolors="none", edgecolors="k", s=30, label="units timed in the networks' rounds (hollow)")
    for i, run in enumerate(runs):
        part = df[df["run"] == run.label]
        color = f"C{i % 10}"
        state = "quiet" if run.quiet else "under load"
        ax.scatter(part["measured_ms"], part["predicted_ms"], color=color, s=30,
                   label=f"run {run.label}: table {run.lut} ({state})")
        if same:
            ax.scatter(part["measured_ms"], part["predicted_same_rounds_ms"], facecolors="none", edgecolors=color, s=30)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured end to end, ms (median of its runs)")
    ax.set_ylabel("table-predicted, ms")
    ax.set_title("Latency table vs measurement (paper preset, 256x256)")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fidelity_cause(run: FidelityRun) -> str:
    """Why a quiet run's absolute error is large, from its numbers: the machine's drift since the build, a bias of
    the method, or noise."""
    same = run.same
    against_same = ("" if same is None else
                    f"against the table's units timed again in the networks' own rounds, mean |error| is "
                    f"{same['mean_abs']:.1f}% (worst {same['worst']:+.1f}%, {same['within']}/{same['n']} within "
                    f"+-{FIDELITY_MAX_PCT:g}%)")
    if same is not None and same["mean_abs"] <= FIDELITY_MEAN_PCT:
        return (f"the machine ran at another speed when the table was built than when the networks were measured: "
                f"{against_same}, so the per-unit method holds and the error (signed mean {run.mean:+.1f}%) is the "
                "machine's drift between the two moments, which no table can know.")
    if abs(run.mean) >= 0.5 * run.mean_abs:
        side = "over" if run.mean > 0 else "under"
        return (f"the table {side}-predicts on average (signed mean {run.mean:+.1f}%)"
                f"{'; ' + against_same if against_same else ''}.")
    return (f"the errors scatter on both sides (signed mean {run.mean:+.1f}%); the median p10-p90 spread of a network's "
            f"own runs is {run.spread:.0f}%, so timing noise is of the same size.")


def _factors(factors: tuple[float, ...]) -> str:
    return ", ".join(f"{f:+.1f}%" for f in factors) or "n/a"


def _run_row(r: FidelityRun) -> list:
    same = "n/a" if r.same is None else f"{r.same['mean_abs']:.1f}% (worst {r.same['worst']:+.1f}%)"
    judged = "goal" if r.quiet else "diagnostic (machine busy)"
    free = ["n/a"] * 3 if r.free is None else [f"{r.free['mean_abs']:.1f}%", f"{r.free['worst']:+.1f}%",
                                                f"{r.free['within']}/{r.free['n']}"]
    return [r.label, f"`{r.lut}` ({r.created})", r.n, *free, _factors(r.factors) + (" (inferred)" if r.inferred else ""),
            f"{r.mean_abs:.1f}%", f"{r.worst:+.1f}%", f"{r.within}/{r.n}", f"{r.mean:+.1f}%", same, fmt(r.other_cores, 2),
            fmt(r.load), judged]


def scale_free_goals(what: str, free: dict | None, mean_pct: float, benchmark: str = "fidelity") -> list[Goal]:
    """Two goals on a scale-free summary (`_errors` keys): every network within +-10%, mean |error| <= `mean_pct`."""
    if free is None:
        return [Goal(benchmark, f"{what}: scale-free, every network within +-{FIDELITY_MAX_PCT:g}% and mean |error| <= "
                     f"{mean_pct:g}%", "rows carry no batch", None,
                     note="rerun the benchmark: its rows now record the batch each network was timed in")]
    all_in = free["within"] == free["n"]
    return [Goal(benchmark, f"{what}: scale-free, every network within +-{FIDELITY_MAX_PCT:g}%",
                 f"{free['within']}/{free['n']} within; worst {free['worst']:+.1f}%", all_in,
                 "" if all_in else "the table misranks these networks against the others timed beside them"),
            Goal(benchmark, f"{what}: scale-free mean |error| <= {mean_pct:g}%", f"{free['mean_abs']:.1f}%",
                 free["mean_abs"] <= mean_pct,
                 "" if free["mean_abs"] <= mean_pct else "the per-unit sum misses the networks' relative latency")]


def fidelity_goals(runs: list[FidelityRun]) -> list[Goal]:
    """Two goals per quiet run, on the scale-free error; measurements under load are diagnostics, never a verdict."""
    goals = []
    for r in runs:
        if r.quiet:
            goals += scale_free_goals(f"run {r.label} (table `{r.lut}`)", r.free, SCALE_FREE_MEAN_PCT)
    if not goals:
        goals.append(Goal("fidelity", f"scale-free mean |error| <= {SCALE_FREE_MEAN_PCT:g}% and every network within "
                          f"+-{FIDELITY_MAX_PCT:g}% on a quiet machine", "no quiet run", None,
                          note=f"every run had other processes using more than {QUIET_CORES:g} cores"))
    return goals


def absolute_lines(runs: list[FidelityRun]) -> list[str]:
    """The absolute error of quiet runs against the old goal (mean <= 5%, all within +-10%), with its likely cause."""
    lines = []
    for r in runs:
        if r.quiet and not r.met_absolute:
            lines.append(f"- run {r.label}: absolute mean |error| {r.mean_abs:.1f}%, {r.within}/{r.n} within "
                         f"+-{FIDELITY_MAX_PCT:g}% -- {fidelity_cause(r)}")
    return lines


def fidelity_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("Latency-table fidelity: predicted vs measured end to end")
    if "run" not in df.columns:
        df = df.assign(run="unnamed")
    df = df.sort_values(["run", "seed"], kind="stable")
    runs = fidelity_runs(df, (meta.get("settings") or {}).get("batch"))
    png = results / "fidelity.png"
    fidelity_plot(df, runs, png)
    s.pngs.append(png)
    s.goals += fidelity_goals(runs)
    loaded = [r for r in runs if not r.quiet]
    s.body += [
        "Random architectures of the paper preset (seed = `random_architecture` seed), measured end to end with the "
        "table's backend and protocol (`hwnas.tables.profiling.profile_architectures`, as `hwnas profile "
        "--random-count`); error = (predicted - measured) / measured. Predicted: the table's fixed parts plus the "
        "chosen candidate per position, what the search optimises. Each run builds its table first with plain "
        "`hwnas build-lut --force` (see the builds below).",
        "",
        "The goals judge the *scale-free* error (`hwnas.tables.fidelity`): each network's predicted/measured ratio "
        "divided by the geometric-mean ratio of the networks timed in the same interleaved batch -- one common factor "
        "per batch, the machine's speed while that batch ran, which moves by tens of percent within minutes here (see "
        "the drift section). It asks what a search asks of a table: which network is faster, and by how much. The "
        "absolute error, each batch's factor (what was taken out: the machine's drift since the build, plus any bias "
        "common to all networks) and 'same rounds' (the table's units timed again in "
        "the networks' own rounds: the per-unit method's own error without the drift since the build) are "
        "diagnostics. A run is judged when other processes kept at most "
        f"{QUIET_CORES:g} cores busy while its networks were measured (`other cores`, from /proc/stat, our own "
        "threads excluded).",
        "",
        md_table(["run", "table (built)", "networks", "scale-free mean |error|", "scale-free worst",
                  "scale-free within +-10%", "batch factors", "absolute mean |error|", "absolute worst",
                  "absolute within +-10%", "signed mean", "same rounds: mean |error|", "other cores (max)", "load (1 min)",
                  "judged as"], [_run_row(r) for r in runs]),
        "",
    ]
    if any(r.inferred for r in runs):
        s.body += [f"(inferred): rows written before bench_fidelity recorded each network's batch; the run timed its "
                   f"networks {(meta.get('settings') or {}).get('batch')} at a time in seed order, and each inferred "
                   "batch's rows share the one load record bench_fidelity writes per batch.", ""]
    absolute = absolute_lines(runs)
    if absolute:
        s.body += [f"Absolute error of the judged runs, against the earlier goal (mean |error| <= {FIDELITY_MEAN_PCT:g}%, "
                   f"every network within +-{FIDELITY_MAX_PCT:g}%), a diagnostic:", "", *absolute, ""]
    if loaded:
        s.body += [f"Runs measured while other processes used the CPU ({', '.join(r.label for r in loaded)}) are shown "
                   "for what they say about contention, not as the goals' verdict.", ""]
    counts = [c for c in df.columns if c.startswith("n_")]
    same = "error_same_rounds_pct" in df.columns and df["error_same_rounds_pct"].notna().any()
    free = scale_free_column(df, (meta.get("settings") or {}).get("batch"))
    headers = ["run", "seed", "predicted ms", "measured ms", "measured p10-p90", "error", "scale-free error"]
    headers += ["same rounds ms", "same rounds error"] if same else []
    headers += ["other cores", "load (1 min)", "blocks"]
    rows = []
    for i, r in df.iterrows():
        row = [r["run"], int(r["seed"]), fmt(r["predicted_ms"]), fmt(r["measured_ms"]),
               f"{fmt(r['p10_ms'])}-{fmt(r['p90_ms'])}", f"{r['error_pct']:+.1f}%",
               "n/a" if math.isnan(free[i]) else f"{free[i]:+.1f}%"]
        if same:
            row += [fmt(r["predicted_same_rounds_ms"]), "n/a" if math.isnan(r["error_same_rounds_pct"]) else f"{r['error_same_rounds_pct']:+.1f}%"]
        row += [fmt(r.get("other_cores"), 2), fmt(r.get("load_1min")), " ".join(f"{c[2:]}:{int(r[c])}" for c in counts)]
        rows.append(row)
    s.body += ["<details><summary>Every network</summary>", "", md_table(headers, rows), "", "</details>", "",
               image(png, out, "predicted vs measured latency"), ""]
    s.body += goal_lines(s.goals)
    return s


def fidelity_builds_section(df, meta: dict, results: Path, out: Path) -> Section:
    """`hwnas build-lut` of each fidelity run's table: seconds, load, units flagged noisy; goal: under 2 minutes."""
    s = Section("Latency-table builds (`hwnas build-lut`, paper preset, 256x256)")
    rows, quiet = [], []
    for _, r in df.iterrows():
        is_quiet = not math.isnan(r.get("other_cores", float("nan"))) and r["other_cores"] <= QUIET_CORES
        if is_quiet:
            quiet.append(float(r["seconds"]))
        rows.append([r["run"], f"`{r['lut']}`", r["created"], f"{r['seconds']:.1f}", int(r["units"]), fmt(r.get("runs"), 0),
                     fmt(r.get("load_1min_start")), fmt(r.get("other_cores"), 2), int(r.get("noisy_units", 0) or 0),
                     fmt(r.get("extra_passes"), 0), "quiet" if is_quiet else
                     "not recorded" if math.isnan(r.get("other_cores", float("nan"))) else "busy"])
    s.body += ["Each fidelity run's table, built by plain `hwnas build-lut --force` (default settings) right before it; "
               "`other cores`: what other processes kept busy meanwhile; `noisy`: rows whose repeated passes still "
               "disagreed by more than the backend trusts after its extra passes.", "",
               md_table(["run", "table", "created", "seconds", "units", "timed rounds", "load at start", "other cores",
                         "noisy rows", "extra passes", "machine"], rows), ""]
    worst = max(quiet) if quiet else None
    s.goals.append(Goal("build-lut", f"paper table built in under {BUILD_GOAL_S / 60:g} minutes (quiet machine)",
                        "no quiet build" if worst is None else f"slowest quiet build {worst:.0f} s",
                        None if worst is None else worst <= BUILD_GOAL_S,
                        "" if worst is None or worst <= BUILD_GOAL_S else "the timed rounds outlast the budget; lower --runs"))
    s.body += goal_lines(s.goals)
    return s


# -- 3. search cost -------------------------------------------------------------------------------------


def search_cost_summary(df):
    import pandas as pd

    g = df.groupby("variant", sort=False)
    out = pd.DataFrame({"time_s": g["median_s"].median(), "peak_mb": g["peak_mb"].median(), "rounds": g.size(),
                        "params": g["params"].first() if "params" in df.columns else float("nan")}).reset_index()
    base = out[out["variant"] == "naf:train"]
    t0 = base["time_s"].iloc[0] if not base.empty else float("nan")
    m0 = base["peak_mb"].iloc[0] if not base.empty else float("nan")
    out["time_ratio"] = out["time_s"] / t0
    out["mem_ratio"] = out["peak_mb"] / m0
    return out


def search_cost_plot(summary, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    x = list(range(len(summary)))
    ax.bar([i - 0.2 for i in x], summary["time_ratio"], width=0.4, label="time / all-naf step", color="tab:blue")
    ax.bar([i + 0.2 for i in x], summary["mem_ratio"], width=0.4, label="peak memory / all-naf step", color="tab:orange")
    for i, (t, m) in enumerate(zip(summary["time_ratio"], summary["mem_ratio"])):
        ax.text(i - 0.2, t, f"{t:.2f}", ha="center", va="bottom", fontsize=7)
        ax.text(i + 0.2, m, f"{m:.2f}", ha="center", va="bottom", fontsize=7)
    for mode, goal in SEARCH_COST_GOALS.items():
        ax.axhline(goal, ls="--", lw=1, color="tab:red" if mode == "soft" else "tab:green", label=f"goal {mode} <= {goal:g}x")
    ax.set_xticks(x, summary["variant"], rotation=20, ha="right")
    ax.set_ylabel("ratio to one all-naf training step")
    ax.set_title("Search cost, paper preset (weight update = the goals)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def search_cost_goals(summary) -> list[Goal]:
    goals = []
    by = summary.set_index("variant")
    base_params = by["params"].get("naf:train", float("nan"))
    for mode, limit in SEARCH_COST_GOALS.items():
        variant = f"{mode}:weight"
        for what, col in (("time", "time_ratio"), ("peak memory", "mem_ratio")):
            text = f"{mode} weight update <= {limit:g}x an all-naf training step ({what})"
            if variant not in by.index or math.isnan(by.loc[variant, col]):
                goals.append(Goal("search cost", text, "not measured", None))
                continue
            ratio = float(by.loc[variant, col])
            cause = "" if ratio <= limit else search_cost_cause(mode, what, ratio, by.loc[variant, "params"], base_params)
            goals.append(Goal("search cost", text, f"{ratio:.2f}x", ratio <= limit, cause))
    return goals


def search_cost_cause(mode: str, what: str, ratio: float, params: float, base_params: float) -> str:
    weights = f"the super-net holds {params / 1e6:.1f} M parameters against {base_params / 1e6:.1f} M of all-naf"
    if mode == "soft":
        return (f"soft mode runs all four candidates at every position and keeps all their activations for the "
                f"backward pass; {weights}, all of them with gradients and AdamW state.")
    if what == "peak memory":
        return (f"{weights}: they stay resident although one path trains per step, so at small crops the weights, not "
                "the activations, dominate memory; larger crops or batches lower the ratio.")
    return ("the sampled path is drawn from uniform alpha, so it is a random mix of the four candidates; per-step "
            "Python overhead of the super-net (Gumbel draw, gating, optimiser over all parameter groups) adds to it, "
            "which weighs more at small crops.")


def search_cost_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("Search cost: super-net steps vs training all-naf")
    summary = search_cost_summary(df)
    png = results / "search_cost.png"
    search_cost_plot(summary, png)
    s.pngs.append(png)
    s.goals += search_cost_goals(summary)
    first = df.iloc[0]
    rows = [[r["variant"], fmt(r["time_s"], 2), f"{fmt(r['time_ratio'], 2)}x", fmt(r["peak_mb"], 0),
             f"{fmt(r['mem_ratio'], 2)}x", fmt(r["params"] / 1e6, 1), int(r["rounds"])] for _, r in summary.iterrows()]
    s.body += [
        f"Paper preset, batch {first['batch_size']} x crop {first['crop']}, {first['threads']} torch thread(s). "
        "`naf:train` is one training step of the all-naf network (`hwnas train`); `<mode>:weight` one weight update "
        "of the super-net, `<mode>:arch` one architecture step (logits, held-out batch), `<mode>:iteration` both "
        "(one bilevel iteration of `hwnas search`). Time: median step; peak memory: peak RSS of the variant's own "
        "process minus its RSS just before the network was built. Medians over rounds.",
        "",
        md_table(["variant", "s/step", "time vs naf", "peak MB", "memory vs naf", "params (M)", "rounds"], rows),
        "",
        image(png, out, "search cost ratios"),
        "",
    ]
    s.body += goal_lines(s.goals)
    return s


# -- quality (bench_quality.py) and anything else -------------------------------------------------------


def quality_section(df, meta: dict, results: Path, out: Path, stem: str) -> Section:
    s = Section(f"Quality ({stem}.csv)")
    needed = {"network", "dataset", "sigma", "psnr"}
    if not needed <= set(df.columns):
        return generic_section(df, meta, results, out, stem)
    index = [c for c in ("kind", "network", "predicted_ms") if c in df.columns]
    # Rows without a latency (the classical CBM3D reference) would vanish from a pivot on NaN keys.
    df = df.assign(**{c: df[c].astype(object).where(df[c].notna(), "-") for c in index})
    pivot = df.pivot_table(index=index, columns=["dataset", "sigma"], values="psnr", aggfunc="mean", sort=False)
    headers = index + [f"{d} s={sg}" for d, sg in pivot.columns]
    rows = [[*(key if isinstance(key, tuple) else (key,)), *(fmt(v, 2) for v in vals)] for key, vals in zip(pivot.index, pivot.values)]
    s.body += ["PSNR (dB) per network, data set and noise level sigma.", "", md_table(headers, rows), ""]
    return s


def generic_section(df, meta: dict, results: Path, out: Path, stem: str) -> Section:
    s = Section(f"{stem}.csv")
    shown = df.head(MAX_ROWS)
    rows = [[fmt(v, 3) if isinstance(v, float) else v for v in row] for row in shown.itertuples(index=False)]
    s.body += [md_table(list(df.columns), rows)]
    if len(df) > MAX_ROWS:
        s.body.append(f"\n({len(df) - MAX_ROWS} more rows in `results/{stem}.csv`.)")
    s.body.append("")
    return s


def largest_change(rows: list[dict], window_s: float) -> float:
    """The largest |ratio - 1| in % between two round medians at most `window_s` apart (rows in time order;
    bench_drift.py's summary and the drift section both use it)."""
    worst = 0.0
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if b["t_s"] - a["t_s"] > window_s:
                break
            worst = max(worst, abs(b["median_ms"] / a["median_ms"] - 1) * 100, abs(a["median_ms"] / b["median_ms"] - 1) * 100)
    return worst


def drift_section(df, meta: dict, results: Path, out: Path) -> Section:
    """How far the machine's speed moves by itself: one network timed round after round (bench_drift.py)."""
    s = Section("How far this machine's speed moves by itself (drift.csv)")
    s.body += ["One fixed network (all-naf, paper preset, 256x256, ONNX Runtime 2 threads) timed round after round with "
               "nothing else changing; per run: the spread of the round medians around their median, and the largest "
               "change between two rounds at most 5 minutes apart. 'Steal': the share of our CPU time the hypervisor "
               "gave to other guests. A latency table is a snapshot of one moment, so this bounds what any table can "
               "promise for networks timed minutes later on this machine.", ""]
    rows = []
    for run, part in df.groupby("run", sort=False):
        mid = float(part.median_ms.median())
        rel = 100.0 * (part.median_ms / mid - 1)
        rows.append([run, len(part), fmt(float(part.t_s.max()) / 60, 1), fmt(mid, 1), f"{rel.min():+.1f}% .. {rel.max():+.1f}%",
                     f"{int((rel.abs() <= 10).sum())}/{len(part)}", fmt(largest_change(part[["t_s", "median_ms"]].to_dict("records"), 300), 1) + "%",
                     f"{fmt(float(part.steal_pct.mean()), 2)}% (max {fmt(float(part.steal_pct.max()), 1)}%)",
                     fmt(float(part.other_cores.max()), 2)])
    s.body += [md_table(["run", "rounds", "minutes", "median ms", "round medians vs median", "within +-10%",
                         "largest change within 5 min", "steal mean (max)", "other cores (max)"], rows), ""]
    return s


KNOWN: dict[str, Callable] = {"latency": latency_section, "fidelity": fidelity_section,
                              "fidelity_builds": fidelity_builds_section, "drift": drift_section,
                              "search_cost": search_cost_section}


SECTION_MODULES = ("report_paper", "report_devices", "report_front", "report_int8")  # modules beside this one with more sections


def _paper_sections() -> dict[str, Callable]:
    """The sections of the paper-scale benchmarks and the others in SECTION_MODULES, from their
    own modules beside this one (which take Goal, Section and the formatting helpers from here,
    whatever this module is named)."""
    import importlib.util

    sections: dict[str, Callable] = {}
    for name in SECTION_MODULES:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        module.report = sys.modules[__name__]
        spec.loader.exec_module(module)
        sections.update(module.SECTIONS)
    return sections


def section_for(path: Path, results: Path, out: Path) -> Section:
    """The section of one CSV; PNGs named after the CSV that it did not draw (e.g. a
    benchmark's own plots) are shown too."""
    import pandas as pd

    stem = path.stem
    meta = read_meta(results, stem)
    try:
        df = pd.read_csv(path)
    except Exception as err:  # pandas raises many types for malformed files
        return Section(f"{stem}.csv", [f"*Cannot read `results/{path.name}` ({type(err).__name__}); rerun its benchmark.*"])
    if df.empty:
        sec = Section(f"{stem}.csv", [f"*`results/{path.name}` has no rows yet; run its benchmark.*"])
    elif stem in KNOWN:
        sec = KNOWN[stem](df, meta, results, out)
    elif stem in _paper_sections():
        sec = _paper_sections()[stem](df, meta, results, out)
    elif stem.startswith("quality"):
        sec = quality_section(df, meta, results, out, stem)
    else:
        sec = generic_section(df, meta, results, out, stem)
    extra = sorted(p for p in results.glob(f"{stem}*.png") if p not in sec.pngs)
    sec.body += [image(p, out, p.stem) + "\n" for p in extra]
    sec.body += [""] + provenance(meta, path.name)
    return sec


# -- the page --------------------------------------------------------------------------------------------


ORDER = ["paper", "paper_latency", "paper_commit", "latency", "fidelity", "fidelity_builds", "drift", "search_cost",
         "throughput", "precision_quality", "precision_latency", "precision_units", "precision_fidelity", "devices", "devices_measured", "front_plateau", "front_uniform", "front_uniform_latency",
         "front", "front_uniform_lr", "front_uniform_lr_s50", "front_width", "front_width_latency", "front_scratch", "front_scratch_renorm", "front_latency", "front_hold", "padding", "front_int8_quality", "front_int8_latency", "calibration", "calibration_fallback"]


def ordered(csvs: list[Path]) -> list[Path]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(csvs, key=lambda p: (rank.get(p.stem, len(ORDER) + (0 if p.stem.startswith("quality") else 1)), p.name))


def render(results: Path, out: Path) -> str:
    """The page's Markdown (PNGs are written into `results` as a side effect)."""
    csvs = ordered([p for p in results.glob("*.csv") if p.is_file()])
    sections = [section_for(p, results, out) for p in csvs]
    goals = [g for sec in sections for g in sec.goals]
    lines = [
        "# hwnas benchmarks: results",
        "",
        f"Generated by `python benchmarks/report.py` from the CSVs in `{os.path.relpath(results, out.parent)}/` on "
        f"{datetime.now(timezone.utc).astimezone().isoformat(timespec='seconds')}. Do not edit: rerun the benchmarks "
        "(see `benchmarks/README.md`) and this script.",
        "",
        "## Goals",
        "",
    ]
    if goals:
        lines.append(md_table(["benchmark", "goal", "result", "status"], [[g.benchmark, g.goal, g.result, g.status] for g in goals]))
        missed = [g for g in goals if g.met is False]
        open_ = [g for g in goals if g.met is None]
        if missed:
            done = f"{len(missed)} of {len(goals)} goals missed." + (f" {len(open_)} not measured yet." if open_ else "")
        else:
            done = f"All {len(goals)} goals met." if not open_ else \
                f"All {len(goals) - len(open_)} measured goals met; {len(open_)} not measured yet."
        lines += ["", done]
    else:
        lines.append("No benchmark with a goal has results yet.")
    if not csvs:
        lines += ["", f"No CSV in `{results}` yet: run the benchmarks first."]
    for i, sec in enumerate(sections, 1):
        lines += ["", f"## {i}. {sec.title}", "", *sec.body]
    lines += ["", "## Machines", "", *machines(results, csvs)]
    return "\n".join(lines).rstrip() + "\n"


def machines(results: Path, csvs: list[Path]) -> list[str]:
    """One row per CSV: where and when its numbers were taken, with the main library versions."""
    rows = []
    for path in csvs:
        meta = read_meta(results, path.stem)
        m, v = meta.get("machine") or {}, meta.get("versions") or {}
        load = mean_load(meta)
        rows.append([path.name, meta.get("date", "?"), m.get("cpu_model", "?"), m.get("cores", "?"),
                     fmt(load) if load is not None else "?", v.get("torch", "?"), v.get("onnxruntime", "?"),
                     v.get("hwnas", "?")])
    if not rows:
        return ["No results yet."]
    return [md_table(["results", "last run", "CPU", "cores", "mean load average", "torch", "onnxruntime", "hwnas"], rows)]


def write_page(results: Path, out: Path) -> Path:
    text = render(results, out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Example: python benchmarks/report.py")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of CSVs (default benchmarks/results)")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="the page (default benchmarks/RESULTS.md)")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: no results folder {args.results}; run a benchmark first or pass --results DIR.", file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"error: the folder of --out {args.out} does not exist; create it or choose another --out.", file=sys.stderr)
        return 2
    path = write_page(args.results, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
