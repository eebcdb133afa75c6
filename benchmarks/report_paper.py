"""Results-page sections of the paper-scale benchmarks (bench_paper.py, bench_throughput.py).

- `paper.csv` + `paper_latency.csv`: the paper's headline measured by hwnas -- searched
  vs all-`naf` at the paper preset: PSNR/SSIM per data set and sigma, the relative PSNR
  drop, parameters, GMACs and the measured end-to-end latency ratio of every repeat,
  beside the paper's 2x / 0.7% / 12% fewer parameters;
- `paper_commit.csv`: does a sampled paper-preset search commit, and after how many steps;
- `throughput.csv`: training and search step time under each compute option vs eager;
- `precision_*.csv` (bench_precision.py): int8 vs fp32 per candidate, end to end, and the
  PSNR the trained networks keep after post-training int8 quantisation.

Goals are judged on quiet measurements only (1-minute load average at most QUIET_LOAD
on the machine's 2 cores, the benchmark's own threads included); measurements under
load are shown beside them as diagnostics.
"""

from __future__ import annotations

from pathlib import Path

# `report` (the page generator) loads this module and sets `report` to itself first;
# run on its own, the module beside this file is imported.
if "report" not in globals():
    import report  # noqa: F401

Goal, Section, fmt, md_table = report.Goal, report.Section, report.fmt, report.md_table

QUIET_LOAD = 2.5
PAPER = {"speedup": 2.0, "psnr_drop_pct": 0.7, "fewer_params_pct": 12.0}
GOAL_RATIO, GOAL_EVERY, GOAL_DROP = 2.0, 1.8, 0.7
STRETCH_RATIO, STRETCH_DROP = 2.5, 0.5
THROUGHPUT_GOAL = 1.3


def _pct_drop(base: float, other: float) -> float:
    return 100.0 * (base - other) / base


def paper_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("The paper's headline at the paper preset (paper.csv)")
    settings = meta.get("settings", {})
    search = settings.get("search", {})
    if search:
        c = search.get("commitment", {})
        s.body += [
            f"Search: sampled mode, {search.get('epochs')} x {search.get('steps_per_epoch')} steps, crop "
            f"{search.get('crop')}, batch {search.get('batch')}, target {fmt(search.get('target_ms', 0), 1)} ms "
            f"({search.get('target_fraction')} x the all-naf prediction {fmt(search.get('base_ms', 0), 1)} ms); "
            f"derived network predicted {fmt(search.get('predicted_ms', 0), 1)} ms. {c.get('verdict', '')}.",
            f"Fine-tuning: {settings.get('fine_tune', {}).get('epochs')} x {settings.get('fine_tune', {}).get('steps_per_epoch')} "
            f"steps from the super-net. Training data {settings.get('train_data')}, blind sigma {settings.get('train_sigma')}; "
            "all-naf trained from scratch for the searched network's weight updates (search + fine-tuning; seeds 0 and 1) "
            "and for its wall-clock (naf-wall).", ""]
        uniform = _uniform(search)
        if uniform:
            s.body += [
                f"**The searched network is the uniform all-{uniform} network** (`{uniform}` at all "
                f"{len(search['choices'])} positions): the search collapsed onto the cheapest candidate, under a target "
                f"({fmt(search.get('target_ms', 0), 1)} ms) only {search['target_ms'] / search['predicted_ms']:.2f}x the "
                f"prediction of all-{uniform} itself ({fmt(search['predicted_ms'], 1)} ms), where no other network was "
                f"feasible. Below, `searched` is that uniform network; it shows what all-{uniform} (inheriting super-net "
                "weights) gives, not that searching beats not searching. The latency-quality front "
                "(`benchmarks/bench_front.py`) is where a search is set beside the networks a user picks without one.", ""]
            s.body += _twin_note(df, uniform)
    pivot = df.pivot_table(index=["network", "params", "gmacs", "weight_updates"], columns=["dataset", "sigma"],
                           values=["psnr", "ssim"], aggfunc="mean", sort=False)
    cols = [(d, sg) for _, d, sg in pivot.columns if _ == "psnr"]
    headers = ["network", "params (M)", "GMACs", "weight updates"] + [f"{d} s={sg} PSNR/SSIM" for d, sg in cols]
    rows = []
    for key, row in pivot.iterrows():
        name, params, gmacs, updates = key
        cells = [f"{fmt(row[('psnr', d, sg)], 2)} / {fmt(row[('ssim', d, sg)], 4)}" for d, sg in cols]
        uniform = _uniform(search) if name == "searched" else None
        rows.append([f"searched (= uniform all-{uniform})" if uniform else name, fmt(params / 1e6, 2), fmt(gmacs, 2),
                     int(updates), *cells])
    s.body += [md_table(headers, rows), ""]
    missing = [n for n in ("searched", "naf-s0", "naf-s1", "naf-wall") if n not in set(df.network)]
    if missing:
        s.body += [f"Not trained and scored yet: {', '.join(missing)} (`python benchmarks/bench_paper.py train --networks "
                   f"{','.join(missing)}`, then `eval` and `report`); verdicts below use the networks above only.", ""]
    wall = settings.get("naf_wall")
    if wall:
        t = wall["step_times"]
        s.body += [f"naf-wall (all-naf for the searched network's wall-clock) "
                   f"{'is planned at' if 'naf-wall' in missing else 'trained for'} {wall['steps']} steps, from step "
                   f"times measured side by side: super-net weight step {t['supernet_weight_step']:.2f} s, architecture step "
                   f"{t['arch_step']:.2f} s, searched-network step {t['searched_step']:.2f} s, all-naf step "
                   f"{t['naf_step']:.2f} s. "
                   + ("That is fewer updates than the equal-updates rows' "
                      f"{wall['equal_updates']}: at equal wall-clock all-naf would be trained less, so the equal-updates "
                      "comparison above is the harder test for the searched network." if wall["steps"] < wall["equal_updates"]
                      else f"That is at least the equal-updates rows' {wall['equal_updates']}: the row is needed to judge "
                      "the searched network at equal wall-clock."), ""]
    drops = _drops(df)
    if drops:
        s.body += ["Relative PSNR drop of the searched network (%; negative: the searched network is better):", "",
                   md_table(["vs", *[f"{d} s={sg}" for d, sg in drops["cols"]]],
                            [[ref, *(fmt(v, 2) for v in vals)] for ref, vals in drops["rows"].items()]), ""]
    lat = _read(results / "paper_latency.csv")
    s.goals += _paper_goals(df, drops, lat, meta)
    if lat is not None and not lat.empty:
        s.body += ["End-to-end latency at 256x256, ONNX Runtime CPU (2 threads), searched vs all-naf interleaved, "
                   "every repeat:", "",
                   md_table(["repeat", "all-naf ms", "searched ms", "ratio", "load (1 min)"],
                            [[int(r.repeat), fmt(r.naf_ms, 1), fmt(r.searched_ms, 1), fmt(r.ratio, 2), r.load_1min]
                             for r in lat.itertuples()]), ""]
    base = df[df.network == "naf-s0"]
    searched = df[df.network == "searched"]
    if not base.empty and not searched.empty and lat is not None and not lat.empty:
        fewer = 100.0 * (1 - searched.params.iloc[0] / base.params.iloc[0])
        quiet = lat[lat.load_1min.astype(float) <= QUIET_LOAD]
        ratio = quiet.ratio.median() if not quiet.empty else float("nan")
        drop = drops["cbsd68_25"] if drops and drops.get("cbsd68_25") is not None else float("nan")
        s.body += ["Beside the paper (SM8650 NPU there, this CPU here):", "",
                   md_table(["", "speed-up vs NAFNet", "PSNR drop", "fewer parameters"],
                            [["paper", f"~{PAPER['speedup']}x", f"{PAPER['psnr_drop_pct']}%", f"{PAPER['fewer_params_pct']}%"],
                             ["hwnas (median of quiet repeats; CBSD68 s=25 vs naf-s0)", f"{fmt(ratio, 2)}x",
                              f"{fmt(drop, 2)}%", f"{fmt(fewer, 1)}%"]]), ""]
    return s


def _twin_note(df, uniform: str) -> list[str]:
    """The collapsed search's network beside the same uniform network trained from scratch (issue 22 item 1)."""
    def psnr(name: str) -> float | None:
        v = df[(df.network == name) & df.dataset.astype(str).str.contains("68") & (df.sigma.astype(int) == 25)].psnr
        return float(v.iloc[0]) if len(v) else None

    searched, twin, naf = psnr("searched"), psnr(f"{uniform}-s0"), psnr("naf-s0")
    if searched is None or twin is None:
        return [f"The same all-{uniform} network trained from scratch (`{uniform}-s0`) is not measured yet: `python "
                f"benchmarks/bench_paper.py train --networks {uniform}-s0`, then `eval` and `report`.", ""]
    vs_naf = f"; all-naf (naf-s0) scores {naf:.2f} dB" if naf is not None else ""
    return [f"Trained from scratch for the same weight updates with the same recipe, the same network (`{uniform}-s0`) "
            f"scores {twin:.2f} dB on CBSD68 s=25, the searched copy (super-net weights, then fine-tuning) {searched:.2f} "
            f"dB: {searched - twin:+.2f} dB, the search's whole contribution here, since the architecture is the one a "
            f"user picks without a search{vs_naf}.", ""]


def _collapse_note(meta: dict) -> str:
    uniform = _uniform(meta.get("settings", {}).get("search", {}))
    return f"; met by the uniform all-{uniform} network (the search collapsed), not by a mix" if uniform else ""


def _uniform(search: dict) -> str | None:
    """The one candidate of the recorded search's every position, or None for a mix (or no record)."""
    names = set((search.get("choices") or {}).values())
    return names.pop() if len(names) == 1 else None


def _read(path: Path):
    import pandas as pd

    return pd.read_csv(path) if path.exists() else None


def _drops(df) -> dict | None:
    searched = df[df.network == "searched"]
    if searched.empty:
        return None
    cols = list(dict.fromkeys(zip(searched.dataset, searched.sigma)))
    rows = {}
    twins = [n for n in dict.fromkeys(df.network) if n.endswith("-s0") and not n.startswith("naf")]
    for ref in ("naf-s0", "naf-s1", "naf-wall", *twins):
        base = df[df.network == ref]
        if base.empty:
            continue
        vals = []
        for d, sg in cols:
            b = base[(base.dataset == d) & (base.sigma == sg)].psnr
            v = searched[(searched.dataset == d) & (searched.sigma == sg)].psnr
            vals.append(_pct_drop(float(b.iloc[0]), float(v.iloc[0])) if len(b) and len(v) else float("nan"))
        rows[ref] = vals
    key = next((i for i, (d, sg) in enumerate(cols) if "68" in str(d) and int(sg) == 25), None)
    cbsd = [rows[r][key] for r in ("naf-s0", "naf-s1") if r in rows and key is not None]
    return {"cols": cols, "rows": rows, "cbsd68_25": max(cbsd) if cbsd else None}


def _paper_goals(df, drops, lat, meta: dict) -> list[Goal]:
    goals = []
    quiet = lat[lat.load_1min.astype(float) <= QUIET_LOAD] if lat is not None and not lat.empty else None
    drop = drops["cbsd68_25"] if drops else None
    if quiet is None or quiet.empty or drop is None:
        goals.append(Goal("paper", f"searched vs all-naf >= {GOAL_RATIO}x (every repeat >= {GOAL_EVERY}x, quiet) at <= "
                          f"{GOAL_DROP}% PSNR drop (CBSD68 s=25, equal weight updates)", "-", None))
    else:
        ratio, worst = float(quiet.ratio.median()), float(quiet.ratio.min())
        met = ratio >= GOAL_RATIO and worst >= GOAL_EVERY and drop <= GOAL_DROP
        cause = "" if met else (f"latency ratio {ratio:.2f}x (worst {worst:.2f}x)" if ratio < GOAL_RATIO or worst < GOAL_EVERY
                                else f"PSNR drop {drop:.2f}% (worse seed of all-naf)")
        stretch = ratio >= STRETCH_RATIO and drop <= STRETCH_DROP
        goals.append(Goal("paper", f"searched vs all-naf >= {GOAL_RATIO}x (every repeat >= {GOAL_EVERY}x, quiet) at <= "
                          f"{GOAL_DROP}% PSNR drop (CBSD68 s=25, equal weight updates)",
                          f"{ratio:.2f}x (repeats {', '.join(f'{r:.2f}' for r in quiet.ratio)}), drop {drop:.2f}%"
                          + (" -- stretch met" if stretch else "") + _collapse_note(meta), met, cause))
    c = meta.get("settings", {}).get("search", {}).get("commitment")
    goals.append(Goal("paper", "paper-preset search ends committed (largest alpha >= 0.8 everywhere, entropy <= 0.1)",
                      "-" if not c else f"lowest largest alpha {c['min_largest_alpha']:.3f}, entropy {c['alpha_entropy']:.3f}",
                      None if not c else c["committed"]))
    return goals


def paper_latency_section(df, meta: dict, results: Path, out: Path) -> Section:
    return Section("Paper headline latency repeats (paper_latency.csv)", ["Shown in the paper headline section.", ""])


def paper_commit_section(df, meta: dict, results: Path, out: Path) -> Section:
    from hwnas.contracts.config import MIN_LR as min_lr
    from hwnas.nas.schedule import ARCH_TRAVEL

    s = Section("How long a sampled paper-preset search needs to commit (paper_commit.csv)")
    s.body += ["Defaults of `hwnas search --preset paper --mode sampled` (crop 64, batch 8, the embedded sample images), "
               "one search per length; committed = every largest alpha >= 0.8 and mean normalised entropy <= 0.1. "
               "`arch_travel`: the logits' default total travel (`--arch-lr` = travel / architecture steps, "
               f"`hwnas.nas.schedule.ARCH_TRAVEL`, now {ARCH_TRAVEL:g}); `min_lr`: where the weights' rate anneals to "
               f"(0.002 = `--lr`: constant, the only behaviour before; now a cosine to {min_lr:g}). Rows of an earlier "
               "default are kept as they ran.", ""]
    cols = ["steps", "arch_travel", "min_lr", "warmup_epochs", "arch_lr", "committed", "min_largest_alpha", "alpha_entropy",
            "argmax_changed_last_quarter", "predicted_speedup", "seconds"]
    shown = df.copy()
    if "min_lr" in shown:  # a rate, not a 3-decimal number; series together, shortest first
        shown["min_lr"] = [f"{float(v):g}" for v in shown.min_lr]
        shown = shown.sort_values(["arch_travel", "min_lr", "steps"], key=lambda c: c.astype(float), ascending=[True, False, True], kind="stable")
    rows = [[fmt(v, 3) if isinstance(v, float) else v for v in r]
            for r in shown[[c for c in cols if c in shown]].itertuples(index=False)]
    s.body += [md_table([c for c in cols if c in df], rows), ""]
    now = df
    if "arch_travel" in df:
        now = now[now.arch_travel.astype(float) == ARCH_TRAVEL]
    if "min_lr" in df:
        now = now[now.min_lr.astype(float) == min_lr]
    committed = now.committed.astype(str) == "True"
    s.goals.append(Goal("paper commit", f"a sampled paper-preset search commits at the defaults (travel {ARCH_TRAVEL:g}, "
                        f"min-lr {min_lr:g}), "
                        "60 to 600 steps",
                        f"{int(committed.sum())} of {len(now)} lengths committed"
                        + (f" ({', '.join(str(int(v)) for v in now.steps)} steps)" if len(now) else ""),
                        bool(committed.all()) if len(now) else None))
    return s


def throughput_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("Throughput of search and train at the paper preset (throughput.csv)")
    s.body += ["Median step time over repeats (each variant in its own process, interleaved); ratio = eager / variant "
               "(above 1: faster). Batch 8 x crop 64.", ""]
    rows, best = [], None
    for kind, g in df.groupby("kind", sort=False):
        eager = g[g.variant == "eager"].step_s.median()
        for variant, v in g.groupby("variant", sort=False):
            ratio = eager / v.step_s.median()
            compile_s = v.compile_s.dropna().median() if "compile_s" in v else float("nan")
            rows.append([kind, variant, fmt(v.step_s.median(), 3), fmt(ratio, 2), fmt(v.data_s.median() * 1000, 1),
                         fmt(compile_s, 0) if compile_s == compile_s else "", fmt(v.load_1min.astype(float).mean(), 1)])
            if kind == "train" and variant != "eager" and (best is None or ratio > best[1]):
                best = (variant, ratio)
    s.body += [md_table(["step", "variant", "s/step", "ratio", "data ms/batch", "compile s", "load"], rows), ""]
    if best:
        s.goals.append(Goal("throughput", f"best option >= {THROUGHPUT_GOAL}x today's eager training step, or why not",
                            f"best: {best[0]} {best[1]:.2f}x", best[1] >= THROUGHPUT_GOAL,
                            "" if best[1] >= THROUGHPUT_GOAL else
                            "the eager default already uses every core; channels-last, emulated bf16 and torch.compile "
                            "are slower on this AVX2 CPU, and the loader's batch time is far below a step's"))
    return s


# -- deployment precision (bench_precision.py) ------------------------------------------------------

PRECISION_SPEEDUP, PRECISION_LOSS_DB = 3.0, 0.3  # int8 searched vs fp32 all-naf; dB lost to quantisation


def precision_units_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("int8 vs fp32 per candidate and stage, ONNX Runtime CPU (precision_units.csv)")
    s.body += ["Two plain `hwnas build-lut --preset paper --image-size 256` tables, fp32 and `--precision int8` "
               "(every unit statically quantised, QDQ, per-channel weights); speed-up = fp32 ms / int8 ms. Built one "
               "after the other, so each carries its own moment of the machine (load in the provenance below).", ""]
    cand = df[df.kind == "candidate"]
    shapes = list(dict.fromkeys(cand.input_shape))
    rows = []
    for name, g in cand.groupby("name", sort=False):
        by = dict(zip(g.input_shape, g.speedup))
        rows.append([name, *(fmt(by.get(sh, float("nan")), 2) for sh in shapes), fmt(g.speedup.median(), 2)])
    s.body += [md_table(["candidate", *shapes, "median"], rows), ""]
    fixed = df[df.kind != "candidate"]
    if not fixed.empty:
        s.body += ["Fixed parts: " + ", ".join(f"{r.name} {fmt(r.speedup, 2)}x" for r in fixed.itertuples()) + ".", ""]
    return s


def precision_latency_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("int8 vs fp32 end to end at the paper preset (precision_latency.csv)")
    s.body += ["Whole networks at 256x256, ONNX Runtime CPU, 2 threads; the networks of one precision interleaved in "
               "each repeat (int8: quantised like the table's units). Every repeat:", ""]
    pivot = df.pivot_table(index=["repeat", "network"], columns="precision", values="median_ms", sort=False)
    loads = df.groupby("repeat").load_1min.max()
    rows = [[int(rep), net, fmt(r.get("fp32", float("nan")), 1), fmt(r.get("int8", float("nan")), 1),
             fmt(r.get("fp32", float("nan")) / r.get("int8", float("nan")), 2), loads.get(rep, "")]
            for (rep, net), r in pivot.iterrows()]
    s.body += [md_table(["repeat", "network", "fp32 ms", "int8 ms", "int8 speed-up", "load (1 min)"], rows), ""]
    return s


PRECISION_STRETCH_DB = 0.1
LEGACY = "former default"  # rows measured before the benchmark recorded its calibration (MinMax)


def precision_quality_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("PSNR after post-training int8 quantisation (precision_quality.csv)")
    s.body += ["The trained networks of the paper benchmark exported in fp32 and with `hwnas export --precision int8 "
               "--calibration CBSD432` (ONNX Runtime's static QDQ quantisation with the export's default calibration, "
               "named in each row), both scored by `hwnas eval` at sigma 25 (same noise); w8a16 (16-bit activations) "
               "says how much of the loss is the activations'. `trained` tells trainings apart (the model file's hash; "
               "`-`: the 2026-11-29 training, no longer on disk); `cbr-s0` is the searched network's architecture "
               "(all-cbr) trained from scratch for the same updates. `export check` = the export's own PSNR between "
               "the int8 file's outputs and PyTorch's on held-out inputs.", ""]
    df = df.copy()
    for column in ("model", "calibration"):
        df[column] = df[column].map(lambda v: v if isinstance(v, str) else "") if column in df else ""
    rows, loss, current = [], {}, {}
    for (net, model, dataset), g in df.groupby(["network", "model", "dataset"], sort=False):
        by = {r.precision: r for r in g.itertuples()}
        if "fp32" not in by or "int8" not in by:
            continue
        drop = float(by["fp32"].psnr) - float(by["int8"].psnr)
        int8 = by["int8"]
        (loss if LEGACY in int8.calibration else current)[(net, dataset)] = drop  # a later training replaces
        w = by.get("w8a16")
        rows.append([net, model or "-", int8.calibration, dataset, fmt(by["fp32"].psnr, 2), fmt(int8.psnr, 2),
                     fmt(drop, 2), fmt(float(by["fp32"].psnr) - float(w.psnr), 2) if w is not None else "",
                     fmt(by["fp32"].ssim, 4), fmt(int8.ssim, 4), int8.quant_psnr_db])
    s.body += [md_table(["network", "trained", "int8 calibration", "data set", "fp32 PSNR", "int8 PSNR", "int8 dB lost",
                         "w8a16 dB lost", "fp32 SSIM", "int8 SSIM", "int8 export check dB"], rows), ""]
    lat = _read(results / "precision_latency.csv")
    s.goals.append(_precision_goal(lat, current, loss))
    s.body += report.goal_lines(s.goals)
    return s


def _precision_goal(lat, current: dict, former: dict) -> Goal:
    """int8 speed of the searched network against fp32 all-naf, and the dB every trained network loses to int8 with
    today's calibration (`current`: (network, data set) -> dB); with only `former` (MinMax) rows, that one's verdict."""
    what = (f"int8 searched >= {PRECISION_SPEEDUP}x faster than fp32 all-naf on this CPU, <= {PRECISION_LOSS_DB} dB lost "
            f"to quantisation (every trained network, CBSD68 and Kodak24 s=25; stretch <= {PRECISION_STRETCH_DB} dB)")
    ratios = []
    for _, g in (lat.groupby("repeat") if lat is not None and not lat.empty else []):
        naf = g[(g.network == "all-naf") & (g.precision == "fp32")].median_ms
        searched = g[(g.network == "searched") & (g.precision == "int8")].median_ms
        if len(naf) and len(searched):
            ratios.append(float(naf.iloc[0]) / float(searched.iloc[0]))
    losses = current or {k: v for k, v in former.items() if k[0] == "searched" and "68" in str(k[1])}
    if not ratios or not losses:
        return Goal("precision", what, "-", None)
    (net, dataset), drop = max(losses.items(), key=lambda kv: kv[1])
    met = min(ratios) >= PRECISION_SPEEDUP and drop <= PRECISION_LOSS_DB
    stretch = "; stretch met" if met and drop <= PRECISION_STRETCH_DB else ""
    cause = "" if met else "; ".join(part for part in (
        f"speed-up {min(ratios):.2f}x in the worst repeat" if min(ratios) < PRECISION_SPEEDUP else "",
        (f"{drop:.2f} dB lost by {net} on {dataset}" if current else
         f"{drop:.2f} dB lost to int8 with the former default calibration (MinMax), measured before issue 24 made "
         "percentile calibration the default; the paper benchmark's trained networks are not on this machine to export "
         "again: `python benchmarks/bench_paper.py train --networks cbr-s0,naf-s0`, then `python "
         "benchmarks/bench_precision.py ptq --paper-work benchmarks/work/paper`") if drop > PRECISION_LOSS_DB else "")
        if part)
    return Goal("precision", what, f"{', '.join(f'{r:.2f}x' for r in ratios)} (every repeat), at most {drop:.2f} dB lost "
                f"({net}, {dataset}){stretch}", met, cause)


INT8_SCALE_FREE_MEAN_PCT = 5.0  # int8 table vs whole int8 networks, scale-free mean |error| (issue 24)
INT8_ABSOLUTE_MEAN_PCT = 10.0  # ... and its absolute mean |error|, judged where drift cannot enter: units timed in the same rounds


def precision_batches(df) -> tuple[list, bool]:
    """(each row's interleaved batch, whether inferred): rows from before the `batch` column were timed by
    `profile_architectures` in its default batches (NETWORK_BATCH) in row order."""
    from hwnas.tables.profiling import NETWORK_BATCH

    if "batch" in df and df["batch"].notna().all():
        return list(df["batch"]), False
    return [i // NETWORK_BATCH for i in range(len(df))], True


def _int8_absolute_goal(what: str, again) -> Goal:
    """The absolute goal on the same-rounds error: the table's units timed beside the networks, so a miss is the
    per-unit method's own bias, never the machine's drift."""
    mean_abs = float(again.abs().mean())
    met = mean_abs <= INT8_ABSOLUTE_MEAN_PCT
    side = "over" if again.mean() > 0 else "under"
    return Goal("precision", f"{what}: absolute mean |error| <= {INT8_ABSOLUTE_MEAN_PCT:g}% (units timed in the networks' "
                "own rounds, so no drift)", f"{fmt(mean_abs, 1)}%", met,
                "" if met else f"the per-unit int8 sum {side}-predicts every whole int8 network alike (signed mean "
                f"{again.mean():+.1f}% with its units timed beside them): a bias of timing int8 units alone, which "
                "the scale-free error takes out by construction.")


def precision_fidelity_section(df, meta: dict, results: Path, out: Path) -> Section:
    from hwnas.tables.fidelity import scale_free_errors

    s = Section("The int8 table against whole int8 networks (precision_fidelity.csv)")
    err, again = df.error_pct.astype(float), df.error_same_rounds_pct.astype(float)
    batches, inferred = precision_batches(df)
    free, factors = report.scale_free(df, batches)
    own = scale_free_errors(list(df.predicted_ms), list(df.measured_ms), batches)
    s.body += ["Random paper-preset networks at 256x256, each quantised whole (QDQ) and timed end to end, against the "
               "int8 table's sum and against its units timed again in the networks' own rounds (drift removed). "
               "Scale-free error (`hwnas.tables.fidelity`, judged): each network's predicted/measured ratio over the "
               "geometric-mean ratio of its interleaved batch.", "",
               md_table(["network", "batch", "predicted ms", "measured ms", "error %", "scale-free error %",
                         "same-rounds error %", "load"],
                        [[r.network, b, fmt(r.predicted_ms, 1), fmt(r.measured_ms, 1), fmt(r.error_pct, 1),
                          "n/a" if e is None else fmt(e, 1), fmt(r.error_same_rounds_pct, 1), r.load_1min]
                         for r, b, e in zip(df.itertuples(), batches, own)]), "",
               f"Scale-free: mean |error| {fmt(free['mean_abs'], 1)}%, worst {free['worst']:+.1f}% "
               f"({free['within']}/{free['n']} within +-10%). Diagnostics: absolute mean |error| {fmt(err.abs().mean(), 1)}% "
               f"(signed {err.mean():+.1f}%, {int((err.abs() <= 10).sum())}/{len(df)} within +-10%); batch factors "
               f"{report._factors(factors)}; same rounds {fmt(again.abs().mean(), 1)}% (signed {again.mean():+.1f}%, "
               f"{int((again.abs() <= 10).sum())}/{len(df)}). Where the same-rounds error stays far from 0, the batch "
               "factors are the table's own bias (common to every network, which the scale-free error takes out by "
               "construction), not the machine's drift.", ""]
    if inferred:
        s.body += ["(batches inferred: rows written before bench_precision recorded them; the stage timed its networks "
                   "in `profile_architectures`' default batches, in row order.)", ""]
    loads = df.load_1min.astype(float)
    what = f"int8 table vs {len(df)} whole int8 networks"
    if loads.notna().any() and loads.max() > QUIET_LOAD:
        s.goals.append(Goal("precision", f"{what}: scale-free", "machine busy", None,
                            note=f"1-minute load {loads.max():.2f} > {QUIET_LOAD:g}"))
    else:
        s.goals += report.scale_free_goals(what, free, INT8_SCALE_FREE_MEAN_PCT, benchmark="precision")
        s.goals.append(_int8_absolute_goal(what, again))
    s.body += report.goal_lines(s.goals)
    return s


SECTIONS = {"precision_units": precision_units_section, "precision_fidelity": precision_fidelity_section, "precision_latency": precision_latency_section,
            "precision_quality": precision_quality_section,
            "paper": paper_section, "paper_latency": paper_latency_section, "paper_commit": paper_commit_section,
            "throughput": throughput_section}
