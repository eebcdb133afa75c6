"""The paper's headline, measured by hwnas at the paper preset (NAFNet-w32) on this CPU.

The claim (Section "Results" of the paper, on the SM8650): about 2x lower latency than
NAFNet and 12% fewer parameters for a 0.7% PSNR drop. Here the same experiment runs
at the paper preset, steered by the ONNX Runtime table of this CPU (256x256):

1. `search`: the latency table (plain `hwnas build-lut`), then a sampled-mode search on
   CBSD432 (blind sigma 0-55, crop 64, batch 8, SEARCH_EPOCHS x SEARCH_STEPS steps) in the
   constraint form: `--target-ms` = TARGET_FRACTION x the all-`naf` prediction, so the
   derived network is planned at under half of NAFNet's latency. The run must end
   committed (its summary says whether it did).
2. `train`: the derived network fine-tuned from the super-net (`--init-from`,
   FT_EPOCHS x FT_STEPS steps); all-`naf` (NAFNet) from scratch for as many weight
   updates as the searched network received in search plus fine-tuning, with seeds 0
   and 1 (the spread of a baseline's PSNR); and all-`naf` for the same wall-clock as
   search plus fine-tuning (its step count from the runs' own recorded step times).
3. `eval`: `hwnas eval` of every trained network on CBSD68 and Kodak24 at sigma
   15/25/50 (the datasets README protocol).
4. `latency`: searched vs all-`naf` end to end, interleaved, in `--repeats` repeats of
   the project's ONNX Runtime backend (2 threads, 256x256); every repeat is a row.
   Run it on a quiet machine.
5. `commit`: how many steps a sampled-mode paper-preset search needs to commit, at the
   defaults (sample images, crop 64, batch 8): one search per length in COMMIT_LENGTHS.
6. `report`: `results/paper.csv` (one row per network x dataset x sigma, with params,
   GMACs, steps, seconds), `results/paper_commit.csv`, `results/paper_latency.csv` and
   `results/paper.meta.json`, which `report.py` renders.

Every stage is resumable (finished work is skipped, an interrupted search or training
continues with `--resume`); intermediate runs live in `--workdir` (default
benchmarks/work/paper, git-ignored). Run from the repository root:

    python benchmarks/bench_paper.py all
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import common
from bench_quality import DATASETS, ROOT, Runner, rel, search_finished

logger = logging.getLogger("bench_paper")

NAME = "paper"
SPACE, PRESET, IMAGE_SIZE = "nafnet-unet", "paper", 256
TRAIN_DATA = DATASETS / "CBSD432"
TEST_DATA = (DATASETS / "CBSD68", DATASETS / "Kodak24")
SIGMAS, TRAIN_SIGMA = "15,25,50", "0,55"
CROP, BATCH = 64, 8
SEARCH_EPOCHS, SEARCH_STEPS = 25, 40  # 1000 steps, the first 20% weight-only warm-up
FT_EPOCHS, FT_STEPS = 10, 100  # 1000 fine-tuning steps
TARGET_FRACTION = 0.42  # of the all-naf prediction; under 0.5 leaves room for the argmax network
COMMIT_LENGTHS = ((3, 20), (5, 30), (10, 30), (15, 40))  # (epochs, steps per epoch): 60 to 600 steps
THREADS = 2  # torch threads; ONNX Runtime tables and timings use 2 intra-op threads as well
BASE = "naf"
UNIFORM_TWIN = "cbr"  # the headline search derived all-cbr: the same network trained from scratch sits beside it
NETWORKS = ("searched", "naf-s0", "naf-s1", "naf-wall", f"{UNIFORM_TWIN}-s0")
NEEDS_SEARCH = ("searched", "naf-wall")  # the others train from scratch and need no search


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("search", "train", "eval", "latency", "commit", "report", "all"))
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "paper")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--repeats", type=int, default=5, help="latency repeats (default 5)")
    p.add_argument("--runs", type=int, default=10, help="timed rounds per latency repeat (default 10)")
    p.add_argument("--networks", default=",".join(NETWORKS),
                   help="networks the train and eval stages work on, in order (default: all four)")
    p.add_argument("--lengths", default=",".join(str(e * n) for e, n in COMMIT_LENGTHS),
                   help="search lengths (total steps) the commit stage runs, in order (default: all of them)")
    return p.parse_args(argv)


# -- stage 1: table and search ------------------------------------------------------------

def base_ms(lut: Path) -> float:
    """The all-naf network's table prediction (fixed parts + every position's naf)."""
    from hwnas.contracts.latency import LatencyTable
    from hwnas.contracts.plugins import get_space
    from hwnas.nas.objective import latency_model

    space = get_space(SPACE).from_options(PRESET)
    with __import__("torch").device("meta"):
        fixed = space.fixed_units(IMAGE_SIZE)
    return latency_model(LatencyTable.load(lut), space.positions(IMAGE_SIZE), fixed).base_ms


# The recorded headline search ran before the logits' travel became 20 and the weights' rate a
# cosine (hwnas.nas.schedule); these flags reproduce it. The commit study runs the current defaults.
HEADLINE_RATES = ("--arch-lr", "0.02", "--min-lr", "0.002")


def stage_search(args, runner: Runner) -> None:
    work = args.workdir
    lut = work / "lut.csv"
    if not lut.exists():
        runner.hwnas("build-lut", "--backend", "onnxruntime", "--preset", PRESET, "--image-size", IMAGE_SIZE,
                     "--out", rel(lut), log="build-lut.log")
    search = work / "search"
    if not search_finished(search):
        target = round(TARGET_FRACTION * base_ms(lut), 3)
        resume = ["--resume"] if (search / "checkpoints" / "last.pt").exists() else []  # same flags: they agree
        runner.hwnas("search", "--lut", rel(lut), "--mode", "sampled", "--target-ms", target, "--data", rel(TRAIN_DATA),
                     "--sigma", TRAIN_SIGMA, "--crop", CROP, "--batch-size", BATCH, *HEADLINE_RATES,
                     "--epochs", SEARCH_EPOCHS, "--steps-per-epoch", SEARCH_STEPS, "--threads", THREADS,
                     "--out", rel(search), *resume, log="search.log")


# -- stage 2: training --------------------------------------------------------------------

def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def train_record(run: Path) -> tuple[int, float]:
    """(steps, training seconds) of a finished training run, from its metrics.csv."""
    rows = list(csv.DictReader(open(run / "metrics.csv", newline="")))
    return sum(int(float(r["steps"])) for r in rows), float(rows[-1]["train_seconds"])


def trained(run: Path) -> bool:
    return (run / "model.pt").exists()


def train(runner: Runner, run: Path, *how: object, epochs: int, steps: int, seed: int = 0) -> None:
    if trained(run):
        return
    resume = ["--resume"] if (run / "checkpoints").exists() else []
    common_flags = [] if resume else ["--data", rel(TRAIN_DATA), "--sigma", TRAIN_SIGMA, "--crop", CROP,
                                      "--batch-size", BATCH, "--epochs", epochs, "--steps-per-epoch", steps, "--seed", seed]
    runner.hwnas("train", *([] if resume else how), *common_flags, "--threads", THREADS, "--out", rel(run), *resume,
                 log=f"train-{run.name}.log")


def equal_updates() -> int:
    """Weight updates the searched network received: every search step (warm-up included) plus fine-tuning."""
    return SEARCH_EPOCHS * SEARCH_STEPS + FT_EPOCHS * FT_STEPS


def stage_train(args, runner: Runner) -> None:
    work = args.workdir
    names = wanted(args)
    if set(names) & set(NEEDS_SEARCH) and not search_finished(work / "search"):
        raise SystemExit("error: the search has not finished; run the `search` stage first "
                         f"(or train only {', '.join(n for n in NETWORKS if n not in NEEDS_SEARCH)}).")
    for name in names:
        if name == "searched":
            train(runner, work / "train" / name, "--init-from", rel(work / "search"), epochs=FT_EPOCHS, steps=FT_STEPS)
        elif name == "naf-wall":
            wall = equal_wallclock_steps(work)
            train(runner, work / "train" / name, "--preset", PRESET, "--uniform", BASE,
                  epochs=max(1, wall // FT_STEPS), steps=FT_STEPS, seed=0)
        else:  # naf-s0, naf-s1, cbr-s0: as many weight updates as the searched network received
            train(runner, work / "train" / name, "--preset", PRESET, "--uniform", name.rsplit("-", 1)[0],
                  epochs=equal_updates() // FT_STEPS, steps=FT_STEPS, seed=int(name[-1]))


def wanted(args) -> list[str]:
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NETWORKS))
    if unknown:
        raise SystemExit(f"error: unknown network(s) {', '.join(unknown)} in --networks; choose from {', '.join(NETWORKS)}.")
    return names


def equal_wallclock_steps(work: Path) -> int:
    """All-naf steps that take as long as the searched network's search + fine-tuning.

    From step times measured side by side (`step_times`: interleaved rounds, medians),
    not from the runs' own clocks, which the other work on a shared machine distorts:
    (warm-up x weight step + arch steps x (weight + arch step) + fine-tuning x searched
    step) / all-naf step. Recorded in `<workdir>/step_times.json`.
    """
    path = work / "step_times.json"
    if not path.exists():
        times = step_times(work)
        path.write_text(json.dumps(times, indent=2) + "\n")
    t = json.loads(path.read_text())
    s = summary(work / "search")
    warm = s["warmup_epochs"] * SEARCH_STEPS
    arch = SEARCH_EPOCHS * SEARCH_STEPS - warm
    seconds = warm * t["supernet_weight_step"] + arch * (t["supernet_weight_step"] + t["arch_step"]) \
        + FT_EPOCHS * FT_STEPS * t["searched_step"]
    return int(round(seconds / t["naf_step"] / FT_STEPS)) * FT_STEPS


def step_times(work: Path, rounds: int = 7) -> dict[str, float]:
    """Median seconds of one sampled super-net weight step, one architecture step, one training
    step of the searched network and one of all-naf (paper preset, crop CROP, batch BATCH),
    timed in interleaved rounds in this process."""
    import statistics
    import tempfile
    import time

    import torch

    from hwnas.contracts.config import SearchConfig, SpaceSpec, TaskSpec
    from hwnas.contracts.latency import LatencyTable
    from hwnas.runs.rundir import RunDir
    from hwnas.nas.searching import Search
    from hwnas.contracts.space import Architecture, freeze
    from hwnas.contracts.task import make_task

    torch.set_num_threads(THREADS)
    config = SearchConfig(spec=SpaceSpec(space=SPACE, preset=PRESET), mode="sampled", crop=CROP, batch_size=BATCH,
                          epochs=SEARCH_EPOCHS, steps_per_epoch=SEARCH_STEPS, backend="onnxruntime", threads=THREADS)
    space = config.spec.create()
    task = make_task(TaskSpec(options={"data": str(TRAIN_DATA), "crop": CROP, "sigma": (0.0, 55.0)}), space)
    table = LatencyTable.load(work / "lut.csv")
    search = Search(config.model_copy(update={"device": table.meta.device}), RunDir(Path(tempfile.mkdtemp())), space, task, table)
    search.progress.reference_loss = 1.0
    searched = Architecture.load(work / "search" / "arch.json")
    nets = {"searched_step": freeze(space, searched), "naf_step": freeze(space, Architecture.uniform(SPACE, {p.label: p.candidates for p in space.positions(IMAGE_SIZE)}, BASE))}
    opts = {k: torch.optim.AdamW(n.parameters(), lr=1e-4) for k, n in nets.items()}
    x, y = task.batch("train", seed=0, epoch=0, step=0, batch_size=BATCH)

    def train_step(key):
        nets[key].train()
        opts[key].zero_grad(set_to_none=True)
        task.loss(nets[key](x), y).backward()
        opts[key].step()

    calls = {"supernet_weight_step": search.weight_step, "arch_step": search.arch_step,
             "searched_step": lambda: train_step("searched_step"), "naf_step": lambda: train_step("naf_step")}
    times: dict[str, list[float]] = {k: [] for k in calls}
    for r in range(rounds + 1):
        for key, call in calls.items():
            t0 = time.perf_counter()
            call()
            if r:  # round 0 warms up
                times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()} | {"rounds": rounds, "load": common.load_average()}


# -- stage 3: evaluation ------------------------------------------------------------------


def stage_eval(args, runner: Runner) -> None:
    work = args.workdir
    for name in wanted(args):
        model, out = work / "train" / name / "model.pt", work / "eval" / f"{name}.csv"
        if out.exists() or not model.exists():
            continue
        data = [x for folder in TEST_DATA for x in ("--data", rel(folder))]
        runner.hwnas("eval", "--model", rel(model), *data, "--sigma", SIGMAS, "--seed", 0, "--out", rel(out), "--json",
                     log=f"eval-{name}.log")


# -- stage 4: latency ---------------------------------------------------------------------

def stage_latency(args, runner: Runner) -> None:
    import torch

    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
    from hwnas.contracts.plugins import get_space
    from hwnas.contracts.space import Architecture, Unit, freeze

    torch.set_num_threads(THREADS)
    space = get_space(SPACE).from_options(PRESET)
    positions = {p.label: p.candidates for p in space.positions(IMAGE_SIZE)}
    archs = {"all-naf": Architecture.uniform(SPACE, positions, BASE),
             "searched": Architecture.load(args.workdir / "search" / "arch.json")}
    shape = tuple(space.example_input(IMAGE_SIZE).shape)
    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=THREADS, warmup=2, runs=args.runs))
    path = args.results / f"{NAME}_latency.csv"
    done = common.done_keys(path, ["repeat"])
    for repeat in range(args.repeats):
        if (str(repeat),) in done:
            continue
        load = common.load_average()
        units = [Unit(label, shape, freeze(space, arch).eval(), kind="network") for label, arch in archs.items()]
        ms = {m.name: m for m in backend.measure(units)}
        ratio = ms["all-naf"].median_ms / ms["searched"].median_ms
        logger.info("repeat %d: all-naf %.1f ms, searched %.1f ms, %.2fx (load %s)", repeat,
                    ms["all-naf"].median_ms, ms["searched"].median_ms, ratio, load)
        common.append_row(path, {"repeat": repeat, "naf_ms": ms["all-naf"].median_ms, "searched_ms": ms["searched"].median_ms,
                                 "ratio": ratio, "naf_p10": ms["all-naf"].p10_ms, "naf_p90": ms["all-naf"].p90_ms,
                                 "searched_p10": ms["searched"].p10_ms, "searched_p90": ms["searched"].p90_ms,
                                 "runs": args.runs, "threads": THREADS, "load_1min": load[0] if load else ""})


# -- stage 5: the commit study ----------------------------------------------------------

def stage_commit(args, runner: Runner) -> None:
    from hwnas.contracts.config import MIN_LR
    from hwnas.nas.schedule import ARCH_TRAVEL

    work = args.workdir
    path = args.results / f"{NAME}_commit.csv"
    # the defaults the searches run with; a change of either is a new series
    travel, min_lr = f"{ARCH_TRAVEL:g}", f"{MIN_LR:g}"
    series = f"travel{travel}_minlr{min_lr}"
    done = common.done_keys(path, ["steps", "arch_travel", "min_lr"])
    for epochs, steps in commit_lengths(args):
        total = epochs * steps
        if (str(total), travel, min_lr) in done:
            continue
        run = work / "commit" / series / f"steps{total}"
        if not search_finished(run):
            resume = ["--resume"] if (run / "checkpoints" / "last.pt").exists() else []
            flags = [] if resume else ["--preset", PRESET, "--lut", rel(work / "lut.csv"), "--mode", "sampled", "--crop", CROP,
                                       "--batch-size", BATCH, "--epochs", epochs, "--steps-per-epoch", steps]
            runner.hwnas("search", *flags, "--threads", THREADS, "--out", rel(run), *resume, log=f"commit-{series}-{total}.log")
        s = summary(run)
        c = s["commitment"]
        common.append_row(path, {"steps": total, "arch_travel": travel, "min_lr": min_lr, "epochs": epochs, "steps_per_epoch": steps,
                                 "warmup_epochs": s["warmup_epochs"], "arch_lr": s["arch_lr"],
                                 "entropy_growth": s["entropy_growth"], "committed": c["committed"],
                                 "min_largest_alpha": c["min_largest_alpha"], "alpha_entropy": c["alpha_entropy"],
                                 "argmax_changed_last_quarter": c["argmax_changed_last_quarter"],
                                 "predicted_speedup": s["speedup"], "seconds": s["seconds"]})


def commit_lengths(args) -> list[tuple[int, int]]:
    """The (epochs, steps per epoch) of the lengths named by --lengths, in that order."""
    by_total = {e * n: (e, n) for e, n in COMMIT_LENGTHS}
    names = [t.strip() for t in args.lengths.split(",") if t.strip()]
    unknown = [t for t in names if not t.isdigit() or int(t) not in by_total]
    if unknown:
        raise SystemExit(f"error: unknown length(s) {', '.join(unknown)} in --lengths; choose from "
                         f"{', '.join(map(str, by_total))}.")
    return [by_total[int(t)] for t in names]


# -- stage 6: collecting ------------------------------------------------------------------

def stage_report(args, runner: Runner) -> None:
    """paper.csv from every network evaluated in the workdir; the rows of networks not evaluated there (a workdir
    that holds only some of them) are kept as they were. The search's settings go to the sidecar when it is here."""
    work = args.workdir
    meta = getattr(args, "record", None) or common.read_meta(NAME, args.results)  # inside `record_run`: its own record
    s = summary(work / "search") if search_finished(work / "search") else None
    recorded = (s and {"predicted_ms": s["predicted_ms"], "base_ms": s["base_ms"], "seconds": s["seconds"],
                       "choices": {k: v["candidate"] for k, v in s["choices"].items()}}) \
        or meta.get("settings", {}).get("search", {})
    fresh = [row for name in NETWORKS for row in network_rows(work, name, recorded)]
    if fresh:
        path = args.results / f"{NAME}.csv"
        rows = merged_rows(common.read_rows(path), fresh)
        path.unlink(missing_ok=True)
        for row in rows:
            common.append_row(path, row)
    settings = meta.setdefault("settings", {})
    if s is not None:
        settings["search"] = {
            "mode": "sampled", "epochs": SEARCH_EPOCHS, "steps_per_epoch": SEARCH_STEPS, "crop": CROP, "batch": BATCH,
            "target_ms": s["target_ms"], "target_fraction": TARGET_FRACTION, "base_ms": s["base_ms"],
            "predicted_ms": s["predicted_ms"], "commitment": s["commitment"], "arch_lr": s["arch_lr"],
            "warmup_epochs": s["warmup_epochs"], "choices": recorded["choices"]}
    settings.update({"fine_tune": {"epochs": FT_EPOCHS, "steps_per_epoch": FT_STEPS}, "train_data": "CBSD432",
                     "train_sigma": TRAIN_SIGMA, "test": ["CBSD68", "Kodak24"], "sigmas": SIGMAS, "threads": THREADS})
    settings["commands"] = list(dict.fromkeys([*settings.get("commands", []), *logged_commands(work)]))
    if (work / "step_times.json").exists():  # the equal-wall-clock plan, whether or not naf-wall has run
        settings["naf_wall"] = {"steps": equal_wallclock_steps(work), "equal_updates": equal_updates(),
                                "step_times": json.loads((work / "step_times.json").read_text())}
    common.write_meta(NAME, meta, args.results)


def merged_rows(before: list[dict], fresh: list[dict]) -> list[dict]:
    """paper.csv's rows: those of networks `fresh` does not measure again, and `fresh`, in NETWORKS order."""
    names = {row["network"] for row in fresh}
    rows = [row for row in before if row["network"] not in names] + fresh
    order = {name: i for i, name in enumerate(NETWORKS)}
    return sorted(rows, key=lambda row: order.get(row["network"], len(order)))  # stable: a network's rows stay in order


def network_rows(work: Path, name: str, search: dict) -> list[dict]:
    """paper.csv's rows of one network evaluated in `work` ([] if it was not); `search`: the search's
    predicted_ms, base_ms, seconds and choices (a uniform network's prediction is known when the search
    derived that same network)."""
    from hwnas.deploy.modelfile import load_model
    from hwnas.contracts.space import freeze
    from hwnas.tables.cost import count_macs, count_params

    path = work / "eval" / f"{name}.csv"
    if not path.exists():
        return []
    model = load_model(work / "train" / name / "model.pt")
    net = freeze(model.spec.create(), model.arch)
    steps, seconds = train_record(work / "train" / name)
    searched = name == "searched"
    candidate = name.rsplit("-", 1)[0]
    twin = set(search.get("choices", {}).values()) == {candidate}
    predicted = search.get("predicted_ms", "") if searched or twin else search.get("base_ms", "") if candidate == BASE else ""
    params, gmacs = count_params(net), round(count_macs(net, (1, 3, IMAGE_SIZE, IMAGE_SIZE)) / 1e9, 4)
    return [{"network": name, "dataset": r["dataset"], "sigma": r["sigma"], "psnr": float(r["psnr"]),
             "ssim": float(r["ssim"]), "images": r["images"], "params": params, "gmacs": gmacs, "predicted_ms": predicted,
             "search_steps": SEARCH_EPOCHS * SEARCH_STEPS if searched else 0, "train_steps": steps,
             "weight_updates": steps + (SEARCH_EPOCHS * SEARCH_STEPS if searched else 0),
             "train_seconds": round(seconds, 1),
             "search_seconds": round(float(search.get("seconds", 0)), 1) if searched else 0,
             "seed": int(name[-1]) if name[-1].isdigit() else 0, "crop": CROP, "batch": BATCH}
            for r in csv.DictReader(open(path, newline=""))]


def logged_commands(work: Path) -> list[str]:
    out = []
    for log in sorted((work / "logs").glob("*.log")):
        out += [line[2:].strip() for line in log.read_text().splitlines() if line.startswith("$ ")]
    return out


STAGES = {"search": stage_search, "train": stage_train, "eval": stage_eval, "commit": stage_commit,
          "latency": stage_latency, "report": stage_report}


def main() -> None:
    args = parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir)
    stages = list(STAGES) if args.stage == "all" else [args.stage]
    settings = {"space": SPACE, "preset": PRESET, "image_size": IMAGE_SIZE, "crop": CROP, "batch": BATCH}
    with common.record_run(NAME, settings=settings, results_dir=args.results) as record:
        args.record = record
        for stage in stages:
            logger.info("stage %s", stage)
            STAGES[stage](args, runner)


if __name__ == "__main__":
    common.run_main(main)
