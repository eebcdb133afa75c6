"""Validated, frozen configuration: one model per command, built once from the flags.

Each command's model is validated at the edge (CLI or library call) and passed down
as the part a function needs -- never as a dict threaded through everything. Runs
write their resolved model next to their outputs (`config.yaml`).

This module is the contract plugins and callers import; the models live by concept and
are re-exported here:

- `hwnas.contracts.config_fields` -- the shared base (`Frozen`), `SpaceSpec`, `TaskSpec`, the
  field helpers, reading and writing settings, `build_config`;
- `hwnas.contracts.config_search` -- `SearchConfig`, `TableRef`, `SweepConfig`, `FrontConfig`;
- `hwnas.contracts.config_runs` -- `TrainConfig`, `EvalConfig`, `ExportConfig`, `InferConfig`;
- `hwnas.contracts.config_tables` -- `BuildLutConfig`, `ProfileConfig`, `DescribeConfig`.
"""

from __future__ import annotations

from hwnas.contracts.config_fields import (  # re-exported
    FIELD_FLAGS, LEGACY_TASK_FIELDS, MIN_LR, TABLE_FIELD_FLAGS, WHOLE, Frozen, SpaceSpec, TaskSpec, build_config,
    check_rates, default_min_lr, merged, move_task_fields, parse_options, plain, read_settings, write_config,
)
from hwnas.contracts.config_runs import DenoiseConfig, EvalConfig, ExportConfig, InferConfig, TrainConfig  # re-exported
from hwnas.contracts.config_search import FrontConfig, SearchConfig, SweepConfig, TableRef  # re-exported
from hwnas.contracts.config_tables import BuildLutConfig, DescribeConfig, ProfileConfig  # re-exported

__all__ = [
    "FIELD_FLAGS", "LEGACY_TASK_FIELDS", "MIN_LR", "TABLE_FIELD_FLAGS", "WHOLE",
    "BuildLutConfig", "DenoiseConfig", "DescribeConfig", "EvalConfig", "ExportConfig", "FrontConfig", "Frozen",
    "InferConfig", "ProfileConfig", "SearchConfig", "SpaceSpec", "SweepConfig", "TableRef", "TaskSpec", "TrainConfig",
    "build_config", "check_rates", "default_min_lr", "merged", "move_task_fields", "parse_options", "plain",
    "read_settings", "write_config",
]
