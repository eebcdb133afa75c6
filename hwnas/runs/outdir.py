"""Output folders of runs: what a folder holds, who may write to it, one writer at a time.

A run folder (`hwnas search`, `train`, `sweep` --out) carries a marker file,
`.hwnas-run`, that names the command which made it; it is written first thing when a
run starts. Runs made before the marker existed are recognised by their
`config.yaml` (`sweep.yaml` for a sweep). So a folder is one of:

- new, or empty: any run may start in it;
- a run of the same kind: only `--resume` continues it;
- a run of another kind, or files hwnas did not write (a home folder, a data set):
  refused, naming what is there, before anything is written.

While a run writes, it holds an exclusive lock on `.hwnas-lock` in the folder,
taken through `filelock` (the operating system's file lock, POSIX or Windows), and its pid in
`.hwnas-pid`. The operating system drops the lock when the process ends, however it
ends (kill -9 included), so a stale lock never blocks the next run; a second run
started on the same folder meanwhile is refused with the pid of the first.

`check_distinct` refuses an output path that is one of the command's inputs (an
`export --out` naming the model, a `denoise` output naming the input image).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import filelock
import yaml

from hwnas.contracts.errors import RuntimeFailure, Setting, naming, setting

MARKER = ".hwnas-run"
LOCK = ".hwnas-lock"
HOLDER = ".hwnas-pid"  # the pid of the process holding the lock (the lock file itself may be truncated or unreadable to others)
BOOKKEEPING = {MARKER, LOCK, HOLDER}
NOUNS = {"search": "search run", "train": "training run", "sweep": "sweep"}  # for messages

T = TypeVar("T")


# -- what a folder holds ------------------------------------------------------------------


def run_kind(root: Path) -> str | None:
    """The command that made the run in `root` ('search', 'train', 'sweep'), or None."""
    marker = root / MARKER
    if marker.is_file():
        try:
            kind = marker.read_text().split()
        except (OSError, UnicodeDecodeError):
            kind = []
        return kind[0] if kind else "unknown"
    return _kind_before_markers(root)


def _kind_before_markers(root: Path) -> str | None:
    """Runs written before the marker: a search or train config.yaml, a sweep's sweep.yaml or mu-* runs."""
    if (root / "sweep.yaml").is_file():
        return "sweep"
    config = root / "config.yaml"
    if config.is_file():
        try:
            values = yaml.safe_load(config.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        if isinstance(values, dict) and isinstance(values.get("spec"), dict):
            if "arch" in values:
                return "train"
            if "latency_weight" in values:
                return "search"
        return None
    subs = [p for p in _entries(root)]
    if subs and all(p.is_dir() and p.name.startswith("mu-") and _kind_before_markers(p) == "search" for p in subs):
        return "sweep"
    return None


def _bookkeeping(name: str) -> bool:
    """The marker, the lock, the holder's pid -- or one of them being written (`atomic_write`'s `.<name>.*.tmp`):
    another rank of the same run checks the folder while rank 0 writes its pid, and must not see a foreign file."""
    return name in BOOKKEEPING or (name.endswith(".tmp") and any(name.startswith(f".{b}.") for b in BOOKKEEPING))


def _entries(root: Path) -> list[Path]:
    """What the folder holds, leaving out the marker and the lock."""
    try:
        return sorted(p for p in root.iterdir() if not _bookkeeping(p.name))
    except OSError as err:
        raise naming(f"cannot read {{out}} ({err.strerror}); choose a folder you can read and write.", out=str(root)) from None


def _listing(entries: list[Path], shown: int = 4) -> str:
    names = [p.name + ("/" if p.is_dir() else "") for p in entries]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check(root: Path, kind: str, resume: bool) -> None:
    """Refuse, before anything is written, an --out where a `kind` run cannot start (or resume)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise naming(f"{{out}} is a file, not a folder; choose a folder path for the run.", out=str(root))
    for parent in root.parents:
        if parent.exists():
            if not parent.is_dir():
                raise naming(f"{{out}} lies under the file {parent}; choose a folder path for the run.", out=str(root))
            break
    if not root.exists():
        return
    entries = _entries(root)
    if not entries:
        return  # empty, or marked by a run that stopped before writing anything
    found = run_kind(root)
    noun = NOUNS.get(kind, f"{kind} run")
    if found == kind:
        if not resume:
            raise naming(f"{root} already holds a {noun}; pass {{resume}} to continue it or choose another {{out}}.",
                         resume=True, out=setting("out"))
        return
    if found is not None:
        raise naming(f"{root} holds an hwnas {NOUNS.get(found, f'{found} run')}, not a {noun}; choose another {{out}}.",
                     out=setting("out"))
    raise naming(f"{{out}} already holds {len(entries)} file(s) that are not an hwnas run ({_listing(entries)}); "
                 "choose a new or empty folder.", out=str(root))


# -- claiming a folder for the lifetime of a run --------------------------------------------


class Claim:
    """The right to write a `kind` run into `root`: a held lock plus the marker.

    `acquire()` creates the folder, takes the lock, checks the folder again under the
    lock (another run may have written it since the first check) and writes the
    marker. `release()` drops the lock; after a failure it also removes what
    `acquire()` created if the run wrote nothing else, so a refused or failed start
    leaves no trace. Usable as a context manager around the run; data-parallel runs
    acquire on rank 0 only (see `claim`).
    """

    def __init__(self, root: Path, kind: str, resume: bool):
        self.root, self.kind, self.resume = Path(root), kind, resume
        self._lock: filelock.BaseFileLock | None = None
        self._created: list[Path] = []

    def acquire(self) -> None:
        check(self.root, self.kind, self.resume)
        missing = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self._created.extend(reversed(missing))  # outermost first
        lock = filelock.FileLock(self.root / LOCK, timeout=0)  # timeout 0: one try, never wait
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not (self.root / LOCK).exists():
                self._created.append(self.root / LOCK)
            lock.acquire()
        except filelock.Timeout:
            raise naming(f"{self.root} is in use by another hwnas process (pid {_read_pid(self.root)}); wait for it to "
                         "finish or choose another {out}.", out=setting("out")) from None
        except OSError as err:
            self._forget()
            raise naming(f"cannot create {{out}} ({err.strerror}); choose a writable folder.", RuntimeFailure,
                         out=str(self.root)) from None
        self._lock = lock
        try:
            from hwnas.runs.io import atomic_write_text

            atomic_write_text(self.root / HOLDER, f"{os.getpid()}\n")
            check(self.root, self.kind, self.resume)
            marker = self.root / MARKER
            if run_kind(self.root) != self.kind or not marker.is_file():
                self._created.append(marker)
                atomic_write_text(marker, f"{self.kind}\n")
        except BaseException:
            self.release(failed=True)
            raise

    def release(self, failed: bool = False) -> None:
        if self._lock is None:
            return
        try:
            (self.root / HOLDER).unlink(missing_ok=True)
        except OSError:  # a folder that vanished or turned read-only: the pid goes stale, the lock still drops
            pass
        if failed and not _entries(self.root):
            self._forget()
        self._lock.release()
        self._lock = None

    def _forget(self) -> None:
        """Remove what `acquire()` created (newest first); never anything the run or a user wrote."""
        for path in reversed(self._created):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:
                pass
        self._created = []

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.release(failed=kind is not None and not issubclass(kind, KeyboardInterrupt))


def claim(root: Path, kind: str, resume: bool, via: Callable[[Callable[[], None]], None] | None = None) -> Claim:
    """A `Claim` on `root`, acquired now: `with claim(out, "search", resume): ...run...`.

    `via` runs the acquisition: `hwnas.runs.distributed.from_main` makes rank 0 alone hold
    the folder and raises its refusal on every rank."""
    held = Claim(root, kind, resume)
    (via or (lambda f: f()))(held.acquire)
    return held


def _read_pid(root: Path) -> str:
    """The holder's pid; "unknown" if it has not written it yet (or it is unreadable)."""
    try:
        text = (root / HOLDER).read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


# -- outputs that would overwrite inputs -----------------------------------------------------


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file or folder (links and relative forms resolved)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _both(text: str | Setting) -> Setting:
    """A label in both wordings (a plain string reads the same from Python and on the command line)."""
    return text if isinstance(text, Setting) else Setting(text, text)


def check_distinct(output: str | Path, flag: str | Setting, inputs: Mapping[str | Setting, str | Path | None]) -> None:
    """Refuse an output path that is one of the inputs (`inputs`: what it is -> its path). `flag` and the
    labels may be `Setting`s: their Python wording in `str(err)`, their flag in `err.cli`."""
    for what, path in inputs.items():
        if path is not None and same_path(output, path):
            raise naming(f"{{flag}} {output} is the {{what}}; writing it would destroy the input, so choose another output path.",
                         flag=_both(flag), what=_both(what))


def check_outside(output: str | Path, flag: str | Setting, inputs: Mapping[str | Setting, str | Path | None]) -> None:
    """Refuse an output folder that is, or lies inside, an input folder (outputs would mix into the data)."""
    out = Path(output).expanduser().resolve()
    for what, path in inputs.items():
        if path is None:
            continue
        folder = Path(path).expanduser().resolve()
        if out == folder or folder in out.parents:
            raise naming(f"{{flag}} {output} lies in the {{what}}; outputs would mix with the inputs, so choose a folder outside it.",
                         flag=_both(flag), what=_both(what))
