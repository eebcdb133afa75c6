"""The end-to-end check: measure whole networks and compare them with the table's prediction.

Table-predicted latency (fixed parts + the chosen candidate at every position) is only
useful if it matches the device; tools whose tables miss by 20-35% are the common
complaint. `profile_architecture` measures one frozen network on the same backend,
with the same settings and statistic as the table's units, and reports the error;
`profile_architectures` measures several in the same interleaved rounds, each result
keeping its batch, and `hwnas.tables.fidelity.Fidelity` sums them up (mean and worst
error, how many within +-10%; absolute, and scale-free: one common factor per batch
taken out) -- what `hwnas profile --random-count N` prints and
`benchmarks/bench_fidelity.py` records.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from hwnas.contracts.latency import (
    BreaksDown, LatencyBackend, LatencyTable, Measurement, TimesOnnx, fixed_ms, predict_ms, require,
)
from hwnas.contracts.space import Architecture, SearchSpace, Unit, freeze

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

log = logging.getLogger(__name__)

NOISY_SPREAD = 0.2  # (p90 - p10) / median above this: the runs disagree too much to trust one number
NETWORK_BATCH = 5  # networks measured together: one paper-size network session holds ~0.4 GB on the CPU


@dataclass(frozen=True)
class Prediction:
    total_ms: float
    fixed_ms: float
    table: str


@dataclass(frozen=True)
class ProfileResult:
    """A measured network, the table's prediction for it (if a table was given) and,
    if asked, the per-layer breakdown (`hwnas.tables.breakdown.attribute` columns)."""

    label: str
    architecture: Architecture
    measured: Measurement
    prediction: Prediction | None = None
    breakdown: "pd.DataFrame | None" = None
    same_rounds: Prediction | None = None  # from the table's units timed again in the network's own rounds
    batch: int | None = None  # which interleaved batch of `profile_architectures` timed it (0, 1, ...)

    @property
    def error_pct(self) -> float | None:
        """(predicted - measured) / measured, in percent."""
        return _error_pct(self.prediction, self.measured)

    @property
    def error_same_rounds_pct(self) -> float | None:
        """The error of the units timed in the network's own rounds: the per-unit method's own
        error, with whatever the machine did since the table was built taken out."""
        return _error_pct(self.same_rounds, self.measured)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "architecture": self.architecture.model_dump(),
            "measured": self.measured.model_dump(mode="json"),
            "predicted_ms": self.prediction.total_ms if self.prediction else None,
            "predicted_fixed_ms": self.prediction.fixed_ms if self.prediction else None,
            "table": self.prediction.table if self.prediction else None,
            "error_pct": self.error_pct,
        }
        if self.batch is not None:
            out["batch"] = self.batch
        if self.same_rounds is not None:
            out.update(predicted_same_rounds_ms=self.same_rounds.total_ms, error_same_rounds_pct=self.error_same_rounds_pct)
        if self.breakdown is not None:
            from hwnas.tables.breakdown import summarise

            out["breakdown"] = {
                "by_group": summarise(self.breakdown).to_dict(orient="records"),
                "by_op_type": summarise(self.breakdown, by="op_type").to_dict(orient="records"),
                "run_ms": self.breakdown.attrs.get("run_ms"),
            }
        return out


def _error_pct(prediction: Prediction | None, measured: Measurement) -> float | None:
    if prediction is None or measured.median_ms <= 0:
        return None
    return 100.0 * (prediction.total_ms - measured.median_ms) / measured.median_ms


def random_architecture(space: SearchSpace, image_size: int, seed: int) -> Architecture:
    """Each position's candidate drawn uniformly with `random.Random(seed)` (same seed, same architecture)."""
    rng = random.Random(seed)
    return Architecture(space=space.name, choices={p.label: rng.choice(p.candidates) for p in space.positions(image_size)})


def predict(table: LatencyTable, space: SearchSpace, image_size: int, arch: Architecture, source: str) -> Prediction:
    """The table's end-to-end prediction for `arch` (missing entries raise HwnasError)."""
    import torch

    with torch.device("meta"):
        fixed = space.fixed_units(image_size)
    positions = space.positions(image_size)
    return Prediction(predict_ms(table, positions, fixed, arch), fixed_ms(table, fixed), source)


def profile_architecture(
    space: SearchSpace,
    image_size: int,
    arch: Architecture,
    backend: LatencyBackend,
    *,
    label: str,
    table: LatencyTable | None = None,
    table_source: str = "",
    breakdown: bool = False,
) -> ProfileResult:
    """Measure `arch` frozen out of `space` end to end on `backend` and compare with `table`.

    The table (if any) must already be checked against the space, size and backend.
    The prediction is computed first, so a table lacking entries fails before any
    measuring.
    """
    arch.check(space.name, {p.label: p.candidates for p in space.positions(image_size)})
    prediction = predict(table, space, image_size, arch, table_source) if table is not None else None
    net = freeze(space, arch).eval()
    shape = tuple(space.example_input(image_size).shape)
    measured = backend.measure_network(net, shape)
    _warn_if_noisy(ProfileResult(label, arch, measured))
    layers = None
    if breakdown:
        from hwnas.tables.breakdown import attribute

        layers = attribute(require(backend, BreaksDown).breakdown(net, shape), net)
    return ProfileResult(label, arch, measured, prediction, layers)


def random_architectures(space: SearchSpace, image_size: int, count: int, first_seed: int = 0) -> list[tuple[str, Architecture]]:
    """`count` random architectures, seeds `first_seed`, `first_seed + 1`, ... (labelled `random-<seed>`)."""
    return [(f"random-{seed}", random_architecture(space, image_size, seed)) for seed in range(first_seed, first_seed + count)]


def profile_architectures(
    space: SearchSpace,
    image_size: int,
    archs: Sequence[tuple[str, Architecture]],
    backend: LatencyBackend,
    *,
    table: LatencyTable | None = None,
    table_source: str = "",
    batch: int = NETWORK_BATCH,
    same_rounds: bool = False,
    on_result: Callable[[ProfileResult], None] | None = None,
) -> list[ProfileResult]:
    """Measure several `(label, architecture)` networks end to end and compare each with `table`.

    Networks go to the backend `batch` at a time (`LatencyBackend.measure`), so a backend
    that interleaves (onnxruntime) times a batch in the same rounds and machine drift hits
    its networks alike; only one batch is built at a time. All predictions are computed
    first, so a table lacking entries fails before any measuring. With `same_rounds`, every
    unit of a complete table goes to the backend with each batch, and each result also
    holds the prediction of those units (`ProfileResult.same_rounds`): a table built at
    another moment ran at another speed of the machine, and this separates that from the
    per-unit method's own error. `on_result` gets each result as its batch finishes.
    """
    candidates = {p.label: p.candidates for p in space.positions(image_size)}
    for _, arch in archs:
        arch.check(space.name, candidates)
    predictions = {label: predict(table, space, image_size, arch, table_source) for label, arch in archs} if table is not None else {}
    shape = tuple(space.example_input(image_size).shape)
    results = []
    for start in range(0, len(archs), max(1, batch)):
        part = archs[start:start + max(1, batch)]
        networks = [Unit(label, shape, freeze(space, arch).eval(), kind="network") for label, arch in part]
        again = _table_units(space, image_size) if same_rounds else []
        measured = backend.measure(again + networks)
        retimed = _throwaway_table(space, image_size, backend, measured[:len(again)]) if same_rounds else None
        for (label, arch), m in zip(part, measured[len(again):]):
            redone = predict(retimed, space, image_size, arch, "same rounds") if retimed is not None else None
            result = ProfileResult(label, arch, m, predictions.get(label), same_rounds=redone, batch=start // max(1, batch))
            _warn_if_noisy(result)
            results.append(result)
            if on_result:
                on_result(result)
    return results


def _table_units(space: SearchSpace, image_size: int) -> list[Unit]:
    from hwnas.tables.building import table_units

    return table_units(space, image_size)


def _throwaway_table(space: SearchSpace, image_size: int, backend: LatencyBackend, measured: Sequence[Measurement]) -> LatencyTable:
    from hwnas.tables.building import new_meta

    table = LatencyTable(new_meta(space, image_size, backend))
    for m in measured:
        table.add(m)
    return table


def _warn_if_noisy(result: ProfileResult) -> None:
    m = result.measured
    spread = (m.p90_ms - m.p10_ms) / m.median_ms if m.median_ms > 0 else 0.0
    if spread > NOISY_SPREAD:
        log.warning("the runs of %s vary by %.0f%% (p10 %.1f ms, p90 %.1f ms): something else is probably using the "
                    "CPU or device; re-run when it is idle before trusting the error", result.label, 100 * spread,
                    m.p10_ms, m.p90_ms)


# -- an ONNX file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxProfile:
    """An ONNX file timed on a backend; for a file from `hwnas export`, the architecture its
    metadata names and the table's prediction for it (or `note`: why there is none)."""

    path: str
    measured: Measurement
    architecture: Architecture | None = None
    space_label: str = ""
    prediction: Prediction | None = None
    note: str = ""

    @property
    def error_pct(self) -> float | None:
        if self.prediction is None or self.measured.median_ms <= 0:
            return None
        return 100.0 * (self.prediction.total_ms - self.measured.median_ms) / self.measured.median_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnx": self.path, "measured": self.measured.model_dump(mode="json"),
            "architecture": self.architecture.model_dump() if self.architecture else None, "space": self.space_label or None,
            "predicted_ms": self.prediction.total_ms if self.prediction else None,
            "table": self.prediction.table if self.prediction else None, "error_pct": self.error_pct, "note": self.note or None,
        }


def exported_architecture(path: Path):
    """(SpaceSpec, Architecture) from the metadata `hwnas export` writes into an ONNX file;
    None for a file without it."""
    import onnx

    from hwnas.contracts.config import SpaceSpec
    from hwnas.contracts.errors import HwnasError
    from hwnas.deploy.inference import PRODUCER

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX: the backend says so when it loads the file
        return None
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("producer") != PRODUCER:
        return None
    try:
        return SpaceSpec.model_validate_json(meta["space"]), Architecture.model_validate_json(meta["arch"])
    except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
        raise HwnasError(f"{path} has damaged hwnas metadata; export the network again with `hwnas export`.") from None


def _how_spaces_differ(file_space: SearchSpace, space: SearchSpace, label: str) -> str:
    """Why the file's network is not the table's, naming the options that differ (the preset may be the same)."""
    if file_space.name != space.name:
        return f"the file is a {label} network, the table is for {space.name} (preset {space.preset})"
    mine, theirs = file_space.config.model_dump(mode="json"), space.config.model_dump(mode="json")
    options = [f"{k} {mine.get(k)} (the table's: {theirs.get(k)})" for k in sorted({*mine, *theirs}) if mine.get(k) != theirs.get(k)]
    if not options:  # same options, other fingerprint: the space's code changed since one of them was made
        return f"the file's {label} network was built by another version of the space than the table's; export it again"
    return f"the file's {label} network has {', '.join(options)}"


def _check_precision(path: Path, table: LatencyTable, table_source: str) -> None:
    """Refuse an export of one precision against a table of another: its prediction would be of another network."""
    import onnx

    from hwnas.contracts.errors import HwnasError

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    exported = meta.get("precision", "fp32")  # `hwnas export` marks only quantised files
    timed = table.meta.precision
    if exported != timed:
        raise HwnasError(f"{path} was exported at precision {exported} but the table {table_source} times {timed}; compare "
                         f"it with a table built with `--precision {exported}`, or profile the {timed} export.")


def profile_onnx(
    path: Path, backend: LatencyBackend, space: SearchSpace, image_size: int, *,
    table: LatencyTable | None = None, table_source: str = "",
) -> OnnxProfile:
    """Time the ONNX file at `path` on `backend` (free input dimensions from `space` at
    `image_size`) and, when the file names an architecture of the table's space and was
    timed at the table's image size, compare it with the table's prediction."""
    shape = tuple(space.example_input(image_size).shape)
    named = exported_architecture(path)
    if named is not None and table is not None:
        _check_precision(path, table, table_source)
    measured = require(backend, TimesOnnx).measure_onnx(path, shape)
    if named is None:
        return OnnxProfile(str(path), measured, note="the file holds no hwnas metadata naming its architecture")
    spec, arch = named
    file_space = spec.create()
    label = f"{file_space.name} (preset {file_space.preset})"
    if table is None:
        return OnnxProfile(str(path), measured, arch, label, note="no table to compare with (pass --lut)")
    if file_space.fingerprint() != space.fingerprint():
        return OnnxProfile(str(path), measured, arch, label, note=_how_spaces_differ(file_space, space, label))
    size = table.meta.image_size
    want = tuple(space.example_input(size).shape)
    if tuple(measured.input_shape) != want:
        return OnnxProfile(str(path), measured, arch, label,
                           note=f"the file takes {'x'.join(map(str, measured.input_shape))}, the table is for {'x'.join(map(str, want))}")
    return OnnxProfile(str(path), measured, arch, label, predict(table, space, size, arch, table_source))
