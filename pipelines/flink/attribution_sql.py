"""The Flink job's exposure attribution, as Flink SQL around a Java Process Table Function (pure: strings).

``io.xpstream.flink.AttributeEvents`` (``deploy/flink/src/main/java``, compiled by ``make flink`` into
``deploy/flink/lib/xpstream-flink-udf.jar``) runs the kernel's attribution rule (``pipelines/attribution.py``)
per unit: it is called with ``PARTITION BY unit_id`` over the union of the exposures and events the job
judged ``ok`` (after its deduplication), keeps the unit's first exposures and held events in Flink's keyed
state (checkpointed with the sources' offsets and the sinks' transactions), and emits one row per (event,
experiment). The rows go, as JSON, to ``xp.flink.attributions`` through the transactional Kafka sink; the
loader checks them against the kernel's (docs/decisions/0102).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from pipelines.flink.sql_text import literal

if TYPE_CHECKING:
    pass

__all__ = [
    "FUNCTION_CLASS",
    "AttributionParams",
    "attribution_columns",
    "attribution_function",
    "attribution_input",
    "attribution_insert",
    "windows_spec",
]

FUNCTION_CLASS = "io.xpstream.flink.AttributeEvents"
FUNCTION_UID = "xp-attribution"
"""The PTF's state id: keep it across upgrades (its state is restored by it)."""
_ITEM, _FIELD = "\u0002", "\u0001"


@dataclass(frozen=True)
class AttributionParams:
    """The kernel's attribution settings (``AttributionState``): hold, default window, metric windows."""

    hold: timedelta
    default_window: timedelta | None
    windows: Mapping[tuple[str, str], timedelta | None] = field(default_factory=dict)
    max_held_per_unit: int = 10_000
    """Events held per unit at most; holding one more releases the unit's oldest (decision 0105)."""
    dedup_retention: timedelta = timedelta(hours=1)
    """A record id seen again within this is ignored (the kernel's dedup by id, whatever the bytes)."""


def _micros(window: timedelta | None) -> int:
    """A window in microseconds; -1: no end."""
    return -1 if window is None else window // timedelta(microseconds=1)


def windows_spec(windows: Mapping[tuple[str, str], timedelta | None]) -> str:
    """The metric windows as the PTF's one STRING argument: ``experiment U+1 event_name U+1 micros``
    items joined by U+2 (keys and names hold no control character: :func:`literal` refuses them)."""
    items = sorted(f"{key}{_FIELD}{name}{_FIELD}{_micros(window)}" for (key, name), window in windows.items())
    return _ITEM.join(items)


def attribution_columns(time_field: str) -> tuple[str, str]:
    """(select items over the parsed columns, their names): what attribution needs of a record. Only
    read for records judged ``ok`` (so the casts succeed; TRY_CAST keeps the others from failing)."""
    if time_field == "exposed_at":
        items = [
            "j_unit_id AS a_unit",
            "j_experiment_key AS a_experiment",
            "TRY_CAST(SUBSTRING(w_variation_id, 2, CHAR_LENGTH(w_variation_id) - 2) AS INT) AS a_variation",
            "j_exposed_at AS a_at",
        ]
    else:
        items = [
            "j_unit_id AS a_unit",
            "j_event_name AS a_event_name",
            "TRY_CAST(SUBSTRING(w_value, 2, CHAR_LENGTH(w_value) - 2) AS DOUBLE) AS a_metric",
            "j_occurred_at AS a_at",
        ]
    names = [item.rsplit(" AS ", 1)[1] for item in items]
    return ", ".join(items), ", ".join(names)


def attribution_function() -> str:
    return f"CREATE TEMPORARY FUNCTION xp_attribute AS {literal(FUNCTION_CLASS)} LANGUAGE JAVA"


def attribution_input(exposures_view: str, events_view: str) -> str:
    """One table of the unit's records for the PTF: exposures (``x``) and events (``e``) judged ok."""
    return f"""CREATE TEMPORARY VIEW attribution_in AS
SELECT 'x' AS kind, a_unit AS unit_id, rec_id, a_experiment AS experiment_key, a_variation AS variation_id,
  CAST(NULL AS STRING) AS event_name, CAST(NULL AS DOUBLE) AS metric, a_at AS `at`
FROM {exposures_view} WHERE verdict = 'ok'
UNION ALL
SELECT 'e' AS kind, a_unit AS unit_id, rec_id, CAST(NULL AS STRING) AS experiment_key,
  CAST(NULL AS INT) AS variation_id, a_event_name AS event_name, a_metric AS metric, a_at AS `at`
FROM {events_view} WHERE verdict = 'ok'"""  # nosec B608 - view names are the caller's constants


def attribution_insert(sink: str, params: AttributionParams) -> str:
    """INSERT: the PTF's rows as JSON (key: the unit) into the attribution hand-off."""
    hold_ms = params.hold // timedelta(milliseconds=1)
    call = (
        "xp_attribute(input => TABLE attribution_in PARTITION BY unit_id, "
        f"hold_ms => CAST({int(hold_ms)} AS BIGINT), "
        f"default_window_us => CAST({_micros(params.default_window)} AS BIGINT), "
        f"windows_spec => {literal_spec(windows_spec(params.windows))}, "
        f"max_held => CAST({int(params.max_held_per_unit)} AS BIGINT), "
        f"retention_ms => CAST({params.dedup_retention // timedelta(milliseconds=1)} AS BIGINT), "
        f"uid => {literal(FUNCTION_UID)})"
    )
    row = (
        "JSON_OBJECT('event_id' VALUE event_id, 'unit_id' VALUE unit_id, "
        "'experiment_key' VALUE experiment_key, "
        "'variation_id' VALUE variation_id, 'event_name' VALUE event_name, 'value' VALUE metric, "
        "'occurred_us' VALUE occurred_us, 'first_us' VALUE first_us NULL ON NULL)"
    )
    return f"""INSERT INTO {sink}
SELECT CAST(unit_id AS BYTES) AS k, CAST({row} AS BYTES) AS v FROM {call}"""  # nosec B608 - literals


def literal_spec(spec: str) -> str:
    """The windows spec as a SQL literal: its two separators written as Unicode escapes (``U&'…'``),
    since :func:`literal` refuses control characters in plain text."""
    for part in spec.replace(_ITEM, _FIELD).split(_FIELD):
        literal(part)  # no quote tricks, no control character inside a key or name
    escaped = spec.replace("\\", "\\\\").replace("'", "''").replace(_ITEM, "\\0002").replace(_FIELD, "\\0001")
    return f"U&'{escaped}'"
