"""`hwnas train`, `hwnas eval`, `hwnas export`, `hwnas infer` (alias `hwnas denoise`): from a search result
to a deployed model.

Thin: flags (over a --config file) -> config fields -> `hwnas.train` / `hwnas.evaluate` /
`hwnas.export` / `hwnas.load` and the model's task (`Task.infer_file`) -> the report. Flags default to None ("not given") so a
--config file (or a resumed run's own config) can fill them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from hwnas.cli.common import (ConfigOpt, JsonOpt, OptionalStrList, OptionOpt, PrefetchOpt, PresetOpt, TaskOptionOpt, TorchThreadsOpt, bounds, settings, task_fields)
from hwnas.cli.jobs import YesOpt, authorise
from hwnas.contracts.config import EvalConfig, ExportConfig, InferConfig, TrainConfig
from hwnas.contracts.errors import HwnasError

log = logging.getLogger(__name__)

AcceleratorOpt = typer.Option(None, "--accelerator", help="Where PyTorch computes: cpu or cuda (default cpu).")
ModelOpt = typer.Option(None, "--model", help="model.pt (or a checkpoint) from `hwnas train`, or an ONNX file from `hwnas export` (or model in --config).")
TileOpt = typer.Option(None, "--tile", help=f"Run in overlapping tiles of at most N x N pixels (bounded memory); default: whole images. {bounds(EvalConfig, 'tile')}")
OverlapOpt = typer.Option(None, "--overlap", help=f"Margin in pixels each tile sees beyond the part it keeps (default min(32, tile/4)). {bounds(EvalConfig, 'overlap')}")
ThreadsOpt = typer.Option(None, "--threads", help=f"ONNX Runtime intra-op threads (default 0: its own choice). {bounds(EvalConfig, 'threads')}")


def _spec_flags(space: Optional[str], preset: Optional[str], option: OptionalStrList) -> dict:
    """The parts of the space spec given as flags (--space, --preset, --option)."""
    from hwnas.contracts.config import parse_options

    given = {"space": space, "preset": preset, "options": parse_options(option) if option else None}
    return {k: v for k, v in given.items() if v is not None}


def _given(values: dict) -> dict:
    """The flags actually passed (None: not given), paths as strings."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items() if v is not None}


def _emit(as_json: bool, report: dict, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for line in lines:
            typer.echo(line)


# -- train -----------------------------------------------------------------------------

def train(
    out: Path = typer.Option(..., "--out", help="Run directory: config.yaml, arch.json, checkpoints/, metrics.csv, model.pt."),
    arch: Optional[Path] = typer.Option(None, "--arch", help="Architecture to train (arch.json from `hwnas search`)."),
    uniform: Optional[str] = typer.Option(None, "--uniform", help="Train a uniform network of this candidate, e.g. naf (the NAFNet baseline)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="A search run: inherit the chosen candidates' super-net weights (and its arch.json unless --arch/--uniform)."),
    space: Optional[str] = typer.Option(None, "--space", help="Search space (default: from --init-from or the architecture)."),
    preset: Optional[str] = PresetOpt,
    option: OptionalStrList = OptionOpt,
    task: Optional[str] = typer.Option(None, "--task", help="Task to train on (see `hwnas tasks`); default: the --init-from run's, else the space's."),
    task_option: OptionalStrList = TaskOptionOpt,
    data: Optional[str] = typer.Option(None, "--data", help="Shorthand for -t data=DIR: training images, a folder or one with noisy/ and clean/ subfolders (default: the task's sample images)."),
    crop: Optional[int] = typer.Option(None, "--crop", help="Shorthand for -t crop=N: training crop side in input pixels (default: the preset's; its range is the task's, see `hwnas tasks`)."),
    sigma: Optional[str] = typer.Option(None, "--sigma", help="Shorthand for -t sigma=...: training noise level in 0-255 units, or a range LOW,HIGH drawn per crop (blind denoising), for tasks that add noise (default 25)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Epochs of --steps-per-epoch steps (default 10). {bounds(TrainConfig, 'epochs')}"),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", help=f"Steps per epoch (default 100). {bounds(TrainConfig, 'steps_per_epoch')}"),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help=f"Train for this many minutes of training steps instead of --epochs (equal-cost baselines). {bounds(TrainConfig, 'time_budget')}"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"Crops per step (default 8). {bounds(TrainConfig, 'batch_size')}"),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"Peak learning rate of the cosine schedule (default 1e-3). {bounds(TrainConfig, 'lr')}"),
    min_lr: Optional[float] = typer.Option(None, "--min-lr", help=f"Learning rate at the run's end (default 1e-6); --min-lr equal to --lr keeps it constant. {bounds(TrainConfig, 'min_lr')}"),
    seed: Optional[int] = typer.Option(None, "--seed", help=f"Seed for weights and batches (default 0). {bounds(TrainConfig, 'seed')}"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", help=f"Steps between checkpoints (default 50; also each epoch). {bounds(TrainConfig, 'checkpoint_every')}"),
    accelerator: Optional[str] = typer.Option(None, "--accelerator", help="Where training computes: cpu or cuda (default cpu)."),
    threads: Optional[int] = TorchThreadsOpt, prefetch: Optional[int] = PrefetchOpt,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
    as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Train a derived network: fine-tune a search result, or train a baseline under the same budget.

    Examples:
      hwnas train --init-from runs/search --out runs/ft --epochs 20
      hwnas train --preset tiny --uniform naf --data ../shared/datasets/CBSD432 --time-budget 5 --out runs/naf
      hwnas train --preset tiny --uniform naf --task sr2 --epochs 2 --out runs/sr
      hwnas train --config runs/ft/config.yaml --seed 1 --out runs/ft-seed1

    Data parallel on N GPUs (or CPU processes): torchrun --nproc_per_node N -m hwnas train ... (--batch-size is the global batch; only rank 0 writes and prints).
    """
    fields = settings(config, TrainConfig, {**_given(dict(
        epochs=epochs, steps_per_epoch=steps_per_epoch, time_budget=time_budget, batch_size=batch_size, lr=lr, min_lr=min_lr, seed=seed,
        checkpoint_every=checkpoint_every, accelerator=accelerator, threads=threads, prefetch=prefetch, init_from=init_from)),
        **task_fields(task, task_option, data=data, crop=crop, sigma=sigma)})
    for length, other in (("epochs", "time_budget"), ("time_budget", "epochs")):  # a length flag replaces the file's
        if locals()[length] is not None and locals()[other] is None:
            fields.pop(other, None)
    spec = _spec_flags(space, preset, option)
    if spec:
        fields["spec"] = {**fields.get("spec", {}), **spec}
    if arch is not None or uniform is not None:  # the flag replaces the file's architecture
        fields.pop("arch", None)
        fields.update(arch=None if arch is None else str(arch), uniform=uniform)
    import hwnas
    from hwnas.runs import distributed

    with distributed.session():  # torchrun: data parallel, only rank 0 writes and prints
        with _TrainBar() as bar:
            show = distributed.is_main()
            result = hwnas.train(out=out, resume=resume, on_step=bar.step if show else None,
                                 on_epoch=bar.epoch if show else None, **fields)
        if not distributed.is_main():
            return
    scores = ", ".join(f"{k.removeprefix('val_')} {v:.4f}" for k, v in result.metrics.items() if k.startswith("val_"))
    _emit(as_json, result.as_dict(), [f"trained {result.steps} steps in {result.train_seconds:.1f} s of training; validation {scores}",
                                      f"model: {result.model}"])


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
    model: Optional[Path] = ModelOpt,
    data: OptionalStrList = typer.Option(None, "--data", help="A folder of test images (or noisy/ + clean/ pairs); repeat for several (or data in --config)."),
    sigma: Optional[str] = typer.Option(None, "--sigma", help="Noise levels, comma-separated, for tasks that add noise (default 15,25,50)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the per-image noise (default 0)."),
    save_images: Optional[Path] = typer.Option(None, "--save-images", help="Folder for input | noisy | output images side by side."),
    task_option: OptionalStrList = typer.Option(None, "--task-option", "-t", help="Other option KEY=VALUE of the model's task's evaluation protocol."),
    out: Optional[Path] = typer.Option(None, "--out", help="Summary CSV (per-image rows go beside it); default <model>_eval.csv."),
    tile: Optional[int] = TileOpt,
    overlap: Optional[int] = OverlapOpt,
    accelerator: Optional[str] = AcceleratorOpt,
    threads: Optional[int] = ThreadsOpt,
    as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Score a model on test folders by its task's protocol; prints a table and writes CSV.

    Example: hwnas eval --model runs/ft/model.pt --data ../shared/datasets/CBSD68 --data ../shared/datasets/Kodak24 --sigma 15,25,50
    """
    import hwnas
    from hwnas.cli.progress import bar as progress_bar
    from hwnas.contracts.config import parse_options

    options = parse_options(task_option, flag="-t", example="seed=1")
    options.update(_given({"sigma": sigma, "seed": seed, "save_images": save_images}))
    fields = settings(config, EvalConfig, _given(dict(model=model, data=data, out=out, tile=tile, overlap=overlap,
                                                      accelerator=accelerator, threads=threads)))
    fields["task_options"] = {**fields.get("task_options", {}), **options}
    with progress_bar(unit="image", desc="eval", enabled=not as_json) as bar:  # one update per image and condition
        result = hwnas.evaluate(on_folder=lambda f: bar.set_description(Path(f).name), on_sample=lambda: bar.update(1),
                                **fields)
    _emit(as_json, result.as_dict(), [*_table(result.summary), f"({result.runtime}; CSV: {result.csv})"])


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
    model: Optional[Path] = typer.Option(None, "--model", help="model.pt (or a checkpoint) from `hwnas train` (or model in --config)."),
    out: Optional[Path] = typer.Option(None, "--out", help="The ONNX file to write (or out in --config)."),
    static: Optional[str] = typer.Option(None, "--static", help="Fixed input HxW, e.g. 256x256 (NPU compilers such as AI Hub's QNN need it); default: dynamic H and W."),
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help=f"Largest max-abs difference to PyTorch accepted (default 1e-4). {bounds(ExportConfig, 'tolerance')}"),
    opset: Optional[int] = typer.Option(None, "--opset", help=f"ONNX opset (default 18; below 18 the deprecated TorchScript exporter writes it). {bounds(ExportConfig, 'opset')}"),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32 (default), int8 or w8a16: int8/w8a16 write a statically quantised ONNX (QDQ, per-channel 8-bit weights; 8- or 16-bit activations)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Image folder to calibrate int8/w8a16 activations on (inputs made by the model's task); default: the task's sample images, with a warning."),
    calibration_count: Optional[int] = typer.Option(None, "--calibration-count", help=f"Calibration inputs (default 32). {bounds(ExportConfig, 'calibration_count')}"),
    calibration_method: Optional[str] = typer.Option(None, "--calibration-method", help="How activation ranges are read from the calibration inputs: percentile (default: 99.999th of absolute values; the least PSNR lost in benchmarks/results/calibration.csv), minmax or entropy (ONNX Runtime's CalibrationMethod)."),
    per_channel: Optional[bool] = typer.Option(None, "--per-channel/--per-tensor", help="8-bit weights with a scale per output channel (default) or one per tensor."),
    keep_16bit: Optional[str] = typer.Option(None, "--keep-16bit", help="int8: keep the N most sensitive activations at 16 bits (mixed precision), or auto: the fewest that reach --min-psnr (default 0)."),
    sensitivity: Optional[Path] = typer.Option(None, "--sensitivity", help="Write each activation's sensitivity to this CSV: the output PSNR with only that tensor quantised, most sensitive first."),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help=f"Lowest PSNR (dB) between the quantised file's outputs and PyTorch's on held-out inputs; below it nothing is written (default 35). {bounds(ExportConfig, 'min_psnr')}"),
    check_on: Optional[str] = typer.Option(None, "--check-on", help="Also run the written file on this backend's device and print the PSNR of its outputs against PyTorch's: qai-hub (2 jobs: compile and inference on --check-device)."),
    check_device: Optional[str] = typer.Option(None, "--check-device", help="Device of --check-on (default: the backend's, sm8650 for qai-hub)."),
    check_images: Optional[int] = typer.Option(None, "--check-images", help=f"Held-out inputs the device check runs (default 4). {bounds(ExportConfig, 'check_images')}"),
    yes: bool = YesOpt,
    as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Export a trained network to ONNX: BatchNorm folded, verified against PyTorch with ONNX Runtime.

    Example: hwnas export --model runs/ft/model.pt --out model.onnx --static 256x256

    Quantised: hwnas export --model runs/ft/model.pt --out model-int8.onnx --precision int8 --calibration photos/

    Mixed precision: ... --precision int8 --min-psnr 42 --keep-16bit auto --sensitivity sensitivity.csv

    Checked on a phone: ... --static 256x256 --precision int8 --check-on qai-hub --check-device sm8650
    """
    import hwnas

    fields = settings(config, ExportConfig, _given(dict(model=model, out=out, static=_parse_hw(static), tolerance=tolerance,
                                                        opset=opset, precision=precision,
                                                        calibration=str(calibration) if calibration else None,
                                                        calibration_count=calibration_count, min_psnr=min_psnr,
                                                        calibration_method=calibration_method, per_channel=per_channel,
                                                        keep_16bit=keep_16bit, sensitivity=sensitivity,
                                                        check_on=check_on, check_device=check_device,
                                                        check_images=check_images)))
    result = hwnas.export(**fields, approve=lambda backend, jobs: authorise(backend, jobs, yes))
    report = result.report
    shape = "dynamic HxW" if result.static is None else f"static {result.static[0]}x{result.static[1]}"
    size = report["cost_size"]
    _emit(as_json, result.as_dict(), [
        f"wrote {result.path} ({shape}, opset {report['opset']}, {report['nodes']} nodes)",
        f"parameters {report['params'] / 1e6:.3f} M, {report['gmacs']:.3f} GMACs at {size}x{size}",
        f"BatchNorm: {report['batchnorm_modules']} layers folded, {report['batchnorm_nodes']} BatchNormalization nodes left; "
        f"{report['conv_relu_pairs']} Conv->Relu pairs for the runtime to fuse",
        f"ONNX Runtime vs PyTorch: max abs error {report['max_abs_error']:.3g} (tolerance {result.tolerance:g}) "
        f"on {', '.join('x'.join(map(str, s[2:])) for s in report['checked_shapes'])}"
        + (" (the float file, before quantisation)" if report["precision"] != "fp32" else ""),
        *_quantised_lines(report),
        *_device_lines(report),
    ])


def _device_lines(report: dict) -> list[str]:
    check = report.get("device_check")
    if not check:
        return []
    return [f"on {check['device']} ({check['backend']}, {check['precision']}) vs PyTorch: output PSNR "
            f"{check['overall_psnr_db']:.2f} dB on {check['images']} held-out inputs "
            f"(jobs {check['compile_job']}, {check['inference_job']})"]


def _quantised_lines(report: dict) -> list[str]:
    if report["precision"] == "fp32":
        return []
    shape = "x".join(map(str, report["calibration_shape"][1:]))
    weights = "per channel" if report["per_channel"] else "per tensor"
    lines = [f"{report['precision']}: calibrated ({report['calibration_method']}, weights {weights}) on "
             f"{report['calibration_count']} inputs of {shape} from {report['calibration']}; {report['quant_nodes']} QuantizeLinear nodes"]
    if "weights_psnr_db" in report:
        top = ", ".join(f"{r['producer']} {r['psnr_db']:.1f} dB" for r in report["most_sensitive"][:3])
        lines.append(f"sensitivity of {report['activations']} activations (output PSNR with one quantised): most sensitive "
                     f"{top}; 8-bit weights alone {report['weights_psnr_db']:.2f} dB"
                     + (f"; all in {report['sensitivity']}" if "sensitivity" in report else ""))
    if report["sixteen_bit"]:
        lines.append(f"kept the {len(report['sixteen_bit'])} most sensitive activations at 16 bits ({report['activations_16bit']} "
                     f"tensors with those that share their scale; all 8-bit: {report['quant_psnr_8bit_db']:.2f} dB)")
    lines.append(f"{report['precision']} vs PyTorch: output PSNR {report['quant_psnr_db']:.2f} dB on {report['check_count']} "
                 f"held-out inputs (--min-psnr {report['min_psnr']:g})")
    return lines


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


# -- infer (denoise) -----------------------------------------------------------------------

def infer(
    input: Path = typer.Argument(..., help="Input image (PNG, JPEG, BMP, TIFF; grayscale, RGBA and 16-bit are converted)."),
    output: Path = typer.Argument(..., help="Output image; the format follows the suffix (.png, .jpg, ...)."),
    model: Optional[Path] = ModelOpt,
    tile: Optional[int] = TileOpt,
    overlap: Optional[int] = OverlapOpt,
    accelerator: Optional[str] = AcceleratorOpt,
    threads: Optional[int] = ThreadsOpt,
    as_json: bool = JsonOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Run a trained network on one image file of any size, as its task does (denoise, upscale x2, ...).

    --tile and --overlap are input pixels; the output is the network's scale times the input.

    Example: hwnas infer --model runs/ft/model.pt photo.jpg clean.png --tile 512
    """
    import time

    import hwnas
    from hwnas.contracts.config import build_config
    from hwnas.runs.outdir import check_distinct
    from hwnas.contracts.task import file_task

    cfg = build_config(InferConfig, **settings(config, InferConfig, _given(dict(
        model=model, input=input, output=output, tile=tile, overlap=overlap, accelerator=accelerator, threads=threads))))
    if Path(cfg.input).is_dir():  # a folder may carry an image's name; "does not exist" would send the user looking elsewhere
        raise HwnasError(f"input image {cfg.input} is a folder; pass one image file (`hwnas eval --data FOLDER` scores a folder).")
    if not Path(cfg.input).is_file():
        raise HwnasError(f"input image {cfg.input} does not exist; check the path.")
    check_distinct(cfg.output, "the output", {"input image": cfg.input, "model given with --model": cfg.model})
    loaded = hwnas.load(cfg.model, accelerator=cfg.accelerator, threads=cfg.threads, tile=cfg.tile, overlap=cfg.overlap)
    start = time.perf_counter()
    report = file_task(loaded.task, loaded.spec.space).infer_file(loaded, cfg.input, cfg.output)
    report.update(runtime=loaded.runtime, seconds=round(time.perf_counter() - start, 3))
    _emit(as_json, report, [f"wrote {report['output']} ({report.get('width')}x{report.get('height')}, "
                            f"{loaded.runtime}, {report['seconds']:.2f} s)"])


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command(name="eval")(evaluate)
    app.command()(export)
    app.command()(infer)
    app.command(name="denoise", help="Alias of `hwnas infer` (its name before tasks other than denoising): run a "
                "trained network on one image file.\n\nExample: hwnas denoise --model runs/ft/model.pt photo.jpg clean.png --tile 512")(infer)
