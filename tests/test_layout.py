"""The import rules of the layout (README, "Layout"), checked on the source with `ast`, in every folder.

- the engine (`hwnas/` and every subpackage, such as `hwnas/tables/`, but `hwnas/cli/` and
  `hwnas/__main__.py`) never imports a plugin -- `hwnas.backends`, `hwnas.searchspaces`, or
  any package that declares an `hwnas.*` entry point -- nor the command line: plugins
  reach it through `hwnas.contracts.plugins` only;
- the command line (`hwnas/cli/`, `hwnas/__main__.py`) imports the public API and engine
  modules, never a plugin;
- plugins (`backends/`, `searchspaces/`, everything under `examples/`) never import each
  other nor the command line, and of the engine they import only the contract modules
  (`CONTRACTS`): what a plugin implements or is handed.

Every import in a file counts, also one inside a function (a lazy import is still a
dependency). `KNOWN_EXCEPTIONS` lists the engine modules outside the contracts that a
plugin folder imports today, each with why; an entry no longer needed fails the test, so
the list only shrinks. The checker takes a root folder, so a test can plant a violation in
a temporary copy of a subfolder and see it caught.
"""

from __future__ import annotations

import ast
import functools
import shutil
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLUGINS = ("hwnas.backends", "hwnas.searchspaces")
CLI = ("hwnas.cli",)
PLUGIN_LAYERS = ("backends", "searchspaces", "examples")

# The engine modules a plugin may import: the contracts it implements or is handed.
CONTRACTS = (
    "hwnas.contracts.space",  # ChoiceBlock, SearchSpace, Unit, Architecture
    "hwnas.contracts.task",  # Task, SPLITS
    "hwnas.contracts.config",  # pydantic configs a plugin reads
    "hwnas.contracts.plugins",  # discovery and explicit registration
    "hwnas.contracts.errors",  # HwnasError and its kinds
    "hwnas.contracts.latency",  # the LatencyBackend contract and its records
)
PUBLIC_API = "hwnas"  # `from hwnas import HwnasError`: the package's own names (a submodule named so counts as itself)

# (plugin folder, engine module outside CONTRACTS): why it is still imported. Found on
# 2026-12-06 (issue 23 item 6); the backend entries go when item 3 narrows the backend contract.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("backends", "hwnas.deploy.onnx_export"): "ONNX Runtime times the graph `hwnas export` ships (one export path)",
    ("backends", "hwnas.deploy.quantize"): "int8/w8a16 tables quantise each unit as `hwnas export --precision` does",
    ("backends", "hwnas.deploy.quantised_io"): "ONNX Runtime reads quantised unit files written by the engine",
    ("backends", "hwnas.tables.machine_load"): "ONNX Runtime reports how busy the machine was while it measured",
    ("backends", "hwnas.tables.cost"): "the macs backend counts MACs with the engine's counter",
    ("backends", "hwnas.tables.attribution"): "AI Hub's per-layer breakdown names a converter's layers by the exported "
                                              "ONNX nodes they stand for (`exported_name`, `normalise`)",
    ("searchspaces", "hwnas.runs.io"): "denoising_eval writes its images and tables atomically",
    ("examples", "hwnas.tables.cost"): "custom_backend.py (a script, not a package) estimates time from MACs",
    ("examples", "hwnas.contracts.describe"): "custom_space.py (a script, not a package) prints the space it defines",
}


@functools.cache  # one entry-point scan per session
def plugin_packages() -> tuple[str, ...]:
    """Top-level packages outside hwnas that declare an hwnas plugin (e.g. the sr2 example)."""
    groups = ("hwnas.searchspaces", "hwnas.backends", "hwnas.tasks")
    tops = {ep.value.split(":")[0].split(".")[0] for group in groups for ep in entry_points(group=group)}
    return tuple(sorted(tops - {"hwnas"}))


def python_files(folder: Path) -> list[Path]:
    """Every .py file under `folder`, at any depth (build and cache folders left out)."""
    skip = lambda part: part == "__pycache__" or part.endswith(".egg-info") or part == "build"  # noqa: E731
    return sorted(p for p in folder.rglob("*.py") if not any(skip(part) for part in p.relative_to(folder).parts))


def layers(root: Path = ROOT) -> dict[str, list[Path]]:
    cli = [*python_files(root / "hwnas" / "cli"), *[p for p in [root / "hwnas" / "__main__.py"] if p.is_file()]]
    return {
        "engine": [p for p in python_files(root / "hwnas") if p not in cli],
        "cli": cli,
        "backends": python_files(root / "backends"),
        "searchspaces": python_files(root / "searchspaces"),
        "examples": python_files(root / "examples"),
    }


def own_package(layer: str, path: Path, root: Path) -> str | None:
    """The plugin package `path` belongs to (None: an example script, part of no package)."""
    if layer in ("backends", "searchspaces"):
        return f"hwnas.{layer}"
    parts = path.relative_to(root / "examples").parts
    return parts[1] if len(parts) > 2 else None  # examples/<project>/<package>/...


def is_module(name: str) -> bool:
    """Whether `name` (as in `from a import name`) is a module of the repository rather than an attribute
    (read in the repository itself: a copy of one folder has no engine to look in)."""
    parts = name.split(".")
    if parts[0] != "hwnas":
        return True  # another package: matched by prefix only, so either reading is safe
    mapped = {"backends": ROOT / "backends", "searchspaces": ROOT / "searchspaces"}
    base, rest = (mapped[parts[1]], parts[2:]) if len(parts) > 1 and parts[1] in mapped else (ROOT / "hwnas", parts[1:])
    target = base.joinpath(*rest)
    return target.is_dir() or target.with_suffix(".py").is_file()


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from a import b` counts a.b when b is a module, else a)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports"
            names = [f"{node.module}.{a.name}" for a in node.names]
            modules = [n for n in names if is_module(n)]
            found.update(modules)
            if len(modules) < len(names):  # attributes of node.module (`from pkg import mod` alone imports only mod)
                found.add(node.module)
    return found


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def forbidden(layer: str, own: str | None) -> tuple[str, ...]:
    """Module prefixes a file of `layer` (in plugin package `own`) must not import."""
    plugins = PLUGINS + plugin_packages()
    if layer == "engine":
        return plugins + CLI
    if layer == "cli":
        return plugins
    return tuple(p for p in plugins if p != own) + CLI


def is_contract(module: str) -> bool:
    return module == PUBLIC_API or any(under(module, c) for c in CONTRACTS)


def engine_modules(found: set[str], own: str | None) -> set[str]:
    """The engine modules among `found`: under hwnas, but not a plugin's own modules or another plugin."""
    return {m for m in found if under(m, "hwnas") and not any(under(m, p) for p in PLUGINS + CLI)}


def check(root: Path = ROOT) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(violations as (file, module), (plugin folder, non-contract engine module) pairs in use).

    A violation is a forbidden import, or a plugin's import of an engine module outside
    CONTRACTS that KNOWN_EXCEPTIONS does not list for its folder. Of `a.b` and `a.b.c`
    only `a.b` is reported."""
    bad: set[tuple[str, str]] = set()
    used: set[tuple[str, str]] = set()
    for layer, files in layers(root).items():
        for path in files:
            own = own_package(layer, path, root) if layer in PLUGIN_LAYERS else None
            found = imports(path)
            wrong = {m for m in found if any(under(m, prefix) for prefix in forbidden(layer, own))}
            if layer in PLUGIN_LAYERS:
                outside = {m for m in engine_modules(found, own) if not is_contract(m)}
                used.update((layer, m) for m in outside)
                wrong |= {m for m in outside if (layer, m) not in KNOWN_EXCEPTIONS}
            bad.update((path.relative_to(root).as_posix(), m) for m in wrong if m.rpartition(".")[0] not in wrong)
    return bad, used


def test_every_folder_imports_only_what_the_layout_allows():
    bad, _ = check()
    assert not bad, f"imports that break the layout (README, Layout; plugins import only {CONTRACTS}): {sorted(bad)}"


def test_the_known_exceptions_only_shrink():
    _, used = check()
    stale = sorted(set(KNOWN_EXCEPTIONS) - used)
    assert not stale, f"no longer needed, remove from KNOWN_EXCEPTIONS: {stale}"


def test_the_rules_see_every_folder_and_the_example_plugins():
    assert {"hwnas_superres", "hwnas_classifier"} <= set(plugin_packages())  # installed by the README's test command
    found = {layer: {p.relative_to(ROOT).as_posix() for p in files} for layer, files in layers().items()}
    assert "hwnas/tables/building.py" in found["engine"] and "hwnas/cli/lut.py" in found["cli"]
    assert "examples/classifier/hwnas_classifier/space.py" in found["examples"]
    assert "examples/superres/hwnas_superres/task.py" in found["examples"]
    assert not found["engine"] & found["cli"]


def copy_of(folder: str, root: Path) -> Path:
    """`folder` of the repository copied to the same place under `root` (sources only)."""
    shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return root / folder


def test_a_plugin_import_planted_in_an_engine_subpackage_is_caught(tmp_path):
    tables = copy_of("hwnas/tables", tmp_path)
    assert check(tmp_path)[0] == set()  # the copy itself is clean
    (tables / "planted.py").write_text("def lazy():\n    from hwnas.backends.onnxruntime import OnnxRuntimeBackend\n")
    assert check(tmp_path)[0] == {("hwnas/tables/planted.py", "hwnas.backends.onnxruntime")}


def test_a_non_contract_import_planted_in_a_plugin_is_caught(tmp_path):
    package = copy_of("examples/classifier", tmp_path) / "hwnas_classifier"
    assert check(tmp_path)[0] == set()
    (package / "planted.py").write_text("from hwnas.nas.searching import Search\nfrom hwnas_superres import task\n")
    assert check(tmp_path)[0] == {("examples/classifier/hwnas_classifier/planted.py", "hwnas.nas.searching"),
                                  ("examples/classifier/hwnas_classifier/planted.py", "hwnas_superres.task")}
    spaces = copy_of("searchspaces", tmp_path)
    (spaces / "planted.py").write_text("from hwnas.runs import training\n")
    assert ("searchspaces/planted.py", "hwnas.runs.training") in check(tmp_path)[0]


def test_the_engine_top_level_holds_only_the_api_and_subpackages():
    """The tree shows the architecture: every engine module lives in a subpackage by concept (issue 23 item 5)."""
    top = {p.name for p in (ROOT / "hwnas").glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "_moved.py", "api.py"}, sorted(top)
    for sub in ("contracts", "tables", "nas", "runs", "deploy"):
        doc = ast.get_docstring(ast.parse((ROOT / "hwnas" / sub / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), f"hwnas/{sub}/__init__.py says what lives there and what it may import"
