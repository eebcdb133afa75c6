"""The public Python API: seven functions, and the `hwnas` commands are thin layers over them.

    import hwnas

    hwnas.build_table(backend="macs", spec={"preset": "tiny"}, image_size=32, out="tiny.csv")
    found = hwnas.search(lut="tiny.csv", epochs=4, out="runs/s1")     # on the space's default task
    trained = hwnas.train(init_from="runs/s1", epochs=2, out="runs/ft")
    scores = hwnas.evaluate(model=trained.model, data=["photos/"])
    onnx = hwnas.export(model=trained.model, out="ft.onnx")
    net = hwnas.load("ft.onnx")                 # or trained.model; net(x) runs it
    hwnas.predict("ft.onnx", "tiny.csv").total_ms   # the table's latency of a model, with its per-unit sum

Each function takes its command's validated config (`hwnas.contracts.config`: the same fields as
the command's flags and as a run's own config.yaml), or keywords validated into one --
given both, the keywords override the config's fields -- and returns a small result
object. A mistake a user can make ends in one `HwnasError` sentence naming the problem
and the fix. `hwnas` imports this module lazily (`hwnas.search` is this module's
function; the search loop is the module `hwnas.nas.searching`).

Remote device jobs (AI Hub) are submitted only with `yes=True`, or when `approve(backend,
jobs)` returns; the command line asks on a terminal (`hwnas.cli.jobs`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

from pydantic import BaseModel

from hwnas.contracts.config import BuildLutConfig, EvalConfig, ExportConfig, ProfileConfig, SearchConfig, TrainConfig, build_config, merged, plain
from hwnas.contracts.errors import HwnasError, Setting, naming, setting

if TYPE_CHECKING:  # the result types; importing them at run time would load torch with `import hwnas`
    from hwnas.deploy.inference import LoadedModel
    from hwnas.contracts.latency import LatencyTable
    from hwnas.tables.prediction import LatencyPrediction, ModelLike
    from hwnas.nas.searching import SearchResult
    from hwnas.contracts.config import SweepConfig
    from hwnas.nas.sweep import SweepResult
    from hwnas.tables.profile_job import ProfileReport
    from hwnas.runs.training import TrainResult

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
MODEL_GIVEN = Setting("model given as model", "model given with --model")  # an input an output must not overwrite
Approve = Callable[[Any, int], None]  # (backend, jobs) -> None, or raises to refuse


# -- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableResult:
    """What `build_table` did: the table (None on a dry run) at `path`, units in all, missing before, measured."""

    path: Path
    table: Any  # hwnas.contracts.latency.LatencyTable | None
    backend: str
    device: str
    units: int
    missing: int
    jobs: int
    measured: int
    seconds: float


@dataclass(frozen=True)
class EvalResult:
    """`evaluate`'s scores: one summary row per data set and condition, one row per sample, and the CSV files."""

    model: str
    runtime: str
    summary: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    csv: Path
    per_image_csv: Path

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "runtime": self.runtime, "summary": self.summary, "csv": str(self.csv),
                "per_image_csv": str(self.per_image_csv)}


@dataclass(frozen=True)
class ExportResult:
    """The ONNX file written by `export` and its report (shapes checked, error, nodes, parameters, GMACs, ...)."""

    path: Path
    static: tuple[int, int] | None  # the fixed input (H, W), None for dynamic height and width
    tolerance: float
    report: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.report)


# -- the seven functions ----------------------------------------------------------------------------------


def build_table(config: BuildLutConfig | None = None, *, on_progress: Callable[[Any, int], None] | None = None,
                yes: bool = False, approve: Approve | None = None, **fields: Any) -> TableResult:
    """Measure what the latency table of a space lacks (`hwnas build-lut`); see `hwnas.tables.building.build_table`.

    `config.out` None: the per-user cache that `search` reads. `on_progress(measurement,
    total)` after each unit. With `config.dry_run` nothing is measured (`table` is None).
    """
    from hwnas.tables.building import build_table as measure, default_table_path_for, make_backend, plan_build

    config = _config(BuildLutConfig, config, fields)
    backend = make_backend(config.backend, config.backend_options)
    space = config.spec.create()
    path = Path(config.out) if config.out else default_table_path_for(space, backend, config.image_size)
    plan = plan_build(space, config.image_size, backend, path, force=config.force)
    facts = dict(path=path, backend=backend.name, device=backend.device, units=plan.total, missing=len(plan.missing),
                 jobs=plan.jobs)
    if config.dry_run:
        return TableResult(table=None, measured=0, seconds=0.0, **facts)
    if plan.missing:
        (approve or _approver(yes))(backend, plan.jobs)
    start, measured = time.perf_counter(), []

    def progress(m) -> None:
        measured.append(m)
        if on_progress is not None:
            on_progress(m, len(plan.missing))

    table = measure(space, config.image_size, backend, path, force=config.force, on_progress=progress, plan=plan)
    return TableResult(table=table, measured=len(measured), seconds=time.perf_counter() - start, **facts)


def search(config: SearchConfig | None = None, *, out: str | Path, resume: bool = False, table: LatencyTable | None = None,
           on_step: Callable[[Any], None] | None = None, on_table_progress: Callable[[Any, int], None] | None = None,
           yes: bool = False, approve: Approve | None = None, **fields: Any) -> SearchResult:
    """Search an architecture into the run folder `out` (`hwnas search`); returns `hwnas.nas.searching.SearchResult`.

    Keywords are `SearchConfig` fields; `spec` may be given in part ({"preset": "paper"})
    and, with `lut`, space, preset, image size and backend come from the table's sidecar
    (a given value that contradicts it is refused). Without `lut` (or `table`) the
    backend's table is taken from the per-user cache, measured into it first if needed.
    `task` is a task name or {"name", "options"} (default: the space's default task).
    With `resume` and a checkpoint in `out`, the run's own config is used and anything
    given must agree with it, except what may change on resume (`epochs` extends the
    run). `on_step(StepLog)` after every step.
    """
    from hwnas.runs import outdir
    from hwnas.runs.rundir import RunDir
    from hwnas.runs.run import resume_config
    from hwnas.nas.search_setup import prepare, read_config, resolve_config
    from hwnas.nas.searching import IGNORED_ON_RESUME, MAY_CHANGE_ON_RESUME, run_search

    out = Path(out)
    outdir.check(out, "search", resume)  # before a table is measured
    if resume and RunDir(out).has_checkpoint():  # the run's own config and table
        given = merged(config.model_dump(mode="json"), fields) if config is not None else fields
        config = resume_config(read_config(out), given, may_change=MAY_CHANGE_ON_RESUME, ignored=IGNORED_ON_RESUME,
                               root=out)
        return run_search(config, out, None, resume=True, on_step=on_step)
    if config is None:
        config, table_of_lut = resolve_config(fields)
        table = table if table is not None else table_of_lut
    else:
        config = _config(SearchConfig, config, fields)
    config, table, task = prepare(config, table, None, lambda c: cached_table(c, on_table_progress, approve or _approver(yes)))
    return run_search(config, out, table, resume=resume, on_step=on_step, task=task)


def sweep(config: SweepConfig | None = None, *, out: str | Path, resume: bool = False, table: LatencyTable | None = None,
          on_run: Callable[[Any, int, int], None] | None = None, on_step: Callable[[Any], None] | None = None,
          yes: bool = False, approve: Approve | None = None, **fields: Any) -> SweepResult:
    """Searches over mu, latency targets and seeds into `out` (`hwnas sweep`); returns `hwnas.nas.sweep.SweepResult`.

    Keywords are `SweepConfig` fields: `search` (a `SearchConfig` or its fields), the axes
    (`latency_weights`, `target_ratios`, `seeds`), `baselines` (`FrontConfig` fields, e.g.
    {"budget_steps": 6000}: the front of `hwnas.nas.front`) and `executor`. The table is
    `table`, else the search's `lut`, else the per-user cache's, as for `search`.
    `on_run(point, index, count)` before each search, `on_step(StepLog)` after every step.
    """
    from hwnas.contracts.config import SweepConfig
    from hwnas.nas.search_setup import prepare
    from hwnas.nas.sweep import run_sweep

    config = _config(SweepConfig, config, fields)
    search, table, task = prepare(config.search, table, None, lambda c: cached_table(c, None, approve or _approver(yes)))
    config = config.model_copy(update={"search": search})
    return run_sweep(config, out, table, task=task, resume=resume, on_run=on_run, on_step=on_step)


def train(config: TrainConfig | None = None, *, out: str | Path, resume: bool = False,
          on_step: Callable[[Any], None] | None = None, on_epoch: Callable[[dict], None] | None = None,
          **fields: Any) -> TrainResult:
    """Train a derived network into the run folder `out` (`hwnas train`); returns `hwnas.runs.training.TrainResult`.

    Keywords: `TrainConfig` fields, where `arch` may also be an `Architecture` or an
    arch.json path, `spec` a dict, `task` a task name or {"name", "options"}; plus
    `uniform` (a candidate name: the uniform network). Without `spec`/`arch`,
    `init_from` (a search run) gives both, and the task's name. With `resume` and a
    config.yaml in `out`, the run's own config is kept; anything given must agree.
    """
    from hwnas.runs.training import plan, run_training

    if config is None:
        config = plan(out, resume=resume, **_train_inputs(fields))
    elif fields:
        config = _config(TrainConfig, config, fields)
    return run_training(config, out, resume=resume, on_step=on_step, on_epoch=on_epoch)


def evaluate(config: EvalConfig | None = None, *, on_folder: Callable[[str], None] | None = None,
             on_sample: Callable[[], None] | None = None, **fields: Any) -> EvalResult:
    """Score a model on folders by its task's protocol (`hwnas eval`) and write the CSVs.

    The task is the one the model was trained for (`Task.evaluate_folder`);
    `task_options` are that protocol's options (e.g. {"sigma": [15, 25]} for denoising).

    `config.out` None: `<model>_eval.csv` beside the model; per-sample rows go to
    `<out>_per_image.csv`. `on_folder(folder)` before each folder, `on_sample()` after
    each prediction.
    """
    from hwnas.runs.evaluation import evaluate as score, per_sample_path
    from hwnas.runs.rows import write_rows
    from hwnas.contracts.task import file_task

    config = _config(EvalConfig, config, fields)
    if config.out is None:
        model = Path(config.model)
        config = config.model_copy(update={"out": str(model.with_name(f"{model.stem}_eval.csv"))})
    _check_eval_outputs(config)
    model = load(config.model, accelerator=config.accelerator, threads=config.threads, tile=config.tile,
                 overlap=config.overlap)
    task = file_task(model.task, model.spec.space)

    def predict(x):
        y = model(x)
        if on_sample is not None:
            on_sample()
        return y

    rows, summary = score(task, predict, config.data, config.task_options, on_folder=on_folder)
    out, per_sample = Path(config.out), per_sample_path(config.out)
    write_rows(per_sample, rows)
    write_rows(out, summary)
    return EvalResult(config.model, model.runtime, summary, rows, out, per_sample)


def export(config: ExportConfig | None = None, *, yes: bool = False, approve: Approve | None = None,
           **fields: Any) -> ExportResult:
    """Export a trained network to ONNX (`hwnas export`): BatchNorm folded, checked against PyTorch with ONNX Runtime.

    With `check_on` (a backend such as qai-hub) the written file also runs on that
    backend's device (`hwnas.deploy.device_check`); its jobs are submitted as `build_table`'s are."""
    from hwnas.tables.cost import count_macs, count_params
    from hwnas.deploy.inference import onnx_metadata, space_align
    from hwnas.deploy.modelfile import load_model
    from hwnas.deploy.onnx_export import count_batchnorm, export_model
    from hwnas.runs.outdir import check_distinct

    config = _config(ExportConfig, config, fields)
    if Path(config.out).is_dir():
        raise naming(f"{{out}} is a folder; give a file name such as {Path(config.out) / 'model.onnx'}.", out=config.out)
    check_distinct(config.out, setting("out"), {MODEL_GIVEN: config.model})
    if config.sensitivity is not None:
        check_distinct(config.sensitivity, "--sensitivity", {"model given with --model": config.model, "--out file": config.out})
    model_file = load_model(config.model)
    device = None
    if config.check_on is not None:  # refused or approved before anything is written
        from hwnas.deploy.device_check import device_backend, device_check

        device = device_backend(config, approve or _approver(yes))
    space, net = model_file.build()
    align = space_align(space)
    channels = space.example_input(8).shape[1]
    metadata = onnx_metadata(model_file.spec, model_file.arch, align, task=_task_name(model_file), scale=space.scale,
                             output=space.output)

    def export_float(path) -> dict:
        return export_model(net, path, metadata=metadata, in_channels=channels, align=align, static_hw=config.static,
                            tolerance=config.tolerance, opset=config.opset, scale=space.scale, output=space.output)

    if config.precision == "fp32":
        report = export_float(config.out) | {"precision": "fp32"}
    else:
        from hwnas.deploy.quantized_export import export_quantized

        report = export_quantized(net, model_file, space, Path(config.out), config=config, export_float=export_float)
    size = config.cost_size
    report.update(params=count_params(net), gmacs=count_macs(net, (1, channels, size, size)) / 1e9, cost_size=size,
                  batchnorm_modules=count_batchnorm(net))
    if device is not None:
        report["device_check"] = device_check(device, net, model_file, space, config)
    return ExportResult(Path(config.out), config.static, config.tolerance, report)


def load(path: str | Path, *, accelerator: str = "cpu", threads: int = 0, tile: int | None = None,
         overlap: int | None = None) -> LoadedModel:
    """A ready-to-run model from a model.pt (or a training checkpoint) or an ONNX file from `export`.

    Returns `hwnas.deploy.inference.LoadedModel`: call it on a 1 x C x H x W float tensor; it
    also says what it is (`spec`, `arch`, `runtime`) and, for a PyTorch file, holds the
    network (`module`, eval mode). With `tile`, inputs run in overlapping tiles of at most
    tile x tile pixels (bounded memory; `overlap` None: min(32, tile // 4)).
    """
    from hwnas.deploy.inference import model_predictor, open_model

    model = open_model(path, accelerator, threads)
    if tile is None and model.static_hw is None:
        return model
    return replace(model, predict=model_predictor(model, tile, overlap))


def predict(model: ModelLike, table: str | Path | LatencyTable) -> LatencyPrediction:
    """The latency table's prediction for `model` on the table's device (`hwnas profile --lut` compares it
    with a measurement): `LatencyPrediction` with `total_ms` and the per-unit sum (`units`, `by_position()`).

    `model`: an `Architecture` or arch.json of the table's space, a model.pt, an ONNX file from
    `export`, a model from `load`, or a plain network of the table's space (its candidates are
    recognised by structure). `table`: a table's path or a `LatencyTable`. Nothing is measured.
    """
    from hwnas.tables.prediction import predict as table_predict

    return table_predict(model, table)


def profile(config: ProfileConfig | None = None, *, on_result: Callable[[Any], None] | None = None, yes: bool = False,
            approve: Approve | None = None, dry_run: bool = False, **fields: Any) -> ProfileReport:
    """Measure networks end to end and compare them with the latency table's prediction (`hwnas profile`).

    Keywords are `ProfileConfig` fields; `spec` may be given in part and, with `lut`, space,
    preset, image size, backend and its options come from the table's sidecar (a given value
    that contradicts it is refused). Without `lut` the cached table of the same target is
    compared with, if there is one that fits. Exactly one of `arch`, `uniform`, `random`,
    `random_count` or `onnx`. Returns `hwnas.tables.profile_job.ProfileReport` (`to_dict()`:
    the JSON document); `on_result(ProfileResult)` after each network of `random_count`.
    With `dry_run`, everything is checked and nothing measured (the report has no results).
    """
    from hwnas.tables.profile_job import ProfileJob, ProfileReport, resolve_config

    config = resolve_config(fields) if config is None else _config(ProfileConfig, config, fields)
    job = ProfileJob.prepare(config)
    if dry_run:
        return ProfileReport(config, job.space, job.backend, job.table, job.table_source, [])
    (approve or _approver(yes))(job.backend, job.jobs)
    return job.run(on_result)


# -- helpers -------------------------------------------------------------------------------------------------


def _config(model: type[M], config: M | None, fields: Mapping[str, Any]) -> M:
    """`config` (or the model's defaults) with `fields` on top, validated once."""
    if config is None:
        return build_config(model, **{k: plain(v) for k, v in fields.items()})
    if not fields:
        return config
    return build_config(model, **merged(config.model_dump(mode="json"), fields))


def _approver(yes: bool) -> Approve:
    """Remote jobs only with `yes`: a library call never asks."""

    def approve(backend, jobs: int) -> None:
        backend.check_configured()  # a missing token ends here, before anything is submitted
        if jobs > 0 and backend.submits_jobs and not yes:
            raise HwnasError(f"this would submit {jobs} {backend.name} job{'s' if jobs != 1 else ''} on {backend.device}; "
                             "pass yes=True (--yes on the command line) to submit them.")

    return approve


def cached_table(config: SearchConfig, on_progress=None, approve: Approve | None = None):
    """The table `search` uses without `lut`: the backend's table of the space and size from the per-user
    cache, measured into it first if it lacks units (`build_table` with `out` None)."""
    result = build_table(spec=config.spec, image_size=config.image_size, backend=config.backend,
                         backend_options={"device": config.device} if config.device else {}, dry_run=True)
    if not result.missing:
        log.info("latency table: %s", result.path)
    else:
        preset = config.spec.preset or "custom"
        log.info("building the %s latency table of %s (%s) at %dpx on %s: %d units, into %s -- once; later searches reuse it",
                 config.backend, config.spec.space, preset, config.image_size, result.device, result.missing, result.path)
    return build_table(spec=config.spec, image_size=config.image_size, backend=config.backend,
                       backend_options={"device": config.device} if config.device else {}, on_progress=on_progress,
                       approve=approve).table


def _train_inputs(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`train`'s keywords as `hwnas.runs.training.plan` takes them (an arch.json path or dict, a spec dict)."""
    from hwnas.contracts.config import SpaceSpec
    from hwnas.contracts.space import Architecture

    inputs = dict(fields)
    arch, spec = inputs.get("arch"), inputs.get("spec")
    if isinstance(arch, (str, Path)):
        inputs["arch"] = Architecture.load(arch)
    elif isinstance(arch, Mapping):
        inputs["arch"] = Architecture.model_validate(arch)
    if isinstance(spec, Mapping):
        inputs["spec"] = build_config(SpaceSpec, **spec)
    return inputs


def _check_eval_outputs(config: EvalConfig) -> None:
    """The CSVs and the saved images must not overwrite the model or land in a test folder."""
    from hwnas.runs.evaluation import per_sample_path
    from hwnas.runs.outdir import check_distinct, check_outside

    inputs = {MODEL_GIVEN: config.model, **{f"data folder {d}": d for d in config.data}}
    check_distinct(config.out, setting("out"), inputs)
    check_distinct(per_sample_path(config.out), Setting("the per-image CSV of out", "the per-image CSV of --out"), inputs)
    images = config.task_options.get("save_images")
    if images is not None:
        check_outside(images, Setting("task_options['save_images']", "--save-images"), {f"data folder {d}": d for d in config.data})


def _task_name(model_file) -> str:
    """The task a model file was trained for; a file from before tasks were plugins: its space's default."""
    from hwnas.contracts.task import task_class

    return task_class(model_file.task.name, model_file.spec.space).name
