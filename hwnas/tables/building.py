"""Cached latency tables: build only what is missing, durably, and find them again.

`build_table` wraps any `LatencyBackend`: it opens the table at a path (refusing one
measured for another space, size, backend, device or settings), asks the backend for
the units the table lacks -- every candidate at every input shape of the space plus its
fixed parts -- and saves the table atomically after each measurement, so a killed build
resumes where it stopped and loses nothing. When nothing is missing it returns without
building real modules, exporting anything or importing a runtime.

Rows are checked by their unit's fingerprint (`hwnas.contracts.layout`): adding a candidate to a
space makes its rows missing, so the next build measures only those and keeps every
other row as it was; a row whose block changed is stale and re-measured. A table from
before row fingerprints gets them filled in when the space it was built for can still be
rebuilt from its sidecar with the same fingerprint (then its rows provably are of that
space's units); otherwise it is checked against the whole space, as before.

`default_table_path` is the per-user cache that commands use when no `--lut` is given;
`resolve_with_table` gives a command its space/backend settings from a table's sidecar
(an explicit flag that contradicts the table is refused; `hwnas.tables.target`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hwnas.contracts.errors import HwnasError, Setting, naming, setting, wording
from hwnas.contracts.latency import Key, unit_key  # noqa: F401 -- the row key lives in hwnas.contracts.latency; kept importable from here
from hwnas.contracts.latency import LatencyBackend, LatencyTable, Measurement, MeasurementError, TableMeta, shape_str, sidecar_path
from hwnas.contracts.space import SearchSpace, Unit
from hwnas.tables.target import MeasurementTarget

log = logging.getLogger(__name__)


def table_units(space: SearchSpace, image_size: int, *, meta: bool = False) -> list[Unit]:
    """Every unit a complete table of `space` holds: candidates per distinct input shape,
    then fixed parts. With `meta=True` the modules live on the meta device (keys only:
    no memory, no weights) -- the space's layout, traced once -- which is all a
    completeness check needs."""
    if meta:
        return list(space.layout(image_size).units)
    return space.candidate_units(image_size) + space.fixed_units(image_size)


def new_meta(space: SearchSpace, image_size: int, backend: LatencyBackend) -> TableMeta:
    return TableMeta(
        space=space.name, fingerprint=space.fingerprint(), preset=space.preset, image_size=image_size,
        backend=backend.name, device=backend.device, settings={**backend.settings(), **backend.protocol()},
        versions=backend.tool_versions(), space_config=space.config.model_dump(mode="json"),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "none"


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/hwnas/luts (default ~/.cache/hwnas/luts)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "hwnas" / "luts"


def default_table_path(space: SearchSpace, backend_name: str, device: str, image_size: int) -> Path:
    """The per-user cached table for this space (name, preset, fingerprint), backend,
    device and size: <cache>/<space>-<preset>-<fingerprint>-<backend>-<device>-<size>.csv.
    `device` is the backend's recorded target, `backend.device` (e.g. 'cpu:AMD EPYC'
    for onnxruntime, 'sm8650' for qai-hub)."""
    parts = [space.name, space.preset or "custom", space.fingerprint(), backend_name, device, str(image_size)]
    return cache_dir() / ("-".join(_slug(p) for p in parts) + ".csv")


def default_table_path_for(space: SearchSpace, backend: LatencyBackend, image_size: int) -> Path:
    """The cached table for `backend`; a precision other than fp32 gets its own file beside the float one."""
    path = default_table_path(space, backend.name, backend.device, image_size)
    precision = MeasurementTarget.of(space, image_size, backend).precision or "fp32"
    return path if precision == "fp32" else path.with_name(f"{path.stem}-{_slug(str(precision))}.csv")


def open_table(
    space: SearchSpace, image_size: int, backend: LatencyBackend, path: Path, *, force: bool = False
) -> LatencyTable:
    """The table at `path`, checked against `space`, size and `backend`; a new empty one
    if there is none (or if `force`: a forced build starts over)."""
    path = Path(path)
    if force:
        return LatencyTable(new_meta(space, image_size, backend))
    if not path.exists():
        return _from_cached_sibling(space, image_size, backend, path) or LatencyTable(new_meta(space, image_size, backend))
    if not sidecar_path(path).is_file():  # a file hwnas did not write (or lost its sidecar): never resumed into or overwritten
        raise HwnasError(f"{path} already exists and is not an hwnas table (it has no sidecar {sidecar_path(path).name}); "
                         f"choose another --out, or pass --force to replace {path}.")
    table = LatencyTable.load(path)
    units = space.layout(image_size).unit_fingerprints
    if not table.fingerprinted:
        _fill_fingerprints(table, space)
    stale = table.stale(units) if table.fingerprinted else []
    if stale:  # their blocks changed: measured again, like missing rows
        log.warning("re-measuring %d stale rows of %s (their blocks changed): %s", len(stale), path,
                    ", ".join(f"{k} {n}@{s}" for k, n, s in stale))
        table.drop(stale)
    MeasurementTarget.of(space, image_size, backend).check(table, hint=wording(
        f"choose another {{out}}, or pass {{force}} to re-measure {path} from scratch", out=setting("out"), force=True))
    _warn_on_new_versions(table.meta, backend)
    return table


def _from_cached_sibling(space: SearchSpace, image_size: int, backend: LatencyBackend, path: Path) -> LatencyTable | None:
    """A new cached table started from the newest cached one of the same space, preset, backend,
    device, size and precision under another space fingerprint (e.g. before a candidate was
    added): its rows whose unit fingerprints still match are kept, so only what changed is
    measured. None when there is no such table, or it is not checked row by row."""
    if path.parent != cache_dir():
        return None
    pattern = path.name.replace(_slug(space.fingerprint()), "*", 1)
    units = space.layout(image_size).unit_fingerprints
    for other in sorted(path.parent.glob(pattern), key=lambda f: f.stat().st_mtime, reverse=True):
        try:
            old = LatencyTable.load(other)
            keep = set(old.matching(units)) if old.fingerprinted else set()
            old.drop([key for key in zip(old.frame["kind"], old.frame["name"], old.frame["input_shape"]) if key not in keep])
            if not keep:
                continue
            MeasurementTarget.of(space, image_size, backend).check(old)
        except HwnasError:  # another backend setting or an unreadable file: not a start
            continue
        table = LatencyTable(new_meta(space, image_size, backend), old.frame.copy())
        log.info("starting %s from %d matching rows of %s", path.name, len(keep), other.name)
        return table
    return None


def _fill_fingerprints(table: LatencyTable, space: SearchSpace) -> None:
    """Give a table from before row fingerprints its rows' fingerprints, when the space it was
    built for is rebuilt from its sidecar with the recorded fingerprint (then every row is of
    that space's units); otherwise it stays checked against the whole space."""
    same = (table.meta.space, table.meta.fingerprint) == (space.name, space.fingerprint())
    built_for = space if same else space_of(table.meta)  # rebuilds the space from the sidecar; None unless its fingerprint is the table's
    if built_for is not None:
        table.fill_fingerprints(built_for.layout(table.meta.image_size).unit_fingerprints)


def _describe_space(meta: TableMeta, space: SearchSpace) -> None:
    """Let the sidecar name the space the table now completes (kept for information, and so
    `--lut` rebuilds that space); only a table checked row by row may change spaces."""
    meta.fingerprint, meta.preset = space.fingerprint(), space.preset
    meta.space_config = space.config.model_dump(mode="json")


def _warn_on_new_versions(meta: TableMeta, backend: LatencyBackend) -> None:
    now = backend.tool_versions()
    changed = {k: (v, now[k]) for k, v in meta.versions.items() if k in now and now[k] != v}
    if changed:
        listed = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
        log.warning("the table was measured with other tool versions (%s); pass --force to re-measure it", listed)


@dataclass(frozen=True)
class BuildPlan:
    """What `build_table` would do: units a complete table holds, those it lacks, and the
    jobs (remote submissions or local sessions) measuring them would cost."""

    path: Path
    wanted: list[Unit]  # meta-device units: keys only
    missing: list[Unit]
    jobs: int
    force: bool = False

    @property
    def total(self) -> int:
        return len(self.wanted)


def plan_build(
    space: SearchSpace, image_size: int, backend: LatencyBackend, path: Path, *, force: bool = False
) -> BuildPlan:
    """The dry run of `build_table`: nothing is measured, exported or written."""
    table = open_table(space, image_size, backend, path, force=force)
    units = table_units(space, image_size, meta=True)
    missing = table.missing(units)
    return BuildPlan(Path(path), units, missing, backend.planned_jobs(missing) if missing else 0, force)


def dry_run_jobs(space: SearchSpace, image_size: int, backend: LatencyBackend, path: Path, *, force: bool = False) -> int:
    """How many jobs a build would submit (`backend.planned_jobs` of the missing units)."""
    return plan_build(space, image_size, backend, path, force=force).jobs


def build_table(
    space: SearchSpace,
    image_size: int,
    backend: LatencyBackend,
    path: Path,
    *,
    force: bool = False,
    on_progress: Callable[[Measurement], None] | None = None,
    plan: BuildPlan | None = None,
) -> LatencyTable:
    """Complete (or, with `force`, re-measure) the table of `space` at `image_size` on
    `backend`, saved at `path`; return the complete table.

    Only units the table lacks are measured, each saved atomically the moment it
    arrives (CSV + sidecar), so an interrupted build keeps every finished row and the
    next call measures only the rest. The backend gets the table's job book first
    (`attach`), so a remote backend can re-attach to jobs it already submitted.
    Refuses (HwnasError) a table at `path` built for another space, configuration,
    size, backend, device or settings, unless `force`. `plan`, from `plan_build` with
    the same arguments, saves working out the units again.
    """
    path = Path(path)
    table = open_table(space, image_size, backend, path, force=force)
    if plan is not None and (plan.path != path or plan.force != force):
        raise ValueError("the plan was made for another path or force setting")
    wanted = plan.wanted if plan is not None else table_units(space, image_size, meta=True)
    missing = {unit_key(u) for u in table.missing(wanted)}
    if not missing:
        log.debug("%s is complete (%d units); nothing to measure", path, len(wanted))
        return table
    todo = [u for u in table_units(space, image_size) if unit_key(u) in missing]
    fingerprints = space.layout(image_size).unit_fingerprints
    if table.fingerprinted:
        _describe_space(table.meta, space)

    def save() -> None:
        table.save(path)

    backend.attach(table.meta.jobs, save)
    jobs = f" ({backend.planned_jobs(todo)} jobs to submit)" if backend.submits_jobs else ""
    log.info("measuring %d of %d units with %s on %s%s", len(todo), len(wanted), backend.name, backend.device, jobs)

    def on_result(m: Measurement) -> None:
        if unit_key(m) not in missing:
            raise MeasurementError(f"backend {backend.name} returned {m.kind} {m.name}@{shape_str(m.input_shape)}, which was not asked for.")
        table.add(m, fingerprints[unit_key(m)])
        table.meta.settings = _merged(table.meta.settings, {**backend.settings(), **backend.protocol()})
        save()
        if on_progress:
            on_progress(m)

    backend.measure_space(space, image_size, todo, on_result)
    # What the backend learnt only once it finished (e.g. the machine's load over the whole build).
    table.meta.settings = _merged(table.meta.settings, {**backend.settings(), **backend.protocol()})
    save()
    table.require(wanted)
    return table


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` over `old`; nested dicts (e.g. per-shape overheads of a resumed build) are merged."""
    out = dict(old)
    for key, value in new.items():
        out[key] = {**old[key], **value} if isinstance(value, dict) and isinstance(old.get(key), dict) else value
    return out


# -- commands given a table: take their settings from its sidecar -------------------------------


@dataclass(frozen=True)
class TableRequest:
    """What a command was asked for; None (or empty) means 'not given'."""

    space: str | None = None
    preset: str | None = None
    space_options: dict[str, Any] | None = None
    image_size: int | None = None
    backend: str | None = None
    backend_options: dict[str, Any] | None = None


def resolve_with_table(meta: TableMeta, request: TableRequest, source: str, *, refuse: bool = True) -> TableRequest:
    """Fill what `request` leaves open from the table's sidecar `meta`: `MeasurementTarget.with_table`
    (`hwnas.tables.target`), for callers that hold a `TableRequest`."""
    from hwnas.tables.target import MeasurementTarget

    given = MeasurementTarget(request.space, request.preset, request.space_options, request.image_size, request.backend,
                              dict(request.backend_options or {}))
    got = given.with_table(meta, source, refuse=refuse)
    return TableRequest(got.space, got.preset, dict(got.options or {}), got.image_size, got.backend, got.settings)


def make_backend(name: str, options: dict[str, Any]) -> LatencyBackend:
    """`get_backend(name)(Options(**options))`; an option the backend lacks or rejects is
    one HwnasError line naming the option (`backend_options` key, or the flag on the command line)."""
    from pydantic import ValidationError

    from hwnas.contracts.plugins import get_backend

    cls = get_backend(name)
    fields = cls.Options.model_fields
    for key in options:
        if key not in fields:
            raise naming(f"{{key}} does not apply to backend {name}; its options are: {', '.join(fields) or 'none'}.",
                         key=setting(key, python=f"backend_options[{key!r}]"))
    try:
        opts = cls.Options(**options)
    except ValidationError as err:
        first = err.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else ""
        named = setting(key, python=f"backend_options[{key!r}]") if key else Setting("options", "options")
        raise naming(f"invalid {{key}} for backend {name}: {first['msg'].removeprefix('Value error, ')}.", key=named) from None
    return cls(opts)


# -- `hwnas lut show` ----------------------------------------------------------------------------


def _noisy_rows(frame) -> list[str]:
    """Rows the backend flagged: their repeated passes disagreed more than it trusts."""
    if "noisy" not in frame.columns:
        return []
    flagged = frame[frame["noisy"].astype(str).str.lower() == "true"]
    return [f"{k} {n}@{s}" for k, n, s in zip(flagged["kind"], flagged["name"], flagged["input_shape"])]


def space_of(meta: TableMeta) -> SearchSpace | None:
    """The space a table was built for, rebuilt from its sidecar; None if that fails
    (plugin not installed, options changed): a summary then goes without positions."""
    from hwnas.contracts.plugins import get_space

    try:
        space = get_space(meta.space).from_options(meta.preset, **meta.space_config)
    except Exception:  # a summary must not fail because the space moved on
        return None
    return space if space.fingerprint() == meta.fingerprint else None


def describe_table(table: LatencyTable, space: SearchSpace | None = None, reference: str | None = None) -> dict[str, Any]:
    """A table as plain data: sidecar facts; per input shape (one per stage) the positions
    that use it and each candidate's ms with its ratio to `reference` (default: the
    space's first candidate -- the base network's block); fixed parts; the predicted
    total of every uniform network; and what is missing."""
    frame = table.frame
    candidates = frame[frame["kind"] == "candidate"]
    positions = space.positions(table.meta.image_size) if space is not None else []
    names = list(dict.fromkeys(n for p in positions for n in p.candidates)) or list(dict.fromkeys(candidates["name"]))
    reference = reference or (names[0] if names else None)
    stages: dict[str, list[str]] = {}
    for p in positions:
        stages.setdefault(shape_str(p.input_shape), []).append(p.label)
    shapes = list(stages) or list(dict.fromkeys(candidates["input_shape"]))
    ms = {(n, s): float(m) for n, s, m in zip(candidates["name"], candidates["input_shape"], candidates["median_ms"])}
    p10 = candidates["p10_ms"] if "p10_ms" in candidates else candidates["median_ms"]
    p90 = candidates["p90_ms"] if "p90_ms" in candidates else candidates["median_ms"]
    spread = {(n, s): (float(a), float(b)) for n, s, a, b in zip(candidates["name"], candidates["input_shape"], p10, p90)}
    rows = []
    for s in shapes:
        base = ms.get((reference, s))
        cells = {}
        for n in names:
            if (n, s) in ms:
                value = ms[(n, s)]
                cells[n] = {"ms": value, "p10_ms": spread[(n, s)][0], "p90_ms": spread[(n, s)][1], "ratio": value / base if base else None}
        rows.append({"input_shape": s, "positions": stages.get(s, []), "candidates": cells})
    fixed = [
        {"name": n, "input_shape": s, "ms": float(m)}
        for k, n, s, m in zip(frame["kind"], frame["name"], frame["input_shape"], frame["median_ms"]) if k == "fixed"
    ]
    out: dict[str, Any] = {
        "meta": table.meta.model_dump(mode="json", exclude={"jobs"}),
        "reference": reference,
        "stages": rows,
        "fixed": fixed,
        "fixed_ms": sum(f["ms"] for f in fixed),
        "uniform": {},
        "missing": [],
        "noisy": _noisy_rows(frame),
    }
    if space is not None:
        wanted = space.layout(table.meta.image_size).units
        out["missing"] = [f"{u.kind} {u.name}@{shape_str(u.input_shape)}" for u in table.missing(wanted)]
        if not out["missing"]:
            def uniform_ms(name: str) -> float:  # `name` wherever offered, else the position's first candidate
                return out["fixed_ms"] + sum(
                    ms[(name if name in p.candidates else p.candidates[0], shape_str(p.input_shape))] for p in positions
                )

            totals = {n: uniform_ms(n) for n in names}
            base_total = totals.get(reference)
            out["uniform"] = {n: {"ms": t, "ratio": t / base_total if base_total else None} for n, t in totals.items()}
    return out
