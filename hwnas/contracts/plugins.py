"""Plugin discovery: entry points plus explicit registration.

Search spaces live in the entry-point group ``hwnas.searchspaces``, latency backends
in ``hwnas.backends`` and tasks in ``hwnas.tasks`` (name -> class). Library users who
do not want to package their plugin call `register_space` / `register_backend` /
`register_task` instead. Nothing is registered as an import side effect: the
registries are read when asked.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from hwnas.contracts.errors import HwnasError, naming, setting

if TYPE_CHECKING:
    from hwnas.contracts.latency import LatencyBackend
    from hwnas.contracts.space import SearchSpace
    from hwnas.contracts.task import Task

SPACE_GROUP = "hwnas.searchspaces"
BACKEND_GROUP = "hwnas.backends"
TASK_GROUP = "hwnas.tasks"

_explicit: dict[str, dict[str, type]] = {SPACE_GROUP: {}, BACKEND_GROUP: {}, TASK_GROUP: {}}


def register_space(cls: "type[SearchSpace]", name: str | None = None) -> "type[SearchSpace]":
    """Make a search-space class available by name without packaging it."""
    _explicit[SPACE_GROUP][name or cls.name] = cls
    return cls


def register_backend(cls: "type[LatencyBackend]", name: str | None = None) -> "type[LatencyBackend]":
    """Make a latency-backend class available by name without packaging it."""
    _explicit[BACKEND_GROUP][name or cls.name] = cls
    return cls


def register_task(cls: "type[Task]", name: str | None = None) -> "type[Task]":
    """Make a task class available by name without packaging it."""
    _explicit[TASK_GROUP][name or cls.name] = cls
    return cls


def _names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)} | set(_explicit[group]))


def space_names() -> list[str]:
    return _names(SPACE_GROUP)


def backend_names() -> list[str]:
    return _names(BACKEND_GROUP)


def task_names() -> list[str]:
    return _names(TASK_GROUP)


def _load(group: str, name: str, kind: str, parameter: str) -> type:
    if name in _explicit[group]:
        return _explicit[group][name]
    for ep in entry_points(group=group):
        if ep.name == name:
            try:
                return ep.load()
            except ImportError as err:
                raise HwnasError(f"the {kind} {name!r} is installed but cannot be imported ({err}); reinstall its package.") from None
    known = ", ".join(_names(group)) or "none installed"
    raise naming(f"unknown {kind} {name!r}; pass {{parameter}} with one of: {known}.", parameter=setting(parameter))


def get_space(name: str) -> "type[SearchSpace]":
    """The search-space class registered as `name`."""
    return _load(SPACE_GROUP, name, "search space", "space")


def get_backend(name: str) -> "type[LatencyBackend]":
    """The latency-backend class registered as `name`."""
    return _load(BACKEND_GROUP, name, "latency backend", "backend")


def get_task(name: str) -> "type[Task]":
    """The task class registered as `name`."""
    return _load(TASK_GROUP, name, "task", "task")
