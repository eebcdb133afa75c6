"""hwnas: hardware-aware differentiable neural architecture search.

The engine (this package) knows nothing about any particular network, task or
device: search spaces and latency backends are plugins found through the
entry-point groups ``hwnas.searchspaces`` and ``hwnas.backends`` (see
`hwnas.plugins`).
"""

from hwnas.errors import HwnasError
from hwnas.space import Architecture, ChoiceBlock, Position, SearchSpace, Unit, freeze

__all__ = [
    "Architecture",
    "ChoiceBlock",
    "HwnasError",
    "Position",
    "SearchSpace",
    "Unit",
    "freeze",
]
__version__ = "0.1.0"
