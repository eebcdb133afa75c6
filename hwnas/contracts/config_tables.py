"""The config models of measuring a space: `BuildLutConfig` (`hwnas build-lut`), `ProfileConfig`
(`hwnas profile`) and `DescribeConfig` (`hwnas describe`). Re-exported by `hwnas.contracts.config`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from hwnas.contracts.config_fields import Frozen, SpaceSpec


class DescribeConfig(Frozen):
    spec: SpaceSpec
    image_size: int = Field(256, ge=8)



class BuildLutConfig(Frozen):
    """`hwnas build-lut`: measure what a latency table of the space lacks.

    `backend_options` are the backend's own Options fields given by the user (only
    those: the backend's defaults fill the rest). `out` None means the per-user cache
    (`hwnas.tables.building.default_table_path`).
    """

    spec: SpaceSpec = SpaceSpec()
    image_size: int = Field(256, ge=8)
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = {}
    out: str | None = None
    force: bool = False
    dry_run: bool = False


class ProfileConfig(Frozen):
    """`hwnas profile`: networks (from --arch, --uniform, --random, --random-count or an
    --onnx file) measured end to end and compared with a table's prediction; optionally the
    per-layer breakdown of one network."""

    spec: SpaceSpec
    image_size: int = Field(256, ge=8)
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = {}
    lut: str | None = None
    arch: str | None = None
    uniform: str | None = None
    random: int | None = Field(None, ge=0)  # with random_count: the first seed
    random_count: int | None = Field(None, ge=1, le=1000)
    onnx: str | None = None
    same_rounds: bool = False  # with random_count: the table's units timed again in the networks' rounds
    breakdown: bool = False

    @model_validator(mode="after")
    def _one_architecture(self) -> "ProfileConfig":
        random = "--random-count" if self.random_count is not None else "--random"
        picked = (("--arch", self.arch), ("--uniform", self.uniform), ("--onnx", self.onnx),
                  (random, self.random if self.random_count is None else self.random_count))
        given = [flag for flag, v in picked if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of --arch FILE, --uniform CANDIDATE, --random SEED, --random-count N "
                             f"or --onnx FILE (got {' and '.join(given) or 'none'})")
        if self.breakdown and (self.random_count is not None or self.onnx is not None):
            raise ValueError(f"--breakdown takes one network from --arch, --uniform or --random, not {given[0]}")
        if self.same_rounds and self.random_count is None:
            raise ValueError("--same-rounds goes with --random-count N")
        return self
