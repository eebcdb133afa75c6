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

Each row also keeps its unit's structural fingerprint (`hwnas.contracts.layout`), so a table is
checked row by row: rows whose unit is unchanged are used whatever else the space
gained or lost, a newly added candidate's rows are simply missing, and a row whose
block changed is stale. Tables written before the column existed are checked against
the whole space's fingerprint, as they always were.

This module is the contract plugins import; its two sides live in their own modules and
are re-exported here: `hwnas.contracts.latency_backend` (the backend, measurements, shapes and row
keys) and `hwnas.tables.latency_table` (the table, its sidecar, its checks and predictions).
"""

from __future__ import annotations

from hwnas.contracts.capabilities import (  # re-exported: the optional capabilities of a backend
    BreaksDown, ChecksAccuracy, Layer, LayerTimes, NetworkRequest, ProfilesLayers, TimesOnnx, network_candidates, require,
)
from hwnas.contracts.latency_backend import (  # re-exported
    Key, LatencyBackend, Measurement, MeasurementError, parse_shape, shape_str, unit_key, versions,
)
from hwnas.tables.latency_table import (  # re-exported
    COLUMNS, FINGERPRINT, LatencyTable, TableMeta, fixed_ms, position_costs, predict_ms, sidecar_path,
)
from hwnas.contracts.space import Shape, Unit  # re-exported: the contract's types, importable from here as before

__all__ = [
    "BreaksDown", "ChecksAccuracy", "Layer", "LayerTimes", "NetworkRequest", "ProfilesLayers", "TimesOnnx", "network_candidates", "require",
    "COLUMNS", "FINGERPRINT", "Key", "LatencyBackend", "LatencyTable", "Measurement", "MeasurementError", "Shape",
    "TableMeta", "Unit", "fixed_ms", "parse_shape", "position_costs", "predict_ms", "shape_str", "sidecar_path",
    "unit_key", "versions",
]
