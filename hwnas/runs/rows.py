"""Rows of numbers as CSV: the one format of steps.csv, metrics.csv, sweep.csv and the eval CSVs.

One header line, then one line per row; columns in first-seen order unless given;
None is an empty cell; numbers as Python writes them (floats round-trip); "\\n" line
ends; a cell holding a comma or a quote is quoted (the csv module's rules).

Two ways to write:

- `write_rows` rewrites a whole file atomically (`hwnas.runs.io`): files derived from a
  run's in-memory state (metrics.csv) are rewritten, never appended, so a resumed run
  cannot duplicate a row;
- `RowLog` appends one row per step (steps.csv: too many rows to rewrite every step).
  On resume it first keeps only the rows before the checkpoint's step (their first
  column), so the rows a killed run wrote after its last checkpoint are written again
  once, by the resumed run.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TextIO

from hwnas.runs.io import atomic_write_text, write_failure


def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every key of `rows`, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns


def format_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *, header: bool = True) -> str:
    """`rows` as CSV text (missing cells and None empty); "" when there is nothing to write."""
    columns = list(columns) if columns is not None else columns_of(rows)
    if not columns:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="", extrasaction="ignore")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_rows(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Write `rows` to `path` as CSV, atomically (a reader sees the old file or the new one)."""
    atomic_write_text(Path(path), format_rows(rows, columns))


class RowLog:
    """An append-only CSV of one row per step: `with RowLog(path, columns, resume_from=n) as log: log.write(row)`.

    `resume_from` is the number of the first step to be written again (the checkpoint's
    global step): rows whose first column is below it are kept, the rest dropped. With
    `enabled=False` (ranks other than 0) nothing is read or written.
    """

    def __init__(self, path: Path, columns: Sequence[str], resume_from: int = 0, enabled: bool = True):
        self.path, self.columns, self.resume_from, self.enabled = Path(path), list(columns), resume_from, enabled
        self._file: TextIO | None = None

    def __enter__(self) -> "RowLog":
        if not self.enabled:
            return self
        kept = [format_rows([], self.columns)]  # the header
        if self.resume_from > 0 and self.path.exists():
            kept += [line + "\n" for line in self.path.read_text().splitlines()[1:]
                     if line and int(line.split(",")[0]) < self.resume_from]
        atomic_write_text(self.path, "".join(kept))
        self._file = open(self.path, "a")
        return self

    def write(self, row: Mapping[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(format_rows([row], self.columns, header=False))
        except OSError as err:  # a full disk: name the file (the OS error alone does not)
            raise write_failure(self.path, err) from None

    def flush(self) -> None:
        """Rows so far on disk (before a checkpoint that covers them is written)."""
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as err:
            raise write_failure(self.path, err) from None

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
