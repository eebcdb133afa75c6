"""Checkpoints: a state dict saved atomically, keeping the one before it.

`save_checkpoint(folder, state)` writes `folder/last.pt` and keeps the previous
`last.pt` as `folder/prev.pt`. A crash at any moment leaves at least one complete
file: the new one is written and fsynced under a temporary name before the old
files are rotated.

`load_checkpoint(folder)` reads with `torch.load(weights_only=True)` -- no pickled
code runs -- so a state may hold only tensors, numbers, strings, bools, None, and
lists/tuples/dicts of them (optimiser state dicts qualify). Store RNG states as
tensors (`rng_state`), paths as strings. When `last.pt` is missing, truncated or
corrupt it falls back to `prev.pt` with a warning.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import torch

from hwnas.contracts.errors import HwnasError
from hwnas.runs.io import atomic_write

logger = logging.getLogger(__name__)

LAST = "last.pt"
PREVIOUS = "prev.pt"


def save_checkpoint(folder: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to folder/last.pt, the former last.pt becoming prev.pt; returns the path.

    Serialised in memory first: torch.save into a file that hits a full disk reports
    only an opaque RuntimeError, while writing the bytes names the file and the reason.
    """
    folder = Path(folder)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    last = folder / LAST

    def keep_previous() -> None:
        if last.exists():
            os.replace(last, folder / PREVIOUS)

    atomic_write(last, lambda tmp: tmp.write_bytes(buffer.getbuffer()), before_replace=keep_previous)
    return last


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The checkpoint files present, newest first."""
    folder = Path(folder)
    return [p for p in (folder / LAST, folder / PREVIOUS) if p.is_file()]


def load_checkpoint(folder: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The newest readable checkpoint in `folder`, or None when there is none.

    Falls back from last.pt to prev.pt with a warning; raises `HwnasError` when
    checkpoints exist but none can be read.
    """
    files = checkpoint_files(folder)
    if not files:
        return None
    for path in files:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # truncated zip, bad pickle, unsupported global: all mean "unreadable"
            logger.warning("checkpoint %s is unreadable (%s); trying the previous one", path, err.__class__.__name__)
            continue
        if not isinstance(state, dict):
            logger.warning("checkpoint %s does not hold a state dict; trying the previous one", path)
            continue
        if path.name != LAST:
            logger.warning("using the previous checkpoint %s (the latest is missing or unreadable)", path)
        return state
    raise HwnasError(
        f"no checkpoint in {Path(folder)} can be read (all truncated or corrupt); start a new run with another --out."
    )


def rng_state(device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The torch RNG states (CPU, and the CUDA device in use) as tensors, loadable with weights_only."""
    state = {"cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), torch.device(device))
