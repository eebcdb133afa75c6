"""The import rules of the layout (README, "Layout"), checked on the source with `ast`.

- the engine (`hwnas/` but `hwnas/cli/` and `hwnas/__main__.py`) never imports a
  plugin -- `hwnas.backends`, `hwnas.searchspaces`, or any package that declares an
  `hwnas.*` entry point -- nor the command line: plugins reach it through
  `hwnas.plugins` only;
- the command line (`hwnas/cli/`, `hwnas/__main__.py`) imports the public API and
  engine modules, never a plugin;
- backends and search spaces (with their tasks) never import each other, nor the
  command line; task plugins shipped as examples import neither.

Every import in a file counts, also one inside a function (a lazy import is still a
dependency). `ALLOWED` lists the exceptions that exist today; each names the work that
removes it, and an entry no longer needed fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PLUGINS = ("hwnas.backends", "hwnas.searchspaces")
CLI = ("hwnas.cli",)

# (file, imported module prefix): why it is still there. Empty since issue 13 item 1 moved
# the generic table code (building, caching, profiling, attribution) into `hwnas.tables`.
ALLOWED: dict[tuple[str, str], str] = {}


def plugin_packages() -> tuple[str, ...]:
    """Top-level packages outside hwnas that declare an hwnas plugin (e.g. the sr2 example)."""
    groups = ("hwnas.searchspaces", "hwnas.backends", "hwnas.tasks")
    tops = {ep.value.split(":")[0].split(".")[0] for group in groups for ep in entry_points(group=group)}
    return tuple(sorted(tops - {"hwnas"}))


def layers() -> dict[str, list[Path]]:
    engine = [p for p in (ROOT / "hwnas").glob("*.py") if p.name != "__main__.py"]
    return {
        "engine": engine,
        "cli": [*(ROOT / "hwnas" / "cli").glob("*.py"), ROOT / "hwnas" / "__main__.py"],
        "backends": list((ROOT / "backends").glob("*.py")),
        "searchspaces": list((ROOT / "searchspaces").glob("*.py")),
        "example plugins": [p for p in (ROOT / "examples").glob("*/*/*.py")],
    }


def forbidden(layer: str) -> tuple[str, ...]:
    others = plugin_packages()
    return {
        "engine": PLUGINS + CLI + others,
        "cli": PLUGINS + others,
        "backends": ("hwnas.searchspaces",) + CLI + others,
        "searchspaces": ("hwnas.backends",) + CLI + others,
        "example plugins": PLUGINS + CLI,
    }[layer]


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from a import b` counts a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations() -> set[tuple[str, str]]:
    """(file, module) for every forbidden module a file imports (`a.b` only, not also `a.b.name`)."""
    found = set()
    for layer, files in layers().items():
        for path in files:
            bad = {m for m in imports(path) if any(under(m, prefix) for prefix in forbidden(layer))}
            found.update((path.relative_to(ROOT).as_posix(), m) for m in bad if m.rpartition(".")[0] not in bad)
    return found


def test_the_layers_import_only_what_the_layout_allows():
    unexpected = sorted(violations() - set(ALLOWED))
    assert not unexpected, f"imports that break the layout (README, Layout): {unexpected}"


def test_the_allow_list_only_shrinks():
    stale = sorted(set(ALLOWED) - set(violations()))
    assert not stale, f"no longer needed, remove from ALLOWED: {stale}"


def test_the_rules_see_the_plugins_and_the_example_task():
    assert "hwnas_superres" in plugin_packages()  # installed by the README's test command
    assert layers()["example plugins"], "examples/superres/hwnas_superres/*.py not found"
