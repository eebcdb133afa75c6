"""Shared helpers for the benchmark scripts: machine facts, the meta sidecar, resumable CSVs.

Contract every benchmark follows (the results page relies on it):

- raw numbers go to `benchmarks/results/<name>.csv`, one row per measurement, written
  as they arrive (`append_row`), so an interrupted script resumes by skipping the rows
  already there (`done_keys`);
- beside it, `<name>.meta.json` (`record_run`) holds the exact command of every run that
  added rows, the machine (CPU model, cores, load average at start and end), library
  versions and dates, plus the script's own settings.

Usage::

    from common import RESULTS_DIR, append_row, done_keys, record_run

    with record_run("latency", settings={"threads": 2}) as meta:
        done = done_keys(RESULTS_DIR / "latency.csv", ["network", "round"])
        ...
        append_row(RESULTS_DIR / "latency.csv", {"network": "naf", "round": 0, "ms": 12.3})

Scripts run as `python benchmarks/bench_<name>.py` from the repository root (so this
folder is on `sys.path` and `import common` works); `run_main` gives them the CLI's
error convention (a user's mistake: one line `error: ...`, exit 2, no traceback).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import io
import json
import logging
import os
import platform
import shlex
import shutil
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

if TYPE_CHECKING:
    from hwnas.contracts.latency import LatencyTable
    from hwnas.contracts.space import SearchSpace

from hwnas.backends.onnxruntime import cpu_model  # the same CPU name the latency tables record
from hwnas.contracts.latency import versions

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LIBRARIES = ("hwnas", "torch", "onnx", "onnxruntime", "numpy", "pandas", "qai-hub", "scikit-image")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS does not say)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return []


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores usable by this process, OS, Python."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu_model": cpu_model(),
        "cores": usable,
        "logical_cpus": os.cpu_count() or 0,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are left out)."""
    return versions(*names)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, as a user would retype it from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]) if argv else Path("?")
    try:
        script = script.resolve().relative_to(Path(__file__).resolve().parent.parent)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *argv[1:]])


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def meta_path(name: str, results_dir: Path = RESULTS_DIR) -> Path:
    return Path(results_dir) / f"{name}.meta.json"


def read_meta(name: str, results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """The sidecar of benchmark `name`, or {} when there is none (or it is unreadable)."""
    path = meta_path(name, results_dir)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_meta(name: str, meta: Mapping[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write `<name>.meta.json` atomically; returns its path."""
    path = meta_path(name, results_dir)
    _atomic_text(path, json.dumps(meta, indent=2, sort_keys=False) + "\n")
    return path


@contextlib.contextmanager
def _locked_meta(name: str, results_dir: Path) -> Iterator[dict[str, Any]]:
    """The sidecar read, changed by the caller and written back under a lock: two runs of one benchmark at once (two
    stages, two networks) each change only their own entry instead of writing back a copy read before the other's."""
    import filelock

    where = Path(results_dir).resolve()
    lock = Path(tempfile.gettempdir()) / f"hwnas-bench-{hashlib.sha1(str(where).encode()).hexdigest()[:12]}-{name}.lock"
    with filelock.FileLock(lock):
        meta = read_meta(name, results_dir)
        yield meta
        write_meta(name, meta, results_dir)


@contextlib.contextmanager
def record_run(
    name: str,
    *,
    settings: Mapping[str, Any] | None = None,
    results_dir: Path = RESULTS_DIR,
    argv: Sequence[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Record one run of benchmark `name` in its sidecar, before and after the work.

    The sidecar keeps every run that contributed rows (a resumed benchmark has several):
    `runs: [{command, started, id, settings, finished, load_start, load_end, status}]` (status
    "done", "failed" or "interrupted"; "running" if the process was killed); `command` is the
    latest run's. `settings` are the script's own (threads, image size, ...): the top-level
    ones merge every run's (the latest wins a key), so each run's own are kept in its entry
    too (two runs of different lengths stay told apart); a caller may
    change the yielded dict (the sidecar as read at the start) during the run. The sidecar
    is written at the start (status "running") so a killed run still says what it was, and
    at the end what this run changed is set in the sidecar as it then is: two runs of one
    benchmark at once (two networks of the plateau) no longer write back each other's
    stale copy.
    """
    run = {
        "command": command_line(argv),
        "started": _now(),
        "id": f"{os.getpid()}-{uuid.uuid4().hex[:8]}",  # which entry is this run's when it ends
        "settings": dict(settings or {}),
        "load_start": load_average(),
        "status": "running",
    }
    with _locked_meta(name, results_dir) as meta:
        meta.update(name=name, command=run["command"], date=run["started"], machine=machine(),
                    versions=library_versions(), settings={**meta.get("settings", {}), **dict(settings or {})})
        meta.setdefault("notes", [])
        meta.setdefault("runs", []).append(dict(run))
    before = copy.deepcopy(meta)
    try:
        yield meta
        run["status"] = "done"
    except KeyboardInterrupt:
        run["status"] = "interrupted"
        raise
    except BaseException:
        run["status"] = "failed"
        raise
    finally:
        run["finished"] = _now()
        run["load_end"] = load_average()
        with _locked_meta(name, results_dir) as now:
            _merge(now, before, meta, run)


def _merge(now: dict, before: dict, mine: dict, run: dict) -> None:
    """Set in the sidecar as it is `now` what this run changed since `before` (its copy at the start is `mine` now):
    its own entry of `runs`, the notes it added, and every key it changed -- one level deep in a dict (`settings`,
    `searches`), so another run's keys beside them stay."""
    runs = now.setdefault("runs", [])
    same = [i for i, r in enumerate(runs) if r.get("id") == run["id"]]
    if same:
        runs[same[-1]] = run
    else:  # the sidecar was replaced meanwhile: keep this run's record all the same
        runs.append(run)
    if mine.get("notes") != before.get("notes"):  # this run's notes (it may have replaced them), then others' new ones
        others = [n for n in now.get("notes", []) if n not in before.get("notes", [])]
        now["notes"] = list(dict.fromkeys([*mine.get("notes", []), *others]))
    for key, value in mine.items():
        if key in ("runs", "notes") or before.get(key) == value:
            continue
        was = before.get(key) if isinstance(before.get(key), dict) else {}
        if isinstance(value, dict) and isinstance(now.get(key), dict):
            now[key] = {**now[key], **{k: v for k, v in value.items() if was.get(k) != v}}
        else:
            now[key] = value


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV as dicts of strings ([] when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def done_keys(path: Path, columns: Sequence[str]) -> set[tuple[str, ...]]:
    """The `columns` values (as strings) of every row already in the CSV: what to skip on resume."""
    return {tuple(row.get(c, "") for c in columns) for row in read_rows(path)}


def model_id(model: Path) -> str:
    """`sha256:` and the first 12 hex digits of the model file's hash: which training a row measured (the prefix
    keeps an all-digit hash from being read back as a number)."""
    return "sha256:" + hashlib.sha256(Path(model).read_bytes()).hexdigest()[:12]


def chosen(text: str, known: Sequence[str], what: str = "networks") -> list[str]:
    """A `--networks a,b` value as a list, each name one of `known` (else one line naming the choices)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"error: unknown {what} {unknown}; choose among {','.join(known)}.")
    return names


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Add one row to a CSV, writing the header if the file is new.

    The whole file is rewritten atomically (results files are small), so a kill never
    leaves half a row. A row with a column the file does not have widens the header.
    """
    path = Path(path)
    rows = read_rows(path)
    columns = list(rows[0].keys()) if rows else []
    columns += [c for c in row if c not in columns]
    rows.append({k: _cell(v) for k, v in row.items()})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_text(path, buf.getvalue())


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _atomic_text(path: Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- running a benchmark script -------------------------------------------------------------


def run_main(main: Callable[[], Any]) -> None:
    """Run a script's `main` with logging to stderr; an `HwnasError` (a user's mistake) ends
    in one line `error: ...` and exit status 2, as in the `hwnas` command."""
    import signal

    from hwnas.contracts.errors import HwnasError

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a run like Ctrl-C: rows so far kept, sidecar updated
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        main()
    except HwnasError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue where it stopped.", file=sys.stderr)
        raise SystemExit(130) from None


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def open_lut(
    lut: str | None, *, space: "SearchSpace", image_size: int, threads: int = 2, results_dir: Path = RESULTS_DIR
) -> tuple["LatencyTable", Path]:
    """The ONNX Runtime table of `space` at `image_size` (`lut`, or the per-user cache that
    `hwnas build-lut` writes), checked against the space and this machine; a copy (CSV +
    sidecar) is kept under `results/lut/` so the numbers can be rerun against it."""
    from hwnas.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeOptions
    from hwnas.tables.building import default_table_path_for
    from hwnas.contracts.errors import HwnasError
    from hwnas.contracts.latency import LatencyTable, sidecar_path

    backend = OnnxRuntimeBackend(OnnxRuntimeOptions(threads=threads))
    path = Path(lut) if lut else default_table_path_for(space, backend, image_size)
    if not path.is_file():
        raise HwnasError(
            f"no ONNX Runtime latency table at {path}; build it with `hwnas build-lut --backend onnxruntime "
            f"--preset {space.preset} --image-size {image_size}` (or pass --lut FILE)."
        )
    table = LatencyTable.load(path)
    table.check(space=space.name, fingerprint=space.fingerprint(), units=space.layout(image_size).unit_fingerprints, image_size=image_size, device=backend.device,
                backend=backend.name, settings=backend.settings())
    copy = Path(results_dir) / "lut" / path.name
    if copy.resolve() != path.resolve():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        shutil.copyfile(sidecar_path(path), sidecar_path(copy))
    return table, path
