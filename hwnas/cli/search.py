"""`hwnas search` and `hwnas sweep`: differentiable architecture search from the command line.

Thin: flags -> a validated `SearchConfig` -> `hwnas.search.run_search`. Flags default
to None ("not given") so that a table's sidecar (`--lut`) or a resumed run's own
config can fill them, and a given flag that contradicts either is refused.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer

from hwnas.cli.common import JsonOpt, OptionalStrList, OptionOpt, PrefetchOpt, TorchThreadsOpt, bounds, parse_level
from hwnas.cli.jobs import YesOpt
from hwnas.config import SearchConfig, SpaceSpec, SweepConfig, build_config, parse_options
from hwnas.errors import HwnasError

logger = logging.getLogger(__name__)

DEFAULT_SPACE = "nafnet-unet"
DEFAULT_BACKEND = "onnxruntime"
QUICK_PRESET = "tiny"  # used when the space has it and no --preset is given

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
Lut = typer.Option(None, "--lut", help="A latency table built earlier (e.g. on AI Hub); space, preset, image size, backend and device come from its sidecar.")
Data = typer.Option(None, "--data", help="Folder of training images (default: the sample images embedded in scikit-image).")
Epochs = typer.Option(None, "--epochs", help=f"Epochs (default 10), each --steps-per-epoch steps. On --resume, a larger value extends the run. {bounds(SearchConfig, 'epochs')}")
StepsPerEpoch = typer.Option(None, "--steps-per-epoch", help=f"Steps per epoch (default 40). {bounds(SearchConfig, 'steps_per_epoch')}")
Seed = typer.Option(None, "--seed", help=f"Seed of weights, data order and Gumbel samples (default 0). {bounds(SearchConfig, 'seed')}")
Resume = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped (starts fresh, with a warning, if it has no checkpoint).")
Mode = typer.Option(None, "--mode", help="soft (default) or sampled. " + COSTS)
LatencyWeight = typer.Option(None, "--latency-weight", help=f"mu, relative to the task loss (default 0.1; 1.0 with --target-ms). 0 searches for quality alone. {bounds(SearchConfig, 'latency_weight')}")
TargetMs = typer.Option(None, "--target-ms", help=f"Constraint form: penalise only the expected latency above this many ms. {bounds(SearchConfig, 'target_ms')}")
EntropyWeight = typer.Option(None, "--entropy-weight", help=f"lambda0 of the entropy term (default 0.05); 0 turns it off. {bounds(SearchConfig, 'entropy_weight')}")
EntropyGrowth = typer.Option(None, "--entropy-growth", help=f"lambda grows exponentially from lambda0 to lambda0 x this factor over the run's architecture steps, whatever its length (default 100). On --resume --epochs N it re-plans from the current lambda to the same end value at the new end. {bounds(SearchConfig, 'entropy_growth')}")
Warmup = typer.Option(None, "--warmup-epochs", help=f"Weight-only epochs before alpha trains (default: 20% of --epochs, rounded, leaving at least one search epoch). {bounds(SearchConfig, 'warmup_epochs')}")
Bilevel = typer.Option(None, "--bilevel/--single-level", help="Logits on a held-out split, first-order (default), or both on the training split.")
ArchLr = typer.Option(None, "--arch-lr", help=f"Adam learning rate of the logits (default: 10 / architecture steps, at least 0.02, so any run length can commit). {bounds(SearchConfig, 'arch_lr')}")
Lr = typer.Option(None, "--lr", help=f"AdamW learning rate of the weights (default 0.002). {bounds(SearchConfig, 'lr')}")
BatchSize = typer.Option(None, "--batch-size", help=f"Crops per step (default 8). {bounds(SearchConfig, 'batch_size')}")
Crop = typer.Option(None, "--crop", help=f"Training crop size in pixels (default: the preset's, 32 for tiny). {bounds(SearchConfig, 'crop')}")
Sigma = typer.Option(None, "--sigma", help="Gaussian noise level in 0-255 units, or a range LOW,HIGH drawn per crop (blind denoising) (default: the task's, 25; >= 0).")
Temperature = typer.Option(None, "--temperature", help=f"T in alpha = softmax(phi / T) (default 1). {bounds(SearchConfig, 'temperature')}")
CheckpointEvery = typer.Option(None, "--checkpoint-every", help=f"Also checkpoint every N steps within an epoch (default 20). {bounds(SearchConfig, 'checkpoint_every')}")

# flag name -> SearchConfig field, for the flags that map one to one
FIELDS = {
    "image_size": "image_size", "backend": "backend", "device": "device", "accelerator": "accelerator",
    "data": "data", "epochs": "epochs", "steps_per_epoch": "steps_per_epoch", "seed": "seed", "mode": "mode",
    "latency_weight": "latency_weight", "target_ms": "target_ms", "entropy_weight": "entropy_weight",
    "entropy_growth": "entropy_growth", "warmup_epochs": "warmup_epochs", "bilevel": "bilevel", "arch_lr": "arch_lr",
    "lr": "lr", "batch_size": "batch_size", "crop": "crop", "sigma": "sigma", "temperature": "temperature",
    "checkpoint_every": "checkpoint_every", "threads": "threads", "prefetch": "prefetch",
}


def search(
    space: Optional[str] = Space, preset: Optional[str] = Preset, option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSize, backend: Optional[str] = Backend, device: Optional[str] = Device,
    accelerator: Optional[str] = Accelerator, lut: Optional[Path] = Lut, data: Optional[Path] = Data,
    epochs: Optional[int] = Epochs, steps_per_epoch: Optional[int] = StepsPerEpoch, seed: Optional[int] = Seed,
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/search-<space>-<preset>-<time>)."),
    resume: bool = Resume, as_json: bool = JsonOpt, yes: bool = YesOpt,
    mode: Optional[str] = Mode, latency_weight: Optional[float] = LatencyWeight, target_ms: Optional[float] = TargetMs,
    entropy_weight: Optional[float] = EntropyWeight, entropy_growth: Optional[float] = EntropyGrowth,
    warmup_epochs: Optional[int] = Warmup, bilevel: Optional[bool] = Bilevel, arch_lr: Optional[float] = ArchLr,
    lr: Optional[float] = Lr, batch_size: Optional[int] = BatchSize, crop: Optional[int] = Crop,
    sigma: Optional[str] = Sigma, temperature: Optional[float] = Temperature,
    checkpoint_every: Optional[int] = CheckpointEvery,
    threads: Optional[int] = TorchThreadsOpt, prefetch: Optional[int] = PrefetchOpt,
) -> None:
    """Search an architecture: train a super-net's weights and per-position logits, derive argmax alpha.

    Objective: task loss / its value after warm-up + mu * expected latency (normalised: the all-base network = 1) + lambda(t) * mean normalised entropy of alpha.

    Modes: soft (the paper's) runs all K candidates at every position each step, about K times the compute and memory of one network; sampled (straight-through Gumbel) runs one sampled candidate per position, about the cost of one network.

    Without --lut, the ONNX Runtime table of this space at --image-size is taken from the cache, or measured into it first.

    Examples:

      hwnas search --space nafnet-unet

      hwnas search --preset paper --lut sm8650.csv --mode sampled --latency-weight 0.3 --out runs/s1

      hwnas search --out runs/s1 --resume

    Data parallel on N GPUs (or CPU processes): torchrun --nproc_per_node N -m hwnas search ... (--batch-size is the global batch; only rank 0 writes and prints).
    """
    flags = _given(locals())
    from hwnas import distributed

    with distributed.session():
        show = not as_json and distributed.is_main()
        run_dir = distributed.from_main(lambda: out or _default_out(flags))  # one name for all ranks
        prepared = prepare(flags, run_dir, resume, progress=show, yes=yes)
        if prepared is None:  # resuming: the run's own config and table
            config = resumed_config(run_dir, flags)
            result = _run(config, run_dir, None, None, resume=True, progress=show)
        else:
            config, table, task = prepared
            result = _run(config, run_dir, table, task, resume=resume, progress=show)
        if distributed.is_main():
            _report(result, as_json)


def sweep(
    latency_weight: str = typer.Option(..., "--latency-weight", help="Comma-separated mu values, e.g. 0,0.1,0.3,1."),
    space: Optional[str] = Space, preset: Optional[str] = Preset, option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSize, backend: Optional[str] = Backend, device: Optional[str] = Device,
    accelerator: Optional[str] = Accelerator, lut: Optional[Path] = Lut, data: Optional[Path] = Data,
    epochs: Optional[int] = Epochs, steps_per_epoch: Optional[int] = StepsPerEpoch, seed: Optional[int] = Seed,
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep folder: one run per mu plus sweep.csv and pareto.png (default runs/sweep-<time>)."),
    resume: bool = typer.Option(False, "--resume", help="Reuse finished searches in --out and continue an interrupted one."),
    as_json: bool = JsonOpt, yes: bool = YesOpt,
    mode: Optional[str] = Mode, target_ms: Optional[float] = TargetMs,
    entropy_weight: Optional[float] = EntropyWeight, entropy_growth: Optional[float] = EntropyGrowth,
    warmup_epochs: Optional[int] = Warmup, bilevel: Optional[bool] = Bilevel, arch_lr: Optional[float] = ArchLr,
    lr: Optional[float] = Lr, batch_size: Optional[int] = BatchSize, crop: Optional[int] = Crop,
    sigma: Optional[str] = Sigma, temperature: Optional[float] = Temperature,
    checkpoint_every: Optional[int] = CheckpointEvery,
    threads: Optional[int] = TorchThreadsOpt, prefetch: Optional[int] = PrefetchOpt,
) -> None:
    """Trade-off sweep: one search per latency weight mu, then predicted latency vs validation PSNR.

    Writes <out>/mu-<mu>/ (a full search run each), sweep.csv and pareto.png (the Pareto front). Takes the search flags; each search costs what `hwnas search` does.

    Example:

      hwnas sweep --space nafnet-unet --latency-weight 0,0.1,0.3,1 --epochs 6 --out runs/sweep
    """
    flags = _given(locals())  # first: names imported below would join locals()
    from hwnas.sweep import check_sweep_dir, run_name, run_sweep

    weights = _parse_weights(flags.pop("latency_weight"))
    run_dir = out or Path("runs") / f"sweep-{datetime.now():%Y%m%d-%H%M%S}"
    check_sweep_dir(run_dir, weights, resume)
    config, table, task = prepare({**flags, "latency_weight": weights[0]}, run_dir / run_name(weights[0]), resume,
                                  progress=not as_json, check_out=False, yes=yes) or (None, None, None)
    if config is None:  # resuming a sweep whose first run holds a checkpoint: that run's config is the base
        config = resumed_config(run_dir / run_name(weights[0]), {**flags, "latency_weight": weights[0]})
        table = _load_table(run_dir / run_name(weights[0]) / "lut.csv")
    sweep_config = build_config(SweepConfig, search=config, latency_weights=tuple(weights))
    with _progress(config, not as_json) as (on_step, start_run):
        result = run_sweep(sweep_config, run_dir, table, task=task, resume=resume, on_step=on_step, on_run=start_run)
    if as_json:
        typer.echo(json.dumps({"out": str(result.out), "table": str(result.table), "plot": str(result.plot), "runs": result.rows}, indent=2))
        return
    typer.echo(f"{'mu':>6}  {'predicted ms':>12}  {'speedup':>7}  {'val PSNR':>8}  pareto  run")
    for r in result.rows:
        psnr = "-" if r["val_psnr"] is None else f"{r['val_psnr']:.2f}"
        typer.echo(f"{r['latency_weight']:>6g}  {r['predicted_ms']:>12.2f}  {r['speedup']:>6.2f}x  {psnr:>8}  "
                   f"{'*' if r['pareto'] else ' ':^6}  {r['run']}")
    typer.echo(f"table: {result.table}\nplot:  {result.plot}")


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(sweep)


# -- flags -> config ---------------------------------------------------------------


CONFIG_FLAGS = set(FIELDS) | {"space", "preset", "option", "lut"}  # the flags that make a SearchConfig


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The config flags actually passed (typer's None means 'not given'); paths as strings.

    Only `CONFIG_FLAGS`: other locals of the caller (an import, --out, --resume) are no flags."""
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if k in CONFIG_FLAGS and v not in (None, [])}
    if "sigma" in flags:
        flags["sigma"] = parse_level(flags["sigma"])
    return flags


def _default_out(flags: dict[str, Any]) -> Path:
    space = flags.get("space", DEFAULT_SPACE)
    preset = flags.get("preset") or ("lut" if "lut" in flags else _quick_preset(space)) or "default"
    name = f"search-{space}-{preset}-{datetime.now():%Y%m%d-%H%M%S}"
    return Path("runs") / name


def _parse_weights(text: str) -> list[float]:
    try:
        weights = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HwnasError(f"--latency-weight {text!r} is not a comma-separated list of numbers; write e.g. 0,0.1,0.3,1.") from None
    if not weights or any(w < 0 for w in weights) or len(set(weights)) != len(weights):
        raise HwnasError(f"--latency-weight {text!r} needs distinct values >= 0; write e.g. 0,0.1,0.3,1.")
    return weights


def prepare(flags: dict[str, Any], run_dir: Path, resume: bool, progress: bool, check_out: bool = True, yes: bool = False):
    """(config, table, task) for a fresh run, or None when `run_dir` holds a run to resume.

    Checks, in order and before anything is written: the output folder, the table's
    sidecar against the flags, the config, the data; then finds or builds the table.
    """
    from hwnas.distributed import from_main
    from hwnas.rundir import RunDir
    from hwnas.search import accelerator, check_table, task_options

    run = RunDir(run_dir)
    if check_out:
        run.check_writable(resume)
    if resume and run.has_checkpoint():
        return None
    # Data parallel: rank 0 reads (or measures) the table and sends it to the others.
    table = from_main(lambda: _load_table(Path(flags["lut"]))) if "lut" in flags else None
    resolved = _resolve(flags, table)
    config = build_config(SearchConfig, **resolved, **{FIELDS[k]: v for k, v in flags.items() if k in FIELDS and k not in resolved})
    accelerator(config)
    space = config.spec.create()
    task = space.task(**task_options(config))
    if table is None:
        table = from_main(lambda: default_table(space, config, progress, yes))
    config = config.model_copy(update={"device": table.meta.device})
    if "device" in flags:  # the flag may name the target as asked ('cpu') or as recorded ('cpu:<model>')
        table.check(space=space.name, fingerprint=space.fingerprint(), image_size=config.image_size, device=flags["device"])
    check_table(table, space, config)
    return config, table, task


def _resolve(flags: dict[str, Any], table) -> dict[str, Any]:
    """spec (and, from a table's sidecar, image size, backend, lut): given flags that contradict the table are refused."""
    from hwnas.backends.table import TableRequest, resolve_with_table

    options = parse_options(flags.get("option"))
    if table is None:
        space = flags.get("space", DEFAULT_SPACE)
        return {"spec": SpaceSpec(space=space, preset=flags.get("preset") or _quick_preset(space), options=options)}
    request = TableRequest(flags.get("space"), flags.get("preset"), options or None, flags.get("image_size"), flags.get("backend"))
    got = resolve_with_table(table.meta, request, flags["lut"])
    return {"spec": SpaceSpec(space=got.space, preset=got.preset, options=got.space_options or {}),
            "image_size": got.image_size, "backend": got.backend, "lut": str(Path(flags["lut"]).resolve())}


def _quick_preset(space: str) -> str | None:
    from hwnas.plugins import get_space

    return QUICK_PRESET if QUICK_PRESET in get_space(space).presets else None


def resumed_config(run_dir: Path, flags: dict[str, Any]) -> SearchConfig:
    """The run's own config; a given flag that contradicts it is refused (only --epochs may change)."""
    from hwnas.rundir import RunDir
    from hwnas.search import read_config

    saved = read_config(RunDir(run_dir))
    for flag, value in flags.items():
        if flag in ("epochs", "lut", "device", "threads", "prefetch"):  # device: checked against the run's table copy
            continue
        if flag in ("space", "preset"):
            current = getattr(saved.spec, flag)
        elif flag == "option":
            current, value = saved.spec.options, {**saved.spec.options, **parse_options(value)}
        else:
            current = getattr(saved, FIELDS[flag])
        if value != current:
            raise HwnasError(
                f"{run_dir} was searched with --{flag.replace('_', '-')} {current}, not {value}; "
                "omit the flag to resume, or start a new run with another --out."
            )
    changes = {k: flags[k] for k in ("epochs", "threads", "prefetch") if k in flags}  # compute settings never change results
    return saved.model_copy(update=changes)


def _load_table(path: Path):
    from hwnas.latency import LatencyTable

    return LatencyTable.load(path)


def default_table(space, config: SearchConfig, progress: bool, yes: bool = False):
    """The backend's table for this space and image size from the per-user cache, measuring what it lacks first
    (a remote backend's jobs only with --yes or the user's answer: `hwnas.cli.jobs`)."""
    from hwnas.backends.table import build_table, default_table_path, make_backend, plan_build
    from hwnas.cli.jobs import authorise

    backend = make_backend(config.backend, {"device": config.device} if config.device else {})
    path = default_table_path(space, config.backend, backend.device, config.image_size)
    plan = plan_build(space, config.image_size, backend, path)
    if not plan.missing:
        logger.info("latency table: %s", path)
    else:
        authorise(backend, plan.jobs, yes)
        logger.info("building the %s latency table of %s (%s) at %dpx on %s: %d units, into %s -- once; later searches reuse it",
                    config.backend, space.name, space.preset or "custom", config.image_size, backend.device,
                    len(plan.missing), path)
    with _table_progress(progress and bool(plan.missing), len(plan.missing)) as on_progress:
        return build_table(space, config.image_size, backend, path, on_progress=on_progress)


# -- running and reporting -----------------------------------------------------------


def _run(config: SearchConfig, run_dir: Path, table, task, resume: bool, progress: bool):
    from hwnas.search import run_search

    with _progress(config, progress) as (on_step, _):
        return run_search(config, run_dir, table, resume=resume, on_step=on_step, task=task)


class _progress:
    """The progress bar (`hwnas.cli.progress`) over the steps with the loss terms; silent under --json."""

    def __init__(self, config: SearchConfig, enabled: bool):
        self.total = config.epochs * config.steps_per_epoch
        self.enabled = enabled
        self.bar = None

    def __enter__(self):
        from hwnas.cli.progress import bar, shown

        if not shown(self.enabled):
            return None, None
        self.context = bar(self.total, unit="step")
        self.bar = self.context.__enter__()
        return self.on_step, self.on_run

    def on_run(self, mu: float, index: int, count: int) -> None:
        self.bar.reset(total=self.total)
        self.bar.set_description(f"mu={mu:g} ({index + 1}/{count})")

    def on_step(self, log) -> None:
        self.bar.n = log.global_step + 1
        post = {"ep": log.epoch, "loss": f"{log.train_loss:.4g}"}
        if log.total is not None:
            post.update(task=f"{log.task:.3f}", lat=f"{log.latency:.3f}", ent=f"{log.entropy:.3f}", ms=f"{log.expected_ms:.1f}")
        else:
            post["phase"] = "warm-up"
        self.bar.set_postfix(post, refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.context.__exit__(*exc)


class _table_progress:
    """A bar over the latency-table measurements; yields on_progress(measurement) or None."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.bar = enabled, total, None

    def __enter__(self):
        from hwnas.cli.progress import bar, shown

        if not shown(self.enabled):
            return None
        self.context = bar(self.total, unit="unit", desc="measuring")
        self.bar = self.context.__enter__()
        return self.on_progress

    def on_progress(self, m) -> None:
        self.bar.set_postfix_str(f"{m.name}@{'x'.join(map(str, m.input_shape))} {m.median_ms:.3f} ms", refresh=False)
        self.bar.update(1)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.context.__exit__(*exc)


FILES = ("config.yaml", "lut.csv", "checkpoints/last.pt", "alpha_history.csv", "alpha.png", "entropy.png",
         "metrics.csv", "steps.csv", "arch.json", "summary.json")


def _report(result, as_json: bool) -> None:
    s, run = result.summary, result.run_dir
    files = {name: str(run / name) for name in FILES}
    if as_json:
        typer.echo(json.dumps({"run_dir": str(run), "files": files, **s}, indent=2))
        return
    target = "" if s["target_ms"] is None else f", target {s['target_ms']:g} ms"
    typer.echo(f"\nsearch of {s['space']} ({s['preset'] or 'custom'}), {s['mode']} mode, mu={s['latency_weight']:g}{target}: "
               f"{s['epochs_done']} epochs, {s['seconds']:.1f} s in this session")
    typer.echo(f"  {'position':<10} {'candidate':<14} alpha")
    for label, choice in s["choices"].items():
        typer.echo(f"  {label:<10} {choice['candidate']:<14} {choice['alpha']:.3f}")
    t = s["latency_table"]
    typer.echo(f"predicted latency {s['predicted_ms']:.2f} ms vs {s['base']} {s['base_ms']:.2f} ms "
               f"({s['speedup']:.2f}x faster) on {t['device']} ({t['backend']}, {t['image_size']}px)")
    if s.get("val"):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in s["val"].items())
        typer.echo(f"derived network: {s['params'] / 1e3:.1f}k params; validation {scores} (BatchNorm recalibrated)")
    if s.get("alpha_entropy") is not None:
        typer.echo(f"mean normalised entropy of alpha: {s['alpha_entropy']:.3f} (0 decisive, 1 uniform)")
    if s.get("commitment"):
        typer.echo(s["commitment"]["verdict"])
    typer.echo(f"run directory {run}:")
    for name, path in files.items():
        typer.echo(f"  {name:<20} {path}")
