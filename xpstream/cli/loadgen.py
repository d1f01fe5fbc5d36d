"""`xp loadgen`: simulated traffic (issue #4)."""

from __future__ import annotations

import typer

from xpstream.cli._pending import pending
from xpstream.cli.output import OutputFormat


def loadgen(
    users: int = typer.Option(1000, "--users", help="Simulated units."),
    events: int | None = typer.Option(None, "--events", help="Metric events (default: proportional)."),
    rate: float | None = typer.Option(None, "--rate", help="Records per second (default: unthrottled)."),
    invalid_fraction: float = typer.Option(
        0.0, "--invalid-fraction", help="Share of deliberately bad records."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Simulate users meeting running experiments and produce exposures and events to Kafka.

    Example: xp loadgen --users 10000 --invalid-fraction 0.01 --seed 7 --format json
    """
    raise pending("loadgen", 4)


def register(app: typer.Typer) -> None:
    app.command("loadgen")(loadgen)
