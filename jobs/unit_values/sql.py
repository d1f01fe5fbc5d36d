"""The bookkeeping SQL of ``xp.unit_values``: the warehouse clock, ``xp.unit_values_state``, the newest event.

The per-unit values themselves (build, read) are generated with every other results query in
:mod:`jobs.results.metric_sql.unit_values`.
"""

from __future__ import annotations

__all__ = [
    "MAX_OCCURRED_SQL",
    "NOW_SQL",
    "STATE_SQL",
    "changed_max_occurred_sql",
]

NOW_SQL = "SELECT now64(3) AS now"

STATE_SQL = """
SELECT plan, watermark, max_occurred_at, version, built_at, refreshed_at
FROM xp.unit_values_state FINAL
WHERE experiment_key = {experiment:String} AND plan_key = {plan_key:String}
"""

MAX_OCCURRED_SQL = """
SELECT max(occurred_at) AS max_occurred_at, count() AS rows
FROM xp.attributed_events
WHERE experiment_key = {experiment:String} AND event_name IN {event_names:Array(String)}
"""


def changed_max_occurred_sql() -> str:
    """The newest occurred_at among attributed rows stored at or after the watermark (or NULL)."""
    return (
        "SELECT max(occurred_at) AS max_occurred_at, count() AS rows FROM xp.attributed_events"
        " WHERE experiment_key = {experiment:String} AND event_name IN {event_names:Array(String)}"
        " AND attributed_at >= {watermark:DateTime64(3, 'UTC')}"
    )
