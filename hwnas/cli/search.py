"""`hwnas search` and `hwnas sweep`: differentiable architecture search from the command line.

Thin: flags (over a --config file) -> `SearchConfig` fields (`hwnas.cli.search_flags`) ->
`hwnas.search` (a sweep: `hwnas.nas.sweep.run_sweep`) -> the report (`hwnas.cli.search_report`).
Here: the commands, their flags' help, and a sweep's first search. Flags default to None
("not given") so that a table's sidecar (`--lut`) or a resumed run's own config can fill
them; the engine refuses a given value that contradicts either (`hwnas.nas.search_setup.resolve_config`,
`hwnas.runs.run.resume_config`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from hwnas.cli.common import (ConfigOpt, JsonOpt, OptionalStrList, OptionOpt, PrefetchOpt, TaskOpt, TaskOptionOpt,
                              TorchThreadsOpt, bounds, settings)
from hwnas.cli.devices import CombineOpt, HoldTargetOpt, LutsOpt, LutWeightOpt, TargetFormOpt, TargetsOpt
from hwnas.cli.jobs import YesOpt, authorise
from hwnas.cli.search_flags import (  # noqa: F401  (the flag sets re-exported: tests read TASK_FLAGS here)
    CONFIG_FLAGS, DEFAULT_BACKEND, DEFAULT_SPACE, FIELDS, QUICK_PRESET, TABLE_FLAGS, TASK_FLAGS,
    SWEEP_AXES, default_out, given_fields, merged_fields, no_weights, parse_list, sweep_extra, sweep_file,
)
from hwnas.cli.search_report import FILES, Bars, report_front, report_search  # noqa: F401  (FILES re-exported)
from hwnas.contracts.config import FrontConfig, SearchConfig, SweepConfig, build_config
from hwnas.contracts.errors import HwnasError
from hwnas.nas.schedule import ARCH_TRAVEL, MIN_ARCH_LR

logger = logging.getLogger(__name__)

COSTS = (
    "soft (the paper's) runs every candidate at every position each step: compute and memory about "
    "K times one network (K candidates); sampled (straight-through Gumbel) runs one sampled candidate "
    "per position: about one network's cost, noisier alpha gradients."
)

# Flags shared by both commands. None = not given.
Space = typer.Option(None, "--space", help=f"Search space (see `hwnas spaces`). Default {DEFAULT_SPACE}.")
Preset = typer.Option(None, "--preset", help=f"Preset of the space. Default: {QUICK_PRESET} when the space has it (a quick search), else the space's default; the paper's NAFNet is --preset paper.")
ImageSize = typer.Option(None, "--image-size", help=f"H=W at which latency is measured. Default 256. {bounds(SearchConfig, 'image_size')}")
Backend = typer.Option(None, "--backend", help=f"Latency backend for the table (see `hwnas backends`). Default {DEFAULT_BACKEND}.")
Device = typer.Option(None, "--device", help="Latency target as the table records it (e.g. sm8650); default: the backend's.")
Accelerator = typer.Option(None, "--accelerator", help="Where the search computes: cpu or cuda. Default cpu.")
Data = typer.Option(None, "--data", help="Shorthand for -t data=DIR: the task's training data, e.g. a folder of images (default: the task's; the sample images embedded in scikit-image for denoising).")
Epochs = typer.Option(None, "--epochs", help=f"Epochs (default 10), each --steps-per-epoch steps. On --resume, a larger value extends the run. {bounds(SearchConfig, 'epochs')}")
StepsPerEpoch = typer.Option(None, "--steps-per-epoch", help=f"Steps per epoch (default 40). {bounds(SearchConfig, 'steps_per_epoch')}")
Seed = typer.Option(None, "--seed", help=f"Seed of weights, data order and Gumbel samples (default 0). {bounds(SearchConfig, 'seed')}")
Resume = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped (starts fresh, with a warning, if it has no checkpoint).")
Mode = typer.Option(None, "--mode", help="soft (default) or sampled. " + COSTS)
LatencyWeight = typer.Option(None, "--latency-weight", help=f"mu, relative to the task loss (default 0.1; 1.0 with --target-ms). 0 searches for quality alone. {bounds(SearchConfig, 'latency_weight')}")
EntropyWeight = typer.Option(None, "--entropy-weight", help=f"lambda0 of the entropy term (default 0.05); 0 turns it off. {bounds(SearchConfig, 'entropy_weight')}")
EntropyGrowth = typer.Option(None, "--entropy-growth", help=f"lambda grows exponentially from lambda0 to lambda0 x this factor over the run's architecture steps, whatever its length (default 100). On --resume --epochs N it re-plans from the current lambda to the same end value at the new end. {bounds(SearchConfig, 'entropy_growth')}")
Warmup = typer.Option(None, "--warmup-epochs", help=f"Weight-only epochs before alpha trains (default: 20% of --epochs, rounded, leaving at least one search epoch). {bounds(SearchConfig, 'warmup_epochs')}")
Bilevel = typer.Option(None, "--bilevel/--single-level", help="Logits on a held-out split, first-order (default), or both on the training split.")
ArchLr = typer.Option(None, "--arch-lr", help=f"Adam learning rate of the logits (default: {ARCH_TRAVEL:g} / architecture steps, at least {MIN_ARCH_LR:g}, so any run length can commit). {bounds(SearchConfig, 'arch_lr')}")
Lr = typer.Option(None, "--lr", help=f"AdamW learning rate of the weights at the start (default 0.002); a cosine takes it to --min-lr at the run's end. {bounds(SearchConfig, 'lr')}")
MinLr = typer.Option(None, "--min-lr", help=f"The weights' learning rate at the run's end (default 1e-6); --min-lr equal to --lr keeps it constant. On --resume --epochs N the cosine re-plans from the current rate. {bounds(SearchConfig, 'min_lr')}")
BatchSize = typer.Option(None, "--batch-size", help=f"Crops per step (default 8). {bounds(SearchConfig, 'batch_size')}")
Crop = typer.Option(None, "--crop", help="Shorthand for -t crop=N: training crop side in input pixels (default: the preset's, 32 for tiny; its range is the task's, see `hwnas tasks`).")
Sigma = typer.Option(None, "--sigma", help="Shorthand for -t sigma=...: Gaussian noise level in 0-255 units, or a range LOW,HIGH drawn per crop (blind denoising) (default: the task's, 25; >= 0).")
Temperature = typer.Option(None, "--temperature", help=f"T in alpha = softmax(phi / T) (default 1). {bounds(SearchConfig, 'temperature')}")
CheckpointEvery = typer.Option(None, "--checkpoint-every", help=f"Also checkpoint every N steps within an epoch (default 20). {bounds(SearchConfig, 'checkpoint_every')}")


def search(
    space: Optional[str] = Space, preset: Optional[str] = Preset, option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSize, backend: Optional[str] = Backend, device: Optional[str] = Device,
    accelerator: Optional[str] = Accelerator, lut: OptionalStrList = LutsOpt, data: Optional[Path] = Data,
    epochs: Optional[int] = Epochs, steps_per_epoch: Optional[int] = StepsPerEpoch, seed: Optional[int] = Seed,
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/search-<space>-<preset>-<time>)."),
    resume: bool = Resume, as_json: bool = JsonOpt, yes: bool = YesOpt,
    mode: Optional[str] = Mode, latency_weight: Optional[float] = LatencyWeight, target_ms: OptionalStrList = TargetsOpt,
    lut_weight: OptionalStrList = LutWeightOpt, combine: Optional[str] = CombineOpt,
    target_form: Optional[str] = TargetFormOpt, hold_target: Optional[bool] = HoldTargetOpt,
    entropy_weight: Optional[float] = EntropyWeight, entropy_growth: Optional[float] = EntropyGrowth,
    warmup_epochs: Optional[int] = Warmup, bilevel: Optional[bool] = Bilevel, arch_lr: Optional[float] = ArchLr,
    lr: Optional[float] = Lr, min_lr: Optional[float] = MinLr, batch_size: Optional[int] = BatchSize, crop: Optional[int] = Crop,
    sigma: Optional[str] = Sigma, temperature: Optional[float] = Temperature,
    checkpoint_every: Optional[int] = CheckpointEvery,
    threads: Optional[int] = TorchThreadsOpt, prefetch: Optional[int] = PrefetchOpt,
    task: Optional[str] = TaskOpt, task_option: OptionalStrList = TaskOptionOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Search an architecture: train a super-net's weights and per-position logits, derive argmax alpha.

    Objective: task loss / its value after warm-up + mu * expected latency (normalised: the all-base network = 1) + lambda(t) * mean normalised entropy of alpha.

    Modes: soft (the paper's) runs all K candidates at every position each step, about K times the compute and memory of one network; sampled (straight-through Gumbel) runs one sampled candidate per position, about the cost of one network.

    Without --lut, the ONNX Runtime table of this space at --image-size is taken from the cache, or measured into it first.

    Examples:

      hwnas search --space nafnet-unet

      hwnas search --task sr2 --crop 24    (a task from an installed plugin, see `hwnas tasks`)

      hwnas search --preset paper --lut sm8650.csv --mode sampled --latency-weight 0.3 --out runs/s1

      hwnas search --out runs/s1 --resume

      hwnas search --lut s24=sm8650.csv --lut cpu=ort.csv --combine worst --out runs/two    (one network for two chips)

      hwnas search --config runs/s1/config.yaml --epochs 20 --out runs/s2

    Data parallel on N GPUs (or CPU processes): torchrun --nproc_per_node N -m hwnas search ... (--batch-size is the global batch; only rank 0 writes and prints).
    """
    fields = settings(config, SearchConfig, given_fields(locals()))
    import hwnas
    from hwnas.runs import distributed

    with distributed.session():
        show = not as_json and distributed.is_main()
        run_dir = distributed.from_main(lambda: out or default_out(fields))  # one name for all ranks
        with Bars(show) as bars:
            result = hwnas.search(out=run_dir, resume=resume, on_step=bars.on_step, on_table_progress=bars.on_table,
                                  approve=lambda b, jobs: authorise(b, jobs, yes), **fields)
        if distributed.is_main():
            report_search(result, as_json)


def sweep(
    latency_weight: Optional[str] = typer.Option(None, "--latency-weight", help="Comma-separated mu values, e.g. 0,0.1,0.3,1 (or latency_weights in --config)."),
    target_ratio: Optional[str] = typer.Option(None, "--target-ratio", help="Comma-separated latency targets as fractions of the base network's predicted latency, e.g. 0.45,0.6,0.75: one constraint-form search each (or target_ratios in --config)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds, e.g. 0,1: every point searched once per seed (or seeds in --config)."),
    space: Optional[str] = Space, preset: Optional[str] = Preset, option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSize, backend: Optional[str] = Backend, device: Optional[str] = Device,
    accelerator: Optional[str] = Accelerator, lut: OptionalStrList = LutsOpt, data: Optional[Path] = Data,
    epochs: Optional[int] = Epochs, steps_per_epoch: Optional[int] = StepsPerEpoch, seed: Optional[int] = Seed,
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep folder: one run per mu plus sweep.csv and pareto.png (default runs/sweep-<time>)."),
    resume: bool = typer.Option(False, "--resume", help="Reuse finished searches in --out and continue an interrupted one."),
    as_json: bool = JsonOpt, yes: bool = YesOpt,
    mode: Optional[str] = Mode, target_ms: OptionalStrList = TargetsOpt,
    lut_weight: OptionalStrList = LutWeightOpt, combine: Optional[str] = CombineOpt,
    target_form: Optional[str] = TargetFormOpt, hold_target: Optional[bool] = HoldTargetOpt,
    entropy_weight: Optional[float] = EntropyWeight, entropy_growth: Optional[float] = EntropyGrowth,
    warmup_epochs: Optional[int] = Warmup, bilevel: Optional[bool] = Bilevel, arch_lr: Optional[float] = ArchLr,
    lr: Optional[float] = Lr, min_lr: Optional[float] = MinLr, batch_size: Optional[int] = BatchSize, crop: Optional[int] = Crop,
    sigma: Optional[str] = Sigma, temperature: Optional[float] = Temperature,
    checkpoint_every: Optional[int] = CheckpointEvery,
    threads: Optional[int] = TorchThreadsOpt, prefetch: Optional[int] = PrefetchOpt,
    task: Optional[str] = TaskOpt, task_option: OptionalStrList = TaskOptionOpt,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file: a sweep's own sweep.yaml (search settings and latency_weights) or a search's config.yaml; flags given as well override it."),
    baselines: bool = typer.Option(False, "--baselines", help="Also fine-tune every derived network and train the baselines a user would pick without a search (uniform, random mixes at each target, base and best uniform network made narrower/shallower, the best faster uniform network made wider), all to --budget-steps; then measure all end to end (onnxruntime CPU) and write front.csv and front.png."),
    budget_steps: Optional[int] = typer.Option(None, "--budget-steps", help=f"With --baselines: weight updates per network; a searched network is fine-tuned for this minus its search's steps. {bounds(FrontConfig, 'budget_steps')}"),
    uniform_candidates: Optional[str] = typer.Option(None, "--uniform-candidates", help="With --baselines: the uniform networks to train, e.g. naf,cbr, or none (default: every candidate)."),
    narrow: Optional[str] = typer.Option(None, "--narrow", help="With --baselines: the candidates whose uniform networks are made narrower/shallower per target, e.g. naf,cbr_e4, or none (default: the base network and the best uniform network slower than the target, and the best one faster made wider; named: none is made wider)."),
    random_per_target: Optional[int] = typer.Option(None, "--random-per-target", help=f"With --baselines: random mixes per target, predicted within 3% of it (default 2). {bounds(FrontConfig, 'random_per_target')}"),
    score_data: OptionalStrList = typer.Option(None, "--score-data", help="With --baselines: also score every network on this folder (repeatable), by the task's evaluation protocol."),
    score_option: OptionalStrList = typer.Option(None, "--score-option", help="With --score-data: an option of the task's evaluation KEY=VALUE (YAML), e.g. --score-option sigma=[25]."),
    measure_runs: Optional[int] = typer.Option(None, "--measure-runs", help=f"With --baselines: interleaved timed rounds per network when measuring (default 60). {bounds(FrontConfig, 'measure_runs')}"),
    executor: Optional[str] = typer.Option(None, "--executor", help="Where the runs execute: local (default: one after another here) or ray (a Ray cluster)."),
    cpus_per_run: Optional[float] = typer.Option(None, "--cpus-per-run", help=f"CPUs each run asks of a cluster node (default 1). {bounds(SweepConfig, 'cpus_per_run')}"),
    gpus_per_run: Optional[float] = typer.Option(None, "--gpus-per-run", help=f"GPUs each run asks of a cluster node (default 0). {bounds(SweepConfig, 'gpus_per_run')}"),
) -> None:
    """Trade-off sweep: one search per latency weight mu, latency target and seed, then predicted latency vs the task's validation score (PSNR for denoising).

    Writes <out>/<point>/ (a full search run each: mu-0.1, mu-1-target0.6x-seed1, ...), sweep.yaml, sweep.csv and pareto.png (the Pareto front). Takes the search flags; each search costs what `hwnas search` does. With --baselines also <point>/finetune/, baselines/<network>/ (uniform, random, narrower, shallower, wider: `hwnas train` runs) and front.csv + front.png (validation score vs latency measured here); with --resume finished runs are reused.

    Examples:

      hwnas sweep --space nafnet-unet --latency-weight 0,0.1,0.3,1 --epochs 6 --out runs/sweep

      hwnas sweep --lut small.csv --target-ratio 0.45,0.6,0.75 --seeds 0,1 --out runs/front

      hwnas sweep --lut small.csv --target-ratio 0.45,0.6,0.75 --seeds 0,1 --baselines --budget-steps 6000 --out runs/front
    """
    flags = given_fields(locals())  # first: names imported below would join locals()
    from hwnas.nas.sweep import check_sweep_dir, grid as sweep_grid, run_sweep

    if resume and config is None and out is not None and (out / "sweep.yaml").is_file():
        config = out / "sweep.yaml"  # the sweep's own settings and weights: resuming asks for nothing again
    base, axes = sweep_file(config)
    extra = sweep_extra(config, locals())
    fields = merged_fields(base, flags)
    given = {"latency_weights": (latency_weight, "--latency-weight", float, "0,0.1,0.3,1"),
             "target_ratios": (target_ratio, "--target-ratio", float, "0.45,0.6,0.75"), "seeds": (seeds, "--seeds", int, "0,1")}
    axes.update({k: parse_list(*given[k]) for k in given if given[k][0] is not None})
    if not axes.get("latency_weights") and not axes.get("target_ratios"):
        raise HwnasError(no_weights(out if resume else None))
    run_dir = out or Path("runs") / f"sweep-{datetime.now():%Y%m%d-%H%M%S}"
    grid = sweep_grid(*(axes.get(k, ()) for k in SWEEP_AXES), fields.get("latency_weight", 0.1))
    check_sweep_dir(run_dir, grid, resume)  # before a table is measured
    with Bars(not as_json) as bars:
        search, table, task = _sweep_search(run_dir, grid[0], {**fields, "latency_weight": grid[0].mu}, resume, bars, yes)
        sweep_config = build_config(SweepConfig, search=search, **{k: tuple(v) for k, v in axes.items() if v}, **extra)
        result = run_sweep(sweep_config, run_dir, table, task=task, resume=resume, on_step=bars.on_step, on_run=bars.on_run)
    if as_json:
        report = {"out": str(result.out), "table": str(result.table), "plot": str(result.plot), "runs": result.rows}
        if result.front is not None:
            f = result.front
            report["front"] = {"table": str(f.table), "plot": str(f.plot), "metric": f.metric, "notes": f.notes, "runs": f.rows}
        typer.echo(json.dumps(report, indent=2))
        return
    label = result.metric.removeprefix("val_")
    typer.echo(f"{'point':<18}  {'predicted ms':>12}  {'speedup':>7}  {'val ' + label:>8}  pareto  run")
    for r in result.rows:
        score = "-" if r[result.metric] is None else f"{r[result.metric]:.2f}"
        uniform = f"  (uniform: all-{r['uniform']})" if r.get("uniform") else ""
        typer.echo(f"{r['label']:<18}  {r['predicted_ms']:>12.2f}  {r['speedup']:>6.2f}x  {score:>8}  "
                   f"{'*' if r['pareto'] else ' ':^6}  {r['run']}{uniform}")
    typer.echo(f"table: {result.table}\nplot:  {result.plot}")
    if result.front is not None:
        report_front(result.front)


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(sweep)


def _sweep_search(run_dir: Path, first, fields: dict[str, Any], resume: bool, bars: "Bars", yes: bool):
    """(the first search's config, table, task): the run's own when resuming it, else resolved as `hwnas search` does."""
    from hwnas import api
    from hwnas.contracts.latency import LatencyTable
    from hwnas.runs.run import resume_config
    from hwnas.runs.rundir import RunDir
    from hwnas.nas.search_setup import prepare, read_config, resolve_config
    from hwnas.nas.searching import IGNORED_ON_RESUME, MAY_CHANGE_ON_RESUME

    folder = RunDir(run_dir / first.name)
    if resume and folder.has_checkpoint():  # resuming a sweep whose first run holds a checkpoint: its config is the base
        config = resume_config(read_config(folder.root), fields, may_change=MAY_CHANGE_ON_RESUME, ignored=IGNORED_ON_RESUME,
                               root=folder.root)
        return config, LatencyTable.load(folder.lut), None
    config, table = resolve_config(fields)
    return prepare(config, table, None, lambda c: api.cached_table(c, bars.on_table, lambda b, jobs: authorise(b, jobs, yes)))
