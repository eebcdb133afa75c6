"""`hwnas search` and `hwnas sweep`: differentiable architecture search from the command line.

Thin: flags (over a --config file) -> `SearchConfig` fields -> `hwnas.search` (a sweep:
`hwnas.sweep.run_sweep`) -> the report. Flags default to None ("not given") so that a
table's sidecar (`--lut`) or a resumed run's own config can fill them; the engine
refuses a given value that contradicts either (`hwnas.search_setup.resolve_config`,
`hwnas.run.resume_config`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from hwnas.cli.common import (ConfigOpt, JsonOpt, OptionalStrList, OptionOpt, PrefetchOpt, TaskOpt, TaskOptionOpt,
                              TorchThreadsOpt, bounds, settings, task_fields)
from hwnas.cli.devices import CombineOpt, LutsOpt, LutWeightOpt, TargetsOpt, table_fields
from hwnas.cli.jobs import YesOpt, authorise
from hwnas.config import FrontConfig, SearchConfig, SweepConfig, build_config, parse_options
from hwnas.errors import HwnasError
from hwnas.schedule import ARCH_TRAVEL, MIN_ARCH_LR

logger = logging.getLogger(__name__)

DEFAULT_SPACE = "nafnet-unet"  # as hwnas.search_setup.DEFAULT_SPACE (not imported: it would load torch for --help)
DEFAULT_BACKEND = "onnxruntime"
QUICK_PRESET = "tiny"  # as hwnas.search_setup.QUICK_PRESET (for --help)

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

# flag name -> SearchConfig field, for the flags that map one to one
FIELDS = {
    "image_size": "image_size", "backend": "backend", "device": "device", "accelerator": "accelerator",
    "epochs": "epochs", "steps_per_epoch": "steps_per_epoch", "seed": "seed", "mode": "mode",
    "latency_weight": "latency_weight", "combine": "combine", "entropy_weight": "entropy_weight",
    "entropy_growth": "entropy_growth", "warmup_epochs": "warmup_epochs", "bilevel": "bilevel", "arch_lr": "arch_lr",
    "lr": "lr", "min_lr": "min_lr", "batch_size": "batch_size", "temperature": "temperature",
    "checkpoint_every": "checkpoint_every", "threads": "threads", "prefetch": "prefetch",
}


def search(
    space: Optional[str] = Space, preset: Optional[str] = Preset, option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSize, backend: Optional[str] = Backend, device: Optional[str] = Device,
    accelerator: Optional[str] = Accelerator, lut: OptionalStrList = LutsOpt, data: Optional[Path] = Data,
    epochs: Optional[int] = Epochs, steps_per_epoch: Optional[int] = StepsPerEpoch, seed: Optional[int] = Seed,
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/search-<space>-<preset>-<time>)."),
    resume: bool = Resume, as_json: bool = JsonOpt, yes: bool = YesOpt,
    mode: Optional[str] = Mode, latency_weight: Optional[float] = LatencyWeight, target_ms: OptionalStrList = TargetsOpt,
    lut_weight: OptionalStrList = LutWeightOpt, combine: Optional[str] = CombineOpt,
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
    fields = settings(config, SearchConfig, _given(locals()))
    import hwnas
    from hwnas import distributed

    with distributed.session():
        show = not as_json and distributed.is_main()
        run_dir = distributed.from_main(lambda: out or _default_out(fields))  # one name for all ranks
        with _progress(show) as bars:
            result = hwnas.search(out=run_dir, resume=resume, on_step=bars.on_step, on_table_progress=bars.on_table,
                                  approve=lambda b, jobs: authorise(b, jobs, yes), **fields)
        if distributed.is_main():
            _report(result, as_json)


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
    entropy_weight: Optional[float] = EntropyWeight, entropy_growth: Optional[float] = EntropyGrowth,
    warmup_epochs: Optional[int] = Warmup, bilevel: Optional[bool] = Bilevel, arch_lr: Optional[float] = ArchLr,
    lr: Optional[float] = Lr, min_lr: Optional[float] = MinLr, batch_size: Optional[int] = BatchSize, crop: Optional[int] = Crop,
    sigma: Optional[str] = Sigma, temperature: Optional[float] = Temperature,
    checkpoint_every: Optional[int] = CheckpointEvery,
    threads: Optional[int] = TorchThreadsOpt, prefetch: Optional[int] = PrefetchOpt,
    task: Optional[str] = TaskOpt, task_option: OptionalStrList = TaskOptionOpt,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file: a sweep's own sweep.yaml (search settings and latency_weights) or a search's config.yaml; flags given as well override it."),
    baselines: bool = typer.Option(False, "--baselines", help="Also fine-tune every derived network and train the baselines a user would pick without a search (uniform, random mixes at each target, base and best uniform network made narrower/shallower), all to --budget-steps; then measure all end to end (onnxruntime CPU) and write front.csv and front.png."),
    budget_steps: Optional[int] = typer.Option(None, "--budget-steps", help=f"With --baselines: weight updates per network; a searched network is fine-tuned for this minus its search's steps. {bounds(FrontConfig, 'budget_steps')}"),
    uniform_candidates: Optional[str] = typer.Option(None, "--uniform-candidates", help="With --baselines: the uniform networks to train, e.g. naf,cbr, or none (default: every candidate)."),
    narrow: Optional[str] = typer.Option(None, "--narrow", help="With --baselines: the candidates whose uniform networks are made narrower/shallower per target, e.g. naf,cbr_e4 (default: the base network and the best uniform network slower than the target)."),
    random_per_target: Optional[int] = typer.Option(None, "--random-per-target", help=f"With --baselines: random mixes per target, predicted within 3% of it (default 2). {bounds(FrontConfig, 'random_per_target')}"),
    score_data: OptionalStrList = typer.Option(None, "--score-data", help="With --baselines: also score every network on this folder (repeatable), by the task's evaluation protocol."),
    score_option: OptionalStrList = typer.Option(None, "--score-option", help="With --score-data: an option of the task's evaluation KEY=VALUE (YAML), e.g. --score-option sigma=[25]."),
    measure_runs: Optional[int] = typer.Option(None, "--measure-runs", help=f"With --baselines: interleaved timed rounds per network when measuring (default 60). {bounds(FrontConfig, 'measure_runs')}"),
    executor: Optional[str] = typer.Option(None, "--executor", help="Where the runs execute: local (default: one after another here) or ray (a Ray cluster)."),
    cpus_per_run: Optional[float] = typer.Option(None, "--cpus-per-run", help=f"CPUs each run asks of a cluster node (default 1). {bounds(SweepConfig, 'cpus_per_run')}"),
    gpus_per_run: Optional[float] = typer.Option(None, "--gpus-per-run", help=f"GPUs each run asks of a cluster node (default 0). {bounds(SweepConfig, 'gpus_per_run')}"),
) -> None:
    """Trade-off sweep: one search per latency weight mu, latency target and seed, then predicted latency vs the task's validation score (PSNR for denoising).

    Writes <out>/<point>/ (a full search run each: mu-0.1, mu-1-target0.6x-seed1, ...), sweep.yaml, sweep.csv and pareto.png (the Pareto front). Takes the search flags; each search costs what `hwnas search` does. With --baselines also <point>/finetune/, baselines/<network>/ (uniform, random, narrower, shallower: `hwnas train` runs) and front.csv + front.png (validation score vs latency measured here); with --resume finished runs are reused.

    Examples:

      hwnas sweep --space nafnet-unet --latency-weight 0,0.1,0.3,1 --epochs 6 --out runs/sweep

      hwnas sweep --lut small.csv --target-ratio 0.45,0.6,0.75 --seeds 0,1 --out runs/front

      hwnas sweep --lut small.csv --target-ratio 0.45,0.6,0.75 --seeds 0,1 --baselines --budget-steps 6000 --out runs/front
    """
    flags = _given(locals())  # first: names imported below would join locals()
    from hwnas.sweep import check_sweep_dir, grid as sweep_grid, run_sweep

    if resume and config is None and out is not None and (out / "sweep.yaml").is_file():
        config = out / "sweep.yaml"  # the sweep's own settings and weights: resuming asks for nothing again
    base, axes = _sweep_file(config)
    extra = _sweep_extra(config, locals())
    fields = _merged(base, flags)
    given = {"latency_weights": (latency_weight, "--latency-weight", float, "0,0.1,0.3,1"),
             "target_ratios": (target_ratio, "--target-ratio", float, "0.45,0.6,0.75"), "seeds": (seeds, "--seeds", int, "0,1")}
    axes.update({k: _parse_list(*given[k]) for k in given if given[k][0] is not None})
    if not axes.get("latency_weights") and not axes.get("target_ratios"):
        raise HwnasError(_no_weights(out if resume else None))
    run_dir = out or Path("runs") / f"sweep-{datetime.now():%Y%m%d-%H%M%S}"
    grid = sweep_grid(*(axes.get(k, ()) for k in SWEEP_AXES), fields.get("latency_weight", 0.1))
    check_sweep_dir(run_dir, grid, resume)  # before a table is measured
    with _progress(not as_json) as bars:
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
        _report_front(result.front)


def _report_front(front) -> None:
    label = front.metric.removeprefix("val_")
    typer.echo(f"\n{'network':<28}  {'kind':<9}  {'measured ms':>11}  {'val ' + label:>8}  pareto  run")
    for r in sorted(front.rows, key=lambda r: r["measured_ms"]):
        score = "-" if r.get(front.metric) is None else f"{r[front.metric]:.2f}"
        typer.echo(f"{r['name']:<28}  {r['kind']:<9}  {r['measured_ms']:>11.2f}  {score:>8}  {'*' if r['pareto'] else ' ':^6}  {r['run']}")
    for note in front.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"front table: {front.table}\nfront plot:  {front.plot}")


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(sweep)


# -- flags -> config fields --------------------------------------------------------


CONFIG_FLAGS = set(FIELDS) | {"space", "preset", "option"}  # the flags that make a SearchConfig
TABLE_FLAGS = ("lut", "lut_weight", "target_ms")  # they make `lut`, `tables` and `target_ms` (hwnas.cli.devices)
TASK_FLAGS = ("task", "task_option", "data", "crop", "sigma")  # they make its `task` (hwnas.cli.common.task_fields)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The config flags actually passed (typer's None means 'not given'), by SearchConfig field.

    Only `CONFIG_FLAGS` and `TASK_FLAGS`: other locals of the caller (an import, --out,
    --resume) are no flags. --space, --preset and --option are parts of `spec`; --task,
    -t and the shorthands parts of `task`; paths are strings."""
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if k in CONFIG_FLAGS and v not in (None, [])}
    flags.update(task_fields(**{k: values.get(k) for k in TASK_FLAGS}))
    flags.update(table_fields(*(values.get(k) for k in TABLE_FLAGS)))
    spec = {key: flags.pop(flag) for flag, key in (("space", "space"), ("preset", "preset")) if flag in flags}
    if "option" in flags:
        spec["options"] = parse_options(flags.pop("option"))
    return {**flags, "spec": spec} if spec else flags


def _merged(base: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    from hwnas.config import merged

    return merged(base, flags)


SWEEP_AXES = ("latency_weights", "target_ratios", "seeds")
SWEEP_EXTRA = ("baselines", "executor", "cpus_per_run", "gpus_per_run")  # SweepConfig fields besides the search and axes
FRONT_FLAGS = {"budget_steps": "--budget-steps", "uniform_candidates": "--uniform-candidates", "narrow": "--narrow",
               "random_per_target": "--random-per-target", "score_data": "--score-data", "score_option": "--score-option",
               "measure_runs": "--measure-runs"}


def _sweep_extra(path: Optional[Path], flags: dict[str, Any]) -> dict[str, Any]:
    """The SweepConfig fields of --baselines and --executor: sweep.yaml's (--config), the flags given on top.
    Baseline flags without --baselines, or --baselines without a budget: one sentence."""
    from hwnas.config import read_settings

    saved: dict[str, Any] = {}
    if path is not None:
        try:
            saved = {k: v for k, v in read_settings(path, SweepConfig).items() if k in SWEEP_EXTRA and v is not None}
        except HwnasError:
            saved = {}  # a search's config.yaml: no sweep settings
    out = {**saved, **{k: flags[k] for k in ("executor", "cpus_per_run", "gpus_per_run") if flags.get(k) is not None}}
    given = [flag for key, flag in FRONT_FLAGS.items() if flags.get(key) not in (None, [])]
    if not flags.get("baselines") and "baselines" not in saved:
        if given:
            raise HwnasError(f"{given[0]} applies to the baselines of a front; add --baselines (and --budget-steps).")
        return out
    front = dict(saved.get("baselines") or {})
    front.update({k: flags[k] for k in ("budget_steps", "random_per_target", "measure_runs") if flags.get(k) is not None})
    for key in ("uniform_candidates", "narrow"):
        if flags.get(key):
            front[key] = [c.strip() for c in flags[key].split(",") if c.strip()]
    if flags.get("score_data"):
        front["score_data"] = list(flags["score_data"])
    if flags.get("score_option"):
        front["score_options"] = parse_options(flags["score_option"], "--score-option", "sigma=[25]")
    if front.get("budget_steps") is None:
        raise HwnasError("--baselines needs a training budget: add --budget-steps B, the weight updates every network "
                         "gets (e.g. --budget-steps 6000).")
    return {**out, "baselines": front}


def _sweep_file(path: Optional[Path]) -> tuple[dict[str, Any], dict[str, list]]:
    """The search settings and sweep axes (mu, target ratios, seeds) of --config: a sweep's sweep.yaml, or a search's config.yaml."""
    from hwnas.config import move_task_fields, read_settings

    if path is None:
        return {}, {}
    try:
        values = read_settings(path, SweepConfig)
    except HwnasError:
        return read_settings(path, SearchConfig), {}
    return dict(move_task_fields(dict(values.get("search") or {}))), {k: list(values[k]) for k in SWEEP_AXES if values.get(k)}


def _default_out(fields: dict[str, Any]) -> Path:
    from hwnas.search_setup import quick_preset as _quick_preset

    spec = fields.get("spec") or {}
    space = spec.get("space") or DEFAULT_SPACE
    preset = spec.get("preset") or ("lut" if fields.get("lut") or fields.get("tables") else _quick_preset(space)) or "default"
    name = f"search-{space}-{preset}-{datetime.now():%Y%m%d-%H%M%S}"
    return Path("runs") / name


def _no_weights(resumed: Optional[Path]) -> str:
    """The error for a sweep without weights; a resumed one says why its folder did not give them."""
    if resumed is None or not resumed.is_dir():
        return "give the latency weights to sweep: --latency-weight 0,0.1,0.3,1 (or latency_weights in --config)."
    started = sorted(p.name.removeprefix("mu-") for p in resumed.glob("mu-*") if p.is_dir())
    return (f"{resumed} holds no sweep.yaml (a sweep writes it as it starts){' but runs for mu ' + ', '.join(started) if started else ''}; "
            "pass the weights it was started with, e.g. --latency-weight " + (",".join(started) or "0,0.1,0.3,1") + ".")


def _parse_list(text: str, flag: str, kind: type, example: str) -> list:
    """A comma-separated list of distinct numbers >= 0 (ratios > 0) given to `flag`, or one line naming it."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HwnasError(f"{flag} {text!r} is not a comma-separated list of {'whole ' if kind is int else ''}numbers; "
                         f"write e.g. {example}.") from None
    low_ok = (lambda v: v > 0) if flag == "--target-ratio" else (lambda v: v >= 0)
    if not values or not all(low_ok(v) for v in values) or len(set(values)) != len(values):
        raise HwnasError(f"{flag} {text!r} needs distinct values {'> 0' if flag == '--target-ratio' else '>= 0'}; "
                         f"write e.g. {example}.")
    return values


def _sweep_search(run_dir: Path, first, fields: dict[str, Any], resume: bool, bars: "_progress", yes: bool):
    """(the first search's config, table, task): the run's own when resuming it, else resolved as `hwnas search` does."""
    from hwnas import api
    from hwnas.latency import LatencyTable
    from hwnas.run import resume_config
    from hwnas.rundir import RunDir
    from hwnas.search_setup import prepare, read_config, resolve_config
    from hwnas.searching import IGNORED_ON_RESUME, MAY_CHANGE_ON_RESUME

    folder = RunDir(run_dir / first.name)
    if resume and folder.has_checkpoint():  # resuming a sweep whose first run holds a checkpoint: its config is the base
        config = resume_config(read_config(folder.root), fields, may_change=MAY_CHANGE_ON_RESUME, ignored=IGNORED_ON_RESUME,
                               root=folder.root)
        return config, LatencyTable.load(folder.lut), None
    config, table = resolve_config(fields)
    return prepare(config, table, None, lambda c: api.cached_table(c, bars.on_table, lambda b, jobs: authorise(b, jobs, yes)))


# -- progress and reporting -----------------------------------------------------------


class _progress:
    """One progress bar at a time (`hwnas.cli.progress`): over the latency-table measurements, then over the
    steps with the loss terms; each opens at its first update (the totals come from the engine)."""

    def __init__(self, enabled: bool):
        from hwnas.cli.progress import shown

        self.enabled = shown(enabled)
        self.kind = self.bar = self.context = self.description = None

    def __enter__(self) -> "_progress":
        return self

    def _show(self, kind: str, total: int | None, **kwargs):
        from hwnas.cli.progress import bar

        if self.kind != kind:
            self.close()
            self.context = bar(total, **kwargs)
            self.bar, self.kind = self.context.__enter__(), kind
        return self.bar

    def on_table(self, m, total: int) -> None:
        if self.enabled:
            shown = self._show("table", total, unit="unit", desc="measuring")
            shown.set_postfix_str(f"{m.name}@{'x'.join(map(str, m.input_shape))} {m.median_ms:.3f} ms", refresh=False)
            shown.update(1)

    def on_run(self, point, index: int, count: int) -> None:
        self.description = f"{point.label} ({index + 1}/{count})"
        if self.kind == "steps":
            self.bar.reset()
            self.bar.set_description(self.description)

    def on_step(self, log) -> None:
        if not self.enabled:
            return
        shown = self._show("steps", log.total_steps, unit="step", desc=self.description)
        shown.n = log.global_step + 1
        post = {"ep": log.epoch, "loss": f"{log.train_loss:.4g}"}
        if log.total is not None:
            post.update(task=f"{log.task:.3f}", lat=f"{log.latency:.3f}", ent=f"{log.entropy:.3f}", ms=f"{log.expected_ms:.1f}")
        else:
            post["phase"] = "warm-up"
        shown.set_postfix(post, refresh=False)
        shown.refresh()

    def close(self, *exc) -> None:
        if self.context is not None:
            self.context.__exit__(*(exc or (None, None, None)))
        self.kind = self.bar = self.context = None

    def __exit__(self, *exc) -> None:
        self.close(*exc)


FILES = ("config.yaml", "lut.csv", "checkpoints/last.pt", "alpha_history.csv", "alpha.png", "entropy.png",
         "metrics.csv", "steps.csv", "arch.json", "summary.json")


def _report(result, as_json: bool) -> None:
    s, run = result.summary, result.run_dir
    files = {name: str(run / name) for name in FILES}
    files.update({f"lut-{name}.csv": str(run / f"lut-{name}.csv") for name in list(s.get("devices") or {})[1:]})
    if as_json:
        typer.echo(json.dumps({"run_dir": str(run), "files": files, **s}, indent=2))
        return
    target = "" if s["target_ms"] is None else f", target {s['target_ms']:g} ms"
    typer.echo(f"\nsearch of {s['space']} ({s['preset'] or 'custom'}) for task {s['task']}, {s['mode']} mode, "
               f"mu={s['latency_weight']:g}{target}: "
               f"{s['epochs_done']} epochs, {s['seconds']:.1f} s in this session")
    typer.echo(f"  {'position':<10} {'candidate':<14} alpha")
    for label, choice in s["choices"].items():
        typer.echo(f"  {label:<10} {choice['candidate']:<14} {choice['alpha']:.3f}")
    t = s["latency_table"]
    typer.echo(f"predicted latency {s['predicted_ms']:.2f} ms vs {s['base']} {s['base_ms']:.2f} ms "
               f"({s['speedup']:.2f}x faster) on {t['device']} ({t['backend']}, {t.get('precision', 'fp32')}, {t['image_size']}px)")
    devices = s.get("devices") or {}
    if len(devices) > 1:
        typer.echo(f"per device ({s['combine']} of the weighted terms):")
        for name, d in devices.items():
            target = "" if d["target_ms"] is None else f", target {d['target_ms']:g} ms"
            typer.echo(f"  {name:<12} {d['predicted_ms']:9.2f} ms = {d['ratio']:.3f} x its base {d['base_ms']:.2f} ms "
                       f"on {d['device']} ({d['backend']}, {d['precision']}; weight {d['weight']:g}{target})")
    if s.get("val"):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in s["val"].items())
        typer.echo(f"derived network: {s['params'] / 1e3:.1f}k params; validation {scores} (BatchNorm recalibrated)")
    if s.get("alpha_entropy") is not None:
        typer.echo(f"mean normalised entropy of alpha: {s['alpha_entropy']:.3f} (0 decisive, 1 uniform)")
    if s.get("commitment"):
        typer.echo(s["commitment"]["verdict"])
    from hwnas.collapse import summary_line  # here: the listing commands import this module without torch

    if (line := summary_line(s)) is not None:
        typer.echo(line)
    typer.echo(f"run directory {run}:")
    for name, path in files.items():
        typer.echo(f"  {name:<20} {path}")
