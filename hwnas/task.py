"""The task contract: what a space's networks are trained and scored on.

Batches are pure functions of (split, seed, epoch, step): a resumed run, or another
rank of a distributed run, asks for the same indices and gets the same tensors, with
no data-loader state to save.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from hwnas.errors import HwnasError

Predict = Callable[[torch.Tensor], torch.Tensor]  # one input batch -> output (see hwnas.inference)

SPLITS = ("train", "arch")  # weights train on "train"; architecture logits on held-out "arch"


class Task(ABC):
    """Data, loss and metric. `primary_metric` names the number that a higher value improves."""

    primary_metric: str = "score"

    @abstractmethod
    def batch(self, split: str, *, seed: int, epoch: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) for one step; deterministic in its arguments."""

    @abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar task loss (the L_task of the composite objective)."""

    @abstractmethod
    def validate(self, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, float]:
        """Score `model` on the task's fixed validation set; includes `primary_metric`."""

    # Optional hooks for deployment commands (`hwnas eval`, `hwnas denoise`). They work on
    # whole files, not on the task's own data; a task that cannot do this keeps the defaults.

    def evaluate_folder(self, predict: Predict, folder: str | Path, **options) -> list[dict]:
        """Score `predict` on every sample in `folder` by the task's published protocol.

        Returns one dict per sample (and condition): "image", label columns (str or int,
        e.g. data set and noise level) and metric columns (float). `options` are the
        task's own (e.g. noise levels, seed, where to save images).
        """
        raise HwnasError(f"this space's task ({type(self).__name__}) does not support evaluating a folder; use its validate().")

    def infer_file(self, predict: Predict, in_path: str | Path, out_path: str | Path) -> dict:
        """Run `predict` on one input file and write the result to `out_path`; returns facts about it."""
        raise HwnasError(f"this space's task ({type(self).__name__}) does not support running on files.")
