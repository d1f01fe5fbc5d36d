"""`xp stats test`: statistics on sufficient statistics (issue #5)."""

from __future__ import annotations

from pathlib import Path

import typer

from xpstream.cli._pending import pending
from xpstream.cli.output import OutputFormat

stats_app = typer.Typer(help="Statistics on sufficient statistics.", no_args_is_help=True)


@stats_app.command("test")
def test(
    input_file: Path = typer.Option(..., "--input", help="One JSON object, or a .jsonl file of them."),
    fmt: OutputFormat = typer.Option(OutputFormat.json, "--format", help="json or table."),
) -> None:
    """Compare variants from their sufficient statistics; JSON in, JSON out.

    Example: xp stats test --input experiment.json
    """
    raise pending("stats test", 5)


def register(app: typer.Typer) -> None:
    app.add_typer(stats_app, name="stats")
