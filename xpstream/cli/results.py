"""`xp results EXPERIMENT`: experiment results (issue #5)."""

from __future__ import annotations

import typer

from xpstream.cli._pending import pending
from xpstream.cli.output import OutputFormat


def results(
    experiment: str = typer.Argument(..., help="Experiment key."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Show the latest results of an experiment.

    Example: xp results checkout-button --format json
    """
    raise pending("results", 5)


def register(app: typer.Typer) -> None:
    app.command("results")(results)
