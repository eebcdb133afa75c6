"""The task contract: what a space's networks are trained and scored on.

Batches are pure functions of (split, seed, epoch, step): a resumed run, or another
rank of a distributed run, asks for the same indices and gets the same tensors, with
no data-loader state to save.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

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
