"""Results-page sections of the latency-quality front (bench_front.py, issue 22).

- `front_plateau.csv`: the training budget B -- each uniform network trained for each
  length, CBSD68 sigma 25, and what doubling the length gained (the plateau test:
  at most PLATEAU_GAIN dB);
- `front_uniform.csv` (+ `front_uniform_latency.csv` when measured): the space's
  quality-latency ranking at B -- every uniform network, mean over its seeds and the
  seed spread, on CBSD68 and Kodak24 at sigma 15/25/50, with parameters, GMACs and the
  measured end-to-end latency;
- `front.csv` (+ `front_latency.csv`, `front_uniform.csv`): the front itself -- every
  searched network and baseline with its measured latency and CBSD68 sigma-25 PSNR, a
  plot, and issue 22's goals (`front_goals`): at each target the searched networks' mean
  beats the baselines' front, interpolated at their latency, by MARGIN_DB and by more
  than their seed spread; no searched network is uniform; stretch: one within all-naf's
  seed spread at <= STRETCH_RATIO x its latency; the best network at least CBM3D's.
  Until front.csv exists the uniform section says what to run.
"""

from __future__ import annotations

import math
from pathlib import Path

# `report` (the page generator) loads this module and sets `report` to itself first.
if "report" not in globals():
    import report  # noqa: F401

Goal, Section, fmt, md_table = report.Goal, report.Section, report.fmt, report.md_table

PLATEAU_GAIN = 0.1  # dB: training 2B steps gains at most this much over B (bench_front.PLATEAU_GAIN)
# The learning rates the front's networks trained at: stage 2's uniform networks at `hwnas train`'s default, the
# sweeps' networks (searched, fine-tuned, baselines) at the search's default, which `hwnas sweep --baselines` uses.
UNIFORM_LR, SWEEP_LR = 0.001, 0.002
NOISE_SIGMA = 50  # the harder noise level of `bench_front_lr.py eval --sigma` that the page has a section for
PLANNED_TARGETS = (0.45, 0.6, 0.75)  # bench_front.TARGETS: a target not swept yet is listed as not measured
PRESET_WIDTH = 16  # the small preset's base width (bench_front_width widens the cheapest block beyond it)
PRESET_BLOCKS = "enc 1,1,2,2 mid 2"  # the small preset's depth (bench_front_width's SHAPES place capacity per level)
BLIND_SIGMA = "0,55"  # bench_front.TRAIN_SIGMA: the front's training noise (bench_front_width --train-sigma)


def doubling_gains(df) -> list[tuple[str, int, float, float]]:
    """(network, B, PSNR at B, gain of 2B over B) for every length whose doubling was trained too."""
    psnr = {(r.network, int(r.steps)): float(r.cbsd68_s25_psnr) for r in df.itertuples()}
    return [(net, b, p, psnr[(net, 2 * b)] - p) for (net, b), p in sorted(psnr.items()) if (net, 2 * b) in psnr]


def plateau_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("The front's training budget: where training plateaus (front_plateau.csv)")
    pivot = df.pivot_table(index="network", columns="steps", values="cbsd68_s25_psnr", aggfunc="mean")
    rows = [[net, *(fmt(v, 2) if v == v else "-" for v in vals)] for net, vals in zip(pivot.index, pivot.values)]
    s.body += ["Uniform networks of the `small` preset trained from scratch for each length (a separate cosine "
               "schedule per length, as a user training that long gets; one torch thread), CBSD68 sigma 25 PSNR (dB):",
               "", md_table(["network", *(f"{c} steps" for c in pivot.columns)], rows), ""]
    gains = doubling_gains(df)
    if gains:
        s.body += [md_table(["network", "B (steps)", "PSNR at B", "gain of 2B over B"],
                            [[n, b, fmt(p, 2), f"{g:+.2f} dB"] for n, b, p, g in gains]), ""]
    s.goals.append(plateau_goal(gains, front_budget(results)))
    return s


def front_budget(results: Path) -> int | None:
    """The budget the front's networks were trained to (front_uniform.csv), if any."""
    return budget_of(_read(results / "front_uniform.csv"))


def budget_of(uniform) -> int | None:
    """The budget of front_uniform.csv's rows (None: not there)."""
    return int(uniform.steps.max()) if uniform is not None else None


def plateau_goal(gains: list[tuple[str, int, float, float]], budget: int | None, lr: float = UNIFORM_LR,
                 key: str = "front_plateau") -> Goal:
    """The plateau test at the front's budget B: every network's 2B run (trained at `lr`) gains at most
    PLATEAU_GAIN dB."""
    goal = f"training 2B gains <= {PLATEAU_GAIN} dB over B (B = {budget or 'not chosen'}, lr {lr})"
    at_b = [(n, g) for n, b, _, g in gains if b == budget]
    if not at_b:
        return Goal(key, goal, f"not measured: no {2 * budget if budget else '2B'}-step runs yet", None)
    net, worst = max(at_b, key=lambda x: x[1])
    return Goal(key, goal, f"largest gain {worst:+.2f} dB ({net})", worst <= PLATEAU_GAIN,
                cause="" if worst <= PLATEAU_GAIN else
                f"not a plateau at B = {budget}: the front compares networks still improving at the same budget")


SCORES = [(d, sg) for d in ("cbsd68", "kodak24") for sg in (15, 25, 50)]


def mean_spread(values) -> str:
    """The mean over seeds, +- half their range when there are several (as every seed spread on the page is given)."""
    mean, spread = float(values.mean()), float(values.max() - values.min()) / 2
    return fmt(mean, 2) + (f" +-{spread:.2f}" if len(values) > 1 else "")


def uniform_ranking(df, latency=None) -> list[list]:
    """One row per uniform network: seeds, PSNR mean (+- half the seed range) per data set and sigma,
    SSIM at CBSD68 sigma 25, params (M), GMACs, measured ms."""
    rows = []
    for net, part in df.groupby("network", sort=False):
        cells = []
        for d, sg in SCORES:
            col = f"{d}_s{sg}_psnr"
            if col not in part:
                cells.append("-")
                continue
            cells.append(mean_spread(part[col]))
        ms = "-"
        if latency is not None and net in set(latency.network):
            ms = fmt(float(latency[latency.network == net].median_ms.median()), 2)
        rows.append([net, ",".join(str(int(x)) for x in part.seed), *cells, fmt(float(part.cbsd68_s25_ssim.mean()), 4),
                     fmt(float(part.params.iloc[0]) / 1e6, 3), fmt(float(part.gmacs.iloc[0]), 3), ms])
    order = [f"{d}_s25_psnr" for d in ("cbsd68",)]
    means = {net: float(part[order[0]].mean()) for net, part in df.groupby("network")}
    return sorted(rows, key=lambda r: -means[r[0]])


def uniform_section(df, meta: dict, results: Path, out: Path) -> Section:
    import pandas as pd

    s = Section("The space's quality-latency ranking at the front's budget (front_uniform.csv)")
    lat_path = results / "front_uniform_latency.csv"
    latency = pd.read_csv(lat_path) if lat_path.exists() else None
    steps = ", ".join(str(int(x)) for x in sorted(set(df.steps)))
    s.body += [f"Every uniform network of the front's space (`small` preset) trained for B = {steps} steps (CBSD432, "
               "blind sigma 0-55, crop 64, batch 8), PSNR (dB) on CBSD68 and Kodak24 at sigma 15/25/50: the mean over "
               "the seeds, +- half their range. Parameters and GMACs at 256x256; latency: ONNX Runtime CPU end to end, "
               f"interleaved rounds (`-` until measured). Sorted by CBSD68 sigma 25. Learning rate {UNIFORM_LR} "
               "(`hwnas train`'s default)" + (f"; at the sweeps' {SWEEP_LR} see the section \"The front's uniform "
                                                "networks at the sweeps' learning rate\"."
                                                if (results / "front_uniform_lr.csv").exists() else "."), "",
               md_table(["network", "seeds", *(f"{d.upper() if d == 'cbsd68' else 'Kodak24'} s{sg}" for d, sg in SCORES),
                         "SSIM CBSD68 s25", "params (M)", "GMACs", "ms"], uniform_ranking(df, latency)), ""]
    if not (results / "front.csv").exists():
        body, goals = pending_front()
        s.body += body
        s.goals += goals
    return s


# -- the front (front.csv) -------------------------------------------------------------------------------------------

MARGIN_DB = 0.15  # the searched networks' mean over the baselines' front at their latency (issue 22)
STRETCH_RATIO = 0.6  # stretch: within all-naf's seed spread at <= this fraction of its latency
CBM3D_DB = 30.71  # CBSD68 sigma 25, CBM3D: the best network should reach it
STAGES_TO_RUN = ("python benchmarks/bench_front.py lut  (quiet machine)",
                 "python benchmarks/bench_front.py front --target 0.45 --target 0.6",
                 "python benchmarks/bench_front.py front --target 0.75",
                 "python benchmarks/bench_front.py front_latency  (quiet machine)")


def psnr_column(columns) -> str | None:
    """front.csv's CBSD68 sigma-25 PSNR column (--score-data CBSD68 --score-option sigma=[25]: psnr:CBSD68:sigma=25:...)."""
    return next((c for c in columns if c.startswith("psnr:CBSD68:sigma=25")), None)


def front_networks(front, uniform, latency, uniform_latency) -> list[dict]:
    """One dict per network: kind, name, target, seed, ms, psnr, params, gmacs, steps, wall, uniform_arch; ms from
    front_latency.csv (median over repeats), else the sweep's own measurement (front.csv) or front_uniform_latency.csv."""
    import json

    import pandas as pd

    timed = {}
    if latency is not None:
        timed = {str(n): float(g.median_ms.median()) for n, g in latency.groupby("name")}
    col = psnr_column(front.columns) if front is not None else None
    nets = []
    for r in (front.to_dict("records") if front is not None else []):
        choices = set(json.loads(r["arch"])["choices"].values()) if isinstance(r.get("arch"), str) else set()
        nets.append({"kind": r["kind"], "name": r["name"], "target": float(r["target"]), "seed": r["seed"],
                     "ms": timed.get(r["name"], float(r["measured_ms"])), "psnr": float(r[col]) if col else float("nan"),
                     "params": float(r["params"]), "gmacs": float(r["gmacs"]), "steps": int(r["steps"]),
                     "wall": float(r["train_seconds"]), "uniform_arch": len(choices) == 1})
    for r in (uniform.to_dict("records") if uniform is not None else []):
        name = f"uniform-{r['network']}-s{r['seed']}"
        ms = timed.get(name)
        if ms is None and uniform_latency is not None:
            mine = uniform_latency[(uniform_latency.network == r["network"]) & (uniform_latency.seed == r["seed"])]
            ms = float(mine.median_ms.median()) if len(mine) else None
        nets.append({"kind": "uniform", "name": name, "network": r["network"], "target": None, "seed": r["seed"],
                     "ms": float("nan") if ms is None else ms, "psnr": float(r["cbsd68_s25_psnr"]),
                     "params": float(r["params"]), "gmacs": float(r["gmacs"]), "steps": int(r.get("train_steps", r["steps"])),
                     "wall": float(r["train_seconds"]), "uniform_arch": True})
    return [n for n in nets if not pd.isna(n["psnr"])]


def baseline_points(nets: list[dict]) -> list[tuple[float, float, str]]:
    """(ms, PSNR, name) of every baseline with a latency; a uniform network once, its seeds' mean (as the searched
    networks' are compared)."""
    points, by_uniform = [], {}
    for n in nets:
        if n["kind"] == "searched" or n["ms"] != n["ms"]:
            continue
        if n["kind"] == "uniform":
            by_uniform.setdefault(n.get("network", n["name"]), []).append(n)
        else:
            points.append((n["ms"], n["psnr"], n["name"]))
    for net, group in by_uniform.items():
        points.append((sum(g["ms"] for g in group) / len(group), sum(g["psnr"] for g in group) / len(group), f"all-{net}"))
    return points


def pareto(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The points no other is both faster and better than, by latency."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


def front_at(front: list[tuple[float, float, str]], ms: float) -> float | None:
    """The baselines' PSNR at latency `ms`: linear along their Pareto front between its points around `ms`, the
    best one below it past the slowest; None when no baseline is that fast."""
    below = [p for p in front if p[0] <= ms]
    if not below:
        return None
    a = below[-1]
    above = [p for p in front if p[0] > ms]
    if not above:
        return a[1]
    b = above[0]
    return a[1] + (b[1] - a[1]) * (ms - a[0]) / (b[0] - a[0])


def target_goal(target: float, searched: list[dict], front: list[tuple[float, float, str]]) -> Goal:
    goal = (f"at {target:g}x: the searched networks' mean CBSD68 s25 PSNR >= {MARGIN_DB} dB above the baselines' front "
            "at their latency, by more than their seed spread")
    if not searched:
        return Goal("front", goal, f"not run yet: python benchmarks/bench_front.py front --target {target:g}", None)
    if len(searched) < 2:
        return Goal("front", goal, f"{len(searched)} of 2 seeds measured", None)
    psnrs = [n["psnr"] for n in searched]
    mean, spread, ms = sum(psnrs) / len(psnrs), max(psnrs) - min(psnrs), sum(n["ms"] for n in searched) / len(searched)
    ref = front_at(front, ms)
    if ref is None:
        return Goal("front", goal, f"{fmt(mean, 2)} dB at {fmt(ms, 1)} ms; no baseline is that fast", None)
    margin = mean - ref
    met = margin >= MARGIN_DB and margin > spread
    cause = ""
    if not met:
        cause = (f"the margin is below {MARGIN_DB} dB" if margin < MARGIN_DB else
                 f"the margin is within the seed spread ({spread:.2f} dB)")
    return Goal("front", goal, f"{fmt(mean, 2)} dB at {fmt(ms, 1)} ms vs the baselines' {fmt(ref, 2)} dB: "
                f"{margin:+.2f} dB, seed spread {spread:.2f} dB", met, cause=cause)


def front_goals(nets: list[dict], targets: list[float]) -> list[Goal]:
    """Issue 22's goals of the front (module docstring)."""
    goals = []
    front = pareto(baseline_points(nets))
    searched = [n for n in nets if n["kind"] == "searched"]
    for target in targets:
        goals.append(target_goal(target, [n for n in searched if n["target"] == target], front))
    uniform = [n["name"] for n in searched if n["uniform_arch"]]
    goals.append(Goal("front", "no searched network is uniform (one candidate everywhere)",
                      f"uniform: {', '.join(uniform)}" if uniform else f"none of {len(searched)} is uniform",
                      not uniform if searched else None,
                      cause="the search collapsed to one candidate at every position" if uniform else ""))
    goals.append(stretch_goal(nets, searched))
    best = max(nets, key=lambda n: n["psnr"], default=None)
    goals.append(Goal("front", f"the best network >= {CBM3D_DB} dB on CBSD68 s25 (CBM3D)",
                      f"{best['name']}: {fmt(best['psnr'], 2)} dB" if best else "no network yet",
                      best["psnr"] >= CBM3D_DB if best and searched else None,
                      cause="" if not best or best["psnr"] >= CBM3D_DB else "the small preset at this budget stays below CBM3D"))
    return goals


def stretch_goal(nets: list[dict], searched: list[dict]) -> Goal:
    goal = f"stretch: a searched network within all-naf's seed spread at <= {STRETCH_RATIO}x its latency"
    naf = [n for n in nets if n["kind"] == "uniform" and n.get("network") == "naf" and n["ms"] == n["ms"]]
    if not naf or not searched:
        return Goal("front", goal, "all-naf or the searched networks not measured yet", None)
    psnrs = [n["psnr"] for n in naf]
    mean, spread, ms = sum(psnrs) / len(psnrs), max(psnrs) - min(psnrs), sum(n["ms"] for n in naf) / len(naf)
    fast = [n for n in searched if n["ms"] <= STRETCH_RATIO * ms]
    hit = [n for n in fast if n["psnr"] >= mean - spread]
    if hit:
        n = max(hit, key=lambda n: n["psnr"])
        return Goal("front", goal, f"{n['name']}: {fmt(n['psnr'], 2)} dB at {n['ms'] / ms:.2f}x (all-naf "
                    f"{fmt(mean, 2)} +-{spread:.2f} dB)", True)
    best = max(fast, key=lambda n: n["psnr"], default=None)
    result = (f"best at <= {STRETCH_RATIO}x: {best['name']} {fmt(best['psnr'], 2)} dB vs all-naf {fmt(mean, 2)} "
              f"-{spread:.2f} dB ({mean - spread - best['psnr']:.3f} dB short)" if best else f"no searched network at <= {STRETCH_RATIO}x all-naf's {fmt(ms, 1)} ms")
    return Goal("front", goal, result, False, cause="the searched networks that fast lose more than the seed spread")


def front_plot(nets: list[dict], front: list[tuple[float, float, str]], path: Path) -> None:
    plt = report._plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    from hwnas.nas.front import STYLE  # the sweep's own plot's markers, one per kind

    for kind, (colour, marker) in STYLE.items():
        mine = [n for n in nets if n["kind"] == kind and n["ms"] == n["ms"]]
        if mine:
            ax.scatter([n["ms"] for n in mine], [n["psnr"] for n in mine], color=colour, marker=marker,
                       s=90 if kind == "searched" else 40, zorder=3, label=kind)
    if front:
        ax.plot([p[0] for p in front], [p[1] for p in front], color="C1", zorder=2, label="baselines' front")
        for i, (ms, psnr, name) in enumerate(front):  # alternately below and above: front points lie close together
            ax.annotate(name, (ms, psnr), textcoords="offset points", xytext=(4, 6 if i % 2 else -10), fontsize=7)
    ax.set_xlabel("end-to-end latency, ms (ONNX Runtime CPU, 256x256, 2 threads)")
    ax.set_ylabel("CBSD68 sigma 25 PSNR (dB)")
    ax.set_title("The front: searched networks vs the baselines at equal budget (small preset)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _read(path: Path):
    import pandas as pd

    return pd.read_csv(path) if path.exists() else None


def at_sweep_lr(uniform, retrained):
    """front_uniform.csv with the CBSD68 s25 PSNR of every network retrained at the sweeps' rate (front_uniform_lr.csv:
    both seeds, scored with zero padding as the front was) in place of its rows at `hwnas train`'s default; and the
    networks so replaced. Sizes, steps and latency stay front_uniform.csv's (the same architectures)."""
    if uniform is None or retrained is None:
        return uniform, []

    def key(r) -> tuple[str, int, int]:  # the plateau's longer runs share network and seed, not the length
        return str(r.network), int(r.seed), int(r.steps)

    psnr = {key(r): float(r.cbsd68_s25_psnr_zeros) for r in retrained.itertuples()}
    nets = [n for n in dict.fromkeys(uniform.network.astype(str))
            if all(key(r) in psnr for r in uniform[uniform.network == n].itertuples())]
    if not nets:
        return uniform, []
    uniform = uniform[uniform.network.isin(nets)].copy()  # a network not retrained would be set beside at another rate
    uniform["cbsd68_s25_psnr"] = [psnr[key(r)] for r in uniform.itertuples()]
    seconds = {key(r): float(r.train_seconds) for r in retrained.itertuples()}
    uniform["train_seconds"] = [seconds[key(r)] for r in uniform.itertuples()]
    return uniform, nets


def uniform_lr_text(nets: list[str]) -> str:
    if nets:
        return (f"and the uniform networks {', '.join(f'all-{n}' for n in nets)} trained again at the sweeps' learning "
                f"rate ({SWEEP_LR}, front_uniform_lr.csv: every network of this table shares one recipe; the uniform "
                f"networks not retrained are left out rather than set beside at {UNIFORM_LR}), all trained for the "
                "same number of updates")
    return ("and the uniform networks of front_uniform.csv, all trained for the same number of updates -- but not at "
            f"one learning rate: the uniform networks at {UNIFORM_LR} (`hwnas train`'s default), the sweeps' networks at "
            f"{SWEEP_LR} (the search's, which `hwnas sweep --baselines` trains every network of a target with), so within "
            "a target the searched networks and their baselines share the recipe, and the uniform rows are understated "
            "(at 0.6x the shallower and narrower cbr_e4 beat uniform cbr_e4 by ~0.1 dB)")


def front_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("The latency-quality front: searched networks vs baselines at equal budget (front.csv)")
    latency = _read(results / "front_latency.csv")
    uniform, retrained = at_sweep_lr(_read(results / "front_uniform.csv"), _read(results / "front_uniform_lr.csv"))
    nets = front_networks(df, uniform, latency, _read(results / "front_uniform_latency.csv"))
    targets = sorted({float(t) for t in df.target})
    front = pareto(baseline_points(nets))
    png = results / "front.png"
    front_plot(nets, front, png)
    s.pngs.append(png)
    where = ("ONNX Runtime CPU end to end, every network rebuilt untrained and timed in the same interleaved rounds "
             "(front_latency.csv, median over repeats)" if latency is not None else
             "each sweep's own measurement (not yet timed together: run `python benchmarks/bench_front.py "
             "front_latency` on a quiet machine), uniform networks from front_uniform_latency.csv")
    rows = [[n["kind"], n["name"], "-" if n["target"] is None else f"{n['target']:g}x", n["seed"], fmt(n["ms"], 2),
             fmt(n["psnr"], 2), fmt(n["params"] / 1e6, 3), fmt(n["gmacs"], 3), n["steps"], fmt(n["wall"], 0)]
            for n in sorted(nets, key=lambda n: (n["ms"] if n["ms"] == n["ms"] else float("inf")))]
    s.body += [f"Every network of the front's sweeps (targets {', '.join(f'{t:g}x' for t in targets)}: searches at "
               f"2 seeds fine-tuned to the budget, random mixes, narrowed networks) {uniform_lr_text(retrained)}. "
               f"Latency: {where}. PSNR: CBSD68 sigma "
               "25, measured while the U-Net still padded whole images with zeros: with today's edge padding the four "
               "uniform networks measured there score +0.05 to +0.06 dB more on CBSD68 (2000 steps), and a network with BatchNorm candidates that failed on an "
               "image (0.45x seed 1) would not fail (section \"Padding whole images\"). "
               "Wall: training seconds (a searched network's: search plus fine-tuning).", "",
               md_table(["kind", "name", "target", "seed", "ms", "PSNR (dB)", "params (M)", "GMACs", "steps",
                         "wall (s)"], rows), "", report.image(png, out, "front") + "", ""]
    s.body += [front_points_line(front), ""]
    s.goals += front_goals(nets, sorted(set(targets) | set(PLANNED_TARGETS)))
    s.body += report.goal_lines(s.goals)
    return s


def front_points_line(front: list[tuple[float, float, str]]) -> str:
    """The baselines' Pareto front, fastest first, and the uniform networks on it (issue 22: a uniform network on the
    front is stated, not hidden among the baselines)."""
    points = "; ".join(f"{name} {fmt(ms, 1)} ms {fmt(psnr, 2)} dB" for ms, psnr, name in front)
    uniform = [name for _, _, name in front if name.startswith("all-")]
    tail = (f" Uniform networks on it: {', '.join(uniform)} -- a user gets these without a search." if uniform else
            " No uniform network is on it.")
    return f"The baselines' front (no baseline both faster and better), fastest first: {points}.{tail}"


def pending_front() -> tuple[list[str], list[Goal]]:
    """The uniform section's note and goals before front.csv exists."""
    body = ["The front itself (searched networks against these baselines, issue 22) has no rows yet: run, one "
            "session each as benchmarks/README.md plans,", "", *(f"    {c}" for c in STAGES_TO_RUN), ""]
    goals = [Goal("front", f"at each target the searched networks' mean >= {MARGIN_DB} dB above the baselines' front, "
                  "by more than the seed spread", "not run yet: python benchmarks/bench_front.py front", None)]
    return body, goals


INT8_GOAL_DB, INT8_STRETCH_DB = report.INT8_GOAL_DB, report.INT8_STRETCH_DB
DEFAULT_METHOD = "percentile"  # ExportConfig.calibration_method, chosen from this study


def calibration_section(df, meta: dict, results: Path, out: Path) -> Section:
    """The int8 calibration study (bench_calibration.py, issue 24): dB lost per setting, and the goal at the default."""
    s = Section("int8 calibration: which setting keeps the quality (calibration.csv)")
    sets = [c for c in df.columns if c.endswith("_lost_db")]
    pivot = df.pivot_table(index=["method", "crops", "per_channel"], columns="network", values=sets, aggfunc="mean")
    headers = ["method", "crops", "per-channel", *(f"{net} {c.removesuffix('_lost_db')}" for c, net in pivot.columns)]
    rows = [[*key, *(fmt(v, 3) for v in vals)] for key, vals in zip(pivot.index, pivot.values)]
    s.body += ["dB of PSNR the int8 file (ONNX Runtime static QDQ) loses to the same network in fp32, at sigma 25, per "
               "calibration method, number of calibration crops (128 px, CBSD432) and per-channel weights; lower is "
               f"better. The export default is `{DEFAULT_METHOD}`.", "", md_table(headers, rows), ""]
    chosen = df[df.method == DEFAULT_METHOD]
    if chosen.empty:
        return s
    worst = float(chosen[sets].max().max())
    s.goals.append(Goal("calibration", f"int8 loses <= {INT8_GOAL_DB} dB on CBSD68 and Kodak24 at sigma 25 "
                        f"(the default, {DEFAULT_METHOD}; stretch <= {INT8_STRETCH_DB})",
                        f"worst {worst:.2f} dB over {', '.join(sorted(set(chosen.network)))} ({len(chosen)} settings)",
                        worst <= INT8_GOAL_DB,
                        note="" if worst <= INT8_STRETCH_DB else f"stretch ({INT8_STRETCH_DB} dB) not met",
                        cause=f"the 8-bit activations lose {worst:.2f} dB; try --keep-16bit auto"))
    return s


def uniform_latency_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("The uniform networks' measured latency (front_uniform_latency.csv)")
    rows = []
    for net, part in df.groupby("network", sort=False):
        mid = float(part.median_ms.median())
        rows.append([net, len(part), fmt(mid, 2), f"{fmt(float(part.median_ms.min()), 2)} .. {fmt(float(part.median_ms.max()), 2)}",
                     fmt(float(part.load_start.max()), 2) if "load_start" in part else "-"])
    s.body += ["End to end, ONNX Runtime on this CPU, 256x256, every network in the same interleaved rounds (the ranking "
               "above takes the median over seeds and repeats):", "",
               md_table(["network", "timings (seeds x repeats)", "median ms", "range", "load at start (max)"], rows), ""]
    return s


def front_latency_section(df, meta: dict, results: Path, out: Path) -> Section:
    """Every network of the front timed in the same rounds: its median, range, and its time as a fraction of
    all-naf's in the same repeat (the ratio drift leaves alone; the front section reads the medians)."""
    import pandas as pd

    s = Section("Every network of the front timed together (front_latency.csv)")
    naf = df[df.name.astype(str).str.fullmatch(r"uniform-naf-s\d+")].groupby("repeat").median_ms.median()  # not naf_bn
    rows = []
    for (kind, name), part in df.groupby(["kind", "name"], sort=False):
        ratios = [float(r.median_ms) / float(naf[r.repeat]) for r in part.itertuples() if r.repeat in naf.index]
        rows.append([kind, name, part.target.iloc[0] if pd.notna(part.target.iloc[0]) else "-", len(part),
                     fmt(float(part.median_ms.median()), 1),
                     f"{fmt(float(part.median_ms.min()), 1)} .. {fmt(float(part.median_ms.max()), 1)}",
                     f"{sorted(ratios)[len(ratios) // 2]:.2f}x" if ratios else "-"])
    load = f"{fmt(float(df.load_start.min()), 2)}-{fmt(float(df.load_end.max()), 2)}" if "load_start" in df else "-"
    s.body += ["End to end, ONNX Runtime on this CPU (256x256), every network untrained, rebuilt from its spec and "
               f"architecture, all in the same interleaved rounds (load {load}). `vs all-naf`: the median over repeats "
               "of its time divided by all-naf's in the same repeat.", "",
               md_table(["kind", "network", "target", "timings", "median ms", "range", "vs all-naf"], rows), ""]
    return s


def hold_section(df, meta: dict, results: Path, out: Path) -> Section:
    """Each front search's argmax network and the network holding its target derives (`bench_front.py hold`)."""
    s = Section("Holding the target: each front search's argmax network and the held one (front_hold.csv)")
    scored = "held_cbsd68_s25_psnr" in df
    trained = ("Where holding changed a network, `bench_front.py held` fine-tuned it as its argmax network was (same "
               "config, same budget) and scored both with the same `hwnas eval`; the front's rows stay the argmax "
               "networks'." if scored else "The held networks were not trained: the front's rows are the argmax networks'.")
    s.body += ["The six front searches ran before `hwnas search` held its target (`hwnas.nas.target_hold`, now the "
               "default): their derived networks are the argmax, predicted from 12% below to 12% above the target. "
               "Replayed on each search's final alphas and table (predicted latency, no training): the swaps that give "
               "up the least alpha per ms bring every network under its target, and what they saved beyond need is "
               f"spent back on higher-alpha candidates. {trained}", ""]
    rows = []
    for r in df.itertuples():
        row = [r.target, int(r.seed), fmt(r.target_ms, 1), fmt(r.argmax_ms, 1), f"{r.argmax_off_pct:+.1f}%",
               fmt(r.held_ms, 1), f"{r.held_off_pct:+.1f}%", r.moves if isinstance(r.moves, str) else "-"]
        if scored:
            held, argmax = getattr(r, "held_cbsd68_s25_psnr"), getattr(r, "argmax_cbsd68_s25_psnr")
            worst = [getattr(r, f"{who}_cbsd68_s25_worst_image_psnr", float("nan")) for who in ("argmax", "held")]
            row += ["-"] * 4 if held != held else [fmt(argmax, 2), fmt(held, 2), f"{held - argmax:+.2f}",
                                                   " / ".join(fmt(w, 1) for w in worst)]
        rows.append(row)
    s.body += [md_table(["target", "seed", "target ms", "argmax ms", "argmax vs target", "held ms", "held vs target",
                         "positions changed", *(["argmax CBSD68 s25", "held CBSD68 s25", "held - argmax dB",
                                                 "worst image dB (argmax / held)"] if scored else [])], rows), ""]
    if scored:
        s.body += ["A worst image far below the rest (under 15 dB) is a network that fails on one whole image: "
                   "these were scored while the U-Net padded whole images with zeros, on which the BatchNorm "
                   "candidates (naf_bn, naf_bn_lite) can blow up; its mean then says more about that image than "
                   "about the network. The U-Net now pads with edge pixels (section \"Padding whole images\").", ""]
    return s


def padding_section(df, meta: dict, results: Path, out: Path) -> Section:
    """bench_padding.py: each network scored with the former zero padding and with edge padding, side by side."""
    s = Section("Padding whole images: zeros against edge pixels (padding.csv)")
    rows = []
    for (net, dataset), part in df.groupby(["network", "dataset"], sort=False):
        by = {r.padding: r for r in part.itertuples()}
        if not {"zeros", "edge"} <= by.keys():
            continue
        z, e = by["zeros"], by["edge"]
        rows.append([net, dataset, fmt(z.psnr, 3), f"{fmt(z.worst_psnr, 2)} ({z.worse_than_input}/{z.images})",
                     fmt(e.psnr, 3), f"{fmt(e.worst_psnr, 2)} ({e.worse_than_input}/{e.images})", f"{e.psnr - z.psnr:+.3f}",
                     f"{e.psnr_common - z.psnr_common:+.3f} ({e.common_images})"])
    steps = int(df.steps.iloc[0]) if "steps" in df else "?"
    s.body += [f"Uniform networks of the front's recipe (small preset, {steps} steps, crop 64), scored at sigma "
               f"{df.sigma.iloc[0]} on whole images, which the U-Net pads to its multiple (CBSD68 481x321, Kodak24 "
               "500x500). `zeros`: the padding every score on this page before it was measured with; `edge`: the "
               "edge pixels repeated, as the U-Net pads now. Worst: the lowest image's PSNR (images scored below "
               "their noisy input / images). The last column compares the two on the images neither failed on (their "
               "number): what the padding changes where nothing diverged.", "",
               md_table(["network", "data set", "zeros: mean dB", "zeros: worst (diverged)", "edge: mean dB",
                         "edge: worst (diverged)", "edge - zeros", "edge - zeros where neither failed"], rows), ""]
    return s


def uniform_lr_section(df, meta: dict, results: Path, out: Path) -> Section:
    """bench_front_lr.py: the uniform networks at the sweeps' learning rate beside their rows at `hwnas train`'s
    default, and the front's goals judged with each."""
    s = Section("The front's uniform networks at the sweeps' learning rate (front_uniform_lr.csv)")
    before = _read(results / "front_uniform.csv")
    budget = budget_of(before) or int(df.steps.min())
    df, longer = df[df.steps == budget], df[df.steps != budget]
    rows = []
    for net, part in df.groupby("network", sort=False):
        old = before[before.network == net].cbsd68_s25_psnr if before is not None else []
        zeros, edge = part.cbsd68_s25_psnr_zeros, part.cbsd68_s25_psnr_edge
        rows.append([net, ",".join(str(int(x)) for x in part.seed), mean_spread(old) if len(old) else "-",
                     mean_spread(zeros), f"{float(zeros.mean()) - float(old.mean()):+.2f}" if len(old) else "-",
                     mean_spread(edge),
                     fmt(float(part.cbsd68_s25_worst_edge.min()), 1), fmt(float(part.train_seconds.mean()), 0)])
    s.body += [f"The front's sweeps trained every network at the search's learning rate ({SWEEP_LR}); its uniform "
               f"networks were trained by `hwnas train` at its default ({UNIFORM_LR}). Here they are trained again at "
               f"{SWEEP_LR} (same {budget} steps, data, crop, batch and seeds; one thread each, two at a time) and scored "
               "on CBSD68 at sigma 25 with zero padding (as every front score was measured) and with edge padding (as "
               "the U-Net pads now). PSNR: the mean over the seeds +- half their range.", "",
               md_table(["network", "seeds", f"lr {UNIFORM_LR} (zeros)", f"lr {SWEEP_LR} (zeros)", "change",
                         f"lr {SWEEP_LR} (edge)", "worst image (edge)", "train s (mean)"], rows), ""]
    if len(longer):
        plateau_at_sweep_lr(s, df, longer, budget)
    front = _read(results / "front.csv")
    if front is None or before is None:
        return s
    latency, uniform_latency = _read(results / "front_latency.csv"), _read(results / "front_uniform_latency.csv")
    matched, nets = at_sweep_lr(before, df)
    targets = sorted({float(t) for t in front.target})
    judged = [front_goals(front_networks(front, u, latency, uniform_latency), targets) for u in (before, matched)]
    lines = [f"- {a.goal}: at {UNIFORM_LR}: {a.result} ({a.status}) -> with {', '.join(f'all-{n}' for n in nets)} at {SWEEP_LR}: "
             f"{b.result} ({b.status})" for a, b in zip(*judged) if a.result != b.result]
    s.body += ["The front's goals judged with the uniform rows at each rate (the front section uses the rows at "
               f"{SWEEP_LR}):" if lines else "The front's goals come out the same at either rate.", "", *lines, ""]
    return s


def plateau_at_sweep_lr(s: Section, at_b, longer, budget: int) -> None:
    """The plateau test again at the sweeps' rate: each longer run beside the same network and seed at B."""
    psnr = {(str(r.network), int(r.seed)): float(r.cbsd68_s25_psnr_zeros) for r in at_b.itertuples()}
    rows, gains = [], []
    for r in longer.itertuples():
        base = psnr.get((str(r.network), int(r.seed)))
        gain = float(r.cbsd68_s25_psnr_zeros) - base if base is not None else None
        if gain is not None and int(r.steps) == 2 * budget:
            gains.append((f"{r.network} s{int(r.seed)}", budget, base, gain))
        rows.append([r.network, int(r.seed), int(r.steps), fmt(base, 3) if base is not None else "-",
                     fmt(float(r.cbsd68_s25_psnr_zeros), 3), f"{gain:+.2f} dB" if gain is not None else "-",
                     fmt(float(r.cbsd68_s25_psnr_edge), 3), fmt(float(r.train_seconds), 0)])
    s.body += [f"The plateau test at the sweeps' rate (the plateau section's runs trained at {UNIFORM_LR}): the same "
               f"network and seed trained from scratch for longer, its own cosine schedule, against its run at B = "
               f"{budget} (zero padding):", "",
               md_table(["network", "seed", "steps", f"PSNR at {budget}", "PSNR", "gain", "PSNR (edge)", "train s"],
                        rows), ""]
    s.goals.append(plateau_goal(gains, budget, lr=SWEEP_LR, key="front_uniform_lr"))


def noise_section(df, meta: dict, results: Path, out: Path) -> Section:
    """bench_front_lr.py eval --sigma 50: the same runs at a harder noise level, each network beside all-naf of its
    length at both levels -- whether the ranking of the blocks turns where denoising is harder."""
    sigma = NOISE_SIGMA
    s = Section(f"The uniform networks at sigma {sigma} (front_uniform_lr_s{sigma}.csv)")
    at25 = _read(results / "front_uniform_lr.csv")
    psnr25 = {str(r.run): float(r.cbsd68_s25_psnr_zeros) for r in at25.itertuples()} if at25 is not None else {}
    df = df.assign(s25=[psnr25.get(str(r), float("nan")) for r in df.run],
                   s50=df[f"cbsd68_s{sigma}_psnr_zeros"], edge=df[f"cbsd68_s{sigma}_psnr_edge"])
    means = df.groupby(["steps", "network"], sort=False)[["s25", "s50", "edge"]].mean()
    rows = []
    for (steps, net), m in means.iterrows():
        naf = means.loc[(steps, "naf")] if (steps, "naf") in means.index else None
        seeds = ",".join(str(int(x)) for x in df[(df.steps == steps) & (df.network == net)].seed)
        gap = [f"{m[k] - naf[k]:+.2f}" if naf is not None and net != "naf" and not math.isnan(m[k] - naf[k])
               else "-" for k in ("s25", "s50")]  # NaN: a run not scored at sigma 25
        rows.append([net, int(steps), seeds, fmt(m.s25, 3), gap[0], fmt(m.s50, 3), gap[1], fmt(m.edge, 3)])
    s.body += [f"The networks of front_uniform_lr.csv (lr {SWEEP_LR}) scored again on CBSD68 at sigma {sigma} (zero "
               "padding, as the front; edge padding last): the front's metric is sigma 25, where the cheap blocks "
               "match all-naf; a harder task may set them apart. Means over the seeds; \"vs naf\": minus all-naf "
               "trained as long.", "",
               md_table(["network", "steps", "seeds", "sigma 25", "vs naf", f"sigma {sigma}", "vs naf",
                         f"sigma {sigma} (edge)"], rows), ""]
    return s


def preset_layout(width: int) -> str:
    """bench_front_width's `layout` of the preset's network at base width `width` (channels doubling per level)."""
    return f"{PRESET_BLOCKS}; channels {','.join(str(int(width) * 2**i) for i in range(5))}"


def sigma_text(value) -> str:
    """A `train_sigma` cell as bench_front_width wrote it ("50", "0,55"); pandas reads a lone level as a float, and
    rows written before the column have none: the front's blind range."""
    if isinstance(value, float):
        return BLIND_SIGMA if math.isnan(value) else f"{value:g}"
    return str(value)


def shape_columns(df):
    """front_width rows with a `shape` ("" for a uniform widening), `layout` and `train_sigma` column: rows written
    before bench_front_width placed capacity per level or trained at another noise have none of them."""
    df = df.copy()
    df["shape"] = df["shape"].fillna("").astype(str) if "shape" in df else ""
    df["train_sigma"] = [sigma_text(v) for v in df["train_sigma"]] if "train_sigma" in df else BLIND_SIGMA
    if "layout" not in df:
        df["layout"] = float("nan")
    df["layout"] = [lay if isinstance(lay, str) else preset_layout(w) for lay, w in zip(df["layout"], df["width"])]
    return df


def width_ratios(latency) -> dict[tuple[str, int, str], float]:
    """(network, width, shape) -> its median latency over all-naf's at the preset's shape, timed in the same rounds."""
    if latency is None:
        return {}
    med = shape_columns(latency).groupby(["network", "width", "shape"]).median_ms.median()
    naf = med.get(("naf", PRESET_WIDTH, ""))
    return {} if naf is None else {(str(n), int(w), d): float(v) / naf for (n, w, d), v in med.items()}


def preset_width_rows(results: Path, budget: int) -> list[dict]:
    """The preset-width uniform networks of bench_front_lr (lr SWEEP_LR, `budget` steps): network, seeds, s25, s50."""
    at25, at50 = _read(results / "front_uniform_lr.csv"), _read(results / "front_uniform_lr_s50.csv")
    if at25 is None:
        return []
    s50 = {str(r.run): float(r.cbsd68_s50_psnr_zeros) for r in at50.itertuples()} if at50 is not None else {}
    rows = []
    for net, part in at25[at25.steps == budget].groupby("network", sort=False):
        rows.append({"network": str(net), "width": PRESET_WIDTH, "shape": "", "layout": preset_layout(PRESET_WIDTH),
                     "seeds": ",".join(str(int(x)) for x in part.seed),
                     "s25": float(part.cbsd68_s25_psnr_zeros.mean()), "s25_seeds": mean_spread(part.cbsd68_s25_psnr_zeros),
                     "s50": sum(s50.get(str(r), float("nan")) for r in part.run) / len(part),
                     "train": float(part.train_seconds.mean())})
    return rows


def width_section(df, meta: dict, results: Path, out: Path) -> Section:
    """bench_front_width.py: the cheapest block widened or deepened, beside the blocks at the preset's shape and the
    front."""
    s = Section("Width and depth against block: the cheapest network grown (front_width.csv)")
    df = shape_columns(df)
    budget = int(df.steps.max())
    ratios = width_ratios(_read(results / "front_width_latency.csv"))
    mine = grown(df[df.train_sigma == BLIND_SIGMA])
    nets = sorted(mine + preset_width_rows(results, budget), key=lambda n: ratios.get(shape_key(n), float("inf")))
    rows = [[f"all-{n['network']}", n["width"], n["layout"], n["seeds"], fmt(ratios.get(shape_key(n)), 2),
             n["s25_seeds"], fmt(n["s50"], 3), fmt(n["train"], 0)] for n in nets]
    s.body += [f"Every uniform network of the front's space scores within 0.1 dB at sigma 25, while a narrower one "
               "loses 0.2-1 dB (front.csv's narrower rows). Does capacity buy what the blocks do not? Here the "
               f"cheapest block is made wider (base width above the preset's {PRESET_WIDTH}, every level), deeper at "
               f"1/8 and 1/16 resolution only (the preset has {PRESET_BLOCKS}; the decoder is kept), where a block "
               "costs least, or wider at full resolution only, and trained with "
               f"the front's recipe (lr {SWEEP_LR}, {budget} steps, one thread), set beside the preset's networks "
               "of front_uniform_lr.csv. CBSD68, zero padding as the front; latency: ONNX Runtime CPU end to end, "
               "all in the same interleaved rounds (front_width_latency.csv), as a fraction of all-naf's. PSNR: the mean "
               "over the seeds (+- half their range at sigma 25).", "",
               md_table(["network", "width", "layout", "seeds", "x all-naf", "sigma 25", "sigma 50", "train s"], rows), ""]
    s.body += width_against_front(mine, ratios, results)
    s.body += harder_noise_lines(grown(df[df.train_sigma != BLIND_SIGMA]), nets, ratios)
    return s


def grown(df) -> list[dict]:
    """One entry per (training noise, network, width, shape) of front_width rows: its layout, seeds and mean PSNRs."""
    return [{"train_sigma": t, "network": str(net), "width": int(w), "shape": d, "layout": str(part.layout.iloc[0]),
             "seeds": ",".join(str(int(x)) for x in part.seed),
             "s25": float(part.cbsd68_s25_psnr_zeros.mean()), "s25_seeds": mean_spread(part.cbsd68_s25_psnr_zeros),
             "s50": float(part.cbsd68_s50_psnr_zeros.mean()), "train": float(part.train_seconds.mean())}
            for (t, net, w, d), part in df.groupby(["train_sigma", "network", "width", "shape"], sort=False)]


def harder_noise_lines(harder: list[dict], blind: list[dict], ratios: dict) -> list[str]:
    """Networks trained at one fixed, harder noise level (`--train-sigma 50`) against all-naf trained the same way and
    against themselves trained blind: whether the blocks' ranking turns when the task is harder."""
    if not harder:
        return []
    blind50 = {shape_key(n): n["s50"] for n in blind}
    naf_at = {n["train_sigma"]: n for n in harder if shape_key(n) == ("naf", PRESET_WIDTH, "")}
    rows = []
    for n in sorted(harder, key=lambda n: (n["train_sigma"], ratios.get(shape_key(n), float("inf")))):
        naf = naf_at.get(n["train_sigma"])
        gap = f"{n['s50'] - naf['s50']:+.2f}" if naf is not None and n is not naf else "-"
        rows.append([n["train_sigma"], f"all-{n['network']}", n["width"], n["layout"], n["seeds"],
                     fmt(ratios.get(shape_key(n)), 2), fmt(n["s50"], 3), gap, fmt(blind50.get(shape_key(n)), 3),
                     fmt(n["s25"], 3), fmt(n["train"], 0)])
    return ["A harder task: the same networks trained at one fixed noise level instead of the blind range "
            f"{BLIND_SIGMA} (same recipe and steps), scored on CBSD68 at sigma 50. \"vs naf\": minus all-naf trained "
            "at that level; \"blind\": the network trained on the blind range, at sigma 50.", "",
            md_table(["trained at", "network", "width", "layout", "seeds", "x all-naf", "sigma 50", "vs naf",
                      "blind, sigma 50", "sigma 25", "train s"], rows), ""]


def shape_key(n: dict) -> tuple[str, int, str]:
    return n["network"], n["width"], n["shape"]


def width_against_front(mine: list[dict], ratios: dict, results: Path) -> list[str]:
    """Each widened network against the front at its latency (its ratio times all-naf's latency in front_latency.csv):
    the baselines' front interpolated there, and the best searched network at most as slow."""
    nets = front_of(results) if ratios else []
    naf = [n["ms"] for n in nets if n.get("network") == "naf" and n["ms"] == n["ms"]]
    if not naf:
        return []
    naf_ms, line = sum(naf) / len(naf), pareto(baseline_points(nets))
    cpus = [report.read_meta(results, stem).get("machine", {}).get("cpu_model") for stem in ("front_width_latency", "front_latency")]
    clock = (f" The widths were timed on another CPU ({cpus[0]}) than the front ({cpus[1]}): only the ratio to all-naf "
             "is carried over." if None not in cpus and cpus[0] != cpus[1] else "")
    lines = []
    for n in mine:
        r = ratios.get(shape_key(n))
        if r is None:
            continue
        ms = r * naf_ms
        ref = front_at(line, ms)
        searched = [x for x in nets if x["kind"] == "searched" and x["ms"] <= ms]
        best = max(searched, key=lambda x: x["psnr"], default=None)
        shape = f"at width {n['width']}" if not n["shape"] else f"{n['shape']} ({n['layout']})"
        lines.append(f"- all-{n['network']} {shape} ({r:.2f}x all-naf, ~{ms:.1f} ms on the front's "
                     f"clock): {n['s25']:.2f} dB; the baselines' front there {fmt(ref, 2)} dB"
                     + (f" ({n['s25'] - ref:+.2f})" if ref is not None else "")
                     + (f"; the best searched network at most as slow, {best['name']}: {best['psnr']:.2f} dB "
                        f"({n['s25'] - best['psnr']:+.2f})" if best else "; no searched network is as fast"))
    return (["Set on the front (front.csv, sigma 25): a wider or deeper cheap network is a baseline a user picks without a "
             f"search.{clock}", "", *lines, ""] if lines else [])


def front_of(results: Path) -> list[dict]:
    """Every network of the front (front_networks), with the uniform rows at the sweeps' learning rate."""
    uniform, _ = at_sweep_lr(_read(results / "front_uniform.csv"), _read(results / "front_uniform_lr.csv"))
    front = _read(results / "front.csv")
    return front_networks(front, uniform, _read(results / "front_latency.csv"),
                          _read(results / "front_uniform_latency.csv")) if front is not None else []


def searched_on_front(results: Path) -> tuple[dict[str, float], list]:
    """The front's searched networks' latency (ms, by name) and the baselines' front (pareto line) they are set against."""
    nets = front_of(results)
    return {n["name"]: n["ms"] for n in nets if n["kind"] == "searched"}, pareto(baseline_points(nets))


def scratch_section(df, meta: dict, results: Path, out: Path) -> Section:
    """bench_front_scratch.py: each searched architecture trained from scratch as the baselines were, beside its
    search-plus-fine-tuning score and the baselines' front at its latency."""
    s = Section("The searched architectures trained from scratch (front_scratch.csv)")
    ms, line = searched_on_front(results)
    rows, by_target = [], {}
    for r in df.itertuples():
        at = ms.get(r.name, float("nan"))
        ref = front_at(line, at)
        rows.append([r.name, f"{float(r.target):g}x", fmt(at, 1), fmt(r.cbsd68_s25_psnr_finetuned_zeros, 3),
                     fmt(r.cbsd68_s25_psnr_zeros, 3), f"{r.cbsd68_s25_psnr_zeros - r.cbsd68_s25_psnr_finetuned_zeros:+.2f}",
                     fmt(ref, 2), f"{r.cbsd68_s25_psnr_zeros - ref:+.2f}" if ref is not None else "-",
                     fmt(r.cbsd68_s25_psnr_edge, 3), fmt(r.cbsd68_s25_worst_edge, 1), fmt(r.train_seconds, 0)])
        by_target.setdefault(float(r.target), []).append((r, at))
    s.body += ["A searched network of the front trains in two parts: 1500 super-net steps (weights shared with every "
               "other candidate, one path sampled per step), then 4500 steps fine-tuning the weights it inherits. A "
               f"baseline trains from scratch for all 6000. Here each searched architecture is trained from scratch "
               f"exactly as the baselines were (lr {SWEEP_LR}, 6000 steps, data, crop, batch, its search's seed, one "
               "thread): if it then beats the baselines, the search chose well and its training lost the margin; if "
               "not, the architecture itself is no better than what a user picks without a search. From scratch it "
               "costs its search on top of the budget, so this measures the architecture, not a way to meet the goal at "
               "equal budget. CBSD68 sigma 25, zero padding as every front score (edge: as the U-Net pads now); "
               "latency: the front's (front_latency.csv).", "",
               md_table(["network", "target", "ms", "searched + fine-tuned", "from scratch", "change",
                         "baselines' front there", "scratch vs front", "from scratch (edge)", "worst image (edge)", "train s"], rows), ""]
    s.body += [*target_means(by_target, line, "from scratch"), ""]
    return s


def target_means(by_target: dict, line, label: str) -> list[str]:
    """Per target with two or more seeds: their mean CBSD68 s25 PSNR (zero padding), spread and latency against the
    baselines' front `line` there."""
    lines = []
    for target, group in sorted(by_target.items()):
        if len(group) < 2:
            continue
        mean = sum(r.cbsd68_s25_psnr_zeros for r, _ in group) / len(group)
        spread = max(r.cbsd68_s25_psnr_zeros for r, _ in group) - min(r.cbsd68_s25_psnr_zeros for r, _ in group)
        at = sum(a for _, a in group) / len(group)
        ref = front_at(line, at)
        lines.append(f"- at {target:g}x, {label}: {mean:.2f} dB (seed spread {spread:.2f}) at {fmt(at, 1)} ms"
                     + (f" vs the baselines' front {ref:.2f} dB: {mean - ref:+.2f} dB (the goal asks +{MARGIN_DB})"
                        if ref is not None else "; no baseline is that fast"))
    return lines


def renorm_section(df, meta: dict, results: Path, out: Path) -> Section:
    """bench_front_scratch.py --name front_scratch_renorm: the same from-scratch trainings once the BatchNorm candidates
    train with Batch Renormalization, beside the plain-BatchNorm ones (front_scratch.csv) and the baselines' front."""
    s = Section("The searched architectures trained from scratch with Batch Renormalization (front_scratch_renorm.csv)")
    plain = _read(results / "front_scratch.csv")
    before = {r.name: r for r in plain.itertuples()} if plain is not None else {}
    ms, line = searched_on_front(results)
    rows, by_target = [], {}
    for r in df.itertuples():
        at, old = ms.get(r.name, float("nan")), before.get(r.name)
        ref = front_at(line, at)
        rows.append([r.name, f"{float(r.target):g}x", fmt(at, 1),
                     fmt(old.cbsd68_s25_psnr_zeros, 3) if old else "-", fmt(old.cbsd68_s25_worst_zeros, 1) if old else "-",
                     fmt(r.cbsd68_s25_psnr_zeros, 3), fmt(r.cbsd68_s25_worst_zeros, 1),
                     f"{r.cbsd68_s25_psnr_zeros - old.cbsd68_s25_psnr_zeros:+.2f}" if old else "-",
                     fmt(ref, 2), f"{r.cbsd68_s25_psnr_zeros - ref:+.2f}" if ref is not None else "-", fmt(r.train_seconds, 0)])
        by_target.setdefault(float(r.target), []).append((r, at))
    s.body += ["The `naf_bn` and `naf_bn_lite` candidates normalise with batch statistics while training and with running "
               "statistics once deployed; each SimpleGate squares the gap, and two plain-BatchNorm mixes diverged on one "
               "CBSD68 image (the section above). They now train with Batch Renormalization (Ioffe, 2017: the batch's "
               "output corrected towards the running statistics, so a network learns the function it deploys; the "
               "modules, tables and export stay BatchNorm's). The same architectures, recipe and seeds as the section "
               "above; only the BatchNorm training differs. CBSD68 sigma 25, zero padding; latency: the front's.", "",
               md_table(["network", "target", "ms", "plain BN", "worst image", "Batch Renorm", "worst image", "change",
                         "baselines' front there", "renorm vs front", "train s"], rows), "",
               *target_means(by_target, line, "Batch Renormalization from scratch"), ""]
    return s


SECTIONS = {"front_scratch_renorm": renorm_section, "front_scratch": scratch_section, "front_width": width_section, f"front_uniform_lr_s{NOISE_SIGMA}": noise_section, "front_uniform_lr": uniform_lr_section, "padding": padding_section, "calibration": calibration_section, "front_hold": hold_section, "front_uniform_latency": uniform_latency_section,
            "front_plateau": plateau_section, "front_uniform": uniform_section, "front": front_section,
            "front_latency": front_latency_section}
