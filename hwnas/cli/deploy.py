"""`hwnas train`, `hwnas eval`, `hwnas export`, `hwnas denoise`: from a search result to a deployed model."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from hwnas.cli.common import JsonOpt, OptionalStrList, OptionOpt, PrefetchOpt, PresetOpt, TorchThreadsOpt, bounds, parse_level
from hwnas.config import EvalConfig, ExportConfig, TrainConfig
from hwnas.errors import HwnasError

log = logging.getLogger(__name__)

AcceleratorOpt = typer.Option("cpu", "--accelerator", help="Where PyTorch computes: cpu or cuda.")
ModelOpt = typer.Option(..., "--model", help="model.pt (or a checkpoint) from `hwnas train`, or an ONNX file from `hwnas export`.")
TileOpt = typer.Option(None, "--tile", help=f"Run in overlapping tiles of at most N x N pixels (bounded memory); default: whole images. {bounds(EvalConfig, 'tile')}")
OverlapOpt = typer.Option(None, "--overlap", help=f"Margin in pixels each tile sees beyond the part it keeps (default min(32, tile/4)). {bounds(EvalConfig, 'overlap')}")
ThreadsOpt = typer.Option(0, "--threads", help=f"ONNX Runtime intra-op threads (0: its default). {bounds(EvalConfig, 'threads')}")


def _space_spec(space: Optional[str], preset: Optional[str], option: OptionalStrList):
    """A SpaceSpec if any of --space/--preset/--option was given, else None (taken from the run or arch)."""
    from hwnas.config import SpaceSpec, parse_options

    if space is None and preset is None and not option:
        return None
    return SpaceSpec(space=space or "nafnet-unet", preset=preset, options=parse_options(option))


def _emit(as_json: bool, report: dict, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for line in lines:
            typer.echo(line)


def _file_task(spec):
    """The space's default task, built only for its file hooks (evaluate_folder, infer_file).

    Its INFO log about its own training data is silenced: it is not the data in use here.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        return spec.create().task()
    finally:
        logging.disable(previous)


# -- train -----------------------------------------------------------------------------

def train(
    out: Path = typer.Option(..., "--out", help="Run directory: config.yaml, arch.json, checkpoints/, metrics.csv, model.pt."),
    arch: Optional[Path] = typer.Option(None, "--arch", help="Architecture to train (arch.json from `hwnas search`)."),
    uniform: Optional[str] = typer.Option(None, "--uniform", help="Train a uniform network of this candidate, e.g. naf (the NAFNet baseline)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="A search run: inherit the chosen candidates' super-net weights (and its arch.json unless --arch/--uniform)."),
    space: Optional[str] = typer.Option(None, "--space", help="Search space (default: from --init-from or the architecture)."),
    preset: Optional[str] = PresetOpt,
    option: OptionalStrList = OptionOpt,
    data: Optional[str] = typer.Option(None, "--data", help="Training images: a folder, or one with noisy/ and clean/ subfolders (default: the task's sample images)."),
    crop: Optional[int] = typer.Option(None, "--crop", help=f"Training crop side in pixels (default: the preset's). {bounds(TrainConfig, 'crop')}"),
    sigma: Optional[str] = typer.Option(None, "--sigma", help="Training noise level in 0-255 units, or a range LOW,HIGH drawn per crop (blind denoising), for tasks that add noise (default 25)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Epochs of --steps-per-epoch steps (default 10). {bounds(TrainConfig, 'epochs')}"),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", help=f"Steps per epoch (default 100). {bounds(TrainConfig, 'steps_per_epoch')}"),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help=f"Train for this many minutes of training steps instead of --epochs (equal-cost baselines). {bounds(TrainConfig, 'time_budget')}"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Crops per step (default 8). {bounds(TrainConfig, 'batch_size')}"),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"Peak learning rate of the cosine schedule (default 1e-3). {bounds(TrainConfig, 'lr')}"),
    seed: Optional[int] = typer.Option(None, "--seed", help=f"Seed for weights and batches (default 0). {bounds(TrainConfig, 'seed')}"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help=f"Steps between checkpoints (default 50; also each epoch). {bounds(TrainConfig, 'checkpoint_every')}"),
    accelerator: Optional[str] = typer.Option(None, "--accelerator", help="Where training computes: cpu or cuda (default cpu)."),
    threads: Optional[int] = TorchThreadsOpt, prefetch: Optional[int] = PrefetchOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
    as_json: bool = JsonOpt,
) -> None:
    """Train a derived network: fine-tune a search result, or train a baseline under the same budget.

    Examples:
      hwnas train --init-from runs/search --out runs/ft --epochs 20
      hwnas train --preset tiny --uniform naf --data ../shared/datasets/CBSD432 --time-budget 5 --out runs/naf

    Data parallel on N GPUs (or CPU processes): torchrun --nproc_per_node N -m hwnas train ... (--batch-size is the global batch; only rank 0 writes and prints).
    """
    from hwnas import distributed
    from hwnas import train as training
    from hwnas.space import Architecture

    settings = dict(data=data, crop=crop, sigma=parse_level(sigma), epochs=epochs, steps_per_epoch=steps_per_epoch,
                    time_budget=time_budget, batch_size=batch_size, lr=lr, seed=seed,
                    checkpoint_every=checkpoint_every, accelerator=accelerator, threads=threads, prefetch=prefetch)
    architecture = Architecture.load(arch) if arch is not None else None
    with distributed.session():  # torchrun: data parallel, only rank 0 writes and prints
        config = training.plan(out, resume=resume, spec=_space_spec(space, preset, option), arch=architecture,
                               uniform=uniform, init_from=init_from, **settings)
        with _TrainBar() as bar:
            show = distributed.is_main()
            result = training.train(config, out, resume=resume, on_step=bar.step if show else None,
                                    on_epoch=bar.epoch if show else None)
        if not distributed.is_main():
            return
    metrics = result["metrics"]
    scores = ", ".join(f"{k.removeprefix('val_')} {v:.4f}" for k, v in metrics.items() if k.startswith("val_"))
    _emit(as_json, result, [f"trained {result['steps']} steps in {result['train_seconds']:.1f} s of training; validation {scores}",
                            f"model: {result['model']}"])


class _TrainBar:
    """The progress bar (`hwnas.cli.progress`): steps (epochs) or seconds (time budget)."""

    def __enter__(self) -> "_TrainBar":
        self.bar = self.context = None
        return self

    def step(self, info) -> None:
        from hwnas.cli.progress import bar

        if self.bar is None:
            total = info.total_steps if info.budget_s is None else round(info.budget_s)
            self.context = bar(total, unit="step" if info.budget_s is None else "s")
            self.bar = self.context.__enter__()
        target = info.global_step if info.budget_s is None else min(round(info.elapsed_s), self.bar.total)
        self.bar.update(target - self.bar.n)
        self.bar.set_postfix(epoch=info.epoch + 1, loss=f"{info.loss:.4g}", lr=f"{info.lr:.2g}", refresh=False)

    def epoch(self, row: dict) -> None:
        from hwnas.cli.progress import note

        scores = " ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
        note(f"epoch {row['epoch']}: loss {row['train_loss']:.4g} {scores}")

    def __exit__(self, *exc) -> None:
        if self.context is not None:
            self.context.__exit__(*exc)


# -- eval ------------------------------------------------------------------------------

def evaluate(
    model: Path = ModelOpt,
    data: list[Path] = typer.Option(..., "--data", help="A folder of test images (or noisy/ + clean/ pairs); repeat for several."),
    sigma: Optional[str] = typer.Option(None, "--sigma", help="Noise levels, comma-separated, for tasks that add noise (default 15,25,50)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the per-image noise (default 0)."),
    save_images: Optional[Path] = typer.Option(None, "--save-images", help="Folder for input | noisy | output images side by side."),
    task_option: OptionalStrList = typer.Option(None, "--task-option", "-t", help="Other task option KEY=VALUE."),
    out: Optional[Path] = typer.Option(None, "--out", help="Summary CSV (per-image rows go beside it); default <model>_eval.csv."),
    tile: Optional[int] = TileOpt,
    overlap: Optional[int] = OverlapOpt,
    accelerator: str = AcceleratorOpt,
    threads: int = ThreadsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Score a model on test folders by its task's protocol; prints a table and writes CSV.

    Example: hwnas eval --model runs/ft/model.pt --data ../shared/datasets/CBSD68 --data ../shared/datasets/Kodak24 --sigma 15,25,50
    """
    from hwnas.config import EvalConfig, build_config, parse_options
    from hwnas.evaluate import evaluate as run_eval, per_sample_path, write_csv
    from hwnas.cli.progress import bar as progress_bar
    from hwnas.inference import model_predictor, open_model

    options = parse_options(task_option)
    options.update({k: v for k, v in {"sigma": sigma, "seed": seed, "save_images": None if save_images is None else str(save_images)}.items() if v is not None})
    out = out or model.with_name(f"{model.stem}_eval.csv")
    cfg = build_config(EvalConfig, model=str(model), data=tuple(str(d) for d in data), task_options=options, out=str(out),
                       tile=tile, overlap=overlap, accelerator=accelerator, threads=threads)
    _check_eval_outputs(cfg, save_images)
    loaded = open_model(cfg.model, cfg.accelerator, cfg.threads)
    task = _file_task(loaded.spec)
    predict = model_predictor(loaded, cfg.tile, cfg.overlap)
    with progress_bar(unit="image", desc="eval", enabled=not as_json) as bar:
        def counted(x):  # one call per image and condition: the bar counts them (their number is the task's)
            y = predict(x)
            bar.update(1)
            return y

        rows, summary = run_eval(task, counted, cfg.data, cfg.task_options, on_folder=lambda f: bar.set_description(Path(f).name))
    write_csv(per_sample_path(cfg.out), rows)
    write_csv(cfg.out, summary)
    report = {"model": cfg.model, "runtime": loaded.runtime, "summary": summary, "csv": cfg.out,
              "per_image_csv": str(per_sample_path(cfg.out))}
    _emit(as_json, report, [*_table(summary), f"({loaded.runtime}; CSV: {cfg.out})"])


def _check_eval_outputs(cfg, save_images: Optional[Path]) -> None:
    """The CSVs and --save-images must not overwrite the model or land in a test folder."""
    from hwnas.evaluate import per_sample_path
    from hwnas.outdir import check_distinct, check_outside

    inputs = {"model given with --model": cfg.model, **{f"data folder {d}": d for d in cfg.data}}
    check_distinct(cfg.out, "--out", inputs)
    check_distinct(per_sample_path(cfg.out), "the per-image CSV of --out", inputs)
    if save_images is not None:
        check_outside(save_images, "--save-images", {f"data folder {d}": d for d in cfg.data})


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["no results"]
    columns = list(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    fmt = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths))  # noqa: E731
    return [fmt(columns), *(fmt(r) for r in cells)]


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# -- export ----------------------------------------------------------------------------

def export(
    model: Path = typer.Option(..., "--model", help="model.pt (or a checkpoint) from `hwnas train`."),
    out: Path = typer.Option(..., "--out", help="The ONNX file to write."),
    static: Optional[str] = typer.Option(None, "--static", help="Fixed input HxW, e.g. 256x256 (NPU compilers such as AI Hub's QNN need it); default: dynamic H and W."),
    tolerance: float = typer.Option(1e-4, "--tolerance", help=f"Largest max-abs difference to PyTorch accepted. {bounds(ExportConfig, 'tolerance')}"),
    opset: int = typer.Option(17, "--opset", help=f"ONNX opset. {bounds(ExportConfig, 'opset')}"),
    as_json: bool = JsonOpt,
) -> None:
    """Export a trained network to ONNX: BatchNorm folded, verified against PyTorch with ONNX Runtime.

    Example: hwnas export --model runs/ft/model.pt --out model.onnx --static 256x256
    """
    from hwnas.config import ExportConfig, build_config
    from hwnas.cost import count_macs, count_params
    from hwnas.export import count_batchnorm, export_model
    from hwnas.inference import onnx_metadata, space_align
    from hwnas.modelfile import load_model
    from hwnas.outdir import check_distinct

    cfg = build_config(ExportConfig, model=str(model), out=str(out), static=_parse_hw(static), tolerance=tolerance, opset=opset)
    if Path(cfg.out).is_dir():
        raise HwnasError(f"--out {cfg.out} is a folder; give a file name such as {Path(cfg.out) / 'model.onnx'}.")
    check_distinct(cfg.out, "--out", {"model given with --model": cfg.model})
    model_file = load_model(cfg.model)
    space, net = model_file.build()
    align = space_align(space)
    channels = space.example_input(8).shape[1]
    report = export_model(net, cfg.out, metadata=onnx_metadata(model_file.spec, model_file.arch, align), in_channels=channels,
                          align=align, static_hw=cfg.static, tolerance=cfg.tolerance, opset=cfg.opset)
    size = cfg.cost_size
    report.update(params=count_params(net), gmacs=count_macs(net, (1, channels, size, size)) / 1e9, cost_size=size,
                  batchnorm_modules=count_batchnorm(net))
    shape = "dynamic HxW" if cfg.static is None else f"static {cfg.static[0]}x{cfg.static[1]}"
    _emit(as_json, report, [
        f"wrote {cfg.out} ({shape}, opset {cfg.opset}, {report['nodes']} nodes)",
        f"parameters {report['params'] / 1e6:.3f} M, {report['gmacs']:.3f} GMACs at {size}x{size}",
        f"BatchNorm: {report['batchnorm_modules']} layers folded, {report['batchnorm_nodes']} BatchNormalization nodes left; "
        f"{report['conv_relu_pairs']} Conv->Relu pairs for the runtime to fuse",
        f"ONNX Runtime vs PyTorch: max abs error {report['max_abs_error']:.3g} (tolerance {cfg.tolerance:g}) "
        f"on {', '.join('x'.join(map(str, s[2:])) for s in report['checked_shapes'])}",
    ])


def _parse_hw(text: Optional[str]) -> Optional[tuple[int, int]]:
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise HwnasError(f"--static {text!r} is not a size; write HxW, e.g. --static 256x256.")
    return (values[0], values[-1])


# -- denoise -----------------------------------------------------------------------------

def denoise(
    input: Path = typer.Argument(..., help="Input image (PNG, JPEG, BMP, TIFF; grayscale, RGBA and 16-bit are converted)."),
    output: Path = typer.Argument(..., help="Output image; the format follows the suffix (.png, .jpg, ...)."),
    model: Path = ModelOpt,
    tile: Optional[int] = TileOpt,
    overlap: Optional[int] = OverlapOpt,
    accelerator: str = AcceleratorOpt,
    threads: int = ThreadsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run a trained network on one image file of any size.

    Example: hwnas denoise --model runs/ft/model.pt photo.jpg clean.png --tile 512
    """
    import time

    from hwnas.config import DenoiseConfig, build_config
    from hwnas.inference import model_predictor, open_model
    from hwnas.outdir import check_distinct

    cfg = build_config(DenoiseConfig, model=str(model), input=str(input), output=str(output), tile=tile,
                       overlap=overlap, accelerator=accelerator, threads=threads)
    if not Path(cfg.input).is_file():
        raise HwnasError(f"input image {cfg.input} does not exist; check the path.")
    check_distinct(cfg.output, "the output", {"input image": cfg.input, "model given with --model": cfg.model})
    loaded = open_model(cfg.model, cfg.accelerator, cfg.threads)
    task = _file_task(loaded.spec)
    start = time.perf_counter()
    report = task.infer_file(model_predictor(loaded, cfg.tile, cfg.overlap), cfg.input, cfg.output)
    report.update(runtime=loaded.runtime, seconds=round(time.perf_counter() - start, 3))
    _emit(as_json, report, [f"wrote {report['output']} ({report.get('width')}x{report.get('height')}, "
                            f"{loaded.runtime}, {report['seconds']:.2f} s)"])


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command(name="eval")(evaluate)
    app.command()(export)
    app.command()(denoise)
