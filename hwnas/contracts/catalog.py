"""What is installed: plugin names and descriptions, read without importing the plugins.

A plugin module imports torch (seconds); `hwnas spaces` and `hwnas backends` answer in a
fraction of that. Each entry point names `module:Class` and the distribution that
installed it; the class's docstring and the literal class attributes a listing shows (a
space's presets, default task, output scales) are read from the module's source with
`ast`, without running it. A plugin whose attributes are computed or inherited, whose
source is not a `.py` file on disk, or that was registered in this process (no entry
point) is imported instead: slower, never wrong.
"""

from __future__ import annotations

import ast
import sys
from importlib.machinery import PathFinder
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hwnas.contracts import plugins

SPACE_FIELDS = ("presets", "default_task", "scales")


def spaces() -> list[dict[str, Any]]:
    """One record per installed search space: name, doc, presets, default_task, scales, package."""
    found = _entry_points(plugins.SPACE_GROUP)
    return [_space(name, found.get(name)) for name in plugins.space_names()]


def backends() -> list[dict[str, Any]]:
    """One record per installed latency backend: name, doc, package."""
    found = _entry_points(plugins.BACKEND_GROUP)
    return [_backend(name, found.get(name)) for name in plugins.backend_names()]


def _space(name: str, ep: EntryPoint | None) -> dict[str, Any]:
    node = _class_node(ep) if ep is not None else None
    fields = _space_fields(node) if node is not None else {}
    if node is None or any(value is None for value in fields.values()):
        cls = plugins.get_space(name)  # computed, inherited or registered in-process: ask the class
        node, fields = None, {"presets": list(cls.presets), "default_task": cls.default_task, "scales": list(cls.scales)}
        doc = cls.__doc__
    else:
        doc = ast.get_docstring(node)
        fields = {"presets": list(fields["presets"]), "default_task": fields["default_task"] or None,
                  "scales": list(fields["scales"])}
    return {"name": name, "doc": _first_line(doc), **fields, "package": _package(ep)}


def _backend(name: str, ep: EntryPoint | None) -> dict[str, Any]:
    node = _class_node(ep) if ep is not None else None
    doc = ast.get_docstring(node) if node is not None else plugins.get_backend(name).__doc__
    return {"name": name, "doc": _first_line(doc), "package": _package(ep)}


def _space_fields(node: ast.ClassDef) -> dict[str, Any]:
    """The listed fields a space class sets; one it leaves to `SearchSpace` (its direct base) takes the
    contract's default, read the same way. None where unknown (another base, a computed value)."""
    fields = {f: _literal(node, f) for f in SPACE_FIELDS}
    unset = [f for f in SPACE_FIELDS if _assigned(node, f) is None]
    if unset and [_name(b) for b in node.bases] == ["SearchSpace"]:
        base = _class_node(EntryPoint(name="SearchSpace", value="hwnas.contracts.space:SearchSpace", group=""))
        fields.update({f: _literal(base, f) if base is not None else None for f in unset})
    return fields


def _name(node: ast.expr) -> str | None:
    """`SearchSpace` for both `SearchSpace` and `hwnas.SearchSpace` in a class's bases."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _entry_points(group: str) -> dict[str, EntryPoint]:
    """name -> entry point; the first of a name wins, as in `hwnas.contracts.plugins`."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def _class_node(ep: EntryPoint) -> ast.ClassDef | None:
    """The class statement an entry point names, parsed from its module's source; None if unreadable."""
    if not ep.attr or "." in ep.attr:
        return None
    try:
        origin = _module_file(ep.module)
    except (ImportError, ValueError):
        return None
    if not origin or not origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == ep.attr), None)


def _assigned(node: ast.ClassDef, field: str) -> ast.expr | None:
    """The expression the class body assigns to `field` (the last one), or None."""
    found = None
    for stmt in node.body:
        target = stmt.target if isinstance(stmt, ast.AnnAssign) else (stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id == field and stmt.value is not None:
            found = stmt.value
    return found


def _module_file(module: str) -> str | None:
    """The source file of `module`, found without running a package's `__init__` (a plugin's
    package may import torch there): parents already imported are used as they are, the rest
    are looked up on their parent's path. Our own subpackages (empty, mapped by the install)
    may be imported."""
    parts, path = module.split("."), None
    for i in range(len(parts)):
        name, last = ".".join(parts[: i + 1]), i == len(parts) - 1
        loaded = sys.modules.get(name)
        if loaded is not None and not last:
            path = getattr(loaded, "__path__", None)
        else:
            spec = find_spec(name) if i == 0 else PathFinder.find_spec(name, path)
            if spec is None and parts[0] == "hwnas":
                spec = find_spec(name)
            if spec is None:
                return None
            if last:
                return spec.origin
            path = spec.submodule_search_locations
        if path is None:
            return None
    return None


def _literal(node: ast.ClassDef, field: str) -> Any:
    """A class attribute's value if the class body sets it to a literal; a dict gives its keys. None otherwise."""
    value = _assigned(node, field)
    if value is None:
        return None
    try:
        if isinstance(value, ast.Dict) and None not in value.keys:
            return tuple(ast.literal_eval(k) for k in value.keys)
        value = ast.literal_eval(value)
    except ValueError:
        return None
    return "" if value is None else value  # a literal None is known (no default task); "" keeps it apart from unknown


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def _package(ep: EntryPoint | None) -> str | None:
    """'name version' of the distribution that installed the plugin; None for one registered in-process."""
    dist = getattr(ep, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else None
