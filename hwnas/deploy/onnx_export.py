"""The one export path: fold BatchNorm, export ONNX, check it against PyTorch.

`build-lut`, `profile` and `export` all go through `to_onnx`, so a latency table
times the graph that ships, folded the same way. The exporter is `torch.onnx.export(...,
dynamo=True)` (torch.export first) at opset 18 and up, checked against PyTorch; the
deprecated TorchScript exporter (`dynamo=False`) writes a file only where dynamo cannot
(it raised, its output differed, or an opset below 18 was asked for: one warning says
which) or where a caller chooses it (`exporter=`, $HWNAS_ONNX_EXPORTER; the ONNX Runtime
backend's units, for its tables' opset 17 -- see `UNIT_EXPORTER` there).

Here: choosing the exporter, `to_onnx` (every export) and `export_model` (`hwnas export`).
BatchNorm folding is `hwnas.deploy.bn_folding`; node names and file metadata `hwnas.deploy.onnx_naming`;
the checks against PyTorch `hwnas.deploy.onnx_checks` (their names are re-exported here).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from hwnas.deploy.bn_folding import count_batchnorm, fold_batchnorm  # noqa: F401  (count_batchnorm re-exported)
from hwnas.runs.io import atomic_write
from hwnas.deploy.onnx_checks import check_output, onnx_max_error  # noqa: F401  (onnx_max_error re-exported)
from hwnas.deploy.onnx_checks import max_error as _max_error  # a module global: tests replace it
from hwnas.deploy.onnx_naming import add_metadata, name_nodes_by_module  # noqa: F401  (name_nodes_by_module re-exported)
from hwnas.deploy.onnx_registry import reused_registry

log = logging.getLogger(__name__)


# -- the exporter: dynamo (torch.export) first, the TorchScript one only as a fallback ---------

EXPORTER_ENV = "HWNAS_ONNX_EXPORTER"
EXPORTERS = ("auto", "dynamo", "legacy")
# The dynamo exporter writes opset 18 and up: it has no way down to 17 for these graphs (neither
# onnxscript's converter nor ONNX's has a Pad or Split adapter from 18 to 17). ONNX Runtime
# >= 1.14 (our floor is 1.20) runs 18, its quantiser takes it (it lifts 16-bit models to 21
# itself), and AI Hub compiles ONNX files of opset 18.
DYNAMO_MIN_OPSET = 18
DEFAULT_OPSET = DYNAMO_MIN_OPSET
CHECK_TOLERANCE = 1e-4  # the fallback check: max abs error / max(1, max |output|)
_warned: set[str] = set()


def exporter_choice(exporter: str | None = None) -> str:
    """`exporter`, else $HWNAS_ONNX_EXPORTER, else "auto": "dynamo" and "legacy" force one
    exporter (a forced dynamo export that fails raises); "auto" uses dynamo and falls back to
    the TorchScript exporter, with one warning naming why, when dynamo cannot give a correct graph."""
    from hwnas.contracts.errors import HwnasError

    choice = (exporter or os.environ.get(EXPORTER_ENV, "") or "auto").strip().lower()
    if choice not in EXPORTERS:
        source = "exporter" if exporter else f"${EXPORTER_ENV}"
        raise HwnasError(f"{source} is {choice!r}; choose one of {', '.join(EXPORTERS)}.")
    return choice


def to_onnx(
    module: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: str | None = None,
) -> Path:
    """Fold BN and export `module` to ONNX at `input_shape` (input 'x', output 'y'), one
    self-contained file (weights inline).

    Through the dynamo exporter (`torch.export` first), checked against PyTorch on a seeded
    input; if it raises, fails that check or cannot write `opset` (it writes 18 and up), the
    TorchScript exporter is used instead and one warning says why (`exporter_choice` forces
    either). Node names carry module paths either way (`/enc0.0.conv1/Conv` from dynamo's
    module stack, `/enc0/enc0.0/conv1/Conv` from TorchScript), which per-layer attribution
    to positions relies on (`hwnas.tables.attribution`). `dynamic=True` leaves height and
    width free; NPU compilers (AI Hub's QNN path) want the static default.
    """
    path = Path(path)
    atomic_write(path, lambda tmp: _write_onnx(module, input_shape, tmp, dynamic=dynamic, opset=opset,
                                               exporter=exporter))
    return path


def _write_onnx(module: nn.Module, input_shape: Sequence[int], path: Path, *, dynamic: bool, opset: int,
                scale: int = 1, output: str = "image", exporter: str | None = None) -> str:
    """`to_onnx` without its atomic write, for callers that write `path` atomically themselves;
    returns the exporter used ("dynamo" or "legacy").

    `scale`: output size / input size; the output's dynamic axes get their own names
    when it is not 1 (one name for both would tell the runtime they are equal). A
    "scores" output (N x K) has no height or width to leave free.
    """
    choice = exporter_choice(exporter)
    folded = fold_batchnorm(module)
    out_axes = {2: "height", 3: "width"} if scale == 1 else {2: f"height_x{scale}", 3: f"width_x{scale}"}
    axes = {"x": {2: "height", 3: "width"}} | ({"y": out_axes} if output == "image" else {})
    dynamic_axes = axes if dynamic else None
    if choice != "legacy":
        try:
            if opset < DYNAMO_MIN_OPSET:
                raise _DynamoUnfit(f"opset {opset} was asked for and the dynamo exporter writes {DYNAMO_MIN_OPSET} and up")
            _export_dynamo(folded, input_shape, path, opset=opset, dynamic_axes=dynamic_axes)
            return "dynamo"
        except Exception as err:  # any failure of the new exporter: say why, then the old one
            if choice == "dynamo" and isinstance(err, _DynamoUnfit):
                from hwnas.contracts.errors import HwnasError

                raise HwnasError(f"the dynamo exporter, which {EXPORTER_ENV} or the caller chose, cannot be used: {err}; "
                                 "choose auto or legacy.") from None
            if choice == "dynamo":
                raise
            reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            if not isinstance(err, _DynamoUnfit):
                reason = f"{type(err).__name__}: {reason}"
            if reason not in _warned:  # once per reason: a table exports hundreds of units
                _warned.add(reason)
                log.warning("ONNX export: the dynamo exporter was not used (%s); using the TorchScript exporter "
                            "(dynamo=False) -- set %s=legacy to choose it without this warning", reason, EXPORTER_ENV)
    _export_legacy(folded, input_shape, path, opset=opset, dynamic_axes=dynamic_axes)
    return "legacy"


class _DynamoUnfit(Exception):
    """The dynamo export ran but cannot be used (wrong opset, outputs differ); the message says why."""


def _export_legacy(folded: nn.Module, input_shape: Sequence[int], path: Path, *, opset: int,
                   dynamic_axes: dict | None) -> None:
    x = torch.zeros(tuple(input_shape))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
        torch.onnx.export(
            folded, (x,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
            output_names=["y"], dynamic_axes=dynamic_axes, do_constant_folding=True,
        )


def _export_dynamo(folded: nn.Module, input_shape: Sequence[int], path: Path, *, opset: int,
                   dynamic_axes: dict | None) -> None:
    """torch.export -> ONNX (optimised: constants folded, as `do_constant_folding` did), nodes named
    by module path, written as one file, then checked against `folded` on a seeded input."""
    import onnx

    x = torch.zeros(tuple(input_shape))
    # torch.onnx ("torchvision is not installed" on first use) and onnxscript's optimiser (a line per
    # rewrite) log at WARNING/INFO; the export's own outcome is what the user is told.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), reused_registry():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                folded, (x,), None, dynamo=True, opset_version=opset, input_names=["x"], output_names=["y"],
                dynamic_axes=dynamic_axes, optimize=True, verbose=False, report=False,
            )
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    model = program.model_proto  # initializers inline: one self-contained file
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise _DynamoUnfit(f"it wrote opset {got}, not the {opset} asked for")
    name_nodes_by_module(model)
    onnx.save(model, str(path))
    gen = torch.Generator().manual_seed(0)
    probe = torch.rand(tuple(input_shape), generator=gen)
    error, scale = _max_error(folded, path, probe)
    if not error <= CHECK_TOLERANCE * max(1.0, scale):  # also catches NaN
        raise _DynamoUnfit(f"its output differs from PyTorch by {error:.3g} (max |output| {scale:.3g})")


# -- `hwnas export`: a deployable ONNX file, checked against PyTorch -------------------


def export_model(
    net: nn.Module,
    path: str | Path,
    *,
    metadata: dict[str, str],
    in_channels: int,
    align: int = 1,
    static_hw: tuple[int, int] | None = None,
    tolerance: float = 1e-4,
    opset: int = DEFAULT_OPSET,
    seed: int = 0,
    scale: int = 1,
    output: str = "image",
    exporter: str | None = None,
) -> dict:
    """Export `net` (BN folded) to `path` with `metadata` in `metadata_props`, verified by ONNX Runtime.

    `scale` is the output size / input size the network must have, or with `output`
    "scores" the output is one vector per input (N x K; `hwnas.contracts.space.OUTPUTS`) -- checked
    on the odd-sized input first: `HwnasError` if it differs, nothing written.

    Dynamic height and width unless `static_hw` is given (NPU compilers such as AI Hub's
    QNN path need a fixed shape). The file is checked against the unfolded PyTorch
    network on seeded random inputs -- for a dynamic export at a traced size and at an
    odd size that is not a multiple of `align` -- and written only if the max abs error
    is within `tolerance` (else `HwnasError`, nothing written). Returns a report: path,
    shapes checked, max_abs_error, batchnorm_nodes, conv_relu_pairs (left for the
    runtime to fuse into one kernel), nodes, opset, exporter ("dynamo", or "legacy" where
    `to_onnx`'s fallback took the TorchScript exporter).
    """
    from hwnas.contracts.errors import HwnasError

    net = copy.deepcopy(net).eval()
    if static_hw is not None:
        shapes = [(1, in_channels, *static_hw)]
    else:
        side = max(64, 2 * align)
        shapes = [(1, in_channels, side, side), (1, in_channels, side - 3, side + 5)]  # the second: odd, unaligned
    check_output(net, shapes[-1], scale, output)
    report: dict = {}

    def write(tmp: Path) -> None:
        report["exporter"] = _write_onnx(net, shapes[0], tmp, dynamic=static_hw is None, opset=opset, scale=scale,
                                         output=output, exporter=exporter)  # the outer write is atomic
        report.update(add_metadata(tmp, metadata))
        gen = torch.Generator().manual_seed(seed)
        errors = [onnx_max_error(net, tmp, torch.rand(shape, generator=gen)) for shape in shapes]
        report["max_abs_error"] = max(errors)
        if not report["max_abs_error"] <= tolerance:  # also catches NaN
            raise HwnasError(
                f"the exported file disagrees with PyTorch (max abs error {report['max_abs_error']:.3g} > tolerance "
                f"{tolerance:g}); nothing was written -- report this network, or pass a larger --tolerance."
            )

    atomic_write(Path(path), write)
    report.update(path=str(path), checked_shapes=[list(s) for s in shapes], dynamic=static_hw is None, opset=opset)
    return report
