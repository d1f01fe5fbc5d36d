"""`xp sql "QUERY"`: query the warehouse (issue #2)."""

from __future__ import annotations

import typer

from xpstream.cli._pending import pending
from xpstream.cli.output import OutputFormat


def sql(
    query: str = typer.Argument(..., help="SQL to run against the warehouse."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv."),
    write: bool = typer.Option(False, "--write", help="Allow statements that change data or schema."),
) -> None:
    """Run SQL against the warehouse (read-only unless --write).

    Example: xp sql "SELECT count() FROM xp.exposures" --format json
    """
    raise pending("sql", 2)


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
