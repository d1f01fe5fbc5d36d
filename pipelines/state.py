"""Building the worker's inputs: registry view, metric names, and state rebuilt from the warehouse.

Worker state is **rebuilt from the warehouse on start** (not kept in Kafka changelog topics): the
warehouse is the durable record of what was loaded, and the worker commits offsets only after loading,
so "what the warehouse holds" is exactly the state to resume from. See docs/pipeline.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.processor import RegistryView
from schemas import MetricEvent
from xpcore.errors import ConfigError

if TYPE_CHECKING:
    from pipelines.processor import StreamProcessor
    from xpcore.config import StreamSettings
    from xpcore.warehouse.base import Warehouse

__all__ = [
    "known_event_names",
    "refresh_recent_ids",
    "refresh_state",
    "registry_view_from_file",
    "restore_state",
]

logger = logging.getLogger(__name__)


def registry_view_from_file(path: Path) -> RegistryView:
    """A registry view from JSON: ``{"experiments": {key: {"variations": [{id, key, name}]}}}``."""
    try:
        document: Any = json.loads(path.read_text())
        experiments = document["experiments"]
        known: dict[str, frozenset[int]] = {}
        names: dict[tuple[str, int], str] = {}
        for key, spec in experiments.items():
            ids = []
            for variation in spec["variations"]:
                ids.append(int(variation["id"]))
                names[(key, int(variation["id"]))] = str(
                    variation.get("name") or variation.get("key") or variation["id"]
                )
            known[key] = frozenset(ids)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"cannot read registry file {path}: {error}") from error
    return RegistryView(known, names, None)


def known_event_names(settings: StreamSettings) -> frozenset[str]:
    """Event names accepted before the registry is read: ``XP_STREAM_EVENT_NAMES`` plus the catalog's
    defaults (the registry view adds its experiments' metric events, see ``RegistryView``)."""
    from assignment.metrics_catalog import known_event_names as catalog_names

    return catalog_names(None) | frozenset(settings.stream_event_names)


def restore_state(
    processor: StreamProcessor,
    warehouse: Warehouse,
    settings: StreamSettings,
    now: datetime,
    *,
    repair_until: datetime | None = None,
    hold_events: bool = True,
) -> dict[str, int]:
    """Rebuild dedup ids, first exposures and held events from the warehouse; returns counts.

    ``repair_until``: the view repair trusts raw rows loaded before it (:func:`repair_horizon`; None:
    every row, for a worker that is the store's only writer). ``hold_events`` False: no event is held
    here (a group member holds its own units' events once its partitions are known, decision 0094)."""
    from xpcore.warehouse import load_query

    since = now - timedelta(seconds=settings.stream_dedup_retention_seconds)
    ids = warehouse.query_arrow(load_query("stream_recent_ids"), {"since": since}).to_pydict()
    seen = {
        "exposure": processor.seen_exposures,
        "event": processor.seen_events,
        "dead_letter": processor.seen_dead_letters,
    }
    # Rows come in ingested_at order; one remember() per (kind, load time): a batch's ids share one time.
    rows = zip(ids["kind"], ids["ingested_at"], ids["id"], strict=True)
    for (kind, ingested_at), group in groupby(rows, key=itemgetter(0, 1)):
        seen[kind].remember([record_id for _, _, record_id in group], _utc(ingested_at))
    for ids_state in seen.values():
        ids_state.expire(now)

    # Before reading first exposures: complete what the materialized views missed (see _repair_views).
    _repair_views(warehouse, since, repair_until or ALL_ROWS)  # rows added: logged (an insert was cut)
    units = _restore_units(processor, warehouse)
    recent = _restore_held(processor, warehouse, settings, now) if hold_events else 0
    counts = {
        "dedup_ids": sum(len(s) for s in seen.values()),
        "unit_exposures": units,
        "held_events": recent,
    }
    logger.info("restored stream state from the warehouse %s", counts)
    return counts


def refresh_recent_ids(
    processor: StreamProcessor, warehouse: Warehouse, settings: StreamSettings, now: datetime
) -> int:
    """Add to the dedup state the ids other workers loaded since (within the retention); returns how many.

    A runner calls it when its group gave it partitions that another worker held: what that worker
    loaded and did not commit is read again here, and must be known as loaded (decision 0074). Only
    ids not known yet are added, so a refresh never inflates the state."""
    from xpcore.warehouse import load_query

    since = now - timedelta(seconds=settings.stream_dedup_retention_seconds)
    ids = warehouse.query_arrow(load_query("stream_recent_ids"), {"since": since}).to_pydict()
    seen = {
        "exposure": processor.seen_exposures,
        "event": processor.seen_events,
        "dead_letter": processor.seen_dead_letters,
    }
    added = 0
    rows = zip(ids["kind"], ids["ingested_at"], ids["id"], strict=True)
    for (kind, ingested_at), group in groupby(rows, key=itemgetter(0, 1)):
        batch = [record_id for _, _, record_id in group]
        known = seen[kind].contains_many(batch)
        fresh = [record_id for record_id, was_known in zip(batch, known, strict=True) if not was_known]
        if fresh:
            seen[kind].remember(fresh, _utc(ingested_at))
            added += len(fresh)
    return added


def refresh_state(
    processor: StreamProcessor,
    warehouse: Warehouse,
    settings: StreamSettings,
    now: datetime,
    *,
    taken_over: Callable[[str], bool],
) -> dict[str, int]:
    """After a rebalance gave this worker partitions another worker held: add what that worker loaded
    (dedup ids, first exposures, and the recent events of the units ``taken_over`` says are now this
    worker's, with the experiments they already have) to the live state, without the start-up view
    repair (decision 0074). The other workers' events are not held: they would be attributed twice.
    Returns counts; the caller attributes the held events the first exposures make attributable."""
    return {
        "dedup_ids": refresh_recent_ids(processor, warehouse, settings, now),
        "unit_exposures": _restore_units(processor, warehouse),
        "held_events": _restore_held(processor, warehouse, settings, now, taken_over),
    }


def _restore_units(processor: StreamProcessor, warehouse: Warehouse) -> int:
    """First exposures from ``xp.unit_exposures`` (a unit's entry is replaced by the warehouse's)."""
    from xpcore.warehouse import load_query

    units = warehouse.query_arrow(load_query("stream_unit_exposures")).to_pydict()
    for i, unit_id in enumerate(units["unit_id"]):
        processor.attribution.load_unit_exposure(
            unit_id,
            units["experiment_key"][i],
            _utc(units["first_exposed_at"][i]),
            int(units["variation_id"][i]),
            {int(units["min_variation_id"][i]), int(units["max_variation_id"][i])},
        )
    return len(units["unit_id"])


def _restore_held(
    processor: StreamProcessor,
    warehouse: Warehouse,
    settings: StreamSettings,
    now: datetime,
    units: Callable[[str], bool] | None = None,
) -> int:
    """The events of the last ``XP_STREAM_HOLD_SECONDS`` (of the ``units`` it accepts; None: all), held
    with the experiments they already have (an event held already is not held twice)."""
    from xpcore.warehouse import load_query

    hold_since = now - timedelta(seconds=settings.stream_hold_seconds)
    recent = warehouse.query_arrow(load_query("stream_recent_events"), {"since": hold_since}).to_pylist()
    if units is not None:
        recent = [row for row in recent if units(row["unit_id"])]
    for row in recent:
        event = MetricEvent(
            event_id=row["event_id"],
            unit_id=row["unit_id"],
            event_name=row["event_name"],
            value=row["value"],
            occurred_at=_utc(row["occurred_at"]),
        )
        processor.attribution.hold_event(event, _utc(row["ingested_at"]), row["experiments"] or ())
    return len(recent)


_VIEW_REPAIRS = {
    "stream_repair_unit_exposures": "xp.unit_exposures",
    "stream_repair_exposure_counts": "xp.exposure_counts_minute",
    "stream_repair_unit_metric_state": "xp.unit_metric_state",
    "stream_repair_ingest_counts": "xp.ingest_counts_minute",
}


ALL_ROWS = datetime(2200, 1, 1, tzinfo=UTC)
"""A repair horizon past every row: the worker is the store's only writer."""

_RECENT_WRITES = """
SELECT max(t) AS newest FROM (
    SELECT max(ingested_at) AS t FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    UNION ALL SELECT max(ingested_at) FROM xp.events WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    UNION ALL SELECT max(attributed_at) FROM xp.attributed_events
    WHERE attributed_at >= {since:DateTime64(3, 'UTC')}
)
"""


def repair_horizon(
    warehouse: Warehouse,
    *,
    exclusive: bool,
    settle_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> datetime | None:
    """Up to when the start-up view repair may trust the raw tables, with other writers on the store.

    Another worker's insert commits the table's part, then its views' parts: seen in between, its rows
    would look like a cut insert and be repaired, then its views' parts would land too (counted twice).
    So with other possible writers (``exclusive`` False: a store routed through `xp up`, a ClickHouse
    server), the repair takes only rows loaded before ``now``, after waiting ``settle_seconds`` for inserts
    in flight at ``now`` to finish, and only when something was written lately (an idle store has nothing
    in flight). Rows loaded later are new inserts: left out of the raw side, they can only make the
    repair add less, never twice. None: the worker is the only writer (no horizon)."""
    if exclusive:
        return None
    now = clock()
    recent = now - timedelta(seconds=max(3 * settle_seconds, 1.0))
    rows = warehouse.query_arrow(_RECENT_WRITES, {"since": recent}).to_pylist()
    if rows and rows[0]["newest"] is not None and settle_seconds > 0:
        logger.info("other writers on the store: waiting %.0f s before the view repair", settle_seconds)
        sleep(settle_seconds)
    return now


def _repair_views(warehouse: Warehouse, since: datetime, until: datetime = ALL_ROWS) -> int:
    """Re-add to the materialized views' tables the rows of recent inserts they missed.

    An insert into ``xp.exposures`` / ``xp.attributed_events`` commits the table's part first, then each
    view's part: a worker killed in between (``kill -9``, OOM, power) leaves rows in the table, so a restart
    deduplicates the re-delivered records (their ids are loaded), and their views' rows would never be
    written: first exposures missing from ``xp.unit_exposures`` (events not attributed on restart),
    counters short of a recount. Each repair compares, for the keys touched since ``since`` (the dedup
    retention: older records are not deduplicated, so nothing older is at risk), the raw table's count
    with the view's and inserts only the difference; running it again adds nothing. Returns the rows
    added. Raw rows loaded at or after ``until`` are left out (:func:`repair_horizon`: another worker's
    insert may be in flight).
    """
    from xpcore.warehouse import load_query

    added = 0
    for name, table in _VIEW_REPAIRS.items():
        before = _count(warehouse, table)
        warehouse.command(load_query(name), {"since": since, "until": until})
        rows = _count(warehouse, table) - before
        if rows:
            logger.warning("%s was missing rows of an interrupted insert: %d added", table, rows)
        added += rows
    return added


def _count(warehouse: Warehouse, table: str) -> int:
    # `table` is one of this module's own table names, never input.
    return int(warehouse.query_arrow(f"SELECT count() AS n FROM {table}").column("n")[0].as_py())  # nosec B608


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)
