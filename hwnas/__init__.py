"""hwnas: hardware-aware differentiable neural architecture search.

The engine (this package) knows nothing about any particular network, task or
device: search spaces, tasks and latency backends are plugins found through the
entry-point groups ``hwnas.searchspaces``, ``hwnas.tasks`` and ``hwnas.backends``
(see `hwnas.contracts.plugins`). The Python API is seven functions -- ``hwnas.build_table``,
``hwnas.search``, ``hwnas.train``, ``hwnas.evaluate``, ``hwnas.export``, ``hwnas.load``
and ``hwnas.predict``, with ``hwnas.profile`` (see `hwnas.api`) -- and the ``hwnas`` command is a thin layer over them.
"""

from __future__ import annotations

import importlib
import os
import sys

__version__ = "0.1.0"


def _installed_copies() -> list[str]:
    """Other `hwnas` package folders on sys.path that hold the plugin subpackages.

    The plugins live in `backends/` and `searchspaces/` of the source tree and are
    installed as `hwnas/backends`, `hwnas/searchspaces`. Python run from the source tree
    (`python -m hwnas` in the repository root) imports this folder, which has neither;
    with a plain (non-editable) install, the installed copy has both, so it is added to
    this package's search path. An editable install maps them itself (nothing found here).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(os.path.join(here, "backends")):
        return []  # this is an installed copy
    found = []
    for entry in sys.path:
        candidate = os.path.abspath(os.path.join(entry or os.getcwd(), "hwnas"))
        if candidate != here and os.path.isdir(os.path.join(candidate, "backends")) and candidate not in found:
            found.append(candidate)
    return found


__path__.extend(p for p in _installed_copies() if p not in __path__)  # noqa: F821 -- the package's own __path__

from hwnas import _moved  # noqa: E402 (after __path__: the finder imports nothing heavy)

_moved.install()  # `import hwnas.space` and the other 0.1 paths keep working for one release

# Public names, imported lazily so that `hwnas --help` does not pay for torch. The seven
# functions of the Python API (`hwnas.api`) share their names with commands, not with
# modules: the loops they run are `hwnas.nas.searching`, `hwnas.runs.training`, ...
_EXPORTS = {
    "build_table": "hwnas.api",
    "search": "hwnas.api",
    "train": "hwnas.api",
    "evaluate": "hwnas.api",
    "export": "hwnas.api",
    "load": "hwnas.api",
    "predict": "hwnas.api",
    "profile": "hwnas.api",
    "LatencyPrediction": "hwnas.tables.prediction",
    "Architecture": "hwnas.contracts.space",
    "ChoiceBlock": "hwnas.contracts.space",
    "Position": "hwnas.contracts.space",
    "SearchSpace": "hwnas.contracts.space",
    "Task": "hwnas.contracts.task",
    "Unit": "hwnas.contracts.space",
    "freeze": "hwnas.contracts.space",
    "HwnasError": "hwnas.contracts.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
