"""The latency contract: backends measure units, tables keep what they measured.

A `LatencyBackend` measures a batch of `Unit`s (a candidate at an input shape, or a
fixed part) and returns one `Measurement` per unit -- batched so that a remote backend
can submit every job first and wait for them together. A failed measurement is an
error, never a number.

A `LatencyTable` is a long-format pandas DataFrame, one row per measured unit keyed
by (kind, name, input shape), with a metadata sidecar that says what it was measured
for (space + fingerprint, preset, image size, backend, device, settings, versions).
Positions map to rows through their input shape, so positions that share a shape
share a row.

Each row also keeps its unit's structural fingerprint (`hwnas.layout`), so a table is
checked row by row: rows whose unit is unchanged are used whatever else the space
gained or lost, a newly added candidate's rows are simply missing, and a row whose
block changed is stale. Tables written before the column existed are checked against
the whole space's fingerprint, as they always were.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwnas.errors import HwnasError, Setting, naming, setting
from hwnas.io import atomic_write, atomic_write_text
from hwnas.space import Architecture, Position, SearchSpace, Shape, Unit

if TYPE_CHECKING:
    from torch import nn


def shape_str(shape: Sequence[int]) -> str:
    """(1, 32, 256, 256) -> '1x32x256x256' (the CSV form of an input shape)."""
    return "x".join(str(int(d)) for d in shape)


def parse_shape(text: str) -> Shape:
    return tuple(int(d) for d in str(text).split("x"))


Key = tuple[str, str, str]  # (kind, name, input shape) -- a table's row key


def unit_key(unit: "Unit | Measurement") -> Key:
    return (unit.kind, unit.name, shape_str(unit.input_shape))


class MeasurementError(HwnasError):
    """A backend could not measure a unit; the message says which and why."""


class Measurement(BaseModel):
    """One measured unit. Times are milliseconds; a failure is raised, never recorded."""

    model_config = ConfigDict(frozen=True)

    kind: str = "candidate"
    name: str
    input_shape: Shape
    median_ms: float = Field(ge=0)
    p10_ms: float = Field(ge=0)
    p90_ms: float = Field(ge=0)
    runs: int = Field(ge=1)
    device: str
    runtime: str
    peak_memory_bytes: int | None = None
    service_ms: float | None = Field(None, ge=0)  # the measuring service's own figure, when it reports one (AI Hub's estimate)
    spread_pct: float | None = Field(None, ge=0)  # how far repeated passes' medians disagree, % of the median
    noisy: bool | None = None  # True: the passes disagree by more than the backend trusts (the row is suspect)

    @field_validator("median_ms", "p10_ms", "p90_ms", "service_ms", "spread_pct")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("latency must be finite")
        return v


class LatencyBackend(ABC):
    """Measures units on one target. Subclasses set `name` and `Options` (pydantic)."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    # True when measuring queues jobs on a remote service (shared devices, quotas): commands then say
    # how many (`planned_jobs`) and ask before submitting (`hwnas.cli.jobs`).
    submits_jobs: ClassVar[bool] = False

    def __init__(self, options: BaseModel):
        self.options = options

    @property
    @abstractmethod
    def device(self) -> str:
        """The measured target, as recorded in tables (e.g. 'sm8650', a CPU model)."""

    def settings(self) -> dict[str, Any]:
        """Everything that changes the numbers (threads, runtime, compute unit).

        A table refuses a backend whose settings differ from those it was measured with
        (keys present in both are compared), so keep out what only changes precision.
        """
        return self.options.model_dump(mode="json")

    def protocol(self) -> dict[str, Any]:
        """How the numbers were taken (repeats, warm-up, subtracted overheads): recorded in
        the sidecar's settings beside `settings()`, never compared."""
        return {}

    def tool_versions(self) -> dict[str, str]:
        """Versions of the tools that produced the numbers (recorded, not compared)."""
        return versions("hwnas", "torch", "onnx")

    def check_configured(self) -> None:
        """Raise one clear `HwnasError` when the backend cannot measure yet (a missing token,
        an absent runtime). Called before anything is measured, asked or submitted; local
        backends that need nothing keep this default."""

    @abstractmethod
    def measure(
        self, units: Sequence[Unit], on_result: Callable[[Measurement], None] | None = None
    ) -> list[Measurement]:
        """One `Measurement` per unit, in order. `on_result` is called as each arrives,
        so a caller can persist it at once. Raise `MeasurementError` on any failure."""

    def planned_jobs(self, units: Sequence[Unit]) -> int:
        """How many jobs (remote submissions, or local sessions) measuring `units` costs."""
        return len(units)

    def attach(self, jobs: dict[str, Any], save: Callable[[], None]) -> None:
        """Hand the backend the table's persistent job book (`TableMeta.jobs`).

        A remote backend records each submitted job id in `jobs` and calls `save()` at
        once, so an interrupted build re-attaches to running jobs instead of paying for
        them again. Local backends ignore it.
        """

    def measure_space(
        self, space: SearchSpace, image_size: int, units: Sequence[Unit],
        on_result: Callable[[Measurement], None] | None = None,
    ) -> list[Measurement]:
        """Measure `units` of `space`. The default measures each unit alone; a backend
        may instead profile whole networks and attribute per-layer times to units."""
        return self.measure(units, on_result)

    def measure_network(self, module: "nn.Module", input_shape: Sequence[int]) -> Measurement:
        """End-to-end latency of a whole network at `input_shape` (kind "network", name
        "network"), taken the same way as the table's units so the two compare. The
        default measures it as one unit."""
        return self.measure([Unit("network", tuple(input_shape), module, kind="network")])[0]

    def check_accuracy(self, model: str | Path, inputs: np.ndarray, reference: np.ndarray) -> Any:
        """Run the ONNX file `model` on the backend's device on `inputs` (N x C x H x W) and score
        its outputs against PyTorch's `reference` by PSNR; returns an object with `as_dict()`
        (its `overall_psnr_db` at least). Backends that cannot run a model on their device keep
        this default."""
        raise naming(f"the {self.name} backend cannot run a model on its device to check its accuracy; "
                     "use {check_on}.", check_on=setting("check_on", "qai-hub"))

    def measure_onnx(self, path: str | Path, input_shape: Sequence[int] | None = None) -> Measurement:
        """End-to-end latency of an ONNX file, taken like `measure_network`; dimensions the
        file leaves free come from `input_shape`. Backends that cannot say keep this default."""
        raise naming(f"the {self.name} backend cannot time an ONNX file; choose another {{backend}} (see `hwnas backends`), "
                     "e.g. onnxruntime for this CPU.", backend=setting("backend"))

    def breakdown(self, module: "nn.Module", input_shape: Sequence[int]) -> pd.DataFrame:
        """Per-layer time of one forward pass: a DataFrame with columns `name` (the layer
        or ONNX node name, which carries the module path, e.g. `/enc0/enc0.0/norm1/ReduceMean`),
        `op_type` and `ms` (milliseconds per pass). Backends that cannot say keep this default."""
        raise naming(f"the {self.name} backend cannot break latency down per layer; choose another {{backend}} "
                     "(see `hwnas backends`) for {breakdown}.", backend=setting("backend"), breakdown=setting("breakdown"))


class TableMeta(BaseModel):
    """The sidecar: what a table was measured for. A table refuses anything else."""

    model_config = ConfigDict(extra="allow")

    space: str
    fingerprint: str
    preset: str | None = None
    image_size: int
    backend: str
    device: str
    settings: dict[str, Any] = {}
    versions: dict[str, str] = {}
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    jobs: dict[str, Any] = {}  # backend bookkeeping, e.g. submitted AI Hub job ids to re-attach to
    space_config: dict[str, Any] = {}  # the space's resolved options, so `--lut` can rebuild the space

    @property
    def precision(self) -> str:  # what the units were timed at: the backend's setting (tables from before precisions: fp32)
        return str(self.settings.get("precision", "fp32"))

    @classmethod
    def read(cls, path: str | Path) -> "TableMeta":
        """The sidecar of the table at `path` (or the sidecar file itself)."""
        path = Path(path)
        side = path if path.name.endswith(".meta.json") else sidecar_path(path)
        if not side.is_file():
            raise HwnasError(f"{path} has no sidecar {side.name}; rebuild it with `hwnas build-lut`.")
        try:
            return cls.model_validate_json(side.read_text())
        except (ValidationError, OSError, UnicodeDecodeError):
            raise HwnasError(f"{side} is not an hwnas table sidecar; rebuild the table with `hwnas build-lut`.") from None


FINGERPRINT = "fingerprint"  # the column of each row's unit fingerprint (absent from tables before it existed)
COLUMNS = ["kind", "name", "input_shape", "median_ms", "p10_ms", "p90_ms", "runs", "peak_memory_bytes", "device", "runtime",
           "service_ms", "spread_pct", "noisy", FINGERPRINT]


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".meta.json")


class LatencyTable:
    """Measured units (long format) plus the sidecar describing the measurement."""

    def __init__(self, meta: TableMeta, frame: pd.DataFrame | None = None):
        self.meta = meta
        self.frame = frame if frame is not None else pd.DataFrame(columns=COLUMNS)

    # -- persistence -------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        """Read CSV + sidecar; refuse missing, NaN, infinite or negative entries."""
        path = Path(path)
        if not path.is_file():
            raise HwnasError(f"no latency table at {path}; build one with `hwnas build-lut --out {path}`.")
        meta = TableMeta.read(path)
        try:
            frame = pd.read_csv(path, dtype={"input_shape": str, "name": str, "kind": str, FINGERPRINT: str})
        except Exception as err:  # pandas raises many types for malformed files
            raise HwnasError(f"cannot read latency table {path} ({err.__class__.__name__}); rebuild it with `hwnas build-lut`.") from None
        table = cls(meta, frame)
        table._validate(path)
        return table

    def _validate(self, path: Path) -> None:
        lacking = [c for c in ("kind", "name", "input_shape", "median_ms") if c not in self.frame.columns]
        if lacking:
            raise HwnasError(f"latency table {path} lacks columns {lacking}; rebuild it with `hwnas build-lut`.")
        keys = self.frame[["kind", "name", "input_shape"]]
        if keys.isna().any(axis=None):
            raise HwnasError(f"latency table {path} has rows without a kind, name or input shape; rebuild it with `hwnas build-lut --force`.")
        duplicated = keys.duplicated()
        if duplicated.any():
            row = self.frame[duplicated].iloc[0]
            raise HwnasError(f"latency table {path} has two rows for {row['name']}@{row['input_shape']}; rebuild it with `hwnas build-lut --force`.")
        for column in ("median_ms", "p10_ms", "p90_ms"):
            if column not in self.frame.columns:
                continue
            ms = pd.to_numeric(self.frame[column], errors="coerce")
            bad = self.frame[~np.isfinite(ms) | (ms < 0)]
            if len(bad):
                row = bad.iloc[0]
                raise HwnasError(
                    f"latency table {path} has {len(bad)} invalid {column} entries (e.g. {row['name']}@{row['input_shape']}: "
                    f"{row[column]}); re-measure them with `hwnas build-lut --force`."
                )
            self.frame[column] = ms

    def save(self, path: str | Path) -> None:
        """Write CSV then sidecar, each atomically (an interrupted save loses nothing)."""
        path = Path(path)
        frame = self.frame.sort_values(["kind", "name", "input_shape"], kind="stable")
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
        atomic_write_text(sidecar_path(path), self.meta.model_dump_json(indent=2) + "\n")

    # -- lookup --------------------------------------------------------------------

    def _index(self) -> dict[tuple[str, str, str], float]:
        return {
            (k, n, s): float(m)
            for k, n, s, m in zip(self.frame["kind"], self.frame["name"], self.frame["input_shape"], self.frame["median_ms"])
        }

    def has(self, unit: Unit) -> bool:
        return (unit.kind, unit.name, shape_str(unit.input_shape)) in self._index()

    def missing(self, units: Iterable[Unit]) -> list[Unit]:
        index = self._index()
        return [u for u in units if (u.kind, u.name, shape_str(u.input_shape)) not in index]

    def ms(self, name: str, input_shape: Sequence[int], kind: str = "candidate") -> float:
        value = self._index().get((kind, name, shape_str(input_shape)))
        if value is None:
            raise HwnasError(
                f"the latency table has no entry for {kind} {name!r} at input {shape_str(input_shape)}; "
                "complete it with `hwnas build-lut` for this space and image size."
            )
        return value

    def add(self, m: Measurement, fingerprint: str | None = None) -> None:
        """Insert or replace the row for `m`'s unit; `fingerprint` is the unit's (`hwnas.layout`)."""
        key = shape_str(m.input_shape)
        keep = ~((self.frame["kind"] == m.kind) & (self.frame["name"] == m.name) & (self.frame["input_shape"] == key))
        row = {**m.model_dump(), "input_shape": key, FINGERPRINT: fingerprint}
        new = pd.DataFrame([{c: row.get(c) for c in COLUMNS}])
        self.frame = new if not keep.any() else pd.concat([self.frame[keep], new], ignore_index=True)

    # -- unit fingerprints ---------------------------------------------------------------

    @property
    def fingerprinted(self) -> bool:
        """True when every row knows its unit's fingerprint: the table is then checked row by row."""
        return FINGERPRINT in self.frame.columns and bool(self.frame[FINGERPRINT].notna().all())

    def _fingerprints(self) -> dict[Key, str | None]:
        column = self.frame[FINGERPRINT] if FINGERPRINT in self.frame.columns else [None] * len(self.frame)
        return {(k, n, s): (None if pd.isna(f) else str(f))
                for k, n, s, f in zip(self.frame["kind"], self.frame["name"], self.frame["input_shape"], column)}

    def stale(self, units: Mapping[Key, str]) -> list[Key]:
        """Rows of `units` (key -> the space's unit fingerprint) measured for another structure."""
        known = self._fingerprints()
        return [key for key, fp in units.items() if known.get(key) not in (None, fp)]

    def matching(self, units: Mapping[Key, str]) -> list[Key]:
        """Rows of `units` whose recorded fingerprint is the space's: the usable ones."""
        known = self._fingerprints()
        return [key for key, fp in units.items() if known.get(key) == fp]

    def drop(self, keys: Iterable[Key]) -> None:
        gone = set(keys)
        keep = [(k, n, s) not in gone for k, n, s in zip(self.frame["kind"], self.frame["name"], self.frame["input_shape"])]
        self.frame = self.frame[keep].reset_index(drop=True)

    def fill_fingerprints(self, units: Mapping[Key, str]) -> None:
        """Record `units`' fingerprints on rows that lack one (a table from before the column,
        once its rows are known to be of these units)."""
        known = self._fingerprints()
        self.frame[FINGERPRINT] = [fp if fp is not None else units.get(key) for key, fp in known.items()]

    # -- compatibility ---------------------------------------------------------------

    def check(
        self, *, space: str, fingerprint: str, image_size: int, device: str | None = None,
        backend: str | None = None, settings: dict[str, Any] | None = None, hint: str | Setting | None = None,
        units: Mapping[Key, str] | None = None,
    ) -> None:
        """Refuse, in one line, a table measured for another space, network, size or target.

        `device` matches the device the table recorded (e.g. 'cpu:AMD EPYC') or the one
        its backend was asked for (`settings["device"]`, e.g. 'cpu'). `settings` (a
        backend's `settings()`) must agree on every key the sidecar also has, and on
        `protocol_version` always (a sidecar without one is version 1). `hint`
        replaces the suggested fix (a `Setting` where it names settings: its Python and
        command-line wordings). A fix that names a setting names the parameter from
        Python and the flag on the command line (`hwnas.errors.naming`).

        `units` (the space's unit fingerprints, `Layout.unit_fingerprints`) checks a table
        whose rows carry fingerprints row by row instead of by the space's `fingerprint`:
        it is refused when a row of the space is stale (its block changed) or when no row
        fits the space at all; rows the space lacks are ignored, and rows the table lacks
        are left to `require`. Without `units`, or for a table from before row
        fingerprints, the space's `fingerprint` must match as before.
        """
        m = self.meta

        def refuse(problem: str, fix: str, **settings: Setting | Any) -> None:
            if isinstance(hint, Setting):  # the caller's fix, in both wordings
                raise HwnasError(f"this latency table was {problem}; {hint.python}.", cli=f"this latency table was {problem}; {hint.cli}.")
            raise naming(f"this latency table was {problem}; " + (hint or fix) + ".", **settings)

        def refuse_configuration() -> None:
            refuse(f"built for another {space} configuration (preset {m.preset!r})",
                   "pass the same {preset} or rebuild it with `hwnas build-lut`",
                   preset=Setting("spec (preset and options)", "--preset/options"))

        if m.space != space:
            refuse(f"built for space {m.space!r}, not {space!r}", f"build one with `hwnas build-lut --space {space}`")
        by_row = units is not None and self.fingerprinted
        if not by_row and m.fingerprint != fingerprint:
            refuse_configuration()
        if m.image_size != image_size:
            refuse(f"measured at {m.image_size}px, not {image_size}px", "pass {image_size} or rebuild it",
                   image_size=m.image_size)
        if backend is not None and m.backend != backend:
            refuse(f"measured with backend {m.backend!r}, not {backend!r}", "pass {backend} or rebuild it", backend=m.backend)
        if device is not None and device not in (m.device, m.settings.get("device")):
            refuse(f"measured on {m.device!r}, not {device!r}", "pass {device} or rebuild it",
                   device=m.settings.get("device", m.device))
        # Precision first: an int8 table is also timed by another protocol, and the precision is the user's mistake.
        for key, value in sorted((settings or {}).items(), key=lambda kv: kv[0] != "precision"):
            if key == "precision" and m.precision != value:
                refuse(f"measured at precision {m.precision}, not {value}", "pass {precision} or build a " + value + " table",
                       precision=m.precision)
            if key == "protocol_version" and m.settings.get(key, 1) != value:  # tables from before versions are 1
                refuse(f"timed by another protocol (version {m.settings.get(key, 1)}, this hwnas times by version {value})",
                       "rebuild it with `hwnas build-lut --force` (add --out for a table outside the cache)")
            if key in m.settings and m.settings[key] != value:
                refuse(f"measured with {key}={m.settings[key]}, not {value}", "pass {key} or rebuild it",
                       key=setting(key, m.settings[key]))
        if by_row:
            self._check_rows(units, m.fingerprint == fingerprint, refuse_configuration)

    def _check_rows(self, units: Mapping[Key, str], same_space: bool, refuse_configuration: Callable[[], None]) -> None:
        """Refuse stale rows, and a table that shares no row with another space (another width,
        preset or space): extending it would only pile another table's rows beside its own."""
        if not same_space and len(self.frame) and not self.matching(units):
            refuse_configuration()
        stale = self.stale(units)
        if stale:
            names = ", ".join(f"{k} {n}@{s}" for k, n, s in stale[:5])
            more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
            raise naming(
                f"the latency table has {len(stale)} stale rows ({names}{more}): their blocks changed since they were "
                "measured; run `hwnas build-lut` on it, which re-measures only stale and missing rows, or pass {force} "
                "to re-measure everything.", force=setting("force", True)
            )

    def require(self, units: Iterable[Unit]) -> None:
        """Raise listing the missing entries, if any."""
        lacking = self.missing(units)
        if lacking:
            names = ", ".join(f"{u.name}@{shape_str(u.input_shape)}" for u in lacking[:5])
            more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
            raise HwnasError(f"the latency table lacks {len(lacking)} entries ({names}{more}); complete it with `hwnas build-lut`.")


def position_costs(table: LatencyTable, positions: Sequence[Position]) -> np.ndarray:
    """ms per (position, candidate), shape (P, K_max); positions with fewer candidates pad with NaN."""
    k = max(len(p.candidates) for p in positions)
    out = np.full((len(positions), k), np.nan)
    for i, pos in enumerate(positions):
        for j, name in enumerate(pos.candidates):
            out[i, j] = table.ms(name, pos.input_shape)
    return out


def fixed_ms(table: LatencyTable, fixed: Iterable[Unit]) -> float:
    return sum(table.ms(u.name, u.input_shape, kind="fixed") for u in fixed)


def predict_ms(table: LatencyTable, positions: Sequence[Position], fixed: Iterable[Unit], arch: Architecture) -> float:
    """Table-predicted end-to-end latency: fixed parts + the chosen candidate at every position."""
    return fixed_ms(table, fixed) + sum(table.ms(arch.choices[p.label], p.input_shape) for p in positions)


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of the named distributions (for sidecars and results)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out

