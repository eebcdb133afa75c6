"""Output folders of runs: what a folder holds, who may write to it, one writer at a time.

A run folder (`hwnas search`, `train`, `sweep` --out) carries a marker file,
`.hwnas-run`, that names the command which made it; it is written first thing when a
run starts. Runs made before the marker existed are recognised by their
`config.yaml` (`sweep.yaml` for a sweep). So a folder is one of:

- new, or empty: any run may start in it;
- a run of the same kind: only `--resume` continues it;
- a run of another kind, or files hwnas did not write (a home folder, a data set):
  refused, naming what is there, before anything is written.

While a run writes, it holds an exclusive `fcntl.flock` on `.hwnas-lock` in the
folder. The kernel drops the lock when the process ends, however it ends (kill -9
included), so a stale lock never blocks the next run; a second run started on the
same folder meanwhile is refused with the pid of the first.

`check_distinct` refuses an output path that is one of the command's inputs (an
`export --out` naming the model, a `denoise` output naming the input image).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import yaml

from hwnas.errors import HwnasError

MARKER = ".hwnas-run"
LOCK = ".hwnas-lock"
BOOKKEEPING = {MARKER, LOCK}
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


def _entries(root: Path) -> list[Path]:
    """What the folder holds, leaving out the marker and the lock."""
    try:
        return sorted(p for p in root.iterdir() if p.name not in BOOKKEEPING)
    except OSError as err:
        raise HwnasError(f"cannot read --out {root} ({err.strerror}); choose a folder you can read and write.") from None


def _listing(entries: list[Path], shown: int = 4) -> str:
    names = [p.name + ("/" if p.is_dir() else "") for p in entries]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check(root: Path, kind: str, resume: bool) -> None:
    """Refuse, before anything is written, an --out where a `kind` run cannot start (or resume)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise HwnasError(f"--out {root} is a file, not a folder; choose a folder path for the run.")
    for parent in root.parents:
        if parent.exists():
            if not parent.is_dir():
                raise HwnasError(f"--out {root} lies under the file {parent}; choose a folder path for the run.")
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
            raise HwnasError(f"{root} already holds a {noun}; pass --resume to continue it or choose another --out.")
        return
    if found is not None:
        raise HwnasError(f"{root} holds an hwnas {NOUNS.get(found, f'{found} run')}, not a {noun}; choose another --out.")
    raise HwnasError(
        f"--out {root} already holds {len(entries)} file(s) that are not an hwnas run ({_listing(entries)}); "
        "choose a new or empty folder."
    )


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
        self._fd: int | None = None
        self._created: list[Path] = []

    def acquire(self) -> None:
        check(self.root, self.kind, self.resume)
        missing = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self._created.extend(reversed(missing))  # outermost first
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = self.root / LOCK
            if not lock.exists():
                self._created.append(lock)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            self._forget()
            raise HwnasError(f"cannot create --out {self.root} ({err.strerror}); choose a writable folder.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise HwnasError(
                f"{self.root} is in use by another hwnas process (pid {holder}); wait for it to finish or choose another --out."
            ) from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            check(self.root, self.kind, self.resume)
            marker = self.root / MARKER
            if run_kind(self.root) != self.kind or not marker.is_file():
                from hwnas.io import atomic_write_text

                self._created.append(marker)
                atomic_write_text(marker, f"{self.kind}\n")
        except BaseException:
            self.release(failed=True)
            raise

    def release(self, failed: bool = False) -> None:
        if self._fd is None:
            return
        if failed and not _entries(self.root):
            self._forget()
        os.close(self._fd)  # closing the last descriptor drops the lock
        self._fd = None

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

    `via` runs the acquisition: `hwnas.distributed.from_main` makes rank 0 alone hold
    the folder and raises its refusal on every rank."""
    held = Claim(root, kind, resume)
    (via or (lambda f: f()))(held.acquire)
    return held


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode(errors="replace").strip()
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


def check_distinct(output: str | Path, flag: str, inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse an output path that is one of the inputs (`inputs`: what it is -> its path)."""
    for what, path in inputs.items():
        if path is not None and same_path(output, path):
            raise HwnasError(f"{flag} {output} is the {what}; writing it would destroy the input, so choose another output path.")


def check_outside(output: str | Path, flag: str, inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse an output folder that is, or lies inside, an input folder (outputs would mix into the data)."""
    out = Path(output).expanduser().resolve()
    for what, path in inputs.items():
        if path is None:
            continue
        folder = Path(path).expanduser().resolve()
        if out == folder or folder in out.parents:
            raise HwnasError(f"{flag} {output} lies in the {what}; outputs would mix with the inputs, so choose a folder outside it.")
