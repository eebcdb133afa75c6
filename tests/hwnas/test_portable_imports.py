"""Every module imports where POSIX-only modules do not exist (Windows: Snapdragon laptops).

`fcntl` and `resource` are hidden in a fresh interpreter (`sys.modules[name] = None` makes
`import name` raise ImportError, as on Windows); then every module of hwnas, its backends and
its search spaces is imported. Run folders are still locked one writer at a time there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"hwnas": ROOT / "hwnas", "hwnas.backends": ROOT / "backends", "hwnas.searchspaces": ROOT / "searchspaces"}  # pyproject's package-dir

POSIX_ONLY = ("fcntl", "resource")

def modules() -> list[str]:
    """Every module of the installed package, from the source folders (`__main__` would run the CLI)."""
    names = []
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__main__" or (package == "hwnas" and parts[0] in ("backends", "searchspaces")):
                continue
            names.append(".".join((package, *parts[:-1], *([] if parts[-1] == "__init__" else [parts[-1]]))))
    return names


PROBE = textwrap.dedent("""
    import sys, json
    hidden, names = sys.argv[1].split(","), json.loads(sys.argv[2])
    for name in hidden:
        sys.modules[name] = None
    import importlib, warnings
    warnings.simplefilter("ignore")  # filelock: "only soft file lock is available" where fcntl is hidden on Linux

    for name in names:
        importlib.import_module(name)
    assert all(sys.modules[name] is None for name in hidden)  # still hidden: nothing got them another way

    from hwnas.tables import machine_load

    from hwnas.runs import outdir
    watch = machine_load.LoadWatch().start()
    sum(range(10000))
    assert watch.stop().seconds >= 0
    with outdir.claim(sys.argv[0], "search", resume=False):
        try:
            outdir.claim(sys.argv[0], "search", resume=True)
        except Exception as err:
            print("refused:", err)
    print(len(names), "modules")
""")


def test_every_module_imports_without_posix_only_modules(tmp_path):
    run, names = tmp_path / "run", modules()
    assert {"hwnas.runs.outdir", "hwnas.tables.machine_load", "hwnas.backends.onnxruntime", "hwnas.cli.search",
            "hwnas.tables.building", "hwnas.searchspaces.nafnet_unet"} <= set(names)
    done = subprocess.run([sys.executable, "-c", PROBE.replace("sys.argv[0]", repr(str(run))), ",".join(POSIX_ONLY), json.dumps(names)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"refused: {run} is in use by another hwnas process" in done.stdout, done.stdout
    assert done.stdout.splitlines()[-1] == f"{len(names)} modules", done.stdout
