"""`xp stack up|down|status`: the local Kafka broker and warehouse location (issue #2)."""

from __future__ import annotations

import typer

from xpstream.cli._pending import pending
from xpstream.cli.output import OutputFormat

stack_app = typer.Typer(help="Start, stop and inspect the local stack.", no_args_is_help=True)


@stack_app.command("up")
def up() -> None:
    """Start the local Kafka broker and create the topics (idempotent).

    Example: xp stack up
    """
    raise pending("stack up", 2)


@stack_app.command("down")
def down() -> None:
    """Stop the local Kafka broker.

    Example: xp stack down
    """
    raise pending("stack down", 2)


@stack_app.command("status")
def status(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json.")) -> None:
    """Show whether the broker runs and where the warehouse is.

    Example: xp stack status --format json
    """
    raise pending("stack status", 2)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
