"""Results-page sections of int8 deployment at the front's scale (issue 24).

- `front_int8_quality.csv` (bench_front_int8.py, stage quality): the front's trained networks and the network
  searched against the int8 table, in fp32 and int8 files, scored on CBSD68 and Kodak24 at sigma 25; the goal:
  int8 loses at most INT8_GOAL_DB (stretch INT8_STRETCH_DB);
- `front_int8_latency.csv` (stage latency): those files timed end to end in the same rounds; the goal: the int8
  searched network at least SPEED_GOAL x faster than fp32 all-naf, and the int8 table's error on them;
- `calibration_fallback.csv` (bench_calibration.py --fallback-min-psnr): the mixed-precision fallback, what it
  kept in 16 bits and the dB it recovered; each network's sensitivity report beside it in
  `calibration_sensitivity/<network>.csv` (its most sensitive activations are listed).
"""

from __future__ import annotations

from pathlib import Path

# `report` (the page generator) loads this module and sets `report` to itself first.
if "report" not in globals():
    import report  # noqa: F401

Goal, Section, fmt, md_table = report.Goal, report.Section, report.fmt, report.md_table

INT8_GOAL_DB, INT8_STRETCH_DB = report.INT8_GOAL_DB, report.INT8_STRETCH_DB
SPEED_GOAL = 3.0  # int8 searched vs fp32 all-naf, end to end
SEARCHED, BASE = "int8-searched", "all-naf-s0"  # network name prefixes of bench_front_int8
SENSITIVE_SHOWN = 5


def quality_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("int8 files of the front's networks: PSNR kept (front_int8_quality.csv)")
    rows = []
    for (net, data), part in df.groupby(["network", "dataset"], sort=False):
        by = {r.precision: r for r in part.itertuples()}
        if "fp32" in by and "int8" in by:
            rows.append([net, data, fmt(by["fp32"].psnr, 3), fmt(by["int8"].psnr, 3), fmt(by["int8"].lost_db, 3)])
    s.body += ["Each network exported by `hwnas export` in fp32 and in int8 (the default calibration: percentile, "
               "per-channel weights, CBSD432 crops) and scored by `hwnas eval` at sigma 25 with the same noise. "
               f"`{SEARCHED}-*` was searched against the int8 table of the front's space (bench_front_int8.py).", "",
               md_table(["network", "data set", "fp32 PSNR", "int8 PSNR", "int8 lost (dB)"], rows), ""]
    lost = df[df.precision == "int8"]
    if not lost.empty:
        worst = float(lost.lost_db.max())
        s.goals.append(Goal("front int8", f"int8 export of the front's trained networks loses <= {INT8_GOAL_DB} dB on "
                            f"CBSD68 and Kodak24 at sigma 25 (stretch <= {INT8_STRETCH_DB})",
                            f"worst {worst:.2f} dB over {lost.network.nunique()} networks", worst <= INT8_GOAL_DB,
                            note="" if worst <= INT8_STRETCH_DB else f"stretch ({INT8_STRETCH_DB} dB) not met",
                            cause=f"8-bit activations lose {worst:.2f} dB; `--keep-16bit auto` (calibration_fallback.csv)"))
    s.body += report.goal_lines(s.goals)
    return s


def latency_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("int8 vs fp32 end to end at the front's scale (front_int8_latency.csv)")
    med = df.groupby(["network", "precision"], sort=False).agg(ms=("median_ms", "median"), lo=("median_ms", "min"),
                                                                hi=("median_ms", "max"), predicted=("predicted_ms", "first"),
                                                                load=("load_start", "max")).reset_index()
    rows = [[r.network, r.precision, fmt(r.ms, 2), f"{fmt(r.lo, 2)} .. {fmt(r.hi, 2)}",
             *((fmt(r.predicted, 2), f"{100 * (r.predicted / r.ms - 1):+.0f}%") if r.predicted == r.predicted else ("-", "-")),
             fmt(r.load, 2)] for r in med.itertuples()]
    s.body += ["The files of front_int8_quality.csv at 256x256, ONNX Runtime CPU (2 threads), one after the other in "
               "each round; `table` is the fp32 or int8 table's prediction (built at another time: the machine's "
               "speed drifts, see drift.csv).", "",
               md_table(["network", "precision", "median ms", "range", "table ms", "table error", "load (max)"], rows), ""]
    base = med[(med.network == BASE) & (med.precision == "fp32")]
    searched = med[med.network.str.startswith(SEARCHED) & (med.precision == "int8")]
    if not base.empty and not searched.empty:
        per_repeat = (df[(df.network == BASE) & (df.precision == "fp32")].set_index("repeat").median_ms
                      / df[df.network.isin(searched.network) & (df.precision == "int8")].groupby("repeat").median_ms.max())
        worst_ratio = float(per_repeat.min())
        ratio = float(base.ms.iloc[0] / searched.ms.max())
        slowest = searched.loc[searched.ms.idxmax()]
        error = 100 * (slowest.predicted / slowest.ms - 1)
        cause = (f"the int8 table predicted {slowest.network} at {slowest.predicted:.1f} ms, {error:+.0f}% off what it "
                 "measured: its target admitted a slower network than it meant to" if abs(error) > 10 else
                 "the search's target (a fraction of int8 all-naf's prediction) admits a network this slow")
        s.goals.append(Goal("front int8", f"int8 searched >= {SPEED_GOAL}x faster than fp32 all-naf end to end "
                            "(every repeat)", f"{ratio:.2f}x (worst repeat {worst_ratio:.2f}x)",
                            worst_ratio >= SPEED_GOAL, cause=cause))
    s.body += report.goal_lines(s.goals)
    return s


def fallback_section(df, meta: dict, results: Path, out: Path) -> Section:
    s = Section("int8 mixed-precision fallback: activations kept in 16 bits (calibration_fallback.csv)")
    rows = [[r.network, fmt(r.min_psnr, 0), f"{r.kept_16bit} of {r.activations}", fmt(r.check_8bit_db, 2),
             fmt(r.check_db, 2), fmt(r.CBSD68_lost_db, 3), fmt(r.Kodak24_lost_db, 3), r.kept] for r in df.itertuples()]
    s.body += ["`hwnas export --precision int8 --keep-16bit auto --min-psnr M`: the fewest most sensitive activations "
               "kept at 16 bits for the file's outputs to be within M dB PSNR of PyTorch's on held-out inputs "
               "(check: all-8-bit, then with the fallback); dB lost to fp32 at sigma 25.", "",
               md_table(["network", "--min-psnr", "16-bit", "check 8-bit (dB)", "check (dB)", "CBSD68 lost", "Kodak24 lost",
                         "kept"], rows), ""]
    import pandas as pd

    for path in sorted((results / "calibration_sensitivity").glob("*.csv")):
        top = pd.read_csv(path).head(SENSITIVE_SHOWN)
        s.body += [f"Most sensitive activations of {path.stem} (output PSNR with only that tensor in 8 bits; all in "
                   f"`results/calibration_sensitivity/{path.name}`):", "",
                   md_table(list(top.columns), [[fmt(v, 2) if isinstance(v, float) else v for v in row]
                                                for row in top.itertuples(index=False)]), ""]
    return s


SECTIONS = {"front_int8_quality": quality_section, "front_int8_latency": latency_section,
            "calibration_fallback": fallback_section}
