"""The `hwnas` command line: parse, validate, call the library. Nothing else lives here.

Each command group sits in its own module and is registered below. A user's mistake
(`HwnasError`) is printed as one line on stderr with exit code 2 -- never a traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from hwnas.cli import deploy, info
from hwnas.cli import search as search_cli
from hwnas.cli import lut
from hwnas.errors import HwnasError

app = typer.Typer(
    name="hwnas",
    help="Hardware-aware neural architecture search: search spaces x on-device latency backends.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

info.register(app)
deploy.register(app)
search_cli.register(app)
lut.register(app)

DATA_PARALLEL = ("search", "train")  # the commands that run under torchrun (hwnas.distributed)


@app.callback()
def _one_process_unless_data_parallel(ctx: typer.Context) -> None:
    # torchrun would start N copies of any other command, all writing the same files.
    import os

    if ctx.invoked_subcommand not in DATA_PARALLEL and os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        raise HwnasError(f"hwnas {ctx.invoked_subcommand} does not run data-parallel; run it without torchrun "
                         f"(only {' and '.join(DATA_PARALLEL)} do).")


def main() -> None:
    """Console entry point (also `python -m hwnas`)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        code = app(standalone_mode=False)
        # Without standalone mode typer returns, not raises, the code of an Exit -- including
        # Ctrl-C, which it turns into Exit(130); pass it on as the process's exit status.
        if isinstance(code, int) and code:
            if code == 130:
                typer.echo("interrupted.", err=True)
            sys.exit(code)
    except HwnasError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted.", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        typer.echo("aborted.", err=True)
        sys.exit(1)
    except Exception as err:  # click usage errors carry their own exit code and message
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
