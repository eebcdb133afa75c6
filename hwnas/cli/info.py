"""`hwnas spaces`, `hwnas tasks`, `hwnas backends`, `hwnas describe`: what is installed and what a space holds."""

from __future__ import annotations

import json
from typing import Optional

import typer

from hwnas.cli.common import ImageSizeOpt, JsonOpt, OptionalStrList, OptionOpt, PresetOpt, SpaceOpt
from hwnas.contracts.config import DescribeConfig, SpaceSpec, build_config, parse_options


def spaces(as_json: bool = JsonOpt) -> None:
    """List installed search spaces: presets, default task and output scales.

    Example: hwnas spaces --json
    """
    from hwnas.contracts import catalog

    report = catalog.spaces()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for space in report:
        typer.echo(f"{space['name']}\tpresets: {', '.join(space['presets']) or '-'}\tdefault task: {space['default_task'] or '-'}\t"
                   f"output scales: {', '.join(map(str, space['scales']))}")


def tasks(as_json: bool = JsonOpt) -> None:
    """List installed tasks: what each trains on, its options (-t KEY=VALUE) and the shorthand flags it takes.

    Example: hwnas tasks
    """
    from hwnas.contracts.plugins import get_space, get_task, space_names, task_names

    defaults = {}
    for space in space_names():
        defaults.setdefault(get_space(space).default_task, []).append(space)
    report = [_task_report(get_task(name), name, defaults.get(name, [])) for name in task_names()]
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for task in report:
        default = f"; default task of {', '.join(task['default_of'])}" if task["default_of"] else ""
        shape = f"{task['scale']}x input" if task["output"] == "image" else task["output"]
        typer.echo(f"{task['name']}\t{task['doc']} (output {shape}, primary metric "
                   f"{task['primary_metric']}{default})")
        if task["shorthands"]:
            typer.echo(f"  shorthand flags: {', '.join('--' + s for s in task['shorthands'])}")
        for option in task["options"]:
            typer.echo(f"  -t {option['name']}: {option['type']}, default {option['default']}. {option['help']}")


def _task_report(cls, name: str, default_of: list[str]) -> dict:
    doc = (cls.__doc__ or "").strip().splitlines()
    options = [{"name": field, "type": _type_name(info.annotation), "default": info.get_default(call_default_factory=True),
                "help": info.description or ""} for field, info in cls.Options.model_fields.items()]
    return {"name": name, "doc": doc[0] if doc else "", "scale": cls.scale, "output": cls.output,
            "primary_metric": cls.primary_metric,
            "shorthands": list(cls.shorthands), "options": options, "default_of": default_of}


def _type_name(annotation) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def backends(
    name: Optional[str] = typer.Argument(None, help="A backend: list its flags (its Options) for build-lut and profile."),
    as_json: bool = JsonOpt,
) -> None:
    """List installed latency backends; with a NAME, that backend's flags (from its Options).

    Example: hwnas backends --json

    Example: hwnas backends onnxruntime
    """
    from hwnas.contracts import catalog

    if name is not None:
        from hwnas.cli.backend_flags import listing
        from hwnas.contracts.capabilities import capabilities
        from hwnas.contracts.plugins import get_backend

        flags, can = listing(name), capabilities(get_backend(name))
        if as_json:
            typer.echo(json.dumps({"name": name, "flags": [{"flag": f, "help": h} for f, h in flags], "capabilities": can},
                                  indent=2))
            return
        typer.echo(f"{name}: flags of build-lut and profile (or -b KEY=VALUE)")
        for f, h in flags:
            typer.echo(f"  {f:<28} {h}")
        typer.echo(f"  can also: {', '.join(can) or 'nothing beyond measuring units'} (hwnas.contracts.capabilities)")
        return
    report = catalog.backends()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for backend in report:
        typer.echo(f"{backend['name']}\t{backend['doc']}")


def describe(
    space: str = SpaceOpt,
    preset: Optional[str] = PresetOpt,
    option: OptionalStrList = OptionOpt,
    image_size: int = ImageSizeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show each choice position with its input shape and each candidate's parameters and MACs.

    Example: hwnas describe --space nafnet-unet --preset paper --image-size 256 --json
    """
    from hwnas.contracts.describe import describe_space

    cfg = build_config(DescribeConfig, spec=SpaceSpec(space=space, preset=preset, options=parse_options(option)), image_size=image_size)
    report = describe_space(cfg.spec.create(), cfg.image_size)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{cfg.spec.space} (preset {report['preset']}), input {cfg.image_size}x{cfg.image_size}")
    for pos in report["positions"]:
        cands = "  ".join(f"{c['name']}: {c['params'] / 1e3:.1f}k/{c['macs'] / 1e6:.1f}M" for c in pos["candidates"])
        typer.echo(f"  {pos['label']:<8} {'x'.join(map(str, pos['input_shape'])):<16} {cands}")
    for unit in report["fixed"]:
        typer.echo(f"  [{unit['name']}] {'x'.join(map(str, unit['input_shape'])):<16} {unit['params'] / 1e3:.1f}k/{unit['macs'] / 1e6:.1f}M")
    typer.echo("  (params k / MACs M per candidate)")
    for name, total in report["uniform"].items():
        typer.echo(f"  all-{name}: {total['params'] / 1e6:.2f} M params, {total['macs'] / 1e9:.2f} GMACs")


def register(app: typer.Typer) -> None:
    app.command()(spaces)
    app.command()(tasks)
    app.command()(backends)
    app.command()(describe)
