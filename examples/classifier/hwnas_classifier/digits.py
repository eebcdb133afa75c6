"""`digits`: classify the 8x8 hand-written digits that scikit-learn ships (no download).

Data
    `sklearn.datasets.load_digits`: 1 797 grey-level images, 8 x 8 pixels of 0..16, ten
    classes. Inputs are scaled to [0, 1] and upsampled (bilinear) to `size` x `size`
    pixels, so a network with a few stride-2 stages has room to work; build the latency
    table at the same `--image-size`.

Splits
    Of the images in their shipped order, every 5th (from index 2) is the test set that
    `validate` scores and nothing trains on; of the rest, every 4th (from index 1) is the
    held-out "arch" split the architecture logits learn on, the others are "train".

Determinism
    `batch` is a pure function of (split, seed, epoch, step, batch_size): indices come
    from one numpy generator seeded by a hash of those values.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from hwnas.contracts.task import SPLITS, Task

TEST_EVERY, ARCH_EVERY = 5, 4
CHUNK = 256  # test images per forward pass


class DigitsOptions(BaseModel):
    """Options of `DigitsClassification` (each description is what `hwnas tasks` shows)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(32, ge=8, description="Side in pixels the 8x8 digits are upsampled to (the network's input); "
                                            "build the latency table at this --image-size.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing of the cross-entropy loss.")


class DigitsClassification(Task):
    """Ten-class digit recognition: cross-entropy loss, accuracy on a fixed test set."""

    name = "digits"
    Options = DigitsOptions
    output: ClassVar[str] = "scores"
    primary_metric = "accuracy"

    def __init__(self, options: DigitsOptions | None = None, space=None):
        super().__init__(options, space)
        images, labels = load()
        index = np.arange(len(labels))
        test = index % TEST_EVERY == 2
        rest = index[~test]
        arch = np.zeros(len(labels), bool)
        arch[rest[np.arange(len(rest)) % ARCH_EVERY == 1]] = True
        self._images = upsample(images, self.options.size)
        self._labels = labels
        self._indices = {"train": index[~test & ~arch], "arch": index[arch], "test": index[test]}

    def batch(self, split: str, *, seed: int, epoch: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images B x 1 x size x size in [0, 1], class indices B) drawn from `split`."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        rng = np.random.default_rng(stable_seed(seed, split, epoch, step))
        chosen = torch.from_numpy(rng.choice(self._indices[split], size=batch_size))
        return self._images[chosen], self._labels[chosen]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target, label_smoothing=self.options.label_smoothing)

    def validate(self, model: nn.Module, device: torch.device | str = "cpu") -> dict[str, float]:
        """{"accuracy", "loss"} on the test set; `model` runs in eval mode and its flags are restored."""
        flags = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                scores = torch.cat([model(chunk.to(device)).float().cpu() for chunk in torch.split(self.test_images, CHUNK)])
        finally:
            for module, training in flags:
                module.training = training
        labels = self.test_labels
        return {"accuracy": float((scores.argmax(1) == labels).float().mean()),
                "loss": float(F.cross_entropy(scores, labels))}

    @property
    def test_images(self) -> torch.Tensor:
        return self._images[self._indices["test"]]

    @property
    def test_labels(self) -> torch.Tensor:
        return self._labels[self._indices["test"]]


def load() -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as N x 1 x 8 x 8 float32 in [0, 1] and N int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    return images, torch.from_numpy(digits.target.astype(np.int64))


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    if size == images.shape[-1]:
        return images.contiguous()
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1).contiguous()


def stable_seed(*parts) -> int:
    """A seed from `parts` that is the same in every process (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")
