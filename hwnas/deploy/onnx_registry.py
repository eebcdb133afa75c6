"""One torchlib op registry per opset for all of a process's dynamo exports.

`torch.onnx.export(..., dynamo=True)` rebuilds its registry of ONNX functions from onnxscript's
torchlib on every call, re-parsing the source of ~500 functions: about 0.8 s, half the export of a
small network, and a latency table exports one network per unit (hundreds for a paper-sized space).
The registry depends only on the opset and is not changed by an export that passes no
`custom_translation_table` (ours never does), so `reused_registry()` hands the first one built back
to every later export that runs inside it.

It replaces a private classmethod (`torch.onnx._internal.exporter._registration.ONNXRegistry
.from_torchlib`) for the duration of the block only, under a lock; where a torch version does not
have it, exports run as they would without this module.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_lock = threading.Lock()
_built: dict[tuple, object] = {}


def forget() -> None:
    """Drop the registries built so far: the next export builds its own again (for a benchmark of the saving)."""
    _built.clear()


@contextlib.contextmanager
def reused_registry() -> Iterator[None]:
    """Within the block, torch.onnx's registry is built once per opset and then reused."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:  # a torch without the new exporter's layout: nothing to reuse
        yield
        return
    cls = _registration.ONNXRegistry
    original = cls.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        yield
        return
    build = original.__func__

    def from_torchlib(klass, *args, **kwargs):
        key = (klass, args, tuple(sorted(kwargs.items())))
        if key not in _built:
            _built[key] = build(klass, *args, **kwargs)
        return _built[key]

    with _lock:
        cls.from_torchlib = classmethod(from_torchlib)
        try:
            yield
        finally:
            cls.from_torchlib = original
