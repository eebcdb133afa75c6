"""Quality at equal cost (issue 6, item 4): searched vs baselines vs random search vs CBM3D.

One preset small enough to train on 2 cores (`tiny`), one latency table (ONNX Runtime,
this CPU, 256x256), and networks trained under the same time budget on CBSD432:

- `searched`: `hwnas search` on CBSD432, then `hwnas train --init-from` (fine-tuned);
  `searched-scratch`: the same architecture trained from scratch like the others;
- `baseline`: the all-`naf` network (NAFNet's blocks), trained from scratch;
- `uniform`: the best uniform alternative, chosen by the table (see `choose_uniform`);
- `random`: N architectures drawn uniformly at random among those whose table-predicted
  latency is within +-5% of the searched network's -- random search at equal cost, the
  baseline a NAS method must beat (Li & Talwalkar, "Random search and reproducibility
  for NAS", UAI 2019);
- `cbm3d`: the classical reference on the same noisy images (`bench_cbm3d.py`).

Every network is scored with `hwnas eval` on CBSD68 and Kodak24 at sigma 15/25/50
(`--eval-limit N`: the first N images of each, by name). The searched network's weights
come from the super-net (its search is extra training the others do not get); the
equal-cost comparison is of latency, the time budget equalises the fine-tuning.

Stages (each resumable: work whose outputs exist is skipped; an interrupted training or
search continues with `--resume`):

    python benchmarks/bench_quality.py search   # latency table + search + the plan of networks
    python benchmarks/bench_quality.py train    # train every network in the plan
    python benchmarks/bench_quality.py eval     # hwnas eval each trained network
    python benchmarks/bench_quality.py cbm3d    # CBM3D (needs the optional bm3d extra)
    python benchmarks/bench_quality.py plot     # quality.csv, quality.meta.json, quality_pareto.png
    python benchmarks/bench_quality.py all      # all of the above in order

Options: `--minutes` per training (default 3), `--randoms N` (default 5; raising it later
keeps the first ones), `--seed`, `--workdir`, `--eval-limit`, `--cbm3d-data`/`--cbm3d-sigma`/
`--cbm3d-limit`. PyTorch runs with one thread (see TORCH_THREADS).

Intermediate runs live in `--workdir` (default benchmarks/work/, git-ignored); the
results in benchmarks/results/quality*.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

import bench_cbm3d
import common

logger = logging.getLogger("bench_quality")

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
TRAIN_DATA = DATASETS / "CBSD432"
TEST_DATA = (DATASETS / "CBSD68", DATASETS / "Kodak24")
SIGMAS = "15,25,50"
SPACE, PRESET, IMAGE_SIZE = "nafnet-unet", "tiny", 256
CROP, BATCH = 64, 8
TRAIN_SIGMA = "0,55"  # blind training: one network per architecture serves all three test sigmas
SEARCH_EPOCHS, SEARCH_STEPS = 10, 40
TOLERANCE = 0.05  # random architectures within +-5% of the searched one's predicted latency
KINDS = ("searched", "baseline", "uniform", "random")
# PyTorch threads for search, training and eval. On this shared 2-core machine (load 4-8
# from other jobs) a tiny-net training step took 3.5-6 s with torch's default 2 threads
# and 0.1 s with 1: oversubscribed OpenMP threads spin-wait on each other. One thread
# also makes the equal-time budgets less sensitive to the other jobs.
TORCH_THREADS = 1


# -- random search at equal cost ----------------------------------------------------

def predicted(costs: Mapping[str, Mapping[str, float]], fixed_ms: float, choices: Mapping[str, str]) -> float:
    """Table-predicted ms of one architecture: fixed parts + the chosen candidate's ms per position."""
    return fixed_ms + sum(costs[label][name] for label, name in choices.items())


def sample_at_latency(
    costs: Mapping[str, Mapping[str, float]],
    fixed_ms: float,
    target_ms: float,
    n: int,
    *,
    tolerance: float = TOLERANCE,
    seed: int = 0,
    exclude: Sequence[Mapping[str, str]] = (),
    max_draws: int = 200_000,
) -> list[dict[str, str]]:
    """`n` distinct architectures drawn uniformly from those within +-tolerance of `target_ms`.

    `costs` maps position label -> {candidate: ms} (from a latency table); an
    architecture is {label: candidate}. Rejection sampling: draw each position's
    candidate uniformly, keep the architecture if |predicted - target| <= tolerance *
    target and it is new and not in `exclude`. Uniform over the accepted set, as random
    search at equal cost should be. Deterministic for a given seed. Raises ValueError
    when fewer than `n` are found within `max_draws` draws (band too narrow or empty).
    """
    if n < 0 or target_ms <= 0 or tolerance < 0:
        raise ValueError("need n >= 0, target_ms > 0 and tolerance >= 0")
    rng = random.Random(seed)
    labels = sorted(costs)
    options = {label: sorted(costs[label]) for label in labels}
    seen = {tuple(arch[label] for label in labels) for arch in exclude}
    found: list[dict[str, str]] = []
    for _ in range(max_draws):
        if len(found) == n:
            break
        key = tuple(rng.choice(options[label]) for label in labels)
        if key in seen:
            continue
        seen.add(key)
        arch = dict(zip(labels, key))
        if abs(predicted(costs, fixed_ms, arch) - target_ms) <= tolerance * target_ms:
            found.append(arch)
    if len(found) < n:
        raise ValueError(
            f"found only {len(found)} of {n} architectures within +-{tolerance:.0%} of {target_ms:.3f} ms "
            f"in {max_draws} draws; widen the tolerance or ask for fewer"
        )
    return found


def table_costs(table, positions) -> dict[str, dict[str, float]]:
    """position label -> {candidate: ms}, from a `LatencyTable` and a space's positions."""
    return {p.label: {name: table.ms(name, p.input_shape) for name in p.candidates} for p in positions}


def choose_uniform(costs: Mapping[str, Mapping[str, float]], fixed_ms: float, target_ms: float, base: str = "naf") -> str:
    """The uniform alternative to compare against: the non-`base` candidate whose all-same network's
    predicted latency is nearest to `target_ms` (the uniform network at the searched one's cost).

    Chosen by the table, not by training each: on 2 cores every training costs minutes.
    """
    names = sorted(set.intersection(*(set(c) for c in costs.values())) - {base})
    return min(names, key=lambda name: abs(predicted(costs, fixed_ms, {l: name for l in costs}) - target_ms))


# -- running hwnas ------------------------------------------------------------------

class Runner:
    """Runs `python -m hwnas ...` (or another command) from the repository root, appending the
    command line (`$ ...`) and its output to `<workdir>/logs/<log>`; a failure stops the stage."""

    def __init__(self, workdir: Path):
        self.workdir = workdir

    def hwnas(self, *args: object, log: str, threads: int | None = None, nice: bool = False) -> None:
        self.run([sys.executable, "-m", "hwnas", *map(str, args)], log=log, shown=["hwnas", *map(str, args)],
                 threads=threads, nice=nice)

    def run(self, argv: list[str], *, log: str, shown: list[str], nice: bool = False, threads: int | None = None) -> None:
        env = dict(os.environ)
        if nice:  # background work (eval, CBM3D) yields to training, whose budget is wall-clock time
            shown = ["nice", "-n", "10", *shown]
        if threads:  # PyTorch reads it at start-up; see TORCH_THREADS
            env["OMP_NUM_THREADS"] = str(threads)
            shown = [f"OMP_NUM_THREADS={threads}", *shown]
        text = shlex.join(shown)
        logger.info("$ %s", text)
        log_path = self.workdir / "logs" / log
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write(f"$ {text}\n")
            fh.flush()
            done = subprocess.run((["nice", "-n", "10"] if nice else []) + argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
        if done.returncode != 0:
            raise SystemExit(f"error: `{text}` failed (exit {done.returncode}); see {log_path}")


def exported_scores(runner: Runner, model: Path, precision: str, onnx: Path, scores: Path, *, calibration: Path,
                    data: Sequence[Path], sigma: int) -> list[dict[str, str]]:
    """A trained `model` exported at `precision` (`hwnas export`, calibrated on `calibration` unless fp32) into
    `onnx`, then scored by `hwnas eval` on `data` at `sigma` into `scores`; each step skipped when its file exists
    (an interrupted stage resumes). Returns the scores' rows. The export's log (`export-<onnx stem>.log`) holds its
    JSON summary, with the int8 file's own check against PyTorch."""
    if not onnx.exists():
        quant = ["--precision", precision, "--calibration", rel(calibration)] if precision != "fp32" else []
        runner.hwnas("export", "--model", rel(model), "--out", rel(onnx), *quant, "--json", log=f"export-{onnx.stem}.log")
    if not scores.exists():
        folders = [x for folder in data for x in ("--data", rel(folder))]
        runner.hwnas("eval", "--model", rel(onnx), *folders, "--sigma", sigma, "--seed", 0, "--out", rel(scores),
                     "--json", log=f"eval-{onnx.stem}.log")
    return common.read_rows(scores)


def rel(path: Path) -> str:
    """`path` relative to the repository root (where the commands run), as a user would type it."""
    return os.path.relpath(os.path.abspath(path), ROOT)  # a symlinked work folder keeps the path the user gave


# -- stages -------------------------------------------------------------------------

def stage_search(args, runner: Runner) -> None:
    """Latency table, search, and the plan (which networks to train) in `<workdir>/plan.json`."""
    work = args.workdir
    lut = work / "lut.csv"
    if not lut.exists():
        runner.hwnas("build-lut", "--backend", "onnxruntime", "--space", SPACE, "--preset", PRESET,
                     "--image-size", IMAGE_SIZE, "--out", rel(lut), log="build-lut.log")
    search = work / "search"
    if not search_finished(search):
        resume = ["--resume"] if (search / "checkpoints" / "last.pt").exists() else []
        runner.hwnas("search", "--lut", rel(lut), "--data", rel(TRAIN_DATA), "--crop", CROP, "--batch-size", BATCH,
                     "--epochs", SEARCH_EPOCHS, "--steps-per-epoch", SEARCH_STEPS, "--seed", args.seed,
                     "--out", rel(search), *resume, log="search.log", threads=TORCH_THREADS)
    plan_path = work / "plan.json"
    plan = make_plan(work, args.randoms, args.seed)
    if plan_path.exists():  # keep an existing plan (same table and search give the same plan; never reshuffle)
        old = json.loads(plan_path.read_text())
        if len(old["networks"]) >= len(plan["networks"]):
            return
    from hwnas.runs.io import atomic_write_text

    atomic_write_text(plan_path, json.dumps(plan, indent=2) + "\n")
    logger.info("plan: %d networks in %s", len(plan["networks"]), plan_path)


def search_finished(run: Path) -> bool:
    """True when the search in `run` ran all its epochs (an interrupted search also writes arch.json)."""
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return summary.get("epochs_done") == summary.get("epochs")


def load_space_and_table(work: Path):
    from hwnas.contracts.latency import LatencyTable
    from hwnas.contracts.plugins import get_space

    table = LatencyTable.load(work / "lut.csv")
    space = get_space(SPACE).from_options(PRESET)
    return space, table


def make_plan(work: Path, randoms: int, seed: int) -> dict:
    """searched + all-naf + uniform alternative + `randoms` architectures at the searched one's latency."""
    from hwnas.contracts.latency import fixed_ms
    from hwnas.contracts.space import Architecture

    space, table = load_space_and_table(work)
    positions = space.positions(IMAGE_SIZE)
    costs = table_costs(table, positions)
    fixed = fixed_ms(table, space.fixed_units(IMAGE_SIZE))
    searched = Architecture.load(work / "search" / "arch.json").choices
    target = predicted(costs, fixed, searched)
    uniform = choose_uniform(costs, fixed, target)
    all_naf = {label: "naf" for label in costs}
    same_uniform = {label: uniform for label in costs}
    try:
        sampled = sample_at_latency(costs, fixed, target, randoms, seed=seed, exclude=[searched, all_naf, same_uniform])
    except ValueError as err:
        raise SystemExit(f"error: {err} (--randoms)") from None
    sampled = [{p.label: arch[p.label] for p in positions} for arch in sampled]  # position order, like arch.json
    networks = [{"name": "searched", "kind": "searched", "choices": searched},
                # the same architecture from scratch: separates the search's choice from its weight init
                {"name": "searched-scratch", "kind": "searched", "choices": searched},
                {"name": "naf", "kind": "baseline", "choices": all_naf},
                {"name": f"uniform-{uniform}", "kind": "uniform", "choices": same_uniform}]
    networks += [{"name": f"random-{i}", "kind": "random", "choices": arch} for i, arch in enumerate(sampled)]
    for net in networks:
        net["predicted_ms"] = round(predicted(costs, fixed, net["choices"]), 4)
    return {"target_ms": round(target, 4), "tolerance": TOLERANCE, "uniform_rule": "nearest table latency to searched",
            "seed": seed, "networks": networks}


def read_plan(work: Path, only: str | None = None) -> list[dict]:
    """The planned networks, or those named in `only` (comma-separated, e.g. to split a stage
    between two processes)."""
    path = work / "plan.json"
    if not path.exists():
        raise SystemExit(f"error: {path} does not exist; run the `search` stage first.")
    networks = json.loads(path.read_text())["networks"]
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = sorted(set(names) - {n["name"] for n in networks})
        if unknown:
            raise SystemExit(f"error: --only names {', '.join(unknown)}, not in {path}; "
                             f"choose from {', '.join(n['name'] for n in networks)}.")
        networks = [n for n in networks if n["name"] in names]
    return networks


def stage_train(args, runner: Runner) -> None:
    """Train each planned network for `--minutes` (skip finished ones, resume interrupted ones)."""
    from hwnas.contracts.space import Architecture

    work = args.workdir
    for net in read_plan(work, args.only):
        out = work / "train" / net["name"]
        if (out / "model.pt").exists():
            continue
        common_flags = ["--data", rel(TRAIN_DATA), "--crop", CROP, "--batch-size", BATCH, "--sigma", TRAIN_SIGMA,
                        "--time-budget", args.minutes, "--seed", args.seed, "--out", rel(out)]
        if (out / "checkpoints" / "last.pt").exists():
            common_flags.append("--resume")
        if net["name"] == "searched":
            what = ["--init-from", rel(work / "search")]
        else:
            arch_path = work / "archs" / f"{net['name']}.json"
            arch_path.parent.mkdir(parents=True, exist_ok=True)
            Architecture(space=SPACE, choices=net["choices"]).save(arch_path)
            what = ["--arch", rel(arch_path), "--preset", PRESET]
        runner.hwnas("train", *what, *common_flags, "--json", log=f"train-{net['name']}.log",
                     threads=TORCH_THREADS)


def eval_path(work: Path, name: str) -> Path:
    return work / "eval" / f"{name}.csv"


def test_folders(work: Path, limit: int) -> list[Path]:
    """The test sets, or (limit > 0) folders of links to the first `limit` images of each, by name
    (`<workdir>/testsets/<name>-first<limit>/`; the folder name says it in every result row)."""
    if not limit:
        return list(TEST_DATA)
    from hwnas.searchspaces.images import list_images

    folders = []
    for folder in TEST_DATA:
        images = list_images(folder)
        if len(images) <= limit:
            folders.append(folder)
            continue
        subset = work / "testsets" / f"{folder.name}-first{limit}"
        subset.mkdir(parents=True, exist_ok=True)
        for image in images[:limit]:
            link = subset / image.name
            if not link.exists():
                link.symlink_to(image.resolve())
        folders.append(subset)
    return folders


def stage_eval(args, runner: Runner) -> None:
    """`hwnas eval` every trained network on CBSD68 + Kodak24 at 15/25/50 (skip those already scored)."""
    work = args.workdir
    for net in read_plan(work, args.only):
        model = work / "train" / net["name"] / "model.pt"
        out = eval_path(work, net["name"])
        if out.exists() or not model.exists():
            if not model.exists():
                logger.warning("%s is not trained yet; skipped", net["name"])
            continue
        data = [x for folder in test_folders(work, args.eval_limit) for x in ("--data", rel(folder))]
        runner.hwnas("eval", "--model", rel(model), *data, "--sigma", SIGMAS, "--seed", args.seed,
                     "--out", rel(out), "--json", log=f"eval-{net['name']}.log", threads=TORCH_THREADS)


def stage_cbm3d(args, runner: Runner) -> None:
    """CBM3D on Kodak24 at sigma 25 (more with --cbm3d-sigma / --cbm3d-data); per-image resumable."""
    argv = ["benchmarks/bench_cbm3d.py", "--sigma", args.cbm3d_sigma, "--seed", str(args.seed),
            "--workdir", rel(args.workdir)]
    for name in args.cbm3d_data:
        argv += ["--data", rel(DATASETS / name)]
    if args.cbm3d_limit:
        argv += ["--limit", str(args.cbm3d_limit)]
    runner.run([sys.executable, *argv], log="cbm3d.log", shown=["python", *argv], nice=True, threads=1)


# -- collecting and plotting ----------------------------------------------------------

def network_rows(work: Path, args) -> list[dict]:
    """One row per trained-and-scored network x dataset x sigma."""
    import csv

    from hwnas.tables.cost import count_macs, count_params
    from hwnas.contracts.space import Architecture, freeze

    space, _ = load_space_and_table(work)
    rows = []
    for net in read_plan(work):
        path = eval_path(work, net["name"])
        if not path.exists():
            continue
        module = freeze(space, Architecture(space=SPACE, choices=net["choices"]))
        params = count_params(module)
        gmacs = count_macs(module, (1, 3, IMAGE_SIZE, IMAGE_SIZE)) / 1e9
        steps, seconds = trained_steps(work / "train" / net["name"])
        with open(path, newline="") as fh:
            summary = list(csv.DictReader(fh))
        for r in summary:
            rows.append({"network": net["name"], "kind": net["kind"], "predicted_ms": net["predicted_ms"],
                         "params": params, "gmacs": round(gmacs, 4), "dataset": r["dataset"], "sigma": r["sigma"],
                         "psnr": float(r["psnr"]), "ssim": float(r["ssim"]), "images": int(r["images"]),
                         "seed": args.seed, "train_minutes": args.minutes, "train_steps": steps, "train_seconds": seconds,
                         "crop": CROP, "batch": BATCH, "arch": arch_code(net["choices"])})
    return rows


def arch_code(choices: Mapping[str, str]) -> str:
    """A compact architecture string in position order, e.g. `naf/cbr/naf_bn/...`."""
    return "/".join(choices[label] for label in choices)


def trained_steps(run: Path) -> tuple[int | str, float | str]:
    """(training steps, training seconds) of a run, from its metrics.csv (one row per epoch:
    `steps` in that epoch, cumulative `train_seconds`); ("", "") when it has none."""
    import csv

    path = run / "metrics.csv"
    if not path.exists():
        return "", ""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return "", ""
    return sum(int(float(r["steps"])) for r in rows), round(float(rows[-1]["train_seconds"]), 1)


def cbm3d_rows(work: Path, args) -> list[dict]:
    """CBM3D rows (dataset x sigma means over the images done so far)."""
    from collections import defaultdict

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in bench_cbm3d.finished_rows(work):
        if int(row["seed"]) == args.seed:
            groups[(row["dataset"], row["sigma"])].append(row)
    return [{"network": "cbm3d", "kind": "cbm3d", "predicted_ms": "", "params": "", "gmacs": "",
             "dataset": dataset, "sigma": sigma, "psnr": sum(r["psnr"] for r in rs) / len(rs),
             "ssim": sum(r["ssim"] for r in rs) / len(rs), "images": len(rs), "seed": args.seed,
             "train_minutes": "", "train_steps": "", "train_seconds": "", "crop": "", "batch": "", "arch": "",
             "seconds_per_image": round(sum(r["seconds"] for r in rs) / len(rs), 1)}
            for (dataset, sigma), rs in sorted(groups.items())]


def pareto(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto-optimal points (lower latency, higher PSNR), sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot(rows: list[dict], path: Path) -> None:
    """Predicted latency vs PSNR, one panel per sigma (rows) x dataset (columns), with the Pareto
    front of the trained networks; CBM3D as a horizontal reference line where it was run
    (it has no entry in the latency table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = [r for r in rows if r["kind"] != "cbm3d"]
    datasets = sorted({r["dataset"] for r in nets})
    sigmas = sorted({r["sigma"] for r in nets}, key=float)
    fig, axes = plt.subplots(len(sigmas), len(datasets), figsize=(5.5 * len(datasets), 3.8 * len(sigmas)), squeeze=False)
    for (i, sigma), (j, dataset) in ((a, b) for a in enumerate(sigmas) for b in enumerate(datasets)):
        panel(axes[i][j], [r for r in rows if r["dataset"] == dataset and r["sigma"] == sigma], f"{dataset}, sigma {sigma}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


COLORS = {"searched": "tab:red", "baseline": "tab:blue", "uniform": "tab:green", "random": "tab:gray"}


def panel(ax, rows: list[dict], title: str) -> None:
    nets = [r for r in rows if r["kind"] != "cbm3d"]
    for kind, color in COLORS.items():
        pts = [r for r in nets if r["kind"] == kind]
        if not pts:
            continue
        ax.scatter([r["predicted_ms"] for r in pts], [r["psnr"] for r in pts], c=color, label=kind, s=36, zorder=3)
    for r in nets:
        if r["kind"] != "random":
            ax.annotate(r["network"], (r["predicted_ms"], r["psnr"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = [nets[i] for i in pareto([(r["predicted_ms"], r["psnr"]) for r in nets])]
    ax.step([r["predicted_ms"] for r in front], [r["psnr"] for r in front], where="post", c="k", lw=1,
            label="Pareto front", zorder=2)
    for r in rows:
        if r["kind"] == "cbm3d":
            ax.axhline(r["psnr"], ls="--", c="tab:purple", label=f"CBM3D ({r['images']} images)")
    ax.set_xlabel("predicted latency, ms (ONNX Runtime table, 256x256)")
    ax.set_ylabel("PSNR, dB")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv
    import io

    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    from hwnas.runs.io import atomic_write_text

    atomic_write_text(path, buf.getvalue())


def add_cbm3d_subset(work: Path, rows: list[dict], seed: int) -> None:
    """Give each network row `psnr_cbm3d_images`/`ssim_cbm3d_images`: its mean over exactly the
    images CBM3D has finished for that dataset and sigma (CBM3D is slow, so it may cover only
    the first N), from the per-image CSV `hwnas eval` writes beside its summary."""
    import csv

    done: dict[tuple[str, str], set[str]] = {}
    for r in bench_cbm3d.finished_rows(work):
        if int(r["seed"]) == seed:
            done.setdefault((r["dataset"], r["sigma"]), set()).add(r["image"])
    for row in rows:
        images = done.get((row["dataset"], row["sigma"]))
        if row["kind"] == "cbm3d" or not images:
            continue
        per_image = eval_path(work, row["network"]).with_name(f"{row['network']}_per_image.csv")
        with open(per_image, newline="") as fh:
            mine = [r for r in csv.DictReader(fh)
                    if r["dataset"] == row["dataset"] and r["sigma"] == row["sigma"] and r["image"] in images]
        if len(mine) == len(images):
            row["psnr_cbm3d_images"] = sum(float(r["psnr"]) for r in mine) / len(mine)
            row["ssim_cbm3d_images"] = sum(float(r["ssim"]) for r in mine) / len(mine)


def stage_plot(args, runner: Runner) -> None:
    """quality.csv (networks + CBM3D), quality_pareto.png; the sidecar is written by `main`."""
    work = args.workdir
    rows = network_rows(work, args) + cbm3d_rows(work, args)
    add_cbm3d_subset(work, rows, args.seed)
    if not rows:
        raise SystemExit("error: nothing is scored yet; run the `eval` (or `cbm3d`) stage first.")
    order = {k: i for i, k in enumerate(KINDS + ("cbm3d",))}
    rows.sort(key=lambda r: (r["dataset"], float(r["sigma"]), order[r["kind"]], r["network"]))
    write_csv(args.results / "quality.csv", rows)
    plot(rows, args.results / "quality_pareto.png")
    logger.info("wrote %s and %s", args.results / "quality.csv", args.results / "quality_pareto.png")


NOTES = [
    "predicted_ms: the ONNX Runtime latency table (benchmarks/work/lut.csv; 2 intra-op threads, 256x256, this CPU) "
    "summed over the architecture's units; gmacs and params of the frozen network at 1x3x256x256.",
    "uniform: the non-naf uniform network whose table latency is nearest to the searched one's "
    "(chosen by the table, not by training each alternative).",
    "random: architectures drawn uniformly among those within +-5% of the searched network's predicted latency "
    "(rejection sampling, seeded), excluding the searched, all-naf and uniform ones.",
    "Every network trains with `hwnas train --time-budget` (wall-clock minutes of training steps) on CBSD432, blind "
    "sigma 0-55, crop 64, batch 8, seed 0; the searched one starts from its super-net weights (--init-from), the others "
    "from scratch. The machine was shared with other jobs (load 4-8 on 2 cores), so steps per budget vary: "
    "see train_steps.",
    "PyTorch ran with OMP_NUM_THREADS=1: with its default 2 threads a tiny-net step took 3.5-6 s on the loaded "
    "machine instead of 0.1 s (oversubscribed OpenMP threads). The first search in hwnas_commands (default threads) "
    "was stopped after 28 steps and its run deleted; the search then ran from scratch with one thread.",
    "CBM3D: bm3d.bm3d_rgb(noisy, sigma_psd=sigma/255) on the identical noisy images (same seed per file name), "
    "niced, on whatever CPU was left; `images` says how many it finished. psnr_cbm3d_images/ssim_cbm3d_images give "
    "each network's mean on exactly those images, for a like-for-like comparison.",
]

STAGES = {"search": stage_search, "train": stage_train, "eval": stage_eval, "cbm3d": stage_cbm3d, "plot": stage_plot}


def logged_commands(work: Path) -> list[str]:
    """Every command the stages ran, from the `$ ...` lines of `<workdir>/logs/*.log` (oldest log
    first), so runs that were killed before they could update the sidecar are listed too."""
    logs = sorted((work / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    seen: list[str] = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("$ ") and line[2:] not in seen:
                seen.append(line[2:])
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=[*STAGES, "all"])
    parser.add_argument("--minutes", type=float, default=3.0, help="time budget per training (hwnas train --time-budget)")
    parser.add_argument("--randoms", type=int, default=5, help="random architectures at the searched one's latency")
    parser.add_argument("--seed", type=int, default=0, help="seed of search, training, sampling and eval noise")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / "work")
    parser.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--only", default=None, help="train/eval only these networks of the plan (comma-separated)")
    parser.add_argument("--eval-limit", type=int, default=0,
                        help="score only the first N images (by name) of each test set (0: all)")
    parser.add_argument("--cbm3d-data", action="append", default=None, help="data set name(s) for CBM3D (default Kodak24)")
    parser.add_argument("--cbm3d-sigma", default="25", help="noise levels for CBM3D (default 25)")
    parser.add_argument("--cbm3d-limit", type=int, default=0, help="only the first N images per data set (0: all)")
    args = parser.parse_args(argv)
    args.cbm3d_data = args.cbm3d_data or ["Kodak24"]
    args.workdir = args.workdir.resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = {"space": SPACE, "preset": PRESET, "latency_image_size": IMAGE_SIZE, "crop": CROP, "batch": BATCH,
                "train_sigma": TRAIN_SIGMA, "train_data": "CBSD432", "test_sigmas": SIGMAS, "seed": args.seed,
                "train_minutes": args.minutes, "randoms": args.randoms, "eval_limit": args.eval_limit, "tolerance": TOLERANCE,
                "torch_threads": TORCH_THREADS, "search_epochs": SEARCH_EPOCHS, "search_steps_per_epoch": SEARCH_STEPS,
                "latency": "ONNX Runtime CPU table built by `hwnas build-lut` (benchmarks/work/lut.csv), 2 threads",
                "gmacs_at": f"1x3x{IMAGE_SIZE}x{IMAGE_SIZE}"}
    stages = list(STAGES) if args.stage == "all" else [args.stage]
    with common.record_run("quality", settings=settings, results_dir=args.results) as meta:
        runner = Runner(args.workdir)
        try:
            for stage in stages:
                STAGES[stage](args, runner)
        finally:
            meta["hwnas_commands"] = logged_commands(args.workdir)
            meta["notes"] = NOTES
            cbm3d_commands = args.workdir / "cbm3d" / "commands.txt"
            if cbm3d_commands.exists():  # bench_cbm3d.py run on its own (e.g. in the background) records itself there
                meta["cbm3d_commands"] = sorted(set(cbm3d_commands.read_text().splitlines()))
            plan = args.workdir / "plan.json"
            if plan.exists():
                meta["plan"] = json.loads(plan.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
