"""The analyst client: ``xpstream.connect()`` → polars frames for notebooks (issue #18, docs/analysts.md).

```python
import xpstream

client = xpstream.connect()                  # embedded store, a running `xp up`, or XP_CLICKHOUSE_URL
client.sql("SELECT count() FROM xp.events")  # polars.DataFrame
client.results("checkout-button")            # one row per metric × variation (`xp results --format csv`)
client.lake.scan("events")                   # polars.LazyFrame over the Parquet lake (local or S3)
```

- Where the data is: the warehouse settings route it (:func:`xpcore.warehouse.open_warehouse`), exactly
  as for `xp sql`; each call opens the warehouse and closes it again, so a notebook never holds the
  embedded store and `xp` commands keep working beside it (docs/decisions/0071).
- Read-only, always: the lexical guard of `xp sql` (:mod:`xpcore.warehouse.sqlguard`) refuses writes,
  ``INTO OUTFILE`` and functions reaching outside the database (``file()``, ``url()``, ``s3()`` …) with
  :class:`~xpcore.errors.ReadOnlyError` before anything reaches the engine, and the query then runs on
  the engine's read-only connection. There is no write switch (use ``xp sql --write``).
- ``results`` is the JSON of `xp results --format json`, flattened by the same code as ``--format csv``
  (:func:`jobs.results.flat_rows.csv_rows`): the same numbers under the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xpcore.errors import ReadOnlyError, ValidationError

if TYPE_CHECKING:
    import polars as pl

    from xpcore.config import LakeSettings, WarehouseSettings

__all__ = ["Client", "Lake", "connect"]


def _refuse_unless_read_only(query: str, *, allow_external: bool) -> str:
    """The one statement of ``query`` when `xp sql` (without --write) would run it; else an XpError."""
    from xpcore.warehouse.sqlguard import external_refusal, read_only_refusal
    from xpcore.warehouse.sqltext import split_statements

    statements = split_statements(query)
    if not statements:
        raise ValidationError("empty query: give one SQL statement")
    if len(statements) > 1:
        raise ValidationError(f"{len(statements)} statements given: client.sql runs one statement at a time")
    outside = None if allow_external else external_refusal(query)
    if outside is not None:
        raise ReadOnlyError(f"refused: {outside} (set XP_SQL_ALLOW_EXTERNAL=true to allow it)")
    refusal = read_only_refusal(query, allow_external=allow_external)
    if refusal is not None:
        raise ReadOnlyError(f"refused, the analyst client is read-only: {refusal} (use `xp sql --write`)")
    return statements[0]


@dataclass(frozen=True)
class Lake:
    """The Parquet lake that `xp jobs run lake` writes (``XP_LAKE_URL``, default ``$XP_HOME/lake``)."""

    settings: LakeSettings

    @property
    def url(self) -> str:
        """The lake's location as a URL (``file:///…`` or ``s3://bucket/prefix``)."""
        return self._location().url

    def _location(self) -> Any:
        from pathlib import Path

        from jobs.lake.plan import parse_lake_url

        return parse_lake_url(self.settings.lake_location, cwd=str(Path.cwd()))

    def tables(self) -> list[str]:
        """The table folders the lake can hold (``exposures``, ``events`` …)."""
        from jobs.lake.plan import LAKE_TABLES

        return list(LAKE_TABLES)

    def scan(self, table: str) -> pl.LazyFrame:
        """A lazy frame over every Parquet file of ``table`` (hive columns ``date`` and, where the lake
        splits by experiment, ``experiment_key``). Unknown names and an empty table are a clear error."""
        import polars as pl

        from jobs.lake.plan import LAKE_TABLES

        if table not in LAKE_TABLES:
            raise ValidationError(f"unknown lake table {table!r} (known: {', '.join(LAKE_TABLES)})")
        location = self._location()
        if location.scheme == "file":
            from pathlib import Path

            folder = Path(location.join(table))
            if not any(p for p in folder.glob("date=*/**/*.parquet") if not _hidden(p.relative_to(folder))):
                raise ValidationError(
                    f"the lake has no files for {table!r} under {folder} yet: run `xp jobs run lake` first"
                )
            return pl.scan_parquet(f"{folder}/**/*.parquet", hive_partitioning=True)
        return pl.scan_parquet(
            f"s3://{location.join(table)}/**/*.parquet",
            hive_partitioning=True,
            storage_options=_s3_options(self.settings),
        )


def _hidden(relative: Any) -> bool:
    """A path under a table folder that readers skip (staging/trash folders, manifests)."""
    return any(part.startswith((".", "_")) for part in relative.parts)


def _s3_options(settings: LakeSettings) -> dict[str, str]:
    """polars' object-store options from the lake settings (secrets revealed only here)."""
    options: dict[str, str] = {}
    if settings.lake_s3_endpoint_url:
        options["aws_endpoint_url"] = settings.lake_s3_endpoint_url
        if settings.lake_s3_endpoint_url.startswith("http://"):
            options["aws_allow_http"] = "true"
    if settings.lake_s3_region:
        options["aws_region"] = settings.lake_s3_region
    for key, secret in (
        ("aws_access_key_id", settings.lake_s3_access_key_id),
        ("aws_secret_access_key", settings.lake_s3_secret_access_key),
        ("aws_session_token", settings.lake_s3_session_token),
    ):
        if secret is not None:
            options[key] = secret.get_secret_value()
    return options


class Client:
    """Read-only access to the warehouse, experiment results and the lake, as polars frames."""

    def __init__(self, warehouse: WarehouseSettings, lake: LakeSettings) -> None:
        self.settings = warehouse
        self.lake = Lake(lake)

    def sql(self, query: str, parameters: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run one read-only statement; its rows as a polars DataFrame (from the Arrow result).

        ``parameters`` are bound server-side (ClickHouse ``{name:Type}`` placeholders), never formatted
        into the text. Writes, ``INTO OUTFILE`` and ``file()``/``url()``/``s3()``/``remote()`` … raise
        :class:`~xpcore.errors.ReadOnlyError`, as in `xp sql`.
        """
        import polars as pl

        from xpcore.warehouse import open_warehouse

        statement = _refuse_unless_read_only(query, allow_external=self.settings.sql_allow_external)
        warehouse = open_warehouse(self.settings)
        try:
            table = warehouse.query_arrow(statement, parameters, read_only=True)
        finally:
            warehouse.close()
        frame = pl.from_arrow(table, rechunk=False)
        assert isinstance(frame, pl.DataFrame)  # a Table (not an Array) gives a DataFrame
        return frame

    def results(
        self,
        experiment: str,
        *,
        method: str | None = None,
        alpha: float | None = None,
        cuped: bool | None = None,
        correction: str | None = None,
        segment: str | None = None,
        top: int = 10,
        since: datetime | None = None,
        until: datetime | None = None,
        fresh: bool = False,
    ) -> pl.DataFrame:
        """An experiment's results now: one row per metric × variation (segments after, with
        ``segment`` set), the columns and numbers of `xp results --format json` / ``--format csv``.
        Options as in `xp results` (``None``: the experiment's ``analysis:`` block)."""
        import polars as pl

        from jobs.results.flat_rows import CSV_COLUMNS, csv_rows
        from xpstream.results_query import compute_results

        if top < 1:
            raise ValidationError("top must be ≥ 1")
        result = compute_results(
            experiment,
            method=method,
            alpha=alpha,
            cuped=cuped,
            correction=correction,
            segment=segment,
            top=top,
            since=since,
            until=until,
            fresh=fresh,
        )
        rows = csv_rows(result)
        return pl.DataFrame(
            {name: [row.get(name) for row in rows] for name in CSV_COLUMNS},
            schema=_results_schema(),
        )


def _results_schema() -> dict[str, Any]:
    """Column types of :meth:`Client.results` (fixed, so an empty result has them too)."""
    import polars as pl

    text, number, integer = pl.String, pl.Float64, pl.Int64
    kinds = {
        "variation_id": integer,
        "units": integer,
        "mean": number,
        "estimate": number,
        "ci_low": number,
        "ci_high": number,
        "p_value": number,
        "p_value_adjusted": number,
        "chance_to_win": number,
        "significant": pl.Boolean,
        "alpha": number,
        "srm_p_value": number,
    }
    from jobs.results.flat_rows import CSV_COLUMNS

    return {name: kinds.get(name, text) for name in CSV_COLUMNS}


def connect() -> Client:
    """A client on the configured warehouse and lake (``XP_*`` settings, as for the `xp` commands).

    Checks once that the warehouse opens (embedded store, a running `xp up`'s API, or
    ``XP_CLICKHOUSE_URL``), so a wrong setting fails here rather than at the first query.
    """
    from xpcore.config import LakeSettings, WarehouseSettings, load_settings
    from xpcore.warehouse import open_warehouse

    warehouse_settings = load_settings(WarehouseSettings)
    open_warehouse(warehouse_settings).close()
    return Client(warehouse_settings, load_settings(LakeSettings))
