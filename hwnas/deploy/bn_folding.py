"""BatchNorm folding for export: every foldable BatchNorm merged into a neighbouring conv.

Done on the FX graph of each traceable submodule, in both directions: conv -> BN (the
usual fold) and BN -> 1x1 conv (W' = W diag(s), b' = W t + b), which neither the ONNX
exporter nor ONNX Runtime folds and which BN-variants of LayerNorm blocks (norm -> 1x1
conv) are made of. After folding, Conv -> ReLU pairs are left for the runtime to fuse into
one kernel. `hwnas.deploy.onnx_export` folds every network it exports with `fold_batchnorm`.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.fx as fx
from torch import nn

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
