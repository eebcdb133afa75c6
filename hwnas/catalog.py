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
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from hwnas import plugins

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
    fields = {f: _literal(node, f) for f in SPACE_FIELDS} if node is not None else {}
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


def _entry_points(group: str) -> dict[str, EntryPoint]:
    """name -> entry point; the first of a name wins, as in `hwnas.plugins`."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def _class_node(ep: EntryPoint) -> ast.ClassDef | None:
    """The class statement an entry point names, parsed from its module's source; None if unreadable."""
    if not ep.attr or "." in ep.attr:
        return None
    try:
        spec = find_spec(ep.module)  # imports the parent packages only (ours are empty)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == ep.attr), None)


def _literal(node: ast.ClassDef, field: str) -> Any:
    """A class attribute's value if the class body sets it to a literal; a dict gives its keys. None otherwise."""
    for stmt in node.body:
        target = stmt.target if isinstance(stmt, ast.AnnAssign) else (stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id == field and stmt.value is not None:
            try:
                if isinstance(stmt.value, ast.Dict) and None not in stmt.value.keys:
                    return tuple(ast.literal_eval(k) for k in stmt.value.keys)
                value = ast.literal_eval(stmt.value)
            except ValueError:
                return None
            return "" if value is None else value  # a literal None is known (no default task); "" keeps it apart from unknown
    return None


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def _package(ep: EntryPoint | None) -> str | None:
    """'name version' of the distribution that installed the plugin; None for one registered in-process."""
    dist = getattr(ep, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else None
