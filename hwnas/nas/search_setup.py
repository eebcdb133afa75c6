"""A search's inputs, resolved and checked before anything is written.

From the given fields to a `SearchConfig` and its table (`resolve_config`: a table's
sidecar fills space, preset, options, image size and backend), the checks a table must
pass (`check_table`, `run_devices` for every device of a run), the order a fresh search
checks its inputs in (`prepare`), and reading a finished run back (`read_config`,
`load_supernet`). The loop itself is `hwnas.nas.search_loop`; `hwnas.nas.searching.run_search`
ties the two together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from hwnas.runs import distributed
from hwnas.runs.checkpoint import load_checkpoint
from hwnas.runs.compute import device_for
from hwnas.contracts.config import SearchConfig, build_config, plain
from hwnas.nas.devices import Device, check_same_network, devices
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable
from hwnas.runs.run import read_run_config
from hwnas.runs.rundir import RunDir
from hwnas.contracts.space import SearchSpace, Unit
from hwnas.nas.supernet import to_supernet
from hwnas.contracts.task import make_task, resolve_task

DEFAULT_SPACE = "nafnet-unet"
QUICK_PRESET = "tiny"  # the preset of a search given none, where the space has it


def lookup_units(space: SearchSpace, image_size: int) -> list[Unit]:
    """Every table key a search of `space` needs: candidates per position shape, and fixed parts."""
    return list(space.layout(image_size).units)


def check_table(table: LatencyTable, space: SearchSpace, config: SearchConfig, *, device: bool = True) -> None:
    """Refuse a table for another space, configuration, size (or, with `device`, the config's
    backend and device), one whose rows measured other blocks, or one lacking entries.
    Further devices' tables keep their own backend."""
    from hwnas.tables.target import MeasurementTarget

    target = MeasurementTarget.of(space, config.image_size, config.backend if device else None, config.device if device else None)
    target.check(table, settings=False)
    table.require(lookup_units(space, config.image_size))


def resolve_config(fields: Mapping[str, Any]) -> tuple[SearchConfig, LatencyTable | None]:
    """A `SearchConfig` from what was given (None = not given), and the table of a given `lut`.

    `spec` may be given in part. With `lut`, space, preset, options, image size and
    backend come from the table's sidecar; a given one that contradicts it is refused.
    Without, the space defaults to `DEFAULT_SPACE` and the preset to `QUICK_PRESET`
    where the space has it (a search of about a minute).
    """
    from hwnas.tables.target import MeasurementTarget

    values = {k: plain(v) for k, v in fields.items() if v is not None}
    spec = dict(values.pop("spec", None) or {})
    refs = [dict(t) for t in values.pop("tables", None) or ()]
    if refs:  # several devices: the first table is the run's lut
        if values.get("lut") is not None and Path(values["lut"]).resolve() != Path(refs[0]["path"]).resolve():
            raise HwnasError("give the tables either as lut or as tables, not both.")
        values["lut"] = refs[0]["path"]
    lut = values.get("lut")
    if lut is None:
        space = spec.get("space") or DEFAULT_SPACE
        return build_config(SearchConfig, spec={**spec, "space": space, "preset": spec.get("preset") or quick_preset(space)},
                            **values), None
    table = distributed.from_main(lambda: LatencyTable.load(lut))  # rank 0 reads it and sends it to the others
    given = MeasurementTarget(spec.get("space"), spec.get("preset"), spec.get("options") or None, values.get("image_size"),
                              values.get("backend"))
    got = given.with_table(table.meta, str(lut))
    values.update(image_size=got.image_size, backend=got.backend, lut=str(Path(lut).resolve()))
    if refs:
        refs = [{**ref, "path": str(Path(ref["path"]).resolve())} for ref in refs]
        check_same_network(table, [(ref["name"], LatencyTable.load(ref["path"])) for ref in refs[1:]])
        values["tables"] = refs
    return build_config(SearchConfig, spec={"space": got.space, "preset": got.preset, "options": dict(got.options or {})},
                        **values), table


def quick_preset(space: str) -> str | None:
    from hwnas.contracts.plugins import get_space

    return QUICK_PRESET if QUICK_PRESET in get_space(space).presets else None


def prepare(config: SearchConfig, table: LatencyTable | None, task, cached_table: Callable[[SearchConfig], LatencyTable]):
    """(config, table, task) of a fresh search, checked in the order that writes nothing on a mistake.

    The accelerator, then the task (resolved: `hwnas.contracts.task.resolve_task`; it decodes its
    images), then the table: `table`, else the one at `config.lut`, else
    `cached_table(config)`. The config records the task as resolved and the device the
    table was measured on.
    """
    device_for(config.accelerator)
    config = resolve_task(config)
    space = config.spec.create()
    if task is None:
        task = make_task(config.task, space)
    if table is None:
        table = distributed.from_main(lambda: LatencyTable.load(config.lut) if config.lut else cached_table(config))
    if config.device is not None:  # given as asked ('cpu') or as recorded ('cpu:<model>'): either must fit the table
        from hwnas.tables.target import MeasurementTarget

        MeasurementTarget.of(space, config.image_size, device=config.device).check(table, settings=False)
    return config.model_copy(update={"device": table.meta.device}), table, task


def read_config(run_dir: str | Path) -> SearchConfig:
    """The config.yaml of a search run."""
    return read_run_config(RunDir(Path(run_dir)).config, SearchConfig, "search")


def load_supernet(run_dir: str | Path, map_location: str | torch.device = "cpu") -> tuple[SearchSpace, nn.Module]:
    """(space, super-net) of a search run, with the weights and logits of its latest checkpoint.

    The super-net is in eval mode; `hwnas.freeze(net, Architecture.load(run_dir / "arch.json"))`
    gives the derived network with the searched weights of the chosen candidates.
    """
    run = RunDir(Path(run_dir))
    if not run.config.is_file():
        raise HwnasError(f"{run.root} is not a search run (no config.yaml); pass the --out folder of `hwnas search`.")
    config = read_config(run.root)
    state = load_checkpoint(run.checkpoints, map_location=map_location)
    if state is None:
        raise HwnasError(f"{run.root} has no checkpoint yet; finish or resume its search first (`hwnas search --out {run.root} --resume`).")
    space = config.spec.create()
    net = to_supernet(space.build(), config.mode, config.temperature)
    net.load_state_dict(state["supernet"])
    return space, net.eval()



def run_devices(config: SearchConfig, space: SearchSpace, table: LatencyTable | None, resumed: RunDir | None) -> list[Device]:
    """The devices of a run, their tables checked: a resumed run's own copies, else `table` and
    the files `config.tables` names."""
    if resumed is not None:
        table = LatencyTable.load(resumed.lut)
        chips = devices(config, table, lambda ref: LatencyTable.load(resumed.device_lut(ref.name)))
    elif table is None:
        raise ValueError("a fresh search needs a latency table")
    else:
        chips = devices(config, table, lambda ref: LatencyTable.load(ref.path))
    for chip in chips:
        check_table(chip.table, space, config, device=chip is chips[0])
    check_same_network(table, [(d.name, d.table) for d in chips[1:]])
    return chips

