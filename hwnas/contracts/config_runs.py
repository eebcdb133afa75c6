"""The config models of a searched network's life after the search: `TrainConfig` (`hwnas train`),
`EvalConfig` (`hwnas eval`), `ExportConfig` (`hwnas export`) and `InferConfig` (`hwnas infer`).
Re-exported by `hwnas.contracts.config`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hwnas.contracts.config_fields import MIN_LR, Frozen, SpaceSpec, TaskSpec, check_rates, default_min_lr, move_task_fields


class TrainConfig(Frozen):
    """Fine-tuning or training a derived network (`hwnas train`): the run's config.yaml.

    `arch` is the resolved architecture (from --arch, --uniform or the --init-from run);
    `task` what it trains on (None: the space's default task). Length: `epochs` x
    `steps_per_epoch` steps, or as many as fit in `time_budget` minutes of training
    steps (validation and checkpoints not counted) -- give one.
    AdamW with NAFNet's betas (0.9, 0.9), cosine learning rate from `lr` to `min_lr`.
    """

    spec: SpaceSpec
    arch: dict[str, Any]  # an Architecture dump (kept plain: hwnas.contracts.space imports torch)
    init_from: str | None = None
    accelerator: Literal["cpu", "cuda"] = "cpu"
    task: TaskSpec = TaskSpec()
    epochs: int | None = Field(None, ge=1)
    steps_per_epoch: int = Field(100, ge=1)
    time_budget: float | None = Field(None, gt=0)
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(MIN_LR, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    checkpoint_every: int = Field(50, ge=1)
    recalibration_batches: int = Field(8, ge=0)
    threads: int | None = Field(None, ge=1)  # torch threads; None: every usable core (hwnas.runs.compute)
    prefetch: int = Field(2, ge=0)  # batches made ahead in a background thread (0: on demand)

    @model_validator(mode="before")
    @classmethod
    def _length(cls, values: Any) -> Any:
        values = default_min_lr(move_task_fields(values))
        if isinstance(values, dict):
            if values.get("epochs") is not None and values.get("time_budget") is not None:
                raise ValueError("give either --epochs or --time-budget, not both")
            if values.get("epochs") is None and values.get("time_budget") is None:
                values = {**values, "epochs": 10}
        return values

    @model_validator(mode="after")
    def _rates(self) -> "TrainConfig":
        check_rates(self.lr, self.min_lr)
        return self

    def architecture(self):
        """`arch` as an `hwnas.contracts.space.Architecture`."""
        from hwnas.contracts.space import Architecture

        return Architecture.model_validate(self.arch)


class EvalConfig(Frozen):
    """`hwnas eval`: a model scored on folders by its task's protocol (`Task.evaluate_folder`).

    `task_options` are that protocol's keyword options (e.g. noise levels), checked
    against its signature; the task itself is the one the model was trained for.
    """

    model: str
    data: tuple[str, ...] = Field(min_length=1)
    task_options: dict[str, Any] = {}
    out: str | None = None
    tile: int | None = Field(None, ge=8)
    overlap: int | None = Field(None, ge=0)  # None: min(32, tile // 4)
    accelerator: Literal["cpu", "cuda"] = "cpu"
    threads: int = Field(0, ge=0)


class ExportConfig(Frozen):
    """`hwnas export`: BN folded, ONNX with dynamic H/W or a static (H, W), verified by ONNX Runtime."""

    model: str
    out: str
    static: tuple[int, int] | None = None
    tolerance: float = Field(1e-4, gt=0)
    opset: int = Field(18, ge=13)  # the dynamo exporter's floor (hwnas.deploy.onnx_export); below it the TorchScript one
    cost_size: int = Field(256, ge=8)
    precision: str = "fp32"  # ONNX Runtime's static QDQ quantisation (hwnas.deploy.quantize)
    calibration: str | None = None  # image folder for int8/w8a16; None: the task's sample images
    calibration_count: int = Field(32, ge=1, le=4096)
    # How activation ranges are read from the calibration inputs (hwnas.deploy.quantize). Percentile: measured best of the
    # three on two trained denoisers (benchmarks/results/calibration.csv: 0.17-0.21 dB lost vs MinMax's 0.21-0.25).
    calibration_method: str = "percentile"
    per_channel: bool = True  # 8-bit weights per output channel (else one scale per tensor)
    keep_16bit: int | Literal["auto"] = 0  # int8: the N most sensitive activations at 16 bits; auto: the fewest for min_psnr
    sensitivity: str | None = None  # CSV of each activation's sensitivity (hwnas.deploy.sensitivity)
    min_psnr: float = Field(35.0, gt=0)  # dB between the quantised file and PyTorch (hwnas.deploy.quantized_export)
    check_on: str | None = None  # a backend that runs the written file on its device (qai-hub): PSNR vs PyTorch
    check_device: str | None = None  # its device (default: the backend's)
    check_images: int = Field(4, ge=1, le=64)  # inputs the device check runs

    @field_validator("precision")
    @classmethod
    def _export_precision(cls, v: str) -> str:
        from hwnas.deploy.quantize import QUANTISED, check_precision

        return check_precision(v, ("fp32", *QUANTISED), "hwnas export",
                               fix="export fp32 for fp16: a device's compiler converts it, e.g. --check-on qai-hub")

    @field_validator("calibration_method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        from hwnas.deploy.quantize import CALIBRATION_METHODS

        if v not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {v!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
        return v

    @field_validator("keep_16bit", mode="before")
    @classmethod
    def _count_or_auto(cls, v: Any) -> Any:
        text = str(v).strip().lower()
        if text == "auto":
            return "auto"
        if not text.isdigit():  # negative numbers and words alike
            raise ValueError(f"{v!r} is neither a number of activations (0 or more) nor auto; e.g. --keep-16bit auto")
        return int(text)

    @model_validator(mode="after")
    def _positive_static(self) -> "ExportConfig":
        if self.static is not None and min(self.static) < 1:
            raise ValueError("a static shape needs positive height and width, e.g. --static 256x256")
        quantised_only = {"--calibration": self.calibration is not None, "--sensitivity": self.sensitivity is not None,
                          "--calibration-method": self.calibration_method != type(self).model_fields["calibration_method"].default,
                          "--per-tensor": not self.per_channel, "--keep-16bit": self.keep_16bit != 0}
        for flag, given in quantised_only.items():
            if given and self.precision == "fp32":
                raise ValueError(f"{flag} applies to a quantised export; add --precision int8 (or w8a16)")
        if self.keep_16bit != 0 and self.precision != "int8":
            raise ValueError(f"--keep-16bit keeps int8 activations at 16 bits, and {self.precision} has no 8-bit activations; "
                             "use it with --precision int8")
        return self


class InferConfig(Frozen):
    """`hwnas infer` (alias `hwnas denoise`): one input file through a model into one output file, by its task."""

    model: str
    input: str
    output: str
    tile: int | None = Field(None, ge=8)
    overlap: int | None = Field(None, ge=0)  # None: min(32, tile // 4)
    accelerator: Literal["cpu", "cuda"] = "cpu"
    threads: int = Field(0, ge=0)


DenoiseConfig = InferConfig  # the name before `hwnas infer` ran any task

