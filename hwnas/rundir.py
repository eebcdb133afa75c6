"""The layout of a search run directory, in one place.

    config.yaml          resolved SearchConfig (space spec included)
    lut.csv, lut.meta.json   the latency table the run used, copied in
    checkpoints/last.pt  latest state (prev.pt: the one before)
    steps.csv            every step's loss terms (rewritten up to the checkpoint on resume)
    metrics.csv          per epoch: loss terms, entropy, expected latency, val PSNR
    alpha_history.csv    epoch, position, candidate, alpha
    alpha.png, entropy.png
    arch.json            derived architecture (argmax alpha), deterministic bytes
    summary.json         predicted latency vs the base network, val metrics, choices
    .hwnas-run, .hwnas-lock  what made the folder, and who writes it now (hwnas.outdir)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwnas.checkpoint import checkpoint_files


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def lut(self) -> Path:
        return self.root / "lut.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def steps(self) -> Path:
        return self.root / "steps.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

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
    def arch(self) -> Path:
        return self.root / "arch.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def has_checkpoint(self) -> bool:
        return bool(checkpoint_files(self.checkpoints))

    def is_run(self) -> bool:
        """Whether a search has already written here (config or checkpoints)."""
        return self.config.exists() or self.has_checkpoint()

    def check_writable(self, resume: bool) -> None:
        """Refuse an --out that is a file, lies under one, holds a run (unless resuming), or holds
        anything else (see `hwnas.outdir`)."""
        from hwnas.outdir import check

        check(self.root, "search", resume)
