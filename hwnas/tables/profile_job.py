"""One `profile` request: networks measured end to end beside the table's prediction (`hwnas.api.profile`).

`ProfileJob.prepare(config)` checks everything before anything is measured -- the space,
the backend and its options, the architecture, and the table (`--lut`, or the per-user
cached one for the same target, used only if it fits) through its `MeasurementTarget` --
and says how many device jobs the run costs; `run()` measures (`hwnas.tables.profiling`)
and returns a `ProfileReport`: one network, N random ones with the table's fidelity, or an
ONNX file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hwnas.contracts.config import ProfileConfig
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import LatencyBackend, LatencyTable
from hwnas.contracts.space import Architecture, SearchSpace, Unit
from hwnas.tables.profiling import OnnxProfile, ProfileResult
from hwnas.tables.target import MeasurementTarget

log = logging.getLogger(__name__)


def resolve_config(fields: dict[str, Any]) -> ProfileConfig:
    """A `ProfileConfig` from what was given (None: not given): with `lut`, space, preset, options,
    image size, backend and its options come from the table's sidecar (a given one that contradicts
    it is refused); without, the defaults. `spec` may be given in part."""
    from hwnas.contracts.config import build_config, plain

    values = {k: plain(v) for k, v in fields.items() if v is not None}
    spec = dict(values.pop("spec", None) or {})
    target = MeasurementTarget(spec.get("space"), spec.get("preset"), spec.get("options") or None, values.pop("image_size", None),
                               values.pop("backend", None), dict(values.pop("backend_options", None) or {}))
    lut = values.get("lut")
    if lut is not None:
        if not Path(lut).is_file():
            raise HwnasError(f"no latency table at {lut}; build one with `hwnas build-lut --out {lut}`.")
        target = target.with_table(LatencyTable.load(lut).meta, str(lut))
    target = target.with_defaults()
    return build_config(ProfileConfig, spec=target.spec(), image_size=target.image_size, backend=target.backend,
                        backend_options=target.settings, **values)


@dataclass(frozen=True)
class ProfileReport:
    """What `profile` measured: `results` (one network, or every random one), or `onnx` (a file);
    for --random-count with a table, the fidelity summaries and each network's scale-free error."""

    config: ProfileConfig
    space: SearchSpace
    backend: LatencyBackend
    table: LatencyTable | None
    table_source: str
    results: list[ProfileResult]
    onnx: OnnxProfile | None = None
    fidelity: Any = None  # hwnas.tables.fidelity.Fidelity
    fidelity_scale_free: Any = None
    fidelity_same_rounds: Any = None
    scale_free_errors: list[float | None] | None = None

    @property
    def result(self) -> ProfileResult:
        return self.results[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document `hwnas profile --json` prints."""
        lat, size = self.backend, self.config.image_size
        target = {"backend": lat.name, "device": lat.device, "settings": lat.settings(), "protocol": lat.protocol()}
        if self.onnx is not None:
            return {**target, **self.onnx.to_dict()}
        head = {"space": self.space.name, "preset": self.space.preset, "image_size": size, **target}
        if self.config.random_count is None:
            return {**head, **self.result.to_dict()}
        errors = self.scale_free_errors or [None] * len(self.results)
        summary = lambda f: f.to_dict() if f else None  # noqa: E731
        return {**head, "table": self.table_source or None,
                "networks": [r.to_dict() | {"scale_free_error_pct": e} for r, e in zip(self.results, errors)],
                "fidelity": summary(self.fidelity), "fidelity_scale_free": summary(self.fidelity_scale_free),
                "fidelity_same_rounds": summary(self.fidelity_same_rounds)}


@dataclass(frozen=True)
class ProfileJob:
    """A validated profile request: its config, space, backend, table and architecture (None: random
    networks or an ONNX file)."""

    config: ProfileConfig
    space: SearchSpace
    backend: LatencyBackend
    table: LatencyTable | None
    table_source: str
    architecture: Architecture | None
    label: str

    @classmethod
    def prepare(cls, config: ProfileConfig) -> ProfileJob:
        from hwnas.tables.building import default_table_path_for, make_backend

        backend = make_backend(config.backend, config.backend_options)
        space = config.spec.create()
        one = config.random_count is None and config.onnx is None
        architecture, label = _architecture(config, space) if one else (None, "")
        target = MeasurementTarget.of(space, config.image_size, backend)
        table, source = _table(config, target, default_table_path_for(space, backend, config.image_size))
        return cls(config, space, backend, table, source, architecture, label)

    @property
    def jobs(self) -> int:
        """Device jobs the run costs (the per-layer breakdown reuses them)."""
        shape = tuple(self.space.example_input(self.config.image_size).shape)
        one = self.backend.planned_jobs([Unit("network", shape, None, kind="network")])
        return one * (self.config.random_count or 1)

    def run(self, on_result: Callable[[ProfileResult], None] | None = None) -> ProfileReport:
        from hwnas.tables.profiling import profile_architecture, profile_onnx

        c, report = self.config, dict(config=self.config, space=self.space, backend=self.backend, table=self.table,
                                      table_source=self.table_source)
        if c.onnx is not None:
            onnx = profile_onnx(Path(c.onnx), self.backend, self.space, c.image_size, table=self.table,
                                table_source=self.table_source)
            return ProfileReport(results=[], onnx=onnx, **report)
        if c.random_count is not None:
            return self._random(report, on_result)
        result = profile_architecture(self.space, c.image_size, self.architecture, self.backend, label=self.label,
                                      table=self.table, table_source=self.table_source, breakdown=c.breakdown)
        return ProfileReport(results=[result], **report)

    def _random(self, report: dict, on_result) -> ProfileReport:
        """N random networks in interleaved rounds, each against the table; the absolute error and the
        scale-free one (one common factor per batch: the machine's drift taken out)."""
        from hwnas.tables.fidelity import Fidelity, scale_free_errors
        from hwnas.tables.profiling import profile_architectures, random_architectures

        c = self.config
        archs = random_architectures(self.space, c.image_size, c.random_count, c.random or 0)
        results = profile_architectures(self.space, c.image_size, archs, self.backend, table=self.table,
                                        table_source=self.table_source, same_rounds=c.same_rounds, on_result=on_result)
        if self.table is None:
            return ProfileReport(results=results, **report)
        errors = scale_free_errors([r.prediction.total_ms for r in results], [r.measured.median_ms for r in results],
                                   [r.batch for r in results])
        return ProfileReport(results=results, fidelity=Fidelity.of(results), fidelity_scale_free=Fidelity.scale_free(results),
                             fidelity_same_rounds=Fidelity.of(results, same_rounds=True) if c.same_rounds else None,
                             scale_free_errors=errors, **report)


def _architecture(config: ProfileConfig, space: SearchSpace) -> tuple[Architecture, str]:
    from hwnas.tables.profiling import random_architecture

    positions = {p.label: p.candidates for p in space.positions(config.image_size)}
    if config.arch:
        arch = Architecture.load(config.arch)
        arch.check(space.name, positions)
        return arch, str(config.arch)
    if config.uniform:
        return Architecture.uniform(space.name, positions, config.uniform), f"all-{config.uniform}"
    return random_architecture(space, config.image_size, config.random), f"random (seed {config.random})"


def _table(config: ProfileConfig, target: MeasurementTarget, cached: Path) -> tuple[LatencyTable | None, str]:
    """(table, its path) checked against the target; (None, "") without one -- or, for the cached
    table, when it does not fit (a warning says why)."""
    path = Path(config.lut) if config.lut else cached
    if not config.lut and not path.is_file():
        log.warning("no cached %s table for this space at %dpx (%s): showing the measurement only; "
                    "build one with `hwnas build-lut` or pass --lut", target.backend, config.image_size, path)
        return None, ""
    try:
        table = LatencyTable.load(path)
        target.check(table)
    except HwnasError as err:
        if config.lut:
            raise
        log.warning("the cached table %s does not fit (%s): showing the measurement only", path, err)
        return None, ""
    return table, str(path)
