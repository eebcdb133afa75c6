"""`hwnas profile`: whole networks measured end to end beside the table's prediction -- a thin layer over
`hwnas.api.profile` (this module parses flags and prints; the measuring and checking live there)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hwnas.cli.common import JsonOpt, OptionalStrList, OptionOpt, bounds
from hwnas.cli.jobs import YesOpt, authorise
from hwnas.cli.lut import (BackendOpt, BackendOptionOpt, DeviceOpt, ImageSizeOpt, PrecisionOpt, PresetOpt, SpaceOpt, echo_json,
                           progress, target_of)
from hwnas.contracts.config import ProfileConfig
from hwnas.contracts.errors import HwnasError


def profile(
    ctx: typer.Context,
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
    precision: Optional[str] = PrecisionOpt,
    backend_option: OptionalStrList = BackendOptionOpt,
    yes: bool = YesOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure whole networks end to end and compare them with the latency table's prediction (% error).

    The networks are measured the same way as the table's units (same backend and settings, taken from the table's sidecar). --random-count N checks a table against N random architectures at once (mean and worst error, how many within +-10%); --onnx times any ONNX file. --breakdown adds the share of time per module class (e.g. LayerNorm2d, ChannelAttention, Conv2d 3x3 depthwise) and per operator type.

    Example: hwnas profile --lut paper-ort.csv --random-count 20

    Several devices: hwnas profile --lut s24=sm8650.csv --lut cpu=ort.csv --arch runs/two/arch.json
    """
    from hwnas import api
    from hwnas.cli.devices import _lut, table_fields

    given = dict(arch=str(arch) if arch else None, uniform=uniform, random=random_seed, random_count=random_count,
                 onnx=str(onnx) if onnx else None, same_rounds=same_rounds, breakdown=breakdown)
    paths = [t["path"] for t in table_fields(lut, None, None)["tables"]] if lut and len(lut) > 1 else [_lut(t)[1] for t in lut or []]
    names = [t["name"] for t in table_fields(lut, None, None)["tables"]] if len(paths) > 1 else [None]
    if len(paths) > 1 and (random_count is not None or onnx is not None):
        raise HwnasError("--random-count and --onnx check one table at a time; pass one --lut (or use --arch, --uniform "
                         "or --random with several).")

    def fields(path: Optional[str]) -> dict:
        target = target_of(ctx, space, preset, option, image_size, backend, device, precision, backend_option,
                           Path(path) if path else None)
        return dict(spec=target.spec(), image_size=target.image_size, backend=target.backend,
                    backend_options=target.settings, lut=path, **given)

    jobs = [fields(p) for p in paths or [None]]
    for job in jobs if len(jobs) > 1 else []:  # several tables: every one checked before anything runs
        api.profile(dry_run=True, **job)
    approve = lambda b, n: authorise(b, n, yes)  # noqa: E731
    documents = {}
    for name, job in zip(names, jobs):
        if job["random_count"] is not None:
            with progress(job["random_count"], not as_json, f"{job['backend']} networks") as on_progress:
                report = api.profile(approve=approve, on_result=lambda r: on_progress(r.measured), **job)
        else:
            report = api.profile(approve=approve, **job)
        if as_json:
            documents[name] = report.to_dict()
            continue
        if name is not None:
            typer.echo(f"== device {name} ({report.table_source})")
        for line in lines(report):
            typer.echo(line)
    if as_json:
        echo_json(documents[None] if len(jobs) == 1 else {"devices": documents})


# -- the report as text --------------------------------------------------------------------------------


def lines(report) -> list[str]:
    if report.onnx is not None:
        return _onnx_lines(report)
    if report.config.random_count is not None:
        return _random_lines(report)
    return _one_lines(report)


def _one_lines(report) -> list[str]:
    r, backend = report.result, report.backend
    m = r.measured
    out = [
        _header(report),
        f"architecture  {r.label}: {_blocks(r.architecture)}",
        f"measured      {m.median_ms:.2f} ms  (p10 {m.p10_ms:.2f}, p90 {m.p90_ms:.2f}, {m.runs} runs)",
    ]
    if r.prediction is not None:
        p = r.prediction
        out.append(f"predicted     {p.total_ms:.2f} ms  (fixed parts {p.fixed_ms:.2f} + {len(r.architecture.choices)} positions "
                   f"{p.total_ms - p.fixed_ms:.2f}; table {p.table})")
        out.append(f"error         {r.error_pct:+.1f} %  (predicted vs measured)")
    if r.breakdown is not None:
        from hwnas.tables.breakdown import summarise

        total = float(r.breakdown["ms"].sum())
        run_ms = r.breakdown.attrs.get("run_ms")
        out.append(f"where the time goes ({backend.name} per-layer profile: layers sum to {total:.2f} ms"
                   + (f" of a {run_ms:.2f} ms pass" if run_ms else "") + "):")
        for row in summarise(r.breakdown).itertuples():
            out.append(f"  {row.group:<28} {row.share:5.1f} %  {row.ms:9.2f} ms  {row.layers:4d} layers  {row.op_types}")
        out.append("by operator type:")
        for row in summarise(r.breakdown, by="op_type").itertuples():
            out.append(f"  {row.op_type:<28} {row.share:5.1f} %  {row.ms:9.2f} ms  {row.layers:4d} layers")
    return out


def _random_lines(report) -> list[str]:
    out = [_header(report),
           f"  {'network':<14} {'batch':>5} {'measured ms':>12} {'p10 - p90':>17} {'predicted ms':>13} {'error':>8} {'scale-free':>10}"]
    for r, e in zip(report.results, report.scale_free_errors or [None] * len(report.results)):
        m = r.measured
        predicted = f"{r.prediction.total_ms:13.2f} {r.error_pct:+7.1f}%" if r.prediction else f"{'-':>13} {'-':>8}"
        free = f"{e:+9.1f}%" if e is not None else f"{'-':>10}"
        out.append(f"  {r.label:<14} {r.batch:>5} {m.median_ms:12.2f} {m.p10_ms:8.2f} - {m.p90_ms:6.2f} {predicted} {free}")
    if report.fidelity is not None:
        out += [f"fidelity      {report.fidelity.line()}", f"scale-free    {report.fidelity_scale_free.line()}",
                f"table         {report.table_source}"]
    if report.fidelity_same_rounds is not None:
        out.append(f"same rounds   {report.fidelity_same_rounds.line()} -- the table's units timed again beside the networks")
    return out


def _onnx_lines(report) -> list[str]:
    result, backend = report.onnx, report.backend
    m = result.measured
    out = [f"{report.config.onnx}: {backend.name} on {backend.device} ({_settings(backend)}), input {'x'.join(map(str, m.input_shape))}"]
    if result.architecture is not None:
        out.append(f"architecture  {result.space_label} (from the file's hwnas metadata): {_blocks(result.architecture)}")
    out.append(f"measured      {m.median_ms:.2f} ms  (p10 {m.p10_ms:.2f}, p90 {m.p90_ms:.2f}, {m.runs} runs)")
    if result.prediction is not None:
        out.append(f"predicted     {result.prediction.total_ms:.2f} ms  (table {result.prediction.table})")
        out.append(f"error         {result.error_pct:+.1f} %  (predicted vs measured)")
    elif result.note:
        out.append(f"predicted     -  ({result.note})")
    return out


def _header(report) -> str:
    space, backend, size = report.space, report.backend, report.config.image_size
    return f"{space.name} (preset {space.preset}) at {size}x{size}, {backend.name} on {backend.device} ({_settings(backend)})"


def _blocks(arch) -> str:
    """'naf x4, cbr x32': how many positions chose each candidate, in order of first appearance."""
    counts: dict[str, int] = {}
    for name in arch.choices.values():
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} x{c}" for n, c in counts.items())


def _settings(backend) -> str:
    """The backend's short settings, as the profile reports show them (nested or long values left out)."""
    return ", ".join(f"{k}={v}" for k, v in backend.settings().items() if not isinstance(v, (dict, list)) and len(str(v)) < 40)


def register(app: typer.Typer) -> None:
    from hwnas.cli.backend_flags import EXTRA_ARGS, command_class

    app.command(context_settings=EXTRA_ARGS, cls=command_class())(profile)
