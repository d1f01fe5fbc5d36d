"""`xp sql "QUERY"`: run one SQL statement against the warehouse (issue #2; guard: issue #13).

Read-only unless ``--write``: the lexical guard (:mod:`xpcore.warehouse.sqlguard`) refuses a statement
that writes anywhere (``WITH … INSERT``), ``INTO OUTFILE``, and functions that reach outside the database
(``file()``, ``url()``, ``s3()``, ``remote()``, ``executable()`` …) before anything reaches the engine;
read-only queries then run on the engine's read-only connection (``readonly=1`` on chDB). ``--write``
still refuses external functions; ``XP_SQL_ALLOW_EXTERNAL=true`` lets them through. Through a running
`xp up`, writes are limited to INSERT / ALTER … DELETE|UPDATE / OPTIMIZE on ``xp`` tables (no DDL).

Text that is not valid UTF-8 (e.g. a dead letter's original bytes) is shown with U+FFFD replacement
characters, never a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from xpcore.errors import ReadOnlyError, ValidationError
from xpstream.cli.output import OutputFormat, print_rows

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["register", "rows_of", "sql"]


def _lossy(value: Any) -> Any:
    """Bytes as text (invalid UTF-8 replaced), inside lists and dicts as well."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_lossy(v) for v in value]
    if isinstance(value, dict):
        return {_lossy(k): _lossy(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_lossy(v) for v in value]
    return value


def _binary_type(data_type: pa.DataType) -> pa.DataType:
    """``data_type`` with every string type replaced by its binary twin (same bytes, no UTF-8 check)."""
    import pyarrow as pa

    if pa.types.is_string(data_type):
        return pa.binary()
    if pa.types.is_large_string(data_type):
        return pa.large_binary()
    if pa.types.is_list(data_type):
        return pa.list_(_binary_type(data_type.value_type))
    if pa.types.is_large_list(data_type):
        return pa.large_list(_binary_type(data_type.value_type))
    if pa.types.is_map(data_type):
        return pa.map_(_binary_type(data_type.key_type), _binary_type(data_type.item_type))
    if pa.types.is_struct(data_type):
        return pa.struct([field.with_type(_binary_type(field.type)) for field in data_type])
    return data_type


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of ``table`` as dicts; a column holding invalid UTF-8 is decoded with replacements."""
    columns: dict[str, list[Any]] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            columns[name] = column.to_pylist(maps_as_pydicts="lossy")
        except UnicodeDecodeError:
            raw = column.cast(_binary_type(column.type))
            columns[name] = [_lossy(v) for v in raw.to_pylist(maps_as_pydicts="lossy")]
    return [{name: columns[name][i] for name in table.column_names} for i in range(table.num_rows)]


def sql(
    query: str = typer.Argument(..., help="One SQL statement (ClickHouse SQL; tables live in database xp)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv."),
    write: bool = typer.Option(False, "--write", help="Allow statements that change data or schema."),
) -> None:
    """Run SQL against the warehouse (read-only unless --write).

    Functions that reach outside the database (file, url, s3, remote, executable, mysql …) and
    INTO OUTFILE are refused unless XP_SQL_ALLOW_EXTERNAL=true.

    Examples:

      xp sql "SELECT count() FROM xp.exposures" --format json

      xp sql "SHOW TABLES FROM xp"

      xp sql "OPTIMIZE TABLE xp.events FINAL" --write
    """
    from xpcore.config import WarehouseSettings, load_settings
    from xpcore.warehouse import open_warehouse
    from xpcore.warehouse.sqlguard import external_refusal, read_only_refusal
    from xpcore.warehouse.sqltext import split_statements

    statements = split_statements(query)
    if not statements:
        raise ValidationError("empty query: give one SQL statement")
    if len(statements) > 1:
        raise ValidationError(f"{len(statements)} statements given: `xp sql` runs one statement at a time")

    settings = load_settings(WarehouseSettings)

    allow_external = settings.sql_allow_external
    # What reaches outside the database first: --write would not help there, so its hint would mislead.
    outside = None if allow_external else external_refusal(query)
    if outside is not None:
        raise ReadOnlyError(f"refused: {outside} (set XP_SQL_ALLOW_EXTERNAL=true to allow it)")
    refusal = read_only_refusal(query, allow_external=allow_external)
    if refusal is not None and not write:
        raise ReadOnlyError(f"refused, `xp sql` is read-only: {refusal} (add --write to run it)")

    warehouse = open_warehouse(settings)
    try:
        if refusal is None:
            table = warehouse.query_arrow(statements[0], read_only=not write)
            print_rows(rows_of(table), table.column_names, fmt)
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
