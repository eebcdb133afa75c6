"""Several devices in one search: each device's latency table, its weight and its target.

A search for several chips takes one table per device (`--lut phone=a.csv --lut
cpu=b.csv`). The tables must describe the same space, preset, options and image size
(a candidate's cost differs per device, the network does not); each keeps its own
backend, device and precision. The first table is the run's `lut`: it fills the
space and settings, as a single `--lut` does. A run keeps a copy of every table
(`RunDir.device_lut`), so a resumed run reads its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hwnas.contracts.config import SearchConfig, TableRef
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyTable


@dataclass(frozen=True)
class Device:
    """One device of a search: its name, table, weight and (constraint form) target."""

    name: str
    table: LatencyTable
    weight: float = 1.0
    target_ms: float | None = None

    def describe(self) -> dict:
        meta = self.table.meta
        return {"backend": meta.backend, "device": meta.device, "precision": meta.precision}


def single_name(config: SearchConfig) -> str:
    """The name of a one-table search's device: its file's stem, else its backend."""
    return Path(config.lut).stem if config.lut else config.backend


def devices(config: SearchConfig, first: LatencyTable, load=LatencyTable.load) -> list[Device]:
    """The search's devices: `first` (the table of `config.lut`) and the others `load(ref)` gives.

    `load(ref)` reads a further table (by default from `ref.path`; a resumed run reads
    its own copies)."""
    if not config.tables:
        return [Device(single_name(config), first, 1.0, config.target_ms)]
    head, *rest = config.tables
    out = [Device(head.name, first, head.weight, head.target_ms if head.target_ms is not None else config.target_ms)]
    for ref in rest:
        out.append(Device(ref.name, _load(load, ref), ref.weight, ref.target_ms))
    return out


def _load(load, ref: TableRef) -> LatencyTable:
    try:
        return load(ref)
    except FileNotFoundError:
        raise HwnasError(f"the latency table {ref.path} of device {ref.name!r} does not exist; pass an existing "
                         f"file with --lut {ref.name}=PATH.") from None


def check_same_network(first: LatencyTable, others: Sequence[tuple[str, LatencyTable]]) -> None:
    """Refuse a table that describes another space, preset, options or image size than the first."""
    a = first.meta
    for name, table in others:
        b = table.meta
        for field, label in (("space", "space"), ("preset", "preset"), ("space_config", "space options"),
                             ("image_size", "image size")):
            if (getattr(a, field) or None) != (getattr(b, field) or None):
                raise HwnasError(f"the table of device {name!r} is for {label} {getattr(b, field)!r}, the first table "
                                 f"for {getattr(a, field)!r}; every table of a search must describe the same network "
                                 "(build them with the same --space/--preset/--image-size).")
