"""Durable file writes: a reader sees the old file or the new one, never half of one.

Every write goes to a temporary file beside the target, is fsynced, then renamed over
it. When the operating system refuses any step (a full disk, a file-size limit, a
read-only or unwritable folder), the temporary file is removed, the target and every
file written before it stay as they were, and one `RuntimeFailure` (an `HwnasError`)
names the file and the reason.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable

from hwnas.contracts.errors import RuntimeFailure

# errno -> what the user can do about it
FIXES = {
    errno.ENOSPC: "free disk space or choose an output on another disk",
    errno.EDQUOT: "free space within your disk quota or choose an output on another disk",
    errno.EFBIG: "the file exceeds the size limit of this file system or process (ulimit -f); choose another output",
    errno.EACCES: "choose a writable output path",
    errno.EPERM: "choose a writable output path",
    errno.EROFS: "the file system is read-only; choose a writable output path",
    errno.ENOTDIR: "a part of the path is a file; choose a folder path",
    errno.ENAMETOOLONG: "choose a shorter output path",
}


def write_failure(path: Path, err: OSError) -> RuntimeFailure:
    """One sentence for an OSError while writing `path`: the file, the reason, the fix (exit 1)."""
    reason = err.strerror or str(err) or type(err).__name__
    fix = FIXES.get(err.errno, "check the output path and the disk")
    failure = RuntimeFailure(f"cannot write {path} ({reason}); {fix}.")
    failure.path, failure.os_error = Path(path), err  # a caller writing scratch files can name the user's file instead
    return failure


def atomic_write(path: Path, write: Callable[[Path], None], before_replace: Callable[[], None] | None = None) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, then rename it over `path`.

    `before_replace` runs just before the rename (e.g. to keep the old file under
    another name). Any OSError on the way becomes one `HwnasError` naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_failure(path, err) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the user's usual mode
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_failure(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
