"""How a command ends when it cannot run: the last stderr line and the exit status.

Contract (tested for every registered command): a user's mistake ends with one line
`error: <sentence>` as the LAST line on stderr, nothing on stdout, no traceback.

Exit statuses, one rule for every command (a script can tell a mistake from bad luck):

- 2 usage: an unknown flag, a bad value, a missing option (the usage line, then the
  error line, as click's own convention), and any `HwnasError` about what was asked
  (a file that is not a table, a name that is not installed);
- 1 runtime and I/O: the operating system refused (`RuntimeFailure`: a full disk, a
  file-size limit, a read-only folder) or an OS error nobody turned into an
  `HwnasError` (`error: <file>: <reason>`);
- 3 service: a remote service failed (`ServiceError`: AI Hub unreachable, rate limits
  that did not clear); the same command may succeed later;
- 130 interrupted (Ctrl-C), as shells report SIGINT.

typer (0.2x) vendors click as `typer._click` and no longer installs `click`, while
older typer uses `click` itself; both keep click's class names, so the usage-error
class is found through `typer.BadParameter`'s bases instead of importing either.
"""

from __future__ import annotations

import os
import re
import sys

import typer

from hwnas.contracts.errors import HwnasError, RuntimeFailure, ServiceError

USAGE, RUNTIME, SERVICE, INTERRUPTED = 2, 1, 3, 130

def _click_class(name: str) -> type:
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


CLICK_EXCEPTION = _click_class("ClickException")  # base of every error click shows to a user
USAGE_ERROR = _click_class("UsageError")


def status_of(err: HwnasError) -> int:
    """The exit status of an `HwnasError` (module docstring)."""
    if isinstance(err, ServiceError):
        return SERVICE
    if isinstance(err, RuntimeFailure):
        return RUNTIME
    return USAGE


def show_error(err: HwnasError) -> int:
    typer.echo(f"error: {err.cli}", err=True)  # the sentence with flags where it names a setting
    return status_of(err)


def is_help_request(err: BaseException) -> bool:
    """A group run without a command (`hwnas`, `hwnas lut`): click raises its help as an error."""
    return type(err).__name__ == "NoArgsIsHelpError"


def is_click_error(err: BaseException) -> bool:
    return isinstance(err, CLICK_EXCEPTION)


def sentence(message: str) -> str:
    """click's "No such option: --x" -> "no such option: --x" (our lines are lower-case sentences)."""
    message = " ".join(str(message).split()).rstrip(".")
    message = re.sub(r"\. Did you mean (.+)\?$", r" (did you mean \1?)", message)  # typer's suggestion, before our "; see ..."
    return message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message


def show_click_error(err: BaseException) -> int:
    """Print a click error in the contract's form; returns the exit status."""
    ctx = getattr(err, "ctx", None)
    message = sentence(err.format_message())
    if isinstance(err, USAGE_ERROR) and ctx is not None:
        typer.echo(ctx.get_usage(), err=True)
        message += f"; see `{ctx.command_path} --help`"
    typer.echo(f"error: {message}.", err=True)
    return int(getattr(err, "exit_code", USAGE) or USAGE)


def show_help(err: BaseException) -> int:
    """`hwnas` alone prints the help, as `hwnas --help` does (stdout, exit 0)."""
    typer.echo(err.format_message())
    return 0


def show_os_error(err: OSError) -> int:
    """`error: <file>: <reason>` for a stray operating-system failure; exit 1 (RUNTIME)."""
    reason = err.strerror or str(err) or type(err).__name__
    where = err.filename if err.filename is not None else None
    typer.echo(f"error: {where}: {reason}." if where is not None else f"error: {reason}.", err=True)
    return RUNTIME


def quiet_broken_pipe() -> int:
    """`hwnas ... | head`: the reader left; say nothing more (and let Python not complain at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout replaced (tests) or already closed
        pass
    return 1
