"""The keeping side of the latency contract: `LatencyTable` (measured units in long format)
and its sidecar `TableMeta`; reading, saving, checking a table against a space row by row
(unit fingerprints), and predicting from it (`position_costs`, `fixed_ms`, `predict_ms`).
Re-exported by `hwnas.contracts.latency`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hwnas.contracts.errors import HwnasError, Setting, naming, setting
from hwnas.runs.io import atomic_write, atomic_write_text
from hwnas.contracts.latency_backend import Key, Measurement, shape_str
from hwnas.contracts.space import Architecture, Position, Unit


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
        """Insert or replace the row for `m`'s unit; `fingerprint` is the unit's (`hwnas.contracts.layout`)."""
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
        Python and the flag on the command line (`hwnas.contracts.errors.naming`).

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
