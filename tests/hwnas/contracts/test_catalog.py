"""The listing of installed plugins: read from entry points and source, equal to what the classes say."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from hwnas.contracts import catalog, plugins

LISTING = "import sys; from hwnas.cli import main; sys.argv = ['hwnas', *sys.argv[1:]]\ntry:\n    main()\nexcept SystemExit:\n    pass\nprint(json.dumps(sorted(m for m in sys.modules if m in ('torch', 'onnx', 'onnxruntime', 'qai_hub') or m.startswith(('hwnas.searchspaces.', 'hwnas.backends.', 'hwnas_')))), file=sys.stderr)"


@pytest.mark.parametrize("args", [["backends"], ["spaces"], ["backends", "--json"], ["spaces", "--json"], ["--version"]])
def test_a_listing_imports_no_torch(args):
    """Seconds of import for a list of names: torch and the plugins' runtimes stay unloaded (so does the CLI itself)."""
    done = subprocess.run([sys.executable, "-c", "import json\n" + LISTING, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == [], done.stderr  # no heavy package, no plugin module (nor its package) was imported
    assert done.stdout.strip()


def test_what_is_read_from_source_equals_the_classes():
    for record in catalog.spaces():
        cls = plugins.get_space(record["name"])
        assert record["presets"] == list(cls.presets) and record["default_task"] == cls.default_task
        assert record["scales"] == list(cls.scales) and record["doc"] == cls.__doc__.strip().splitlines()[0]
        assert record["package"].startswith("hwnas " if record["name"] == "nafnet-unet" else "")
    names = [r["name"] for r in catalog.backends()]
    assert names == plugins.backend_names() and {"onnxruntime", "qai-hub", "macs"} <= set(names)
    for record in catalog.backends():
        assert record["doc"] == plugins.get_backend(record["name"]).__doc__.strip().splitlines()[0]


def test_computed_attributes_are_asked_of_the_class(tmp_path, monkeypatch):
    """A space whose presets are computed cannot be read from source: it is imported instead."""
    (tmp_path / "my_space.py").write_text(textwrap.dedent('''
        from hwnas.contracts.space import SearchSpace

        class MySpace(SearchSpace):
            """`my-space`: presets made by a loop."""
            name = "my-space"
            presets = {f"w{w}": {"width": w} for w in (8, 16)}
            scales = (1,)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    mine = EntryPoint(name="my-space", value="my_space:MySpace", group=plugins.SPACE_GROUP)
    monkeypatch.setattr(catalog, "entry_points", lambda group: [mine] if group == plugins.SPACE_GROUP else [])
    monkeypatch.setattr(plugins, "entry_points", lambda group: [mine] if group == plugins.SPACE_GROUP else [])
    [record] = catalog.spaces()
    assert record == {"name": "my-space", "doc": "`my-space`: presets made by a loop.", "presets": ["w8", "w16"],
                      "default_task": None, "scales": [1], "package": None}


def test_a_space_is_read_without_running_its_module(tmp_path, monkeypatch):
    """Literal attributes, and those left to SearchSpace, are read from source: the module never runs."""
    (tmp_path / "never_run.py").write_text(textwrap.dedent('''
        raise RuntimeError("imported")
        from hwnas.contracts.space import SearchSpace

        class Quick(SearchSpace):
            """`quick`: its scales are SearchSpace's."""
            presets = {"a": {}, "b": {}}
            default_task = "denoising"
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    quick = EntryPoint(name="quick", value="never_run:Quick", group=plugins.SPACE_GROUP)
    monkeypatch.setattr(catalog, "entry_points", lambda group: [quick] if group == plugins.SPACE_GROUP else [])
    monkeypatch.setattr(plugins, "entry_points", lambda group: [quick] if group == plugins.SPACE_GROUP else [])
    [record] = catalog.spaces()
    assert record == {"name": "quick", "doc": "`quick`: its scales are SearchSpace's.", "presets": ["a", "b"],
                      "default_task": "denoising", "scales": [1], "package": None}
