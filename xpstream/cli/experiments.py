"""`xp experiments …`: the experiment registry (issue #3)."""

from __future__ import annotations

from pathlib import Path

import typer

from xpstream.cli._pending import pending
from xpstream.cli.output import OutputFormat

experiments_app = typer.Typer(help="Manage experiments in the registry.", no_args_is_help=True)


@experiments_app.command("apply")
def apply(
    file: Path = typer.Argument(..., help="YAML experiments or a GrowthBook features payload."),
) -> None:
    """Validate FILE and publish its experiments to the registry.

    Example: xp experiments apply experiments/checkout.yaml
    """
    raise pending("experiments apply", 3)


@experiments_app.command("list")
def list_(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json.")) -> None:
    """List experiments in the registry.

    Example: xp experiments list --format json
    """
    raise pending("experiments list", 3)


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
