"""Benchmark: one search for several chips (issue 15). Joint worst-case search vs one search per chip.

Two latency tables of the tiny preset at 256x256 whose cost structures differ for real
on this machine: the ONNX Runtime CPU table in fp32 and the same in int8 (every unit
statically quantised, QDQ). With the same search budget and the same mu, three kinds of
search, each with seeds 0, 1, 2:

- `fp32`:  `hwnas search --lut fp32=fp32.csv`
- `int8`:  `hwnas search --lut int8=int8.csv`
- `joint`: `hwnas search --lut fp32=fp32.csv --lut int8=int8.csv --combine worst`

Every derived network (and the all-`naf` base network) is then measured end to end on
both configurations with `hwnas profile --lut <table> --arch RUN/arch.json --json` (the
table's backend settings: 2 intra-op threads, int8 quantised like the table's units).
A network's measured normalised latency on a configuration is its measured ms over the
measured ms of all-`naf` in the same repeat (all-`naf` is measured at the start and at
the end of every repeat; the mean of the two is the base). Networks are measured one
profile call at a time, in an order reversed every other repeat, each network on both
configurations back to back (which goes first alternates).

Goal (issue 15): the joint network's worse-of-two measured ratio is no higher than
that of either single-device search's network, and its search validation PSNR lies
within [min, max] of the better single-device kind's three seeds. Judged per repeat by
`report_devices.py` (results page section "devices").

Stages (each resumable: finished work is skipped; a search continues from its
checkpoint):

    python benchmarks/bench_devices.py                   # all stages
    python benchmarks/bench_devices.py --stage tables    # build the two tables (W/fp32.csv, W/int8.csv)
    python benchmarks/bench_devices.py --stage search    # 3 kinds x 3 seeds
    python benchmarks/bench_devices.py --stage measure   # --repeats repeats of every network on both tables
    python benchmarks/bench_devices.py --stage rows      # (re)write results/devices.csv from the measurements

W = benchmarks/work/devices (git-ignored): tables and search runs. Results:
`results/devices_lut/` (copies of both tables + sidecars: rerun against them with
`--work` pointing at a folder holding them), `results/devices_measured.csv` (every
profile call: network, configuration, repeat, measured and predicted ms, load),
`results/devices.csv` (one row per search kind, seed and repeat), and the sidecar
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
# mu: hwnas's default. A short look (seed 0, this budget): at 0.1 the fp32 and the int8 search
# already derive different networks; at 0.03 the int8 search derived a network as light, so a
# smaller mu does not bring back naf-heavy networks in a search this short (see README).
DEFAULT_MU = 0.1
DEFAULT_EPOCHS, DEFAULT_STEPS = 5, 16  # reduced from the tiny default 10 x 40: 9 searches on a shared 2-core machine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: python benchmarks/bench_devices.py --stage search")
    p.add_argument("--stage", choices=["all", "tables", "search", "measure", "rows"], default="all")
    p.add_argument("--seeds", default="0,1,2", help="search seeds, comma-separated (default 0,1,2)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"search kinds (default {','.join(KINDS)})")
    p.add_argument("--latency-weight", type=float, default=DEFAULT_MU, help=f"mu of every search (default {DEFAULT_MU})")
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
    return args


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


# -- stage 1: tables ---------------------------------------------------------------------------------


def tables(args: argparse.Namespace, meta: dict) -> None:
    from hwnas.latency import sidecar_path

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
    command += ["--latency-weight", f"{args.latency_weight:g}", "--epochs", str(args.epochs),
                "--steps-per-epoch", str(args.steps_per_epoch), "--threads", str(args.threads), "--seed", str(seed),
                "--out", str(run), "--json"]
    return hwnas(*command)


def searches(args: argparse.Namespace, meta: dict) -> None:
    from hwnas.machine_load import LoadWatch

    for seed in args.seeds:
        for kind in args.kinds:
            name = run_name(kind, seed)
            run = args.work / "runs" / name
            command = search_command(args, kind, seed, run)
            book = meta.setdefault("searches", {}).setdefault(name, {})
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


def networks(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, profile flags) of the base network and every finished search's network."""
    out = []
    for seed in args.seeds:
        for kind in args.kinds:
            run = args.work / "runs" / run_name(kind, seed)
            if not (run / "arch.json").is_file():
                raise SystemExit(f"no {run / 'arch.json'}: run the search stage first (--stage search)")
            out.append((run_name(kind, seed), ["--arch", str(run / "arch.json")]))
    return out


def measure(args: argparse.Namespace, meta: dict) -> None:
    from hwnas.machine_load import LoadWatch

    path = args.results / f"{NAME}_measured.csv"
    done = done_keys(path, ["repeat", "slot", "network", "config"])
    searched = networks(args)
    for repeat in range(args.repeats):
        order = searched if repeat % 2 == 0 else searched[::-1]
        plan = [("start", BASE, ["--uniform", "naf"]), *(("searched", n, f) for n, f in order), ("end", BASE, ["--uniform", "naf"])]
        for i, (slot, label, flags) in enumerate(plan):
            configs = CONFIGS if (i + repeat) % 2 == 0 else CONFIGS[::-1]
            for config in configs:
                if (str(repeat), slot, label, config) in done:
                    continue
                command = hwnas("profile", "--lut", str(args.work / f"{config}.csv"), *flags, "--json")
                watch = LoadWatch().start()
                result = subprocess.run(command, capture_output=True, text=True)
                watch.stop()
                if result.returncode != 0:
                    sys.stderr.write(result.stderr)
                    raise SystemExit(f"profile failed (exit {result.returncode}): {shown(command)}")
                report = json.loads(result.stdout)
                m = report["measured"]
                counts = Counter(report["architecture"]["choices"].values())
                append_row(path, {
                    "repeat": repeat, "slot": slot, "network": label, "config": config,
                    "precision": report["settings"].get("precision", "fp32"),
                    "measured_ms": m["median_ms"], "p10_ms": m["p10_ms"], "p90_ms": m["p90_ms"], "runs": m["runs"],
                    "predicted_ms": report["predicted_ms"], "error_pct": report["error_pct"],
                    "load_1min": watch.load_end, "other_cores": watch.other_cores, "seconds": round(watch.seconds, 1),
                    "choices": " ".join(report["architecture"]["choices"].values()),
                    **{f"n_{c}": counts.get(c, 0) for c in candidates()},
                    "command": shown(command),
                })
                log.info("repeat %d %-9s on %s: measured %6.2f ms, predicted %6.2f ms (load %.1f, other cores %.2f)",
                         repeat, label, config, m["median_ms"], report["predicted_ms"], watch.load_end or 0,
                         watch.other_cores or 0)
    meta["settings"]["measured"] = {"repeats": args.repeats, "networks": 1 + len(searched)}


def candidates() -> list[str]:
    from hwnas.plugins import get_space

    space = get_space(SPACE).from_options(PRESET)
    return list(space.positions(IMAGE_SIZE)[0].candidates)


# -- stage 4: rows ------------------------------------------------------------------------------------


def rows(args: argparse.Namespace) -> int:
    """One row of results/devices.csv per (kind, seed, repeat) whose measurements are all there."""
    import statistics

    measured = read_rows(args.results / f"{NAME}_measured.csv")
    by = {(r["repeat"], r["slot"], r["network"], r["config"]): r for r in measured}
    path = args.results / f"{NAME}.csv"
    done = done_keys(path, ["kind", "seed", "repeat"])
    written = 0
    for repeat in sorted({int(r["repeat"]) for r in measured}):
        rep = str(repeat)
        base = {}
        for config in CONFIGS:
            ends = [by.get((rep, slot, BASE, config)) for slot in ("start", "end")]
            if None in ends:
                break
            base[config] = {"measured": statistics.mean(float(e["measured_ms"]) for e in ends),
                            "predicted": float(ends[0]["predicted_ms"]),
                            "drift_pct": 100.0 * (float(ends[1]["measured_ms"]) / float(ends[0]["measured_ms"]) - 1)}
        if len(base) < len(CONFIGS):
            continue
        for seed in args.seeds:
            for kind in args.kinds:
                name = run_name(kind, seed)
                if (kind, str(seed), rep) in done:
                    continue
                cells = {c: by.get((rep, "searched", name, c)) for c in CONFIGS}
                if None in cells.values():
                    continue
                summary = json.loads((args.work / "runs" / name / "summary.json").read_text())
                row = {"kind": kind, "seed": seed, "repeat": repeat, "run": name,
                       "searched_on": "+".join(KINDS[kind]), "latency_weight": summary["latency_weight"],
                       "val_psnr": summary["val"]["psnr"], "val_ssim": summary["val"].get("ssim"),
                       "committed": summary["commitment"]["committed"],
                       "min_largest_alpha": summary["commitment"]["min_largest_alpha"]}
                for config in CONFIGS:
                    c = cells[config]
                    row.update({
                        f"predicted_ms_{config}": float(c["predicted_ms"]),
                        f"predicted_ratio_{config}": float(c["predicted_ms"]) / base[config]["predicted"],
                        f"measured_ms_{config}": float(c["measured_ms"]),
                        f"base_ms_{config}": base[config]["measured"],
                        f"measured_ratio_{config}": float(c["measured_ms"]) / base[config]["measured"],
                        f"base_drift_pct_{config}": base[config]["drift_pct"],
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


def main() -> None:
    args = parse_args()
    settings = {"space": SPACE, "preset": PRESET, "image_size": IMAGE_SIZE, "configs": list(CONFIGS),
                "kinds": {k: list(v) for k, v in KINDS.items() if k in args.kinds}, "seeds": args.seeds,
                "latency_weight": args.latency_weight, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
                "search_threads": args.threads, "repeats": args.repeats, "combine": "worst",
                "profile": "hwnas profile --lut W/<config>.csv --arch RUN/arch.json --json (the table's settings)"}
    with record_run(NAME, settings=settings, results_dir=args.results) as meta:
        if args.stage in ("all", "tables"):
            tables(args, meta)
        if args.stage in ("all", "search"):
            searches(args, meta)
        if args.stage in ("all", "measure"):
            measure(args, meta)
        if args.stage in ("all", "measure", "rows"):
            rows(args)


if __name__ == "__main__":
    run_main(main)
