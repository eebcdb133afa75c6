"""The `hwnas` command line: parse, validate, call the library. Nothing else lives here.

Each command group sits in its own module and is registered below. How a run ends
when it cannot go on (the last stderr line, the exit status) is `hwnas.cli.exits`.
"""

from __future__ import annotations

import os
import sys

import typer

from hwnas import __version__
from hwnas.cli import deploy, exits, info, logs
from hwnas.cli import search as search_cli
from hwnas.cli import lut
from hwnas.cli import profile as profile_cli
from hwnas.contracts.errors import HwnasError

app = typer.Typer(
    name="hwnas",
    help="Hardware-aware neural architecture search: search spaces x on-device latency backends.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
)

info.register(app)
deploy.register(app)
search_cli.register(app)
lut.register(app)
profile_cli.register(app)

DATA_PARALLEL = ("search", "train")  # the commands that run under torchrun (hwnas.runs.distributed)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hwnas {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug notes and the log lines of the libraries underneath (e.g. the AI Hub client's retries)."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the hwnas version and exit."),
) -> None:
    logs.configure(verbose)
    # torchrun would start N copies of any other command, all writing the same files.
    import os

    if ctx.invoked_subcommand not in DATA_PARALLEL and os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        raise HwnasError(f"hwnas {ctx.invoked_subcommand} does not run data-parallel; run it without torchrun "
                         f"(only {' and '.join(DATA_PARALLEL)} do).")


def main() -> None:
    """Console entry point (also `python -m hwnas`)."""
    # Before torch loads OpenMP: idle threads sleep instead of spinning, unless the user chose.
    # Spinning threads fight other processes for the cores (see hwnas.runs.compute).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logs.configure()
    sys.exit(_run())


def _run() -> int:
    """The exit status of one command line; every way out ends as `hwnas.cli.exits` says."""
    try:
        code = app(standalone_mode=False, prog_name="hwnas")  # also under `python -m hwnas` and torchrun
        # Without standalone mode typer returns, not raises, the code of an Exit -- including
        # Ctrl-C, which it turns into Exit(130); pass it on as the process's exit status.
        if isinstance(code, int) and code:
            if code == exits.INTERRUPTED:
                typer.echo("interrupted.", err=True)
            return code
        return 0
    except HwnasError as err:
        return exits.show_error(err)
    except KeyboardInterrupt:
        typer.echo("interrupted.", err=True)
        return exits.INTERRUPTED
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort as err:
        if isinstance(err.__context__, KeyboardInterrupt):  # click < 8.2 turns Ctrl-C into Abort
            typer.echo("interrupted.", err=True)
            return exits.INTERRUPTED
        typer.echo("aborted.", err=True)
        return exits.RUNTIME
    except BrokenPipeError:
        return exits.quiet_broken_pipe()
    except OSError as err:  # a full disk, a vanished folder: what the OS said, about which file
        return exits.show_os_error(err)
    except Exception as err:
        if exits.is_help_request(err):
            return exits.show_help(err)
        if exits.is_click_error(err):
            return exits.show_click_error(err)
        raise
