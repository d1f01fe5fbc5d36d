"""What can be exported, and how rows are read page by page in a stable order (pure: SQL text only).

Each paged dataset is read in its table's sort-key order with keyset pagination: a page is the next
``limit`` distinct keys strictly after the previous page's last key. Keys never change, so a walk sees
every row present when it started exactly once, whatever is inserted (or merged) meanwhile; a row
inserted during the walk is in it when its key is after the cursor, else in the next walk
(docs/decisions/0088). Duplicates of a key (a ReplacingMergeTree not merged yet) collapse with
``LIMIT 1 BY key``, as ``FINAL`` would.

Every identifier in the SQL comes from the constants below; values are bound parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "PAGED_DATASETS",
    "TIME_TYPE",
    "KeyColumn",
    "PageQuery",
    "PagedDataset",
    "page_sql",
]

TIME_TYPE = "DateTime64(3, 'UTC')"


@dataclass(frozen=True)
class KeyColumn:
    """One column of a dataset's sort key: its name and ClickHouse type (for the bound cursor value)."""

    name: str
    type: str

    @property
    def is_time(self) -> bool:
        return self.type.startswith("DateTime64")


@dataclass(frozen=True)
class PagedDataset:
    """A warehouse table exported in key order."""

    name: str
    table: str
    time_column: str
    """The window (``since``/``until``) applies to it."""
    key: tuple[KeyColumn, ...]
    columns: tuple[tuple[str, str], ...]
    """``(output name, SQL expression)`` in output order; every key column is among them by name."""
    filters: Mapping[str, KeyColumn] = field(default_factory=dict)
    """Optional equality filters: query parameter → the column (and its type) it matches."""

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


def _plain(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, name) for name in names)


_S = "String"
_OPTIONAL_BASE64 = "if(isNull(original_key), NULL, base64Encode(assumeNotNull(original_key)))"

PAGED_DATASETS: dict[str, PagedDataset] = {
    "exposures": PagedDataset(
        name="exposures",
        table="xp.exposures",
        time_column="exposed_at",
        key=(
            KeyColumn("experiment_key", _S),
            KeyColumn("unit_id", _S),
            KeyColumn("exposed_at", TIME_TYPE),
            KeyColumn("exposure_id", _S),
        ),
        columns=(
            *_plain("experiment_key", "unit_id", "exposed_at", "exposure_id", "hash_attribute"),
            *_plain("variation_id", "variation_key", "variation_name", "feature_key", "bucket"),
            *_plain("overridden", "source"),
            ("attributes_json", "toJSONString(attributes)"),
            *_plain("sent_at", "schema_version"),
        ),
        filters={"experiment": KeyColumn("experiment_key", _S)},
    ),
    "events": PagedDataset(
        name="events",
        table="xp.events",
        time_column="occurred_at",
        key=(
            KeyColumn("event_name", _S),
            KeyColumn("unit_id", _S),
            KeyColumn("occurred_at", TIME_TYPE),
            KeyColumn("event_id", _S),
        ),
        columns=(
            *_plain("event_name", "unit_id", "occurred_at", "event_id", "value"),
            ("properties_json", "toJSONString(properties)"),
            *_plain("sent_at", "schema_version"),
        ),
        filters={"event_name": KeyColumn("event_name", _S)},
    ),
    "dead_letters": PagedDataset(
        name="dead_letters",
        table="xp.dead_letters",
        time_column="received_at",
        key=(
            KeyColumn("source_topic", _S),
            KeyColumn("reason", _S),
            KeyColumn("received_at", TIME_TYPE),
            KeyColumn("dead_letter_id", _S),
        ),
        columns=(
            *_plain("source_topic", "reason", "received_at", "dead_letter_id", "detail", "record_kind"),
            *_plain("source_partition", "source_offset"),
            ("original_key_base64", _OPTIONAL_BASE64),
            ("original_base64", "base64Encode(original)"),
            ("schema_version", "schema_version"),
        ),
        filters={"reason": KeyColumn("reason", _S)},
    ),
    "results": PagedDataset(
        name="results",
        table="xp.results",
        time_column="computed_at",
        key=(
            KeyColumn("experiment_key", _S),
            KeyColumn("metric", _S),
            KeyColumn("variation_id", "UInt16"),
            KeyColumn("computed_at", TIME_TYPE),
        ),
        columns=_plain(
            "experiment_key",
            "metric",
            "variation_id",
            "computed_at",
            "metric_type",
            "role",
            "method",
            "variation_key",
            "variation_name",
            "units",
            "mean",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "chance_to_win",
            "significant",
            "error",
            "srm_p_value",
            "window_since",
            "window_until",
        ),
        filters={"experiment": KeyColumn("experiment_key", _S)},
    ),
}
"""The datasets read page by page: by the export job (windowed exports) and the export API."""


@dataclass(frozen=True)
class PageQuery:
    """One page of a walk: the window, equality filters, and where to resume."""

    dataset: PagedDataset
    limit: int
    since: datetime | None = None
    until: datetime | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    after: Sequence[Any] | None = None
    """The last key of the previous page (``None``: the first page)."""


def page_sql(query: PageQuery) -> tuple[str, dict[str, Any]]:
    """The SQL of one page and its bound parameters."""
    dataset = query.dataset
    params: dict[str, Any] = {"limit": query.limit}
    where = ["1"]
    if query.since is not None:
        where.append(f"{dataset.time_column} >= {{since:{TIME_TYPE}}}")
        params["since"] = query.since.astimezone(UTC)
    if query.until is not None:
        where.append(f"{dataset.time_column} < {{until:{TIME_TYPE}}}")
        params["until"] = query.until.astimezone(UTC)
    for i, (name, value) in enumerate(sorted(query.filters.items())):
        column = dataset.filters[name]  # KeyError: the caller validates filter names first
        where.append(f"{column.name} = {{f{i}:{column.type}}}")
        params[f"f{i}"] = value
    keys = ", ".join(k.name for k in dataset.key)
    if query.after is not None:
        if len(query.after) != len(dataset.key):
            raise ValueError(f"a cursor of {dataset.name} has {len(dataset.key)} key values")
        bound = ", ".join(f"{{k{i}:{k.type}}}" for i, k in enumerate(dataset.key))
        where.append(f"({keys}) > ({bound})")
        params.update({f"k{i}": value for i, value in enumerate(query.after)})
    columns = ", ".join(expr if expr == name else f"{expr} AS {name}" for name, expr in dataset.columns)
    sql = (
        f"SELECT {columns} FROM {dataset.table} WHERE {' AND '.join(where)} "  # nosec B608
        f"ORDER BY {keys} LIMIT 1 BY {keys} LIMIT {{limit:UInt32}}"
    )
    return sql, params
