"""`hwnas build-lut`, `hwnas lut show`, `hwnas profile`: latency tables and the end-to-end check.

Backend flags (--device, --threads, --runs, --warmup, --compute-unit, --target-runtime,
--mode, --qairt-version, --extra-compile-options, --extra-profile-options, and -b KEY=VALUE
for any other field) map onto the chosen backend's Options;
only the flags a user sets are passed, and one the backend does not have is refused.
Given a table (--lut, or an existing --out for build-lut), space, preset, image size,
backend and backend settings come from its sidecar; a flag that contradicts it is
refused.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, Optional

import typer

from hwnas.cli.common import ConfigOpt, JsonOpt, OptionalStrList, OptionOpt, bounds
from hwnas.cli.jobs import YesOpt, authorise
from hwnas.config import BuildLutConfig, ProfileConfig
from hwnas.errors import HwnasError

DEFAULT_SPACE, DEFAULT_BACKEND, DEFAULT_SIZE = "nafnet-unet", "onnxruntime", 256

SpaceOpt = typer.Option(None, "--space", help=f"Search space (see `hwnas spaces`). Default {DEFAULT_SPACE}, or the table's.")
PresetOpt = typer.Option(None, "--preset", help="Preset of the space, e.g. paper or tiny. Default: the space's, or the table's.")
ImageSizeOpt = typer.Option(None, "--image-size", help=f"H=W at which latency is measured. Default {DEFAULT_SIZE}, or the table's. {bounds(BuildLutConfig, 'image_size')}")
BackendOpt = typer.Option(None, "--backend", help=f"Latency backend: onnxruntime (this CPU), qai-hub (a phone on AI Hub), macs (device-free), or an installed plugin. Default {DEFAULT_BACKEND}, or the table's.")
DeviceOpt = typer.Option(None, "--device", help="Latency target: cpu (onnxruntime: this machine's CPU), an AI Hub device such as sm8650 (qai-hub).")
# Backend flags: their ranges are the backend's Options (validated there; importing it here would load torch).
ThreadsOpt = typer.Option(None, "--threads", help="onnxruntime: intra-op threads (default 2). (1 to 256)")
RunsOpt = typer.Option(None, "--runs", help="onnxruntime: timed rounds per unit (default 60, in 3 passes). (>= 1)")
PrecisionOpt = typer.Option(None, "--precision", help="Precision the table times: fp32 (default) or int8 for onnxruntime (each unit statically quantised, QDQ); fp16, int8 or w8a16 for qai-hub (compiled with --quantize_full_type); a table of one precision is refused where another is asked for.")
WarmupOpt = typer.Option(None, "--warmup", help="onnxruntime: untimed rounds first (default 3). (>= 0)")
ComputeUnitOpt = typer.Option(None, "--compute-unit", help="qai-hub: npu, gpu, cpu or all.")
TargetRuntimeOpt = typer.Option(None, "--target-runtime", help="qai-hub: e.g. qnn_context_binary, tflite, onnx.")
ModeOpt = typer.Option(None, "--mode", help="qai-hub: per-unit (one job pair per unit) or whole-network (one per candidate).")
QairtVersionOpt = typer.Option(None, "--qairt-version", help="qai-hub: QAIRT version of the compile and profile jobs: default (AI Hub's current default; the version used is recorded), latest, or e.g. 2.31.")
ExtraCompileOpt = typer.Option(None, "--extra-compile-options", help="qai-hub: more compile job options, passed as they are, e.g. '--truncate_64bit_io'.")
ExtraProfileOpt = typer.Option(None, "--extra-profile-options", help="qai-hub: more profile job options, passed as they are.")
BackendOptionOpt = typer.Option(None, "--backend-option", "-b", help="Any other backend option KEY=VALUE (YAML value), e.g. -b ms_per_gmac=2.")


def _backend_options(device, threads, runs, warmup, compute_unit, target_runtime, mode, extra: OptionalStrList,
                     precision: Optional[str] = None, **more: Optional[str]) -> dict[str, Any]:
    """The backend options the user set (and only those)."""
    from hwnas.config import parse_options

    given = {"device": device, "threads": threads, "runs": runs, "warmup": warmup,
             "compute_unit": compute_unit, "target_runtime": target_runtime, "mode": mode, "precision": precision, **more}
    options = {k: v for k, v in given.items() if v is not None}
    for key, value in parse_options(extra).items():
        options[key.replace("-", "_")] = value
    return options


def _request(space, preset, option, image_size, backend, backend_options):
    from hwnas.tables.building import TableRequest
    from hwnas.config import parse_options

    return TableRequest(space, preset, parse_options(option), image_size, backend, backend_options)


def _with_table(request, path: Path, *, override: bool = False):
    """`request` completed from the sidecar of the table at `path`, if there is one.
    With `override` (--force) the given flags win and an unreadable sidecar is ignored."""
    from hwnas.tables.building import resolve_with_table
    from hwnas.latency import TableMeta, sidecar_path

    if not sidecar_path(path).is_file():
        return request
    try:
        meta = TableMeta.read(path)
    except HwnasError:
        if override:
            return request
        raise
    return resolve_with_table(meta, request, str(path), refuse=not override)


def _with_config(path: Path, request, out: Optional[Path], force: bool, dry_run: bool):
    """`request`, --out, --force and --dry-run with a --config file's settings (`BuildLutConfig`'s
    fields) underneath: a flag given wins; space and backend options merge key by key."""
    from dataclasses import replace

    from hwnas.config import read_settings

    file = read_settings(path, BuildLutConfig)
    spec, options = file.get("spec") or {}, file.get("backend_options") or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("options") or {}, dict) or not isinstance(options, dict):
        raise HwnasError(f"--config {path}: spec, its options and backend_options are mappings; write e.g. "
                         "`spec: {space: nafnet-unet, preset: tiny}` and `backend_options: {threads: 2}`.")
    for key in ("force", "dry_run"):
        if not isinstance(file.get(key, False), bool):
            raise HwnasError(f"--config {path}: {key} is true or false, not {file[key]!r}.")
    pick = lambda given, key: given if given is not None else key  # noqa: E731
    request = replace(request, space=pick(request.space, spec.get("space")), preset=pick(request.preset, spec.get("preset")),
                      space_options={**(spec.get("options") or {}), **(request.space_options or {})},
                      image_size=pick(request.image_size, file.get("image_size")), backend=pick(request.backend, file.get("backend")),
                      backend_options={**options, **(request.backend_options or {})})
    out = pick(out, Path(str(file["out"])) if file.get("out") is not None else None)
    return request, out, force or file.get("force", False), dry_run or file.get("dry_run", False)


def _defaults(request) -> tuple[Any, int, str, dict[str, Any]]:
    """(SpaceSpec, image size, backend name, backend options) with defaults filled in."""
    from hwnas.config import SpaceSpec

    spec = SpaceSpec(space=request.space or DEFAULT_SPACE, preset=request.preset, options=request.space_options or {})
    size = DEFAULT_SIZE if request.image_size is None else request.image_size  # 0 is a value (refused), not "not given"
    return spec, size, request.backend or DEFAULT_BACKEND, dict(request.backend_options or {})


def _echo_json(report: dict) -> None:
    typer.echo(json.dumps(report, indent=2, default=str))


@contextmanager
def _progress(total: int, enabled: bool, what: str):
    """The progress bar (`hwnas.cli.progress`) over measured units; yields on_progress(measurement)."""
    from hwnas.cli.progress import bar as progress_bar

    with progress_bar(total, desc=what, unit="unit", enabled=enabled) as bar:
        def on_progress(m) -> None:
            bar.set_postfix_str(f"{m.name}@{'x'.join(map(str, m.input_shape))} {m.median_ms:.3f} ms", refresh=False)
            bar.update(1)

        yield on_progress


# -- build-lut ---------------------------------------------------------------------------------------


def build_lut(
    config: Optional[Path] = ConfigOpt,
    backend: Optional[str] = BackendOpt,
    device: Optional[str] = DeviceOpt,
    space: Optional[str] = SpaceOpt,
    preset: Optional[str] = PresetOpt,
    option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSizeOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="The table (CSV; its sidecar is PATH.meta.json). Default: the per-user cache that `hwnas search` reads."),
    threads: Optional[int] = ThreadsOpt,
    runs: Optional[int] = RunsOpt,
    warmup: Optional[int] = WarmupOpt,
    precision: Optional[str] = PrecisionOpt,
    compute_unit: Optional[str] = ComputeUnitOpt,
    target_runtime: Optional[str] = TargetRuntimeOpt,
    mode: Optional[str] = ModeOpt,
    qairt_version: Optional[str] = QairtVersionOpt,
    extra_compile_options: Optional[str] = ExtraCompileOpt,
    extra_profile_options: Optional[str] = ExtraProfileOpt,
    backend_option: OptionalStrList = BackendOptionOpt,
    force: bool = typer.Option(False, "--force", help="Re-measure every unit (a table for other settings is replaced)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be measured and how many jobs it costs; measure and write nothing (no AI Hub token needed)."),
    yes: bool = YesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure a latency table: every candidate at every input shape of the space, plus its fixed parts.

    Only what the table at --out lacks is measured, each row saved at once, so an interrupted build resumes where it stopped. An existing --out supplies the settings it was built with; --force re-measures everything.

    onnxruntime times each unit alone (exported like `hwnas export`) in interleaved rounds with the per-call overhead subtracted; qai-hub profiles on a phone; macs counts multiply-accumulates.

    Example: hwnas build-lut --backend onnxruntime --space nafnet-unet --preset paper --image-size 256 --out paper-ort.csv

    Example: hwnas build-lut --config build.yaml --threads 2  (spec, image_size, backend, backend_options, out in the file)
    """
    from hwnas.tables.building import build_table, default_table_path_for, make_backend, plan_build
    from hwnas.config import BuildLutConfig, build_config

    request = _request(space, preset, option, image_size, backend,
                       _backend_options(device, threads, runs, warmup, compute_unit, target_runtime, mode, backend_option, precision,
                                        qairt_version=qairt_version, extra_compile_options=extra_compile_options,
                                        extra_profile_options=extra_profile_options))
    if config is not None:  # the file's settings under the flags given
        request, out, force, dry_run = _with_config(config, request, out, force, dry_run)
    if out is not None:
        request = _with_table(request, out, override=force)
    spec, size, backend_name, options = _defaults(request)
    cfg = build_config(BuildLutConfig, spec=spec, image_size=size, backend=backend_name, backend_options=options,
                       out=str(out) if out else None, force=force, dry_run=dry_run)
    lat = make_backend(cfg.backend, cfg.backend_options)
    the_space = cfg.spec.create()
    path = Path(cfg.out) if cfg.out else default_table_path_for(the_space, lat, cfg.image_size)
    plan = plan_build(the_space, cfg.image_size, lat, path, force=cfg.force)
    facts = {"path": str(path), "space": the_space.name, "preset": the_space.preset, "image_size": cfg.image_size,
             "backend": lat.name, "device": lat.device, "units": plan.total, "missing": len(plan.missing), "jobs": plan.jobs}
    if cfg.dry_run:
        if as_json:
            _echo_json({**facts, "dry_run": True, "missing_units": [f"{u.kind} {u.name}@{'x'.join(map(str, u.input_shape))}" for u in plan.missing]})
        else:
            typer.echo(f"would measure {len(plan.missing)} of {plan.total} units ({plan.jobs} jobs) with {lat.name} on {lat.device} into {path}")
        return
    authorise(lat, plan.jobs, yes)
    start = time.perf_counter()
    measured = 0
    with _progress(len(plan.missing), not as_json, f"{lat.name} {lat.device}") as on_progress:
        def count(m) -> None:
            nonlocal measured
            measured += 1
            on_progress(m)

        build_table(the_space, cfg.image_size, lat, path, force=cfg.force, on_progress=count, plan=plan)
    seconds = time.perf_counter() - start
    if as_json:
        _echo_json({**facts, "measured": measured, "seconds": round(seconds, 2)})
    elif measured:
        typer.echo(f"measured {measured} of {plan.total} units in {seconds:.1f} s with {lat.name} on {lat.device} -> {path}")
    else:
        typer.echo(f"nothing to measure: {path} is complete ({plan.total} units)")


# -- lut show ---------------------------------------------------------------------------------------------

lut_app = typer.Typer(help="Inspect latency tables.", no_args_is_help=True)


@lut_app.command("show")
def show(
    path: Path = typer.Argument(..., help="A table written by `hwnas build-lut` (CSV with its .meta.json sidecar)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Candidate the ratios are relative to (default: the space's first, e.g. naf)."),
    as_json: bool = JsonOpt,
) -> None:
    """Summarise a latency table: per stage, each candidate's ms and its ratio to the reference block.

    Also lists the fixed parts, the table-predicted latency of every uniform network, and missing entries.

    Example: hwnas lut show paper-ort.csv
    """
    from hwnas.tables.building import describe_table, space_of
    from hwnas.latency import LatencyTable

    table = LatencyTable.load(path)
    space = space_of(table.meta)
    if space is not None:
        _check_rows_fit_sidecar(path, table, space)
    report = describe_table(table, space, reference)
    if reference and all(reference not in row["candidates"] for row in report["stages"]):
        raise HwnasError(f"the table has no candidate {reference!r}; pass --reference with one of its candidates.")
    if as_json:
        _echo_json({"path": str(path), **report})
        return
    for line in _show_lines(path, report):
        typer.echo(line)


def _check_rows_fit_sidecar(path: Path, table, space) -> None:
    """Rows of which not one is a unit of the sidecar's network: the .meta.json belongs to another table
    (copied beside it), and "N entries missing" would hide that."""
    import math

    from hwnas.latency import sidecar_path

    m = table.meta
    wanted = space.layout(m.image_size).units
    if table.frame.empty or len(table.missing(wanted)) < len(wanted):
        return
    sizes = table.frame["input_shape"].map(lambda s: math.prod(int(d) for d in str(s).split("x") if d.isdigit()))
    row = table.frame.loc[sizes.idxmax()]  # the largest input shows the image size the rows were measured at
    raise HwnasError(f"{path} does not match its sidecar {sidecar_path(path)}: the sidecar is for {m.space} (preset {m.preset}) "
                     f"at {m.image_size}px, but none of the table's {len(table.frame)} rows is a unit of that network (e.g. "
                     f"{row['kind']} {row['name']}@{row['input_shape']}); put the table's own sidecar beside it, or rebuild it "
                     f"with `hwnas build-lut --out {path} --force`.")


def _show_lines(path: Path, r: dict) -> list[str]:
    m = r["meta"]
    settings = ", ".join(f"{k}={v}" for k, v in m["settings"].items() if not isinstance(v, (dict, list)) and k not in ("statistic",))
    tools = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        f"{path}: {m['space']} (preset {m['preset']}) at {m['image_size']}px, {m['backend']} on {m['device']}",
        f"  settings: {settings}",
        f"  measured {m['created']} with {tools}",
    ]
    names = list(dict.fromkeys(n for row in r["stages"] for n in row["candidates"]))
    lines.append(f"  {'input':<16} {'positions':<22}" + "".join(f"{n:>20}" for n in names))
    for row in r["stages"]:
        cells = ""
        for n in names:
            c = row["candidates"].get(n)
            text = "-" if c is None else _ms(c["ms"]) + (f" ({c['ratio']:.2f}x)" if c["ratio"] is not None and n != r["reference"] else "")
            cells += f"{text:>20}"
        lines.append(f"  {row['input_shape']:<16} {_stages(row['positions']):<22}" + cells)
    lines.append(f"  {_unit(m)} per candidate; (ratio) to {r['reference']} at the same input (- where it is 0)")
    fixed = ", ".join(f"{f['name']}@{f['input_shape']} {_ms(f['ms'])}" for f in r["fixed"])
    lines.append(f"  fixed parts {_ms(r['fixed_ms'])} ms: {fixed}")
    if r["uniform"]:
        lines.append("  uniform networks (table prediction): " + ", ".join(
            f"all-{n} {_ms(u['ms'])} ms ({'-' if u['ratio'] is None else format(u['ratio'], '.2f') + 'x'})"
            for n, u in r["uniform"].items()))
    if r.get("noisy"):
        more = f" and {len(r['noisy']) - 5} more" if len(r["noisy"]) > 5 else ""
        lines.append(f"  noisy: {len(r['noisy'])} rows whose repeated passes disagreed: {', '.join(r['noisy'][:5])}{more} "
                     f"(rebuild with `hwnas build-lut --out {path} --force` when the machine is quiet)")
    if r["missing"]:
        more = f" and {len(r['missing']) - 5} more" if len(r["missing"]) > 5 else ""
        lines.append(f"  missing {len(r['missing'])} entries: {', '.join(r['missing'][:5])}{more} (complete it with `hwnas build-lut --out {path}`)")
    return lines


def _ms(value: float) -> str:
    """Four significant digits: a paper table's 27.51 ms and a MACs table's 0.0004123 both stay readable."""
    return f"{value:.4g}"


def _unit(meta: dict) -> str:
    """The table's own unit: milliseconds, or for the analytic backend ms derived from MACs."""
    per = meta.get("settings", {}).get("ms_per_gmac")
    return f"ms (analytic: {per:g} ms per GMAC)" if meta.get("backend") == "macs" and per is not None else "ms"


def _stages(labels: list[str]) -> str:
    """['enc0.0', 'enc0.1', 'dec0.0'] -> 'enc0 x2, dec0 x1'."""
    counts: dict[str, int] = {}
    for label in labels:
        stage = label.rsplit(".", 1)[0]
        counts[stage] = counts.get(stage, 0) + 1
    return ", ".join(f"{s} x{n}" for s, n in counts.items()) or "-"


# -- profile -------------------------------------------------------------------------------------------------


def profile(
    arch: Optional[Path] = typer.Option(None, "--arch", help="Architecture to measure (arch.json from `hwnas search`)."),
    uniform: Optional[str] = typer.Option(None, "--uniform", help="Measure the uniform network of this candidate, e.g. naf (the base network)."),
    random_seed: Optional[int] = typer.Option(None, "--random", help=f"Measure a random architecture drawn with this seed (with --random-count: the first seed). {bounds(ProfileConfig, 'random')}"),
    random_count: Optional[int] = typer.Option(None, "--random-count", help=f"Measure N random architectures (seeds 0..N-1, or from --random SEED) in interleaved rounds and sum up the table's fidelity: mean and worst error, how many within +-10%. {bounds(ProfileConfig, 'random_count')}"),
    same_rounds: bool = typer.Option(False, "--same-rounds", help="With --random-count: also time the table's units in each batch's rounds, and show the error with the machine's drift since the table was built taken out (about twice as long)."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Time this ONNX file with the backend's settings (the table's); for a file from `hwnas export` also the table's prediction for the architecture its metadata names, and the error."),
    lut: OptionalStrList = typer.Option(None, "--lut", help="Table to compare with; space, preset, image size, backend and settings come from its sidecar. Default: the cached table for these settings, if any. Repeat it (optionally NAME=PATH) to measure an --arch, --uniform or --random network on every table's device."),
    breakdown: bool = typer.Option(False, "--breakdown", help="Also show where the time goes: share per module class and per operator type (from the backend's per-layer profile)."),
    backend: Optional[str] = BackendOpt,
    device: Optional[str] = DeviceOpt,
    space: Optional[str] = SpaceOpt,
    preset: Optional[str] = PresetOpt,
    option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSizeOpt,
    threads: Optional[int] = ThreadsOpt,
    runs: Optional[int] = RunsOpt,
    warmup: Optional[int] = WarmupOpt,
    precision: Optional[str] = PrecisionOpt,
    compute_unit: Optional[str] = ComputeUnitOpt,
    target_runtime: Optional[str] = TargetRuntimeOpt,
    mode: Optional[str] = ModeOpt,
    qairt_version: Optional[str] = QairtVersionOpt,
    extra_compile_options: Optional[str] = ExtraCompileOpt,
    extra_profile_options: Optional[str] = ExtraProfileOpt,
    backend_option: OptionalStrList = BackendOptionOpt,
    yes: bool = YesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure whole networks end to end and compare them with the latency table's prediction (% error).

    The networks are measured the same way as the table's units (same backend and settings, taken from the table's sidecar). --random-count N checks a table against N random architectures at once (mean and worst error, how many within +-10%); --onnx times any ONNX file. --breakdown adds the share of time per module class (e.g. LayerNorm2d, ChannelAttention, Conv2d 3x3 depthwise) and per operator type.

    Example: hwnas profile --lut paper-ort.csv --random-count 20

    Several devices: hwnas profile --lut s24=sm8650.csv --lut cpu=ort.csv --arch runs/two/arch.json
    """
    if lut and len(lut) > 1:
        return _profile_devices(lut, locals(), as_json)
    job = _prepare(locals(), Path(_lut_path(lut[0])) if lut else None)
    cfg, the_space, lat = job.cfg, job.space, job.backend
    if cfg.onnx is not None:
        authorise(lat, _network_jobs(the_space, cfg.image_size, lat), yes)  # a device backend pays for the file's jobs
        return _profile_onnx(cfg, the_space, lat, job.table, job.source, as_json)
    authorise(lat, _network_jobs(the_space, cfg.image_size, lat) * (cfg.random_count or 1), yes)
    if cfg.random_count is not None:
        return _profile_random(cfg, the_space, lat, job.table, job.source, as_json)
    result = _measure(job)
    if as_json:
        _echo_json(_document(job, result))
        return
    for line in _profile_lines(the_space, cfg.image_size, lat, result):
        typer.echo(line)


class _Job(NamedTuple):
    """One `profile` request, validated: its config, space, backend and the table it compares with."""

    cfg: object
    space: object
    backend: object
    table: object
    source: str
    architecture: object
    label: str


def _prepare(given: dict, lut: Optional[Path]) -> _Job:
    """The command's flags (`given`) and one table path -> a validated `_Job` (one error sentence otherwise)."""
    from hwnas.tables.building import default_table_path_for, make_backend
    from hwnas.config import ProfileConfig, build_config

    g = given
    random_flag = ("--random-count", g["random_count"]) if g["random_count"] is not None else ("--random", g["random_seed"])
    picked = [flag for flag, v in (("--arch", g["arch"]), ("--uniform", g["uniform"]), ("--onnx", g["onnx"]), random_flag)
              if v is not None]
    if len(picked) != 1:
        raise HwnasError("give exactly one of --arch FILE, --uniform CANDIDATE, --random SEED, --random-count N or --onnx FILE "
                         f"(got {' and '.join(picked) or 'none'}).")
    options = _backend_options(g["device"], g["threads"], g["runs"], g["warmup"], g["compute_unit"], g["target_runtime"],
                               g["mode"], g["backend_option"], g["precision"], qairt_version=g["qairt_version"],
                               extra_compile_options=g["extra_compile_options"], extra_profile_options=g["extra_profile_options"])
    request = _request(g["space"], g["preset"], g["option"], g["image_size"], g["backend"], options)
    if lut is not None:
        if not lut.is_file():
            raise HwnasError(f"no latency table at {lut}; build one with `hwnas build-lut --out {lut}`.")
        request = _with_table(request, lut)
    spec, size, backend_name, options = _defaults(request)
    arch, onnx = g["arch"], g["onnx"]
    cfg = build_config(ProfileConfig, spec=spec, image_size=size, backend=backend_name, backend_options=options,
                       lut=str(lut) if lut else None, arch=str(arch) if arch else None, uniform=g["uniform"],
                       random=g["random_seed"], random_count=g["random_count"], onnx=str(onnx) if onnx else None,
                       same_rounds=g["same_rounds"], breakdown=g["breakdown"])
    lat = make_backend(cfg.backend, cfg.backend_options)
    the_space = cfg.spec.create()
    architecture, label = (None, "") if cfg.random_count is not None or cfg.onnx is not None else _architecture(cfg, the_space)
    table, source = _table(cfg, the_space, lat, default_table_path_for(the_space, lat, cfg.image_size))
    return _Job(cfg, the_space, lat, table, source, architecture, label)


def _measure(job: _Job):
    """One architecture measured end to end on the job's backend, with the table's prediction."""
    from hwnas.tables.profiling import profile_architecture

    return profile_architecture(job.space, job.cfg.image_size, job.architecture, job.backend, label=job.label,
                                table=job.table, table_source=job.source, breakdown=job.cfg.breakdown)


def _document(job: _Job, result) -> dict:
    """The JSON document of one measured architecture."""
    lat = job.backend
    return {"space": job.space.name, "preset": job.space.preset, "image_size": job.cfg.image_size, "backend": lat.name,
            "device": lat.device, "settings": lat.settings(), "protocol": lat.protocol(), **result.to_dict()}


def _lut_path(text: str) -> str:
    from hwnas.cli.devices import _lut

    return _lut(text)[1]


def _profile_devices(luts: list[str], given: dict, as_json: bool) -> None:
    """`profile` of one network on the device of every table (--lut NAME=PATH, repeated)."""
    from hwnas.cli.devices import table_fields

    if given.get("random_count") is not None or given.get("onnx") is not None:
        raise HwnasError("--random-count and --onnx check one table at a time; pass one --lut (or use --arch, --uniform "
                         "or --random with several).")
    tables = table_fields(luts, None, None)["tables"]
    jobs = {t["name"]: _prepare(given, Path(t["path"])) for t in tables}  # every table checked before anything runs
    results = {}
    for name, job in jobs.items():
        authorise(job.backend, _network_jobs(job.space, job.cfg.image_size, job.backend), given["yes"])
        result = _measure(job)
        if as_json:
            results[name] = _document(job, result)
            continue
        typer.echo(f"== device {name} ({job.source})")
        for line in _profile_lines(job.space, job.cfg.image_size, job.backend, result):
            typer.echo(line)
    if as_json:
        _echo_json({"devices": results})


def _network_jobs(space, image_size: int, backend) -> int:
    """Jobs one end-to-end measurement of a network costs (its --breakdown reuses them)."""
    from hwnas.space import Unit

    shape = tuple(space.example_input(image_size).shape)
    return backend.planned_jobs([Unit("network", shape, None, kind="network")])


def _architecture(cfg, space):
    from hwnas.tables.profiling import random_architecture
    from hwnas.space import Architecture

    positions = {p.label: p.candidates for p in space.positions(cfg.image_size)}
    if cfg.arch:
        arch = Architecture.load(cfg.arch)
        arch.check(space.name, positions)
        return arch, str(cfg.arch)
    if cfg.uniform:
        return Architecture.uniform(space.name, positions, cfg.uniform), f"all-{cfg.uniform}"
    return random_architecture(space, cfg.image_size, cfg.random), f"random (seed {cfg.random})"


def _table(cfg, space, backend, cached: Path):
    """(table, its path) checked against the space, size and backend; (None, "") without one."""
    import logging

    from hwnas.latency import LatencyTable

    log = logging.getLogger(__name__)
    path = Path(cfg.lut) if cfg.lut else cached
    if not cfg.lut and not path.is_file():
        log.warning("no cached %s table for this space at %dpx (%s): showing the measurement only; "
                    "build one with `hwnas build-lut` or pass --lut", backend.name, cfg.image_size, path)
        return None, ""
    try:
        table = LatencyTable.load(path)
        table.check(space=space.name, fingerprint=space.fingerprint(), units=space.layout(cfg.image_size).unit_fingerprints, image_size=cfg.image_size, device=backend.device,
                    backend=backend.name, settings=backend.settings())
    except HwnasError as err:
        if cfg.lut:
            raise
        log.warning("the cached table %s does not fit (%s): showing the measurement only", path, err)
        return None, ""
    return table, str(path)


def _profile_lines(space, image_size: int, backend, r) -> list[str]:
    m = r.measured
    lines = [
        _header(space, image_size, backend),
        f"architecture  {r.label}: {_blocks(r.architecture)}",
        f"measured      {m.median_ms:.2f} ms  (p10 {m.p10_ms:.2f}, p90 {m.p90_ms:.2f}, {m.runs} runs)",
    ]
    if r.prediction is not None:
        p = r.prediction
        lines.append(f"predicted     {p.total_ms:.2f} ms  (fixed parts {p.fixed_ms:.2f} + {len(r.architecture.choices)} positions "
                     f"{p.total_ms - p.fixed_ms:.2f}; table {p.table})")
        lines.append(f"error         {r.error_pct:+.1f} %  (predicted vs measured)")
    if r.breakdown is not None:
        from hwnas.tables.breakdown import summarise

        total = float(r.breakdown["ms"].sum())
        run_ms = r.breakdown.attrs.get("run_ms")
        lines.append(f"where the time goes ({backend.name} per-layer profile: layers sum to {total:.2f} ms"
                     + (f" of a {run_ms:.2f} ms pass" if run_ms else "") + "):")
        for row in summarise(r.breakdown).itertuples():
            lines.append(f"  {row.group:<28} {row.share:5.1f} %  {row.ms:9.2f} ms  {row.layers:4d} layers  {row.op_types}")
        lines.append("by operator type:")
        for row in summarise(r.breakdown, by="op_type").itertuples():
            lines.append(f"  {row.op_type:<28} {row.share:5.1f} %  {row.ms:9.2f} ms  {row.layers:4d} layers")
    return lines


def _header(space, image_size: int, backend) -> str:
    return f"{space.name} (preset {space.preset}) at {image_size}x{image_size}, {backend.name} on {backend.device} ({_settings(backend)})"


def _blocks(arch) -> str:
    """'naf x4, cbr x32': how many positions chose each candidate, in order of first appearance."""
    counts: dict[str, int] = {}
    for name in arch.choices.values():
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} x{c}" for n, c in counts.items())


def _settings(backend) -> str:
    """The backend's short settings, as the profile reports show them (nested or long values left out)."""
    return ", ".join(f"{k}={v}" for k, v in backend.settings().items() if not isinstance(v, (dict, list)) and len(str(v)) < 40)


def _profile_random(cfg, space, backend, table, source: str, as_json: bool) -> None:
    """--random-count: N random networks measured in interleaved rounds, each against the table, and the summary:
    the absolute error and the scale-free one (one common factor per batch: the machine's drift taken out)."""
    from hwnas.tables.fidelity import Fidelity, scale_free_errors
    from hwnas.tables.profiling import profile_architectures, random_architectures

    archs = random_architectures(space, cfg.image_size, cfg.random_count, cfg.random or 0)
    with _progress(len(archs), not as_json, f"{backend.name} networks") as on_progress:
        results = profile_architectures(space, cfg.image_size, archs, backend, table=table, table_source=source,
                                        same_rounds=cfg.same_rounds, on_result=lambda r: on_progress(r.measured))
    fidelity = Fidelity.of(results) if table is not None else None
    scale_free = Fidelity.scale_free(results) if table is not None else None
    again = Fidelity.of(results, same_rounds=True) if cfg.same_rounds else None
    own = (scale_free_errors([r.prediction.total_ms for r in results], [r.measured.median_ms for r in results],
                             [r.batch for r in results]) if table is not None else [None] * len(results))
    if as_json:
        networks = [r.to_dict() | {"scale_free_error_pct": e} for r, e in zip(results, own)]
        _echo_json({"space": space.name, "preset": space.preset, "image_size": cfg.image_size, "backend": backend.name,
                    "device": backend.device, "settings": backend.settings(), "protocol": backend.protocol(), "table": source or None,
                    "networks": networks, "fidelity": fidelity.to_dict() if fidelity else None,
                    "fidelity_scale_free": scale_free.to_dict() if scale_free else None,
                    "fidelity_same_rounds": again.to_dict() if again else None})
        return
    typer.echo(_header(space, cfg.image_size, backend))
    typer.echo(f"  {'network':<14} {'batch':>5} {'measured ms':>12} {'p10 - p90':>17} {'predicted ms':>13} {'error':>8} {'scale-free':>10}")
    for r, e in zip(results, own):
        m = r.measured
        predicted = f"{r.prediction.total_ms:13.2f} {r.error_pct:+7.1f}%" if r.prediction else f"{'-':>13} {'-':>8}"
        free = f"{e:+9.1f}%" if e is not None else f"{'-':>10}"
        typer.echo(f"  {r.label:<14} {r.batch:>5} {m.median_ms:12.2f} {m.p10_ms:8.2f} - {m.p90_ms:6.2f} {predicted} {free}")
    if fidelity is not None:
        typer.echo(f"fidelity      {fidelity.line()}")
        typer.echo(f"scale-free    {scale_free.line()}")
        typer.echo(f"table         {source}")
    if again is not None:
        typer.echo(f"same rounds   {again.line()} -- the table's units timed again beside the networks")


def _profile_onnx(cfg, space, backend, table, source: str, as_json: bool) -> None:
    """--onnx: the file timed with the backend's settings; the table's prediction when the file names its architecture."""
    from hwnas.tables.profiling import profile_onnx

    result = profile_onnx(Path(cfg.onnx), backend, space, cfg.image_size, table=table, table_source=source)
    if as_json:
        _echo_json({"backend": backend.name, "device": backend.device, "settings": backend.settings(), "protocol": backend.protocol(),
                    **result.to_dict()})
        return
    m = result.measured
    lines = [f"{cfg.onnx}: {backend.name} on {backend.device} ({_settings(backend)}), input {'x'.join(map(str, m.input_shape))}"]
    if result.architecture is not None:
        lines.append(f"architecture  {result.space_label} (from the file's hwnas metadata): {_blocks(result.architecture)}")
    lines.append(f"measured      {m.median_ms:.2f} ms  (p10 {m.p10_ms:.2f}, p90 {m.p90_ms:.2f}, {m.runs} runs)")
    if result.prediction is not None:
        lines.append(f"predicted     {result.prediction.total_ms:.2f} ms  (table {result.prediction.table})")
        lines.append(f"error         {result.error_pct:+.1f} %  (predicted vs measured)")
    elif result.note:
        lines.append(f"predicted     -  ({result.note})")
    for line in lines:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("build-lut")(build_lut)
    app.command()(profile)
    app.add_typer(lut_app, name="lut")
