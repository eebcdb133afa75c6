"""Validated, frozen configuration: one model per command, built once from the flags.

Each command's model is validated at the edge (CLI or library call) and passed down
as the part a function needs -- never as a dict threaded through everything. Runs
write their resolved model next to their outputs (`config.yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_text


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SpaceSpec(Frozen):
    """Which search space, which preset, and option overrides (validated by the space)."""

    space: str = "nafnet-unet"
    preset: str | None = None
    options: dict[str, Any] = {}

    def create(self):
        from hwnas.plugins import get_space

        return get_space(self.space).from_options(self.preset, **self.options)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` strings -> dict; values are YAML (`width=16`, `enc_blocks=[1,1]`)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HwnasError(f"space option {pair!r} is not KEY=VALUE; write e.g. --option width=16.")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise HwnasError(f"space option {key} has an unreadable value {value!r}; write e.g. enc_blocks=[1,1].") from None
    return out


class DescribeConfig(Frozen):
    spec: SpaceSpec
    image_size: int = Field(256, ge=8)


def write_config(config: BaseModel, path: Path) -> None:
    """The resolved config as YAML, next to a run's outputs."""
    atomic_write_text(Path(path), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
