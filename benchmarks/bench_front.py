"""The latency-quality front at a scale this machine trains to a plateau (issue 22).

Does searching beat what an engineer picks without a search? Answered at the `small`
preset of `nafnet-unet` (the paper's four levels at width 16, 12 positions), where one
training run takes minutes on 2 cores, in stages that each resume where they stopped:

1. `plateau`: the training budget B. The uniform networks all-`naf` and all-`cbr`
   trained from scratch at each length in PLATEAU_STEPS (the usual recipe: CBSD432,
   blind sigma 0-55, crop 64, batch 8, AdamW with a cosine to 1e-6), each scored on
   CBSD68 at sigma 25. B is the shortest length whose doubling gains <= PLATEAU_GAIN dB
   for every network (the run of 2B is a separate run with its own cosine, as a user
   training for 2B would get). Rows: `results/front_plateau.csv`.
2. `uniform`: the space's quality-latency ranking at the front's budget B (FRONT_STEPS):
   each uniform network in UNIFORM (all-`naf` and all-`cbr` with 2 seeds first) trained
   for B steps, scored on CBSD68 and Kodak24 at sigma 15/25/50, with its parameters and
   GMACs (256x256). Two runs at a time (`--jobs`), one thread each. Latency is measured
   apart (a property of the architecture, not of the weights), on a quiet machine.
   Rows: `results/front_uniform.csv`.
3. `latency`: every uniform network of stage 2 timed end to end (ONNX Runtime CPU,
   256x256, LATENCY_THREADS threads), all in the same interleaved rounds, LATENCY_REPEATS
   times; on a quiet machine only (it refuses to start above QUIET_LOAD unless --force).
   Rows: `results/front_uniform_latency.csv`.
4. `lut`: the ONNX Runtime CPU latency table of the front's space (preset small, CANDIDATES,
   256x256, LATENCY_THREADS threads) into `results/front_lut/ort-small-256.csv` (+ its
   sidecar), committed: every search of stage 5 reads it. Quiet machine only (QUIET_LOAD,
   or --force); skipped when the table exists.
5. `front [--target R]`: one `hwnas sweep --baselines` per target ratio (default: each of
   TARGETS in turn) -- the searches at seeds 0 and 1 (SEARCH_STEPS of the FRONT_STEPS budget,
   SEARCH_MODE, SEARCH_CANDIDATES: no skip, mu FRONT_MU, the absolute target form), each
   derived network fine-tuned to FRONT_STEPS, 2 random mixes at the
   target's predicted latency, and the best uniform network of stage 2 and all-naf made
   narrower and shallower to the target (no uniform network is trained again: stage 2 has
   them), two runs at a time through Ray, one thread each. Its front.csv rows, with the
   target, the sweep's wall seconds and load, go to `results/front.csv`; a target already
   there is skipped, an interrupted sweep resumes (`--resume`) while its folder lasts.
   Each row carries its network's `spec` and `arch` (JSON), so stage 6 needs no weights.
6. `front_latency`: every network of `results/front.csv` and `results/front_uniform.csv`
   rebuilt untrained from its spec and architecture and timed end to end in the same
   interleaved rounds as stage 3 (`time_networks`), LATENCY_REPEATS times, quiet machine
   only. Rows: `results/front_latency.csv`.
7. `hold`: what holding the target (`hwnas.nas.target_hold`, the default since the fronts
   ran) makes of each recorded search, from its final alphas and table: the argmax and the
   held network, predicted, against the target. Rows: `results/front_hold.csv` (no training).
8. `held`: each held network that differs from its argmax fine-tuned as the argmax was (its
   finetune/config.yaml, the held architecture), both scored by the same `hwnas eval` on
   CBSD68 and Kodak24 at sigma 25; columns added to `results/front_hold.csv`.
9. `report` (via report.py): the plateau and ranking tables, and the front against its goals.

A session of ~3 hours keeps for certain only what is committed (benchmarks/work/ may be
wiped between sessions; on 2026-12-06 it survived one), so each stage finishes within one:
see benchmarks/README.md for the plan.

Every training runs with one torch thread (`--threads 1`, see `hwnas.runs.compute`: at the
small preset one thread is within 1.3x of two, and it leaves the other core to other
work); the wall-clock and load of every run is in its row. Intermediate runs live in
`--workdir` (default benchmarks/work/front, git-ignored). From the repository root:

    python benchmarks/bench_front.py plateau
    python benchmarks/bench_front.py front --target 0.6
"""

from __future__ import annotations

import argparse
import csv
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common
from bench_quality import DATASETS, ROOT, Runner, rel

logger = logging.getLogger("bench_front")

NAME = "front"
SPACE, PRESET, IMAGE_SIZE = "nafnet-unet", "small", 256
TRAIN_DATA = DATASETS / "CBSD432"
TEST_DATA = (DATASETS / "CBSD68", DATASETS / "Kodak24")
TRAIN_SIGMA, PLATEAU_SIGMA = "0,55", "25"
CROP, BATCH, STEPS_PER_EPOCH = 64, 8, 100
PLATEAU_STEPS = (3000, 6000, 1500, 12000)  # in the order they run: B candidates and their doublings
PLATEAU_NETS = ("naf", "cbr")
PLATEAU_GAIN = 0.1  # dB: 2B gains at most this much over B
THREADS = 1
# The front's budget B: the shortest plateau length at which all-naf is ahead of all-cbr
# (at 3000 steps the cheaper block still scores higher: the regime issue 22 names).
FRONT_STEPS = 6000
SEEDS = (0, 1)
EVAL_SIGMAS = "15,25,50"
# (candidate, seed) in the order they run: the four uniform networks of issue 22 first.
UNIFORM = (("naf", 0), ("cbr", 0), ("naf", 1), ("cbr", 1), ("cbr_e4", 0), ("cbr_e4", 1), ("naf_bn", 0),
           ("naf_bn_lite", 0))
LATENCY_THREADS, LATENCY_RUNS, LATENCY_REPEATS = 2, 20, 3
QUIET_LOAD = 1.0  # 1-minute load average above which timing is refused (2 cores)
ROWS_LOCK = threading.Lock()  # workers append to one results file
# The front's space: the paper's four candidates (naf first: the base network), a wider cbr and
# skip -- at the small preset cbr is as good as naf and faster, so without these there is
# nothing to trade (issue 22, item 2).
CANDIDATES = ("naf", "naf_bn", "naf_bn_lite", "cbr", "cbr_e4", "skip")
SPACE_OPTIONS = ("-o", f"candidates=[{','.join(CANDIDATES)}]")
# The searches' (and random mixes') candidates: all but skip. With skip the weight-sharing search collapses onto
# it (DARTS' known failure: the parameter-free path wins the super-net's early task loss): at 0.45x, 1500 sampled
# steps, both seeds ended at 0.23x/0.32x with the hinge target (seed 1 all-skip; results/front_hinge_searches), and
# with the absolute target both had skip at 8-10 of 12 positions by epoch 7 (naf at the full-resolution ends to
# spend the budget). Depth is still among the baselines: the shallower networks (`--narrow`).
SEARCH_CANDIDATES = tuple(c for c in CANDIDATES if c != "skip")
LUT = common.RESULTS_DIR / "front_lut" / f"ort-{PRESET}-{IMAGE_SIZE}.csv"
TARGETS = (0.45, 0.6, 0.75)  # the searches' targets: fractions of the base network's (all-naf's) predicted latency
# The search's share of the FRONT_STEPS budget (the fine-tuning gets the rest): 15 epochs of 100 steps, the first 3
# weights only (the default 20%).
SEARCH_EPOCHS, SEARCH_WARMUP = 15, 3
SEARCH_STEPS = SEARCH_EPOCHS * STEPS_PER_EPOCH
# sampled (one path per step) rather than soft (all 6 candidates per position per step). Measured here (small
# preset, 6 candidates, crop 64, batch 8, one thread, macs table; 20 weight-only + 20 search steps each, with 2
# validations, load average ~5.7 on 2 cores) a soft search took 136.8 s, a sampled one 29.6 s: ~3.4 s vs ~0.74 s a
# step, 4.6x. At 1500 steps that is ~85 min against ~18 min per search, and a session runs 2 searches beside the
# baselines; sampled is also the mode bench_paper searches with, so the front's searches are sampled.
SEARCH_MODE = "sampled"
# mu, relative to the task loss. The default with a target (1.0) collapsed both 0.45x searches onto all-cbr
# (results/front_mu1_searches): at the end of warm-up alpha is uniform and the expected latency (48 ms) far above the
# target (32 ms), and Adam moves the logits at full speed along the latency gradient, so within the first search
# epoch cbr held 0.85-0.9 of alpha at the deep positions, and the entropy term then froze it. At 0.1 the task term
# keeps a say: the probe (seed 0, epoch 8) held a mix -- cbr with naf_bn_lite, cbr_e4 and naf_bn at three positions.
FRONT_MU = 0.1
FRONT_RANDOM = 2  # random mixes per target
FRONT_SEEDS = "0,1"
NARROW_ALSO = "naf"  # narrowed at every target beside the best uniform network of stage 2 (the base network)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=tuple(STAGES))
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "work" / "front")
    p.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    p.add_argument("--steps", default=",".join(map(str, PLATEAU_STEPS)),
                   help="plateau lengths (total steps, multiples of 100), in order (default: %(default)s)")
    p.add_argument("--networks", default=",".join(PLATEAU_NETS), help="uniform candidates (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="lut, latency, front_latency: time even on a busy machine (the rows say the load)")
    p.add_argument("--target", type=float, action="append",
                   help=f"front, held: the target ratio to sweep or fine-tune (repeatable; default each of "
                        f"{', '.join(map(str, TARGETS))})")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each (default: %(default)s)")
    return p.parse_args(argv)


def trained(run: Path) -> bool:
    return (run / "model.pt").exists()


def train_record(run: Path) -> tuple[int, float]:
    """(steps, training seconds) of a finished run, from its metrics.csv."""
    rows = list(csv.DictReader(open(run / "metrics.csv", newline="")))
    return sum(int(float(r["steps"])) for r in rows), float(rows[-1]["train_seconds"])


def check_length(steps: int) -> int:
    """A training length in whole epochs of STEPS_PER_EPOCH steps (else one line saying so)."""
    if steps <= 0 or steps % STEPS_PER_EPOCH:
        raise SystemExit(f"error: {steps} steps is not a multiple of {STEPS_PER_EPOCH}; give lengths in hundreds.")
    return steps


def train_uniform(runner: Runner, run: Path, candidate: str, steps: int, seed: int, threads: int = THREADS,
                  lr: float | None = None, options: tuple[str, ...] = (), sigma: str = TRAIN_SIGMA) -> None:
    """Train all-`candidate` for `steps` steps at the study's recipe (resumes an interrupted run); `lr`: the peak
    learning rate (None: `hwnas train`'s default); `options`: more space option flags (e.g. `-o width=24`);
    `sigma`: the training noise, a level or a range ("0,55": the study's blind range)."""
    train_network(runner, run, ("--uniform", candidate), steps, seed, threads=threads, lr=lr,
                  options=(*SPACE_OPTIONS, *options), sigma=sigma)


def train_network(runner: Runner, run: Path, network: tuple[str, ...], steps: int, seed: int, *, threads: int = THREADS,
                  lr: float | None = None, options: tuple[str, ...] = SPACE_OPTIONS, sigma: str = TRAIN_SIGMA) -> None:
    """Train the network `network` names (`--uniform naf`, `--arch a.json`) from scratch for `steps` steps at the
    study's recipe, with the space `options`; resumes an interrupted run, skips a trained one."""
    if trained(run):
        return
    check_length(steps)
    resume = ["--resume"] if (run / "checkpoints").exists() else []
    flags = [] if resume else ["--preset", PRESET, *options, *network, "--data", rel(TRAIN_DATA),
                               "--sigma", sigma, "--crop", CROP, "--batch-size", BATCH,
                               "--epochs", steps // STEPS_PER_EPOCH, "--steps-per-epoch", STEPS_PER_EPOCH,
                               "--seed", seed, *(["--lr", lr] if lr else [])]
    runner.hwnas("train", *flags, "--threads", threads, "--out", rel(run), *resume, log=f"train-{run.name}.log")


def worst_image(run: Path, dataset: str, sigma: str) -> float | str:
    """The lowest per-image PSNR of `score`'s evaluation of `run` on `dataset` at `sigma` ("" when not scored)."""
    files = sorted(run.glob(f"eval-s{sigma}-*_per_image.csv"))
    values = [float(r["psnr"]) for f in files[:1] for r in common.read_rows(f)
              if r["dataset"] == dataset and r["sigma"] == sigma]
    return round(min(values), 4) if values else ""


def score(runner: Runner, run: Path, sigmas: str, datasets: tuple[Path, ...]) -> dict:
    """`hwnas eval` of a trained run (cached in the run folder): {dataset: {sigma: {psnr, ssim}}}."""
    out = run / f"eval-s{sigmas.replace(',', '_')}-{'_'.join(d.name for d in datasets)}.csv"
    if not out.exists():
        data = [x for folder in datasets for x in ("--data", rel(folder))]
        runner.hwnas("eval", "--model", rel(run / "model.pt"), *data, "--sigma", sigmas, "--seed", 0,
                     "--threads", THREADS, "--out", rel(out), log=f"eval-{run.name}.log")
    scores: dict = {}
    for row in csv.DictReader(open(out, newline="")):
        scores.setdefault(row["dataset"], {})[row["sigma"]] = {"psnr": float(row["psnr"]), "ssim": float(row["ssim"])}
    return scores


def stage_plateau(args, runner: Runner) -> None:
    path = args.results / f"{NAME}_plateau.csv"
    steps_list = [int(s) for s in args.steps.split(",") if s.strip()]
    nets = [n.strip() for n in args.networks.split(",") if n.strip()]
    settings = {"preset": PRESET, "crop": CROP, "batch": BATCH, "sigma": TRAIN_SIGMA, "threads": THREADS,
                "lengths": steps_list, "networks": nets, "gain_goal_db": PLATEAU_GAIN}
    with common.record_run(f"{NAME}_plateau", settings=settings, results_dir=args.results):
        done = common.done_keys(path, ["network", "steps", "seed"])
        for steps in steps_list:
            for net in nets:
                if (net, str(steps), "0") in done:
                    continue
                run = args.workdir / "plateau" / f"{net}-{steps}-s0"
                load0, t0 = common.load_average(), time.time()
                train_uniform(runner, run, net, steps, seed=0)
                wall = time.time() - t0
                s = score(runner, run, PLATEAU_SIGMA, TEST_DATA[:1])["CBSD68"][PLATEAU_SIGMA]
                n, seconds = train_record(run)
                common.append_row(path, {"network": net, "steps": steps, "seed": 0, "cbsd68_s25_psnr": s["psnr"],
                                         "cbsd68_s25_ssim": s["ssim"], "train_steps": n, "train_seconds": round(seconds, 1),
                                         "wall_seconds": round(wall, 1), "load_start": load0[:1] and load0[0],
                                         "load_end": common.load_average()[:1] and common.load_average()[0],
                                         "run": rel(run)})
                logger.info("%s %d steps: CBSD68 s25 %.2f dB (%.0f s)", net, steps, s["psnr"], seconds)


def size_of(run: Path) -> dict:
    """Parameters and GMACs (one 3x256x256 image) of a trained run's network."""
    import hwnas
    from hwnas.tables.cost import count_macs, count_params

    net = hwnas.load(run / "model.pt").module
    return {"params": count_params(net), "gmacs": round(count_macs(net, (1, 3, IMAGE_SIZE, IMAGE_SIZE)) / 1e9, 4)}


def score_columns(scores: dict) -> dict:
    """{dataset: {sigma: {psnr, ssim}}} as flat columns: cbsd68_s25_psnr, kodak24_s50_ssim, ..."""
    return {f"{d.lower()}_s{sigma}_{k}": v for d, by_sigma in scores.items() for sigma, m in by_sigma.items()
            for k, v in m.items()}


def uniform_row(runner: Runner, workdir: Path, candidate: str, seed: int, steps: int) -> dict:
    """Train and score all-`candidate` (seed) for `steps` steps: its row of front_uniform.csv."""
    run = workdir / "uniform" / f"{candidate}-{steps}-s{seed}"
    load0, t0 = common.load_average(), time.time()
    train_uniform(runner, run, candidate, steps, seed=seed)
    wall = time.time() - t0
    n, seconds = train_record(run)
    scores = score(runner, run, EVAL_SIGMAS, TEST_DATA)
    return {"network": candidate, "steps": steps, "seed": seed, **size_of(run), **score_columns(scores),
            "train_steps": n, "train_seconds": round(seconds, 1), "wall_seconds": round(wall, 1),
            "load_start": load0[:1] and load0[0], "load_end": common.load_average()[:1] and common.load_average()[0],
            "run": rel(run)}


def stage_uniform(args, runner: Runner) -> None:
    path = args.results / f"{NAME}_uniform.csv"
    settings = {"preset": PRESET, "candidates": CANDIDATES, "crop": CROP, "batch": BATCH, "sigma": TRAIN_SIGMA,
                "threads": THREADS, "jobs": args.jobs, "steps": FRONT_STEPS, "eval_sigmas": EVAL_SIGMAS}
    with common.record_run(f"{NAME}_uniform", settings=settings, results_dir=args.results):
        done = common.done_keys(path, ["network", "steps", "seed"])
        todo = [(c, s) for c, s in UNIFORM if (c, str(FRONT_STEPS), str(s)) not in done]

        def one(item):
            row = uniform_row(runner, args.workdir, item[0], item[1], FRONT_STEPS)
            with ROWS_LOCK:
                common.append_row(path, row)
            logger.info("%s s%d: CBSD68 s25 %.2f dB (%.0f s)", item[0], item[1], row["cbsd68_s25_psnr"], row["train_seconds"])

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(one, item) for item in todo]:
                future.result()


def refuse_busy(args, what: str) -> None:
    """Timing on a busy machine measures the load: refused above QUIET_LOAD unless --force."""
    load = common.load_average()
    if load and load[0] > QUIET_LOAD and not args.force:
        raise SystemExit(f"error: load average {load[0]} > {QUIET_LOAD}: {what} on a quiet machine (or --force).")


def time_networks(args, networks: list[tuple[str, object, object]], labels: list[list[dict]], name: str) -> None:
    """Each (label, space, net) end to end (ONNX Runtime CPU, LATENCY_THREADS threads, IMAGE_SIZE), all in the same
    interleaved rounds, LATENCY_REPEATS times: per repeat, one row in results/<name>.csv for each entry of the
    network's `labels` (several rows share a timing where networks share an architecture). The weights do not
    matter (latency is the architecture's)."""
    from hwnas.contracts.space import Unit
    from hwnas.tables.building import make_backend

    units = [Unit(label, tuple(space.example_input(IMAGE_SIZE).shape), net.eval(), kind="network")
             for label, space, net in networks]
    backend = make_backend("onnxruntime", {"threads": LATENCY_THREADS, "runs": LATENCY_RUNS, "passes": 3})
    path = args.results / f"{name}.csv"
    settings = {"threads": LATENCY_THREADS, "runs": LATENCY_RUNS, "repeats": LATENCY_REPEATS, "image_size": IMAGE_SIZE,
                "networks": len(units)}
    with common.record_run(name, settings=settings, results_dir=args.results):
        for repeat in range(LATENCY_REPEATS):
            load0 = common.load_average()
            measured = backend.measure(units)
            load1 = common.load_average()
            for rows, m in zip(labels, measured):
                for label in rows:
                    common.append_row(path, {**label, "repeat": repeat, "median_ms": round(m.median_ms, 4),
                                             "load_start": load0[:1] and load0[0], "load_end": load1[:1] and load1[0]})
            logger.info("repeat %d: %s", repeat, ", ".join(f"{u.name} {m.median_ms:.2f} ms" for u, m in zip(units, measured)))


def stage_latency(args, runner: Runner) -> None:
    """The uniform networks' end-to-end latency, interleaved (the architecture's, so weights do not matter)."""
    from hwnas.deploy.modelfile import load_model

    refuse_busy(args, "time")
    rows = [r for r in common.read_rows(args.results / f"{NAME}_uniform.csv") if (ROOT / r["run"] / "model.pt").exists()]
    if not rows:
        raise SystemExit("error: no trained uniform network to time; run the uniform stage first.")
    networks = []
    for r in rows:
        space, net = load_model(ROOT / r["run"] / "model.pt").build()
        networks.append((f"{r['network']}-s{r['seed']}", space, net))
    time_networks(args, networks, [[{"network": r["network"], "seed": r["seed"]}] for r in rows], f"{NAME}_uniform_latency")


def stage_lut(args, runner: Runner) -> None:
    """The front's latency table (ONNX Runtime, this CPU), committed for every later session's searches."""
    if LUT.exists() and LUT.with_suffix(".meta.json").exists():
        logger.info("latency table exists: %s", rel(LUT))
        return
    refuse_busy(args, "build the latency table")
    LUT.parent.mkdir(parents=True, exist_ok=True)
    settings = {"preset": PRESET, "candidates": CANDIDATES, "image_size": IMAGE_SIZE, "threads": LATENCY_THREADS}
    with common.record_run(f"{NAME}_lut", settings=settings, results_dir=args.results):
        runner.hwnas("build-lut", "--backend", "onnxruntime", "--space", SPACE, "--preset", PRESET, *SPACE_OPTIONS,
                     "--image-size", IMAGE_SIZE, "--threads", LATENCY_THREADS, "--out", rel(LUT), log="build-lut.log")


def uniform_means(results: Path) -> dict[str, float]:
    """Uniform candidate -> its mean CBSD68 sigma-25 PSNR over seeds at FRONT_STEPS (results/front_uniform.csv)."""
    by: dict[str, list[float]] = {}
    for r in common.read_rows(results / f"{NAME}_uniform.csv"):
        if r.get("steps") == str(FRONT_STEPS) and r.get("cbsd68_s25_psnr"):
            by.setdefault(r["network"], []).append(float(r["cbsd68_s25_psnr"]))
    return {n: sum(v) / len(v) for n, v in by.items()}


def narrow_list(results: Path) -> str:
    """--narrow: the best uniform network of stage 2 by CBSD68 sigma 25, and NARROW_ALSO."""
    means = uniform_means(results)
    if not means:
        raise SystemExit(f"error: no uniform network at {FRONT_STEPS} steps in {rel(results / f'{NAME}_uniform.csv')}; "
                         "run the uniform stage first.")
    best = max(means, key=means.get)
    return ",".join(dict.fromkeys([best, NARROW_ALSO]))


def sweep_flags(target: float, narrow: str | None, random: int = FRONT_RANDOM, lut: Path = LUT, seeds: str = FRONT_SEEDS,
                executor: str = "ray") -> list[object]:
    """`hwnas sweep` at one target ratio: the study's recipe (as train_uniform's), the front's baselines (`narrow`:
    the networks made narrower and shallower, None for none; `random` mixes)."""
    return ["--lut", rel(lut), "-o", f"candidates=[{','.join(SEARCH_CANDIDATES)}]", "--data", rel(TRAIN_DATA), "--sigma", TRAIN_SIGMA, "--crop", CROP, "--batch-size", BATCH,
            "--threads", THREADS, "--mode", SEARCH_MODE, "--epochs", SEARCH_EPOCHS, "--steps-per-epoch", STEPS_PER_EPOCH,
            "--warmup-epochs", SEARCH_WARMUP, "--target-ratio", f"{target:g}", "--latency-weight", FRONT_MU, "--seeds", seeds,
            "--baselines", "--budget-steps", FRONT_STEPS, "--uniform-candidates", "none", "--narrow", narrow or "none",
            "--random-per-target", random, "--score-data", rel(TEST_DATA[0]), "--score-option", "sigma=[25]",
            "--executor", executor, *(["--cpus-per-run", 1] if executor == "ray" else [])]


def stage_front(args, runner: Runner) -> None:
    """One sweep per target ratio; its front.csv rows appended to results/front.csv (module docstring, stage 5)."""
    if not LUT.exists():
        raise SystemExit(f"error: no latency table {rel(LUT)}; run the lut stage first (on a quiet machine).")
    path = args.results / f"{NAME}.csv"
    targets = args.target or list(TARGETS)
    narrow = narrow_list(args.results)
    settings = {"preset": PRESET, "candidates": CANDIDATES, "steps": FRONT_STEPS, "search_steps": SEARCH_STEPS,
                "search_mode": SEARCH_MODE, "search_candidates": list(SEARCH_CANDIDATES), "target_form": "absolute", "mu": FRONT_MU,
                "seeds": FRONT_SEEDS, "narrow": narrow, "random_per_target": FRONT_RANDOM,
                "targets": targets, "threads": THREADS, "lut": rel(LUT)}
    with common.record_run(NAME, settings=settings, results_dir=args.results):
        for target in targets:
            if any(float(t) == target for (t,) in common.done_keys(path, ["target"]) if t):
                logger.info("target %gx: in %s already", target, rel(path))
                continue
            out = args.workdir / f"sweep-{target:g}x"
            resume = ["--resume"] if out.exists() else []
            load0, t0 = common.load_average(), time.time()
            runner.hwnas("sweep", *sweep_flags(target, narrow), "--out", rel(out), *resume, log=f"sweep-{target:g}x.log")
            wall, load1 = time.time() - t0, common.load_average()
            for row in common.read_rows(out / "front.csv"):
                common.append_row(path, {"target": target, **row, "run": rel(out / row["run"]),
                                         "sweep_wall_seconds": round(wall, 1), "load_start": load0[:1] and load0[0],
                                         "load_end": load1[:1] and load1[0]})
            logger.info("target %gx: %d networks in %s (%.0f s)", target, len(common.read_rows(out / "front.csv")),
                        rel(path), wall)


def uniform_spec_arch(candidate: str) -> dict[str, str]:
    """The spec and arch columns (as front.csv's) of the uniform network all-`candidate` of stage 2."""
    from hwnas.nas import baselines as bl
    from hwnas.contracts.config import SpaceSpec
    from hwnas.nas.front import network_columns

    spec = SpaceSpec(space=SPACE, preset=PRESET, options={"candidates": list(CANDIDATES)})
    return network_columns(spec, bl.uniform(spec.create(), IMAGE_SIZE, candidate))


def front_networks(results: Path) -> list[dict]:
    """Every network of the front to time: {source, kind, name, target, seed, spec, arch}, front.csv's then the
    uniform networks of front_uniform.csv."""
    nets = [{"source": "front", "kind": r["kind"], "name": r["name"], "target": r.get("target", ""), "seed": r["seed"],
             "spec": r["spec"], "arch": r["arch"]} for r in common.read_rows(results / f"{NAME}.csv")]
    for r in common.read_rows(results / f"{NAME}_uniform.csv"):
        if r.get("steps") == str(FRONT_STEPS):
            nets.append({"source": "uniform", "kind": "uniform", "name": f"uniform-{r['network']}-s{r['seed']}", "target": "",
                         "seed": r["seed"], **uniform_spec_arch(r["network"])})
    return nets


def stage_front_latency(args, runner: Runner) -> None:
    """Every network of the front rebuilt untrained and timed in the same rounds (stage 6): one unit per distinct
    architecture (the uniform networks' seeds share one), a row per network; the table is written anew each time."""
    from hwnas.nas.front import network_of

    refuse_busy(args, "time")
    nets = front_networks(args.results)
    if not nets:
        raise SystemExit("error: nothing to time: run the front (and uniform) stages first.")
    groups: dict[tuple[str, str], list[dict]] = {}
    for n in nets:
        groups.setdefault((n["spec"], n["arch"]), []).append({k: n[k] for k in ("source", "kind", "name", "target", "seed")})
    networks = [(group[0]["name"], *network_of({"spec": spec, "arch": arch})) for (spec, arch), group in groups.items()]
    path = args.results / f"{NAME}_latency.csv"
    if path.exists():
        logger.info("replacing %s: every network is timed again, in the same rounds", rel(path))
        path.unlink()
    time_networks(args, networks, list(groups.values()), f"{NAME}_latency")


def stage_hold(args, runner: Runner) -> None:
    """What holding the target (`hwnas.nas.target_hold`, the default since these searches ran) makes of each
    recorded search: its final alphas and table, the argmax network and the held one, predicted. Rows:
    `results/front_hold.csv` (written anew; no training, no timing)."""
    path = args.results / f"{NAME}_hold.csv"
    rows = [hold_row(run) for run in sorted(args.workdir.glob("sweep-*x/mu-*-seed*")) if (run / "summary.json").exists()]
    if not rows:
        raise SystemExit(f"error: no finished search under {rel(args.workdir)}/sweep-*x; run the front stage first.")
    scored = {(r["target"], r["seed"]): r for r in common.read_rows(path)}
    for row in rows:  # keep what stage `held` measured for a network that is still the same
        before = scored.get((row["target"], str(row["seed"])), {})
        if before.get("held_arch") == row["held_arch"]:
            row.update({k: v for k, v in before.items() if k not in row})
    path.unlink(missing_ok=True)
    with common.record_run(f"{NAME}_hold", settings={"source": rel(args.workdir)}, results_dir=args.results):
        for row in rows:
            common.append_row(path, row)
            logger.info("%s seed %s: argmax %+.1f%%, held %+.1f%% of the target, %d swap(s)", row["target"], row["seed"],
                        row["argmax_off_pct"], row["held_off_pct"], row["swaps"])


def hold_row(run: Path) -> dict:
    """One search's argmax and held network against its target (from its summary, alpha history, table and config)."""
    import json

    from hwnas.contracts.config import SearchConfig
    from hwnas.contracts.latency import LatencyTable
    from hwnas.contracts.space import Architecture
    from hwnas.nas.target_hold import Budget, hold_target, predicted
    from hwnas.tables.latency_table import fixed_ms

    import torch
    import yaml

    summary = json.loads((run / "summary.json").read_text())
    config = SearchConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    space, table = config.spec.create(), LatencyTable.load(run / "lut.csv")
    positions = space.positions(config.image_size)
    with torch.device("meta"):
        fixed = space.fixed_units(config.image_size)
    history = common.read_rows(run / "alpha_history.csv")
    last = max(int(r["epoch"]) for r in history)
    alphas: dict[str, dict[str, float]] = {}
    for r in history:
        if int(r["epoch"]) == last:
            alphas.setdefault(r["position"], {})[r["candidate"]] = float(r["alpha"])
    argmax = Architecture(space=space.name, choices={k: v["candidate"] for k, v in summary["choices"].items()})
    budget = Budget("cpu", table, summary["target_ms"], fixed_ms(table, fixed))
    shapes = {p.label: p.input_shape for p in positions}
    held, swaps = hold_target(argmax, alphas, shapes, [budget])
    off = lambda arch: 100 * (predicted(arch.choices, shapes, budget) / budget.target_ms - 1)  # noqa: E731
    return {"target": run.parent.name.removeprefix("sweep-"), "seed": config.seed, "target_ms": round(budget.target_ms, 4),
            "argmax_ms": round(predicted(argmax.choices, shapes, budget), 4), "argmax_off_pct": round(off(argmax), 2),
            "held_ms": round(predicted(held.choices, shapes, budget), 4), "held_off_pct": round(off(held), 2),
            "swaps": len(swaps), "moves": "; ".join(f"{w.position} {w.before}->{w.after}" for w in swaps),
            "search": rel(run), "held_arch": json.dumps(held.choices)}


def stage_held(args, runner: Runner) -> None:
    """Each held network that differs from its argmax (stage `hold`) fine-tuned as the argmax network was (its
    finetune/config.yaml, the held architecture), both scored on CBSD68 and Kodak24 at sigma 25 by the same
    `hwnas eval`: the quality given up to hold the target. Columns added to `results/front_hold.csv`."""
    import json

    from hwnas.contracts.space import Architecture

    path = args.results / f"{NAME}_hold.csv"
    rows = common.read_rows(path)
    if not rows:
        raise SystemExit("error: no held networks: run the hold stage first.")
    wanted = {f"{t:g}x" for t in args.target or ()}  # --target: only those targets' networks
    todo = [r for r in rows if int(r["swaps"]) and not r.get("held_cbsd68_s25_psnr")
            and (not wanted or r["target"] in wanted)]

    def one(row: dict) -> None:
        search = ROOT / row["search"]
        arch, out = search / "held-arch.json", search / "finetune-held"
        if not arch.exists():
            Architecture(space=SPACE, choices=json.loads(row["held_arch"])).save(arch)
        load0, t0 = common.load_average(), time.time()
        if not trained(out):
            resume = ["--resume"] if (out / "checkpoints").exists() else []
            flags = [] if resume else ["--config", rel(search / "finetune" / "config.yaml"), "--arch", rel(arch)]
            runner.hwnas("train", *flags, "--out", rel(out), *resume, log=f"train-held-{row['target']}-s{row['seed']}.log")
        held, argmax = (score(runner, run, "25", TEST_DATA) for run in (out, search / "finetune"))
        for who, scores in (("held", held), ("argmax", argmax)):
            for d in TEST_DATA:
                row[f"{who}_{d.name.lower()}_s25_psnr"] = round(scores[d.name]["25"]["psnr"], 4)
        row.update(held_train_seconds=round(train_record(out)[1], 1), held_wall_seconds=round(time.time() - t0, 1),
                   load_start=load0[:1] and load0[0], load_end=common.load_average()[:1] and common.load_average()[0])
        logger.info("%s seed %s: held %.2f dB vs argmax %.2f dB (CBSD68 s25)", row["target"], row["seed"],
                    row["held_cbsd68_s25_psnr"], row["argmax_cbsd68_s25_psnr"])

    with common.record_run(f"{NAME}_hold", settings={"jobs": args.jobs, "threads": THREADS}, results_dir=args.results):
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(one, row) for row in todo]:
                future.result()
        for row in rows:  # a network that fails on one whole image (eval-mode BatchNorm) shows in its worst image
            search = ROOT / row["search"]
            for who, run in (("held", search / "finetune-held"), ("argmax", search / "finetune")):
                if row.get(f"{who}_cbsd68_s25_psnr") and not row.get(f"{who}_cbsd68_s25_worst_image_psnr"):
                    row[f"{who}_cbsd68_s25_worst_image_psnr"] = worst_image(run, "CBSD68", "25")
        path.unlink(missing_ok=True)
        for row in rows:
            common.append_row(path, row)


STAGES = {"plateau": stage_plateau, "uniform": stage_uniform, "latency": stage_latency, "lut": stage_lut,
          "front": stage_front, "front_latency": stage_front_latency, "hold": stage_hold, "held": stage_held}


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir)
    STAGES[args.stage](args, runner)


if __name__ == "__main__":
    common.run_main(main)
