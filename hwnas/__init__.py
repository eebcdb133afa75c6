"""hwnas: hardware-aware differentiable neural architecture search.

The engine (this package) knows nothing about any particular network, task or
device: search spaces and latency backends are plugins found through the
entry-point groups ``hwnas.searchspaces`` and ``hwnas.backends`` (see
`hwnas.plugins`).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public names, imported lazily so that `hwnas --help` does not pay for torch.
_EXPORTS = {
    "Architecture": "hwnas.space",
    "ChoiceBlock": "hwnas.space",
    "Position": "hwnas.space",
    "SearchSpace": "hwnas.space",
    "Unit": "hwnas.space",
    "freeze": "hwnas.space",
    "HwnasError": "hwnas.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
