"""`hwnas build-lut` and `hwnas lut show`: latency tables -- thin layers over `hwnas.api` (`hwnas profile`: `hwnas.cli.profile`).

Backend flags: --device, --precision and -b KEY=VALUE here, and every field of the chosen
backend's Options as a flag of its own (`hwnas.cli.backend_flags`: --threads for onnxruntime,
--compute-unit for qai-hub, ...); only the flags a user sets are passed, and one the
backend does not have is refused.
Given a table (--lut, or an existing --out for build-lut), space, preset, image size,
backend and backend settings come from its sidecar (`hwnas.tables.target.MeasurementTarget`);
a flag that contradicts it is refused.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from hwnas.cli.common import ConfigOpt, JsonOpt, OptionalStrList, OptionOpt, bounds
from hwnas.cli.jobs import YesOpt, authorise
from hwnas.contracts.config import BuildLutConfig
from hwnas.contracts.errors import HwnasError

DEFAULT_SPACE, DEFAULT_BACKEND, DEFAULT_SIZE = "nafnet-unet", "onnxruntime", 256  # hwnas.tables.target's

SpaceOpt = typer.Option(None, "--space", help=f"Search space (see `hwnas spaces`). Default {DEFAULT_SPACE}, or the table's.")
PresetOpt = typer.Option(None, "--preset", help="Preset of the space, e.g. paper or tiny. Default: the space's, or the table's.")
ImageSizeOpt = typer.Option(None, "--image-size", help=f"H=W at which latency is measured. Default {DEFAULT_SIZE}, or the table's. {bounds(BuildLutConfig, 'image_size')}")
BackendOpt = typer.Option(None, "--backend", help=f"Latency backend: onnxruntime (this CPU), qai-hub (a phone on AI Hub), macs (device-free), or an installed plugin. Default {DEFAULT_BACKEND}, or the table's.")
DeviceOpt = typer.Option(None, "--device", help="Latency target: cpu (onnxruntime: this machine's CPU), an AI Hub device such as sm8650 (qai-hub).")
PrecisionOpt = typer.Option(None, "--precision", help="Precision the table times: fp32 (default) or int8 for onnxruntime (each unit statically quantised, QDQ); fp16, int8 or w8a16 for qai-hub (compiled with --quantize_full_type); a table of one precision is refused where another is asked for.")
BackendOptionOpt = typer.Option(None, "--backend-option", "-b", help="Any other backend option KEY=VALUE (YAML value), e.g. -b ms_per_gmac=2.")


def given_target(space, preset, option, image_size, backend, device, precision, extra: OptionalStrList):
    """The measurement target as the flags give it (None: not given); the backend's own flags come later."""
    from hwnas.contracts.config import parse_options
    from hwnas.tables.target import MeasurementTarget

    options = {k.replace("-", "_"): v for k, v in parse_options(extra, flag="-b", example="ms_per_gmac=2").items()}
    return MeasurementTarget(space, preset, parse_options(option) or None, image_size, backend, options, device, precision)


def resolved(ctx, target, table: Optional[Path], *, override: bool = False):
    """`target` completed from the sidecar of `table` (if there is one), the defaults, and the chosen
    backend's own flags (the command's extra words) on top. With `override` (--force) the given flags
    win and an unreadable sidecar is ignored."""
    from dataclasses import replace

    from hwnas.cli.backend_flags import parse
    from hwnas.contracts.latency import TableMeta, sidecar_path

    if table is not None and sidecar_path(table).is_file():
        try:
            target = target.with_table(TableMeta.read(table), str(table), refuse=not override)
        except HwnasError:
            if not override:
                raise
    target = target.with_defaults()
    return replace(target, backend_options={**target.backend_options, **parse(ctx.args, target.backend, ctx)})


def target_of(ctx, space, preset, option, image_size, backend, device, precision, extra, table: Optional[Path]):
    return resolved(ctx, given_target(space, preset, option, image_size, backend, device, precision, extra), table)


def _with_config(path: Path, target, out: Optional[Path], force: bool, dry_run: bool):
    """`target`, --out, --force and --dry-run with a --config file's settings (`BuildLutConfig`'s
    fields) underneath: a flag given wins; space and backend options merge key by key."""
    from hwnas.contracts.config import read_settings
    from hwnas.tables.target import MeasurementTarget

    file = read_settings(path, BuildLutConfig)
    spec, options = file.get("spec") or {}, file.get("backend_options") or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("options") or {}, dict) or not isinstance(options, dict):
        raise HwnasError(f"--config {path}: spec, its options and backend_options are mappings; write e.g. "
                         "`spec: {space: nafnet-unet, preset: tiny}` and `backend_options: {threads: 2}`.")
    for key in ("force", "dry_run"):
        if not isinstance(file.get(key, False), bool):
            raise HwnasError(f"--config {path}: {key} is true or false, not {file[key]!r}.")
    pick = lambda given, key: given if given is not None else key  # noqa: E731
    target = MeasurementTarget(pick(target.space, spec.get("space")), pick(target.preset, spec.get("preset")),
                               {**(spec.get("options") or {}), **(target.options or {})},
                               pick(target.image_size, file.get("image_size")), pick(target.backend, file.get("backend")),
                               {**options, **target.settings})
    out = pick(out, Path(str(file["out"])) if file.get("out") is not None else None)
    return target, out, force or file.get("force", False), dry_run or file.get("dry_run", False)


def echo_json(report: dict) -> None:
    typer.echo(json.dumps(report, indent=2, default=str))


@contextmanager
def progress(total: Optional[int], enabled: bool, what: str):
    """The progress bar (`hwnas.cli.progress`) over measured units; yields on_progress(measurement[, total])."""
    from hwnas.cli.progress import bar as progress_bar

    with progress_bar(total, desc=what, unit="unit", enabled=enabled) as bar:
        def on_progress(m, total: Optional[int] = None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.set_postfix_str(f"{m.name}@{'x'.join(map(str, m.input_shape))} {m.median_ms:.3f} ms", refresh=False)
            bar.update(1)

        yield on_progress


# -- build-lut ---------------------------------------------------------------------------------------


def build_lut(
    ctx: typer.Context,
    config: Optional[Path] = ConfigOpt,
    backend: Optional[str] = BackendOpt,
    device: Optional[str] = DeviceOpt,
    space: Optional[str] = SpaceOpt,
    preset: Optional[str] = PresetOpt,
    option: OptionalStrList = OptionOpt,
    image_size: Optional[int] = ImageSizeOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="The table (CSV; its sidecar is PATH.meta.json). Default: the per-user cache that `hwnas search` reads."),
    precision: Optional[str] = PrecisionOpt,
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
    from hwnas import api
    from hwnas.contracts.config import build_config

    target = given_target(space, preset, option, image_size, backend, device, precision, backend_option)
    if config is not None:  # the file's settings under the flags given
        target, out, force, dry_run = _with_config(config, target, out, force, dry_run)
    target = resolved(ctx, target, out, override=force)
    cfg = build_config(BuildLutConfig, spec=target.spec(), image_size=target.image_size, backend=target.backend,
                       backend_options=target.settings, out=str(out) if out else None, force=force, dry_run=dry_run)
    with progress(None, not as_json and not cfg.dry_run, target.backend) as on_progress:
        done = api.build_table(cfg, on_progress=on_progress, approve=lambda b, jobs: authorise(b, jobs, yes))
    the_space = cfg.spec.create()
    facts = {"path": str(done.path), "space": the_space.name, "preset": the_space.preset, "image_size": cfg.image_size,
             "backend": done.backend, "device": done.device, "units": done.units, "missing": done.missing, "jobs": done.jobs}
    where = f"with {done.backend} on {done.device}"
    if cfg.dry_run:
        if as_json:
            from hwnas.tables.building import plan_build

            plan = plan_build(the_space, cfg.image_size, target.latency_backend, done.path, force=cfg.force)
            echo_json({**facts, "dry_run": True, "missing_units": [f"{u.kind} {u.name}@{'x'.join(map(str, u.input_shape))}" for u in plan.missing]})
        else:
            typer.echo(f"would measure {done.missing} of {done.units} units ({done.jobs} jobs) {where} into {done.path}")
    elif as_json:
        echo_json({**facts, "measured": done.measured, "seconds": round(done.seconds, 2)})
    elif done.measured:
        typer.echo(f"measured {done.measured} of {done.units} units in {done.seconds:.1f} s {where} -> {done.path}")
    else:
        typer.echo(f"nothing to measure: {done.path} is complete ({done.units} units)")


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
    from hwnas.contracts.latency import LatencyTable

    table = LatencyTable.load(path)
    space = space_of(table.meta)
    if space is not None:
        _check_rows_fit_sidecar(path, table, space)
    report = describe_table(table, space, reference)
    if reference and all(reference not in row["candidates"] for row in report["stages"]):
        raise HwnasError(f"the table has no candidate {reference!r}; pass --reference with one of its candidates.")
    if as_json:
        echo_json({"path": str(path), **report})
        return
    for line in _show_lines(path, report):
        typer.echo(line)


def _check_rows_fit_sidecar(path: Path, table, space) -> None:
    """Rows of which not one is a unit of the sidecar's network: the .meta.json belongs to another table
    (copied beside it), and "N entries missing" would hide that."""
    import math

    from hwnas.contracts.latency import sidecar_path

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


def register(app: typer.Typer) -> None:
    from hwnas.cli.backend_flags import EXTRA_ARGS, command_class

    app.command("build-lut", context_settings=EXTRA_ARGS, cls=command_class())(build_lut)
    app.add_typer(lut_app, name="lut")
