"""`hwnas export --check-on BACKEND`: the written file run on a device, scored against PyTorch.

A quantised file can lose more on the device than in ONNX Runtime: the device's
compiler fuses and requantises on its own. So after the export, the file runs on the
backend's device (for AI Hub: one compile and one inference job,
`backends/qai_hub_accuracy.py`) on held-out inputs made by the model's task -- the same
kind of inputs the export's own check uses -- and the PSNR between the device's outputs
and PyTorch's is reported (and warned about below `--min-psnr`). The file is kept
either way: it is valid, and the number says whether to ship it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

JOBS = 2  # one compile and one inference job


def device_backend(config, approve: Callable[[Any, int], None]):
    """The backend of `--check-on`, refused in one line unless it can run a model on its device;
    its jobs approved. Called before anything is written."""
    from hwnas.contracts.latency import ChecksAccuracy, require
    from hwnas.tables.building import make_backend

    backend = require(make_backend(config.check_on, {} if config.check_device is None else {"device": config.check_device}),
                      ChecksAccuracy)
    approve(backend, JOBS)
    return backend


def device_check(backend, net: torch.nn.Module, model_file, space, config) -> dict[str, Any]:
    """The device's PSNR against PyTorch for the file `config.out` (see the module docstring).

    A quantised file runs at its own precision; a float one as the backend compiles it."""
    from hwnas.deploy.quantized_export import calibration_inputs

    _, inputs, source = calibration_inputs(model_file, space, 4 * config.check_images, config.calibration, config.static)
    inputs = inputs[:config.check_images]
    with torch.no_grad():
        reference = net(torch.from_numpy(inputs)).numpy()
    result = backend.check_accuracy(Path(config.out), inputs, reference).as_dict()
    psnr = result["overall_psnr_db"]
    if not psnr >= config.min_psnr:
        log.warning("on %s the file's outputs are %.1f dB from PyTorch's, below --min-psnr %g: the device loses more than "
                    "ONNX Runtime did; check the compile options or use a higher precision", backend.device, psnr,
                    config.min_psnr)
    return {**result, "backend": backend.name, "inputs": source, "images": len(inputs)}
