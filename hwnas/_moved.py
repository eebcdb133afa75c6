"""Old import paths of the engine's modules, kept for one release (0.2 removes them).

0.1 kept its modules side by side in `hwnas/`; they now live in subpackages by concept
(`hwnas.contracts`, `hwnas.tables`, `hwnas.search`, `hwnas.runs`, `hwnas.deploy`).
`import hwnas.space` (or `from hwnas.space import SearchSpace`) still works: a finder on
`sys.meta_path` hands back the module at its new path -- the same module object, so a
monkeypatch or a pickled class through either name is one thing -- with a
DeprecationWarning naming the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED: dict[str, str] = {  # old name under hwnas -> new name under hwnas
    "space": "contracts.space",
    "layout": "contracts.layout",
    "task": "contracts.task",
    "plugins": "contracts.plugins",
    "catalog": "contracts.catalog",
    "errors": "contracts.errors",
    "config": "contracts.config",
    "config_fields": "contracts.config_fields",
    "config_search": "contracts.config_search",
    "config_runs": "contracts.config_runs",
    "config_tables": "contracts.config_tables",
    "latency": "contracts.latency",
    "latency_backend": "contracts.latency_backend",
    "describe": "contracts.describe",
    "latency_table": "tables.latency_table",
    "prediction": "tables.prediction",
    "cost": "tables.cost",
    "machine_load": "tables.machine_load",
    "supernet": "nas.supernet",
    "objective": "nas.objective",
    "schedule": "nas.schedule",
    "commitment": "nas.commitment",
    "bilevel": "nas.bilevel",
    "devices": "nas.devices",
    "combine": "nas.combine",
    "collapse": "nas.collapse",
    "history": "nas.history",
    "batchnorm": "nas.batchnorm",
    "sweep": "nas.sweep",
    "sweep_jobs": "nas.sweep_jobs",
    "front": "nas.front",
    "baselines": "nas.baselines",
    "searching": "nas.searching",
    "search_loop": "nas.search_loop",
    "search_setup": "nas.search_setup",
    "search_outputs": "nas.search_outputs",
    "run": "runs.run",
    "rundir": "runs.rundir",
    "outdir": "runs.outdir",
    "checkpoint": "runs.checkpoint",
    "prefetch": "runs.prefetch",
    "compute": "runs.compute",
    "distributed": "runs.distributed",
    "training": "runs.training",
    "evaluation": "runs.evaluation",
    "executors": "runs.executors",
    "io": "runs.io",
    "rows": "runs.rows",
    "onnx_export": "deploy.onnx_export",
    "onnx_naming": "deploy.onnx_naming",
    "onnx_checks": "deploy.onnx_checks",
    "bn_folding": "deploy.bn_folding",
    "quantize": "deploy.quantize",
    "quantized_export": "deploy.quantized_export",
    "quantised_io": "deploy.quantised_io",
    "inference": "deploy.inference",
    "modelfile": "deploy.modelfile",
    "device_check": "deploy.device_check",
    "sensitivity": "deploy.sensitivity",
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        head, _, rest = fullname.partition(".")
        if head == "hwnas" and rest in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = f"hwnas.{MOVED[spec.name.partition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new}; import it from there (the old path goes in hwnas 0.2)",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)  # its attributes (__name__, __spec__) are left as they are

    def exec_module(self, module):
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
