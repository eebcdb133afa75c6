"""The one progress bar every command uses: tqdm on stderr, drawn only on a terminal.

On a terminal the bar redraws one line in place, log lines are routed above it
(`logging_redirect_tqdm`), and it is erased when it closes -- before an error is
printed, so `error: ...` always stands on its own last line. Anywhere else (a pipe,
a log file, CI) a bar would be a stream of carriage returns glued to the next line,
so nothing is drawn; log lines such as the per-epoch summaries still appear.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack, contextmanager
from typing import Iterator


def shown(enabled: bool = True) -> bool:
    """Whether a bar would be drawn: asked for, and stderr is a terminal."""
    try:
        return enabled and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


@contextmanager
def bar(total: int | float | None = None, *, desc: str | None = None, unit: str = "it", enabled: bool = True) -> Iterator["tqdm"]:  # noqa: F821
    """A tqdm bar (disabled, but still callable, when not `shown`); log lines go around it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    draw = shown(enabled)
    with ExitStack() as stack:
        if draw:
            stack.enter_context(logging_redirect_tqdm())
        progress = stack.enter_context(
            tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False, disable=not draw)
        )
        yield progress


def note(line: str) -> None:
    """A line on stderr that does not break a bar being drawn (tqdm.write moves it above the bar)."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)
