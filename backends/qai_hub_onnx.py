"""Any ONNX file compiled and profiled on AI Hub (`hwnas profile --onnx FILE --backend qai-hub`).

The file is uploaded as it is (no re-export) and gets one compile and one profile job
with the backend's settings, like `measure_network`: a float file is compiled at the
backend's precision (calibrated like a timing unit, on seeded random inputs of its
input shape); a file that is already quantised (QuantizeLinear nodes, e.g. from
`hwnas export --precision int8`) is compiled as it is. Its one float input may leave
dimensions free: they come from the table's image size, and without one are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from hwnas.backends import qai_hub_profile as hub_profile
from hwnas.backends.qai_hub_accuracy import input_name_and_quantised
from hwnas.backends.qai_hub_jobs import Track
from hwnas.backends.qai_hub_options import compile_options
from hwnas.contracts.errors import HwnasError
from hwnas.contracts.latency import Measurement, Shape, shape_str

if TYPE_CHECKING:
    from hwnas.backends.qai_hub import QaiHubBackend


def profile_file(backend: "QaiHubBackend", path: str | Path, input_shape: Sequence[int] | None = None) -> Measurement:
    """The file's end-to-end latency on the backend's device (kind "network", name the file's stem)."""
    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"no ONNX file at {path}; export one with `hwnas export --out {path}`.")
    name, quantised = _read(path)
    shape = _input_shape(path, input_shape)
    backend.check_configured()
    options = compile_options(backend.options, quantise=not quantised)
    t = Track(None, f"ONNX file {path.name} at {shape_str(shape)}", None, shape, file=path, input_name=name,
              compile_options=options)
    backend.jobs.run([t], backend.resolve_device())
    profile = backend.jobs.profile(t)
    return hub_profile.measurement(
        profile, kind="network", name=path.stem, input_shape=shape, device=backend.device,
        runtime=backend.runtime().removesuffix(" whole-network"), source=f"job {t.profile.job_id} ({t.label})",
        cold=backend.options.cold_iterations,
    )


def _read(path: Path) -> tuple[str, bool]:
    try:
        return input_name_and_quantised(path)
    except Exception as err:  # onnx raises its own decode errors
        raise HwnasError(f"{path} is not an ONNX model ({err.__class__.__name__}); pass a file from `hwnas export`.") from None


def _input_shape(path: Path, given: Sequence[int] | None) -> Shape:
    """The file's input shape, free dimensions taken from `given` (e.g. the table's image size)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if len(graph.input) != 1 or graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise HwnasError(f"{path} does not take exactly one float tensor; AI Hub profiling here feeds one image tensor.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph.input[0].type.tensor_type.shape.dim]
    if given is not None and len(given) != len(dims):
        raise HwnasError(f"{path} takes a {len(dims)}-d input, not {shape_str(given)}; pass a file that takes one image tensor.")
    shape = []
    for i, d in enumerate(dims):
        if d:
            shape.append(int(d))
        elif given is not None:
            shape.append(int(given[i]))
        else:
            raise HwnasError(f"{path} leaves its input size free; give a table (--lut) or --image-size to profile it at.")
    return tuple(shape)
