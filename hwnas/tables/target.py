"""The measurement target: what a latency table measures, resolved once and checked in one call.

A table is measured for a space (name, preset and options: its fingerprint and its units'
fingerprints), an image size, and a backend with its options -- among them the device and
the precision. `MeasurementTarget` holds these as given (None: not given), from flags, a
config or a Python call; `with_table` completes it from a table's sidecar (a given value
that contradicts the table is refused), `with_defaults` fills what is still open, and
`check(table)` refuses a table measured for anything else, in one sentence
(`LatencyTable.check`). Commands resolve their target here instead of comparing sidecar
fields by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping

from hwnas.contracts.errors import Setting, naming, setting

if TYPE_CHECKING:
    from hwnas.contracts.config import SpaceSpec
    from hwnas.contracts.latency import LatencyBackend, LatencyTable, TableMeta
    from hwnas.contracts.space import SearchSpace

DEFAULT_SPACE, DEFAULT_BACKEND, DEFAULT_SIZE = "nafnet-unet", "onnxruntime", 256


@dataclass(frozen=True)
class MeasurementTarget:
    """Space, preset, options, image size, backend, device and precision of a latency table.

    `backend_options` are the backend's Options fields given (device and precision are
    kept apart, in their own fields); `settings` is all of them together, as the backend
    is built with."""

    space: str | None = None
    preset: str | None = None
    options: Mapping[str, Any] | None = None  # the space's
    image_size: int | None = None
    backend: str | None = None
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = None
    precision: str | None = None

    def __post_init__(self) -> None:  # -b device=... and --device are the same setting
        options = dict(self.backend_options or {})
        for key in ("device", "precision"):
            if key in options:
                value = options.pop(key)
                object.__setattr__(self, key, getattr(self, key) if getattr(self, key) is not None else value)
        object.__setattr__(self, "backend_options", options)

    @property
    def settings(self) -> dict[str, Any]:
        """The backend's options as given: its own fields, device and precision (those given only)."""
        given = {"device": self.device, "precision": self.precision}
        return {**self.backend_options, **{k: v for k, v in given.items() if v is not None}}

    # -- resolving -----------------------------------------------------------------------------

    def with_table(self, meta: TableMeta, source: str, *, refuse: bool = True) -> MeasurementTarget:
        """What is open completed from a table's sidecar `meta` (the table at `source`).

        Space, preset, image size and backend come from the table unless given; given and
        different, they are refused (one sentence naming the setting) -- or, with
        `refuse=False` (a forced rebuild), they win. Space options come from the table
        unless given (the space's fingerprint then decides). Backend options start from the
        sidecar's settings (the fields the backend's Options has; none if the backend
        changes) with the given ones on top; a given one that changes a compared setting is
        refused by `check`.
        """
        from hwnas.contracts.plugins import get_backend

        def pick(name: str, given: Any, recorded: Any) -> Any:
            if refuse and given is not None and recorded is not None and given != recorded:
                raise naming(f"{{given}} contradicts the latency table {source}, which was built for {{recorded}}; "
                             "drop it or use another table.", given=setting(name, given), recorded=setting(name, recorded))
            return recorded if given is None else given

        space = pick("space", self.space, meta.space)
        preset = pick("preset", self.preset, meta.preset)
        image_size = pick("image_size", self.image_size, meta.image_size)
        backend = pick("backend", self.backend, meta.backend)
        same_space = space == meta.space and preset == meta.preset
        options = self.options or (dict(meta.space_config) if same_space else {})
        recorded: dict[str, Any] = {}
        if backend == meta.backend:
            fields = get_backend(backend).Options.model_fields
            recorded = {k: v for k, v in {**meta.settings, "precision": meta.precision}.items() if k in fields}
        return MeasurementTarget(space, preset, options, image_size, backend, {**recorded, **self.settings})

    def with_defaults(self) -> MeasurementTarget:
        """Every open field filled: the default space, size and backend (the preset stays the space's own)."""
        size = DEFAULT_SIZE if self.image_size is None else self.image_size  # 0 is a value (refused), not "not given"
        return replace(self, space=self.space or DEFAULT_SPACE, options=dict(self.options or {}), image_size=size,
                       backend=self.backend or DEFAULT_BACKEND)

    def spec(self) -> SpaceSpec:
        from hwnas.contracts.config import SpaceSpec

        return SpaceSpec(space=self.space or DEFAULT_SPACE, preset=self.preset, options=dict(self.options or {}))

    # -- what it measures with --------------------------------------------------------------------

    @classmethod
    def of(cls, space: SearchSpace, image_size: int, backend: LatencyBackend | str | None = None,
           device: str | None = None) -> MeasurementTarget:
        """The target of a built space and backend (what `build_table` measures); `backend` may be only
        a name (and `device` the device asked for), for a check that compares no backend settings."""
        built = backend if backend is not None and not isinstance(backend, str) else None
        name = built.name if built is not None else backend
        target = cls(space.name, space.preset, space.config.model_dump(mode="json"), image_size, name,
                     built.settings() if built is not None else {}, device)
        target.__dict__.update(network=space, **({"latency_backend": built} if built is not None else {}))  # already built
        return target

    @cached_property
    def network(self) -> SearchSpace:
        return self.spec().create()

    @cached_property
    def latency_backend(self) -> LatencyBackend:
        from hwnas.tables.building import make_backend

        return make_backend(self.backend or DEFAULT_BACKEND, self.settings)

    # -- the check ---------------------------------------------------------------------------------

    def check(self, table: LatencyTable, *, hint: str | Setting | None = None, settings: bool = True) -> None:
        """Refuse, in one sentence, a table measured for another space (or whose rows measured other
        blocks), image size, backend, device, precision or backend setting. With `settings=False`
        the backend is not built: its name and the device are compared where given, nothing else
        (a search's table, whose backend settings are the table's own)."""
        space = self.network
        size = table.meta.image_size if self.image_size is None else self.image_size
        given = dict(device=self.device, backend=self.backend)
        if settings:
            lat = self.latency_backend
            given = dict(device=lat.device, backend=lat.name, settings=lat.settings())
        table.check(space=space.name, fingerprint=space.fingerprint(), units=space.layout(size).unit_fingerprints,
                    image_size=size, hint=hint, **given)
