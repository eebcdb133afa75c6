"""The one export path: fold BatchNorm, export ONNX, check it against PyTorch.

`build-lut`, `profile` and `export` all go through `to_onnx`, so a latency table
times the graph that ships, folded the same way. The exporter is `torch.onnx.export(...,
dynamo=True)` (torch.export first) at opset 18 and up, checked against PyTorch; the
deprecated TorchScript exporter (`dynamo=False`) writes a file only where dynamo cannot
(it raised, its output differed, or an opset below 18 was asked for: one warning says
which) or where a caller chooses it (`exporter=`, $HWNAS_ONNX_EXPORTER; the ONNX Runtime
backend's units, for its tables' opset 17 -- see `UNIT_EXPORTER` there).

BatchNorm folding is done here, on the FX graph of each traceable submodule, in both
directions: conv -> BN (the usual fold) and BN -> 1x1 conv (W' = W diag(s),
b' = W t + b), which neither the ONNX exporter nor ONNX Runtime folds and which
BN-variants of LayerNorm blocks (norm -> 1x1 conv) are made of. After folding,
Conv -> ReLU pairs are left for the runtime to fuse into one kernel.
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
import torch.fx as fx
from torch import nn

from hwnas.io import atomic_write
from hwnas.tables.attribution import MODULE_PATH_KEY

log = logging.getLogger(__name__)

_BN = (nn.BatchNorm2d,)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` with every foldable BatchNorm merged into a conv."""
    return _fold_tree(copy.deepcopy(module).eval())


def _has_bn(module: nn.Module) -> bool:
    return any(isinstance(m, _BN) for m in module.modules())


def _fold_tree(module: nn.Module) -> nn.Module:
    if not _has_bn(module) or isinstance(module, _BN):
        return module
    try:
        graph_module = fx.symbolic_trace(module)
    except Exception:  # not traceable as a whole (e.g. shape-dependent padding): fold its children
        for name, child in module.named_children():
            setattr(module, name, _fold_tree(child))
        return module
    # The trace only finds the BN/conv pairs; the convs are shared with `module` and folded
    # in place. Returning `module` (folded BNs -> Identity) rather than the GraphModule keeps
    # the module hierarchy, so exported node names keep their module paths (`/enc0.0.conv1/Conv`).
    for target in _fold_graph(graph_module):
        parent, _, child = target.rpartition(".")
        setattr(module.get_submodule(parent) if parent else module, child, nn.Identity())
    return module


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """BN(x) = s * x + t per channel, from the running statistics."""
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        s = s * bn.weight
    t = -bn.running_mean * s
    if bn.affine:
        t = t + bn.bias
    return s.detach(), t.detach()


def _is_pointwise(conv: nn.Conv2d) -> bool:
    return conv.kernel_size == (1, 1) and conv.groups == 1 and conv.padding in ((0, 0), 0)


def _fold_graph(gm: fx.GraphModule) -> list[str]:
    """Fold every BN next to a conv into that conv; returns the folded BNs' module paths."""
    modules = dict(gm.named_modules())
    folded: list[str] = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BN):
            continue
        bn, src = modules[node.target], node.args[0]
        src_mod = modules.get(src.target) if isinstance(src, fx.Node) and src.op == "call_module" else None
        users = list(node.users)
        if isinstance(src_mod, nn.Conv2d) and len(src.users) == 1:
            _fold_into_previous(src_mod, bn)
        elif len(users) == 1 and users[0].op == "call_module" and _is_pointwise(modules.get(users[0].target, nn.Identity())):
            _fold_into_next(modules[users[0].target], bn)
        else:
            log.debug("BatchNorm %s is not next to a foldable conv; left in place", node.target)
            continue
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded.append(node.target)
    return folded


def _ensure_bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype))
    return conv.bias


@torch.no_grad()
def _fold_into_previous(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv -> BN:  W' = s W,  b' = s b + t."""
    s, t = _bn_scale_shift(bn)
    bias = _ensure_bias(conv)
    conv.weight.mul_(s.view(-1, 1, 1, 1))
    bias.copy_(bias * s + t)


@torch.no_grad()
def _fold_into_next(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """BN -> 1x1 conv:  W' = W diag(s),  b' = W t + b (exact: no padding to leak t into)."""
    s, t = _bn_scale_shift(bn)
    bias = _ensure_bias(conv)
    w = conv.weight[:, :, 0, 0]
    bias.add_(w @ t)
    conv.weight.mul_(s.view(1, -1, 1, 1))


def count_batchnorm(module: nn.Module) -> int:
    return sum(isinstance(m, _BN) for m in module.modules())


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
    from hwnas.errors import HwnasError

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
                from hwnas.errors import HwnasError

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
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
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


# The node metadata a shipped file keeps: the node's module path (`MODULE_PATH_KEY`). What the
# dynamo exporter writes (module stack with class names, stack traces and FX node text naming the
# exporting machine's source paths) is dropped: a third of the file for a small network.


def name_nodes_by_module(model) -> None:
    """Rename every node of a dynamo-exported `model` (in place) to `/<module path>/<OpType>[_k]`
    and record the path in its metadata (`hwnas.module_path`), from the module stack dynamo keeps in each
    node's `pkg.torch.onnx.name_scopes` (innermost module's dotted path). A node the optimiser
    made (e.g. a Split) has no stack: it takes the longest module path its producers and
    consumers share. Top-level glue (the input padding, a skip addition) gets `/<OpType>`."""
    import ast

    nodes = list(model.graph.node)
    paths: list[str | None] = []
    for node in nodes:
        meta = {p.key: p.value for p in node.metadata_props}
        path = None
        if "pkg.torch.onnx.name_scopes" in meta:
            try:
                scopes = [s for s in ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])[:-1]
                          if not s.startswith("_empty_nn_module_stack")]  # torch.export's stand-in for no module
                path = scopes[-1] if scopes else ""
            except (ValueError, SyntaxError, TypeError):
                path = None
        paths.append(path)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    for _ in range(len(nodes)):  # fill the gaps from the neighbours until nothing changes
        changed = False
        for i, node in enumerate(nodes):
            if paths[i] is not None:
                continue
            near = [producer[n] for n in node.input if n in producer]
            near += [j for n in node.output for j in consumers.get(n, [])]
            known = [paths[j] for j in near if paths[j] is not None]
            if known:
                paths[i] = _common_module_path(known)
                changed = True
        if not changed:
            break
    used: dict[str, int] = {}
    for node, path in zip(nodes, paths):
        path = path or ""
        base = f"/{path}/{node.op_type}" if path else f"/{node.op_type}"
        k = used.get(base, 0)
        used[base] = k + 1
        node.name = base if k == 0 else f"{base}_{k}"
        del node.metadata_props[:]
        entry = node.metadata_props.add()
        entry.key, entry.value = MODULE_PATH_KEY, path


def _common_module_path(paths: Sequence[str]) -> str:
    parts = [p.split(".") if p else [] for p in paths]
    common: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def _max_error(module: nn.Module, path: str | Path, x: torch.Tensor) -> tuple[float, float]:
    """(max |onnxruntime(x) - module(x)|, max |module(x)|), first output."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = module(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != ref.shape:
        return float("inf"), float(abs(ref).max())
    return float(abs(got - ref).max()), float(abs(ref).max())


def onnx_max_error(module: nn.Module, path: str | Path, x: torch.Tensor) -> float:
    """Max |onnxruntime(x) - module(x)| over all outputs (module in eval mode)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    was_training = module.training
    module.eval()
    with torch.no_grad():
        ref = module(x).numpy()
    module.train(was_training)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return float(abs(got - ref).max())


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
    "scores" the output is one vector per input (N x K; `hwnas.space.OUTPUTS`) -- checked
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
    from hwnas.errors import HwnasError

    net = copy.deepcopy(net).eval()
    if static_hw is not None:
        shapes = [(1, in_channels, *static_hw)]
    else:
        side = max(64, 2 * align)
        shapes = [(1, in_channels, side, side), (1, in_channels, side - 3, side + 5)]  # the second: odd, unaligned
    _check_output(net, shapes[-1], scale, output)
    report: dict = {}

    def write(tmp: Path) -> None:
        report["exporter"] = _write_onnx(net, shapes[0], tmp, dynamic=static_hw is None, opset=opset, scale=scale,
                                         output=output, exporter=exporter)  # the outer write is atomic
        report.update(_add_metadata(tmp, metadata))
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


def _check_output(net: nn.Module, shape: Sequence[int], scale: int, output: str) -> None:
    """Refuse a network whose output is not what its space declares: an image `scale` x its
    input (the tiler and the task rely on it), or one vector of scores per input."""
    from hwnas.errors import HwnasError

    with torch.no_grad():
        out = net(torch.zeros(tuple(shape)))
    if output == "scores":
        if out.ndim != 2 or out.shape[0] != shape[0]:
            raise HwnasError(f"the network maps a {shape[2]}x{shape[3]} input to shape {tuple(out.shape)}, not to one "
                             "vector of scores (N x K) as its space declares; nothing was written -- report this network.")
        return
    expected = tuple(d * scale for d in shape[2:])
    if out.ndim != 4 or tuple(out.shape[2:]) != expected:
        got = "x".join(map(str, out.shape[2:] if out.ndim == 4 else out.shape))
        raise HwnasError(f"the network maps a {shape[2]}x{shape[3]} input to {got}, not to "
                         f"{expected[0]}x{expected[1]} (output scale {scale}); nothing was written -- report this network.")


def _add_metadata(path: Path, metadata: dict[str, str]) -> dict:
    """Write `metadata` into the file's metadata_props; count BN nodes and Conv->Relu pairs."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    nodes = model.graph.node
    producers = {out: node for node in nodes for out in node.output}
    conv_relu = sum(
        1 for node in nodes
        if node.op_type == "Relu" and producers.get(node.input[0]) is not None and producers[node.input[0]].op_type == "Conv"
    )
    return {
        "batchnorm_nodes": sum(node.op_type == "BatchNormalization" for node in nodes),
        "conv_relu_pairs": conv_relu,
        "nodes": len(nodes),
    }
