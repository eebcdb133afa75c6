"""The checks of an export: an ONNX file against the PyTorch module it came from (run by ONNX
Runtime on the CPU), and a network's output against what its space declares."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn


def max_error(module: nn.Module, path: str | Path, x: torch.Tensor) -> tuple[float, float]:
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


def check_output(net: nn.Module, shape: Sequence[int], scale: int, output: str) -> None:
    """Refuse a network whose output is not what its space declares: an image `scale` x its
    input (the tiler and the task rely on it), or one vector of scores per input."""
    from hwnas.contracts.errors import HwnasError

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
