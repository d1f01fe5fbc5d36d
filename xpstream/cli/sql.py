"""`xp sql "QUERY"`: run one SQL statement against the warehouse (issue #2).

Read-only unless ``--write``: a statement that is not SELECT/WITH/SHOW/DESCRIBE/EXPLAIN/EXISTS is refused
before it reaches the engine, and read-only queries also run with ClickHouse's ``readonly=2``.
"""

from __future__ import annotations

import sys

import typer

from xpstream.cli.output import OutputFormat, print_rows
from xpstream.errors import ConfigError, ReadOnlyError, ValidationError

__all__ = ["register", "sql"]


def sql(
    query: str = typer.Argument(..., help="One SQL statement (ClickHouse SQL; tables live in database xp)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv."),
    write: bool = typer.Option(False, "--write", help="Allow statements that change data or schema."),
) -> None:
    """Run SQL against the warehouse (read-only unless --write).

    Examples:

      xp sql "SELECT count() FROM xp.exposures" --format json

      xp sql "SHOW TABLES FROM xp"

      xp sql "OPTIMIZE TABLE xp.events FINAL" --write
    """
    import pydantic

    from xpstream.config import WarehouseSettings
    from xpstream.warehouse import open_warehouse
    from xpstream.warehouse.sqltext import read_only_refusal, split_statements

    statements = split_statements(query)
    if not statements:
        raise ValidationError("empty query: give one SQL statement")
    if len(statements) > 1:
        raise ValidationError(f"{len(statements)} statements given: `xp sql` runs one statement at a time")
    refusal = read_only_refusal(query)
    if refusal is not None and not write:
        raise ReadOnlyError(f"refused, `xp sql` is read-only: {refusal} (add --write to run it)")

    try:
        settings = WarehouseSettings()
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise ConfigError(f"invalid setting {first['loc'][0]}: {first['msg']}") from None

    warehouse = open_warehouse(settings)
    try:
        if refusal is None:
            table = warehouse.query_arrow(statements[0], read_only=not write)
            rows = table.to_pylist(maps_as_pydicts="lossy")
            print_rows(rows, table.column_names, fmt)
        else:
            warehouse.command(statements[0])
            if fmt is OutputFormat.json:
                print_rows([], [], fmt)
            elif fmt is OutputFormat.table:
                sys.stderr.write("ok\n")
    finally:
        warehouse.close()


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
