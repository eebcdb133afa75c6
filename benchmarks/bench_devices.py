"""Benchmark: one search for several chips (issue 15). Joint worst-case search vs one search per chip.

Two latency tables of the tiny preset at 256x256 whose cost structures differ for real
on this machine: the ONNX Runtime CPU table in fp32 and the same in int8 (every unit
statically quantised, QDQ). With the same search budget, three kinds of search, each
with seeds 0, 1, 2:

- `fp32`:  `hwnas search --lut fp32=fp32.csv`
- `int8`:  `hwnas search --lut int8=int8.csv`
- `joint`: `hwnas search --lut fp32=fp32.csv --lut int8=int8.csv --combine worst`

in one of two forms, a *series* each:

- penalty (`mu0.1`, the default): every search at the same mu (the issue's setup);
- constraint (`--target-ratio R`, series `targetR`): every device of every search gets
  the target R x its table's all-`naf` prediction (`--target-ms NAME=MS`), so every kind
  aims at the same normalised latency on the devices it sees; the goal then compares
  the excess over the target (a latency under it costs nothing in that form).

Every distinct derived architecture of a series and the all-`naf` base network are then
measured end to end on both configurations, each configuration in one interleaved
measurement (`hwnas.tables.profiling.profile_architectures` with the table's backend
settings, as `hwnas profile --lut <table>` measures one: 2 intra-op threads, int8
quantised like the table's units, 60 timed rounds, every round times every network once
in random order), so the machine's drift hits all networks of a configuration alike.
Runs that derived the same architecture share its measurement. A network's measured
normalised latency on a configuration is its measured ms over all-`naf`'s in the same
rounds. `--repeats` repeats, the configurations' order alternating.

Goal (issue 15): the joint network's worse-of-two measured ratio is no higher than
that of either single-device search's network, and its search validation PSNR lies
within [min, max] of the better single-device kind's three seeds. Judged per repeat by
`report_devices.py` (results page section "devices").

Stages (each resumable: finished work is skipped; a search continues from its
checkpoint):

    python benchmarks/bench_devices.py                   # all stages
    python benchmarks/bench_devices.py --stage tables    # build the two tables (W/fp32.csv, W/int8.csv)
    python benchmarks/bench_devices.py --stage search    # 3 kinds x 3 seeds (series mu0.1)
    python benchmarks/bench_devices.py --stage measure   # --repeats repeats of every network on both tables
    python benchmarks/bench_devices.py --stage rows      # (re)write results/devices.csv from the measurements
    python benchmarks/bench_devices.py --target-ratio 0.5 --latency-weight 0.1   # series target0.5-mu0.1, all stages

W = benchmarks/work/devices (git-ignored): tables and search runs (`W/runs/SERIES/KIND-sSEED`). Results:
`results/devices_lut/` (copies of both tables + sidecars: rerun against them with
`--work` pointing at a folder holding them), `results/devices_measured.csv` (every
network of every measurement: configuration, repeat, measured and predicted ms, load),
`results/devices.csv` (one row per series, search kind, seed and repeat), and the sidecar
`results/devices.meta.json` (every command, the machine, load at start and end).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import RESULTS_DIR, append_row, done_keys, read_rows, record_run, run_main

log = logging.getLogger("bench_devices")

NAME = "devices"
HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "devices"
SPACE, PRESET, IMAGE_SIZE = "nafnet-unet", "tiny", 256
CONFIGS = ("fp32", "int8")  # the two tables: name = precision = file stem
KINDS = {"fp32": ("fp32",), "int8": ("int8",), "joint": ("fp32", "int8")}
BASE = "all-naf"
# mu: hwnas's defaults, 0.1 in the penalty form and 1.0 in the constraint form (`hwnas search --help`).
DEFAULT_MU, DEFAULT_TARGET_MU = 0.1, 1.0
DEFAULT_EPOCHS, DEFAULT_STEPS = 5, 16  # reduced from the tiny default 10 x 40: 9 searches on a shared 2-core machine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python benchmarks/bench_devices.py --stage search")
    p.add_argument("--stage", choices=["all", "tables", "search", "measure", "rows"], default="all")
    p.add_argument("--seeds", default="0,1,2", help="search seeds, comma-separated (default 0,1,2)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"search kinds (default {','.join(KINDS)})")
    p.add_argument("--target-ratio", type=float, default=None,
                   help="constraint form: every device's target is this fraction of its table's all-naf prediction "
                        "(series targetR); not given, the penalty form (series muMU)")
    p.add_argument("--latency-weight", type=float, default=None,
                   help=f"mu of every search (default {DEFAULT_MU}; {DEFAULT_TARGET_MU} with --target-ratio)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"search epochs (default {DEFAULT_EPOCHS})")
    p.add_argument("--steps-per-epoch", type=int, default=DEFAULT_STEPS, help=f"search steps per epoch (default {DEFAULT_STEPS})")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the searches (default 2)")
    p.add_argument("--repeats", type=int, default=2, help="repeats of the measurement stage (default 2)")
    p.add_argument("--work", type=Path, default=WORK, help="tables and search runs (default benchmarks/work/devices)")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds takes integers separated by commas, got {args.seeds!r}")
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        p.error(f"unknown --kinds {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.target_ratio is not None and not 0 < args.target_ratio < 1:
        p.error(f"--target-ratio is a fraction of all-naf's latency, between 0 and 1 (exclusive), got {args.target_ratio:g}")
    if args.latency_weight is None:
        args.latency_weight = DEFAULT_MU if args.target_ratio is None else DEFAULT_TARGET_MU
    return args


def series(args: argparse.Namespace) -> str:
    """The series a run of this benchmark adds to: `muMU` (penalty form) or `targetR` (constraint form; `targetR-muMU`
    at a mu other than hwnas's default for it)."""
    if args.target_ratio is None:
        return f"mu{args.latency_weight:g}"
    name = f"target{args.target_ratio:g}"
    return name if args.latency_weight == DEFAULT_TARGET_MU else f"{name}-mu{args.latency_weight:g}"


def hwnas(*args: str) -> list[str]:
    return [sys.executable, "-m", "hwnas", *args]


def shown(command: list[str]) -> str:
    """A command as a user retypes it from the repository root (`hwnas ...`, relative paths)."""
    root = HERE.parent
    parts = ["hwnas", *command[3:]] if command[:3] == hwnas() else list(command)

    def rel(text: str) -> str:
        name, sep, path = text.rpartition("=")
        if Path(path).is_absolute():
            try:
                path = str(Path(path).relative_to(root))
            except ValueError:
                pass
        return f"{name}{sep}{path}"

    return shlex.join(rel(p) for p in parts)


def lut_arg(work: Path, config: str) -> str:
    return f"{config}={work / f'{config}.csv'}"


def run_name(kind: str, seed: int) -> str:
    return f"{kind}-s{seed}"


def run_dir(args: argparse.Namespace, kind: str, seed: int) -> Path:
    return args.work / "runs" / series(args) / run_name(kind, seed)


def base_ms(path: Path) -> float:
    """The table's prediction of the all-base (all-`naf`) network, in ms: what a target ratio scales."""
    from hwnas.contracts.latency import LatencyTable
    from hwnas.nas.objective import latency_model
    from hwnas.contracts.plugins import get_space

    space = get_space(SPACE).from_options(PRESET)
    return latency_model(LatencyTable.load(path), space.positions(IMAGE_SIZE), space.fixed_units(IMAGE_SIZE)).base_ms


def target_ms(args: argparse.Namespace, config: str) -> float | None:
    """The constraint form's target on `config`: --target-ratio x its table's all-naf prediction."""
    if args.target_ratio is None:
        return None
    return round(args.target_ratio * base_ms(args.work / f"{config}.csv"), 3)


# -- stage 1: tables ---------------------------------------------------------------------------------


def tables(args: argparse.Namespace, meta: dict) -> None:
    from hwnas.contracts.latency import sidecar_path

    args.work.mkdir(parents=True, exist_ok=True)
    for config in CONFIGS:
        path = args.work / f"{config}.csv"
        command = hwnas("build-lut", "--backend", "onnxruntime", "--preset", PRESET, "--image-size", str(IMAGE_SIZE),
                        "--precision", config, "--out", str(path), "--json")
        if path.is_file() and sidecar_path(path).is_file():
            log.info("table %s exists: skipped", path)
        else:
            log.info("building %s: %s", path, shown(command))
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            meta.setdefault("tables", {})[config] = {"command": shown(command), "seconds": round(time.perf_counter() - start, 1)}
        meta.setdefault("tables", {}).setdefault(config, {"command": shown(command)})
        copy = args.results / "devices_lut" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        for src, dst in ((path, copy), (sidecar_path(path), sidecar_path(copy))):
            if not dst.is_file() or dst.read_bytes() != src.read_bytes():
                shutil.copyfile(src, dst)


# -- stage 2: searches -------------------------------------------------------------------------------


def search_command(args: argparse.Namespace, kind: str, seed: int, run: Path) -> list[str]:
    command = ["search"]
    for config in KINDS[kind]:
        command += ["--lut", lut_arg(args.work, config)]
    if len(KINDS[kind]) > 1:
        command += ["--combine", "worst"]
    if args.target_ratio is not None:
        for config in KINDS[kind]:
            command += ["--target-ms", f"{config}={target_ms(args, config):g}"]
    command += ["--latency-weight", f"{args.latency_weight:g}", "--epochs", str(args.epochs),
                "--steps-per-epoch", str(args.steps_per_epoch), "--threads", str(args.threads), "--seed", str(seed),
                "--out", str(run), "--json"]
    return hwnas(*command)


def searches(args: argparse.Namespace, meta: dict) -> None:
    from hwnas.tables.machine_load import LoadWatch

    for seed in args.seeds:
        for kind in args.kinds:
            name = run_name(kind, seed)
            run = run_dir(args, kind, seed)
            command = search_command(args, kind, seed, run)
            book = meta.setdefault("searches", {}).setdefault(f"{series(args)}/{name}", {})
            book["command"] = shown(command)
            if (run / "summary.json").is_file() and _finished(run):
                log.info("search %s done: skipped", name)
                continue
            if (run / "checkpoints" / "last.pt").is_file():
                command = hwnas("search", "--out", str(run), "--resume", "--threads", str(args.threads), "--json")
                log.info("search %s: resuming from its checkpoint", name)
            log.info("search %s: %s", name, shown(command))
            watch = LoadWatch().start()
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
            watch.stop()
            if done.returncode != 0:
                raise SystemExit(f"search {name} failed (exit {done.returncode}): {shown(command)}")
            book.setdefault("seconds", []).append(round(watch.seconds, 1))
            book.setdefault("load", []).append(watch.record())
            summary = json.loads((run / "summary.json").read_text())
            log.info("search %s: %s, val psnr %.3f, %s", name, _counts(summary), summary["val"]["psnr"],
                     summary["commitment"]["verdict"][:60])


def _finished(run: Path) -> bool:
    summary = json.loads((run / "summary.json").read_text())
    return summary.get("epochs_done") == summary.get("epochs")


def _counts(summary: dict) -> str:
    counts = Counter(c["candidate"] for c in summary["choices"].values())
    return " ".join(f"{n}x{c}" for n, c in counts.items())


# -- stage 3: measurements ---------------------------------------------------------------------------


def networks(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """The distinct architectures of the series as (label, arch.json), and each run's label.

    A network is labelled by the first run (seed, then kind) that derived it; runs that
    derived the same architecture share its measurement, so equal networks compare equal.
    """
    distinct, label_of, by_arch = [], {}, {}
    for seed in args.seeds:
        for kind in args.kinds:
            name, arch = run_name(kind, seed), run_dir(args, kind, seed) / "arch.json"
            if not arch.is_file():
                raise SystemExit(f"no {arch}: run the search stage first (--stage search)")
            key = json.dumps(json.loads(arch.read_text())["choices"], sort_keys=True)
            if key not in by_arch:
                by_arch[key] = name
                distinct.append((name, arch))
            label_of[name] = by_arch[key]
    return distinct, label_of


def measure(args: argparse.Namespace, meta: dict) -> None:
    """Per repeat and configuration: all-naf and every distinct network in the same interleaved rounds."""
    import torch

    from hwnas.contracts.latency import LatencyTable
    from hwnas.tables.machine_load import LoadWatch
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.space import Architecture
    from hwnas.tables.building import TableRequest, make_backend, resolve_with_table
    from hwnas.tables.profiling import profile_architectures

    torch.set_num_threads(2)  # the tables' intra-op threads; export and quantisation beside them
    path = args.results / f"{NAME}_measured.csv"
    done = done_keys(path, ["series", "repeat", "config"])
    searched, label_of = networks(args)
    space = get_space(SPACE).from_options(PRESET)
    positions = {p.label: p.candidates for p in space.positions(IMAGE_SIZE)}
    names = next(iter(positions.values()))  # every position offers the same candidates
    archs = [(BASE, Architecture.uniform(space.name, positions, "naf")),
             *((label, Architecture.load(arch)) for label, arch in searched)]
    for repeat in range(args.repeats):
        for config in (CONFIGS if repeat % 2 == 0 else CONFIGS[::-1]):
            if (series(args), str(repeat), config) in done:
                continue
            table_path = args.work / f"{config}.csv"
            table = LatencyTable.load(table_path)
            request = resolve_with_table(table.meta, TableRequest(), str(table_path))
            backend = make_backend(request.backend, request.backend_options)
            watch = LoadWatch().start()
            results = profile_architectures(space, IMAGE_SIZE, archs, backend, table=table, table_source=str(table_path),
                                            batch=len(archs))
            watch.stop()
            for r in results:
                m = r.measured
                counts = Counter(r.architecture.choices.values())
                append_row(path, {
                    "series": series(args), "repeat": repeat, "config": config, "network": r.label,
                    "slot": "base" if r.label == BASE else "searched",
                    "shared_by": " ".join(n for n, lab in label_of.items() if lab == r.label),
                    "precision": backend.settings().get("precision", "fp32"),
                    "measured_ms": m.median_ms, "p10_ms": m.p10_ms, "p90_ms": m.p90_ms, "runs": m.runs,
                    "predicted_ms": r.prediction.total_ms, "error_pct": r.error_pct, "networks_in_rounds": len(archs),
                    "load_1min": watch.load_end, "other_cores": watch.other_cores, "seconds": round(watch.seconds, 1),
                    "choices": " ".join(r.architecture.choices.values()),
                    **{f"n_{c}": counts.get(c, 0) for c in names},
                })
                log.info("%s repeat %d %-9s on %s: measured %6.2f ms, predicted %6.2f ms", series(args), repeat, r.label,
                         config, m.median_ms, r.prediction.total_ms)
            log.info("%s repeat %d on %s: %d networks in %.0f s (load %.1f, other cores %.2f)", series(args), repeat, config,
                     len(archs), watch.seconds, watch.load_end or 0, watch.other_cores or 0)
    meta["settings"].setdefault("measured", {})[series(args)] = {"repeats": args.repeats, "networks": len(archs)}


# -- stage 4: rows ------------------------------------------------------------------------------------


def rows(args: argparse.Namespace) -> int:
    """One row of results/devices.csv per (series, kind, seed, repeat) whose measurements are all there."""
    import statistics

    name_of_series = series(args)
    measured = [r for r in read_rows(args.results / f"{NAME}_measured.csv") if r["series"] == name_of_series]
    by = {(r["repeat"], r["slot"], r["network"], r["config"]): r for r in measured}
    path = args.results / f"{NAME}.csv"
    done = done_keys(path, ["series", "kind", "seed", "repeat"])
    _, label_of = networks(args)
    targets = {c: target_ms(args, c) for c in CONFIGS}
    written = 0
    for repeat in sorted({int(r["repeat"]) for r in measured}):
        rep = str(repeat)
        base = {c: by[(rep, "base", BASE, c)] for c in CONFIGS if (rep, "base", BASE, c) in by}
        if len(base) < len(CONFIGS):
            continue
        for seed in args.seeds:
            for kind in args.kinds:
                name = run_name(kind, seed)
                if (name_of_series, kind, str(seed), rep) in done:
                    continue
                cells = {c: by.get((rep, "searched", label_of[name], c)) for c in CONFIGS}
                if None in cells.values():
                    continue
                summary = json.loads((run_dir(args, kind, seed) / "summary.json").read_text())
                row = {"series": name_of_series, "kind": kind, "seed": seed, "repeat": repeat, "run": name,
                       "measured_as": label_of[name], "searched_on": "+".join(KINDS[kind]),
                       "latency_weight": summary["latency_weight"], "target_ratio": args.target_ratio or "",
                       "val_psnr": summary["val"]["psnr"], "val_ssim": summary["val"].get("ssim"),
                       "committed": summary["commitment"]["committed"],
                       "min_largest_alpha": summary["commitment"]["min_largest_alpha"]}
                for config in CONFIGS:
                    c = cells[config]
                    row.update({
                        f"target_ms_{config}": targets[config] or "",
                        f"predicted_ms_{config}": float(c["predicted_ms"]),
                        f"predicted_ratio_{config}": float(c["predicted_ms"]) / float(base[config]["predicted_ms"]),
                        f"measured_ms_{config}": float(c["measured_ms"]),
                        f"base_ms_{config}": float(base[config]["measured_ms"]),
                        f"base_spread_pct_{config}": _spread_pct(base[config]),
                        f"measured_ratio_{config}": float(c["measured_ms"]) / float(base[config]["measured_ms"]),
                    })
                row["worst_predicted_ratio"] = max(row[f"predicted_ratio_{c}"] for c in CONFIGS)
                row["worst_measured_ratio"] = max(row[f"measured_ratio_{c}"] for c in CONFIGS)
                row["worst_measured_config"] = max(CONFIGS, key=lambda c: row[f"measured_ratio_{c}"])
                any_cell = cells[CONFIGS[0]]
                row.update({"choices": any_cell["choices"], **{k: v for k, v in any_cell.items() if k.startswith("n_")}})
                row["load_1min"] = statistics.mean(float(cells[c]["load_1min"]) for c in CONFIGS)
                row["other_cores"] = max(float(cells[c]["other_cores"] or 0) for c in CONFIGS)
                append_row(path, row)
                written += 1
    log.info("%s: %d rows written", path, written)
    return written


def _spread_pct(row: dict) -> float:
    """(p90 - p10) / median of a measured row, in percent: how much its rounds disagreed."""
    return 100.0 * (float(row["p90_ms"]) - float(row["p10_ms"])) / float(row["measured_ms"])


def main() -> None:
    args = parse_args()
    settings = {"space": SPACE, "preset": PRESET, "image_size": IMAGE_SIZE, "configs": list(CONFIGS),
                "kinds": {k: list(v) for k, v in KINDS.items() if k in args.kinds}, "seeds": args.seeds,
                "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                "search_threads": args.threads, "repeats": args.repeats, "combine": "worst",
                "measure": "hwnas.tables.profiling.profile_architectures: per configuration all networks in one interleaved measurement (the table's backend settings)"}
    with record_run(NAME, settings=settings, results_dir=args.results) as meta:
        if args.stage in ("all", "tables"):
            tables(args, meta)
        if args.stage != "tables":  # every series run so far keeps its settings (record_run merges top-level keys only)
            meta["settings"].setdefault("series", {})[series(args)] = {
                "latency_weight": args.latency_weight, "target_ratio": args.target_ratio,
                "target_ms": {c: target_ms(args, c) for c in CONFIGS}}
        if args.stage in ("all", "search"):
            searches(args, meta)
        if args.stage in ("all", "measure"):
            measure(args, meta)
        if args.stage in ("all", "measure", "rows"):
            rows(args)


if __name__ == "__main__":
    run_main(main)
