"""The layout of a run folder (`hwnas search` and `hwnas train` --out), in one place.

Both commands:

    config.yaml          the resolved config (SearchConfig / TrainConfig, space spec included)
    checkpoints/last.pt  latest state (prev.pt: the one before)
    metrics.csv          one row per epoch
    arch.json            the architecture (search: derived, argmax alpha; train: the one trained)
    .hwnas-run, .hwnas-lock  what made the folder, and who writes it now (hwnas.runs.outdir)

A search adds:

    lut.csv, lut.meta.json   the latency table the run used, copied in
    lut-NAME.csv (+ .meta.json)   several devices: each further device's table
    steps.csv            every step's loss terms (rewritten up to the checkpoint on resume)
    alpha_history.csv    epoch, position, candidate, alpha
    alpha.png, entropy.png
    summary.json         predicted latency vs the base network, val metrics, choices

A training run adds `model.pt`, the final network (`hwnas.deploy.modelfile`), at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwnas.runs.checkpoint import checkpoint_files


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def arch(self) -> Path:
        return self.root / "arch.json"

    @property
    def lut(self) -> Path:
        return self.root / "lut.csv"

    def device_lut(self, name: str) -> Path:
        """The copy of a further device's table (the first device's is `lut`)."""
        return self.root / f"lut-{name}.csv"

    @property
    def steps(self) -> Path:
        return self.root / "steps.csv"

    @property
    def alpha_history(self) -> Path:
        return self.root / "alpha_history.csv"

    @property
    def alpha_png(self) -> Path:
        return self.root / "alpha.png"

    @property
    def entropy_png(self) -> Path:
        return self.root / "entropy.png"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    def has_checkpoint(self) -> bool:
        return bool(checkpoint_files(self.checkpoints))
