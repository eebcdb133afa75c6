"""Running a trained network on whole inputs: predictors and tiled inference.

A *predictor* is any function from one input tensor (1 x C x H x W, float32, CPU) to
its output (1 x C' x sH x sW, where s is the network's output scale: 1 for
image-to-image tasks, 2 for x2 super-resolution). `open_model` makes one from a model file (`model.pt` or
a training checkpoint; PyTorch) or from an ONNX file written by `hwnas export` (ONNX
Runtime). ONNX files carry metadata (`metadata_props`: producer "hwnas", the space
spec and the architecture as JSON, the alignment, the task's name and the output
scale); a file without it is refused, because nothing else says what it computes or
how to tile it.

`tiled` wraps a predictor so large inputs run window by window with bounded memory:
each window is the tile's core plus an `overlap` margin on every side, and only the
core is kept. Tile, overlap and alignment are input pixels; each window's core lands
at s times its input position in the output. Window origins are multiples of the network's alignment (the U-Net's
2^levels), so every window sees the same down-sampling grid as the whole image; with
an overlap at least the receptive-field radius, the tiled output equals whole-image
inference. Blocks with global pooling (NAFNet's channel attention) see only their
window, so their outputs differ slightly from whole-image inference -- as in NAFNet's
own tiled evaluation (Chu et al., "Improving Image Restoration by Revisiting Global
Information Aggregation", ECCV 2022).

A network whose output is a vector of scores (`SearchSpace.output == "scores"`: N x K,
e.g. a classifier) sees its whole input at once: it is never tiled, and a static-shape
file takes inputs of exactly its size (zero padding would change the scores).
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.contracts.config import SpaceSpec
from hwnas.contracts.errors import HwnasError, naming, setting
from hwnas.contracts.space import DEFAULT_MULTIPLE, OUTPUTS, Architecture, SearchSpace

log = logging.getLogger(__name__)

Predict = Callable[[torch.Tensor], torch.Tensor]

PRODUCER = "hwnas"
DEFAULT_ALIGN = DEFAULT_MULTIPLE  # files written before the alignment was recorded


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-run model (`hwnas.load`): call it on an input; it says what it is.

    `predict` (also `model(x)`): 1 x C x H x W float32 in, the output back on the CPU;
    `spec`, `arch`: space and architecture; `runtime`: "torch" or "onnxruntime";
    `align`: the input multiple tiles are aligned to; `task`: the name of the task it
    was trained for (None: its space's default, in files written before tasks were
    plugins); `scale`: output size / input size; `output`: "image" or "scores" (see the
    module docstring); `module`: the PyTorch network (eval mode) for a model file, None for ONNX.
    """

    predict: Predict
    spec: SpaceSpec
    arch: Architecture
    runtime: str  # "torch" or "onnxruntime"
    align: int
    static_hw: tuple[int, int] | None = None  # (H, W) of a static-shape ONNX file
    module: nn.Module | None = None
    task: str | None = None
    scale: int = 1
    output: str = "image"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x)


def space_align(space: SearchSpace) -> int:
    """The input multiple a space's networks pad to, as it declares it (`SearchSpace.multiple`)."""
    multiple = space.multiple
    if not isinstance(multiple, int) or multiple < 1:
        raise HwnasError(f"space {space.name!r} declares the input multiple {multiple!r}, not a whole number >= 1; "
                         "fix its `multiple`.")
    return multiple


# -- predictors ----------------------------------------------------------------

def torch_predictor(net: nn.Module, device: torch.device | str = "cpu") -> Predict:
    """Run `net` (eval mode, no grad) on `device`; results come back to the CPU as float32."""
    net.eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x.to(device)).float().cpu()

    return predict


def open_model(path: str | Path, accelerator: str = "cpu", threads: int = 0) -> LoadedModel:
    """A predictor for a model file or an hwnas ONNX file (told apart by content, not suffix).

    `accelerator` (cpu|cuda) applies to PyTorch models; ONNX files run on ONNX Runtime's
    CPU provider with `threads` intra-op threads (0 = its default).
    """
    path = Path(path)
    if not path.is_file():
        raise HwnasError(f"model {path} does not exist; pass a model.pt from `hwnas train` or an ONNX file from `hwnas export`.")
    if zipfile.is_zipfile(path):  # torch.save writes a zip archive
        return _open_torch(path, accelerator)
    return _open_onnx(path, threads)


def _open_torch(path: Path, accelerator: str) -> LoadedModel:
    from hwnas.runs.compute import device_for
    from hwnas.deploy.modelfile import load_model

    device = device_for(accelerator)
    model = load_model(path)
    space, net = model.build(device)
    return LoadedModel(torch_predictor(net, device), model.spec, model.arch, "torch", space_align(space), module=net,
                       task=model.task.name, scale=space.scale, output=space.output)


def onnx_metadata(spec: SpaceSpec, arch: Architecture, align: int, *, task: str | None = None,
                  scale: int = 1, output: str = "image") -> dict[str, str]:
    """The `metadata_props` that mark an ONNX file as ours and say what it computes.

    The task's name and the scale are written apart from the space spec so the file
    runs and tiles where the space plugin is not installed (only evaluation needs the task).
    """
    from hwnas import __version__

    meta = {
        "producer": PRODUCER,
        "hwnas_version": __version__,
        "space": spec.model_dump_json(),
        "arch": json.dumps(arch.model_dump(), sort_keys=True),
        "align": str(align),
        "scale": str(scale),
        "output": output,
    }
    if task is not None:
        meta["task"] = task
    return meta


def _open_onnx(path: Path, threads: int) -> LoadedModel:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # ORT's own warnings would reach the console as multi-line noise
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
        text = str(err).strip()
        reason = "not an ONNX file" if "INVALID_PROTOBUF" in text or not text else text.splitlines()[0][:120]
        raise HwnasError(
            f"{path} is neither an hwnas model file nor a loadable ONNX file ({reason}); "
            "pass a model.pt from `hwnas train` or an ONNX file from `hwnas export`."
        ) from None
    meta = session.get_modelmeta().custom_metadata_map
    spec, arch, align, scale, output = _parse_metadata(meta, path)
    _check_onnx_weights(path)
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise HwnasError(f"{path} does not take one image tensor; export it again with `hwnas export`.")
    height, width = inputs[0].shape[2:]
    static = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    name, (batch, channels) = inputs[0].name, inputs[0].shape[:2]

    def predict(x: torch.Tensor) -> torch.Tensor:
        _check_input(x, batch, channels, path)
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().float().numpy()})[0])

    if static is not None:
        predict = fixed_size(predict, static, scale, output)
    return LoadedModel(predict, spec, arch, "onnxruntime", align, static, task=meta.get("task"), scale=scale,
                       output=output)


def _check_onnx_weights(path: Path) -> None:
    """Refuse an ONNX file whose weights (initializers) hold NaN or infinity, as model files are."""
    import onnx
    from onnx import numpy_helper

    from hwnas.deploy.modelfile import check_finite

    graph = onnx.load(str(path)).graph
    check_finite(((t.name, numpy_helper.to_array(t)) for t in graph.initializer), str(path))


def _check_input(x: torch.Tensor, batch: int | str, channels: int | str, path: Path) -> None:
    """Say what the file accepts before ONNX Runtime fails on an input of another shape (a fixed batch
    dimension: `hwnas export` writes a batch of 1)."""
    accepts = f"{batch if isinstance(batch, int) else 'N'} x {channels if isinstance(channels, int) else 'C'} x H x W"
    if x.dim() != 4:
        raise HwnasError(f"{path.name} takes a {accepts} tensor, not one of shape {tuple(x.shape)}; add the batch "
                         "dimension (x[None]).")
    if isinstance(batch, int) and x.shape[0] != batch:
        raise HwnasError(f"{path.name} takes a batch of {batch} (input {accepts}), not {x.shape[0]}; pass the "
                         f"images {batch} at a time, e.g. torch.cat([model(x[i:i + {batch}]) for i in range(0, len(x), {batch})]).")
    if isinstance(channels, int) and x.shape[1] != channels:
        raise HwnasError(f"{path.name} takes {channels} channels (input {accepts}), not {x.shape[1]}.")


def _parse_metadata(meta: dict[str, str], path: Path) -> tuple[SpaceSpec, Architecture, int, int, str]:
    if meta.get("producer") != PRODUCER:
        raise HwnasError(
            f"{path} is an ONNX file that hwnas did not export (no hwnas metadata), so its input range and "
            "tiling are unknown; export the network with `hwnas export`."
        )
    try:
        spec = SpaceSpec.model_validate_json(meta["space"])
        arch = Architecture.model_validate_json(meta["arch"])
        align = int(meta.get("align", DEFAULT_ALIGN))
        scale = int(meta.get("scale", 1))  # files from before tasks were plugins: image to image
        output = meta.get("output", "image")  # files from before the output kind was declared: images
        if output not in OUTPUTS:
            raise ValueError(output)
    except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
        raise HwnasError(f"{path} has damaged hwnas metadata; export the network again with `hwnas export`.") from None
    return spec, arch, align, scale, output


# -- input size handling -----------------------------------------------------------

def fixed_size(predict: Predict, hw: tuple[int, int], scale: int = 1, output: str = "image") -> Predict:
    """Adapt a fixed-shape predictor: pad smaller inputs at the bottom/right, crop the output (to `scale` x the input).

    Padding repeats the edge pixels, as the U-Net pads to its multiple: a zero strip is
    unlike any training input, and BatchNorm networks can diverge on it. Larger inputs need `tiled` with
    tile = the fixed size; they are refused here. A scores output takes inputs of
    exactly `hw` only: padding would change its scores.
    """
    height, width = hw
    if output == "scores":
        return _exact_size(predict, hw)

    def predict_fixed(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h > height or w > width:
            raise naming(f"the model takes at most {height}x{width} pixels (static ONNX), the input is {h}x{w}; "
                         "pass {tile} or export with dynamic size.", tile=min(height, width))
        y = predict(F.pad(x, (0, width - w, 0, height - h), mode="replicate"))
        return y[..., :h * scale, :w * scale]

    return predict_fixed


def _exact_size(predict: Predict, hw: tuple[int, int]) -> Predict:
    def predict_exact(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != tuple(hw):
            raise HwnasError(f"the model takes {hw[0]}x{hw[1]} inputs (static ONNX), the input is "
                             f"{x.shape[-2]}x{x.shape[-1]}; resize it to {hw[0]}x{hw[1]} or export with dynamic size.")
        return predict(x)

    return predict_exact


def tile_windows(length: int, tile: int, overlap: int, align: int) -> list[tuple[int, int, int, int]]:
    """(window start, window end, core start, core end) along one axis.

    Cores partition [0, length); each window is its core widened by a margin (overlap
    rounded up to `align`) and is at most `tile` long; every start is a multiple of
    `align`. One window when the whole axis fits in a tile.
    """
    if length <= tile:
        return [(0, length, 0, length)]
    margin = math.ceil(overlap / align) * align
    step = (tile - 2 * margin) // align * align
    if step <= 0:
        raise naming(f"a {tile}-pixel tile leaves no room inside its {margin}-pixel overlap margins (aligned to {align}); "
                     f"pass {{tile}} of at least {2 * margin + align} or a smaller {{overlap}}.", tile=setting("tile"),
                     overlap=setting("overlap"))
    out, core = [], 0
    while core < length:
        end = min(core + step, length)
        start = max(0, core - margin)
        out.append((start, min(length, start + tile), core, end))
        core = end
    return out


def tiled(predict: Predict, tile: int, overlap: int = 32, align: int = 1, scale: int = 1) -> Predict:
    """A predictor that runs `predict` on overlapping windows of at most tile x tile input pixels.

    `predict`'s output is `scale` x its input in height and width; each window's core is
    placed at `scale` x its input position. Memory is bounded by one window's
    activations plus the output image. See the module docstring for when the result
    equals whole-image inference.
    """
    if tile < 1 or overlap < 0:
        raise naming(f"{{tile}} must be >= 1 and {{overlap}} >= 0 (got {tile} and {overlap}).", tile=setting("tile"),
                     overlap=setting("overlap"))

    def predict_tiled(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        rows, cols = tile_windows(h, tile, overlap, align), tile_windows(w, tile, overlap, align)
        out, s = None, scale
        for y0, y1, cy0, cy1 in rows:
            for x0, x1, cx0, cx1 in cols:
                y = predict(x[..., y0:y1, x0:x1])
                if tuple(y.shape[-2:]) != ((y1 - y0) * s, (x1 - x0) * s):
                    raise HwnasError(f"the model returned {tuple(y.shape[-2:])} pixels for a {y1 - y0}x{x1 - x0} tile, "
                                     f"not {s}x that; it does not have the output scale {s} its file records.")
                if out is None:
                    out = torch.empty(*y.shape[:-2], h * s, w * s, dtype=y.dtype)
                out[..., cy0 * s:cy1 * s, cx0 * s:cx1 * s] = y[..., (cy0 - y0) * s:(cy1 - y0) * s, (cx0 - x0) * s:(cx1 - x0) * s]
        log.debug("tiled %dx%d input as %d x %d windows", h, w, len(rows), len(cols))
        return out

    return predict_tiled


def model_predictor(model: LoadedModel, tile: int | None = None, overlap: int | None = None) -> Predict:
    """`model.predict`, tiled when `tile` is given; a static-shape ONNX file is always tiled at its size.

    `overlap` None means min(32, tile // 4) pixels. A scores model is never tiled.
    """
    if model.output == "scores":
        if tile is not None:
            raise HwnasError(f"the model outputs one vector of scores for its whole input, which tiles cannot make; "
                             f"leave out --tile (it was {tile}).")
        return model.predict
    if model.static_hw is not None:
        limit = min(model.static_hw)
        if tile is not None and tile > limit:
            raise naming(f"{{given}} is larger than the static ONNX input {model.static_hw[0]}x{model.static_hw[1]}; "
                         "pass {tile} or less.", given=setting("tile", tile), tile=limit)
        tile = limit if tile is None else tile
    if tile is None:
        return model.predict
    return tiled(model.predict, tile, min(32, tile // 4) if overlap is None else overlap, model.align, model.scale)
