"""Before a command submits device jobs (AI Hub compiles and profiles): configured, counted, allowed.

Jobs on a remote service queue on shared devices and may count against a quota, so a
command says how many it would submit before submitting any. With `--yes` it goes
ahead; on a terminal it asks; with no terminal to ask on (a script, CI, a pipe into
stdin) it refuses, naming the count and `--yes`. `--dry-run` (build-lut) only counts,
and needs neither a token nor a yes.
"""

from __future__ import annotations

import sys

import typer

from hwnas.contracts.errors import HwnasError

YesOpt = typer.Option(False, "--yes", "-y", help="Submit remote device jobs (e.g. AI Hub) without asking; required when stdin is not a terminal.")


def interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdin
        return False


def authorise(backend, jobs: int, yes: bool) -> None:
    """Go on only if `backend` is configured and, when it would submit `jobs` remote jobs, the user agreed."""
    backend.check_configured()  # a missing token ends here, before any question or output
    if jobs <= 0 or not backend.submits_jobs or yes:
        return
    what = f"{jobs} {backend.name} job{'s' if jobs != 1 else ''} on {backend.device}"
    if not interactive():
        raise HwnasError(f"this would submit {what}; pass --yes to submit them (stdin is not a terminal, so hwnas cannot ask).")
    if not typer.confirm(f"Submit {what}?", default=False, err=True):
        raise typer.Abort()
