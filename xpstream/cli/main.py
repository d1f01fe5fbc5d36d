"""The `xp` command: one entry point for every part of xpstream.

Sub-commands live in sibling modules (``stack.py``, ``sql.py``, …), each exposing ``app`` (a Typer
group) or ``register(app)``. Heavy libraries are imported inside the commands that need them so that
``xp --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys

import click
import typer

from xpcore.errors import XpError

__all__ = ["app", "main"]

app = typer.Typer(
    name="xp",
    help="xpstream: a ClickHouse-native data plane for A/B experiments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
) -> None:
    """xpstream: assignment → Kafka → stream jobs → ClickHouse → stats, quality, dashboards.

    Examples:

      xp stack up

      xp sql "SELECT count() FROM xp.exposures" --format json
    """
    from xpcore.logs import configure_logging

    configure_logging(debug=debug)


def _register_subcommands(argv: list[str]) -> None:
    """Every sub-command, or only `xp assign` when that is the command run: bulk assignment is a
    short process whose start-up counts (issue #22), and the other groups import pydantic, urllib…"""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command == "assign":
        from xpstream.cli import assign as assign_only

        assign_only.register(app)
        return
    if command == "stream":  # a worker's start-up counts too (issue #22): ~0.1 s of results' imports
        from xpstream.cli import stream as stream_only

        stream_only.register(app)
        return
    from xpstream.cli import (
        activity,
        assign,
        backup,
        dashboard,
        experiments,
        funnel,
        jobs,
        loadgen,
        plan,
        program,
        results,
        sql,
        stack,
        stats,
        stream,
        up,
        warehouse,
    )

    for module in (
        stack,
        experiments,
        assign,
        loadgen,
        stream,
        jobs,
        results,
        plan,
        funnel,
        activity,
        program,
        stats,
        sql,
        dashboard,
        up,
        warehouse,
        backup,
    ):
        module.register(app)


_register_subcommands(sys.argv[1:])


def main() -> None:
    """Run `xp`; known errors become one line on stderr, tracebacks only with --debug."""
    debug = "--debug" in sys.argv
    try:
        code = app(standalone_mode=False)
    except click.exceptions.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except XpError as error:
        if debug:
            raise
        sys.stderr.write(f"error: {error}\n")
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as error:
        if debug:
            raise
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        sys.stderr.write(f"error: unexpected {type(error).__name__}: {error} (rerun with --debug)\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
