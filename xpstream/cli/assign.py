"""`xp assign …`: evaluate assignments (issue #3)."""

from __future__ import annotations

from pathlib import Path

import typer

from xpstream.cli._pending import pending
from xpstream.cli.output import OutputFormat

assign_app = typer.Typer(help="Evaluate and serve assignments.", no_args_is_help=True)


@assign_app.command("eval")
def eval_(
    features: Path = typer.Option(..., "--features", help="GrowthBook payload (JSON) or xpstream YAML."),
    key: str = typer.Option(..., "--key", help="Feature key to evaluate."),
    attributes: str | None = typer.Option(None, "--attributes", help="Unit attributes as a JSON object."),
    attributes_file: Path | None = typer.Option(None, "--attributes-file", help="JSONL: one unit per line."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Evaluate feature KEY for one unit or a file of units.

    Example: xp assign eval --features payload.json --key checkout --attributes '{"id": "u1"}' --format json
    """
    raise pending("assign eval", 3)


@assign_app.command("serve")
def serve(port: int = typer.Option(8100, "--port", help="Port to listen on.")) -> None:
    """Serve the assignment HTTP API.

    Example: xp assign serve --port 8100
    """
    raise pending("assign serve", 3)


def register(app: typer.Typer) -> None:
    app.add_typer(assign_app, name="assign")
